//! What one agent's event stream may cost the master: each event spends its
//! size in bytes (at least [`MIN_EVENT_COST`]: every event is work and
//! maybe a row) from a per-agent bucket refilled at `--agent-event-rate`
//! bytes per second, holding at most `--agent-event-burst` (a reconnect's
//! full status report fits). An agent over budget has its stream read later
//! — TCP and HTTP/2 flow control push back on it alone — and the others are
//! not slowed. Throttling is logged at most once a minute per agent.

use governor::clock::DefaultClock;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The least an event costs, in bytes.
pub const MIN_EVENT_COST: usize = 1024;
/// How often one agent's throttling is logged at most.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// The per-agent budgets (shared by every stream). Cloning shares them.
#[derive(Clone)]
pub struct AgentBudget {
    limiter: Arc<RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock>>,
    burst: u32,
    logged: Arc<Mutex<HashMap<String, Instant>>>,
}

impl std::fmt::Debug for AgentBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentBudget").field("burst", &self.burst).finish_non_exhaustive()
    }
}

impl AgentBudget {
    /// `bytes_per_second` sustained, `burst` at once (both at least [`MIN_EVENT_COST`]).
    pub fn new(bytes_per_second: u32, burst: u32) -> AgentBudget {
        let floor = MIN_EVENT_COST as u32;
        let rate = NonZeroU32::new(bytes_per_second.max(floor)).unwrap_or(NonZeroU32::MIN);
        let burst = burst.max(floor);
        let quota = Quota::per_second(rate).allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
        AgentBudget { limiter: Arc::new(RateLimiter::keyed(quota)), burst, logged: Arc::default() }
    }

    /// What an event of `bytes` costs. Pure.
    pub fn cost(&self, bytes: usize) -> u32 {
        u32::try_from(bytes.max(MIN_EVENT_COST)).unwrap_or(u32::MAX).min(self.burst)
    }

    /// Waits until `agent_id` can afford an event of `bytes`; returns how long it waited.
    pub async fn spend(&self, agent_id: &str, bytes: usize) -> Duration {
        let cost = NonZeroU32::new(self.cost(bytes)).unwrap_or(NonZeroU32::MIN);
        let key = agent_id.to_string();
        if self.limiter.check_key_n(&key, cost).is_ok_and(|outcome| outcome.is_ok()) {
            return Duration::ZERO;
        }
        let started = Instant::now();
        let _ = self.limiter.until_key_n_ready(&key, cost).await;
        let waited = started.elapsed();
        self.log_throttled(agent_id, waited);
        waited
    }

    fn log_throttled(&self, agent_id: &str, waited: Duration) {
        let mut logged = self.logged.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        if logged.get(agent_id).is_some_and(|at| now.duration_since(*at) < LOG_EVERY) {
            return;
        }
        if logged.len() > 100_000 {
            logged.retain(|_, at| now.duration_since(*at) < LOG_EVERY);
            self.limiter.retain_recent();
        }
        logged.insert(agent_id.to_string(), now);
        tracing::warn!(
            message = "Agent's events are throttled (over --agent-event-rate).",
            agent = %agent_id,
            waited_ms = waited.as_millis() as u64,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_agent_over_budget_waits_and_another_does_not() {
        let budget = AgentBudget::new(256 * 1024, 128 * 1024);
        assert_eq!(budget.cost(10), 1024);
        assert_eq!(budget.cost(10 << 20), 128 * 1024, "capped at the burst");
        // The burst goes at once, then the rate: 128 KiB more at 256 KiB/s is ~0.5 s.
        assert_eq!(budget.spend("flood", 128 * 1024).await, Duration::ZERO);
        let flooding = budget.clone();
        let flood = tokio::spawn(async move { flooding.spend("flood", 128 * 1024).await });
        assert_eq!(budget.spend("quiet", 100).await, Duration::ZERO, "another agent is not held up");
        let waited = flood.await.unwrap_or_default();
        assert!(waited >= Duration::from_millis(300), "the flood waited {waited:?}");
    }
}
