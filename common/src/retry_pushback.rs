//! The retry hint a busy master gives with a refusal: gRPC's standard `grpc-retry-pushback-ms`
//! trailing-metadata key, whose value is a whole number of milliseconds to wait before the next
//! attempt (gRPC proposal A6). The master writes it with [`encode`]; agents read it with
//! [`parse`] and wait that long instead of their own backoff step.
//!
//! A value that is not a plain non-negative decimal number is no hint (the client keeps its own
//! backoff), and a huge one is cut to [`MAX_RETRY_PUSHBACK`], so a broken or hostile master
//! cannot park its agents for longer than a minute.

use std::time::Duration;

/// The trailing-metadata key (lower case, as HTTP/2 sends it).
pub const RETRY_PUSHBACK_KEY: &str = "grpc-retry-pushback-ms";

/// The longest wait a hint can ask for.
pub const MAX_RETRY_PUSHBACK: Duration = Duration::from_secs(60);

/// The part of a hint a client adds at most as jitter, so that clients told the same wait do
/// not come back in lockstep.
pub const HINT_JITTER: f64 = 0.1;

/// Digits accepted at most (more than any useful number of milliseconds; bounds the parse).
const MAX_DIGITS: usize = 12;

/// The wait a `grpc-retry-pushback-ms` value asks for: `None` when it is empty, negative, not a
/// number or has a fraction; at most [`MAX_RETRY_PUSHBACK`].
pub fn parse(value: &str) -> Option<Duration> {
    let digits = value.trim();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if digits.trim_start_matches('0').len() > MAX_DIGITS {
        return Some(MAX_RETRY_PUSHBACK);
    }
    let millis: u64 = digits.parse().ok()?;
    Some(Duration::from_millis(millis).min(MAX_RETRY_PUSHBACK))
}

/// The metadata value that asks for `delay` (whole milliseconds, at most [`MAX_RETRY_PUSHBACK`]).
pub fn encode(delay: Duration) -> String {
    delay.min(MAX_RETRY_PUSHBACK).as_millis().to_string()
}

/// How long a client told `hint` waits: the hint plus up to [`HINT_JITTER`] of it, by `unit` (a
/// random draw in `[0, 1]`).
pub fn jittered(hint: Duration, unit: f64) -> Duration {
    hint + hint.mul_f64(HINT_JITTER * unit.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_milliseconds_are_a_hint() {
        assert_eq!(parse("0"), Some(Duration::ZERO));
        assert_eq!(parse("250"), Some(Duration::from_millis(250)));
        assert_eq!(parse(" 1500 "), Some(Duration::from_millis(1500)));
        assert_eq!(parse("007"), Some(Duration::from_millis(7)));
    }

    #[test]
    fn anything_else_is_no_hint() {
        for value in ["", " ", "-1", "-0", "+5", "1.5", "1e3", "abc", "12ms", "0x10", "١٢"] {
            assert_eq!(parse(value), None, "{value:?}");
        }
    }

    #[test]
    fn huge_hints_are_capped() {
        assert_eq!(parse("60001"), Some(MAX_RETRY_PUSHBACK));
        assert_eq!(parse("18446744073709551615"), Some(MAX_RETRY_PUSHBACK), "u64::MAX");
        assert_eq!(parse(&"9".repeat(400)), Some(MAX_RETRY_PUSHBACK), "beyond any integer type");
        assert_eq!(parse(&format!("{}1", "0".repeat(400))), Some(Duration::from_millis(1)), "leading zeros");
    }

    #[test]
    fn clients_add_at_most_a_tenth() {
        let hint = Duration::from_secs(2);
        assert_eq!(jittered(hint, 0.0), hint);
        assert_eq!(jittered(hint, 1.0), Duration::from_millis(2200));
        assert_eq!(jittered(hint, -4.0), hint, "out-of-range draws are clamped");
        assert_eq!(jittered(hint, 4.0), Duration::from_millis(2200));
    }

    #[test]
    fn encoding_round_trips_and_caps() {
        assert_eq!(encode(Duration::from_millis(1234)), "1234");
        assert_eq!(encode(Duration::from_micros(1500)), "1");
        assert_eq!(encode(Duration::from_secs(3600)), "60000");
        let delay = Duration::from_millis(987);
        assert_eq!(parse(&encode(delay)), Some(delay));
    }
}
