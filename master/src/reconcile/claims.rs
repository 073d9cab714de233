//! What is asked for now, as claims: the routes in the labels of running
//! reported containers (read with each agent's label prefix), and the manual
//! routes. A Swarm service claims once, as the service, however many
//! managers and nodes *of its swarm* report it ([`super::swarms`]) — so a task
//! moving between nodes keeps the route (DockFlare #221), and a copied service
//! id from elsewhere is only another claim.

use super::route_table::{Claim, RouteSpec, Source};
use crate::model::{AgentRecord, ContainerRow, ManualRoute};
use dockflare::v1::Container;
use dockflare_common::labels::{self, LabelPrefixes, OriginOptions};
use prost::Message;
use std::collections::{BTreeMap, HashMap};

/// The tunnel that carries an agent's routes: its group's, or its own.
pub fn tunnel_key(agent: &AgentRecord) -> String {
    if agent.tunnel_group.is_empty() {
        format!("agent:{}", agent.id)
    } else {
        format!("group:{}", agent.tunnel_group)
    }
}

/// Whether a reported status means the workload serves: a running (or
/// restarting) container, or a service with a running task.
pub fn is_up(status: &str) -> bool {
    status == "running" || status == "restarting" || status.starts_with("running ")
}

/// cloudflared's originRequest JSON for label options ("{}" when none).
pub fn origin_json(origin: &OriginOptions) -> String {
    let mut map = serde_json::Map::new();
    let mut put = |key: &str, value: Option<serde_json::Value>| {
        if let Some(value) = value {
            map.insert(key.to_string(), value);
        }
    };
    put("noTLSVerify", origin.no_tls_verify.map(Into::into));
    put("originServerName", origin.origin_server_name.clone().map(Into::into));
    put("httpHostHeader", origin.http_host_header.clone().map(Into::into));
    put("http2Origin", origin.http2_origin.map(Into::into));
    put("disableChunkedEncoding", origin.disable_chunked_encoding.map(Into::into));
    put("matchSNItoHost", origin.match_sni_to_host.map(Into::into));
    // Cloudflare's JSON takes durations as integer seconds.
    put("connectTimeout", origin.connect_timeout.as_deref().and_then(seconds).map(Into::into));
    put("tlsTimeout", origin.tls_timeout.as_deref().and_then(seconds).map(Into::into));
    put("tcpKeepAlive", origin.tcp_keep_alive.as_deref().and_then(seconds).map(Into::into));
    put("keepAliveTimeout", origin.keep_alive_timeout.as_deref().and_then(seconds).map(Into::into));
    put("keepAliveConnections", origin.keep_alive_connections.map(Into::into));
    put("noHappyEyeballs", origin.no_happy_eyeballs.map(Into::into));
    put("proxyType", origin.proxy_type.clone().map(Into::into));
    put("caPool", origin.ca_pool.clone().map(Into::into));
    serde_json::Value::Object(map).to_string()
}

/// Whole seconds of an origin timeout ("1m30s" → 90). Labels and manual routes hold only whole
/// seconds ([`labels::values::duration`] refuses the rest), so nothing is rounded here.
fn seconds(duration: &str) -> Option<u64> {
    labels::values::duration_seconds(duration).ok()
}

