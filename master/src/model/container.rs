//! A container (or Swarm service) an agent reports, as the master keeps it. Plain data.

/// A reported container (or Swarm service), as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRow {
    pub agent_id: String,
    pub container_id: String,
    pub name: String,
    pub service_id: String,
    pub service_name: String,
    pub status: String,
    /// The encoded `dockflare.v1.Container` (labels, diagnostics, …).
    pub payload: Vec<u8>,
    pub first_seen_at: i64,
    pub updated_at: i64,
}
