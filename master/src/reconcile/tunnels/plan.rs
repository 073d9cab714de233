//! Which tunnels a pass needs: one per active agent or tunnel group, and one for every tunnel
//! key a route is still routed through (so a removed agent's routes keep their tunnel until
//! they go). Pure.

use crate::model::{AgentRecord, RouteRow, TunnelRow};
use crate::reconcile::claims;
use std::collections::{BTreeSet, HashMap};

/// The tunnels of a pass.
#[derive(Debug, Default)]
pub struct TunnelPlan<'a> {
    /// Tunnel keys ("agent:<id>", "group:<name>") that must exist.
    pub needed: BTreeSet<String>,
    /// The active agents that run each tunnel's connector.
    pub members: HashMap<String, Vec<&'a AgentRecord>>,
}

impl<'a> TunnelPlan<'a> {
    pub fn of(agents: &'a HashMap<String, AgentRecord>, rows: &[RouteRow]) -> TunnelPlan<'a> {
        let mut plan = TunnelPlan::default();
        for agent in agents.values().filter(|a| a.removed_at.is_none() && !a.is_revoked()) {
            let key = claims::tunnel_key(agent);
            plan.needed.insert(key.clone());
            plan.members.entry(key).or_default().push(agent);
        }
        plan.needed.extend(rows.iter().filter(|r| r.status.is_routed()).map(|r| r.spec.tunnel_key.clone()));
        plan
    }

    /// The agents of `key` not yet told to run `tunnel`.
    pub fn to_start(&self, key: &str, tunnel: &TunnelRow) -> Vec<&'a AgentRecord> {
        self.members
            .get(key)
            .into_iter()
            .flatten()
            .filter(|agent| agent.assigned_tunnel_id != tunnel.tunnel_id)
            .copied()
            .collect()
    }

    /// Stored tunnels nobody needs any more (their routes and records are gone).
    pub fn unneeded<'t>(&self, stored: &'t HashMap<String, TunnelRow>) -> Vec<&'t TunnelRow> {
        let mut unneeded: Vec<&TunnelRow> = stored.values().filter(|t| !self.needed.contains(&t.tunnel_key)).collect();
        unneeded.sort_by(|a, b| a.tunnel_key.cmp(&b.tunnel_key));
        unneeded
    }
}

/// The Cloudflare name of the tunnel for `key`.
pub fn tunnel_name(prefix: &str, key: &str) -> String {
    match key.split_once(':') {
        Some(("group", group)) => format!("{prefix}-group-{group}"),
        Some((_, agent)) => format!("{prefix}-agent-{agent}"),
        None => format!("{prefix}-{key}"),
    }
}

/// In words, whether a tunnel is served by connectors that follow its configuration (as of the
/// last drift check).
pub fn tunnel_health(tunnel: &TunnelRow) -> String {
    let connectors = tunnel.connector_count.max(0);
    let plural = if connectors == 1 { "" } else { "s" };
    if connectors == 0 {
        "no connector connected: nothing serves its routes".to_string()
    } else if tunnel.config_version > 0 && tunnel.connector_config_version < tunnel.config_version {
        format!(
            "connectors behind: they run configuration v{}, Cloudflare holds v{} (a connector that cannot \
             reach its API, or an old token?)",
            tunnel.connector_config_version, tunnel.config_version
        )
    } else if tunnel.config_version > 0 {
        format!("serving: {connectors} connector{plural} on configuration v{}", tunnel.config_version)
    } else {
        format!("serving: {connectors} connector{plural}, no configuration yet")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_and_agent_tunnels_are_named_after_their_key() {
        assert_eq!(tunnel_name("dockflare", "group:edge"), "dockflare-group-edge");
        assert_eq!(tunnel_name("dockflare", "agent:a1"), "dockflare-agent-a1");
    }

    #[test]
    fn a_routed_key_without_agents_is_still_needed_and_others_are_not() {
        let agents = HashMap::new();
        let rows = vec![crate::model::route::test_row("app.example.com", "c1")];
        let plan = TunnelPlan::of(&agents, &rows);
        assert_eq!(plan.needed, BTreeSet::from(["agent:a1".to_string()]));
        let stored: HashMap<String, TunnelRow> = ["agent:a1", "agent:gone"]
            .into_iter()
            .map(|key| {
                let row = TunnelRow {
                    tunnel_key: key.into(),
                    name: key.into(),
                    tunnel_id: key.into(),
                    status: String::new(),
                    connector_count: 0,
                    config_version: 0,
                    connector_config_version: 0,
                    last_error: String::new(),
                    created_at: 0,
                    updated_at: 0,
                };
                (key.to_string(), row)
            })
            .collect();
        let unneeded: Vec<&str> = plan.unneeded(&stored).iter().map(|t| t.tunnel_key.as_str()).collect();
        assert_eq!(unneeded, ["agent:gone"]);
    }
}
