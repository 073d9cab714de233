//! When each command reached a fake agent, by command id, matched with whoever waits for it:
//! the arrival side is a [`crate::fake_agent::CommandHook`], the waiting side a future that
//! resolves at once when the command came first. No polling.

use anyhow::{anyhow, Result};
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;
use tokio::sync::oneshot;

/// Arrival times by command id.
#[derive(Default)]
pub struct Arrivals {
    slots: Mutex<HashMap<String, Slot>>,
}

enum Slot {
    Arrived(Instant),
    Waiting(oneshot::Sender<Instant>),
}

impl Arrivals {
    fn slots(&self) -> MutexGuard<'_, HashMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records that command `command_id` arrived `at` (call it from the agent's command hook).
    pub fn arrived(&self, command_id: &str, at: Instant) {
        let mut slots = self.slots();
        match slots.remove(command_id) {
            Some(Slot::Waiting(waiter)) => {
                let _ = waiter.send(at);
            }
            _ => {
                slots.insert(command_id.to_string(), Slot::Arrived(at));
            }
        }
    }

    /// When command `command_id` arrived; waits for it if it has not yet.
    pub async fn wait(&self, command_id: &str) -> Result<Instant> {
        let receiver = {
            let mut slots = self.slots();
            if let Some(Slot::Arrived(at)) = slots.get(command_id) {
                let at = *at;
                slots.remove(command_id);
                return Ok(at);
            }
            let (waiter, receiver) = oneshot::channel();
            slots.insert(command_id.to_string(), Slot::Waiting(waiter));
            receiver
        };
        receiver.await.map_err(|_| anyhow!("command {command_id}: waiter dropped"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_arrival_before_or_after_the_wait_is_matched() -> Result<()> {
        let arrivals = std::sync::Arc::new(Arrivals::default());
        let early = Instant::now();
        arrivals.arrived("a", early);
        assert_eq!(arrivals.wait("a").await?, early);
        let waiting = tokio::spawn({
            let arrivals = arrivals.clone();
            async move { arrivals.wait("b").await }
        });
        tokio::task::yield_now().await;
        let late = Instant::now();
        arrivals.arrived("b", late);
        assert_eq!(waiting.await??, late);
        Ok(())
    }
}
