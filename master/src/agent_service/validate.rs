//! Checks of what agents send, as plain functions. Each error names the
//! field and the reason; the caller turns it into INVALID_ARGUMENT.

use crate::convert::{docker_mode_name, millis, node_role_name};
use crate::store::AgentRegistration;
use dockflare::v1::{agent_event::Event, AgentEvent, ConnectorState, Container, DockerMode, NodeRole, RegisterRequest};

const MAX_NAME: usize = 128;
const MAX_TEXT: usize = 4096;
const MAX_CAPABILITIES: usize = 64;
/// More managers than any swarm runs (Docker recommends at most 7).
const MAX_SWARM_MANAGERS: usize = 32;

/// A field that failed validation, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

fn fail<T>(field: impl Into<String>, reason: impl Into<String>) -> Result<T, FieldError> {
    Err(FieldError { field: field.into(), reason: reason.into() })
}

fn text(field: &str, value: &str, max: usize) -> Result<(), FieldError> {
    if value.chars().count() > max {
        return fail(field, format!("longer than {max} characters"));
    }
    if value.chars().any(char::is_control) {
        return fail(field, "contains control characters");
    }
    Ok(())
}

/// Docker's ids (cluster, node) are 25 lowercase alphanumerics; accept up to 64 of a-z and 0-9.
fn swarm_id(field: &str, value: &str) -> Result<(), FieldError> {
    if value.len() > 64 || !value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
        return fail(field, "a Docker id: at most 64 characters of a-z and 0-9");
    }
    Ok(())
}

/// Checks a tunnel group name ("" is allowed: a tunnel of the agent's own).
pub fn tunnel_group(field: &str, value: &str) -> Result<(), FieldError> {
    if !value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') || value.len() > 63 {
        return fail(field, "use at most 63 characters of a-z, A-Z, 0-9, '-' and '_'");
    }
    Ok(())
}

/// Validates a Register request.
pub fn registration(request: &RegisterRequest) -> Result<AgentRegistration, FieldError> {
    let docker_mode = match DockerMode::try_from(request.docker_mode) {
        Err(_) => return fail("docker_mode", format!("unknown value {}", request.docker_mode)),
        Ok(DockerMode::Unspecified) => {
            return fail("docker_mode", "must be DOCKER_MODE_STANDALONE or DOCKER_MODE_SWARM")
        }
        Ok(mode) => mode,
    };
    let Ok(node_role) = NodeRole::try_from(request.node_role) else {
        return fail("node_role", format!("unknown value {}", request.node_role));
    };
    text("display_name", &request.display_name, MAX_NAME)?;
    text("version", &request.version, 64)?;
    text("node_id", &request.node_id, MAX_NAME)?;
    text("hostname", &request.hostname, 253)?;
    tunnel_group("tunnel_group", &request.tunnel_group)?;
    swarm_id("swarm_cluster_id", &request.swarm_cluster_id)?;
    if request.swarm_manager_node_ids.len() > MAX_SWARM_MANAGERS {
        return fail("swarm_manager_node_ids", format!("at most {MAX_SWARM_MANAGERS} managers"));
    }
    for (index, id) in request.swarm_manager_node_ids.iter().enumerate() {
        swarm_id(&format!("swarm_manager_node_ids[{index}]"), id)?;
        if id.is_empty() {
            return fail(format!("swarm_manager_node_ids[{index}]"), "empty");
        }
    }
    if request.label_prefix.len() > 64
        || !request.label_prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return fail("label_prefix", "use at most 64 characters of a-z, A-Z, 0-9, '-', '_' and '.'");
    }
    if request.capabilities.len() > MAX_CAPABILITIES {
        return fail("capabilities", format!("more than {MAX_CAPABILITIES} entries"));
    }
    for (index, capability) in request.capabilities.iter().enumerate() {
        if capability.is_empty()
            || capability.len() > 64
            || capability.contains(',')
            || capability.chars().any(char::is_control)
        {
            return fail(format!("capabilities[{index}]"), "must be 1-64 characters without commas");
        }
    }
    let display_name =
        if request.display_name.trim().is_empty() { request.hostname.clone() } else { request.display_name.clone() };
    Ok(AgentRegistration {
        display_name,
        hostname: request.hostname.clone(),
        docker_mode: docker_mode_name(docker_mode).to_string(),
        node_id: request.node_id.clone(),
        node_role: node_role_name(node_role).to_string(),
        version: request.version.clone(),
        tunnel_group: request.tunnel_group.clone(),
        capabilities: request.capabilities.clone(),
        label_prefix: request.label_prefix.clone(),
        swarm_cluster_id: request.swarm_cluster_id.clone(),
        swarm_managers: request.swarm_manager_node_ids.clone(),
    })
}

/// The acknowledgement a command_result carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub command_id: String,
    pub sequence: u64,
    pub success: bool,
    pub error: String,
}

/// An event that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidEvent {
    pub kind: &'static str,
    pub occurred_at: i64,
    pub ack: Option<Ack>,
}

