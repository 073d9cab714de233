//! Routes and tunnels: the route table (corrupt rows included), manual routes, tunnels with
//! their health, and an on-demand reconcile pass.

use super::filters::RouteFilter;
use super::paging::{Key, PageRequest, Part};
use super::AdminApi;
use crate::clock::now_millis;
use crate::convert;
use crate::grpc_status::store_status;
use crate::manual_routes;
use crate::model::{AgentRecord, RouteRow};
use crate::reconcile::zones::KnownZones;
use crate::store::ManualRoute;
use dockflare::v1;
use std::collections::HashMap;
use tonic::{Request, Response, Status};

pub(super) async fn list_routes(
    api: &AdminApi,
    request: Request<v1::ListRoutesRequest>,
) -> Result<Response<v1::ListRoutesResponse>, Status> {
    api.state.auth.admin(&request)?;
    let request = request.into_inner();
    let page = PageRequest::parse("ListRoutes", request.page_size, &request.page_token)?;
    let filter = RouteFilter::of(&request)?;
    let table = api.state.store.load_route_table().await.map_err(|e| store_status("listing routes", e))?;
    let tunnel_ids = tunnel_ids(api).await?;
    let key = |hostname: &str, path: &str, owner: &str| vec![Part::from(hostname), Part::from(path), Part::from(owner)];
    let mut keyed: Vec<(Key, v1::Route)> = table
        .rows
        .iter()
        .map(|row| (key(&row.spec.hostname, &row.spec.path, &row.owner), shown(api, row, &tunnel_ids)))
        .collect();
    // Rows this master cannot read are listed too (status unspecified), with why.
    keyed.extend(table.corrupt.iter().map(|corrupt| {
        let route = v1::Route {
            hostname: corrupt.hostname.clone(),
            path: corrupt.path.clone(),
            reason: format!(
                "this master cannot read the stored row (owner {}): {}; it is left alone (not routed, not deleted)",
                corrupt.owner, corrupt.problem
            ),
            ..Default::default()
        };
        (key(&corrupt.hostname, &corrupt.path, &corrupt.owner), route)
    }));
    keyed.retain(|(_, route)| filter.admits(route));
    let (routes, next_page_token) = page.page(keyed);
    Ok(Response::new(v1::ListRoutesResponse { routes, next_page_token }))
}

pub(super) async fn add_manual_route(
    api: &AdminApi,
    request: Request<v1::AddManualRouteRequest>,
) -> Result<Response<v1::AddManualRouteResponse>, Status> {
    let admin = api.state.auth.admin(&request)?;
    let route = add_manual_route_as(api, &admin, request.into_inner()).await?;
    Ok(Response::new(v1::AddManualRouteResponse { route }))
}

/// AddManualRoute for `admin` (an admin identity, or a dashboard user): validated, served,
/// in a known zone, stored; the route as ListRoutes shows it.
pub(crate) async fn add_manual_route_as(
    api: &AdminApi,
    admin: &str,
    request: v1::AddManualRouteRequest,
) -> Result<Option<v1::Route>, Status> {
    let route = manual_routes::validate(&request, now_millis())?;
    let agents: HashMap<String, AgentRecord> = api.all_agents().await?.into_iter().map(|a| (a.id.clone(), a)).collect();
    manual_routes::served(&route, &agents)?;
    in_a_known_zone(api, &route).await?;
    api.state.store.put_manual_route(&route).await.map_err(|e| store_status("storing the manual route", e))?;
    tracing::info!(message = "Manual route added.", hostname = %route.hostname, path = %route.path, service = %route.service, %admin);
    api.state.fanout.reconcile_now().await;
    // The answer is the route as ListRoutes shows it now.
    let rows = api.state.store.load_routes().await.map_err(|e| store_status("listing routes", e))?;
    let tunnel_ids = tunnel_ids(api).await?;
    let stored =
        rows.iter().find(|r| r.owner == "manual" && r.spec.hostname == route.hostname && r.spec.path == route.path);
    Ok(stored.map(|row| shown(api, row, &tunnel_ids)))
}

/// A stored route as ListRoutes (and AddManualRoute) shows it: the id of the tunnel that carries
/// it, and the revision at which the watch feed last saw it change.
fn shown(api: &AdminApi, row: &RouteRow, tunnel_ids: &HashMap<String, String>) -> v1::Route {
    let mut route = convert::listed_route(row, tunnel_ids);
    let key = crate::watch::objects::route_key(row);
    if let Some((revision, changed_at)) = api.state.watch.revision_of(v1::ResourceKind::Route, &key) {
        route.revision = revision;
        route.updated_at = Some(convert::timestamp(changed_at));
    }
    route
}

/// Tunnel key → Cloudflare tunnel id, of the tunnels that exist.
async fn tunnel_ids(api: &AdminApi) -> Result<HashMap<String, String>, Status> {
    let tunnels = api.state.store.list_tunnels().await.map_err(|e| store_status("listing tunnels", e))?;
    Ok(tunnels.into_iter().map(|t| (t.tunnel_key, t.tunnel_id)).collect())
}

