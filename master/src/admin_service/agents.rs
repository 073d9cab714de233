//! Agents: list and read, revoke, remove (stopping its connector first), and the operator's
//! settings of one agent (tunnel group, hostname policy).

use super::paging::{self, PageRequest, Part};
use super::{required, AdminApi};
use crate::clock::now_millis;
use crate::convert;
use crate::grpc_status::{enqueue_status, store_status};
use crate::model::AgentRecord;
use dockflare::v1::{self, command, StopTunnel};
use std::time::Duration;
use tonic::{Request, Response, Status};

/// How long RemoveAgent waits for a connected agent to acknowledge the stop of its connector.
const REMOVAL_STOP_WAIT: Duration = Duration::from_secs(5);

pub(super) async fn list_agents(
    api: &AdminApi,
    request: Request<v1::ListAgentsRequest>,
) -> Result<Response<v1::ListAgentsResponse>, Status> {
    api.state.auth.admin(&request)?;
    let request = request.into_inner();
    let page = PageRequest::parse("ListAgents", request.page_size, &request.page_token)?;
    let status = match v1::AgentStatus::try_from(request.status) {
        Ok(v1::AgentStatus::Unspecified) => None,
        Ok(status) => Some(status),
        Err(_) => return Err(Status::invalid_argument(format!("status: unknown value {}", request.status))),
    };
    let group = request.tunnel_group.as_deref().map(str::trim);
    let wanted = |row: &AgentRecord| {
        group.is_none_or(|group| row.tunnel_group == group)
            && status.is_none_or(|status| convert::agent_status(&row.status) == status)
    };
    // Ordered by id: read the store from the token's id on until the page (and one more) is full.
    let mut after = page.after_text(0)?;
    let mut matched = Vec::new();
    loop {
        let rows = api
            .state
            .store
            .list_agents(&after, paging::MAX_PAGE)
            .await
            .map_err(|e| store_status("listing agents", e))?;
        let Some(last) = rows.last() else { break };
        after = last.id.clone();
        let more = rows.len() == paging::MAX_PAGE as usize;
        matched.extend(rows.into_iter().filter(|row| wanted(row)));
        if matched.len() > page.size || !more {
            break;
        }
    }
    let (rows, next_page_token) = page.trim(matched, |row| vec![Part::from(row.id.as_str())]);
    let agents = rows.iter().map(|row| convert::agent(row, api.state.sessions.is_connected(&row.id))).collect();
    Ok(Response::new(v1::ListAgentsResponse { agents, next_page_token }))
}

pub(super) async fn get_agent(
    api: &AdminApi,
    request: Request<v1::GetAgentRequest>,
) -> Result<Response<v1::GetAgentResponse>, Status> {
    api.state.auth.admin(&request)?;
    let id = required("id", &request.get_ref().id)?;
    let row = api
        .state
        .store
        .get_agent(id)
        .await
        .map_err(|e| store_status("reading the agent", e))?
        .ok_or_else(|| Status::not_found(format!("agent {id:?} does not exist")))?;
    let agent = convert::agent(&row, api.state.sessions.is_connected(&row.id));
    Ok(Response::new(v1::GetAgentResponse { agent: Some(agent) }))
}

pub(super) async fn revoke_agent(
    api: &AdminApi,
    request: Request<v1::RevokeAgentRequest>,
) -> Result<Response<v1::RevokeAgentResponse>, Status> {
    let admin = api.state.auth.admin(&request)?;
    let id = required("id", &request.get_ref().id)?;
    let row = api
        .state
        .store
        .revoke_agent(id, now_millis())
        .await
        .map_err(|e| store_status("revoking the agent", e))?
        .ok_or_else(|| Status::not_found(format!("agent {id:?} does not exist")))?;
    api.state.fanout.revoked(id).await;
    tracing::info!(message = "Agent revoked.", agent = %id, %admin);
    Ok(Response::new(v1::RevokeAgentResponse { agent: Some(convert::agent(&row, false)) }))
}

