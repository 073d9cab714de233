//! Conversions between protobuf values and the store's plain values:
//! timestamps, enum names, and row-to-message mappings.

use crate::store::{AgentRecord, CommandRow, CommandState, JoinTokenRow};
use dockflare::v1::{self, AgentStatus, DockerMode, NodeRole};
use dockflare_common::hostname_policy::HostnamePolicy;
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
        policy: Some(hostname_policy(&record.policy)),
        swarm_cluster_id: record.swarm_cluster_id.clone(),
        swarm_manager_node_ids: record.swarm_managers.clone(),
    }
}

pub fn hostname_policy(policy: &HostnamePolicy) -> v1::HostnamePolicy {
    v1::HostnamePolicy {
        allowed_hostnames: policy.allowed_hostnames.clone(),
        allow_wildcards: policy.allow_wildcards,
        allow_apex: policy.allow_apex,
        max_routes: policy.max_routes,
    }
}

/// A policy from the API, normalized; INVALID_ARGUMENT naming the field (under `field`).
pub fn hostname_policy_from(field: &str, policy: Option<&v1::HostnamePolicy>) -> Result<HostnamePolicy, tonic::Status> {
    let Some(policy) = policy else { return Ok(HostnamePolicy::default()) };
    HostnamePolicy {
        allowed_hostnames: policy.allowed_hostnames.clone(),
        allow_wildcards: policy.allow_wildcards,
        allow_apex: policy.allow_apex,
        max_routes: policy.max_routes,
    }
    .normalized()
    .map_err(|e| tonic::Status::invalid_argument(format!("{field}.{e}")))
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
        tunnel_group: row.tunnel_group.clone(),
        policy: Some(hostname_policy(&row.policy)),
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

/// cloudflared origin options as the protobuf message.
pub fn origin_request(origin: &dockflare_common::labels::OriginOptions) -> v1::OriginRequest {
    v1::OriginRequest {
        no_tls_verify: origin.no_tls_verify,
        origin_server_name: origin.origin_server_name.clone(),
        http_host_header: origin.http_host_header.clone(),
        http2_origin: origin.http2_origin,
        disable_chunked_encoding: origin.disable_chunked_encoding,
        match_sni_to_host: origin.match_sni_to_host,
        connect_timeout: origin.connect_timeout.clone(),
        tls_timeout: origin.tls_timeout.clone(),
        keep_alive_timeout: origin.keep_alive_timeout.clone(),
        keep_alive_connections: origin.keep_alive_connections,
        tcp_keep_alive: origin.tcp_keep_alive.clone(),
        no_happy_eyeballs: origin.no_happy_eyeballs,
        proxy_type: origin.proxy_type.clone(),
        ca_pool: origin.ca_pool.clone(),
    }
}

/// A stored route as the admin API shows it.
pub fn route(row: &crate::model::RouteRow) -> v1::Route {
    use crate::model::{Source, Status};
    let status = match row.status {
        Status::Active if !row.last_error.is_empty() => v1::RouteStatus::Error,
        Status::Active => v1::RouteStatus::Active,
        Status::PendingDeletion => v1::RouteStatus::PendingDeletion,
        Status::Conflict => v1::RouteStatus::Conflict,
        Status::Invalid => v1::RouteStatus::Invalid,
    };
    let source = match row.source {
        Source::Labels => v1::RouteSource::Labels,
        Source::Manual => v1::RouteSource::Manual,
    };
    v1::Route {
        hostname: row.spec.hostname.clone(),
        path: row.spec.path.clone(),
        service: row.spec.service.clone(),
        source: source as i32,
        status: status as i32,
        reason: row.reason.clone(),
        agent_id: row.spec.agent_id.clone(),
        container_id: row.spec.container_id.clone(),
        container_name: row.spec.container_name.clone(),
        service_name: row.spec.service_name.clone(),
        zone_name: row.spec.zone_name.clone(),
        origin_request: serde_json::from_str::<serde_json::Value>(&row.spec.origin_json)
            .ok()
            .filter(|json| json.as_object().is_some_and(|o| !o.is_empty()))
            .map(|json| origin_from_json(&json)),
        tunnel_id: String::new(),
        delete_at: row.delete_at.map(timestamp),
        last_error: row.last_error.clone(),
        tunnel_group: match row.source {
            Source::Manual => row.spec.tunnel_key.strip_prefix("group:").unwrap_or_default().to_string(),
            Source::Labels => String::new(),
        },
        revision: 0,
        updated_at: Some(timestamp(row.updated_at)),
        access: access_summary(&row.spec.access_json),
    }
}

/// A route's Access labels for people: "access.policy=authenticate, access.session_duration=1h".
pub fn access_summary(access_json: &str) -> String {
    match crate::reconcile::access_apps::labels_from_json(access_json) {
        Ok(labels) => {
            labels.iter().map(|(key, label)| format!("access.{key}={}", label.value)).collect::<Vec<_>>().join(", ")
        }
        Err(_) => "(unreadable)".into(),
    }
}

/// A stored route as ListRoutes (and AddManualRoute) shows it: with the id of the tunnel that
/// carries it, once that tunnel exists (`tunnel_ids`: tunnel key → Cloudflare tunnel id).
pub fn listed_route(row: &crate::model::RouteRow, tunnel_ids: &std::collections::HashMap<String, String>) -> v1::Route {
    v1::Route { tunnel_id: tunnel_ids.get(&row.spec.tunnel_key).cloned().unwrap_or_default(), ..route(row) }
}

/// cloudflared originRequest JSON back to the protobuf message.
fn origin_from_json(json: &serde_json::Value) -> v1::OriginRequest {
    let text = |key: &str| json.get(key).and_then(|v| v.as_str()).map(str::to_string);
    let flag = |key: &str| json.get(key).and_then(|v| v.as_bool());
    let secs = |key: &str| json.get(key).and_then(|v| v.as_u64()).map(|s| format!("{s}s"));
    v1::OriginRequest {
        no_tls_verify: flag("noTLSVerify"),
        origin_server_name: text("originServerName"),
        http_host_header: text("httpHostHeader"),
        http2_origin: flag("http2Origin"),
        disable_chunked_encoding: flag("disableChunkedEncoding"),
        match_sni_to_host: flag("matchSNItoHost"),
        connect_timeout: secs("connectTimeout"),
        tls_timeout: secs("tlsTimeout"),
        keep_alive_timeout: secs("keepAliveTimeout"),
        keep_alive_connections: json.get("keepAliveConnections").and_then(|v| v.as_u64()).map(|v| v as u32),
        tcp_keep_alive: secs("tcpKeepAlive"),
        no_happy_eyeballs: flag("noHappyEyeballs"),
        proxy_type: text("proxyType"),
        ca_pool: text("caPool"),
    }
}

/// Label-style origin options from the protobuf message (for manual routes).
pub fn origin_options(origin: &v1::OriginRequest) -> dockflare_common::labels::OriginOptions {
    dockflare_common::labels::OriginOptions {
        no_tls_verify: origin.no_tls_verify,
        origin_server_name: origin.origin_server_name.clone(),
        http_host_header: origin.http_host_header.clone(),
        http2_origin: origin.http2_origin,
        disable_chunked_encoding: origin.disable_chunked_encoding,
        match_sni_to_host: origin.match_sni_to_host,
        connect_timeout: origin.connect_timeout.clone(),
        tls_timeout: origin.tls_timeout.clone(),
        tcp_keep_alive: origin.tcp_keep_alive.clone(),
        keep_alive_timeout: origin.keep_alive_timeout.clone(),
        keep_alive_connections: origin.keep_alive_connections,
        no_happy_eyeballs: origin.no_happy_eyeballs,
        proxy_type: origin.proxy_type.clone(),
        ca_pool: origin.ca_pool.clone(),
    }
}

/// A `google.protobuf.Struct` as JSON (whole numbers stay integers).
pub fn json_of_struct(fields: &prost_types::Struct) -> serde_json::Value {
    serde_json::Value::Object(fields.fields.iter().map(|(key, value)| (key.clone(), json_of_value(value))).collect())
}

fn json_of_value(value: &prost_types::Value) -> serde_json::Value {
    use prost_types::value::Kind;
    use serde_json::Value;
    match &value.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(*b),
        Some(Kind::NumberValue(n)) if n.fract() == 0.0 && n.abs() < 9.0e15 => Value::from(*n as i64),
        Some(Kind::NumberValue(n)) => serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number),
        Some(Kind::StringValue(text)) => Value::String(text.clone()),
        Some(Kind::ListValue(list)) => Value::Array(list.values.iter().map(json_of_value).collect()),
        Some(Kind::StructValue(fields)) => json_of_struct(fields),
    }
}

