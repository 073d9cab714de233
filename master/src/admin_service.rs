//! `dockflare.v1.AdminService`: join tokens, agents and their command and
//! event logs, for operators (grpcurl) and integrations. Every call needs an
//! admin certificate.

use crate::clock::now_millis;
use crate::convert;
use crate::grpc_status::{enqueue_status, store_status};
use crate::state::SharedState;
use crate::store::JoinTokenRow;
use dockflare::v1::admin_service_server::AdminService;
use dockflare::v1::{self, command, send_command_request, StopTunnel};
use dockflare_common::join_token::{certificate_digest, JoinToken};
use prost::Message;
use std::collections::HashMap;
use std::time::Duration;
use tonic::{Request, Response, Status};

const DEFAULT_TOKEN_TTL_SECONDS: u64 = 24 * 3600;
const MAX_TOKEN_TTL_SECONDS: u64 = 365 * 24 * 3600;
const MAX_TOKEN_USES: u32 = 100_000;
const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;

/// The AdminService implementation.
pub struct AdminApi {
    state: SharedState,
}

impl AdminApi {
    pub fn new(state: SharedState) -> AdminApi {
        AdminApi { state }
    }

    /// Every agent.
    async fn all_agents(&self) -> Result<Vec<crate::store::AgentRecord>, Status> {
        let mut agents = Vec::new();
        let mut after = String::new();
        loop {
            let page =
                self.state.store.list_agents(&after, MAX_PAGE).await.map_err(|e| store_status("listing agents", e))?;
            let Some(last) = page.last() else { break };
            after = last.id.clone();
            agents.extend(page);
        }
        Ok(agents)
    }
}

/// A new join token for `ca_der`'s CA, and the row to store for it.
pub fn new_join_token(
    ca_der: &[u8],
    request: &v1::CreateJoinTokenRequest,
    now: i64,
) -> Result<(JoinToken, JoinTokenRow), Status> {
    let v1::CreateJoinTokenRequest { ttl_seconds, max_uses, description, tunnel_group, policy } = request;
    let policy = convert::hostname_policy_from("policy", policy.as_ref())?;
    let (ttl_seconds, max_uses) = (*ttl_seconds, *max_uses);
    crate::agent_service::validate::tunnel_group("tunnel_group", tunnel_group.trim())
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    let ttl = if ttl_seconds == 0 { DEFAULT_TOKEN_TTL_SECONDS } else { ttl_seconds };
    if ttl > MAX_TOKEN_TTL_SECONDS {
        return Err(Status::invalid_argument(format!("ttl_seconds: at most {MAX_TOKEN_TTL_SECONDS} (one year)")));
    }
    let max_uses = if max_uses == 0 { 1 } else { max_uses };
    if max_uses > MAX_TOKEN_USES {
        return Err(Status::invalid_argument(format!("max_uses: at most {MAX_TOKEN_USES}")));
    }
    if description.chars().count() > 256 || description.chars().any(char::is_control) {
        return Err(Status::invalid_argument("description: at most 256 printable characters"));
    }
    let token = JoinToken::generate(certificate_digest(ca_der));
    let row = JoinTokenRow {
        id: token.id.clone(),
        description: description.to_string(),
        created_at: now,
        expires_at: now.saturating_add((ttl as i64).saturating_mul(1000)),
        max_uses,
        uses: 0,
        revoked: false,
        tunnel_group: tunnel_group.trim().to_string(),
        policy,
    };
    Ok((token, row))
}

/// How long RemoveAgent waits for a connected agent to acknowledge the stop of its connector.
const REMOVAL_STOP_WAIT: Duration = Duration::from_secs(5);

fn page_size(requested: u32) -> u32 {
    match requested {
        0 => DEFAULT_PAGE,
        n => n.min(MAX_PAGE),
    }
}

