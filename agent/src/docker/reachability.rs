//! Whether the connector can reach what a route names: a service host that is not a name on
//! the connector's network (a Compose service name where the container is called
//! `project-web-1`, a typo) answers 502 through the edge, so it is reported as a label
//! diagnostic that lists the names the network does know. Standalone engines only (on Swarm,
//! overlay names live on other nodes too).
//!
//! [`diagnose`] decides (pure); [`NetworkNames`] reads the network's names from the engine,
//! caching each member's aliases by its endpoint on the network (an endpoint's aliases are
//! fixed when it is created: a relist costs one network inspection, not one per member).

use bollard::query_parameters::{InspectContainerOptions, InspectNetworkOptions};
use bollard::Docker;
use dockflare::v1::{Container, LabelDiagnostic};
use dockflare_common::labels::{self, values, LabelPrefixes};
use futures::StreamExt;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// How many known names a diagnostic lists at most (the closest first).
const NAMES_LISTED: usize = 8;

/// Diagnostics for the routes of `container` whose service host is a bare name (no dot, not an
/// IP address, not `localhost`) that `known` does not hold. Pure.
pub fn diagnose(
    container: &Container,
    known: &BTreeSet<String>,
    network: &str,
    prefixes: &LabelPrefixes,
) -> Vec<LabelDiagnostic> {
    let labels: BTreeMap<String, String> = container.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let target = if container.service_name.is_empty() { &container.name } else { &container.service_name };
    let parsed = labels::parse(target, &labels, prefixes);
    let mut diagnostics = Vec::new();
    for route in parsed.routes {
        let Some(host) = values::service_host(&route.service) else { continue };
        let host = host.to_ascii_lowercase();
        let bare = !host.contains('.') && host.parse::<std::net::IpAddr>().is_err() && host != "localhost";
        if !bare || known.contains(&host) {
            continue;
        }
        let (label, value) = service_label(&labels, prefixes, route.index)
            .unwrap_or_else(|| (format!("{}hostname", labels::DOCKFLARE_PREFIX), route.hostname.clone()));
        diagnostics.push(LabelDiagnostic {
            label,
            value,
            reason: format!(
                "service host {host:?} is not a container name or alias on the connector network {network}, so \
                 the connector cannot reach it (requests to {} would fail with 502); names known there: {}",
                route.hostname,
                closest(&host, known),
            ),
        });
    }
    diagnostics
}

/// The label that set the route's service (indexed routes fall back to the base one), and its value.
fn service_label(
    labels: &BTreeMap<String, String>,
    prefixes: &LabelPrefixes,
    index: Option<u32>,
) -> Option<(String, String)> {
    let keys: Vec<String> = match index {
        Some(n) => vec![format!("{n}.service"), "service".into()],
        None => vec!["service".into()],
    };
    keys.iter().find_map(|key| {
        prefixes.iter().find_map(|prefix| {
            let label = format!("{prefix}{key}");
            labels.get(&label).map(|value| (label, value.clone()))
        })
    })
}

/// The known names closest to `host`, at most [`NAMES_LISTED`], or "none". Each distance is
/// computed once (a relist diagnoses every container against every name on the network).
fn closest(host: &str, known: &BTreeSet<String>) -> String {
    let mut row = Vec::new();
    let mut names: Vec<(usize, &str)> =
        known.iter().map(|name| (levenshtein(host, name, &mut row), name.as_str())).collect();
    if names.len() > NAMES_LISTED {
        names.select_nth_unstable(NAMES_LISTED - 1);
        names.truncate(NAMES_LISTED);
    }
    names.sort_unstable();
    let listed: Vec<&str> = names.iter().map(|(_, name)| *name).collect();
    match (listed.is_empty(), known.len() > NAMES_LISTED) {
        (true, _) => "none".into(),
        (false, true) => format!("{}, … ({} in all)", listed.join(", "), known.len()),
        (false, false) => listed.join(", "),
    }
}

/// The edit distance between `a` and `b`, in characters; `row` is scratch space reused between
/// calls (one row of the table, no allocation per call once it is large enough).
fn levenshtein(a: &str, b: &str, row: &mut Vec<usize>) -> usize {
    row.clear();
    row.extend(0..=b.chars().count());
    for (i, ca) in a.chars().enumerate() {
        // `diagonal` is the previous row's value left of the cell being computed.
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.chars().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != cb)).min(above + 1).min(row[j] + 1);
            diagonal = above;
        }
    }
    row[row.len() - 1]
}

/// Member inspections in flight at once when many endpoints are new (a first relist).
const INSPECTIONS_IN_FLIGHT: usize = 8;

/// The names the connector network resolves: its members' names and aliases (each endpoint's
/// aliases read once, when the endpoint is first seen, and kept while it exists), plus names
/// about to join it.
#[derive(Default)]
pub struct NetworkNames {
    /// Aliases by endpoint id.
    aliases: HashMap<String, Vec<String>>,
}

