//! The per-agent command log: commands are stored with a gap-free per-agent
//! sequence before they are sent, marked delivered when written to the
//! agent's stream, and settled (acked or failed) by the agent's
//! command_result event (see `events`).

use super::ride_along::{CommandWrite, Offer};
use super::{to_i64, to_u64, Store, StoreError};
use crate::model::STATUS_REVOKED;
use sqlx::Row;

/// Delivery state of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandState {
    Queued,
    Delivered,
    Acked,
    Failed,
}

impl CommandState {
    pub fn as_str(self) -> &'static str {
        match self {
            CommandState::Queued => "queued",
            CommandState::Delivered => "delivered",
            CommandState::Acked => "acked",
            CommandState::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Result<CommandState, StoreError> {
        Ok(match text {
            "queued" => CommandState::Queued,
            "delivered" => CommandState::Delivered,
            "acked" => CommandState::Acked,
            "failed" => CommandState::Failed,
            other => return Err(StoreError::Corrupt(format!("unknown command state {other:?}"))),
        })
    }
}

/// One entry of an agent's command log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRow {
    pub agent_id: String,
    pub sequence: u64,
    pub id: String,
    pub kind: String,
    /// The encoded `dockflare.v1.Command`.
    pub payload: Vec<u8>,
    pub state: CommandState,
    pub error: String,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
    pub acked_at: Option<i64>,
    pub delivery_count: u32,
}

/// Outcome of queueing a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Stored with this sequence.
    Queued(u64),
    UnknownAgent,
    RevokedAgent,
}

const COLUMNS: &str =
    "agent_id, sequence, id, kind, payload, state, error, created_at, delivered_at, acked_at, delivery_count";

fn command_from_row(row: &sqlx::any::AnyRow) -> Result<CommandRow, StoreError> {
    Ok(CommandRow {
        agent_id: row.try_get("agent_id")?,
        sequence: to_u64(row.try_get("sequence")?, "sequence")?,
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        payload: row.try_get("payload")?,
        state: CommandState::parse(&row.try_get::<String, _>("state")?)?,
        error: row.try_get("error")?,
        created_at: row.try_get("created_at")?,
        delivered_at: row.try_get("delivered_at")?,
        acked_at: row.try_get("acked_at")?,
        delivery_count: u32::try_from(row.try_get::<i64, _>("delivery_count")?).unwrap_or(u32::MAX),
    })
}

/// Commands `first..=last` of an agent, written to its stream at `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveredRun {
    pub agent_id: String,
    pub first: u64,
    pub last: u64,
    pub at: i64,
}

impl Store {
    /// Stores a command under the agent's next sequence (its payload built by `write.encode`
    /// once the sequence is known). On SQLite, while an event transaction holds the one writer
    /// connection, the command rides along in it ([`super::ride_along`]); an `urgent` one (an
    /// operator waits for it) makes that transaction commit right after it, or, when none is
    /// open, counts as waiting for the writer ([`Store::waiting_for_writer`]).
    pub async fn enqueue_command(&self, write: CommandWrite, urgent: bool) -> Result<Enqueued, StoreError> {
        let started = std::time::Instant::now();
        if self.backend == super::Backend::Sqlite {
            if let Offer::Taken(outcome) = self.ride_along.offer(write.clone(), urgent) {
                // A closed channel: the transaction failed; the command is written on its own.
                if let Ok(outcome) = outcome.await {
                    metrics::histogram!("dockflare_command_store_seconds", "with" => "events")
                        .record(started.elapsed().as_secs_f64());
                    return outcome;
                }
            }
        }
        let mut tx = if urgent {
            let _waiting = self.waiting_for_writer();
            self.writer.begin().await?
        } else {
            self.writer.begin().await?
        };
        let outcome = write_command(&mut tx, &write).await?;
        match outcome {
            Enqueued::Queued(_) => tx.commit().await?,
            Enqueued::UnknownAgent | Enqueued::RevokedAgent => tx.rollback().await?,
        }
        metrics::histogram!("dockflare_command_store_seconds", "with" => "alone")
            .record(started.elapsed().as_secs_f64());
        Ok(outcome)
    }