/// Claims from running containers. `agents` maps agent id → record; agents
/// removed by an operator claim nothing.
pub fn from_containers(rows: &[ContainerRow], agents: &HashMap<String, AgentRecord>) -> Vec<Claim> {
    // A service reported by several agents: prefer its manager's service entry,
    // then the lowest agent id, so the choice is stable.
    let mut ordered: Vec<&ContainerRow> = rows.iter().filter(|row| is_up(&row.status)).collect();
    ordered.sort_by(|a, b| {
        (a.container_id != a.service_id, &a.agent_id, &a.container_id).cmp(&(
            b.container_id != b.service_id,
            &b.agent_id,
            &b.container_id,
        ))
    });
    let swarms = super::swarms::swarm_keys(agents);
    let mut claims = Vec::new();
    for row in ordered {
        let Some(agent) = agents.get(&row.agent_id).filter(|a| a.removed_at.is_none() && !a.is_revoked()) else {
            continue;
        };
        let Ok(container) = Container::decode(row.payload.as_slice()) else { continue };
        let custom = Some(agent.label_prefix.as_str()).filter(|p| !p.is_empty());
        let labels: BTreeMap<String, String> = container.labels.into_iter().collect();
        let target = if row.service_name.is_empty() { row.name.as_str() } else { row.service_name.as_str() };
        // A service is one claim within its swarm only: the same service id reported from
        // another swarm (or a standalone host) is another owner.
        let owner = if row.service_id.is_empty() {
            format!("container:{}:{}", row.agent_id, row.container_id)
        } else {
            let swarm = swarms.get(&row.agent_id).cloned().unwrap_or_else(|| format!("agent:{}", row.agent_id));
            format!("service:{swarm}:{}", row.service_id)
        };
        for route in labels::parse(target, &labels, &LabelPrefixes::new(custom)).routes {
            let access_json = super::access_apps::labels_json(&route.access);
            claims.push(Claim {
                withheld: None,
                owner: owner.clone(),
                source: Source::Labels,
                spec: RouteSpec {
                    hostname: route.hostname,
                    path: route.path,
                    service: route.service,
                    origin_json: origin_json(&route.origin),
                    zone_name: route.zone_name.unwrap_or_default(),
                    agent_id: row.agent_id.clone(),
                    tunnel_key: tunnel_key(agent),
                    container_id: row.container_id.clone(),
                    container_name: row.name.clone(),
                    service_name: row.service_name.clone(),
                    access_json,
                },
            });
        }
    }
    claims
}

/// Claims of the manual routes. One whose tunnel nothing serves any more (its agent removed or
/// revoked, its group without an enrolled member) is withheld with the reason
/// ([`super::serving`]): listed `invalid`, not published, still holding its hostname.
pub fn from_manual(routes: &[ManualRoute], agents: &HashMap<String, AgentRecord>) -> Vec<Claim> {
    routes
        .iter()
        .map(|route| Claim {
            withheld: super::serving::unserved(&route.tunnel_key, agents)
                .map(|why| super::serving::withheld_reason(&why)),
            owner: "manual".into(),
            source: Source::Manual,
            spec: RouteSpec {
                hostname: route.hostname.clone(),
                path: route.path.clone(),
                service: route.service.clone(),
                origin_json: route.origin_json.clone(),
                zone_name: route.zone_name.clone(),
                agent_id: route.tunnel_key.strip_prefix("agent:").unwrap_or_default().to_string(),
                tunnel_key: route.tunnel_key.clone(),
                container_id: String::new(),
                container_name: String::new(),
                service_name: String::new(),
                access_json: String::new(),
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_become_whole_seconds_and_nothing_is_rounded() {
        assert_eq!(seconds("30s"), Some(30));
        assert_eq!(seconds("1m30s"), Some(90));
        assert_eq!(seconds("1.5h"), Some(5400));
        assert_eq!(seconds("500ms"), None);
        assert_eq!(seconds("x"), None);
    }

    #[test]
    fn origin_options_become_cloudflare_json() {
        let origin = OriginOptions {
            no_tls_verify: Some(true),
            http_host_header: Some("internal".into()),
            connect_timeout: Some("1m".into()),
            ..Default::default()
        };
        let json: serde_json::Value = serde_json::from_str(&origin_json(&origin)).unwrap_or_default();
        assert_eq!(json, serde_json::json!({"noTLSVerify": true, "httpHostHeader": "internal", "connectTimeout": 60}));
        assert_eq!(origin_json(&OriginOptions::default()), "{}");
    }
}
