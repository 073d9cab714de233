//! Event retention: stored agent events older than `--event-retention` are
//! deleted, a bounded batch at a time, once an hour (and at start), so the
//! table holds a window of history instead of growing for ever. Heartbeats
//! keep no row at all ([`crate::store::PROGRESS_ONLY_KINDS`]).

use crate::store::Store;
use std::time::Duration;

/// Rows deleted per statement (short transactions; the writer is never held up long).
const BATCH: u32 = 10_000;
/// How often old events are looked for.
const EVERY: Duration = Duration::from_secs(3600);

/// Runs for ever: deletes events received more than `retention` ago.
pub async fn run(store: Store, retention: Duration) {
    let mut interval = tokio::time::interval(EVERY);
    loop {
        interval.tick().await;
        let cutoff =
            crate::clock::now_millis().saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
        let mut deleted = 0u64;
        loop {
            match store.delete_events_before(cutoff, BATCH).await {
                Ok(n) => {
                    deleted += n;
                    if n < u64::from(BATCH) {
                        break;
                    }
                }
                Err(error) => {
                    tracing::warn!(message = "Deleting old events failed; retrying within the hour.", %error);
                    break;
                }
            }
            tokio::task::yield_now().await;
        }
        if deleted > 0 {
            tracing::info!(
                message = "Deleted events past their retention.",
                deleted,
                retention_days = retention.as_secs() / 86_400
            );
        }
    }
}
