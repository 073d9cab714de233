//! What WatchChanges serves, durably: the latest state of every watched object with the
//! revision at which it last changed (tombstones for deleted ones, until compacted), the last
//! revision given out and the compaction horizon. One writer (the reconciling master) appends;
//! every master reads what is newer than what it holds.

use super::bulk::{self, Column};
use super::{to_i64, to_u64, Store, StoreError};
use serde_json::Value;
use sqlx::Row;

/// One change to record: the object's new state, or its last state and `deleted`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchWrite {
    pub kind: String,
    pub key: String,
    /// The agents it belongs to, comma-separated ("" for none).
    pub agents: String,
    pub deleted: bool,
    /// The object (a WatchChangesResponse with kind, key and object set), protobuf.
    pub payload: Vec<u8>,
}

/// A recorded object, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchRow {
    pub kind: String,
    pub key: String,
    pub agents: String,
    pub revision: u64,
    pub changed_at: i64,
    pub deleted: bool,
    pub payload: Vec<u8>,
}

/// The counters of the change log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WatchMeta {
    /// The last revision given out.
    pub revision: u64,
    /// Changes at or below this were compacted away: a resume from before it is refused.
    pub compacted: u64,
}

/// Rows read per page.
const READ_PAGE: i64 = 5_000;

impl Store {
    /// Records changes in one transaction, numbered in order after the last revision given
    /// out; returns the last revision.
    pub async fn append_watch_changes(&self, changes: &[WatchWrite], now: i64) -> Result<u64, StoreError> {
        let count = i64::try_from(changes.len()).map_err(|_| StoreError::Encode("too many changes".into()))?;
        let mut tx = self.writer.begin().await?;
        let last: i64 =
            sqlx::query_scalar("UPDATE watch_meta SET revision = revision + $1 WHERE id = 1 RETURNING revision")
                .bind(count)
                .fetch_one(&mut *tx)
                .await?;
        let first = last - count;
        let upsert = |values: &str| {
            format!(
                "INSERT INTO watch_objects (kind, object_key, agent_id, revision, changed_at, deleted, payload) \
                 {values} ON CONFLICT (kind, object_key) DO UPDATE SET agent_id = excluded.agent_id, \
                 revision = excluded.revision, changed_at = excluded.changed_at, deleted = excluded.deleted, \
                 payload = excluded.payload"
            )
        };
        // One statement for the whole batch ([`bulk`]); `WHERE true` lets SQLite's parser tell
        // the SELECT from the ON CONFLICT clause.
        let rows = changes.iter().zip(first + 1..).map(|(change, revision)| {
            vec![
                Value::from(change.kind.as_str()),
                Value::from(change.key.as_str()),
                Value::from(change.agents.as_str()),
                Value::from(revision),
                Value::from(now),
                Value::from(i64::from(change.deleted)),
                bulk::blob(&change.payload),
            ]
        });
        let columns = [Column::Text, Column::Text, Column::Text, Column::Int, Column::Int, Column::Int, Column::Blob];
        let values = format!("{} WHERE true", bulk::select_rows(self.backend, &columns));
        sqlx::query(&upsert(&values)).bind(bulk::rows_json(rows)).execute(&mut *tx).await?;
        tx.commit().await?;
        to_u64(last, "watch revision")
    }

    /// Recorded objects changed after `revision`, in revision order, at most `READ_PAGE`.
    pub async fn watch_changes_after(&self, revision: u64) -> Result<Vec<WatchRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT kind, object_key, agent_id, revision, changed_at, deleted, payload FROM watch_objects \
             WHERE revision > $1 ORDER BY revision LIMIT $2",
        )
        .bind(to_i64(revision, "revision")?)
        .bind(READ_PAGE)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(WatchRow {
                    kind: row.try_get("kind")?,
                    key: row.try_get("object_key")?,
                    agents: row.try_get("agent_id")?,
                    revision: to_u64(row.try_get("revision")?, "revision")?,
                    changed_at: row.try_get("changed_at")?,
                    deleted: row.try_get::<i64, _>("deleted")? != 0,
                    payload: row.try_get("payload")?,
                })
            })
            .collect()
    }

    pub async fn watch_meta(&self) -> Result<WatchMeta, StoreError> {
        let row = sqlx::query("SELECT revision, compacted FROM watch_meta WHERE id = 1").fetch_one(&self.pool).await?;
        Ok(WatchMeta {
            revision: to_u64(row.try_get("revision")?, "watch revision")?,
            compacted: to_u64(row.try_get("compacted")?, "watch compacted")?,
        })
    }

    /// Drops tombstones recorded before `cutoff` and moves the compaction horizon past them.
    pub async fn compact_watch(&self, cutoff: i64) -> Result<u64, StoreError> {
        let mut tx = self.writer.begin().await?;
        let horizon: Option<i64> =
            sqlx::query_scalar("SELECT MAX(revision) FROM watch_objects WHERE deleted = 1 AND changed_at < $1")
                .bind(cutoff)
                .fetch_one(&mut *tx)
                .await?;
        let Some(horizon) = horizon else {
            return Ok(0);
        };
        let removed = sqlx::query("DELETE FROM watch_objects WHERE deleted = 1 AND revision <= $1")
            .bind(horizon)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("UPDATE watch_meta SET compacted = $1 WHERE id = 1 AND compacted < $1")
            .bind(horizon)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(removed)
    }

    /// The latest connector report of every agent: (agent id, reported at, AgentEvent protobuf).
    pub async fn list_agent_connectors(&self) -> Result<Vec<(String, i64, Vec<u8>)>, StoreError> {
        let rows = sqlx::query("SELECT agent_id, reported_at, payload FROM agent_connectors ORDER BY agent_id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("agent_id")?, row.try_get("reported_at")?, row.try_get("payload")?)))
            .collect()
    }
}