fn required<'a>(field: &str, value: &'a str) -> Result<&'a str, Status> {
    if value.is_empty() {
        Err(Status::invalid_argument(format!("{field}: required")))
    } else {
        Ok(value)
    }
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

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn create_join_token(
        &self,
        request: Request<v1::CreateJoinTokenRequest>,
    ) -> Result<Response<v1::CreateJoinTokenResponse>, Status> {
        let admin = self.state.auth.admin(&request)?;
        let request = request.into_inner();
        let (token, row) = new_join_token(self.state.ca.certificate_der(), &request, now_millis())?;
        self.state
            .store
            .insert_join_token(&row, &token.secret_hash())
            .await
            .map_err(|e| store_status("storing the join token", e))?;
        tracing::info!(message = "Join token created.", token_id = %row.id, max_uses = row.max_uses, tunnel_group = %row.tunnel_group, %admin);
        Ok(Response::new(v1::CreateJoinTokenResponse { token: token.expose(), info: Some(convert::join_token(&row)) }))
    }

    async fn list_join_tokens(
        &self,
        request: Request<v1::ListJoinTokensRequest>,
    ) -> Result<Response<v1::ListJoinTokensResponse>, Status> {
        self.state.auth.admin(&request)?;
        let rows = self.state.store.list_join_tokens().await.map_err(|e| store_status("listing join tokens", e))?;
        Ok(Response::new(v1::ListJoinTokensResponse { tokens: rows.iter().map(convert::join_token).collect() }))
    }

    async fn revoke_join_token(
        &self,
        request: Request<v1::RevokeJoinTokenRequest>,
    ) -> Result<Response<v1::RevokeJoinTokenResponse>, Status> {
        let admin = self.state.auth.admin(&request)?;
        let id = required("id", &request.get_ref().id)?;
        let row = self
            .state
            .store
            .revoke_join_token(id, now_millis())
            .await
            .map_err(|e| store_status("revoking the join token", e))?
            .ok_or_else(|| Status::not_found(format!("join token {id:?} does not exist")))?;
        tracing::info!(message = "Join token revoked.", token_id = %row.id, %admin);
        Ok(Response::new(v1::RevokeJoinTokenResponse { token: Some(convert::join_token(&row)) }))
    }

    async fn list_agents(
        &self,
        request: Request<v1::ListAgentsRequest>,
    ) -> Result<Response<v1::ListAgentsResponse>, Status> {
        self.state.auth.admin(&request)?;
        let request = request.into_inner();
        let limit = page_size(request.page_size);
        let rows = self
            .state
            .store
            .list_agents(&request.page_token, limit)
            .await
            .map_err(|e| store_status("listing agents", e))?;
        let next_page_token = if rows.len() == limit as usize {
            rows.last().map(|r| r.id.clone()).unwrap_or_default()
        } else {
            String::new()
        };
        let agents = rows.iter().map(|row| convert::agent(row, self.state.sessions.is_connected(&row.id))).collect();
        Ok(Response::new(v1::ListAgentsResponse { agents, next_page_token }))
    }

    async fn get_agent(&self, request: Request<v1::GetAgentRequest>) -> Result<Response<v1::GetAgentResponse>, Status> {
        self.state.auth.admin(&request)?;
        let id = required("id", &request.get_ref().id)?;
        let row = self
            .state
            .store
            .get_agent(id)
            .await
            .map_err(|e| store_status("reading the agent", e))?
            .ok_or_else(|| Status::not_found(format!("agent {id:?} does not exist")))?;
        let agent = convert::agent(&row, self.state.sessions.is_connected(&row.id));
        Ok(Response::new(v1::GetAgentResponse { agent: Some(agent) }))
    }

    async fn revoke_agent(
        &self,
        request: Request<v1::RevokeAgentRequest>,
    ) -> Result<Response<v1::RevokeAgentResponse>, Status> {
        let admin = self.state.auth.admin(&request)?;
        let id = required("id", &request.get_ref().id)?;
        let row = self
            .state
            .store
            .revoke_agent(id, now_millis())
            .await
            .map_err(|e| store_status("revoking the agent", e))?
            .ok_or_else(|| Status::not_found(format!("agent {id:?} does not exist")))?;
        self.state.fanout.revoked(id).await;
        tracing::info!(message = "Agent revoked.", agent = %id, %admin);
        Ok(Response::new(v1::RevokeAgentResponse { agent: Some(convert::agent(&row, false)) }))
    }

    async fn send_command(
        &self,
        request: Request<v1::SendCommandRequest>,
    ) -> Result<Response<v1::SendCommandResponse>, Status> {
        self.state.auth.admin(&request)?;
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
        let queued = self.state.commands.enqueue(&agent_id, kind).await.map_err(enqueue_status)?;
        Ok(Response::new(v1::SendCommandResponse { command_id: queued.0, sequence: queued.1 }))
    }

    async fn list_commands(
        &self,
        request: Request<v1::ListCommandsRequest>,
    ) -> Result<Response<v1::ListCommandsResponse>, Status> {
        self.state.auth.admin(&request)?;
        let request = request.into_inner();
        let agent_id = required("agent_id", &request.agent_id)?;
        let rows = self
            .state
            .store
            .commands_after(agent_id, request.after_sequence, page_size(request.limit))
            .await
            .map_err(|e| store_status("listing commands", e))?;
        Ok(Response::new(v1::ListCommandsResponse { commands: rows.iter().map(convert::command_record).collect() }))
    }

    async fn list_events(
        &self,
        request: Request<v1::ListEventsRequest>,
    ) -> Result<Response<v1::ListEventsResponse>, Status> {
        self.state.auth.admin(&request)?;
        let request = request.into_inner();
        let agent_id = required("agent_id", &request.agent_id)?;
        let rows = self
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
        Ok(Response::new(v1::ListEventsResponse { events }))
    }

    async fn list_containers(
        &self,
        request: Request<v1::ListContainersRequest>,
    ) -> Result<Response<v1::ListContainersResponse>, Status> {
        self.state.auth.admin(&request)?;
        let agent_id = Some(request.get_ref().agent_id.as_str()).filter(|id| !id.is_empty());
        let rows =
            self.state.store.list_containers(agent_id).await.map_err(|e| store_status("listing containers", e))?;
        let containers = rows
            .iter()
            .map(|row| v1::ContainerRecord {
                agent_id: row.agent_id.clone(),
                container: v1::Container::decode(row.payload.as_slice()).ok(),
                first_seen_at: Some(convert::timestamp(row.first_seen_at)),
                updated_at: Some(convert::timestamp(row.updated_at)),
            })
            .collect();
        Ok(Response::new(v1::ListContainersResponse { containers }))
    }

    async fn list_diagnostics(
        &self,
        request: Request<v1::ListDiagnosticsRequest>,
    ) -> Result<Response<v1::ListDiagnosticsResponse>, Status> {
        self.state.auth.admin(&request)?;
        let agent_id = Some(request.get_ref().agent_id.as_str()).filter(|id| !id.is_empty());
        let rows =
            self.state.store.list_containers(agent_id).await.map_err(|e| store_status("listing containers", e))?;
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
        let refusals = crate::reconcile::policy_refusals(&self.state.store, &rows, self.state.route_quota)
            .await
            .map_err(|e| store_status("screening routes", e))?;
        diagnostics.extend(refusals.into_iter().filter(|r| agent_id.is_none_or(|id| id == r.agent_id)).map(
            |refusal| v1::DiagnosticRecord {
                agent_id: refusal.agent_id,
                container_id: refusal.container_id,
                container_name: refusal.container_name,
                diagnostic: Some(v1::LabelDiagnostic {
                    label: "hostname".into(),
                    value: format!("{}{}", refusal.hostname, refusal.path),
                    reason: refusal.reason,
                }),
            },
        ));
        Ok(Response::new(v1::ListDiagnosticsResponse { diagnostics }))
    }

    async fn list_routes(
        &self,
        request: Request<v1::ListRoutesRequest>,
    ) -> Result<Response<v1::ListRoutesResponse>, Status> {
        self.state.auth.admin(&request)?;
        let agent_filter = request.get_ref().agent_id.clone();
        let table = self.state.store.load_route_table().await.map_err(|e| store_status("listing routes", e))?;
        let rows = table.rows;
        let tunnels = self.state.store.list_tunnels().await.map_err(|e| store_status("listing tunnels", e))?;
        let tunnel_ids: HashMap<&str, &str> =
            tunnels.iter().map(|t| (t.tunnel_key.as_str(), t.tunnel_id.as_str())).collect();
        let mut routes: Vec<v1::Route> = rows
            .iter()
            .filter(|row| agent_filter.is_empty() || row.spec.agent_id == agent_filter)
            .map(|row| {
                let mut route = convert::route(row);
                route.tunnel_id =
                    tunnel_ids.get(row.spec.tunnel_key.as_str()).map(|id| id.to_string()).unwrap_or_default();
                route
            })
            .collect();
        // Rows this master cannot read are listed too (status unspecified), with why.
        if agent_filter.is_empty() {
            routes.extend(table.corrupt.iter().map(|corrupt| v1::Route {
                hostname: corrupt.hostname.clone(),
                path: corrupt.path.clone(),
                reason: format!(
                    "this master cannot read the stored row (owner {}): {}; it is left alone (not routed, not deleted)",
                    corrupt.owner, corrupt.problem
                ),
                ..Default::default()
            }));
        }
        Ok(Response::new(v1::ListRoutesResponse { routes }))
    }

    async fn add_manual_route(
        &self,
        request: Request<v1::AddManualRouteRequest>,
    ) -> Result<Response<v1::AddManualRouteResponse>, Status> {
        let admin = self.state.auth.admin(&request)?;
        let request = request.into_inner();
        let route = crate::manual_routes::validate(&request, now_millis())?;
        if let Some(agent_id) = route.tunnel_key.strip_prefix("agent:") {
            let agent = self.state.store.get_agent(agent_id).await.map_err(|e| store_status("reading the agent", e))?;
            if agent.is_none_or(|a| a.removed_at.is_some()) {
                return Err(Status::not_found(format!("agent_id: agent {agent_id:?} does not exist")));
            }
        }
        self.state.store.put_manual_route(&route).await.map_err(|e| store_status("storing the manual route", e))?;
        tracing::info!(message = "Manual route added.", hostname = %route.hostname, path = %route.path, service = %route.service, %admin);
        self.state.fanout.reconcile_now().await;
        let rows = self.state.store.load_routes().await.map_err(|e| store_status("listing routes", e))?;
        let stored =
            rows.iter().find(|r| r.owner == "manual" && r.spec.hostname == route.hostname && r.spec.path == route.path);
        Ok(Response::new(v1::AddManualRouteResponse { route: stored.map(convert::route) }))
    }

    async fn delete_manual_route(
        &self,
        request: Request<v1::DeleteManualRouteRequest>,
    ) -> Result<Response<v1::DeleteManualRouteResponse>, Status> {
        let admin = self.state.auth.admin(&request)?;
        let request = request.into_inner();
        let hostname = dockflare_common::labels::values::hostname(&request.hostname)
            .map_err(|reason| Status::invalid_argument(format!("hostname: {reason}")))?;
        let path = dockflare_common::labels::values::path(&request.path)
            .map_err(|reason| Status::invalid_argument(format!("path: {reason}")))?;
        let existed = self
            .state
            .store
            .delete_manual_route(&hostname, &path)
            .await
            .map_err(|e| store_status("deleting the manual route", e))?;
        if !existed {
            return Err(Status::not_found(format!("no manual route for {hostname}{path}")));
        }
        tracing::info!(message = "Manual route deleted.", %hostname, %path, %admin);
        self.state.fanout.reconcile_now().await;
        Ok(Response::new(v1::DeleteManualRouteResponse {}))
    }

    async fn list_tunnels(
        &self,
        request: Request<v1::ListTunnelsRequest>,
    ) -> Result<Response<v1::ListTunnelsResponse>, Status> {
        self.state.auth.admin(&request)?;
        let tunnels = self.state.store.list_tunnels().await.map_err(|e| store_status("listing tunnels", e))?;
        let routes = self.state.store.load_routes().await.map_err(|e| store_status("listing routes", e))?;
        let agents = self.all_agents().await?;
        let tunnels = tunnels
            .iter()
            .map(|tunnel| v1::Tunnel {
                id: tunnel.tunnel_id.clone(),
                name: tunnel.name.clone(),
                key: tunnel.tunnel_key.clone(),
                status: tunnel.status.clone(),
                connector_count: tunnel.connector_count.max(0) as u32,
                agent_ids: agents
                    .iter()
                    .filter(|a| a.removed_at.is_none() && crate::reconcile::claims::tunnel_key(a) == tunnel.tunnel_key)
                    .map(|a| a.id.clone())
                    .collect(),
                route_count: routes
                    .iter()
                    .filter(|r| r.spec.tunnel_key == tunnel.tunnel_key && r.status.is_routed())
                    .count() as u32,
                last_error: tunnel.last_error.clone(),
                created_at: Some(convert::timestamp(tunnel.created_at)),
                config_version: tunnel.config_version.max(0) as u64,
                connector_config_version: tunnel.connector_config_version.max(0) as u64,
                health: crate::reconcile::tunnel_health(tunnel),
            })
            .collect();
        Ok(Response::new(v1::ListTunnelsResponse { tunnels }))
    }

    async fn remove_agent(
        &self,
        request: Request<v1::RemoveAgentRequest>,
    ) -> Result<Response<v1::RemoveAgentResponse>, Status> {
        let admin = self.state.auth.admin(&request)?;
        let id = required("id", &request.get_ref().id)?.to_string();
        let agent = self
            .state
            .store
            .get_agent(&id)
            .await
            .map_err(|e| store_status("reading the agent", e))?
            .ok_or_else(|| Status::not_found(format!("agent {id:?} does not exist")))?;
        if agent.removed_at.is_none() && !agent.is_revoked() {
            let stop = StopTunnel { tunnel_id: String::new() };
            let (_, sequence) =
                self.state.commands.enqueue(&id, command::Kind::StopTunnel(stop)).await.map_err(enqueue_status)?;
            self.wait_acked(&id, sequence).await;
        }
        // Removal revokes: every call of the agent is refused from now on, and its streams end.
        self.state
            .store
            .mark_agent_removed(&id, now_millis())
            .await
            .map_err(|e| store_status("removing the agent", e))?;
        self.state.fanout.revoked(&id).await;
        tracing::info!(message = "Agent removed.", agent = %id, %admin);
        self.state.fanout.reconcile_now().await;
        let agent = self.state.store.get_agent(&id).await.map_err(|e| store_status("reading the agent", e))?;
        Ok(Response::new(v1::RemoveAgentResponse { agent: agent.map(|a| convert::agent(&a, false)) }))
    }

    async fn set_agent_tunnel_group(
        &self,
        request: Request<v1::SetAgentTunnelGroupRequest>,
    ) -> Result<Response<v1::SetAgentTunnelGroupResponse>, Status> {
        let admin = self.state.auth.admin(&request)?;
        let request = request.into_inner();
        let id = required("id", &request.id)?;
        let group = request.tunnel_group.trim();
        crate::agent_service::validate::tunnel_group("tunnel_group", group)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let agent = self
            .state
            .store
            .set_agent_tunnel_group(id, group)
            .await
            .map_err(|e| store_status("setting the tunnel group", e))?
            .ok_or_else(|| Status::not_found(format!("agent {id:?} does not exist")))?;
        tracing::info!(message = "Agent moved to another tunnel group.", agent = %id, tunnel_group = %group, %admin);
        self.state.fanout.reconcile().await;
        Ok(Response::new(v1::SetAgentTunnelGroupResponse { agent: Some(convert::agent(&agent, false)) }))
    }

    async fn set_agent_policy(
        &self,
        request: Request<v1::SetAgentPolicyRequest>,
    ) -> Result<Response<v1::SetAgentPolicyResponse>, Status> {
        let admin = self.state.auth.admin(&request)?;
        let request = request.into_inner();
        let id = required("id", &request.id)?;
        let policy = convert::hostname_policy_from("policy", request.policy.as_ref())?;
        let agent = self
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
        self.state.fanout.reconcile().await;
        Ok(Response::new(v1::SetAgentPolicyResponse { agent: Some(convert::agent(&agent, false)) }))
    }

    async fn reconcile(
        &self,
        request: Request<v1::ReconcileRequest>,
    ) -> Result<Response<v1::ReconcileResponse>, Status> {
        self.state.auth.admin(&request)?;
        let report = self
            .state
            .fanout
            .reconcile_now()
            .await
            .ok_or_else(|| Status::unavailable("the reconciler is not running"))?;
        Ok(Response::new(v1::ReconcileResponse {
            tunnels_created: report.tunnels_created,
            tunnels_deleted: report.tunnels_deleted,
            ingress_updates: report.ingress_updates,
            dns_created: report.dns_created,
            dns_updated: report.dns_updated,
            dns_deleted: report.dns_deleted,
            commands_sent: report.commands_sent,
            routes_changed: report.routes_changed,
            errors: report.errors,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(ttl_seconds: u64, max_uses: u32, description: &str, tunnel_group: &str) -> v1::CreateJoinTokenRequest {
        v1::CreateJoinTokenRequest {
            ttl_seconds,
            max_uses,
            description: description.into(),
            tunnel_group: tunnel_group.into(),
            policy: None,
        }
    }

    #[test]
    fn join_token_limits_are_enforced_with_field_names() {
        let err = |r: Result<(JoinToken, JoinTokenRow), Status>| r.err().map(|s| s.message().to_string());
        let field = |r: &v1::CreateJoinTokenRequest| err(new_join_token(b"ca", r, 0)).unwrap_or_default();
        assert!(field(&request(MAX_TOKEN_TTL_SECONDS + 1, 1, "", "")).starts_with("ttl_seconds"));
        assert!(field(&request(0, MAX_TOKEN_USES + 1, "", "")).starts_with("max_uses"));
        assert!(field(&request(0, 0, "", "no spaces")).starts_with("tunnel_group"));
        let (_, row) = new_join_token(b"ca", &request(0, 0, "laptop", " edge "), 1_000)
            .map_err(|s| s.to_string())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((row.max_uses, row.expires_at), (1, 1_000 + DEFAULT_TOKEN_TTL_SECONDS as i64 * 1000));
        assert_eq!(row.tunnel_group, "edge");
    }
}
