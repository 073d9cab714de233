//! The reconciler's state: the route table, manual routes, tunnels, the
//! ingress keys each tunnel got from this master, and settings (the
//! installation id that marks this master's DNS records).

use super::{Store, StoreError};
use crate::model::route::{RouteRow, RouteSpec, Source, Status};
use crate::model::{ManualRoute, TunnelRow};
use sqlx::Row;
use std::collections::BTreeSet;

const ROUTE_COLUMNS: &str = "hostname, path, owner, source, service, origin_json, zone_name, agent_id, tunnel_key, \
    container_id, container_name, service_name, status, reason, delete_at, first_seen_at, updated_at, last_error, access_json";

/// A stored route this master cannot read: a column holds text it does not know (a corrupt row,
/// or one a newer master wrote into a shared database). It is left alone: not routed, not deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptRoute {
    pub hostname: String,
    pub path: String,
    pub owner: String,
    /// Which column, and what it holds.
    pub problem: String,
}

/// The route table as stored: the rows, and those that could not be read.
#[derive(Debug, Default)]
pub struct StoredRoutes {
    pub rows: Vec<RouteRow>,
    pub corrupt: Vec<CorruptRoute>,
}

fn route_from(row: &sqlx::any::AnyRow) -> Result<Result<RouteRow, CorruptRoute>, StoreError> {
    let source_text: String = row.try_get("source")?;
    let status_text: String = row.try_get("status")?;
    let (source, status) = match (Source::parse(&source_text), Status::parse(&status_text)) {
        (Some(source), Some(status)) => (source, status),
        (source, _) => {
            let problem = match source {
                None => format!("unknown source {source_text:?}"),
                Some(_) => format!("unknown status {status_text:?}"),
            };
            return Ok(Err(CorruptRoute {
                hostname: row.try_get("hostname")?,
                path: row.try_get("path")?,
                owner: row.try_get("owner")?,
                problem,
            }));
        }
    };
    Ok(Ok(RouteRow {
        owner: row.try_get("owner")?,
        source,
        spec: RouteSpec {
            hostname: row.try_get("hostname")?,
            path: row.try_get("path")?,
            service: row.try_get("service")?,
            origin_json: row.try_get("origin_json")?,
            zone_name: row.try_get("zone_name")?,
            agent_id: row.try_get("agent_id")?,
            tunnel_key: row.try_get("tunnel_key")?,
            container_id: row.try_get("container_id")?,
            container_name: row.try_get("container_name")?,
            service_name: row.try_get("service_name")?,
            access_json: row.try_get("access_json")?,
        },
        status,
        reason: row.try_get("reason")?,
        delete_at: row.try_get("delete_at")?,
        first_seen_at: row.try_get("first_seen_at")?,
        updated_at: row.try_get("updated_at")?,
        last_error: row.try_get("last_error")?,
    }))
}

impl Store {
    pub async fn load_routes(&self) -> Result<Vec<RouteRow>, StoreError> {
        Ok(self.load_route_table().await?.rows)
    }

    /// The route table, with the rows that could not be read set apart.
    pub async fn load_route_table(&self) -> Result<StoredRoutes, StoreError> {
        let rows = sqlx::query(&format!("SELECT {ROUTE_COLUMNS} FROM routes ORDER BY hostname, path, owner"))
            .fetch_all(&self.pool)
            .await?;
        let mut table = StoredRoutes::default();
        for row in &rows {
            match route_from(row)? {
                Ok(route) => table.rows.push(route),
                Err(corrupt) => table.corrupt.push(corrupt),
            }
        }
        Ok(table)
    }

