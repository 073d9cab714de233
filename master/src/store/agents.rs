//! Agents: enrollment record, registration details, liveness, revocation,
//! and the stream cursors (last command sequence, last acknowledged one,
//! last stored event id).

use super::events::placeholders;
use super::{policy_from_row, to_u64, Store, StoreError};
use crate::model::{AgentRecord, STATUS_OFFLINE, STATUS_ONLINE, STATUS_REVOKED};
use dockflare_common::hostname_policy::HostnamePolicy;
use dockflare_common::identity::AgentId;
use sqlx::Row;
use std::collections::HashMap;

/// Agents read by one statement of a registration batch (SQLite's oldest limit: 999 parameters).
const READS_PER_STATEMENT: usize = 500;
/// Agents written by one statement of a registration batch (12 parameters each).
const WRITES_PER_STATEMENT: usize = 64;

/// An agent as enrollment creates it.
#[derive(Debug, Clone)]
pub struct NewAgent {
    pub id: AgentId,
    pub display_name: String,
    pub cert_serial: String,
    pub cert_not_after: i64,
}

/// What an agent says about itself at Register.
#[derive(Debug, Clone, Default)]
pub struct AgentRegistration {
    pub display_name: String,
    pub hostname: String,
    pub docker_mode: String,
    pub node_id: String,
    pub node_role: String,
    pub version: String,
    /// The group the agent expects to be in ("" for any); never stored (the operator decides).
    pub tunnel_group: String,
    pub capabilities: Vec<String>,
    pub label_prefix: String,
    /// Swarm mode: the cluster id the node sees ("" on workers and standalone hosts).
    pub swarm_cluster_id: String,
    /// Swarm mode: the managers' node ids the node sees.
    pub swarm_managers: Vec<String>,
}

/// What became of one registration ([`Store::register_agents`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    /// No such agent.
    Unknown,
    /// Not written: the record as it is.
    NotAdmitted(Box<AgentRecord>),
    /// Written: the record before and after.
    Registered { before: Box<AgentRecord>, after: Box<AgentRecord> },
}

/// Ends with the policy columns ([`super::policy_from_row`]).
const COLUMNS: &str = "id, display_name, hostname, status, docker_mode, node_id, node_role, version, \
    tunnel_group, capabilities, enrolled_at, agent_progress.last_seen_at, cert_serial, cert_not_after, \
    last_command_seq, last_acked_command_seq, COALESCE(agent_progress.last_event_id, 0) AS last_event_id, \
    label_prefix, assigned_tunnel_id, removed_at, swarm_cluster_id, swarm_managers, allowed_hostnames, \
    allow_wildcards, allow_apex, max_routes";
/// The agents with their progress (event cursor, last seen: `agent_progress`, written by event
/// batches apart from the agents' rows).
const FROM_AGENTS: &str = "agents LEFT JOIN agent_progress ON agent_progress.agent_id = agents.id";

fn agent_from_row(row: &sqlx::any::AnyRow) -> Result<AgentRecord, StoreError> {
    let capabilities: String = row.try_get("capabilities")?;
    Ok(AgentRecord {
        id: row.try_get("id")?,
        display_name: row.try_get("display_name")?,
        hostname: row.try_get("hostname")?,
        status: row.try_get("status")?,
        docker_mode: row.try_get("docker_mode")?,
        node_id: row.try_get("node_id")?,
        node_role: row.try_get("node_role")?,
        version: row.try_get("version")?,
        tunnel_group: row.try_get("tunnel_group")?,
        capabilities: capabilities.split(',').filter(|c| !c.is_empty()).map(str::to_string).collect(),
        label_prefix: row.try_get("label_prefix")?,
        enrolled_at: row.try_get("enrolled_at")?,
        last_seen_at: row.try_get("last_seen_at")?,
        cert_serial: row.try_get("cert_serial")?,
        cert_not_after: row.try_get("cert_not_after")?,
        last_command_seq: to_u64(row.try_get("last_command_seq")?, "last_command_seq")?,
        last_acked_command_seq: to_u64(row.try_get("last_acked_command_seq")?, "last_acked_command_seq")?,
        last_event_id: to_u64(row.try_get("last_event_id")?, "last_event_id")?,
        assigned_tunnel_id: row.try_get("assigned_tunnel_id")?,
        removed_at: row.try_get("removed_at")?,
        swarm_cluster_id: row.try_get("swarm_cluster_id")?,
        swarm_managers: row
            .try_get::<String, _>("swarm_managers")?
            .split(',')
            .filter(|id| !id.is_empty())
            .map(str::to_string)
            .collect(),
        policy: policy_from_row(row)?,
    })
}

