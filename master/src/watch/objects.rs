//! What the store says now, as watch objects: routes, agents, tunnels, diagnostics and
//! connectors, built the way the admin API's List calls build them. Agents are shown without
//! what every heartbeat changes (last_seen_at, the stream cursors, `connected`): GetAgent has
//! those.

use crate::model::RouteRow;
use crate::store::{Store, StoreError};
use dockflare::v1;
use dockflare::v1::watch_changes_response::Object;
use prost::Message;

/// One object as the store has it now.
#[derive(Debug, Clone)]
pub struct LiveObject {
    pub kind: v1::ResourceKind,
    pub key: String,
    pub agents: Vec<String>,
    pub message: v1::WatchChangesResponse,
    pub hash: u64,
}

impl LiveObject {
    pub fn new(kind: v1::ResourceKind, key: String, agents: Vec<String>, object: Object) -> LiveObject {
        let message = v1::WatchChangesResponse {
            kind: kind as i32,
            key: key.clone(),
            object: Some(object),
            ..Default::default()
        };
        let hash = super::diff::material_hash(&message);
        LiveObject { kind, key, agents, message, hash }
    }
}

/// A route's key: hostname and path, and who asks for it.
pub fn route_key(row: &RouteRow) -> String {
    format!("{}{}@{}", row.spec.hostname, row.spec.path, row.owner)
}

/// Everything watchable, read from the store now.
pub async fn read(store: &Store, route_quota: u32) -> Result<Vec<LiveObject>, StoreError> {
    let mut agents = Vec::new();
    let mut after = String::new();
    loop {
        let page = store.list_agents(&after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.id.clone();
        agents.extend(page);
    }
    let routes = store.load_routes().await?;
    let tunnels = store.list_tunnels().await?;
    let containers = store.list_containers(None).await?;
    let diagnostics = crate::views::diagnostics(store, &containers, route_quota, None).await?;
    let connectors = store.list_agent_connectors().await?;

    let mut objects = Vec::with_capacity(agents.len() * 2 + routes.len() + tunnels.len() + diagnostics.len());
    for record in &agents {
        let mut agent = crate::convert::agent(record, false);
        agent.last_seen_at = None;
        agent.last_command_sequence = 0;
        agent.last_acked_command_sequence = 0;
        agent.last_event_id = 0;
        objects.push(LiveObject::new(
            v1::ResourceKind::Agent,
            record.id.clone(),
            vec![record.id.clone()],
            Object::Agent(agent),
        ));
    }
    let tunnel_ids: std::collections::HashMap<&str, &str> =
        tunnels.iter().map(|t| (t.tunnel_key.as_str(), t.tunnel_id.as_str())).collect();
    for row in &routes {
        let mut route = crate::convert::route(row);
        route.updated_at = None;
        if let Some(tunnel_id) = tunnel_ids.get(row.spec.tunnel_key.as_str()) {
            route.tunnel_id = tunnel_id.to_string();
        }
        let agents = if row.spec.agent_id.is_empty() { Vec::new() } else { vec![row.spec.agent_id.clone()] };
        objects.push(LiveObject::new(v1::ResourceKind::Route, route_key(row), agents, Object::Route(route)));
    }
    for mut tunnel in crate::views::tunnels(&tunnels, &agents, &routes) {
        tunnel.updated_at = None;
        let (key, members) = (tunnel.key.clone(), tunnel.agent_ids.clone());
        objects.push(LiveObject::new(v1::ResourceKind::Tunnel, key, members, Object::Tunnel(tunnel)));
    }
    let mut seen = std::collections::HashSet::new();
    for record in diagnostics {
        let label = record.diagnostic.as_ref().map(|d| d.label.clone()).unwrap_or_default();
        let base = format!("{}/{}/{}", record.agent_id, record.container_id, label);
        let mut key = base.clone();
        let mut n = 1;
        while !seen.insert(key.clone()) {
            n += 1;
            key = format!("{base}#{n}");
        }
        let agents = vec![record.agent_id.clone()];
        objects.push(LiveObject::new(v1::ResourceKind::Diagnostic, key, agents, Object::Diagnostic(record)));
    }
    for (agent_id, reported_at, payload) in connectors {
        let Ok(event) = v1::AgentEvent::decode(payload.as_slice()) else { continue };
        let Some(v1::agent_event::Event::TunnelStatus(status)) = event.event else { continue };
        let connector = v1::ConnectorStatus {
            agent_id: agent_id.clone(),
            status: Some(status),
            reported_at: Some(crate::convert::timestamp(reported_at)),
        };
        objects.push(LiveObject::new(
            v1::ResourceKind::Connector,
            agent_id.clone(),
            vec![agent_id],
            Object::Connector(connector),
        ));
    }
    Ok(objects)
}