    /// Writes changed rows and deletes removed ones, in one transaction.
    pub async fn save_routes(&self, upserts: &[RouteRow], deletes: &[RouteRow]) -> Result<(), StoreError> {
        if upserts.is_empty() && deletes.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer.begin().await?;
        for row in deletes {
            sqlx::query("DELETE FROM routes WHERE hostname = $1 AND path = $2 AND owner = $3")
                .bind(&row.spec.hostname)
                .bind(&row.spec.path)
                .bind(&row.owner)
                .execute(&mut *tx)
                .await?;
        }
        for row in upserts {
            sqlx::query(&format!(
                "INSERT INTO routes ({ROUTE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19) \
                 ON CONFLICT (hostname, path, owner) DO UPDATE SET source = excluded.source, service = excluded.service, \
                 origin_json = excluded.origin_json, zone_name = excluded.zone_name, agent_id = excluded.agent_id, \
                 tunnel_key = excluded.tunnel_key, container_id = excluded.container_id, \
                 container_name = excluded.container_name, service_name = excluded.service_name, status = excluded.status, \
                 reason = excluded.reason, delete_at = excluded.delete_at, first_seen_at = excluded.first_seen_at, \
                 updated_at = excluded.updated_at, last_error = excluded.last_error, access_json = excluded.access_json"
            ))
            .bind(&row.spec.hostname)
            .bind(&row.spec.path)
            .bind(&row.owner)
            .bind(row.source.as_str())
            .bind(&row.spec.service)
            .bind(&row.spec.origin_json)
            .bind(&row.spec.zone_name)
            .bind(&row.spec.agent_id)
            .bind(&row.spec.tunnel_key)
            .bind(&row.spec.container_id)
            .bind(&row.spec.container_name)
            .bind(&row.spec.service_name)
            .bind(row.status.as_str())
            .bind(&row.reason)
            .bind(row.delete_at)
            .bind(row.first_seen_at)
            .bind(row.updated_at)
            .bind(&row.last_error)
            .bind(&row.spec.access_json)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn list_manual_routes(&self) -> Result<Vec<ManualRoute>, StoreError> {
        let rows = sqlx::query(
            "SELECT hostname, path, service, origin_json, zone_name, tunnel_key, created_at FROM manual_routes \
             ORDER BY hostname, path",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ManualRoute {
                    hostname: row.try_get("hostname")?,
                    path: row.try_get("path")?,
                    service: row.try_get("service")?,
                    origin_json: row.try_get("origin_json")?,
                    zone_name: row.try_get("zone_name")?,
                    tunnel_key: row.try_get("tunnel_key")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Adds or replaces a manual route.
    pub async fn put_manual_route(&self, route: &ManualRoute) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO manual_routes (hostname, path, service, origin_json, zone_name, tunnel_key, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (hostname, path) DO UPDATE SET \
             service = excluded.service, origin_json = excluded.origin_json, zone_name = excluded.zone_name, \
             tunnel_key = excluded.tunnel_key",
        )
        .bind(&route.hostname)
        .bind(&route.path)
        .bind(&route.service)
        .bind(&route.origin_json)
        .bind(&route.zone_name)
        .bind(&route.tunnel_key)
        .bind(route.created_at)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Deletes a manual route; whether it existed.
    pub async fn delete_manual_route(&self, hostname: &str, path: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM manual_routes WHERE hostname = $1 AND path = $2")
            .bind(hostname)
            .bind(path)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn list_tunnels(&self) -> Result<Vec<TunnelRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT tunnel_key, name, tunnel_id, status, connector_count, config_version, connector_config_version, \
             last_error, created_at, updated_at FROM tunnels ORDER BY tunnel_key",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(TunnelRow {
                    tunnel_key: row.try_get("tunnel_key")?,
                    name: row.try_get("name")?,
                    tunnel_id: row.try_get("tunnel_id")?,
                    status: row.try_get("status")?,
                    connector_count: row.try_get("connector_count")?,
                    config_version: row.try_get("config_version")?,
                    connector_config_version: row.try_get("connector_config_version")?,
                    last_error: row.try_get("last_error")?,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                })
            })
            .collect()
    }

    pub async fn save_tunnel(&self, tunnel: &TunnelRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tunnels (tunnel_key, name, tunnel_id, status, connector_count, last_error, created_at, \
             updated_at, config_version, connector_config_version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (tunnel_key) DO UPDATE SET \
             name = excluded.name, tunnel_id = excluded.tunnel_id, status = excluded.status, \
             connector_count = excluded.connector_count, last_error = excluded.last_error, \
             updated_at = excluded.updated_at, config_version = excluded.config_version, \
             connector_config_version = excluded.connector_config_version",
        )
        .bind(&tunnel.tunnel_key)
        .bind(&tunnel.name)
        .bind(&tunnel.tunnel_id)
        .bind(&tunnel.status)
        .bind(tunnel.connector_count)
        .bind(&tunnel.last_error)
        .bind(tunnel.created_at)
        .bind(tunnel.updated_at)
        .bind(tunnel.config_version)
        .bind(tunnel.connector_config_version)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    pub async fn delete_tunnel(&self, tunnel_key: &str) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        let row = sqlx::query("DELETE FROM tunnels WHERE tunnel_key = $1 RETURNING tunnel_id")
            .bind(tunnel_key)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(row) = row {
            let tunnel_id: String = row.try_get("tunnel_id")?;
            sqlx::query("DELETE FROM tunnel_owned_rules WHERE tunnel_id = $1")
                .bind(&tunnel_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The ingress keys this master wrote to a tunnel.
    pub async fn owned_rules(&self, tunnel_id: &str) -> Result<BTreeSet<(String, String)>, StoreError> {
        let rows = sqlx::query("SELECT hostname, path FROM tunnel_owned_rules WHERE tunnel_id = $1")
            .bind(tunnel_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|row| Ok((row.try_get("hostname")?, row.try_get("path")?))).collect()
    }

    /// Records the ingress keys written to a tunnel (after a successful PUT).
    pub async fn set_owned_rules(&self, tunnel_id: &str, keys: &BTreeSet<(String, String)>) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        sqlx::query("DELETE FROM tunnel_owned_rules WHERE tunnel_id = $1").bind(tunnel_id).execute(&mut *tx).await?;
        for (hostname, path) in keys {
            sqlx::query("INSERT INTO tunnel_owned_rules (tunnel_id, hostname, path) VALUES ($1, $2, $3)")
                .bind(tunnel_id)
                .bind(hostname)
                .bind(path)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A setting, created with `initial` when missing (first writer wins).
    pub async fn setting_or_init(&self, key: &str, initial: &str) -> Result<String, StoreError> {
        sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(initial)
            .execute(&self.writer)
            .await?;
        let row = sqlx::query("SELECT value FROM settings WHERE key = $1").bind(key).fetch_one(&self.pool).await?;
        Ok(row.try_get("value")?)
    }

    /// A setting, `None` when it was never set.
    pub async fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT value FROM settings WHERE key = $1").bind(key).fetch_optional(&self.pool).await?;
        Ok(row.map(|row| row.try_get("value")).transpose()?)
    }

    /// Sets a setting (last writer wins).
    pub async fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = $2")
            .bind(key)
            .bind(value)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Records which tunnel an agent was told to run.
    pub async fn set_assigned_tunnel(&self, agent_id: &str, tunnel_id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE agents SET assigned_tunnel_id = $2 WHERE id = $1")
            .bind(agent_id)
            .bind(tunnel_id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Forgets which tunnel every agent was told to run, so that the reconciler sends each a
    /// fresh start_tunnel (with a fresh token) on its next pass. Returns how many were assigned.
    pub async fn clear_assigned_tunnels(&self) -> Result<u64, StoreError> {
        let done = sqlx::query("UPDATE agents SET assigned_tunnel_id = '' WHERE assigned_tunnel_id <> ''")
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }

    /// Marks an agent removed, and so revoked: its containers are forgotten at once; the
    /// reconciler removes its routes and, if unused, its tunnel.
    pub async fn mark_agent_removed(&self, agent_id: &str, now: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE agents SET removed_at = COALESCE(removed_at, $2), revoked_at = COALESCE(revoked_at, $2), \
             status = 'revoked' WHERE id = $1",
        )
        .bind(agent_id)
        .bind(now)
        .execute(&self.writer)
        .await?;
        if done.rows_affected() > 0 {
            sqlx::query("DELETE FROM agent_containers WHERE agent_id = $1")
                .bind(agent_id)
                .execute(&self.writer)
                .await?;
        }
        Ok(done.rows_affected() > 0)
    }
}