/// The agents `ids` (those that exist), read in the transaction.
async fn read_agents(tx: &mut sqlx::Transaction<'_, sqlx::Any>, ids: &[&str]) -> Result<Vec<AgentRecord>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!("SELECT {COLUMNS} FROM {FROM_AGENTS} WHERE id IN {}", placeholders(1, ids.len()));
    let mut query = sqlx::query(&sql);
    for id in ids {
        query = query.bind(*id);
    }
    query.fetch_all(&mut **tx).await?.iter().map(agent_from_row).collect()
}

impl Store {
    pub(super) async fn insert_agent(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        agent: &NewAgent,
        token_id: &str,
        tunnel_group: &str,
        policy: &HostnamePolicy,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO agents (id, display_name, status, join_token_id, enrolled_at, cert_serial, cert_not_after, \
             tunnel_group, allowed_hostnames, allow_wildcards, allow_apex, max_routes) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(agent.id.as_str())
        .bind(&agent.display_name)
        .bind(STATUS_OFFLINE)
        .bind(token_id)
        .bind(now)
        .bind(&agent.cert_serial)
        .bind(agent.cert_not_after)
        .bind(tunnel_group)
        .bind(policy.allowed_hostnames.join(","))
        .bind(i64::from(policy.allow_wildcards))
        .bind(i64::from(policy.allow_apex))
        .bind(i64::from(policy.max_routes))
        .execute(&mut **tx)
        .await?;
        sqlx::query("INSERT INTO agent_progress (agent_id) VALUES ($1)")
            .bind(agent.id.as_str())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Records a Register call: details, and online unless revoked. The tunnel group is not
    /// the agent's to set ([`Store::set_agent_tunnel_group`]).
    pub async fn register_agent(
        &self,
        id: &AgentId,
        registration: &AgentRegistration,
        now: i64,
    ) -> Result<Option<AgentRecord>, StoreError> {
        let mut outcomes = self.register_agents(&[(id, registration, now)], |_, _| true).await?;
        Ok(match outcomes.pop() {
            Some(Registration::Registered { after, .. }) => Some(*after),
            _ => None,
        })
    }

    /// [`Store::register_agent`] for many agents in one transaction (one commit), each read
    /// first and written only if `may_register` admits it: each agent's outcome, in the order
    /// given. A few statements per batch, not per agent: the writer's every round trip to the
    /// database waits its turn among a reconnecting fleet's tasks.
    pub async fn register_agents(
        &self,
        registrations: &[(&AgentId, &AgentRegistration, i64)],
        may_register: impl Fn(&AgentRecord, &AgentRegistration) -> bool,
    ) -> Result<Vec<Registration>, StoreError> {
        let Some((first, _, _)) = registrations.first() else { return Ok(Vec::new()) };
        let mut tx = self.writer.begin().await?;
        // The store's rule: a write transaction starts with a write (SQLite then takes its lock
        // up front, instead of failing to upgrade a read). This one changes nothing.
        sqlx::query("UPDATE agents SET status = status WHERE id = $1").bind(first.as_str()).execute(&mut *tx).await?;
        let mut before: HashMap<String, AgentRecord> = HashMap::with_capacity(registrations.len());
        for chunk in registrations.chunks(READS_PER_STATEMENT) {
            let ids: Vec<&str> = chunk.iter().map(|(id, _, _)| id.as_str()).collect();
            for record in read_agents(&mut tx, &ids).await? {
                before.insert(record.id.clone(), record);
            }
        }
        let admitted: Vec<&(&AgentId, &AgentRegistration, i64)> = registrations
            .iter()
            .filter(|(id, registration, _)| before.get(id.as_str()).is_some_and(|b| may_register(b, registration)))
            .collect();
        for chunk in admitted.chunks(WRITES_PER_STATEMENT) {
            let sql = format!(
                "UPDATE agents SET display_name = v.column2, hostname = v.column3, docker_mode = v.column4, \
                 node_id = v.column5, node_role = v.column6, version = v.column7, capabilities = v.column8, \
                 label_prefix = v.column9, swarm_cluster_id = v.column10, swarm_managers = v.column11, \
                 status = CASE WHEN agents.status = '{STATUS_REVOKED}' THEN agents.status ELSE '{STATUS_ONLINE}' END \
                 FROM (VALUES {}) AS v WHERE agents.id = v.column1",
                placeholders(chunk.len(), 11)
            );
            let mut query = sqlx::query(&sql);
            for (id, registration, _) in chunk {
                query = query
                    .bind(id.as_str())
                    .bind(&registration.display_name)
                    .bind(&registration.hostname)
                    .bind(&registration.docker_mode)
                    .bind(&registration.node_id)
                    .bind(&registration.node_role)
                    .bind(&registration.version)
                    .bind(registration.capabilities.join(","))
                    .bind(&registration.label_prefix)
                    .bind(&registration.swarm_cluster_id)
                    .bind(registration.swarm_managers.join(","));
            }
            query.execute(&mut *tx).await?;
            // A Register is a sign of life.
            let sql = format!(
                "INSERT INTO agent_progress (agent_id, last_seen_at) VALUES {} ON CONFLICT (agent_id) \
                 DO UPDATE SET last_seen_at = excluded.last_seen_at",
                placeholders(chunk.len(), 2)
            );
            let mut query = sqlx::query(&sql);
            for (id, _, now) in chunk {
                query = query.bind(id.as_str()).bind(*now);
            }
            query.execute(&mut *tx).await?;
        }
        let mut after: HashMap<String, AgentRecord> = HashMap::with_capacity(admitted.len());
        for chunk in admitted.chunks(READS_PER_STATEMENT) {
            let ids: Vec<&str> = chunk.iter().map(|(id, _, _)| id.as_str()).collect();
            for record in read_agents(&mut tx, &ids).await? {
                after.insert(record.id.clone(), record);
            }
        }
        tx.commit().await?;
        Ok(registrations
            .iter()
            .map(|(id, _, _)| match (before.get(id.as_str()), after.get(id.as_str())) {
                (Some(old), Some(new)) => {
                    Registration::Registered { before: Box::new(old.clone()), after: Box::new(new.clone()) }
                }
                (Some(old), None) => Registration::NotAdmitted(Box::new(old.clone())),
                (None, _) => Registration::Unknown,
            })
            .collect())
    }

    pub async fn get_agent(&self, id: &str) -> Result<Option<AgentRecord>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM {FROM_AGENTS} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(agent_from_row).transpose()
    }

