//! Conversions between protobuf values and the store's plain values:
//! timestamps, enum names, and row-to-message mappings.

use crate::store::{AgentRecord, CommandRow, CommandState, JoinTokenRow};
use dockflare::v1::{self, AgentStatus, DockerMode, NodeRole};
use prost_types::Timestamp;

pub fn timestamp(millis: i64) -> Timestamp {
    Timestamp { seconds: millis.div_euclid(1000), nanos: (millis.rem_euclid(1000) * 1_000_000) as i32 }
}

pub fn millis(timestamp: &Timestamp) -> i64 {
    timestamp.seconds.saturating_mul(1000).saturating_add(i64::from(timestamp.nanos / 1_000_000))
}

pub fn docker_mode_name(mode: DockerMode) -> &'static str {
    match mode {
        DockerMode::Standalone => "standalone",
        DockerMode::Swarm => "swarm",
        DockerMode::Unspecified => "",
    }
}

fn docker_mode_from_name(name: &str) -> DockerMode {
    match name {
        "standalone" => DockerMode::Standalone,
        "swarm" => DockerMode::Swarm,
        _ => DockerMode::Unspecified,
    }
}

pub fn node_role_name(role: NodeRole) -> &'static str {
    match role {
        NodeRole::Manager => "manager",
        NodeRole::Worker => "worker",
        NodeRole::Unspecified => "",
    }
}

fn node_role_from_name(name: &str) -> NodeRole {
    match name {
        "manager" => NodeRole::Manager,
        "worker" => NodeRole::Worker,
        _ => NodeRole::Unspecified,
    }
}

pub fn agent_status(status: &str) -> AgentStatus {
    match status {
        "online" => AgentStatus::Online,
        "offline" => AgentStatus::Offline,
        "revoked" => AgentStatus::Revoked,
        _ => AgentStatus::Unspecified,
    }
}

pub fn agent(record: &AgentRecord, connected: bool) -> v1::Agent {
    v1::Agent {
        id: record.id.clone(),
        display_name: record.display_name.clone(),
        status: agent_status(&record.status) as i32,
        docker_mode: docker_mode_from_name(&record.docker_mode) as i32,
        node_id: record.node_id.clone(),
        node_role: node_role_from_name(&record.node_role) as i32,
        version: record.version.clone(),
        hostname: record.hostname.clone(),
        tunnel_group: record.tunnel_group.clone(),
        capabilities: record.capabilities.clone(),
        enrolled_at: Some(timestamp(record.enrolled_at)),
        last_seen_at: record.last_seen_at.map(timestamp),
        certificate_serial: record.cert_serial.clone(),
        certificate_not_after: Some(timestamp(record.cert_not_after)),
        last_command_sequence: record.last_command_seq,
        last_acked_command_sequence: record.last_acked_command_seq,
        last_event_id: record.last_event_id,
        connected,
    }
}

pub fn join_token(row: &JoinTokenRow) -> v1::JoinToken {
    v1::JoinToken {
        id: row.id.clone(),
        description: row.description.clone(),
        created_at: Some(timestamp(row.created_at)),
        expires_at: Some(timestamp(row.expires_at)),
        max_uses: row.max_uses,
        uses: row.uses,
        revoked: row.revoked,
    }
}

pub fn command_record(row: &CommandRow) -> v1::CommandRecord {
    let state = match row.state {
        CommandState::Queued => v1::CommandState::Queued,
        CommandState::Delivered => v1::CommandState::Delivered,
        CommandState::Acked => v1::CommandState::Acked,
        CommandState::Failed => v1::CommandState::Failed,
    };
    v1::CommandRecord {
        id: row.id.clone(),
        agent_id: row.agent_id.clone(),
        sequence: row.sequence,
        kind: row.kind.clone(),
        state: state as i32,
        error: row.error.clone(),
        created_at: Some(timestamp(row.created_at)),
        delivered_at: row.delivered_at.map(timestamp),
        acked_at: row.acked_at.map(timestamp),
        delivery_count: row.delivery_count,
    }
}

/// The log name of a command kind.
pub fn command_kind_name(kind: &v1::command::Kind) -> &'static str {
    match kind {
        v1::command::Kind::StartTunnel(_) => "start_tunnel",
        v1::command::Kind::StopTunnel(_) => "stop_tunnel",
        v1::command::Kind::UpdateTunnelConfig(_) => "update_tunnel_config",
        v1::command::Kind::Resync(_) => "resync",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_including_before_the_epoch() {
        for ms in [0, 1, 999, 1_000, 1_764_000_000_123, -1, -1_001] {
            assert_eq!(millis(&timestamp(ms)), ms, "{ms}");
        }
    }
}