/// Refuses a hostname no zone of the account takes, once the master knows the zones: against
/// those the last pass stored and, when they refuse it, against a fresh listing (a zone may
/// have been added since). Unknown zones (no pass listed them yet): accepted, and the route is
/// listed `invalid` with the reason if no zone takes it.
async fn in_a_known_zone(api: &AdminApi, route: &ManualRoute) -> Result<(), Status> {
    let Some(known) = known_zones(api).await? else { return Ok(()) };
    if manual_routes::in_a_zone(route, &known).is_ok() {
        return Ok(());
    }
    api.state.fanout.reconcile_now().await;
    match known_zones(api).await? {
        Some(known) => manual_routes::in_a_zone(route, &known),
        None => Ok(()),
    }
}

async fn known_zones(api: &AdminApi) -> Result<Option<KnownZones>, Status> {
    let stored = api
        .state
        .store
        .setting(KnownZones::SETTING)
        .await
        .map_err(|e| store_status("reading the account's zones", e))?;
    Ok(stored.and_then(|json| serde_json::from_str(&json).ok()))
}

pub(super) async fn delete_manual_route(
    api: &AdminApi,
    request: Request<v1::DeleteManualRouteRequest>,
) -> Result<Response<v1::DeleteManualRouteResponse>, Status> {
    let admin = api.state.auth.admin(&request)?;
    delete_manual_route_as(api, &admin, request.into_inner()).await?;
    Ok(Response::new(v1::DeleteManualRouteResponse {}))
}

/// DeleteManualRoute for `admin` (an admin identity, or a dashboard user).
pub(crate) async fn delete_manual_route_as(
    api: &AdminApi,
    admin: &str,
    request: v1::DeleteManualRouteRequest,
) -> Result<(), Status> {
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
    Ok(())
}

pub(super) async fn list_tunnels(
    api: &AdminApi,
    request: Request<v1::ListTunnelsRequest>,
) -> Result<Response<v1::ListTunnelsResponse>, Status> {
    api.state.auth.admin(&request)?;
    let request = request.into_inner();
    let page = PageRequest::parse("ListTunnels", request.page_size, &request.page_token)?;
    let agent_id = request.agent_id.trim();
    let tunnels = api.state.store.list_tunnels().await.map_err(|e| store_status("listing tunnels", e))?;
    let routes = api.state.store.load_routes().await.map_err(|e| store_status("listing routes", e))?;
    let agents = api.all_agents().await?;
    let keyed = crate::views::tunnels(&tunnels, &agents, &routes)
        .into_iter()
        .map(|mut tunnel| {
            if let Some((revision, changed_at)) = api.state.watch.revision_of(v1::ResourceKind::Tunnel, &tunnel.key) {
                tunnel.revision = revision;
                tunnel.updated_at = Some(convert::timestamp(changed_at));
            }
            (vec![Part::from(tunnel.key.as_str())], tunnel)
        })
        .filter(|(_, tunnel)| agent_id.is_empty() || tunnel.agent_ids.iter().any(|id| id == agent_id))
        .collect();
    let (tunnels, next_page_token) = page.page(keyed);
    Ok(Response::new(v1::ListTunnelsResponse { tunnels, next_page_token }))
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
        access_writes: report.access_writes(),
        errors: report.errors,
    }))
}

pub(super) async fn plan_changes(
    api: &AdminApi,
    request: Request<v1::PlanChangesRequest>,
) -> Result<Response<v1::PlanChangesResponse>, Status> {
    let request = request.into_inner();
    let mut proposals = Vec::new();
    for (index, container) in request.containers.into_iter().enumerate() {
        if container.agent_id.trim().is_empty() {
            return Err(Status::invalid_argument(format!("containers[{index}].agent_id: required")));
        }
        if container.name.trim().is_empty() {
            return Err(Status::invalid_argument(format!("containers[{index}].name: required")));
        }
        let agent = api.state.store.get_agent(&container.agent_id).await;
        if agent.map_err(|e| crate::grpc_status::store_status("reading the agent", e))?.is_none() {
            return Err(Status::not_found(format!("containers[{index}].agent_id: no agent {:?}", container.agent_id)));
        }
        proposals.push(crate::reconcile::dry_run::ProposedContainer {
            agent_id: container.agent_id,
            name: container.name.trim_start_matches('/').to_string(),
            labels: container.labels.into_iter().collect(),
            remove: container.remove,
        });
    }
    let plan =
        api.state.fanout.plan(proposals).await.ok_or_else(|| Status::unavailable("the reconciler is not running"))?;
    Ok(Response::new(v1::PlanChangesResponse {
        changes: plan
            .changes
            .into_iter()
            .map(|c| v1::PlannedChange {
                resource: c.resource.to_string(),
                action: c.action.to_string(),
                target: c.target,
                detail: c.detail,
            })
            .collect(),
        routes: plan.routes.iter().map(crate::convert::route).collect(),
        removed: plan.removed.iter().map(crate::convert::route).collect(),
        errors: plan.errors,
    }))
}
