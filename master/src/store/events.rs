//! Agent events, written in batches: one transaction stores many events of
//! many agents, advances each agent's `last_event_id` and `last_seen_at`
//! (an offline agent that sends events is online again), and settles the
//! commands that command_result events acknowledge.

use super::containers::{self, ContainerChangeEntry};
use super::{to_i64, to_u64, Store, StoreError};
use crate::model::{STATUS_OFFLINE, STATUS_ONLINE};
use sqlx::Row;
use std::collections::HashMap;
use std::collections::HashSet;

/// Rows per multi-row INSERT. SQLite looks bind parameters up by name in a
/// list (cost grows with the square of the count), so its statements stay
/// small; PostgreSQL takes large ones well (below its 65535 parameters).
const SQLITE_ROWS_PER_INSERT: usize = 64;
const POSTGRES_ROWS_PER_INSERT: usize = 500;

/// One event as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub agent_id: String,
    pub event_id: u64,
    pub kind: String,
    pub occurred_at: i64,
    pub received_at: i64,
    /// The encoded `dockflare.v1.AgentEvent`.
    pub payload: Vec<u8>,
}

/// A command acknowledgement carried by a command_result event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandAck {
    pub agent_id: String,
    pub sequence: u64,
    pub command_id: String,
    pub success: bool,
    pub error: String,
    pub at: i64,
}

/// Event kinds that keep no history row: they only move the agent's last event id and
/// last-seen time (a heartbeat every 10 s would otherwise be ~8,600 rows per agent and day).
pub const PROGRESS_ONLY_KINDS: &[&str] = &["heartbeat"];

/// What one write transaction stores.
#[derive(Debug, Default)]
pub struct EventBatch {
    pub events: Vec<StoredEvent>,
    pub acks: Vec<CommandAck>,
    /// Container changes, in event order; applied only for events stored
    /// now (not for duplicates of events stored before).
    pub container_changes: Vec<ContainerChangeEntry>,
}

impl EventBatch {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.acks.is_empty() && self.container_changes.is_empty()
    }
}

/// The event kind whose latest one per agent is kept as its connector's state.
pub const CONNECTOR_KIND: &str = "tunnel_status";

pub(super) fn placeholders(rows: usize, columns: usize) -> String {
    let mut text = String::with_capacity(rows * columns * 5);
    for row in 0..rows {
        if row > 0 {
            text.push(',');
        }
        text.push('(');
        for column in 0..columns {
            if column > 0 {
                text.push(',');
            }
            text.push('$');
            text.push_str(&(row * columns + column + 1).to_string());
        }
        text.push(')');
    }
    text
}

