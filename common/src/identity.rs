//! Identities carried in certificates: the URI SAN that names an agent or an
//! operator, and the agent id format.
//!
//! Agent certificates carry `spiffe://dockflare/agent/<agent-id>`, admin
//! certificates `spiffe://dockflare/admin/<name>`. The master takes an
//! agent's identity from its certificate only.

use std::fmt;

const AGENT_PREFIX: &str = "spiffe://dockflare/agent/";
const ADMIN_PREFIX: &str = "spiffe://dockflare/admin/";

/// Who a client certificate says it is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Identity {
    /// An enrolled agent, by the id the master gave it.
    Agent(AgentId),
    /// An operator or integration with admin rights, by name.
    Admin(String),
}

impl Identity {
    /// The URI SAN that encodes this identity.
    pub fn to_uri(&self) -> String {
        match self {
            Identity::Agent(id) => format!("{AGENT_PREFIX}{id}"),
            Identity::Admin(name) => format!("{ADMIN_PREFIX}{name}"),
        }
    }

    /// Parses a URI SAN. `None` when it is not a DockFlare identity.
    pub fn from_uri(uri: &str) -> Option<Identity> {
        if let Some(id) = uri.strip_prefix(AGENT_PREFIX) {
            return AgentId::parse(id).ok().map(Identity::Agent);
        }
        let name = uri.strip_prefix(ADMIN_PREFIX)?;
        is_simple_name(name).then(|| Identity::Admin(name.to_string()))
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Agent(id) => write!(f, "agent {id}"),
            Identity::Admin(name) => write!(f, "admin {name}"),
        }
    }
}

/// An agent id: chosen by the master, a UUID in lowercase hyphenated form.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgentId(String);

/// Why a string is not an agent id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("agent id {value:?} is not a lowercase hyphenated UUID")]
pub struct InvalidAgentId {
    /// The rejected value (agent ids are not secret).
    pub value: String,
}

impl AgentId {
    /// A new random agent id.
    pub fn generate() -> AgentId {
        AgentId(uuid::Uuid::new_v4().hyphenated().to_string())
    }

    /// Validates an agent id received from outside.
    pub fn parse(value: &str) -> Result<AgentId, InvalidAgentId> {
        match uuid::Uuid::try_parse(value) {
            Ok(uuid) if uuid.hyphenated().to_string() == value => Ok(AgentId(value.to_string())),
            _ => Err(InvalidAgentId { value: value.chars().take(80).collect() }),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_simple_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_agent_ids_parse_back() {
        for _ in 0..100 {
            let id = AgentId::generate();
            assert_eq!(AgentId::parse(id.as_str()), Ok(id.clone()));
        }
    }

    #[test]
    fn identities_round_trip_through_uris() {
        let agent = Identity::Agent(AgentId::generate());
        assert_eq!(Identity::from_uri(&agent.to_uri()), Some(agent));
        let admin = Identity::Admin("admin".into());
        assert_eq!(Identity::from_uri(&admin.to_uri()), Some(admin));
    }

    #[test]
    fn foreign_or_malformed_uris_are_not_identities() {
        for uri in [
            "spiffe://other/agent/0b7f1c2e-1111-4222-8333-444455556666",
            "spiffe://dockflare/agent/not-a-uuid",
            "spiffe://dockflare/agent/0B7F1C2E-1111-4222-8333-444455556666",
            "spiffe://dockflare/admin/",
            "spiffe://dockflare/admin/a/b",
            "https://example.com",
        ] {
            assert_eq!(Identity::from_uri(uri), None, "{uri}");
        }
    }
}
