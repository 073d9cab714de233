//! `dockflare.v1.AdminService`: join tokens, agents and their command and
//! event logs, routes and tunnels, for operators (grpcurl) and integrations.
//! Every call needs an admin certificate. This module holds the service and the
//! helpers its calls share; each call lives with its nouns ([`tokens`],
//! [`agents`], [`activity`], [`routes`], [`access_policies`]), and the trait impl only routes to them.

mod access_policies;
mod activity;
mod agents;
mod filters;
mod identities;
mod paging;
mod routes;
mod tokens;
mod watch;

pub use tokens::new_join_token;

use crate::grpc_status::store_status;
use crate::state::SharedState;
use dockflare::v1;
use dockflare::v1::admin_service_server::AdminService;
use tonic::{Request, Response, Status};

/// The AdminService implementation.
pub struct AdminApi {
    state: SharedState,
}

impl AdminApi {
    pub fn new(state: SharedState) -> AdminApi {
        AdminApi { state }
    }

    /// Adds a manual route for `who` exactly as AddManualRoute does (the dashboard's writes go
    /// through here, so both refuse the same way, with the same words).
    pub async fn add_manual_route_for(
        &self,
        who: &str,
        request: v1::AddManualRouteRequest,
    ) -> Result<Option<v1::Route>, Status> {
        routes::add_manual_route_as(self, who, request).await
    }

    /// Deletes a manual route for `who` exactly as DeleteManualRoute does.
    pub async fn delete_manual_route_for(
        &self,
        who: &str,
        request: v1::DeleteManualRouteRequest,
    ) -> Result<(), Status> {
        routes::delete_manual_route_as(self, who, request).await
    }

    /// Every agent.
    async fn all_agents(&self) -> Result<Vec<crate::store::AgentRecord>, Status> {
        let mut agents = Vec::new();
        let mut after = String::new();
        loop {
            let page = self
                .state
                .store
                .list_agents(&after, paging::MAX_PAGE)
                .await
                .map_err(|e| store_status("listing agents", e))?;
            let Some(last) = page.last() else { break };
            after = last.id.clone();
            agents.extend(page);
        }
        Ok(agents)
    }
}

