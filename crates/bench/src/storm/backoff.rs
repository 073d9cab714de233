//! The real agent's reconnect delays (agent/src/session.rs): doubling from the shortest to the
//! longest wait, each drawn from the upper half of its step ("equal jitter"). A retry hint from
//! the master replaces a step (`dockflare_common::retry_pushback::jittered`, as the agent does).
//! Pure: the random draw is an argument.

use std::time::Duration;

/// Reconnect delays, one step per failure that was not answered with a hint.
#[derive(Debug, Clone)]
pub struct Backoff {
    step: Duration,
    longest: Duration,
}

impl Backoff {
    pub fn new(shortest: Duration, longest: Duration) -> Backoff {
        Backoff { step: shortest.min(longest), longest }
    }

    /// The next delay (`unit` a draw in `[0, 1]`); the step doubles up to the longest.
    pub fn next_delay(&mut self, unit: f64) -> Duration {
        let delay = equal_jitter(self.step, unit);
        self.step = (self.step * 2).min(self.longest);
        delay
    }
}

/// `step` scaled into `[step / 2, step]` by `unit`.
pub fn equal_jitter(step: Duration, unit: f64) -> Duration {
    step / 2 + step.mul_f64(unit.clamp(0.0, 1.0) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_longest_within_the_upper_half_of_each_step() {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(4));
        let at_top: Vec<Duration> = (0..8).map(|_| backoff.next_delay(1.0)).collect();
        let ms = |v: &[u64]| v.iter().map(|m| Duration::from_millis(*m)).collect::<Vec<_>>();
        assert_eq!(at_top, ms(&[200, 400, 800, 1600, 3200, 4000, 4000, 4000]));
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(4));
        assert_eq!(backoff.next_delay(0.0), Duration::from_millis(100));
        assert_eq!(backoff.next_delay(0.5), Duration::from_millis(300));
    }
}
