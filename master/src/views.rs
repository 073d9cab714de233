//! What operators see of tunnels and label problems, built from the store the same way for
//! the admin API's List calls and for the watch stream.

use crate::convert;
use crate::model::{AgentRecord, RouteRow, TunnelRow};
use crate::store::{ContainerRow, Store, StoreError};
use dockflare::v1;
use prost::Message;

/// A tunnel as the admin API shows it: its agents and how many routes it carries.
pub fn tunnel(tunnel: &TunnelRow, agents: &[AgentRecord], routes: &[RouteRow]) -> v1::Tunnel {
    v1::Tunnel {
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
        route_count: routes.iter().filter(|r| r.spec.tunnel_key == tunnel.tunnel_key && r.status.is_routed()).count()
            as u32,
        last_error: tunnel.last_error.clone(),
        created_at: Some(convert::timestamp(tunnel.created_at)),
        config_version: tunnel.config_version.max(0) as u64,
        connector_config_version: tunnel.connector_config_version.max(0) as u64,
        health: crate::reconcile::tunnel_health(tunnel),
        revision: 0,
        updated_at: Some(convert::timestamp(tunnel.updated_at)),
    }
}

/// Every label problem of the given containers, and the routes their agents' hostname
/// policies refuse (a diagnostic on the `hostname` label of their container).
pub async fn diagnostics(
    store: &Store,
    containers: &[ContainerRow],
    route_quota: u32,
    agent_id: Option<&str>,
) -> Result<Vec<v1::DiagnosticRecord>, StoreError> {
    let mut diagnostics = Vec::new();
    for row in containers {
        let Ok(container) = v1::Container::decode(row.payload.as_slice()) else { continue };
        diagnostics.extend(container.diagnostics.into_iter().map(|diagnostic| v1::DiagnosticRecord {
            agent_id: row.agent_id.clone(),
            container_id: row.container_id.clone(),
            container_name: row.name.clone(),
            diagnostic: Some(diagnostic),
        }));
    }
    let routes = store.load_routes().await?;
    let refusals = crate::reconcile::policy_refusals(store, containers, &routes, route_quota).await?;
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
    diagnostics.extend(access_withheld(&routes, containers));
    Ok(diagnostics)
}

/// The label routes of `containers` withheld for their Access labels against the account (a
/// policy or identity provider that does not exist, a permission missing, an application of
/// someone else's): a diagnostic on the Access label the reason names, like a label's own.
fn access_withheld(routes: &[crate::model::RouteRow], containers: &[ContainerRow]) -> Vec<v1::DiagnosticRecord> {
    use crate::model::{Source, Status};
    let owners: std::collections::HashSet<(&str, &str)> =
        containers.iter().map(|c| (c.agent_id.as_str(), c.container_id.as_str())).collect();
    let mut found = Vec::new();
    for row in routes.iter().filter(|r| {
        r.source == Source::Labels
            && !r.spec.access_json.is_empty()
            && (matches!(r.status, Status::Invalid | Status::Conflict) || r.reason.starts_with("kept its last good"))
            // Mistakes in the labels themselves are the container's own diagnostics already.
            && !r.reason.starts_with("not published: its Access labels are wrong")
            && owners.contains(&(r.spec.agent_id.as_str(), r.spec.container_id.as_str()))
    }) {
        let Ok(labels) = crate::reconcile::access_apps::labels_from_json(&row.spec.access_json) else { continue };
        let named = labels.values().find(|l| row.reason.contains(&l.label)).or_else(|| labels.values().next());
        let Some(label) = named else { continue };
        found.push(v1::DiagnosticRecord {
            agent_id: row.spec.agent_id.clone(),
            container_id: row.spec.container_id.clone(),
            container_name: row.spec.container_name.clone(),
            diagnostic: Some(v1::LabelDiagnostic {
                label: label.label.clone(),
                value: label.value.clone(),
                reason: row.reason.clone(),
            }),
        });
    }
    found
}
