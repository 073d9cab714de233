//! The watch task every master runs: it follows the recorded feed (every
//! [`FOLLOW_INTERVAL`]) and, on the reconciling master, writes it — every [`FEED_INTERVAL`],
//! sooner when woken — reading the store, diffing against the view and recording the changes.
//! A pass reads the whole fleet, so passes are paced by their own cost ([`pass_due`]): a fleet
//! of thousands reconnecting at once wakes the feed with every registration, and it must not
//! spend the master's CPU rereading it back to back. It also drops tombstones older than
//! [`TOMBSTONE_RETENTION`].

use super::{follow, objects, WatchHub};
use crate::clock::now_millis;
use crate::store::{Store, StoreError};
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(250);
pub const FEED_INTERVAL: Duration = Duration::from_secs(1);
/// After a wake-up, how long to let more changes gather.
const GATHER: Duration = Duration::from_millis(50);
/// Deleted objects are remembered this long: a watcher away for less resumes.
pub const TOMBSTONE_RETENTION: Duration = Duration::from_secs(3600);
const COMPACT_EVERY: Duration = Duration::from_secs(60);
/// The gap after a pass, in multiples of its duration: passes take at most a fifth of a core.
const PACE: u32 = 4;

/// Whether a pass is due: `since_last` the time since the last one began (`None`: none yet),
/// which took `last_took`; `woken` when a change is waiting to be told.
pub fn pass_due(since_last: Option<Duration>, last_took: Duration, woken: bool) -> bool {
    let Some(since) = since_last else { return true };
    let gap = (last_took * PACE).max(GATHER);
    since >= gap && (woken || since >= FEED_INTERVAL)
}

/// Runs until the process ends.
pub async fn run(store: Store, hub: WatchHub, leader: watch::Receiver<bool>, route_quota: u32) {
    let mut follow_tick = tokio::time::interval(FOLLOW_INTERVAL);
    follow_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_pass: Option<(Instant, Duration)> = None;
    let mut last_compaction = Instant::now();
    let mut failing = false;
    let mut woken = false;
    loop {
        woken |= tokio::select! {
            _ = follow_tick.tick() => false,
            _ = hub.wake.notified() => {
                tokio::time::sleep(GATHER).await;
                true
            }
        };
        let leading = *leader.borrow();
        let (since_last, last_took) = match last_pass {
            Some((at, took)) => (Some(at.elapsed()), took),
            None => (None, Duration::ZERO),
        };
        let outcome = if leading && pass_due(since_last, last_took, woken) {
            woken = false;
            let started = Instant::now();
            let outcome = pass(&store, &hub, route_quota).await;
            last_pass = Some((started, started.elapsed()));
            metrics::histogram!("dockflare_watch_pass_seconds").record(started.elapsed().as_secs_f64());
            outcome
        } else {
            follow::catch_up(&store, &hub).await
        };
        match outcome {
            Ok(()) if failing => {
                failing = false;
                tracing::info!(message = "The watch feed works again.");
            }
            Ok(()) => {}
            Err(error) if !failing => {
                failing = true;
                tracing::warn!(message = "The watch feed cannot read or write the database; retrying.", %error);
            }
            Err(_) => {}
        }
        if leading && last_compaction.elapsed() >= COMPACT_EVERY {
            last_compaction = Instant::now();
            let cutoff = now_millis() - TOMBSTONE_RETENTION.as_millis() as i64;
            match store.compact_watch(cutoff).await {
                Ok(0) => {}
                Ok(removed) => tracing::debug!(message = "Compacted the watch feed.", removed),
                Err(error) => tracing::warn!(message = "Could not compact the watch feed.", %error),
            }
        }
    }
}

/// One pass of the writer: catch up, read, diff, record, catch up.
async fn pass(store: &Store, hub: &WatchHub, route_quota: u32) -> Result<(), StoreError> {
    follow::catch_up(store, hub).await?;
    let live = objects::read(store, route_quota).await?;
    let (_, writes) = hub.diff(&live);
    if writes.is_empty() {
        return Ok(());
    }
    store.append_watch_changes(&writes, now_millis()).await?;
    metrics::counter!("dockflare_watch_changes_total").increment(writes.len() as u64);
    follow::catch_up(store, hub).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_first_pass_is_due_at_once() {
        assert!(pass_due(None, Duration::ZERO, false));
    }

    #[test]
    fn a_wake_up_brings_a_cheap_pass_forward() {
        assert!(pass_due(Some(60 * MS), 10 * MS, true));
        assert!(!pass_due(Some(60 * MS), 10 * MS, false), "not woken: once a second");
        assert!(pass_due(Some(FEED_INTERVAL), 10 * MS, false));
        assert!(!pass_due(Some(10 * MS), MS, true), "never sooner than the gathering time");
    }

    #[test]
    fn an_expensive_pass_is_followed_by_a_longer_gap() {
        let took = 500 * MS;
        assert!(!pass_due(Some(1900 * MS), took, true), "woken, but within 4 x 500 ms");
        assert!(pass_due(Some(2000 * MS), took, true));
        assert!(!pass_due(Some(1500 * MS), took, false), "the periodic pass waits for the gap too");
    }
}