pub(super) async fn remove_agent(
    api: &AdminApi,
    request: Request<v1::RemoveAgentRequest>,
) -> Result<Response<v1::RemoveAgentResponse>, Status> {
    let admin = api.state.auth.admin(&request)?;
    let id = required("id", &request.get_ref().id)?.to_string();
    let agent = api
        .state
        .store
        .get_agent(&id)
        .await
        .map_err(|e| store_status("reading the agent", e))?
        .ok_or_else(|| Status::not_found(format!("agent {id:?} does not exist")))?;
    if agent.removed_at.is_none() && !agent.is_revoked() {
        let stop = StopTunnel { tunnel_id: String::new() };
        let (_, sequence) =
            api.state.commands.enqueue(&id, command::Kind::StopTunnel(stop)).await.map_err(enqueue_status)?;
        api.wait_acked(&id, sequence).await;
    }
    // Removal revokes: every call of the agent is refused from now on, and its streams end.
    api.state.store.mark_agent_removed(&id, now_millis()).await.map_err(|e| store_status("removing the agent", e))?;
    api.state.fanout.revoked(&id).await;
    tracing::info!(message = "Agent removed.", agent = %id, %admin);
    api.state.fanout.reconcile_now().await;
    let agent = api.state.store.get_agent(&id).await.map_err(|e| store_status("reading the agent", e))?;
    Ok(Response::new(v1::RemoveAgentResponse { agent: agent.map(|a| convert::agent(&a, false)) }))
}

pub(super) async fn set_agent_tunnel_group(
    api: &AdminApi,
    request: Request<v1::SetAgentTunnelGroupRequest>,
) -> Result<Response<v1::SetAgentTunnelGroupResponse>, Status> {
    let admin = api.state.auth.admin(&request)?;
    let request = request.into_inner();
    let id = required("id", &request.id)?;
    let group = request.tunnel_group.trim();
    crate::agent_service::validate::tunnel_group("tunnel_group", group)
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    let agent = api
        .state
        .store
        .set_agent_tunnel_group(id, group)
        .await
        .map_err(|e| store_status("setting the tunnel group", e))?
        .ok_or_else(|| Status::not_found(format!("agent {id:?} does not exist")))?;
    tracing::info!(message = "Agent moved to another tunnel group.", agent = %id, tunnel_group = %group, %admin);
    api.state.fanout.reconcile().await;
    Ok(Response::new(v1::SetAgentTunnelGroupResponse { agent: Some(convert::agent(&agent, false)) }))
}

pub(super) async fn set_agent_policy(
    api: &AdminApi,
    request: Request<v1::SetAgentPolicyRequest>,
) -> Result<Response<v1::SetAgentPolicyResponse>, Status> {
    let admin = api.state.auth.admin(&request)?;
    let request = request.into_inner();
    let id = required("id", &request.id)?;
    let policy = convert::hostname_policy_from("policy", request.policy.as_ref())?;
    let agent = api
        .state
        .store
        .set_agent_policy(id, &policy)
        .await
        .map_err(|e| store_status("setting the hostname policy", e))?
        .ok_or_else(|| Status::not_found(format!("agent {id:?} does not exist")))?;
    tracing::info!(
        message = "Agent hostname policy changed.",
        agent = %id,
        allowed_hostnames = %policy.allowed_hostnames.join(","),
        allow_wildcards = policy.allow_wildcards,
        allow_apex = policy.allow_apex,
        max_routes = policy.max_routes,
        %admin,
    );
    api.state.fanout.reconcile().await;
    Ok(Response::new(v1::SetAgentPolicyResponse { agent: Some(convert::agent(&agent, false)) }))
}

impl AdminApi {
    /// Waits (at most [`REMOVAL_STOP_WAIT`]) for a connected agent to acknowledge command
    /// `sequence`, so that a removed agent stops its connector before its streams end.
    async fn wait_acked(&self, agent_id: &str, sequence: u64) {
        let deadline = tokio::time::Instant::now() + REMOVAL_STOP_WAIT;
        while self.state.sessions.is_connected(agent_id) && tokio::time::Instant::now() < deadline {
            match self.state.store.get_agent(agent_id).await {
                Ok(Some(agent)) if agent.last_acked_command_seq >= sequence => return,
                Ok(_) => {}
                Err(error) => {
                    return tracing::warn!(message = "Could not read the agent being removed.", agent = %agent_id, %error)
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
