//! Admission for Register: at most `--max-concurrent-registrations` in progress at once.
//!
//! A restarted master meets its whole fleet within seconds (a reconnect storm). Registrations
//! wait their turn in the registration writer's queue ([`crate::registration_writer`]); rather
//! than pile up without bound, one over the limit is refused at once, before any work, with
//! `UNAVAILABLE` (retriable) and a retry hint (`grpc-retry-pushback-ms`,
//! [`dockflare_common::retry_pushback`]) that the agent honours.
//!
//! The hints spread the retries over the time the master needs to serve them: refused agents
//! are given successive slots of a calendar ([`Calendar`]) spaced by the master's own pace —
//! the time a registration holds its slot, divided by the number of slots (Little's law) — so
//! the wait grows with the number of agents already told to come back, with a little jitter,
//! at most [`MAX_HINT`]. Refusals are counted (`dockflare_registrations_refused_total`) and
//! logged in aggregate ([`Tally`]).

use crate::tally::Tally;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The shortest hint: the agent's shortest backoff (each retry costs a new connection and TLS
/// handshake, so a busy master asks for at least this).
pub const MIN_HINT: Duration = Duration::from_millis(200);
/// The longest hint, however long the calendar.
pub const MAX_HINT: Duration = Duration::from_secs(30);
/// What one registration is assumed to take before any has been measured (on the slow side:
/// the first refusals come before the first registrations end, and agents told to come back
/// too soon are refused again).
const FIRST_GUESS: Duration = Duration::from_millis(100);
/// Weight of the newest measurement in the moving average of service times.
const SMOOTHING: f64 = 0.1;
/// How much a hint varies around its slot (± this share of the wait).
const JITTER: f64 = 0.1;

/// The default of `--max-concurrent-registrations`: the registration writer's queue
/// ([`crate::registration_writer::QUEUE_CAPACITY`]). A refused agent comes back with a new
/// connection and TLS handshake, which costs a CPU-bound master more than waiting its turn in
/// the writer's queue, so by default only a full queue refuses.
pub const DEFAULT_MAX_CONCURRENT_REGISTRATIONS: usize = crate::registration_writer::QUEUE_CAPACITY;

/// Registrations in progress, and when refused agents should come back. Cloning shares it.
#[derive(Clone)]
pub struct RegisterGate {
    inner: Arc<Inner>,
}

struct Inner {
    slots: Arc<Semaphore>,
    limit: usize,
    calendar: Mutex<Calendar>,
    refused: Tally,
    refused_total: metrics::Counter,
}

/// A registration in progress: holds its slot until dropped, and times it.
pub struct Admitted {
    _slot: OwnedSemaphorePermit,
    started: Instant,
    inner: Arc<Inner>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        lock(&self.inner.calendar).served(self.started.elapsed());
    }
}

/// A refusal: come back after `retry_in`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy {
    pub retry_in: Duration,
}

fn lock(calendar: &Mutex<Calendar>) -> MutexGuard<'_, Calendar> {
    calendar.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl RegisterGate {
    /// A gate of `limit` slots (at least one); starts its aggregate log task.
    pub fn new(limit: usize) -> RegisterGate {
        let limit = limit.max(1);
        RegisterGate {
            inner: Arc::new(Inner {
                slots: Arc::new(Semaphore::new(limit)),
                limit,
                calendar: Mutex::new(Calendar::new(FIRST_GUESS)),
                refused: Tally::spawn("Refused registrations (the master is busy; agents were told when to retry)."),
                refused_total: metrics::counter!("dockflare_registrations_refused_total"),
            }),
        }
    }

    /// A slot for one registration, or how long `source` should wait.
    pub fn admit(&self, source: Option<IpAddr>) -> Result<Admitted, Busy> {
        let inner = &self.inner;
        match inner.slots.clone().try_acquire_owned() {
            Ok(slot) => Ok(Admitted { _slot: slot, started: Instant::now(), inner: inner.clone() }),
            Err(_) => {
                let retry_in = lock(&inner.calendar).refuse(Instant::now(), inner.limit, rand::random::<f64>());
                inner.refused_total.increment(1);
                inner.refused.record("busy", source.unwrap_or(IpAddr::from([0, 0, 0, 0])));
                Err(Busy { retry_in })
            }
        }
    }
}

