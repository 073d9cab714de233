//! What agents do and say: commands sent and listed, stored events, reported containers and the
//! diagnostics of their labels and policies.

use super::paging::{self, PageRequest, Part};
use super::{required, AdminApi};
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

pub(super) async fn list_commands(
    api: &AdminApi,
    request: Request<v1::ListCommandsRequest>,
) -> Result<Response<v1::ListCommandsResponse>, Status> {
    api.state.auth.admin(&request)?;
    let request = request.into_inner();
    let agent_id = required("agent_id", &request.agent_id)?;
    #[allow(deprecated)] // still honoured: limit
    let (page, after) = paging::log_page(
        "ListCommands",
        request.page_size,
        request.limit,
        &request.page_token,
        "after_sequence",
        request.after_sequence,
    )?;
    let rows = api
        .state
        .store
        .commands_after(agent_id, after, page.size as u32 + 1)
        .await
        .map_err(|e| store_status("listing commands", e))?;
    let (rows, next_page_token) = page.trim(rows, |row| vec![Part::Int(row.sequence as i64)]);
    Ok(Response::new(v1::ListCommandsResponse {
        commands: rows.iter().map(convert::command_record).collect(),
        next_page_token,
    }))
}

pub(super) async fn list_events(
    api: &AdminApi,
    request: Request<v1::ListEventsRequest>,
) -> Result<Response<v1::ListEventsResponse>, Status> {
    api.state.auth.admin(&request)?;
    let request = request.into_inner();
    let agent_id = required("agent_id", &request.agent_id)?;
    #[allow(deprecated)] // still honoured: limit
    let (page, after) = paging::log_page(
        "ListEvents",
        request.page_size,
        request.limit,
        &request.page_token,
        "after_event_id",
        request.after_event_id,
    )?;
    let rows = api
        .state
        .store
        .list_events(agent_id, after, page.size as u32 + 1)
        .await
        .map_err(|e| store_status("listing events", e))?;
    let (rows, next_page_token) = page.trim(rows, |row| vec![Part::Int(row.event_id as i64)]);
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
    Ok(Response::new(v1::ListEventsResponse { events, next_page_token }))
}

pub(super) async fn list_containers(
    api: &AdminApi,
    request: Request<v1::ListContainersRequest>,
) -> Result<Response<v1::ListContainersResponse>, Status> {
    api.state.auth.admin(&request)?;
    let request = request.into_inner();
    let page = PageRequest::parse("ListContainers", request.page_size, &request.page_token)?;
    let agent_id = Some(request.agent_id.as_str()).filter(|id| !id.is_empty());
    let rows = api.state.store.list_containers(agent_id).await.map_err(|e| store_status("listing containers", e))?;
    let keyed = rows
        .iter()
        .map(|row| {
            let key = vec![Part::from(row.agent_id.as_str()), Part::from(row.container_id.as_str())];
            let record = v1::ContainerRecord {
                agent_id: row.agent_id.clone(),
                container: v1::Container::decode(row.payload.as_slice()).ok(),
                first_seen_at: Some(convert::timestamp(row.first_seen_at)),
                updated_at: Some(convert::timestamp(row.updated_at)),
            };
            (key, record)
        })
        .collect();
    let (containers, next_page_token) = page.page(keyed);
    Ok(Response::new(v1::ListContainersResponse { containers, next_page_token }))
}

pub(super) async fn list_diagnostics(
    api: &AdminApi,
    request: Request<v1::ListDiagnosticsRequest>,
) -> Result<Response<v1::ListDiagnosticsResponse>, Status> {
    api.state.auth.admin(&request)?;
    let request = request.into_inner();
    let page = PageRequest::parse("ListDiagnostics", request.page_size, &request.page_token)?;
    let agent_id = Some(request.agent_id.as_str()).filter(|id| !id.is_empty());
    let rows = api.state.store.list_containers(agent_id).await.map_err(|e| store_status("listing containers", e))?;
    // Label problems, and the routes the agents' hostname policies refuse (on their container).
    let diagnostics = crate::views::diagnostics(&api.state.store, &rows, api.state.route_quota, agent_id)
        .await
        .map_err(|e| store_status("screening routes", e))?;
    let keyed = diagnostics
        .into_iter()
        .map(|record| {
            let diagnostic = record.diagnostic.clone().unwrap_or_default();
            let key =
                [&record.agent_id, &record.container_id, &diagnostic.label, &diagnostic.value, &diagnostic.reason]
                    .into_iter()
                    .map(|part| Part::from(part.as_str()))
                    .collect();
            (key, record)
        })
        .collect();
    let (diagnostics, next_page_token) = page.page(paging::distinct(keyed));
    Ok(Response::new(v1::ListDiagnosticsResponse { diagnostics, next_page_token }))
}
