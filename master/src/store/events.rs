//! Agent events, written in batches: one transaction stores many events of
//! many agents, advances each agent's `last_event_id` and `last_seen_at`
//! (`agent_progress`; an offline agent that sends events is online again),
//! and settles the commands that command_result events acknowledge.

use super::bulk::{self, Column};
use super::containers::{self, ContainerChangeEntry};
use super::{to_i64, to_u64, Backend, Store, StoreError};
use crate::model::{STATUS_OFFLINE, STATUS_ONLINE};
use serde_json::Value;
use sqlx::Row;
use std::collections::HashMap;
use std::collections::HashSet;

/// How long an event transaction runs before it gives way to a waiting command (SQLite).
pub const YIELD_AFTER: std::time::Duration = std::time::Duration::from_millis(5);

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
    /// Connector states reported (tunnel_status events), in event order.
    pub connector_reports: Vec<ConnectorReport>,
}

/// An agent's connector as one event reported it: the row `agent_connectors` keeps of the latest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorReport {
    pub agent_id: String,
    pub event_id: u64,
    pub received_at: i64,
    /// The state alone, equal bytes for an equal state (no event id, no time): what the row
    /// keeps, and what tells a repeated report from a change.
    pub state: Vec<u8>,
}

impl EventBatch {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.acks.is_empty() && self.container_changes.is_empty()
    }
}