    /// Commands of an agent with a sequence above `after`, oldest first.
    pub async fn commands_after(&self, agent_id: &str, after: u64, limit: u32) -> Result<Vec<CommandRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM agent_commands WHERE agent_id = $1 AND sequence > $2 ORDER BY sequence LIMIT $3"
        ))
        .bind(agent_id)
        .bind(to_i64(after, "sequence")?)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(command_from_row).collect()
    }

    /// Records that each run of commands was written to its agent's stream, in one transaction.
    /// A record older than the command's `delivered_at` (its acknowledgement was stored first,
    /// and counted the delivery) changes nothing.
    pub async fn mark_commands_delivered(&self, runs: &[DeliveredRun]) -> Result<(), StoreError> {
        if runs.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer.begin().await?;
        for run in runs {
            sqlx::query(
                "UPDATE agent_commands SET delivery_count = delivery_count + 1, delivered_at = $4, \
                 state = CASE WHEN state = 'queued' THEN 'delivered' ELSE state END \
                 WHERE agent_id = $1 AND sequence >= $2 AND sequence <= $3 \
                 AND (delivered_at IS NULL OR delivered_at < $4)",
            )
            .bind(run.agent_id.as_str())
            .bind(to_i64(run.first, "sequence")?)
            .bind(to_i64(run.last, "sequence")?)
            .bind(run.at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Settles a command the master itself cannot deliver (its stored payload
    /// does not open): failed, with `error` for the operator. Returns whether
    /// the row was still unsettled (a settled one is left as it is).
    pub async fn fail_undeliverable_command(
        &self,
        agent_id: &str,
        sequence: u64,
        error: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE agent_commands SET state = 'failed', error = $3, acked_at = $4 \
             WHERE agent_id = $1 AND sequence = $2 AND state IN ('queued', 'delivered')",
        )
        .bind(agent_id)
        .bind(to_i64(sequence, "sequence")?)
        .bind(error)
        .bind(now)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Up to `limit` command rows after `after` (agent id, sequence), in that
    /// order, whatever their state: for one-off passes over the whole log.
    pub async fn command_rows_after(&self, after: (&str, u64), limit: u32) -> Result<Vec<CommandRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM agent_commands \
             WHERE agent_id > $1 OR (agent_id = $1 AND sequence > $2) \
             ORDER BY agent_id, sequence LIMIT $3"
        ))
        .bind(after.0)
        .bind(to_i64(after.1, "sequence")?)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(command_from_row).collect()
    }

    /// Replaces a row's payload if it is still `old`; returns whether it was.
    pub async fn replace_command_payload(
        &self,
        agent_id: &str,
        sequence: u64,
        old: &[u8],
        new: &[u8],
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE agent_commands SET payload = $4 WHERE agent_id = $1 AND sequence = $2 AND payload = $3",
        )
        .bind(agent_id)
        .bind(to_i64(sequence, "sequence")?)
        .bind(old)
        .bind(new)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() > 0)
    }
}

/// A command's statements, in the caller's transaction: the agent's next sequence and the row
/// under it. Nothing is written for an unknown or revoked agent (the caller rolls back).
async fn write_command(conn: &mut sqlx::AnyConnection, write: &CommandWrite) -> Result<Enqueued, StoreError> {
    let row = sqlx::query(
        "UPDATE agents SET last_command_seq = last_command_seq + 1 WHERE id = $1 \
         RETURNING last_command_seq, status",
    )
    .bind(write.agent_id.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(Enqueued::UnknownAgent);
    };
    if row.try_get::<String, _>("status")? == STATUS_REVOKED {
        return Ok(Enqueued::RevokedAgent);
    }
    let sequence = to_u64(row.try_get("last_command_seq")?, "last_command_seq")?;
    let payload = (write.encode)(sequence).map_err(StoreError::Encode)?;
    sqlx::query(
        "INSERT INTO agent_commands (agent_id, sequence, id, kind, payload, state, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(write.agent_id.as_str())
    .bind(to_i64(sequence, "sequence")?)
    .bind(write.command_id.as_str())
    .bind(write.kind.as_str())
    .bind(payload)
    .bind(CommandState::Queued.as_str())
    .bind(write.created_at)
    .execute(&mut *conn)
    .await?;
    Ok(Enqueued::Queued(sequence))
}

/// Writes a command inside another writer's transaction (the event writer's, see
/// [`super::ride_along`]), under a savepoint: a command that fails or is refused undoes only
/// itself. The outer error: the savepoint itself failed, and the transaction must not commit.
pub(super) async fn write_command_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    write: &CommandWrite,
) -> Result<Result<Enqueued, StoreError>, StoreError> {
    let mut savepoint = sqlx::Connection::begin(&mut **tx).await?;
    let outcome = write_command(&mut savepoint, write).await;
    if matches!(outcome, Ok(Enqueued::Queued(_))) {
        savepoint.commit().await?;
    } else {
        savepoint.rollback().await?;
    }
    Ok(outcome)
}