/// When refused agents should come back: successive slots, one per refusal, spaced by the
/// time between two registrations at full pace. Pure: time and randomness are arguments.
#[derive(Debug, Clone)]
pub struct Calendar {
    /// The last slot handed out (`None`: none yet).
    horizon: Option<Instant>,
    /// Moving average of how long a registration holds its slot.
    service: Duration,
}

impl Calendar {
    pub fn new(first_guess: Duration) -> Calendar {
        Calendar { horizon: None, service: first_guess }
    }

    /// A registration held its slot for `took`.
    pub fn served(&mut self, took: Duration) {
        self.service = self.service.mul_f64(1.0 - SMOOTHING) + took.mul_f64(SMOOTHING);
    }

    /// Time between two registrations at full pace with `limit` slots.
    pub fn spacing(&self, limit: usize) -> Duration {
        self.service / u32::try_from(limit.max(1)).unwrap_or(u32::MAX)
    }

    /// The hint for an agent refused `now`: the wait until the next free slot, varied by ±10 %
    /// with `unit` (a random draw in `[0, 1]`), within [`MIN_HINT`] and [`MAX_HINT`].
    pub fn refuse(&mut self, now: Instant, limit: usize, unit: f64) -> Duration {
        let start = self.horizon.filter(|horizon| *horizon > now).unwrap_or(now);
        let slot = (start + self.spacing(limit)).min(now + MAX_HINT);
        self.horizon = Some(slot);
        pushback(slot - now, unit)
    }
}

/// The hint for a slot `wait` away: ±[`JITTER`] of it by `unit`, within [`MIN_HINT`] and
/// [`MAX_HINT`].
pub fn pushback(wait: Duration, unit: f64) -> Duration {
    let factor = 1.0 - JITTER + 2.0 * JITTER * unit.clamp(0.0, 1.0);
    wait.mul_f64(factor).clamp(MIN_HINT, MAX_HINT)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn hints_grow_with_the_agents_already_told_to_come_back() {
        let now = Instant::now();
        let mut calendar = Calendar::new(100 * MS);
        // 10 slots of 100 ms: one registration every 10 ms at full pace.
        let hints: Vec<Duration> = (0..200).map(|_| calendar.refuse(now, 10, 0.5)).collect();
        assert_eq!(hints[0], MIN_HINT, "the first slot is soon: the shortest hint");
        assert_eq!(hints[29], 300 * MS);
        assert_eq!(hints[199], 2000 * MS, "the 200th refused agent comes back after 199 others");
        assert!(hints.windows(2).all(|pair| pair[0] <= pair[1]), "later refusals, later slots");
    }

    #[test]
    fn the_calendar_drains_as_time_passes() {
        let now = Instant::now();
        let mut calendar = Calendar::new(100 * MS);
        for _ in 0..100 {
            calendar.refuse(now, 10, 0.5);
        }
        assert_eq!(calendar.refuse(now + 500 * MS, 10, 0.5), 510 * MS, "half the queue served");
        assert_eq!(calendar.refuse(now + 5000 * MS, 10, 0.5), MIN_HINT, "all served: soon again");
    }

    #[test]
    fn the_pace_follows_measured_registrations() {
        let mut calendar = Calendar::new(FIRST_GUESS);
        for _ in 0..200 {
            calendar.served(200 * MS);
        }
        let spacing = calendar.spacing(4);
        assert!(spacing > 49 * MS && spacing < 51 * MS, "{spacing:?} (smoothed in floating point)");
        assert_eq!(Calendar::new(10 * MS).spacing(0), 10 * MS, "no slots counts as one");
    }

    #[test]
    fn hints_are_jittered_and_capped() {
        assert_eq!(pushback(1000 * MS, 0.0), 900 * MS);
        assert_eq!(pushback(1000 * MS, 1.0), 1100 * MS);
        assert_eq!(pushback(1000 * MS, 7.0), 1100 * MS, "draws are clamped");
        assert_eq!(pushback(Duration::ZERO, 0.5), MIN_HINT);
        assert_eq!(pushback(Duration::from_secs(3600), 0.5), MAX_HINT);
        let now = Instant::now();
        let mut calendar = Calendar::new(Duration::from_secs(1));
        let last = (0..1000).map(|_| calendar.refuse(now, 1, 1.0)).last();
        assert_eq!(last, Some(MAX_HINT), "a long calendar is capped");
    }
}
