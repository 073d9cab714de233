//! What operators see of tunnels and label problems, built from the store the same way for
//! the admin API's List calls and for the watch stream.

use crate::convert;
use crate::model::{AgentRecord, RouteRow, TunnelRow};
use crate::store::{ContainerRow, Store, StoreError};
use dockflare::v1;
use prost::Message;
use std::collections::HashMap;

/// The tunnels as the admin API shows them: each with its agents and how many routes it
/// carries. Agents and routes are grouped by tunnel key once, so this is linear in tunnels,
/// agents and routes (a fleet of 10,000 agents with a tunnel each would otherwise cost
/// 10,000 × 10,000 comparisons, on every watch feed pass).
pub fn tunnels(rows: &[TunnelRow], agents: &[AgentRecord], routes: &[RouteRow]) -> Vec<v1::Tunnel> {
    let mut members: HashMap<String, Vec<String>> = HashMap::new();
    for agent in agents.iter().filter(|a| a.removed_at.is_none()) {
        members.entry(crate::reconcile::claims::tunnel_key(agent)).or_default().push(agent.id.clone());
    }
    let mut routed: HashMap<&str, u32> = HashMap::new();
    for route in routes.iter().filter(|r| r.status.is_routed()) {
        *routed.entry(route.spec.tunnel_key.as_str()).or_default() += 1;
    }
    rows.iter()
        .map(|tunnel| v1::Tunnel {
            id: tunnel.tunnel_id.clone(),
            name: tunnel.name.clone(),
            key: tunnel.tunnel_key.clone(),
            status: tunnel.status.clone(),
            connector_count: tunnel.connector_count.max(0) as u32,
            agent_ids: members.get(&tunnel.tunnel_key).cloned().unwrap_or_default(),
            route_count: routed.get(tunnel.tunnel_key.as_str()).copied().unwrap_or(0),
            last_error: tunnel.last_error.clone(),
            created_at: Some(convert::timestamp(tunnel.created_at)),
            config_version: tunnel.config_version.max(0) as u64,
            connector_config_version: tunnel.connector_config_version.max(0) as u64,
            health: crate::reconcile::tunnel_health(tunnel),
            revision: 0,
            updated_at: Some(convert::timestamp(tunnel.updated_at)),
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::swarms::tests::agent;

    fn row(key: &str) -> TunnelRow {
        TunnelRow {
            tunnel_key: key.into(),
            name: key.into(),
            tunnel_id: format!("id-{key}"),
            status: "healthy".into(),
            connector_count: 1,
            config_version: 0,
            connector_config_version: 0,
            last_error: String::new(),
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn each_tunnel_lists_its_agents_and_counts_its_routed_routes() {
        let mut grouped = agent("g1", "standalone", "", "n1", "", &[]);
        grouped.tunnel_group = "edge".into();
        let mut gone = agent("g2", "standalone", "", "n2", "", &[]);
        gone.tunnel_group = "edge".into();
        gone.removed_at = Some(1);
        let agents = vec![agent("a1", "standalone", "", "n0", "", &[]), grouped, gone];
        let mut routes = vec![crate::model::route::test_row("x.example.com", "c1")];
        routes[0].spec.tunnel_key = "agent:a1".into();
        let mut invalid = routes[0].clone();
        invalid.status = crate::model::route::Status::Invalid;
        routes.push(invalid);
        let shown = tunnels(&[row("agent:a1"), row("group:edge"), row("agent:nobody")], &agents, &routes);
        let summary: Vec<(&str, Vec<String>, u32)> =
            shown.iter().map(|t| (t.key.as_str(), t.agent_ids.clone(), t.route_count)).collect();
        assert_eq!(
            summary,
            [
                ("agent:a1", vec!["a1".to_string()], 1),
                ("group:edge", vec!["g1".to_string()], 0),
                ("agent:nobody", vec![], 0),
            ]
        );
    }
}
