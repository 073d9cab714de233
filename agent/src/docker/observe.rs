//! Docker objects → the containers an agent reports. Pure functions: which
//! containers matter (any DockFlare label, and not a connector DockFlare
//! runs itself), their Swarm identity, and their label diagnostics.

use bollard::models::{ContainerInspectResponse, ContainerSummary, Service, Task};
use dockflare::v1::{Container, LabelDiagnostic};
use dockflare_common::labels::{self, LabelPrefixes};
use std::collections::{BTreeMap, HashMap};

/// Which containers this agent reports: those with DockFlare labels (under
/// these prefixes) and, when a scope is set, the scope label too — so that
/// several agents can share one engine, each with its own containers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    pub prefixes: LabelPrefixes,
    /// `KEY=VALUE`: only containers (or services) carrying this label.
    pub scope: Option<(String, String)>,
}

impl Selection {
    fn admits(&self, labels: &BTreeMap<String, String>) -> bool {
        let in_scope = match &self.scope {
            Some((key, value)) => labels.get(key) == Some(value),
            None => true,
        };
        in_scope && !labels::is_managed_connector(labels) && labels::has_dockflare_labels(labels, &self.prefixes)
    }
}

/// Parses `--scope KEY=VALUE`.
pub fn parse_scope(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok((key.trim().to_string(), value.trim().to_string())),
        _ => Err(format!("scope {text:?} is not KEY=VALUE")),
    }
}

pub const SWARM_SERVICE_ID: &str = "com.docker.swarm.service.id";
pub const SWARM_SERVICE_NAME: &str = "com.docker.swarm.service.name";
pub const SWARM_TASK_ID: &str = "com.docker.swarm.task.id";
pub const SWARM_NODE_ID: &str = "com.docker.swarm.node.id";

