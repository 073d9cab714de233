//! Deciding what to do about the tunnel connector: the desired connector
//! (from tunnel_state.json) against the connectors found on the engine.
//! Pure functions; `mod.rs` applies the plan.

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// The connector that should run.
#[derive(Clone)]
pub struct DesiredConnector {
    /// Container or Swarm service name.
    pub name: String,
    pub image: String,
    pub network: String,
    pub tunnel_id: String,
    pub tunnel_name: String,
    pub token: SecretString,
    /// Identifies token, image, network and tunnel: a change means "recreate".
    pub config_hash: String,
}

/// A connector found on the engine (labelled as this agent's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedConnector {
    pub id: String,
    pub config_hash: String,
    /// Docker state (running, restarting, exited, created, …) or, for a
    /// Swarm service, "running" when a task runs and "pending" otherwise.
    pub state: String,
}

/// One step towards the desired state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Remove { id: String, why: &'static str },
    Start { id: String },
    Create,
}

/// The hash that ties a connector to its configuration. The token goes in
/// hashed (its hash says nothing useful about it).
pub fn config_hash(token: &SecretString, image: &str, network: &str, tunnel_id: &str, launch: &str) -> String {
    let mut hasher = Sha256::new();
    for part in [token.expose_secret(), image, network, tunnel_id, launch] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(&hasher.finalize()[..16])
}

/// What to do. At most one connector survives; a matching one is adopted
/// (kept, started if stopped) rather than recreated.
pub fn plan(desired: Option<&DesiredConnector>, observed: &[ObservedConnector]) -> Vec<Action> {
    let Some(desired) = desired else {
        return observed.iter().map(|c| Action::Remove { id: c.id.clone(), why: "no tunnel is wanted" }).collect();
    };
    let keep = observed
        .iter()
        .position(|c| c.config_hash == desired.config_hash && c.state != "dead" && c.state != "removing");
    let mut actions: Vec<Action> = observed
        .iter()
        .enumerate()
        .filter(|(index, _)| Some(*index) != keep)
        .map(|(_, c)| Action::Remove {
            id: c.id.clone(),
            why: if c.config_hash == desired.config_hash { "duplicate connector" } else { "configuration changed" },
        })
        .collect();
    match keep.map(|index| &observed[index]) {
        None => actions.push(Action::Create),
        Some(kept) if matches!(kept.state.as_str(), "exited" | "created" | "paused") => {
            actions.push(Action::Start { id: kept.id.clone() })
        }
        Some(_) => {}
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired(hash: &str) -> DesiredConnector {
        DesiredConnector {
            name: "c".into(),
            image: "i".into(),
            network: "n".into(),
            tunnel_id: "t".into(),
            tunnel_name: "tn".into(),
            token: SecretString::from("tok"),
            config_hash: hash.into(),
        }
    }

    fn seen(id: &str, hash: &str, state: &str) -> ObservedConnector {
        ObservedConnector { id: id.into(), config_hash: hash.into(), state: state.into() }
    }

    /// (name, desired, observed, expected plan)
    type Case = (&'static str, Option<DesiredConnector>, Vec<ObservedConnector>, Vec<Action>);

    #[test]
    fn plans() {
        let cases: Vec<Case> = vec![
            ("nothing wanted, nothing there", None, vec![], vec![]),
            ("first start", Some(desired("h1")), vec![], vec![Action::Create]),
            ("adopt the running one", Some(desired("h1")), vec![seen("a", "h1", "running")], vec![]),
            (
                "adopt and start a stopped one",
                Some(desired("h1")),
                vec![seen("a", "h1", "exited")],
                vec![Action::Start { id: "a".into() }],
            ),
            (
                "token changed: recreate",
                Some(desired("h2")),
                vec![seen("a", "h1", "running")],
                vec![Action::Remove { id: "a".into(), why: "configuration changed" }, Action::Create],
            ),
            (
                "never two connectors",
                Some(desired("h1")),
                vec![seen("a", "h1", "running"), seen("b", "h1", "running")],
                vec![Action::Remove { id: "b".into(), why: "duplicate connector" }],
            ),
            (
                "stop_tunnel",
                None,
                vec![seen("a", "h1", "running")],
                vec![Action::Remove { id: "a".into(), why: "no tunnel is wanted" }],
            ),
        ];
        for (name, desired, observed, expected) in cases {
            assert_eq!(plan(desired.as_ref(), &observed), expected, "{name}");
        }
    }

    #[test]
    fn the_hash_changes_with_every_input() {
        let token = SecretString::from("t");
        let base = config_hash(&token, "img", "net", "tid", "container");
        assert_ne!(base, config_hash(&SecretString::from("u"), "img", "net", "tid", "container"));
        assert_ne!(base, config_hash(&token, "img2", "net", "tid", "container"));
        assert_ne!(base, config_hash(&token, "img", "net2", "tid", "container"));
        assert_ne!(base, config_hash(&token, "img", "net", "tid", "service"));
        assert_eq!(base, config_hash(&token, "img", "net", "tid", "container"));
        assert!(!base.contains('t') || base.len() == 32);
    }
}
