//! What agents currently report: the `agent_containers` projection of their
//! container_start, container_stop and status_report events, updated in the
//! same transaction as the events themselves.

use super::{Store, StoreError};
use crate::model::ContainerRow;
use sqlx::Row;
use std::collections::BTreeSet;

/// How one event changes an agent's reported containers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerChange {
    /// container_start: add or update one.
    Upsert(ContainerRow),
    /// container_stop: remove one.
    Remove { container_id: String },
    /// status_report: exactly these, nothing else.
    Replace(Vec<ContainerRow>),
}

/// A change, tied to the event that carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerChangeEntry {
    pub agent_id: String,
    pub event_id: u64,
    pub change: ContainerChange,
}

const COLUMNS: &str =
    "agent_id, container_id, name, service_id, service_name, status, payload, first_seen_at, updated_at";

fn row_from(row: &sqlx::any::AnyRow) -> Result<ContainerRow, StoreError> {
    Ok(ContainerRow {
        agent_id: row.try_get("agent_id")?,
        container_id: row.try_get("container_id")?,
        name: row.try_get("name")?,
        service_id: row.try_get("service_id")?,
        service_name: row.try_get("service_name")?,
        status: row.try_get("status")?,
        payload: row.try_get("payload")?,
        first_seen_at: row.try_get("first_seen_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Adds or updates one container; whether anything changed (an identical report writes nothing).
async fn upsert(tx: &mut sqlx::Transaction<'_, sqlx::Any>, row: &ContainerRow) -> Result<bool, StoreError> {
    let written = sqlx::query(
        "INSERT INTO agent_containers \
         (agent_id, container_id, name, service_id, service_name, status, payload, first_seen_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
         ON CONFLICT (agent_id, container_id) DO UPDATE SET \
         name = excluded.name, service_id = excluded.service_id, service_name = excluded.service_name, \
         status = excluded.status, payload = excluded.payload, updated_at = excluded.updated_at \
         WHERE agent_containers.payload <> excluded.payload",
    )
    .bind(&row.agent_id)
    .bind(&row.container_id)
    .bind(&row.name)
    .bind(&row.service_id)
    .bind(&row.service_name)
    .bind(&row.status)
    .bind(row.payload.as_slice())
    .bind(row.updated_at)
    .execute(&mut **tx)
    .await?;
    Ok(written.rows_affected() > 0)
}

/// Applies one change inside the event transaction; whether the agent's containers changed (a
/// reconnecting agent's status report usually repeats what is stored).
pub(super) async fn apply(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    agent_id: &str,
    change: &ContainerChange,
) -> Result<bool, StoreError> {
    match change {
        ContainerChange::Upsert(row) => upsert(tx, row).await,
        ContainerChange::Remove { container_id } => {
            let removed = sqlx::query("DELETE FROM agent_containers WHERE agent_id = $1 AND container_id = $2")
                .bind(agent_id)
                .bind(container_id)
                .execute(&mut **tx)
                .await?;
            Ok(removed.rows_affected() > 0)
        }
        ContainerChange::Replace(rows) => {
            let keep: BTreeSet<&str> = rows.iter().map(|r| r.container_id.as_str()).collect();
            let existing = sqlx::query("SELECT container_id FROM agent_containers WHERE agent_id = $1")
                .bind(agent_id)
                .fetch_all(&mut **tx)
                .await?;
            let mut changed = false;
            for row in existing {
                let id: String = row.try_get("container_id")?;
                if !keep.contains(id.as_str()) {
                    let removed = sqlx::query("DELETE FROM agent_containers WHERE agent_id = $1 AND container_id = $2")
                        .bind(agent_id)
                        .bind(&id)
                        .execute(&mut **tx)
                        .await?;
                    changed |= removed.rows_affected() > 0;
                }
            }
            for row in rows {
                changed |= upsert(tx, row).await?;
            }
            Ok(changed)
        }
    }
}

impl Store {
    /// Reported containers, of one agent or of all (`None`), by agent then id.
    pub async fn list_containers(&self, agent_id: Option<&str>) -> Result<Vec<ContainerRow>, StoreError> {
        let rows = match agent_id {
            Some(agent_id) => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM agent_containers WHERE agent_id = $1 ORDER BY agent_id, container_id"
                ))
                .bind(agent_id)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!("SELECT {COLUMNS} FROM agent_containers ORDER BY agent_id, container_id"))
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(row_from).collect()
    }
}