/// Builds a reported container, or `None` when DockFlare has nothing to do
/// with it. `service_labels` are the labels of its Swarm service (visible on
/// managers only); the container's own labels win on conflicts.
pub fn container(
    id: &str,
    name: &str,
    container_labels: &HashMap<String, String>,
    service_labels: Option<&HashMap<String, String>>,
    status: &str,
    image: &str,
    selection: &Selection,
) -> Option<Container> {
    let mut merged: BTreeMap<String, String> =
        service_labels.into_iter().flatten().map(|(k, v)| (k.clone(), v.clone())).collect();
    merged.extend(container_labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    if !selection.admits(&merged) {
        return None;
    }
    let prefixes = &selection.prefixes;
    let swarm = |key: &str| merged.get(key).cloned().unwrap_or_default();
    let service_name = swarm(SWARM_SERVICE_NAME);
    let target = if service_name.is_empty() { name } else { service_name.as_str() };
    let diagnostics = diagnostics(target, &merged, prefixes);
    Some(Container {
        id: id.to_string(),
        name: name.trim_start_matches('/').to_string(),
        service_id: swarm(SWARM_SERVICE_ID),
        task_id: swarm(SWARM_TASK_ID),
        node_id: swarm(SWARM_NODE_ID),
        service_name,
        migration_source: String::new(),
        status: status.to_string(),
        image: image.to_string(),
        labels: merged.into_iter().collect(),
        diagnostics,
    })
}

fn diagnostics(target: &str, labels: &BTreeMap<String, String>, prefixes: &LabelPrefixes) -> Vec<LabelDiagnostic> {
    labels::parse(target, labels, prefixes)
        .diagnostics
        .into_iter()
        .map(|d| LabelDiagnostic { label: d.label, value: d.value, reason: d.reason })
        .collect()
}

/// From `docker ps` output.
pub fn from_summary(
    summary: &ContainerSummary,
    service_labels: Option<&HashMap<String, String>>,
    selection: &Selection,
) -> Option<Container> {
    let id = summary.id.as_deref()?;
    let name = summary.names.as_ref().and_then(|names| names.first()).map(String::as_str).unwrap_or(id);
    let empty = HashMap::new();
    let status = summary.state.as_ref().map(|s| s.to_string()).unwrap_or_default();
    container(
        id,
        name,
        summary.labels.as_ref().unwrap_or(&empty),
        service_labels,
        &status,
        summary.image.as_deref().unwrap_or_default(),
        selection,
    )
}

/// From `docker inspect` output.
pub fn from_inspect(
    inspect: &ContainerInspectResponse,
    service_labels: Option<&HashMap<String, String>>,
    selection: &Selection,
) -> Option<Container> {
    let id = inspect.id.as_deref()?;
    let config = inspect.config.as_ref();
    let empty = HashMap::new();
    let status = inspect.state.as_ref().and_then(|s| s.status.as_ref()).map(|s| s.to_string()).unwrap_or_default();
    container(
        id,
        inspect.name.as_deref().unwrap_or(id),
        config.and_then(|c| c.labels.as_ref()).unwrap_or(&empty),
        service_labels,
        &status,
        config.and_then(|c| c.image.as_deref()).unwrap_or_default(),
        selection,
    )
}

/// Whether a container state counts as up.
pub fn is_running(status: &str) -> bool {
    matches!(status, "running" | "restarting")
}

/// A Swarm service as a manager reports it: one entry per labelled service,
/// its id as the entry id, its running task count in the status
/// ("running 3/3", or "pending 0/3").
pub fn from_service(service: &Service, tasks: &[Task], selection: &Selection) -> Option<Container> {
    let id = service.id.as_deref()?;
    let spec = service.spec.as_ref()?;
    let name = spec.name.as_deref().unwrap_or(id);
    let empty = HashMap::new();
    let labels = spec.labels.as_ref().unwrap_or(&empty);
    let running = tasks
        .iter()
        .filter(|t| t.service_id.as_deref() == Some(id))
        .filter(|t| t.status.as_ref().and_then(|s| s.state.as_ref()).is_some_and(|s| s.to_string() == "running"))
        .count();
    let desired = spec.mode.as_ref().and_then(|m| m.replicated.as_ref()).and_then(|r| r.replicas);
    let status = match (running, desired) {
        (0, Some(d)) => format!("pending 0/{d}"),
        (0, None) => "pending".to_string(),
        (n, Some(d)) => format!("running {n}/{d}"),
        (n, None) => format!("running {n}"),
    };
    let image = spec
        .task_template
        .as_ref()
        .and_then(|t| t.container_spec.as_ref())
        .and_then(|c| c.image.as_deref())
        .unwrap_or_default();
    let mut entry = container(id, name, &HashMap::new(), Some(labels), &status, image, selection)?;
    entry.service_id = id.to_string();
    entry.service_name = name.to_string();
    Some(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn only_dockflare_containers_that_are_not_connectors_are_reported() {
        let prefixes = Selection::default();
        let plain = labels(&[("com.example", "x")]);
        assert!(container("c1", "/web", &plain, None, "running", "img", &prefixes).is_none());
        let connector = labels(&[("dockflare.managed", "true"), ("dockflare.type", "tunnel")]);
        assert!(container("c2", "/cf", &connector, None, "running", "img", &prefixes).is_none());
        let typo = labels(&[("dockflare.enabled", "true")]);
        let reported = container("c3", "/web", &typo, None, "running", "img", &prefixes);
        assert_eq!(reported.as_ref().map(|c| c.name.as_str()), Some("web"));
        assert_eq!(reported.map(|c| c.diagnostics.len()), Some(1));
    }

    #[test]
    fn a_scope_limits_reports_to_containers_carrying_it() {
        let selection = Selection { scope: Some(("team".into(), "a".into())), ..Default::default() };
        let mine = labels(&[("dockflare.enable", "true"), ("team", "a")]);
        let theirs = labels(&[("dockflare.enable", "true"), ("team", "b")]);
        assert!(container("c1", "/x", &mine, None, "running", "img", &selection).is_some());
        assert!(container("c2", "/y", &theirs, None, "running", "img", &selection).is_none());
        assert_eq!(parse_scope("team=a"), Ok(("team".into(), "a".into())));
        assert!(parse_scope("=a").is_err() && parse_scope("team").is_err());
    }

    #[test]
    fn swarm_tasks_carry_their_service_identity_and_service_labels() -> Result<(), &'static str> {
        let prefixes = Selection::default();
        let own = labels(&[
            (SWARM_SERVICE_ID, "svc1"),
            (SWARM_SERVICE_NAME, "web-app"),
            (SWARM_TASK_ID, "task1"),
            (SWARM_NODE_ID, "node1"),
        ]);
        let service =
            labels(&[("dockflare.enable", "true"), ("dockflare.domain", "app.example.com"), ("dockflare.port", "80")]);
        let task = container("c1", "/web-app.1.abc", &own, Some(&service), "running", "img", &prefixes);
        let task = task.ok_or("the task was not reported")?;
        assert_eq!(
            (task.service_id.as_str(), task.task_id.as_str(), task.node_id.as_str()),
            ("svc1", "task1", "node1")
        );
        assert_eq!(task.service_name, "web-app");
        assert!(task.diagnostics.is_empty(), "{:?}", task.diagnostics);
        // Without the service labels (a worker node) there is nothing to report.
        assert!(container("c1", "/web-app.1.abc", &own, None, "running", "img", &prefixes).is_none());
        Ok(())
    }
}