/// The history rows of a batch in one statement ([`bulk`]); with `track_inserted`, the
/// (agent, event id) of those not stored before.
async fn insert_history(
    tx: &mut sqlx::AnyConnection,
    backend: Backend,
    history: &[&StoredEvent],
    track_inserted: bool,
) -> Result<HashSet<(String, i64)>, StoreError> {
    let mut inserted = HashSet::new();
    if history.is_empty() {
        return Ok(inserted);
    }
    let rows = history.iter().map(|event| {
        vec![
            Value::from(event.agent_id.as_str()),
            Value::from(event.event_id),
            Value::from(event.kind.as_str()),
            Value::from(event.occurred_at),
            Value::from(event.received_at),
            bulk::blob(&event.payload),
        ]
    });
    // `WHERE true`: SQLite's parser needs it between a SELECT and ON CONFLICT.
    let sql = format!(
        "INSERT INTO agent_events (agent_id, event_id, kind, occurred_at, received_at, payload) {} WHERE true \
         ON CONFLICT (agent_id, event_id) DO NOTHING{}",
        bulk::select_rows(backend, &[Column::Text, Column::Int, Column::Text, Column::Int, Column::Int, Column::Blob]),
        if track_inserted { " RETURNING agent_id, event_id" } else { "" }
    );
    let query = sqlx::query(&sql).bind(bulk::rows_json(rows));
    if track_inserted {
        for row in query.fetch_all(&mut *tx).await? {
            inserted.insert((row.try_get("agent_id")?, row.try_get("event_id")?));
        }
    } else {
        query.execute(&mut *tx).await?;
    }
    Ok(inserted)
}

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
        let (_, containers_changed) = self.write_event_chunks(std::slice::from_ref(batch), YIELD_AFTER).await?;
        Ok(containers_changed)
    }

    /// Writes `chunks` in order, in one transaction while nothing else is urgent: returns how
    /// many are stored (a prefix) and whether the reported containers changed.
    ///
    /// On SQLite, whose one writer connection this transaction holds, commands ride along
    /// ([`super::ride_along`]): after each chunk the commands handed in meanwhile are written
    /// in the same transaction, and an operator's makes it commit right after them (the caller
    /// writes the remaining chunks in the next transaction). A command then waits for a chunk
    /// and one commit, shared with the events. A command that waits for the connection itself
    /// ([`Store::waiting_for_writer`], it came before the transaction opened) cuts the
    /// transaction short once it has run `yield_after` ([`YIELD_AFTER`]).
    pub async fn write_event_chunks(
        &self,
        chunks: &[EventBatch],
        yield_after: std::time::Duration,
    ) -> Result<(usize, bool), StoreError> {
        let chunks: Vec<&EventBatch> = chunks.iter().filter(|chunk| !chunk.is_empty()).collect();
        if chunks.is_empty() {
            return Ok((0, false));
        }
        let sqlite = self.backend == super::Backend::Sqlite;
        // Open before the connection is ours: a command queued while this transaction waits for
        // it (behind another writer) rides along too, instead of queueing for the connection
        // behind it. Dropped on every way out: riders still waiting then write on their own.
        let _inbox = sqlite.then(|| self.ride_along.open());
        let mut tx = self.writer.begin().await?;
        let began = std::time::Instant::now();
        let mut containers_changed = false;
        // Riders written and waiting for the commit (their outcome is told only after it).
        let mut written = Vec::new();
        for (index, chunk) in chunks.iter().enumerate() {
            containers_changed |= self.write_chunk(&mut tx, chunk).await?;
            let last = index + 1 == chunks.len();
            if !sqlite {
                continue;
            }
            let give_way = began.elapsed() >= yield_after && self.commands_waiting() > 0;
            let boarding = self.ride_along.board(last, give_way);
            for rider in boarding.riders {
                let outcome = super::commands::write_command_in(&mut tx, &rider.write).await?;
                written.push((rider.reply, outcome));
            }
            if boarding.commit_now && !last {
                tx.commit().await?;
                metrics::counter!("dockflare_event_transactions_yielded_total").increment(1);
                super::ride_along::tell_riders(written);
                return Ok((index + 1, containers_changed));
            }
        }
        tx.commit().await?;
        super::ride_along::tell_riders(written);
        Ok((chunks.len(), containers_changed))
    }

    /// One chunk's statements, in the caller's transaction; whether reported containers changed.
    async fn write_chunk(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        batch: &EventBatch,
    ) -> Result<bool, StoreError> {
        let track_inserted = !batch.container_changes.is_empty();
        let history: Vec<&StoredEvent> =
            batch.events.iter().filter(|event| !PROGRESS_ONLY_KINDS.contains(&event.kind.as_str())).collect();
        let inserted = insert_history(tx, self.backend, &history, track_inserted).await?;
        let mut containers_changed = false;
        for entry in &batch.container_changes {
            if inserted.contains(&(entry.agent_id.clone(), to_i64(entry.event_id, "event_id")?)) {
                containers_changed |= containers::apply(tx, &entry.agent_id, &entry.change).await?;
            }
        }

        // The latest connector report of each agent (what WatchChanges shows as its connector).
        let mut connectors: HashMap<&str, &ConnectorReport> = HashMap::new();
        for report in &batch.connector_reports {
            let entry = connectors.entry(report.agent_id.as_str()).or_insert(report);
            if report.event_id > entry.event_id {
                *entry = report;
            }
        }
        // One upsert per chunk of agents (a statement per agent costs a round trip to the
        // database each: thousands per batch at 10,000 agents). A row changes only when the
        // state does: the agent repeats an unchanged status every 30 s, and rewriting thousands
        // of rows with what they hold costs the writer a scattered page each. The row's
        // `reported_at` is thus when the agent first reported the state it is in.
        let mut connectors: Vec<&ConnectorReport> = connectors.into_values().collect();
        connectors.sort_unstable_by(|a, b| a.agent_id.cmp(&b.agent_id));
        let upsert = |values: &str| {
            format!(
                "INSERT INTO agent_connectors (agent_id, event_id, reported_at, payload) {values} \
                 ON CONFLICT (agent_id) DO UPDATE SET event_id = excluded.event_id, \
                 reported_at = excluded.reported_at, payload = excluded.payload \
                 WHERE agent_connectors.event_id < excluded.event_id \
                 AND agent_connectors.payload <> excluded.payload"
            )
        };
        if !connectors.is_empty() {
            let rows = connectors.iter().map(|report| {
                vec![
                    Value::from(report.agent_id.as_str()),
                    Value::from(report.event_id),
                    Value::from(report.received_at),
                    bulk::blob(&report.state),
                ]
            });
            // `WHERE true`: SQLite's parser needs it between a SELECT and ON CONFLICT.
            let values = format!(
                "{} WHERE true",
                bulk::select_rows(self.backend, &[Column::Text, Column::Int, Column::Int, Column::Blob])
            );
            sqlx::query(&upsert(&values)).bind(bulk::rows_json(rows)).execute(&mut **tx).await?;
        }
        let mut progress: HashMap<&str, (u64, i64)> = HashMap::new();
        for event in &batch.events {
            let entry = progress.entry(event.agent_id.as_str()).or_insert((0, 0));
            entry.0 = entry.0.max(event.event_id);
            entry.1 = entry.1.max(event.received_at);
        }
        // One statement per chunk of agents, in id order (concurrent masters lock rows alike), on
        // the narrow progress rows: the agents' own rows, which commands and registrations write,
        // are not locked by a batch.
        let mut progress: Vec<(&str, (u64, i64))> = progress.into_iter().collect();
        progress.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let advance = |values: &str| {
            "UPDATE agent_progress SET \
             last_event_id = CASE WHEN agent_progress.last_event_id < v.c1 THEN v.c1 ELSE agent_progress.last_event_id END, \
             last_seen_at = CASE WHEN agent_progress.last_seen_at IS NULL OR agent_progress.last_seen_at < v.c2 \
                 THEN v.c2 ELSE agent_progress.last_seen_at END \
             FROM (VALUES_SQL) AS v WHERE agent_progress.agent_id = v.c0"
                .replace("VALUES_SQL", values)
        };
        // An event is a sign of life: an agent the liveness pass marked offline (say, while its
        // events waited for the database) is online again. Revoked agents stay revoked. Only the
        // rows of offline agents are written (usually none).
        let back_online = |ids: &str| {
            format!("UPDATE agents SET status = '{STATUS_ONLINE}' WHERE status = '{STATUS_OFFLINE}' AND id IN {ids}")
        };
        if !progress.is_empty() {
            let rows = progress.iter().map(|(agent_id, (last_event_id, seen_at))| {
                vec![Value::from(*agent_id), Value::from(*last_event_id), Value::from(*seen_at)]
            });
            sqlx::query(&advance(&bulk::select_rows(self.backend, &[Column::Text, Column::Int, Column::Int])))
                .bind(bulk::rows_json(rows))
                .execute(&mut **tx)
                .await?;
            let ids = Value::Array(progress.iter().map(|(agent_id, _)| Value::from(*agent_id)).collect());
            sqlx::query(&back_online(bulk::text_list(self.backend))).bind(ids.to_string()).execute(&mut **tx).await?;
        }

        let mut acked: HashMap<&str, u64> = HashMap::new();
        for ack in &batch.acks {
            let state = if ack.success { "acked" } else { "failed" };
            let settled = sqlx::query(
                // An acknowledged command was delivered, whether or not its delivery record (written
                // off the stream's path, crate::delivery_log) is stored yet.
                "UPDATE agent_commands SET state = $4, error = $5, acked_at = $6, \
                 delivery_count = CASE WHEN delivery_count = 0 THEN 1 ELSE delivery_count END, \
                 delivered_at = COALESCE(delivered_at, $6) \
                 WHERE agent_id = $1 AND sequence = $2 AND id = $3 AND state IN ('queued', 'delivered')",
            )
            .bind(ack.agent_id.as_str())
            .bind(to_i64(ack.sequence, "sequence")?)
            .bind(ack.command_id.as_str())
            .bind(state)
            .bind(ack.error.as_str())
            .bind(ack.at)
            .execute(&mut **tx)
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
            .execute(&mut **tx)
            .await?;
        }
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
        .execute(&self.writer)
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
