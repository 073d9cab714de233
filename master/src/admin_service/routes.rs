//! Routes and tunnels: the route table (corrupt rows included), manual routes, tunnels with
//! their health, and an on-demand reconcile pass.

use super::AdminApi;
use crate::clock::now_millis;
use crate::convert;
use crate::grpc_status::store_status;
use dockflare::v1;
use std::collections::HashMap;
use tonic::{Request, Response, Status};

pub(super) async fn list_routes(
    api: &AdminApi,
    request: Request<v1::ListRoutesRequest>,
) -> Result<Response<v1::ListRoutesResponse>, Status> {
    api.state.auth.admin(&request)?;
    let agent_filter = request.get_ref().agent_id.clone();
    let table = api.state.store.load_route_table().await.map_err(|e| store_status("listing routes", e))?;
    let rows = table.rows;
    let tunnels = api.state.store.list_tunnels().await.map_err(|e| store_status("listing tunnels", e))?;
    let tunnel_ids: HashMap<&str, &str> =
        tunnels.iter().map(|t| (t.tunnel_key.as_str(), t.tunnel_id.as_str())).collect();
    let mut routes: Vec<v1::Route> = rows
        .iter()
        .filter(|row| agent_filter.is_empty() || row.spec.agent_id == agent_filter)
        .map(|row| {
            let mut route = convert::route(row);
            route.tunnel_id = tunnel_ids.get(row.spec.tunnel_key.as_str()).map(|id| id.to_string()).unwrap_or_default();
            let key = crate::watch::objects::route_key(row);
            if let Some((revision, changed_at)) = api.state.watch.revision_of(v1::ResourceKind::Route, &key) {
                route.revision = revision;
                route.updated_at = Some(convert::timestamp(changed_at));
            }
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

pub(super) async fn add_manual_route(
    api: &AdminApi,
    request: Request<v1::AddManualRouteRequest>,
) -> Result<Response<v1::AddManualRouteResponse>, Status> {
    let admin = api.state.auth.admin(&request)?;
    let request = request.into_inner();
    let route = crate::manual_routes::validate(&request, now_millis())?;
    if let Some(agent_id) = route.tunnel_key.strip_prefix("agent:") {
        let agent = api.state.store.get_agent(agent_id).await.map_err(|e| store_status("reading the agent", e))?;
        if agent.is_none_or(|a| a.removed_at.is_some()) {
            return Err(Status::not_found(format!("agent_id: agent {agent_id:?} does not exist")));
        }
    }
    api.state.store.put_manual_route(&route).await.map_err(|e| store_status("storing the manual route", e))?;
    tracing::info!(message = "Manual route added.", hostname = %route.hostname, path = %route.path, service = %route.service, %admin);
    api.state.fanout.reconcile_now().await;
    let rows = api.state.store.load_routes().await.map_err(|e| store_status("listing routes", e))?;
    let stored =
        rows.iter().find(|r| r.owner == "manual" && r.spec.hostname == route.hostname && r.spec.path == route.path);
    Ok(Response::new(v1::AddManualRouteResponse { route: stored.map(convert::route) }))
}

pub(super) async fn delete_manual_route(
    api: &AdminApi,
    request: Request<v1::DeleteManualRouteRequest>,
) -> Result<Response<v1::DeleteManualRouteResponse>, Status> {
    let admin = api.state.auth.admin(&request)?;
    let request = request.into_inner();
    let hostname = dockflare_common::labels::values::hostname(&request.hostname)
        .map_err(|reason| Status::invalid_argument(format!("hostname: {reason}")))?;
    let path = dockflare_common::labels::values::path(&request.path)
        .map_err(|reason| Status::invalid_argument(format!("path: {reason}")))?;
    let existed = api
        .state
        .store
        .delete_manual_route(&hostname, &path)
        .await
        .map_err(|e| store_status("deleting the manual route", e))?;
    if !existed {
        return Err(Status::not_found(format!("no manual route for {hostname}{path}")));
    }
    tracing::info!(message = "Manual route deleted.", %hostname, %path, %admin);
    api.state.fanout.reconcile_now().await;
    Ok(Response::new(v1::DeleteManualRouteResponse {}))
}

pub(super) async fn list_tunnels(
    api: &AdminApi,
    request: Request<v1::ListTunnelsRequest>,
) -> Result<Response<v1::ListTunnelsResponse>, Status> {
    api.state.auth.admin(&request)?;
    let tunnels = api.state.store.list_tunnels().await.map_err(|e| store_status("listing tunnels", e))?;
    let routes = api.state.store.load_routes().await.map_err(|e| store_status("listing routes", e))?;
    let agents = api.all_agents().await?;
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
            revision: api.state.watch.revision_of(v1::ResourceKind::Tunnel, &tunnel.tunnel_key).map_or(0, |r| r.0),
            updated_at: Some(convert::timestamp(
                api.state
                    .watch
                    .revision_of(v1::ResourceKind::Tunnel, &tunnel.tunnel_key)
                    .map_or(tunnel.updated_at, |r| r.1),
            )),
        })
        .collect();
    Ok(Response::new(v1::ListTunnelsResponse { tunnels }))
}

pub(super) async fn reconcile(
    api: &AdminApi,
    request: Request<v1::ReconcileRequest>,
) -> Result<Response<v1::ReconcileResponse>, Status> {
    api.state.auth.admin(&request)?;
    let report =
        api.state.fanout.reconcile_now().await.ok_or_else(|| Status::unavailable("the reconciler is not running"))?;
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
