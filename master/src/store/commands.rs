//! The per-agent command log: commands are stored with a gap-free per-agent
//! sequence before they are sent, marked delivered when written to the
//! agent's stream, and settled (acked or failed) by the agent's
//! command_result event (see `events`).

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
    /// Stores a command under the agent's next sequence. `encode` builds the
    /// payload once the sequence is known (inside the transaction: keep it
    /// to CPU work). An `urgent` one (someone waits for it) is counted as
    /// waiting for the writer ([`Store::waiting_for_writer`]).
    pub async fn enqueue_command(
        &self,
        agent_id: &str,
        command_id: &str,
        kind: &str,
        now: i64,
        urgent: bool,
        encode: impl FnOnce(u64) -> Result<Vec<u8>, String>,
    ) -> Result<Enqueued, StoreError> {
        let mut tx = if urgent {
            let _waiting = self.waiting_for_writer();
            self.writer.begin().await?
        } else {
            self.writer.begin().await?
        };
        let row = sqlx::query(
            "UPDATE agents SET last_command_seq = last_command_seq + 1 WHERE id = $1 \
             RETURNING last_command_seq, status",
        )
        .bind(agent_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(Enqueued::UnknownAgent);
        };
        if row.try_get::<String, _>("status")? == STATUS_REVOKED {
            tx.rollback().await?;
            return Ok(Enqueued::RevokedAgent);
        }
        let sequence = to_u64(row.try_get("last_command_seq")?, "last_command_seq")?;
        let payload = encode(sequence).map_err(StoreError::Encode)?;
        sqlx::query(
            "INSERT INTO agent_commands (agent_id, sequence, id, kind, payload, state, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(agent_id)
        .bind(to_i64(sequence, "sequence")?)
        .bind(command_id)
        .bind(kind)
        .bind(payload)
        .bind(CommandState::Queued.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Enqueued::Queued(sequence))
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
