//! Identities carried in certificates: the URI SAN that names an agent or an
//! operator, and the agent id format.
//!
//! Agent certificates carry `spiffe://dockflare/agent/<agent-id>`, admin
//! certificates `spiffe://dockflare/admin/<role>/<name>` (role viewer,
//! operator or admin). A certificate of an earlier version,
//! `spiffe://dockflare/admin/<name>`, is the master's own admin identity and
//! has role admin. The master takes identities from certificates only.

use std::fmt;

const AGENT_PREFIX: &str = "spiffe://dockflare/agent/";
const ADMIN_PREFIX: &str = "spiffe://dockflare/admin/";

/// Who a client certificate says it is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Identity {
    /// An enrolled agent, by the id the master gave it.
    Agent(AgentId),
    /// An operator or integration calling AdminService, by name, with its role.
    Admin { name: String, role: Role },
}

/// What an admin identity may do; each role may do everything the roles before it may.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Reads everything but secrets.
    Viewer,
    /// Also adds and deletes manual routes, sends commands, starts reconcile passes.
    Operator,
    /// Also manages join tokens, agents and admin identities.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    /// The role's name in certificates, flags and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Parses a role's name (as [`Role::as_str`] writes it).
    pub fn parse(value: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == value)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Identity {
    /// The URI SAN that encodes this identity.
    pub fn to_uri(&self) -> String {
        match self {
            Identity::Agent(id) => format!("{AGENT_PREFIX}{id}"),
            Identity::Admin { name, role } => format!("{ADMIN_PREFIX}{role}/{name}"),
        }
    }

    /// An admin identity; `None` when the name is not 1–64 of a-z, A-Z, 0-9, '-', '_', '.'.
    pub fn admin(name: &str, role: Role) -> Option<Identity> {
        is_simple_name(name).then(|| Identity::Admin { name: name.to_string(), role })
    }

    /// Parses a URI SAN. `None` when it is not a DockFlare identity.
    pub fn from_uri(uri: &str) -> Option<Identity> {
        if let Some(id) = uri.strip_prefix(AGENT_PREFIX) {
            return AgentId::parse(id).ok().map(Identity::Agent);
        }
        let rest = uri.strip_prefix(ADMIN_PREFIX)?;
        match rest.split_once('/') {
            Some((role, name)) => Identity::admin(name, Role::parse(role)?),
            // Before roles, the master's own admin certificate: all rights.
            None => Identity::admin(rest, Role::Admin),
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Agent(id) => write!(f, "agent {id}"),
            Identity::Admin { name, role } => write!(f, "{role} {name}"),
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
        for role in Role::ALL {
            let admin = Identity::admin("ops.team-1", role).expect("a valid name");
            assert_eq!(admin.to_uri(), format!("spiffe://dockflare/admin/{role}/ops.team-1"));
            assert_eq!(Identity::from_uri(&admin.to_uri()), Some(admin));
        }
    }

    #[test]
    fn a_certificate_from_before_roles_is_the_masters_admin() {
        assert_eq!(
            Identity::from_uri("spiffe://dockflare/admin/admin"),
            Some(Identity::Admin { name: "admin".into(), role: Role::Admin })
        );
    }

    #[test]
    fn roles_are_ordered_by_what_they_may_do() {
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
        assert_eq!(Role::parse("operator"), Some(Role::Operator));
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn foreign_or_malformed_uris_are_not_identities() {
        for uri in [
            "spiffe://other/agent/0b7f1c2e-1111-4222-8333-444455556666",
            "spiffe://dockflare/agent/not-a-uuid",
            "spiffe://dockflare/agent/0B7F1C2E-1111-4222-8333-444455556666",
            "spiffe://dockflare/admin/",
            "spiffe://dockflare/admin/a/b",
            "spiffe://dockflare/admin/root/alice",
            "spiffe://dockflare/admin/viewer/",
            "spiffe://dockflare/admin/viewer/a/b",
            "spiffe://dockflare/admin/viewer/with space",
            "https://example.com",
        ] {
            assert_eq!(Identity::from_uri(uri), None, "{uri}");
        }
    }
}