impl Store {
    /// Stores a batch atomically. Events already stored (same agent and id) are skipped.
    /// Whether the reported containers changed (what a reconcile pass reads).
    pub async fn write_event_batch(&self, batch: &EventBatch) -> Result<bool, StoreError> {
        if batch.is_empty() {
            return Ok(false);
        }
        let mut tx = self.writers.begin().await?;
        let track_inserted = !batch.container_changes.is_empty();
        let mut inserted: HashSet<(String, i64)> = HashSet::new();
        let rows_per_insert = match self.backend {
            super::Backend::Sqlite => SQLITE_ROWS_PER_INSERT,
            super::Backend::Postgres => POSTGRES_ROWS_PER_INSERT,
        };
        let history: Vec<&StoredEvent> =
            batch.events.iter().filter(|event| !PROGRESS_ONLY_KINDS.contains(&event.kind.as_str())).collect();
        for chunk in history.chunks(rows_per_insert) {
            let sql = format!(
                "INSERT INTO agent_events (agent_id, event_id, kind, occurred_at, received_at, payload) VALUES {} \
                 ON CONFLICT (agent_id, event_id) DO NOTHING{}",
                placeholders(chunk.len(), 6),
                if track_inserted { " RETURNING agent_id, event_id" } else { "" }
            );
            let mut query = sqlx::query(&sql);
            for event in chunk {
                query = query
                    .bind(event.agent_id.as_str())
                    .bind(to_i64(event.event_id, "event_id")?)
                    .bind(event.kind.as_str())
                    .bind(event.occurred_at)
                    .bind(event.received_at)
                    .bind(event.payload.as_slice());
            }
            if track_inserted {
                for row in query.fetch_all(&mut *tx).await? {
                    inserted.insert((row.try_get("agent_id")?, row.try_get("event_id")?));
                }
            } else {
                query.execute(&mut *tx).await?;
            }
        }
        let mut containers_changed = false;
        for entry in &batch.container_changes {
            if inserted.contains(&(entry.agent_id.clone(), to_i64(entry.event_id, "event_id")?)) {
                containers_changed |= containers::apply(&mut tx, &entry.agent_id, &entry.change).await?;
            }
        }

        let mut progress: HashMap<&str, (u64, i64)> = HashMap::new();
        for event in &batch.events {
            let entry = progress.entry(event.agent_id.as_str()).or_insert((0, 0));
            entry.0 = entry.0.max(event.event_id);
            entry.1 = entry.1.max(event.received_at);
        }
        // One statement per chunk of agents, in id order (concurrent masters lock rows alike).
        // An event is a sign of life: an agent the liveness pass marked offline (say, while its
        // events waited for the database) is online again. Revoked agents stay revoked.
        let mut progress: Vec<(&str, (u64, i64))> = progress.into_iter().collect();
        progress.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for chunk in progress.chunks(rows_per_insert) {
            let sql = format!(
                "UPDATE agents SET \
                 last_event_id = CASE WHEN agents.last_event_id < v.column2 THEN v.column2 ELSE agents.last_event_id END, \
                 last_seen_at = CASE WHEN agents.last_seen_at IS NULL OR agents.last_seen_at < v.column3 \
                     THEN v.column3 ELSE agents.last_seen_at END, \
                 status = CASE WHEN agents.status = '{STATUS_OFFLINE}' THEN '{STATUS_ONLINE}' ELSE agents.status END \
                 FROM (VALUES {}) AS v WHERE agents.id = v.column1",
                placeholders(chunk.len(), 3)
            );
            let mut query = sqlx::query(&sql);
            for (agent_id, (last_event_id, seen_at)) in chunk {
                query = query.bind(*agent_id).bind(to_i64(*last_event_id, "event_id")?).bind(*seen_at);
            }
            query.execute(&mut *tx).await?;
        }

        let mut acked: HashMap<&str, u64> = HashMap::new();
        for ack in &batch.acks {
            let state = if ack.success { "acked" } else { "failed" };
            let settled = sqlx::query(
                "UPDATE agent_commands SET state = $4, error = $5, acked_at = $6 \
                 WHERE agent_id = $1 AND sequence = $2 AND id = $3 AND state IN ('queued', 'delivered')",
            )
            .bind(ack.agent_id.as_str())
            .bind(to_i64(ack.sequence, "sequence")?)
            .bind(ack.command_id.as_str())
            .bind(state)
            .bind(ack.error.as_str())
            .bind(ack.at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            // Only an ack that settled its command moves the cursor: one whose
            // id does not match the sequence must not hide that command from
            // the replay. (A repeated ack settles nothing, but the first one
            // already moved the cursor.)
            if settled > 0 {
                let entry = acked.entry(ack.agent_id.as_str()).or_insert(0);
                *entry = (*entry).max(ack.sequence);
            }
        }
        for (agent_id, sequence) in acked {
            sqlx::query(
                "UPDATE agents SET last_acked_command_seq = $2 \
                 WHERE id = $1 AND last_acked_command_seq < $2 AND last_command_seq >= $2",
            )
            .bind(agent_id)
            .bind(to_i64(sequence, "sequence")?)
            .execute(&mut *tx)
            .await?;
        }
        // The latest connector report of each agent (what WatchChanges shows as its connector).
        let mut connectors: HashMap<&str, &StoredEvent> = HashMap::new();
        for event in batch.events.iter().filter(|event| event.kind == CONNECTOR_KIND) {
            let entry = connectors.entry(event.agent_id.as_str()).or_insert(event);
            if event.event_id > entry.event_id {
                *entry = event;
            }
        }
        for event in connectors.into_values() {
            sqlx::query(
                "INSERT INTO agent_connectors (agent_id, event_id, reported_at, payload) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (agent_id) DO UPDATE SET event_id = excluded.event_id, \
                 reported_at = excluded.reported_at, payload = excluded.payload \
                 WHERE agent_connectors.event_id < excluded.event_id",
            )
            .bind(event.agent_id.as_str())
            .bind(to_i64(event.event_id, "event_id")?)
            .bind(event.received_at)
            .bind(event.payload.as_slice())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(containers_changed)
    }

    /// Deletes up to `limit` events received before `cutoff` (Unix ms); returns how many went.
    /// The agents' cursors are untouched: an id once stored stays acknowledged.
    pub async fn delete_events_before(&self, cutoff: i64, limit: u32) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM agent_events WHERE (agent_id, event_id) IN \
             (SELECT agent_id, event_id FROM agent_events WHERE received_at < $1 LIMIT $2)",
        )
        .bind(cutoff)
        .bind(i64::from(limit))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Stored events of an agent with an id above `after`, oldest first.
    pub async fn list_events(&self, agent_id: &str, after: u64, limit: u32) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT agent_id, event_id, kind, occurred_at, received_at, payload FROM agent_events \
             WHERE agent_id = $1 AND event_id > $2 ORDER BY event_id LIMIT $3",
        )
        .bind(agent_id)
        .bind(to_i64(after, "event_id")?)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(StoredEvent {
                    agent_id: row.try_get("agent_id")?,
                    event_id: to_u64(row.try_get("event_id")?, "event_id")?,
                    kind: row.try_get("kind")?,
                    occurred_at: row.try_get("occurred_at")?,
                    received_at: row.try_get("received_at")?,
                    payload: row.try_get("payload")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_number_rows_then_columns() {
        assert_eq!(super::placeholders(2, 3), "($1,$2,$3),($4,$5,$6)");
    }
}