/// JSON as a `google.protobuf.Struct` (a value that is not an object: an empty one).
pub fn struct_of_json(json: &serde_json::Value) -> prost_types::Struct {
    match value_of_json(json).kind {
        Some(prost_types::value::Kind::StructValue(fields)) => fields,
        _ => prost_types::Struct::default(),
    }
}

fn value_of_json(json: &serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    use serde_json::Value;
    let kind = match json {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        Value::String(text) => Kind::StringValue(text.clone()),
        Value::Array(items) => {
            Kind::ListValue(prost_types::ListValue { values: items.iter().map(value_of_json).collect() })
        }
        Value::Object(fields) => Kind::StructValue(prost_types::Struct {
            fields: fields.iter().map(|(key, value)| (key.clone(), value_of_json(value))).collect(),
        }),
    };
    prost_types::Value { kind: Some(kind) }
}

/// A stored Access policy as the admin API shows it.
pub fn access_policy(stored: &crate::model::StoredAccessPolicy) -> v1::AccessPolicy {
    let policy = &stored.policy;
    let rules = |rules: &[serde_json::Value]| rules.iter().map(struct_of_json).collect();
    v1::AccessPolicy {
        name: policy.name.clone(),
        decision: policy.decision.clone(),
        include: rules(&policy.include),
        exclude: rules(&policy.exclude),
        require: rules(&policy.require),
        session_duration: policy.session_duration.clone().unwrap_or_default(),
        source: match policy.source {
            crate::model::PolicySource::Api => v1::AccessPolicySource::Api,
            crate::model::PolicySource::File => v1::AccessPolicySource::File,
        } as i32,
        updated_at: Some(timestamp(policy.updated_at)),
        revision: u64::try_from(stored.revision).unwrap_or_default(),
        created_by: stored.created_by.clone(),
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
