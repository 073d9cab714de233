//! Dry runs: what a pass would change in Cloudflare — tunnels, ingress, DNS, Access — before
//! anything is written, optionally with containers as an operator is about to run them (a label
//! change checked first). The plan is the pass itself with every write recorded instead of made
//! ([`DryRun`]): the same code decides both, so what a plan shows is what the pass then does.
//!
//! Reads happen as in a pass (the store, Cloudflare's GETs, counted against the request budget);
//! nothing is written to Cloudflare or the store, and no command reaches an agent.

use crate::model::{ContainerRow, RouteRow};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// One change a pass would make.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PlannedChange {
    /// `tunnel`, `connector`, `ingress`, `dns`, `access_tag`, `access_policy` or `access_application`.
    pub resource: &'static str,
    /// `create`, `update`, `delete`, `release` (kept for the grace period, then deleted) or `start`.
    pub action: &'static str,
    /// What it is about: a tunnel's name, a hostname, a domain, a policy's name.
    pub target: String,
    /// What changes, for a person.
    pub detail: String,
}

/// The recorder a dry-run pass writes into. Locked only to push (never across an await).
#[derive(Debug, Default)]
pub struct DryRun {
    changes: Mutex<Vec<PlannedChange>>,
}

impl DryRun {
    pub fn record(&self, resource: &'static str, action: &'static str, target: impl Into<String>, detail: impl Into<String>) {
        let change = PlannedChange { resource, action, target: target.into(), detail: detail.into() };
        if let Ok(mut changes) = self.changes.lock() {
            changes.push(change);
        }
    }

    pub fn into_changes(self) -> Vec<PlannedChange> {
        self.changes.into_inner().unwrap_or_default()
    }
}

/// A container as an operator is about to run it (or remove it), for a dry run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposedContainer {
    pub agent_id: String,
    /// Docker's container name; a reported container of the agent with this name is replaced.
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// The container stops (or goes away) instead.
    pub remove: bool,
}

/// What a dry run answers.
#[derive(Debug, Default)]
pub struct Plan {
    pub changes: Vec<PlannedChange>,
    /// The route rows the pass would store differently (new, changed status or reason), and
    /// those it would remove.
    pub routes: Vec<RouteRow>,
    pub removed: Vec<RouteRow>,
    /// What stopped parts of the plan (Cloudflare unreachable, …).
    pub errors: Vec<String>,
}

/// The reported containers with the proposals applied: a proposal replaces the agent's
/// container of the same name (or is added, running); `remove` stops it. Pure.
pub fn with_proposals(mut containers: Vec<ContainerRow>, proposals: &[ProposedContainer], now: i64) -> Vec<ContainerRow> {
    use prost::Message;
    for proposal in proposals {
        let existing = containers.iter().position(|c| c.agent_id == proposal.agent_id && c.name == proposal.name);
        if proposal.remove {
            if let Some(index) = existing {
                containers[index].status = "exited".into();
            }
            continue;
        }
        let container_id = format!("proposed-{}", proposal.name);
        let payload = dockflare::v1::Container {
            id: container_id.clone(),
            name: proposal.name.clone(),
            labels: proposal.labels.clone().into_iter().collect(),
            status: "running".into(),
            ..Default::default()
        }
        .encode_to_vec();
        let row = ContainerRow {
            agent_id: proposal.agent_id.clone(),
            container_id,
            name: proposal.name.clone(),
            service_id: String::new(),
            service_name: String::new(),
            status: "running".into(),
            payload,
            first_seen_at: now,
            updated_at: now,
        };
        match existing {
            // The same container recreated with other labels: a new container id, as Docker does.
            Some(index) => {
                containers[index].status = "exited".into();
                containers.push(row);
            }
            None => containers.push(row),
        }
    }
    containers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(agent: &str, name: &str) -> ContainerRow {
        ContainerRow {
            agent_id: agent.into(),
            container_id: format!("id-{name}"),
            name: name.into(),
            service_id: String::new(),
            service_name: String::new(),
            status: "running".into(),
            payload: Vec::new(),
            first_seen_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn proposals_replace_add_and_stop_containers() {
        let proposal = |name: &str, remove: bool| ProposedContainer {
            agent_id: "a1".into(),
            name: name.into(),
            labels: [("dockflare.enable".to_string(), "true".to_string())].into_iter().collect(),
            remove,
        };
        let containers = with_proposals(
            vec![row("a1", "web"), row("a1", "db"), row("a2", "web")],
            &[proposal("web", false), proposal("db", true), proposal("new", false)],
            5,
        );
        let states: Vec<(&str, &str, &str)> =
            containers.iter().map(|c| (c.agent_id.as_str(), c.name.as_str(), c.status.as_str())).collect();
        assert_eq!(
            states,
            vec![
                ("a1", "web", "exited"),
                ("a1", "db", "exited"),
                ("a2", "web", "running"),
                ("a1", "web", "running"),
                ("a1", "new", "running"),
            ]
        );
    }

    #[test]
    fn the_recorder_keeps_every_change_in_order() {
        let dry = DryRun::default();
        dry.record("dns", "create", "a.example.com", "CNAME");
        dry.record("tunnel", "delete", "t", "");
        let changes = dry.into_changes();
        assert_eq!(changes.iter().map(|c| c.resource).collect::<Vec<_>>(), vec!["dns", "tunnel"]);
    }
}