fn required<'a>(field: &str, value: &'a str) -> Result<&'a str, Status> {
    if value.is_empty() {
        Err(Status::invalid_argument(format!("{field}: required")))
    } else {
        Ok(value)
    }
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn create_join_token(
        &self,
        request: Request<v1::CreateJoinTokenRequest>,
    ) -> Result<Response<v1::CreateJoinTokenResponse>, Status> {
        tokens::create_join_token(self, request).await
    }

    async fn list_join_tokens(
        &self,
        request: Request<v1::ListJoinTokensRequest>,
    ) -> Result<Response<v1::ListJoinTokensResponse>, Status> {
        tokens::list_join_tokens(self, request).await
    }

    async fn revoke_join_token(
        &self,
        request: Request<v1::RevokeJoinTokenRequest>,
    ) -> Result<Response<v1::RevokeJoinTokenResponse>, Status> {
        tokens::revoke_join_token(self, request).await
    }

    async fn list_agents(
        &self,
        request: Request<v1::ListAgentsRequest>,
    ) -> Result<Response<v1::ListAgentsResponse>, Status> {
        agents::list_agents(self, request).await
    }

    async fn get_agent(&self, request: Request<v1::GetAgentRequest>) -> Result<Response<v1::GetAgentResponse>, Status> {
        agents::get_agent(self, request).await
    }

    async fn revoke_agent(
        &self,
        request: Request<v1::RevokeAgentRequest>,
    ) -> Result<Response<v1::RevokeAgentResponse>, Status> {
        agents::revoke_agent(self, request).await
    }

    async fn send_command(
        &self,
        request: Request<v1::SendCommandRequest>,
    ) -> Result<Response<v1::SendCommandResponse>, Status> {
        activity::send_command(self, request).await
    }

    async fn list_commands(
        &self,
        request: Request<v1::ListCommandsRequest>,
    ) -> Result<Response<v1::ListCommandsResponse>, Status> {
        activity::list_commands(self, request).await
    }

    async fn list_events(
        &self,
        request: Request<v1::ListEventsRequest>,
    ) -> Result<Response<v1::ListEventsResponse>, Status> {
        activity::list_events(self, request).await
    }

    async fn list_containers(
        &self,
        request: Request<v1::ListContainersRequest>,
    ) -> Result<Response<v1::ListContainersResponse>, Status> {
        activity::list_containers(self, request).await
    }

    async fn list_diagnostics(
        &self,
        request: Request<v1::ListDiagnosticsRequest>,
    ) -> Result<Response<v1::ListDiagnosticsResponse>, Status> {
        activity::list_diagnostics(self, request).await
    }

    async fn list_routes(
        &self,
        request: Request<v1::ListRoutesRequest>,
    ) -> Result<Response<v1::ListRoutesResponse>, Status> {
        routes::list_routes(self, request).await
    }

    async fn add_manual_route(
        &self,
        request: Request<v1::AddManualRouteRequest>,
    ) -> Result<Response<v1::AddManualRouteResponse>, Status> {
        routes::add_manual_route(self, request).await
    }

    async fn delete_manual_route(
        &self,
        request: Request<v1::DeleteManualRouteRequest>,
    ) -> Result<Response<v1::DeleteManualRouteResponse>, Status> {
        routes::delete_manual_route(self, request).await
    }

    async fn list_tunnels(
        &self,
        request: Request<v1::ListTunnelsRequest>,
    ) -> Result<Response<v1::ListTunnelsResponse>, Status> {
        routes::list_tunnels(self, request).await
    }

    async fn remove_agent(
        &self,
        request: Request<v1::RemoveAgentRequest>,
    ) -> Result<Response<v1::RemoveAgentResponse>, Status> {
        agents::remove_agent(self, request).await
    }

    async fn set_agent_tunnel_group(
        &self,
        request: Request<v1::SetAgentTunnelGroupRequest>,
    ) -> Result<Response<v1::SetAgentTunnelGroupResponse>, Status> {
        agents::set_agent_tunnel_group(self, request).await
    }

    async fn set_agent_policy(
        &self,
        request: Request<v1::SetAgentPolicyRequest>,
    ) -> Result<Response<v1::SetAgentPolicyResponse>, Status> {
        agents::set_agent_policy(self, request).await
    }

    async fn reconcile(
        &self,
        request: Request<v1::ReconcileRequest>,
    ) -> Result<Response<v1::ReconcileResponse>, Status> {
        routes::reconcile(self, request).await
    }

    async fn plan_changes(
        &self,
        request: Request<v1::PlanChangesRequest>,
    ) -> Result<Response<v1::PlanChangesResponse>, Status> {
        routes::plan_changes(self, request).await
    }

    async fn put_access_policy(
        &self,
        request: Request<v1::PutAccessPolicyRequest>,
    ) -> Result<Response<v1::PutAccessPolicyResponse>, Status> {
        access_policies::put_access_policy(self, request).await
    }

    async fn get_access_policy(
        &self,
        request: Request<v1::GetAccessPolicyRequest>,
    ) -> Result<Response<v1::GetAccessPolicyResponse>, Status> {
        access_policies::get_access_policy(self, request).await
    }

    async fn list_access_policies(
        &self,
        request: Request<v1::ListAccessPoliciesRequest>,
    ) -> Result<Response<v1::ListAccessPoliciesResponse>, Status> {
        access_policies::list_access_policies(self, request).await
    }

    async fn delete_access_policy(
        &self,
        request: Request<v1::DeleteAccessPolicyRequest>,
    ) -> Result<Response<v1::DeleteAccessPolicyResponse>, Status> {
        access_policies::delete_access_policy(self, request).await
    }

    type WatchChangesStream = watch::WatchStream;

    async fn watch_changes(
        &self,
        request: Request<v1::WatchChangesRequest>,
    ) -> Result<Response<Self::WatchChangesStream>, Status> {
        watch::watch_changes(self, request).await
    }

    async fn issue_admin_identity(
        &self,
        request: Request<v1::IssueAdminIdentityRequest>,
    ) -> Result<Response<v1::IssueAdminIdentityResponse>, Status> {
        identities::issue_admin_identity(self, request).await
    }

    async fn list_admin_identities(
        &self,
        request: Request<v1::ListAdminIdentitiesRequest>,
    ) -> Result<Response<v1::ListAdminIdentitiesResponse>, Status> {
        identities::list_admin_identities(self, request).await
    }

    async fn revoke_admin_identity(
        &self,
        request: Request<v1::RevokeAdminIdentityRequest>,
    ) -> Result<Response<v1::RevokeAdminIdentityResponse>, Status> {
        identities::revoke_admin_identity(self, request).await
    }

    async fn who_am_i(&self, request: Request<v1::WhoAmIRequest>) -> Result<Response<v1::WhoAmIResponse>, Status> {
        identities::who_am_i(self, request).await
    }
}
