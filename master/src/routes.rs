//! The routes reported containers ask for — the desired state the
//! Cloudflare reconciler works from. Pure: rows and label prefixes in,
//! routes with a status out.
//!
//! Rules: labels are read with the reporting agent's prefixes; a Swarm
//! service counts once however many managers and nodes report it (service
//! entry first, then its tasks); of two owners claiming one hostname and
//! path, the first seen keeps it and the other is a `conflict` with the
//! reason — stable, so claims never flap.

use crate::store::ContainerRow;
use dockflare::v1::Container;
use dockflare_common::labels::{self, LabelPrefixes, RouteSpec};
use prost::Message;
use std::collections::{BTreeMap, HashMap};

/// Status of a derived route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteState {
    Active,
    Conflict(String),
}

/// A route a container asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredRoute {
    pub spec: RouteSpec,
    pub agent_id: String,
    pub container_id: String,
    pub container_name: String,
    pub service_id: String,
    pub service_name: String,
    pub first_seen_at: i64,
    pub state: RouteState,
}

/// Who owns a route: a Swarm service (cluster-wide) or one container.
fn owner_key(route: &DesiredRoute) -> String {
    if route.service_id.is_empty() {
        format!("container:{}:{}", route.agent_id, route.container_id)
    } else {
        format!("service:{}", route.service_id)
    }
}

/// Every route of the running reported containers. `prefixes` gives each
/// agent's custom label prefix.
pub fn desired_routes(rows: &[ContainerRow], prefixes: &HashMap<String, String>) -> Vec<DesiredRoute> {
    let mut candidates = Vec::new();
    for row in rows {
        if !is_up(&row.status) {
            continue;
        }
        let Ok(container) = Container::decode(row.payload.as_slice()) else { continue };
        let custom = prefixes.get(&row.agent_id).map(String::as_str).filter(|p| !p.is_empty());
        let labels: BTreeMap<String, String> = container.labels.into_iter().collect();
        let target = if row.service_name.is_empty() { row.name.as_str() } else { row.service_name.as_str() };
        let parsed = labels::parse(target, &labels, &LabelPrefixes::new(custom));
        for spec in parsed.routes {
            candidates.push(DesiredRoute {
                spec,
                agent_id: row.agent_id.clone(),
                container_id: row.container_id.clone(),
                container_name: row.name.clone(),
                service_id: row.service_id.clone(),
                service_name: row.service_name.clone(),
                first_seen_at: row.first_seen_at,
                state: RouteState::Active,
            });
        }
    }
    // Oldest claim first; a service's own entry (id == service id) before its tasks.
    candidates.sort_by(|a, b| {
        (a.first_seen_at, a.container_id != a.service_id, &a.agent_id, &a.container_id).cmp(&(
            b.first_seen_at,
            b.container_id != b.service_id,
            &b.agent_id,
            &b.container_id,
        ))
    });
    let mut holders: HashMap<(String, String), (String, String)> = HashMap::new();
    let mut routes = Vec::new();
    for mut route in candidates {
        let key = (route.spec.hostname.clone(), route.spec.path.clone());
        let owner = owner_key(&route);
        match holders.get(&key) {
            None => {
                holders.insert(key, (owner, route.container_name.clone()));
                routes.push(route);
            }
            Some((holder, _)) if *holder == owner => {} // the same service seen again
            Some((_, holder_name)) => {
                route.state = RouteState::Conflict(format!(
                    "{}{} is already routed to {holder_name}, which claimed it first",
                    route.spec.hostname, route.spec.path
                ));
                routes.push(route);
            }
        }
    }
    routes.sort_by(|a, b| (&a.spec.hostname, &a.spec.path).cmp(&(&b.spec.hostname, &b.spec.path)));
    routes
}

/// Whether a reported status means the workload serves: a running (or
/// restarting) container, or a service with a running task.
pub fn is_up(status: &str) -> bool {
    status == "running" || status == "restarting" || status.starts_with("running ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        agent: &str,
        id: &str,
        service: (&str, &str),
        status: &str,
        seen: i64,
        labels: &[(&str, &str)],
    ) -> ContainerRow {
        let container = Container {
            id: id.into(),
            name: id.into(),
            service_id: service.0.into(),
            service_name: service.1.into(),
            status: status.into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Default::default()
        };
        ContainerRow {
            agent_id: agent.into(),
            container_id: id.into(),
            name: id.into(),
            service_id: service.0.into(),
            service_name: service.1.into(),
            status: status.into(),
            payload: container.encode_to_vec(),
            first_seen_at: seen,
            updated_at: seen,
        }
    }

    const WEB: &[(&str, &str)] = &[
        ("dockflare.enable", "true"),
        ("dockflare.hostname", "app.example.com"),
        ("dockflare.service", "http://web:80"),
    ];

    #[test]
    fn first_claim_wins_and_the_other_is_a_conflict() {
        let rows =
            vec![row("a", "late", ("", ""), "running", 20, WEB), row("b", "early", ("", ""), "running", 10, WEB)];
        let routes = desired_routes(&rows, &HashMap::new());
        assert_eq!(routes.len(), 2);
        assert_eq!((routes[0].container_id.as_str(), &routes[0].state), ("early", &RouteState::Active));
        assert!(matches!(&routes[1].state, RouteState::Conflict(reason) if reason.contains("early")), "{routes:?}");
    }

    #[test]
    fn a_swarm_service_counts_once_across_its_service_entry_and_tasks() {
        let swarm: &[(&str, &str)] =
            &[("dockflare.enable", "true"), ("dockflare.domain", "web.example.com"), ("dockflare.port", "80")];
        let rows = vec![
            row("manager", "svc1", ("svc1", "web-app"), "running 3/3", 10, swarm),
            row("manager", "task-a", ("svc1", "web-app"), "running", 11, swarm),
            row("worker", "task-b", ("svc1", "web-app"), "running", 9, swarm),
        ];
        let routes = desired_routes(&rows, &HashMap::new());
        assert_eq!(routes.len(), 1, "{routes:?}");
        assert_eq!(routes[0].spec.service, "http://web-app:80");
        assert_eq!(routes[0].state, RouteState::Active);
    }

    #[test]
    fn stopped_entries_ask_for_nothing_and_custom_prefixes_apply() {
        let custom: &[(&str, &str)] =
            &[("acme.enable", "true"), ("acme.hostname", "a.example.com"), ("acme.service", "http://a:1")];
        let rows = vec![row("a", "c1", ("", ""), "exited", 1, WEB), row("b", "c2", ("", ""), "running", 1, custom)];
        let prefixes = HashMap::from([("b".to_string(), "acme".to_string())]);
        let routes = desired_routes(&rows, &prefixes);
        assert_eq!(routes.iter().map(|r| r.spec.hostname.as_str()).collect::<Vec<_>>(), vec!["a.example.com"]);
        assert!(desired_routes(&[row("s", "svc", ("svc", "x"), "pending 0/2", 1, WEB)], &HashMap::new()).is_empty());
    }
}
