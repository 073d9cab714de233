//! What the agent knows about its own state, for `/readyz` and `/metrics`: whether a master
//! holds its streams, whether the Docker engine answers, and what its connector does. Written by
//! the session loop, the Docker watcher and the connector manager (a std mutex, edits only:
//! never held across an await); read by the health server.

use crate::inventory::Inventory;
use crate::outbox::Outbox;
use dockflare::v1::{ConnectorState, TunnelStatus};
use dockflare_observe::{Check, Observed};
use futures::future::BoxFuture;
use std::sync::{Arc, Mutex, PoisonError};

/// The agent's state, shared.
#[derive(Clone)]
pub struct AgentStatus {
    inner: Arc<Mutex<Inner>>,
    outbox: Outbox,
    inventory: Inventory,
}

struct Inner {
    /// `Ok(master URL)` while registered with both streams open; `Err(why not)` otherwise.
    master: Result<String, String>,
    /// `Ok(mode)` while the engine answers; `Err(why not)` otherwise.
    docker: Result<String, String>,
    /// The connector manager's last status (`None` before its first pass).
    connector: Option<TunnelStatus>,
}

impl AgentStatus {
    pub fn new(outbox: Outbox, inventory: Inventory) -> AgentStatus {
        let inner = Inner {
            master: Err("not connected yet".into()),
            docker: Err("not connected to the engine yet".into()),
            connector: None,
        };
        AgentStatus { inner: Arc::new(Mutex::new(inner)), outbox, inventory }
    }

    fn edit(&self, change: impl FnOnce(&mut Inner)) {
        change(&mut self.inner.lock().unwrap_or_else(PoisonError::into_inner));
    }

    pub fn master_connected(&self, url: &str) {
        metrics::gauge!("dockflare_agent_master_connected").set(1.0);
        self.edit(|inner| inner.master = Ok(url.to_string()));
    }

    pub fn master_lost(&self, why: &str) {
        metrics::gauge!("dockflare_agent_master_connected").set(0.0);
        self.edit(|inner| inner.master = Err(why.to_string()));
    }

    pub fn docker_connected(&self, mode: String) {
        metrics::gauge!("dockflare_agent_docker_connected").set(1.0);
        self.edit(|inner| inner.docker = Ok(mode));
    }

    pub fn docker_lost(&self, why: String) {
        metrics::gauge!("dockflare_agent_docker_connected").set(0.0);
        self.edit(|inner| inner.docker = Err(why));
    }

    pub fn connector(&self, status: &TunnelStatus) {
        let up = connector_ready(status).unwrap_or(true);
        metrics::gauge!("dockflare_agent_connector_up").set(if up { 1.0 } else { 0.0 });
        self.edit(|inner| inner.connector = Some(status.clone()));
    }
}

/// `None` when no connector is wanted (nothing to be ready for); else whether it runs and is ready.
fn connector_ready(status: &TunnelStatus) -> Option<bool> {
    match ConnectorState::try_from(status.state) {
        Ok(ConnectorState::Absent) => None,
        Ok(ConnectorState::Running) => Some(status.ready),
        _ => Some(false),
    }
}

impl Observed for AgentStatus {
    fn live(&self) -> Vec<Check> {
        vec![Check::pass("tasks", "every long-lived task runs")]
    }

    fn ready(&self) -> BoxFuture<'_, Vec<Check>> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let master = match &inner.master {
            Ok(url) => Check::pass("master", format!("connected to {url}")),
            Err(why) => Check::fail("master", format!("not connected: {why}")),
        };
        let docker = match &inner.docker {
            Ok(mode) => Check::pass("docker", format!("the engine answers ({mode})")),
            Err(why) => Check::fail("docker", format!("the engine does not answer: {why}")),
        };
        let connector = match inner.connector.as_ref() {
            None => Check::pass("connector", "no status yet"),
            Some(status) => match connector_ready(status) {
                None => Check::pass("connector", "no tunnel assigned: nothing to run"),
                Some(true) => Check::pass("connector", format!("running and ready (tunnel {})", status.tunnel_id)),
                Some(false) => Check::fail("connector", format!("not ready: {}", describe(status))),
            },
        };
        let checks = vec![master, docker, connector];
        Box::pin(async move { checks })
    }

    fn refresh(&self) -> BoxFuture<'_, ()> {
        metrics::gauge!("dockflare_agent_outbox_events").set(self.outbox.len() as f64);
        let mut kinds: std::collections::BTreeMap<&'static str, u64> =
            DIAGNOSTIC_KINDS.iter().map(|kind| (*kind, 0)).collect();
        self.inventory.for_each(|container| {
            for diagnostic in &container.diagnostics {
                *kinds.entry(diagnostic_kind(&diagnostic.reason)).or_default() += 1;
            }
        });
        for (kind, count) in kinds {
            metrics::gauge!("dockflare_agent_label_diagnostics", "kind" => kind).set(count as f64);
        }
        Box::pin(async {})
    }
}

const DIAGNOSTIC_KINDS: [&str; 6] = ["unknown_key", "missing", "invalid_value", "ignored", "duplicate", "other"];

/// A label mistake's kind, from its reason (the metric's label must stay low in cardinality).
fn diagnostic_kind(reason: &str) -> &'static str {
    let reason = reason.to_ascii_lowercase();
    if reason.contains("did you mean") || reason.starts_with("unknown") {
        "unknown_key"
    } else if reason.starts_with("ignored") || reason.starts_with("has no effect") {
        "ignored"
    } else if reason.starts_with("duplicate") {
        "duplicate"
    } else if reason.starts_with("no ") || reason.starts_with("needs") || reason.contains("but no") {
        "missing"
    } else if reason.starts_with("not a")
        || reason.contains("invalid")
        || reason.contains("must")
        || reason.contains("not in zone")
    {
        "invalid_value"
    } else {
        "other"
    }
}

fn describe(status: &TunnelStatus) -> String {
    let state = ConnectorState::try_from(status.state).unwrap_or(ConnectorState::Unspecified);
    if status.detail.is_empty() {
        format!("{state:?}")
    } else {
        format!("{state:?}: {}", status.detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_mistakes_are_counted_by_kind() {
        assert_eq!(diagnostic_kind("unknown key 'hostnme' (did you mean 'hostname'?)"), "unknown_key");
        assert_eq!(diagnostic_kind("enabled, but no hostname label is set"), "missing");
        assert_eq!(diagnostic_kind("not a port number 1-65535"), "invalid_value");
        assert_eq!(diagnostic_kind("ignored: hostname is set"), "ignored");
        assert_eq!(diagnostic_kind("duplicate route for a.example.com: only the first applies"), "duplicate");
    }
}
