//! An agent as the master knows it: enrollment, what it said at Register, its stream cursors
//! and the hostname policy its labels are held to. Plain data; the store persists it.

use dockflare_common::hostname_policy::HostnamePolicy;

/// An agent row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRecord {
    pub id: String,
    pub display_name: String,
    pub hostname: String,
    /// online, offline or revoked.
    pub status: String,
    pub docker_mode: String,
    pub node_id: String,
    pub node_role: String,
    pub version: String,
    pub tunnel_group: String,
    pub capabilities: Vec<String>,
    /// The custom label prefix the agent honours ("" for none).
    pub label_prefix: String,
    pub enrolled_at: i64,
    pub last_seen_at: Option<i64>,
    pub cert_serial: String,
    pub cert_not_after: i64,
    pub last_command_seq: u64,
    pub last_acked_command_seq: u64,
    pub last_event_id: u64,
    /// The tunnel the agent was last told to run ("" for none).
    pub assigned_tunnel_id: String,
    /// Set when an operator removed the agent.
    pub removed_at: Option<i64>,
    /// Swarm mode: the cluster id its node saw at its last Register ("" when unknown).
    pub swarm_cluster_id: String,
    /// Swarm mode: the managers' node ids its node saw at its last Register.
    pub swarm_managers: Vec<String>,
    /// What its labels may route.
    pub policy: HostnamePolicy,
}

impl AgentRecord {
    pub fn is_revoked(&self) -> bool {
        self.status == STATUS_REVOKED
    }
}

pub const STATUS_ONLINE: &str = "online";
pub const STATUS_OFFLINE: &str = "offline";
pub const STATUS_REVOKED: &str = "revoked";