impl NetworkNames {
    /// The names on `network` now; `None` when the network cannot be read (nothing is then
    /// diagnosed: no guess is better than a wrong one).
    pub async fn read(&mut self, docker: &Docker, network: &str) -> Option<BTreeSet<String>> {
        let inspect = match docker.inspect_network(network, None::<InspectNetworkOptions>).await {
            Ok(inspect) => inspect,
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {
                return Some(BTreeSet::new());
            }
            Err(error) => {
                tracing::debug!(message = "Cannot read the connector network's names.", %network, %error);
                return None;
            }
        };
        let members = inspect.containers.unwrap_or_default();
        let current: HashSet<&str> = members.iter().map(|(id, member)| endpoint_key(id, member)).collect();
        self.aliases.retain(|endpoint, _| current.contains(endpoint.as_str()));
        let reads: Vec<_> = members
            .iter()
            .map(|(id, member)| (id.clone(), endpoint_key(id, member).to_string()))
            .filter(|(_, endpoint)| !self.aliases.contains_key(endpoint))
            .map(|(id, endpoint)| aliases_of(docker, id, endpoint, network))
            .collect();
        let read: Vec<(String, Vec<String>)> =
            futures::stream::iter(reads).buffer_unordered(INSPECTIONS_IN_FLIGHT).collect().await;
        self.aliases.extend(read);
        let mut names = BTreeSet::new();
        for (id, member) in &members {
            if let Some(name) = member.name.as_deref() {
                names.insert(name.trim_start_matches('/').to_ascii_lowercase());
            }
            let aliases = self.aliases.get(endpoint_key(id, member)).into_iter().flatten();
            names.extend(aliases.map(|a| a.to_ascii_lowercase()));
            names.insert(id.chars().take(12).collect());
        }
        Some(names)
    }
}

/// What a member's aliases are cached under: its endpoint id, unique to one connection of one
/// container (its container id when the engine gives none).
fn endpoint_key<'a>(id: &'a str, member: &'a bollard::models::NetworkContainer) -> &'a str {
    member.endpoint_id.as_deref().filter(|e| !e.is_empty()).unwrap_or(id)
}

/// The aliases of container `id` on `network` (none when it cannot be inspected), with the
/// endpoint they are kept under.
async fn aliases_of(docker: &Docker, id: String, endpoint: String, network: &str) -> (String, Vec<String>) {
    let aliases = match docker.inspect_container(&id, None::<InspectContainerOptions>).await {
        Ok(container) => container
            .network_settings
            .and_then(|settings| settings.networks)
            .and_then(|mut networks| networks.remove(network))
            .and_then(|endpoint| endpoint.aliases)
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    (endpoint, aliases)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(labels: &[(&str, &str)]) -> Container {
        Container {
            id: "c1".into(),
            name: "proj-web-1".into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Default::default()
        }
    }

    fn known(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn a_service_host_the_network_does_not_know_is_diagnosed_with_the_names_it_knows() {
        let web = container(&[
            ("dockflare.enable", "true"),
            ("dockflare.hostname", "app.example.com"),
            ("dockflare.service", "http://web:80"),
        ]);
        let found = diagnose(&web, &known(&["proj-web-1", "proj-db-1"]), "cloudflare-net", &LabelPrefixes::default());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].label, "dockflare.service");
        assert_eq!(found[0].value, "http://web:80");
        assert!(found[0]
            .reason
            .contains("\"web\" is not a container name or alias on the connector network cloudflare-net"));
        assert!(found[0].reason.ends_with("names known there: proj-web-1, proj-db-1"), "{}", found[0].reason);
        // Known as an alias: fine.
        assert!(diagnose(&web, &known(&["web"]), "n", &LabelPrefixes::default()).is_empty());
    }

    #[test]
    fn dotted_names_addresses_and_non_url_services_are_left_alone() {
        for service in [
            "http://db.internal:80",
            "http://192.168.1.5:80",
            "http://[::1]:80",
            "http://localhost:80",
            "http_status:404",
        ] {
            let c = container(&[
                ("dockflare.enable", "true"),
                ("dockflare.hostname", "app.example.com"),
                ("dockflare.service", service),
            ]);
            assert!(diagnose(&c, &BTreeSet::new(), "n", &LabelPrefixes::default()).is_empty(), "{service}");
        }
    }

    #[test]
    fn an_indexed_route_names_its_own_service_label() {
        let c = container(&[
            ("dockflare.enable", "true"),
            ("dockflare.service", "http://proj-web-1:80"),
            ("dockflare.0.hostname", "a.example.com"),
            ("dockflare.1.hostname", "b.example.com"),
            ("dockflare.1.service", "http://admin:9000"),
        ]);
        let found = diagnose(&c, &known(&["proj-web-1"]), "n", &LabelPrefixes::default());
        assert_eq!(found.iter().map(|d| d.label.as_str()).collect::<Vec<_>>(), vec!["dockflare.1.service"]);
    }

    #[test]
    fn edit_distances() {
        let mut row = Vec::new();
        for (a, b, distance) in [
            ("web", "webb", 1),
            ("kitten", "sitting", 3),
            ("", "abc", 3),
            ("abc", "", 3),
            ("same", "same", 0),
            ("é", "e", 1),
        ] {
            assert_eq!(levenshtein(a, b, &mut row), distance, "{a} → {b}");
        }
    }

    #[test]
    fn closest_names_come_first_and_long_lists_are_cut() {
        let many: BTreeSet<String> = (0..20).map(|n| format!("name{n:02}")).chain(["webb".to_string()]).collect();
        let text = closest("web", &many);
        assert!(text.starts_with("webb, "), "{text}");
        assert!(text.ends_with("(21 in all)"), "{text}");
        assert_eq!(closest("web", &BTreeSet::new()), "none");
    }
}
