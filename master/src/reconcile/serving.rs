//! Whether anything serves the tunnel of a manual route: an enrolled agent (not removed, not
//! revoked; offline is fine, it comes back) whose tunnel it is — the agent itself for
//! "agent:<id>", any member of the group for "group:<name>". AddManualRoute refuses a route
//! nothing serves; a stored one whose last server goes is withheld (listed `invalid` with the
//! reason, its record and rule withdrawn) until one serves it again. Pure.

use crate::model::AgentRecord;
use std::collections::HashMap;
use std::fmt;

/// Why nothing serves a tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unserved {
    /// No enrolled agent is in the group.
    NoMember { group: String },
    /// No agent has this id.
    UnknownAgent { id: String },
    /// The agent was removed by an operator.
    RemovedAgent { id: String },
    /// The agent was revoked by an operator.
    RevokedAgent { id: String },
}

impl Unserved {
    /// The AddManualRoute field that names the tunnel.
    pub fn field(&self) -> &'static str {
        match self {
            Unserved::NoMember { .. } => "tunnel_group",
            _ => "agent_id",
        }
    }
}

impl fmt::Display for Unserved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unserved::NoMember { group } => write!(
                f,
                "no enrolled agent serves tunnel group {group}: enroll one into it (dockflare-master token create \
                 --tunnel-group {group}, or CreateJoinToken with tunnel_group {group:?}) or move one there \
                 (SetAgentTunnelGroup)"
            ),
            Unserved::UnknownAgent { id } => {
                write!(f, "agent {id:?} is not enrolled (ListAgents lists the agents); name an enrolled agent")
            }
            Unserved::RemovedAgent { id } => write!(
                f,
                "agent {id:?} was removed by an operator, so nothing runs its tunnel; name another agent or a \
                 tunnel group"
            ),
            Unserved::RevokedAgent { id } => write!(
                f,
                "agent {id:?} was revoked by an operator, so nothing runs its tunnel; name another agent or a \
                 tunnel group"
            ),
        }
    }
}

/// Why nothing serves tunnel `key` ("agent:<id>" or "group:<name>"), or `None` when an agent does.
pub fn unserved(key: &str, agents: &HashMap<String, AgentRecord>) -> Option<Unserved> {
    let serves = |agent: &AgentRecord| agent.removed_at.is_none() && !agent.is_revoked();
    if let Some(group) = key.strip_prefix("group:") {
        let member = agents.values().any(|agent| agent.tunnel_group == group && serves(agent));
        return (!member).then(|| Unserved::NoMember { group: group.to_string() });
    }
    let id = key.strip_prefix("agent:").unwrap_or(key).to_string();
    match agents.get(&id) {
        None => Some(Unserved::UnknownAgent { id }),
        Some(agent) if agent.removed_at.is_some() => Some(Unserved::RemovedAgent { id }),
        Some(agent) if agent.is_revoked() => Some(Unserved::RevokedAgent { id }),
        Some(_) => None,
    }
}

/// The reason a stored manual route that nothing serves is not published.
pub fn withheld_reason(why: &Unserved) -> String {
    format!("not published: {why}; it is published again as soon as an agent serves its tunnel")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{STATUS_OFFLINE, STATUS_REVOKED};

    fn agent(id: &str, group: &str, status: &str, removed: bool) -> (String, AgentRecord) {
        let mut record = crate::reconcile::swarms::tests::agent(id, "standalone", "", id, "", &[]);
        record.tunnel_group = group.into();
        record.status = status.into();
        record.removed_at = removed.then_some(1);
        (id.to_string(), record)
    }

    #[test]
    fn a_tunnel_is_served_by_an_enrolled_agent_that_is_neither_removed_nor_revoked() {
        let agents: HashMap<String, AgentRecord> = [
            agent("on", "edge", STATUS_OFFLINE, false),
            agent("gone", "old", STATUS_REVOKED, true),
            agent("cut", "cut", STATUS_REVOKED, false),
        ]
        .into_iter()
        .collect();
        let why = |key: &str| unserved(key, &agents);
        assert_eq!(why("group:edge"), None, "an offline member still serves its group");
        assert_eq!(why("agent:on"), None);
        assert_eq!(why("group:old"), Some(Unserved::NoMember { group: "old".into() }));
        assert_eq!(why("group:cut"), Some(Unserved::NoMember { group: "cut".into() }));
        assert_eq!(why("group:nobody"), Some(Unserved::NoMember { group: "nobody".into() }));
        assert_eq!(why("agent:gone"), Some(Unserved::RemovedAgent { id: "gone".into() }));
        assert_eq!(why("agent:cut"), Some(Unserved::RevokedAgent { id: "cut".into() }));
        assert_eq!(why("agent:x"), Some(Unserved::UnknownAgent { id: "x".into() }));
    }

    #[test]
    fn the_reason_names_the_field_and_the_fix() {
        let group = Unserved::NoMember { group: "edge".into() };
        assert_eq!(group.field(), "tunnel_group");
        assert!(group.to_string().starts_with("no enrolled agent serves tunnel group edge: "));
        assert!(group.to_string().contains("token create --tunnel-group edge"));
        let agent = Unserved::RevokedAgent { id: "a1".into() };
        assert_eq!(agent.field(), "agent_id");
        assert!(agent.to_string().starts_with("agent \"a1\" was revoked"));
        assert!(withheld_reason(&group).starts_with("not published: no enrolled agent serves tunnel group edge"));
    }
}
