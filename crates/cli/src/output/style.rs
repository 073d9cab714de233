//! Colour: whether to use it (a terminal, and no NO_COLOR), and the few tones a status has.

/// What a word says about health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    Plain,
    /// All is well (online, active, acked).
    Good,
    /// Needs attention soon (offline, pending deletion, queued).
    Warn,
    /// Broken (revoked, conflict, invalid, error, failed).
    Bad,
}

/// Colour only on a terminal, and never when NO_COLOR is set to anything but "" (no-color.org).
pub fn colour_wanted(stdout_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stdout_is_terminal && no_color.is_none_or(|value| value.is_empty())
}

/// `text` in its tone's colour, or as it is.
pub fn paint(text: &str, tone: Tone, colour: bool) -> String {
    let code = match tone {
        Tone::Plain => return text.to_string(),
        Tone::Good => "32",
        Tone::Warn => "33",
        Tone::Bad => "31",
    };
    if colour {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn colour_needs_a_terminal_and_no_no_color() {
        assert!(colour_wanted(true, None));
        assert!(colour_wanted(true, Some(OsStr::new(""))));
        assert!(!colour_wanted(true, Some(OsStr::new("1"))));
        assert!(!colour_wanted(false, None));
    }

    #[test]
    fn painting() {
        assert_eq!(paint("online", Tone::Good, true), "\x1b[32monline\x1b[0m");
        assert_eq!(paint("online", Tone::Good, false), "online");
        assert_eq!(paint("x", Tone::Plain, true), "x");
    }
}