fn container(field: &str, container: &Container) -> Result<(), FieldError> {
    if container.id.is_empty() {
        return fail(format!("{field}.id"), "required");
    }
    text(&format!("{field}.id"), &container.id, MAX_NAME)?;
    text(&format!("{field}.name"), &container.name, 256)?;
    Ok(())
}

/// Validates one event.
pub fn event(event: &AgentEvent) -> Result<ValidEvent, FieldError> {
    if event.event_id == 0 {
        return fail("event_id", "must be non-zero");
    }
    if event.event_id > i64::MAX as u64 {
        return fail("event_id", "must be below 2^63");
    }
    let Some(occurred_at) = &event.occurred_at else { return fail("occurred_at", "required") };
    if !(0..1_000_000_000).contains(&occurred_at.nanos) {
        return fail("occurred_at.nanos", "must be within 0..1e9");
    }
    let occurred_at = millis(occurred_at);
    let mut ack = None;
    let kind = match &event.event {
        None => {
            return fail(
                "event",
                "exactly one of container_start, container_stop, heartbeat, status_report, tunnel_status, command_result must be set",
            )
        }
        Some(Event::ContainerStart(c)) => {
            container("container_start", c)?;
            "container_start"
        }
        Some(Event::ContainerStop(c)) => {
            container("container_stop", c)?;
            "container_stop"
        }
        Some(Event::Heartbeat(_)) => "heartbeat",
        Some(Event::StatusReport(report)) => {
            for (index, c) in report.containers.iter().enumerate() {
                container(&format!("status_report.containers[{index}]"), c)?;
            }
            "status_report"
        }
        Some(Event::TunnelStatus(status)) => {
            if ConnectorState::try_from(status.state).is_err() {
                return fail("tunnel_status.state", format!("unknown value {}", status.state));
            }
            text("tunnel_status.detail", &status.detail, MAX_TEXT)?;
            "tunnel_status"
        }
        Some(Event::CommandResult(result)) => {
            if result.sequence == 0 || result.sequence > i64::MAX as u64 {
                return fail("command_result.sequence", "must be a command sequence (non-zero)");
            }
            if result.command_id.is_empty() {
                return fail("command_result.command_id", "required");
            }
            text("command_result.command_id", &result.command_id, MAX_NAME)?;
            if result.error.chars().count() > MAX_TEXT {
                return fail("command_result.error", format!("longer than {MAX_TEXT} characters"));
            }
            ack = Some(Ack {
                command_id: result.command_id.clone(),
                sequence: result.sequence,
                success: result.success,
                error: result.error.clone(),
            });
            "command_result"
        }
    };
    Ok(ValidEvent { kind, occurred_at, ack })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dockflare::v1::{CommandResult, Heartbeat, TunnelStatus};
    use prost_types::Timestamp;

    fn base(event: Option<Event>) -> AgentEvent {
        AgentEvent { event_id: 7, occurred_at: Some(Timestamp { seconds: 10, nanos: 0 }), event }
    }

    #[test]
    fn invalid_events_name_the_field_and_reason() {
        let cases: Vec<(AgentEvent, &str)> = vec![
            (
                AgentEvent { event_id: 0, ..base(Some(Event::Heartbeat(Heartbeat::default()))) },
                "event_id: must be non-zero",
            ),
            (
                AgentEvent { occurred_at: None, ..base(Some(Event::Heartbeat(Heartbeat::default()))) },
                "occurred_at: required",
            ),
            (base(None), "event: exactly one of"),
            (base(Some(Event::ContainerStart(Container::default()))), "container_start.id: required"),
            (
                base(Some(Event::TunnelStatus(TunnelStatus { state: 42, ..Default::default() }))),
                "tunnel_status.state: unknown value 42",
            ),
            (
                base(Some(Event::CommandResult(CommandResult { command_id: "c".into(), ..Default::default() }))),
                "command_result.sequence: must be a command sequence",
            ),
        ];
        for (event, expected) in cases {
            let error = super::event(&event).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(error.starts_with(expected), "got {error:?}, want {expected:?}");
        }
    }

    #[test]
    fn a_command_result_carries_its_ack() {
        let result = CommandResult { command_id: "c1".into(), sequence: 3, success: false, error: "boom".into() };
        let valid = super::event(&base(Some(Event::CommandResult(result)))).ok();
        assert_eq!(
            valid.and_then(|v| v.ack),
            Some(Ack { command_id: "c1".into(), sequence: 3, success: false, error: "boom".into() })
        );
    }

    #[test]
    fn registration_rejects_unknown_enums() {
        let request = RegisterRequest { docker_mode: 9, ..Default::default() };
        assert_eq!(registration(&request).err().map(|e| e.to_string()), Some("docker_mode: unknown value 9".into()));
        let request = RegisterRequest { docker_mode: 1, node_role: 5, ..Default::default() };
        assert_eq!(registration(&request).err().map(|e| e.to_string()), Some("node_role: unknown value 5".into()));
        let request = RegisterRequest { docker_mode: 0, ..Default::default() };
        assert!(registration(&request).is_err());
        let request = RegisterRequest { docker_mode: 2, hostname: "h".into(), ..Default::default() };
        assert_eq!(registration(&request).map(|r| r.display_name).ok(), Some("h".into()));
    }
}
