//! Online/offline from heartbeats: a periodic pass marks agents offline when
//! nothing arrived from them within the heartbeat timeout. (Register and
//! every stored event mark them seen; see `store`.)

use crate::clock::now_millis;
use crate::store::Store;
use std::time::Duration;

/// Runs forever, checking every quarter of the timeout (at least once a second).
pub async fn run(store: Store, timeout: Duration) {
    let period = (timeout / 4).max(Duration::from_secs(1));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let cutoff = now_millis() - timeout.as_millis() as i64;
        match store.mark_stale_agents_offline(cutoff).await {
            Ok(ids) => {
                for id in ids {
                    tracing::info!(message = "Agent went offline (no heartbeat).", agent = %id, timeout_s = timeout.as_secs());
                }
            }
            Err(error) => tracing::warn!(message = "Liveness check failed.", %error),
        }
    }
}
