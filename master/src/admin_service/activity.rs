//! What agents do and say: commands sent and listed, stored events, reported containers and the
//! diagnostics of their labels and policies.

use super::{page_size, required, AdminApi};
use crate::convert;
use crate::grpc_status::{enqueue_status, store_status};
use dockflare::v1::{self, command, send_command_request};
use prost::Message;
use tonic::{Request, Response, Status};

pub(super) async fn send_command(
    api: &AdminApi,
    request: Request<v1::SendCommandRequest>,
) -> Result<Response<v1::SendCommandResponse>, Status> {
    api.state.auth.admin(&request)?;
    let request = request.into_inner();
    let agent_id = required("agent_id", &request.agent_id)?.to_string();
    let kind = match request.kind {
        None => {
            return Err(Status::invalid_argument(
                "kind: exactly one of start_tunnel, stop_tunnel, update_tunnel_config, resync must be set",
            ))
        }
        Some(send_command_request::Kind::StartTunnel(start)) => {
            required("start_tunnel.tunnel_id", &start.tunnel_id)?;
            required("start_tunnel.token", &start.token)?;
            command::Kind::StartTunnel(start)
        }
        Some(send_command_request::Kind::StopTunnel(stop)) => command::Kind::StopTunnel(stop),
        Some(send_command_request::Kind::UpdateTunnelConfig(update)) => command::Kind::UpdateTunnelConfig(update),
        Some(send_command_request::Kind::Resync(resync)) => command::Kind::Resync(resync),
    };
    let queued = api.state.commands.enqueue(&agent_id, kind).await.map_err(enqueue_status)?;
    Ok(Response::new(v1::SendCommandResponse { command_id: queued.0, sequence: queued.1 }))
}

#[allow(deprecated)]
pub(super) async fn list_commands(
    api: &AdminApi,
    request: Request<v1::ListCommandsRequest>,
) -> Result<Response<v1::ListCommandsResponse>, Status> {
    api.state.auth.admin(&request)?;
    let request = request.into_inner();
    let agent_id = required("agent_id", &request.agent_id)?;
    let rows = api
        .state
        .store
        .commands_after(agent_id, request.after_sequence, page_size(request.limit))
        .await
        .map_err(|e| store_status("listing commands", e))?;
    Ok(Response::new(v1::ListCommandsResponse {
        commands: rows.iter().map(convert::command_record).collect(),
        next_page_token: String::new(),
    }))
}

#[allow(deprecated)]
pub(super) async fn list_events(
    api: &AdminApi,
    request: Request<v1::ListEventsRequest>,
) -> Result<Response<v1::ListEventsResponse>, Status> {
    api.state.auth.admin(&request)?;
    let request = request.into_inner();
    let agent_id = required("agent_id", &request.agent_id)?;
    let rows = api
        .state
        .store
        .list_events(agent_id, request.after_event_id, page_size(request.limit))
        .await
        .map_err(|e| store_status("listing events", e))?;
    let events = rows
        .iter()
        .map(|row| v1::EventRecord {
            agent_id: row.agent_id.clone(),
            event_id: row.event_id,
            kind: row.kind.clone(),
            occurred_at: Some(convert::timestamp(row.occurred_at)),
            received_at: Some(convert::timestamp(row.received_at)),
            event: v1::AgentEvent::decode(row.payload.as_slice()).ok(),
        })
        .collect();
    Ok(Response::new(v1::ListEventsResponse { events, next_page_token: String::new() }))
}

pub(super) async fn list_containers(
    api: &AdminApi,
    request: Request<v1::ListContainersRequest>,
) -> Result<Response<v1::ListContainersResponse>, Status> {
    api.state.auth.admin(&request)?;
    let agent_id = Some(request.get_ref().agent_id.as_str()).filter(|id| !id.is_empty());
    let rows = api.state.store.list_containers(agent_id).await.map_err(|e| store_status("listing containers", e))?;
    let containers = rows
        .iter()
        .map(|row| v1::ContainerRecord {
            agent_id: row.agent_id.clone(),
            container: v1::Container::decode(row.payload.as_slice()).ok(),
            first_seen_at: Some(convert::timestamp(row.first_seen_at)),
            updated_at: Some(convert::timestamp(row.updated_at)),
        })
        .collect();
    Ok(Response::new(v1::ListContainersResponse { containers, next_page_token: String::new() }))
}

pub(super) async fn list_diagnostics(
    api: &AdminApi,
    request: Request<v1::ListDiagnosticsRequest>,
) -> Result<Response<v1::ListDiagnosticsResponse>, Status> {
    api.state.auth.admin(&request)?;
    let agent_id = Some(request.get_ref().agent_id.as_str()).filter(|id| !id.is_empty());
    let rows = api.state.store.list_containers(agent_id).await.map_err(|e| store_status("listing containers", e))?;
    let mut diagnostics = Vec::new();
    for row in &rows {
        let Ok(container) = v1::Container::decode(row.payload.as_slice()) else { continue };
        diagnostics.extend(container.diagnostics.into_iter().map(|diagnostic| v1::DiagnosticRecord {
            agent_id: row.agent_id.clone(),
            container_id: row.container_id.clone(),
            container_name: row.name.clone(),
            diagnostic: Some(diagnostic),
        }));
    }
    // Routes the agents' hostname policies refuse: a diagnostic on their container.
    let refusals = crate::reconcile::policy_refusals(&api.state.store, &rows, api.state.route_quota)
        .await
        .map_err(|e| store_status("screening routes", e))?;
    diagnostics.extend(refusals.into_iter().filter(|r| agent_id.is_none_or(|id| id == r.agent_id)).map(|refusal| {
        v1::DiagnosticRecord {
            agent_id: refusal.agent_id,
            container_id: refusal.container_id,
            container_name: refusal.container_name,
            diagnostic: Some(v1::LabelDiagnostic {
                label: "hostname".into(),
                value: format!("{}{}", refusal.hostname, refusal.path),
                reason: refusal.reason,
            }),
        }
    }));
    Ok(Response::new(v1::ListDiagnosticsResponse { diagnostics, next_page_token: String::new() }))
}
