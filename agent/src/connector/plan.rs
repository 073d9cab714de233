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
    /// Ports published on the host, `[IP:]HOST_PORT:CONTAINER_PORT[/PROTO]` (host mode in Swarm).
    pub publish: Vec<PortPublish>,
    /// Identifies token, image, network, tunnel and published ports: a change means "recreate".
    pub config_hash: String,
    /// The stack the agent runs in (`com.docker.stack.namespace`), given to its connector too,
    /// so that `docker stack rm` removes the connector with the agent.
    pub stack_namespace: Option<String>,
}

/// One `--connector-publish` entry: `[HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|/udp]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortPublish {
    pub host_ip: Option<String>,
    pub host_port: u16,
    pub container_port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
}

impl PortPublish {
    /// Parses `[HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|/udp]` (an IPv6 host IP in brackets).
    pub fn parse(text: &str) -> Result<PortPublish, String> {
        let invalid = |why: &str| {
            format!("port publication {text:?} is not [HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|/udp]: {why}")
        };
        let (spec, protocol) = match text.trim().rsplit_once('/') {
            Some((spec, protocol @ ("tcp" | "udp"))) => (spec, protocol),
            Some(_) => return Err(invalid("the protocol must be tcp or udp")),
            None => (text.trim(), "tcp"),
        };
        let (rest, container_port) = spec.rsplit_once(':').ok_or_else(|| invalid("no container port"))?;
        let (host_ip, host_port) = match rest.rsplit_once(':') {
            Some((ip, port)) => (Some(ip.trim_start_matches('[').trim_end_matches(']').to_string()), port),
            None => (None, rest),
        };
        let port = |p: &str| p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| invalid("ports are 1-65535"));
        if host_ip.as_deref().is_some_and(|ip| ip.parse::<std::net::IpAddr>().is_err()) {
            return Err(invalid("the host IP is not an IP address"));
        }
        Ok(PortPublish {
            host_ip,
            host_port: port(host_port)?,
            container_port: port(container_port)?,
            protocol: protocol.to_string(),
        })
    }
}

impl std::fmt::Display for PortPublish {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.host_ip {
            Some(ip) if ip.contains(':') => write!(f, "[{ip}]:")?,
            Some(ip) => write!(f, "{ip}:")?,
            None => {}
        }
        write!(f, "{}:{}/{}", self.host_port, self.container_port, self.protocol)
    }
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
/// hashed (its hash says nothing useful about it). Published ports count only
/// when there are some, so connectors made before they existed keep their hash.
pub fn config_hash(
    token: &SecretString,
    image: &str,
    network: &str,
    tunnel_id: &str,
    launch: &str,
    publish: &[PortPublish],
) -> String {
    let mut hasher = Sha256::new();
    let published: Vec<String> = publish.iter().map(|p| format!("publish={p}")).collect();
    let parts = [token.expose_secret(), image, network, tunnel_id, launch]
        .into_iter()
        .chain(published.iter().map(String::as_str));
    for part in parts {
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
            publish: Vec::new(),
            config_hash: hash.into(),
            stack_namespace: None,
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
        let base = config_hash(&token, "img", "net", "tid", "container", &[]);
        assert_ne!(base, config_hash(&SecretString::from("u"), "img", "net", "tid", "container", &[]));
        assert_ne!(base, config_hash(&token, "img2", "net", "tid", "container", &[]));
        assert_ne!(base, config_hash(&token, "img", "net2", "tid", "container", &[]));
        assert_ne!(base, config_hash(&token, "img", "net", "tid", "service", &[]));
        assert_eq!(base, config_hash(&token, "img", "net", "tid", "container", &[]));
        assert!(!base.contains('t') || base.len() == 32);
        // Without published ports the hash is what it was before they existed.
        let mut before = Sha256::new();
        for part in ["t", "img", "net", "tid", "container"] {
            before.update((part.len() as u64).to_be_bytes());
            before.update(part.as_bytes());
        }
        assert_eq!(base, hex::encode(&before.finalize()[..16]));
        let published = |spec: &str| PortPublish::parse(spec).map(|p| vec![p]).unwrap_or_default();
        let with_port = config_hash(&token, "img", "net", "tid", "container", &published("8080:8080"));
        assert_ne!(base, with_port);
        assert_ne!(with_port, config_hash(&token, "img", "net", "tid", "container", &published("8081:8080")));
    }

    #[test]
    fn port_publications_parse() {
        let ok = |host_ip: Option<&str>, host_port: u16, container_port: u16, protocol: &str| {
            Ok(PortPublish {
                host_ip: host_ip.map(str::to_string),
                host_port,
                container_port,
                protocol: protocol.into(),
            })
        };
        // (text, expected, display)
        let cases = [
            ("8080:8080", ok(None, 8080, 8080, "tcp"), "8080:8080/tcp"),
            (" 18080:8080/tcp ", ok(None, 18080, 8080, "tcp"), "18080:8080/tcp"),
            ("127.0.0.1:8080:8080", ok(Some("127.0.0.1"), 8080, 8080, "tcp"), "127.0.0.1:8080:8080/tcp"),
            ("[::1]:8080:8080/udp", ok(Some("::1"), 8080, 8080, "udp"), "[::1]:8080:8080/udp"),
        ];
        for (text, expected, display) in cases {
            let parsed = PortPublish::parse(text);
            assert_eq!(parsed, expected, "{text}");
            assert_eq!(parsed.map(|p| p.to_string()).unwrap_or_default(), display, "{text}");
        }
        for bad in ["8080", "0:8080", "8080:70000", "x:8080:8080", "8080:8080/sctp", ""] {
            assert!(PortPublish::parse(bad).is_err(), "{bad}");
        }
    }
}
