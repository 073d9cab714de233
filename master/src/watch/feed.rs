//! The watch task every master runs: it follows the recorded feed (every
//! [`FOLLOW_INTERVAL`]) and, on the reconciling master, writes it — at most every
//! [`FEED_INTERVAL`], sooner when woken — reading the store, diffing against the view and
//! recording the changes. It also drops tombstones older than [`TOMBSTONE_RETENTION`].

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

/// Runs until the process ends.
pub async fn run(store: Store, hub: WatchHub, leader: watch::Receiver<bool>, route_quota: u32) {
    let mut follow_tick = tokio::time::interval(FOLLOW_INTERVAL);
    follow_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_pass: Option<Instant> = None;
    let mut last_compaction = Instant::now();
    let mut failing = false;
    loop {
        let woken = tokio::select! {
            _ = follow_tick.tick() => false,
            _ = hub.wake.notified() => {
                tokio::time::sleep(GATHER).await;
                true
            }
        };
        let leading = *leader.borrow();
        let due = last_pass.is_none_or(|at| at.elapsed() >= FEED_INTERVAL);
        let outcome = if leading && (woken || due) {
            last_pass = Some(Instant::now());
            pass(&store, &hub, route_quota).await
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
