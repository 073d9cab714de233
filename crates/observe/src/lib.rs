//! Health and metrics for DockFlare's binaries, over plain HTTP on an address of their own:
//! `/healthz` (the process is sound), `/readyz` (it can do its job now, and if not, why), and
//! `/metrics` (Prometheus text format) — [`server`]; the process-wide recorder the code records
//! into through the `metrics` facade — [`recorder`]; and the probe behind each binary's
//! `healthcheck` subcommand, which needs no shell in the image — [`probe`].
//!
//! Must not know: the master or the agent. They say what "ready" means through [`Observed`].

pub mod probe;
pub mod recorder;
pub mod server;

use futures::future::BoxFuture;
use std::net::SocketAddr;

/// Where the health server listens: an address, or "off" (`--metrics-listen` of both binaries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenOrOff(pub Option<SocketAddr>);

/// Parses `HOST:PORT`, or `off` / `none` / nothing for no server (a clap value parser).
pub fn listen_or_off(value: &str) -> Result<ListenOrOff, String> {
    match value.trim() {
        "off" | "none" | "" => Ok(ListenOrOff(None)),
        text => text
            .parse()
            .map(|addr| ListenOrOff(Some(addr)))
            .map_err(|_| format!("{text:?} is not HOST:PORT or \"off\"")),
    }
}

/// One line of a health answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    /// What was found, or why it fails (for the operator reading the answer).
    pub detail: String,
}

impl Check {
    pub fn pass(name: &'static str, detail: impl Into<String>) -> Check {
        Check { name, ok: true, detail: detail.into() }
    }

    pub fn fail(name: &'static str, detail: impl Into<String>) -> Check {
        Check { name, ok: false, detail: detail.into() }
    }
}

/// What a binary tells the health server.
pub trait Observed: Send + Sync + 'static {
    /// Whether the process is sound (its long-lived tasks run).
    fn live(&self) -> Vec<Check>;
    /// Whether it can do its job now. May do I/O (a database ping), with a deadline of its own.
    fn ready(&self) -> BoxFuture<'_, Vec<Check>>;
    /// Called before `/metrics` renders: gauges that are read rather than counted are set here.
    fn refresh(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// The answer's body, one check per line (`[+]` passing, `[-]` failing), then the verdict.
pub fn render(checks: &[Check], what: &str) -> (bool, String) {
    let ok = checks.iter().all(|check| check.ok);
    let mut body = String::new();
    for check in checks {
        let mark = if check.ok { "[+]" } else { "[-]" };
        body.push_str(&format!("{mark} {}: {}\n", check.name, check.detail));
    }
    body.push_str(&format!("{what} {}\n", if ok { "ok" } else { "failed" }));
    (ok, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listen_address_or_off() {
        assert_eq!(listen_or_off("off"), Ok(ListenOrOff(None)));
        assert_eq!(listen_or_off(" 127.0.0.1:9180 "), Ok(ListenOrOff(Some(SocketAddr::from(([127, 0, 0, 1], 9180))))));
        assert!(listen_or_off("localhost").is_err_and(|e| e.contains("HOST:PORT")));
    }

    #[test]
    fn a_failing_check_fails_the_answer_and_says_why() {
        let checks = [Check::pass("database", "sqlite"), Check::fail("master", "not connected: refused")];
        let (ok, body) = render(&checks, "readyz");
        assert!(!ok);
        assert_eq!(body, "[+] database: sqlite\n[-] master: not connected: refused\nreadyz failed\n");
        assert_eq!(render(&checks[..1], "healthz"), (true, "[+] database: sqlite\nhealthz ok\n".to_string()));
    }
}