    /// Agents ordered by id, after `after_id` (exclusive).
    pub async fn list_agents(&self, after_id: &str, limit: u32) -> Result<Vec<AgentRecord>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM {FROM_AGENTS} WHERE id > $1 ORDER BY id LIMIT $2"))
            .bind(after_id)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(agent_from_row).collect()
    }

    /// Revokes an agent; `None` if it does not exist.
    pub async fn revoke_agent(&self, id: &str, now: i64) -> Result<Option<AgentRecord>, StoreError> {
        let sql = format!(
            "UPDATE agents SET status = '{STATUS_REVOKED}', revoked_at = COALESCE(revoked_at, $2) WHERE id = $1"
        );
        let update = sqlx::query(&sql).bind(id).bind(now);
        self.update_agent(id, update).await
    }

    /// Runs `update` (a statement changing agent `id`'s row) and reads the agent back, in one
    /// transaction; `None` if it does not exist.
    async fn update_agent<'q>(
        &self,
        id: &str,
        update: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> Result<Option<AgentRecord>, StoreError> {
        let mut tx = self.writer.begin().await?;
        if update.execute(&mut *tx).await?.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        let record = read_agents(&mut tx, &[id]).await?.pop();
        tx.commit().await?;
        Ok(record)
    }

    /// Moves an agent to another tunnel group (an operator's decision); `None` if it does not exist.
    pub async fn set_agent_tunnel_group(
        &self,
        id: &str,
        tunnel_group: &str,
    ) -> Result<Option<AgentRecord>, StoreError> {
        let update = sqlx::query("UPDATE agents SET tunnel_group = $2 WHERE id = $1").bind(id).bind(tunnel_group);
        self.update_agent(id, update).await
    }

    /// Replaces an agent's hostname policy (an operator's decision); `None` if it does not exist.
    pub async fn set_agent_policy(&self, id: &str, policy: &HostnamePolicy) -> Result<Option<AgentRecord>, StoreError> {
        let update = sqlx::query(
            "UPDATE agents SET allowed_hostnames = $2, allow_wildcards = $3, allow_apex = $4, max_routes = $5 \
             WHERE id = $1",
        )
        .bind(id)
        .bind(policy.allowed_hostnames.join(","))
        .bind(i64::from(policy.allow_wildcards))
        .bind(i64::from(policy.allow_apex))
        .bind(i64::from(policy.max_routes));
        self.update_agent(id, update).await
    }

    /// Records a renewed certificate.
    pub async fn update_agent_certificate(&self, id: &AgentId, serial: &str, not_after: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE agents SET cert_serial = $2, cert_not_after = $3 WHERE id = $1")
            .bind(id.as_str())
            .bind(serial)
            .bind(not_after)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Marks online agents not seen since `cutoff` offline; returns their ids.
    pub async fn mark_stale_agents_offline(&self, cutoff: i64) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(&format!(
            "UPDATE agents SET status = '{STATUS_OFFLINE}' WHERE status = '{STATUS_ONLINE}' AND NOT EXISTS \
             (SELECT 1 FROM agent_progress WHERE agent_progress.agent_id = agents.id \
              AND agent_progress.last_seen_at >= $1) RETURNING id"
        ))
        .bind(cutoff)
        .fetch_all(&self.writer)
        .await?;
        rows.iter().map(|row| row.try_get::<String, _>("id").map_err(StoreError::from)).collect()
    }
}
