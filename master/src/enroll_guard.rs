//! Failed enrollments per source: after `max_failures` failures from one
//! address (IPv6: one /64) within a window, its further Enroll calls are
//! refused (`RESOURCE_EXHAUSTED`, with when to retry) before any work is done,
//! until the window ends. Failures are logged in aggregate ([`Tally`]), not
//! one line per guess.

use crate::listener::admission::source_key;
use crate::tally::Tally;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Sources remembered at most; beyond, expired windows are dropped first.
const MAX_SOURCES: usize = 65_536;

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

/// Failure counts per source, in fixed windows. Pure apart from the clock passed in.
#[derive(Debug)]
pub struct FailureWindows {
    max_failures: u32,
    window: Duration,
    sources: HashMap<IpAddr, Window>,
}

impl FailureWindows {
    pub fn new(max_failures: u32, window: Duration) -> FailureWindows {
        FailureWindows { max_failures: max_failures.max(1), window, sources: HashMap::new() }
    }

    /// `Err(retry in)` when `source` has used up its failures in the current window.
    pub fn check(&self, source: IpAddr, now: Instant) -> Result<(), Duration> {
        match self.sources.get(&source_key(source)) {
            Some(w) if w.failures >= self.max_failures && now < w.started + self.window => {
                Err(w.started + self.window - now)
            }
            _ => Ok(()),
        }
    }

    /// Counts a failure from `source`.
    pub fn fail(&mut self, source: IpAddr, now: Instant) {
        if self.sources.len() >= MAX_SOURCES {
            let window = self.window;
            self.sources.retain(|_, w| now < w.started + window);
        }
        let window = self.window;
        let entry = self.sources.entry(source_key(source)).or_insert(Window { started: now, failures: 0 });
        if now >= entry.started + window {
            *entry = Window { started: now, failures: 0 };
        }
        entry.failures = entry.failures.saturating_add(1);
    }
}

/// The guard Enroll consults (shared by every call).
#[derive(Clone, Debug)]
pub struct EnrollGuard {
    windows: Arc<Mutex<FailureWindows>>,
    failed: Tally,
}

impl EnrollGuard {
    /// At most `max_failures` failed enrollments per source per minute.
    pub fn new(max_failures: u32) -> EnrollGuard {
        EnrollGuard {
            windows: Arc::new(Mutex::new(FailureWindows::new(max_failures, Duration::from_secs(60)))),
            failed: Tally::spawn("Refused enrollments."),
        }
    }

    fn windows(&self) -> std::sync::MutexGuard<'_, FailureWindows> {
        self.windows.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `Err(retry in)` when `source` may not try now; the refusal is counted.
    pub fn admit(&self, source: Option<IpAddr>) -> Result<(), Duration> {
        let Some(source) = source else { return Ok(()) };
        let verdict = self.windows().check(source, Instant::now());
        if verdict.is_err() {
            self.failed.record("too_many_failures", source);
        }
        verdict
    }

    /// Counts a failed enrollment (`reason` names it in the aggregate log line).
    pub fn failed(&self, source: Option<IpAddr>, reason: &'static str) {
        let source = source.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        self.windows().fail(source, Instant::now());
        self.failed.record(reason, source);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_is_refused_after_its_failures_until_the_window_ends() {
        let mut windows = FailureWindows::new(3, Duration::from_secs(60));
        let attacker: IpAddr = "10.0.0.9".parse().expect("ip");
        let other: IpAddr = "10.0.0.1".parse().expect("ip");
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(windows.check(attacker, t0).is_ok(), "attempt {i}");
            windows.fail(attacker, t0);
        }
        assert_eq!(windows.check(attacker, t0 + Duration::from_secs(20)), Err(Duration::from_secs(40)));
        assert!(windows.check(other, t0).is_ok(), "another source is not affected");
        assert!(windows.check(attacker, t0 + Duration::from_secs(60)).is_ok(), "a new window");
        windows.fail(attacker, t0 + Duration::from_secs(61));
        assert!(windows.check(attacker, t0 + Duration::from_secs(61)).is_ok(), "counting starts over");
    }
}
