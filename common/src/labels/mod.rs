//! DockFlare's container labels → routes, plus a diagnostic for every label
//! that is wrong. Pure functions over a label map.
//!
//! Prefixes, in order: a custom one (`LABEL_PREFIX`), `dockflare.`, legacy
//! `cloudflare.tunnel.`; for each key the first prefix that has it wins.
//! Forms: the base `hostname` + `service` pair; indexed `N.hostname`,
//! `N.service`, … from 0 without gaps, each key falling back to the base
//! label; the seed's `domain` + `port` (service `http://<name>:<port>`).
//!
//! **Nothing is silently ignored**: typos, unknown keys, invalid values,
//! gaps in indexes, shadowed labels — each yields a [`Diagnostic`] naming the
//! label, the value and the reason. Valid routes of the same container still
//! apply.

pub mod access;
pub mod values;

use access::{AccessLabel, AccessLabels};

use std::collections::{BTreeMap, BTreeSet};
use values::ServiceKind;

pub const DOCKFLARE_PREFIX: &str = "dockflare.";
pub const LEGACY_PREFIX: &str = "cloudflare.tunnel.";

/// Keys a route may set, in base and indexed form.
const ROUTE_KEYS: &[&str] = &[
    "hostname",
    "service",
    "path",
    "zonename",
    "no_tls_verify",
    "originsrvname",
    "httpHostHeader",
    "http2_origin",
    "disable_chunked_encoding",
    "match_sni_to_host",
    "connect_timeout",
    "tls_timeout",
    "tcp_keep_alive",
    "keep_alive_timeout",
    "keep_alive_connections",
    "no_happy_eyeballs",
    "proxy_type",
    "ca_pool",
];
/// Keys that exist only in base form.
const BASE_ONLY_KEYS: &[&str] = &["enable", "domain", "port"];
/// Labels DockFlare puts on the connectors it runs.
const MARKER_KEYS: &[&str] = &["managed", "type", "agent_id", "tunnel_id"];

/// Which label prefixes apply, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelPrefixes {
    ordered: Vec<String>,
}

impl Default for LabelPrefixes {
    fn default() -> Self {
        LabelPrefixes::new(None)
    }
}

impl LabelPrefixes {
    /// The standard prefixes, preceded by `custom` when given (a trailing
    /// '.' is added if missing).
    pub fn new(custom: Option<&str>) -> LabelPrefixes {
        let mut ordered = Vec::new();
        if let Some(custom) = custom.map(str::trim).filter(|c| !c.is_empty()) {
            let custom = if custom.ends_with('.') { custom.to_string() } else { format!("{custom}.") };
            if custom != DOCKFLARE_PREFIX && custom != LEGACY_PREFIX {
                ordered.push(custom);
            }
        }
        ordered.push(DOCKFLARE_PREFIX.into());
        ordered.push(LEGACY_PREFIX.into());
        LabelPrefixes { ordered }
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.ordered.iter().map(String::as_str)
    }

    /// The prefix a label key starts with, if any (the first in order).
    pub fn strip<'a>(&self, label: &'a str) -> Option<(&str, &'a str)> {
        self.iter().find_map(|prefix| label.strip_prefix(prefix).map(|rest| (prefix, rest)))
    }
}

/// A problem with one label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub label: String,
    pub value: String,
    pub reason: String,
}

/// cloudflared's origin options a route sets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginOptions {
    pub no_tls_verify: Option<bool>,
    pub origin_server_name: Option<String>,
    pub http_host_header: Option<String>,
    pub http2_origin: Option<bool>,
    pub disable_chunked_encoding: Option<bool>,
    pub match_sni_to_host: Option<bool>,
    pub connect_timeout: Option<String>,
    pub tls_timeout: Option<String>,
    pub tcp_keep_alive: Option<String>,
    pub keep_alive_timeout: Option<String>,
    pub keep_alive_connections: Option<u32>,
    pub no_happy_eyeballs: Option<bool>,
    pub proxy_type: Option<String>,
    pub ca_pool: Option<String>,
}

/// One route a container asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// `None` for the base labels, `Some(N)` for `N.*`.
    pub index: Option<u32>,
    pub hostname: String,
    /// "" matches every path.
    pub path: String,
    pub service: String,
    /// The zone named by the `zonename` label, if any.
    pub zone_name: Option<String>,
    pub origin: OriginOptions,
    /// The Cloudflare Access labels that apply to this route, by key: its own `N.access.*`, else
    /// the base `access.*` it falls back to (under the first prefix that has the key). Non-empty
    /// means the container asks for the route to be protected ([`access::interpret`]).
    pub access: AccessLabels,
}

/// The part of a label key after its prefix (and index) when it is an Access label: `access.policy`
/// → `Some("policy")`.
fn access_key(rest: &str) -> Option<&str> {
    rest.strip_prefix("access.")
}

/// What a container's labels say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerLabels {
    /// `enable` is true.
    pub enabled: bool,
    pub routes: Vec<RouteSpec>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Whether any label uses a DockFlare prefix (worth reporting, even when
/// not enabled, so that typos reach the operator).
pub fn has_dockflare_labels(labels: &BTreeMap<String, String>, prefixes: &LabelPrefixes) -> bool {
    labels.keys().any(|key| prefixes.strip(key).is_some())
}

/// Whether the container is a connector DockFlare itself runs.
pub fn is_managed_connector(labels: &BTreeMap<String, String>) -> bool {
    labels.get("dockflare.managed").map(String::as_str) == Some("true")
}

struct Reader<'a> {
    labels: &'a BTreeMap<String, String>,
    prefixes: &'a LabelPrefixes,
    diagnostics: Vec<Diagnostic>,
}

impl<'a> Reader<'a> {
    /// The label for `key` under the first prefix that has it.
    fn get(&self, key: &str) -> Option<(String, &'a str)> {
        self.prefixes.iter().find_map(|prefix| {
            let label = format!("{prefix}{key}");
            self.labels.get(&label).map(|value| (label, value.as_str()))
        })
    }

    fn diagnose(&mut self, label: &str, value: &str, reason: impl Into<String>) {
        self.diagnostics.push(Diagnostic { label: label.into(), value: value.into(), reason: reason.into() });
    }
}

fn suggestion(key: &str, known: &[&str]) -> Option<&'static str> {
    let lower = key.to_ascii_lowercase();
    ROUTE_KEYS
        .iter()
        .chain(BASE_ONLY_KEYS)
        .filter(|candidate| known.contains(candidate))
        .map(|candidate| (strsim::levenshtein(&lower, &candidate.to_ascii_lowercase()), *candidate))
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

fn unknown_key_reason(key: &str, known: &[&str]) -> String {
    match suggestion(key, known) {
        Some(candidate) => format!("unknown key {key:?} (did you mean {candidate:?}?)"),
        None => format!("unknown key {key:?}"),
    }
}

/// Splits "N.key" into (N, key).
fn split_index(rest: &str) -> Option<(u32, &str)> {
    let (number, key) = rest.split_once('.')?;
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((number.parse().ok()?, key))
}

/// Reads a container's DockFlare labels. `target_name` is the container (or
/// Swarm service) name, used by the `domain` + `port` form.
pub fn parse(target_name: &str, labels: &BTreeMap<String, String>, prefixes: &LabelPrefixes) -> ContainerLabels {
    let mut reader = Reader { labels, prefixes, diagnostics: Vec::new() };
    let indexes = check_keys(&mut reader);

    let enabled = match reader.get("enable") {
        None => false,
        Some((label, value)) => values::boolean(value).unwrap_or_else(|reason| {
            reader.diagnose(&label, value, format!("{reason}; the container is not enabled"));
            false
        }),
    };
    if !enabled {
        if reader.get("enable").is_none() {
            if let Some((label, value)) =
                ["hostname", "service", "domain", "0.hostname"].iter().find_map(|k| reader.get(k))
            {
                let enable = format!("{}enable", prefixes.strip(&label).map(|(p, _)| p).unwrap_or(DOCKFLARE_PREFIX));
                reader.diagnose(&label, value, format!("has no effect: {enable} is not set to true"));
            }
        }
        return ContainerLabels { enabled: false, routes: Vec::new(), diagnostics: reader.diagnostics };
    }

    let mut routes = Vec::new();
    if let Some(route) = base_route(&mut reader, target_name) {
        routes.push(route);
    }
    let mut next = 0u32;
    while indexes.contains(&next) {
        if reader.get(&format!("{next}.hostname")).is_none() {
            break;
        }
        if let Some(route) = route(&mut reader, Some(next), None) {
            routes.push(route);
        }
        next += 1;
    }
    for label in labels.keys() {
        if let Some((_, rest)) = prefixes.strip(label) {
            if let Some((index, _)) = split_index(rest) {
                if index >= next {
                    let value = labels.get(label).map(String::as_str).unwrap_or_default();
                    let reason = if index == next {
                        format!("ignored: {}{next}.hostname is missing", DOCKFLARE_PREFIX)
                    } else {
                        format!("ignored: indexes must run 0, 1, 2… without gaps, and index {next} has no hostname")
                    };
                    reader.diagnose(label, value, reason);
                }
            }
        }
    }

    let mut seen = BTreeSet::new();
    routes.retain(|route| {
        if seen.insert((route.hostname.clone(), route.path.clone())) {
            return true;
        }
        let label = match route.index {
            Some(n) => format!("{DOCKFLARE_PREFIX}{n}.hostname"),
            None => format!("{DOCKFLARE_PREFIX}hostname"),
        };
        reader.diagnostics.push(Diagnostic {
            label,
            value: route.hostname.clone(),
            reason: format!("duplicate route for {}{}: only the first applies", route.hostname, route.path),
        });
        false
    });
    if routes.is_empty() && reader.diagnostics.is_empty() {
        if let Some((label, value)) = reader.get("enable") {
            reader.diagnose(&label, value, "enabled, but no hostname label is set");
        }
    }
    // Base Access labels apply to every route: their mistakes are said once.
    let mut said = BTreeSet::new();
    reader.diagnostics.retain(|d| said.insert((d.label.clone(), d.value.clone(), d.reason.clone())));
    ContainerLabels { enabled: true, routes, diagnostics: reader.diagnostics }
}

/// Diagnoses unknown keys and shadowed labels; returns the indexes in use.
fn check_keys(reader: &mut Reader<'_>) -> BTreeSet<u32> {
    let mut indexes = BTreeSet::new();
    let mut problems = Vec::new();
    for (label, value) in reader.labels {
        let Some((_, rest)) = reader.prefixes.strip(label) else { continue };
        let known = if let Some((index, key)) = split_index(rest) {
            indexes.insert(index);
            if ROUTE_KEYS.contains(&key) || access_key(key).is_some() {
                true
            } else {
                problems.push((label.clone(), value.clone(), unknown_key_reason(key, ROUTE_KEYS)));
                false
            }
        } else if access_key(rest).is_some()
            || ROUTE_KEYS.contains(&rest)
            || BASE_ONLY_KEYS.contains(&rest)
            || MARKER_KEYS.contains(&rest)
        {
            true
        } else {
            let all: Vec<&str> = ROUTE_KEYS.iter().chain(BASE_ONLY_KEYS).copied().collect();
            problems.push((label.clone(), value.clone(), unknown_key_reason(rest, &all)));
            false
        };
        if known {
            if let Some((winner, _)) = reader.get(rest) {
                if winner != *label {
                    problems.push((label.clone(), value.clone(), format!("ignored: {winner} takes precedence")));
                }
            }
        }
    }
    for (label, value, reason) in problems {
        reader.diagnose(&label, &value, reason);
    }
    indexes
}

/// The base route: `hostname` (+ `service`), or the seed's `domain` + `port`.
fn base_route(reader: &mut Reader<'_>, target_name: &str) -> Option<RouteSpec> {
    if reader.get("hostname").is_some() {
        if let Some((label, value)) = reader.get("domain") {
            reader.diagnose(&label, value, "ignored: hostname is set");
        }
        return route(reader, None, None);
    }
    let (domain_label, domain) = reader.get("domain")?;
    let default_service = match reader.get("port") {
        Some((label, port)) => match port.trim().parse::<u16>() {
            Ok(port) if port > 0 => Some(format!("http://{target_name}:{port}")),
            _ => {
                reader.diagnose(&label, port, "not a port number 1-65535");
                return None;
            }
        },
        None if reader.get("service").is_some() => None,
        None => {
            reader.diagnose(&domain_label, domain, "needs a port label (or a service label) to know where to route");
            return None;
        }
    };
    route(reader, None, Some((domain_label, domain.to_string(), default_service)))
}

/// Builds one route; `None` (with diagnostics) when it cannot apply.
fn route(
    reader: &mut Reader<'_>,
    index: Option<u32>,
    domain: Option<(String, String, Option<String>)>,
) -> Option<RouteSpec> {
    let (host_label, host_value, default_service) = match (&domain, index) {
        (Some((label, value, service)), None) => (label.clone(), value.clone(), service.clone()),
        _ => {
            let key = index.map(|n| format!("{n}.hostname")).unwrap_or_else(|| "hostname".into());
            let (label, value) = reader.get(&key)?;
            (label, value.to_string(), None)
        }
    };
    let hostname = match values::hostname(&host_value) {
        Ok(hostname) => hostname,
        Err(reason) => {
            reader.diagnose(&host_label, &host_value, reason);
            return None;
        }
    };
    let (service, kind) = match (route_label(reader, index, "service"), default_service) {
        (Some((label, value)), _) => match values::service(value) {
            Ok(parsed) => parsed,
            Err(reason) => {
                reader.diagnose(&label, value, reason);
                return None;
            }
        },
        (None, Some(service)) => (service, ServiceKind::Http),
        (None, None) => {
            let service_key = index.map(|n| format!("{n}.service")).unwrap_or_else(|| "service".into());
            reader.diagnose(&host_label, &host_value, format!("no service: set {DOCKFLARE_PREFIX}{service_key}"));
            return None;
        }
    };
    let path = match route_label(reader, index, "path") {
        None => String::new(),
        Some((label, value)) => match values::path(value) {
            Ok(path) => path,
            Err(reason) => {
                reader.diagnose(&label, value, reason);
                return None;
            }
        },
    };
    let zone_name = match route_label(reader, index, "zonename") {
        None => None,
        Some((label, value)) => match values::hostname(value) {
            Ok(zone) if hostname == zone || hostname.ends_with(&format!(".{zone}")) => Some(zone),
            Ok(zone) => {
                reader.diagnose(&label, value, format!("hostname {hostname} is not in zone {zone}"));
                return None;
            }
            Err(reason) => {
                reader.diagnose(&label, value, format!("not a zone name: {reason}"));
                return None;
            }
        },
    };
    let origin = origin_options(reader, index, kind);
    let access = access_labels(reader, index);
    if !access.is_empty() {
        if let Err(problems) = access::interpret(&access) {
            reader.diagnostics.extend(problems);
        }
        reader.diagnostics.extend(access::shadowed_group(&access));
        if !path.is_empty() {
            if let Err(reason) = access::application_domain(&hostname, &path) {
                let label = access.values().next().map(|l| l.label.clone()).unwrap_or_default();
                let value = access.values().next().map(|l| l.value.clone()).unwrap_or_default();
                reader.diagnose(&label, &value, reason);
            }
        }
    }
    Some(RouteSpec { index, hostname, path, service, zone_name, origin, access })
}

/// The Access labels that apply to the route with `index`, by key: for an indexed route its own
/// `N.access.<key>`, else the base `access.<key>` (indexed routes fall back to base labels, as for
/// every other key); under the first prefix that has it. Unknown keys are kept too (a misspelt
/// Access label must withhold the route, never publish it unprotected).
fn access_labels(reader: &Reader<'_>, index: Option<u32>) -> AccessLabels {
    let mut found = AccessLabels::new();
    let mut base = AccessLabels::new();
    for prefix in reader.prefixes.iter() {
        for (label, value) in reader.labels.range(prefix.to_string()..) {
            let Some(rest) = label.strip_prefix(prefix) else { break };
            if reader.prefixes.strip(label).map(|(p, _)| p) != Some(prefix) {
                continue;
            }
            let entry = AccessLabel { label: label.clone(), value: value.clone() };
            match split_index(rest) {
                Some((n, key)) if Some(n) == index => {
                    if let Some(key) = access_key(key) {
                        found.entry(key.to_string()).or_insert(entry);
                    }
                }
                Some(_) => {}
                None => {
                    if let Some(key) = access_key(rest) {
                        base.entry(key.to_string()).or_insert(entry);
                    }
                }
            }
        }
    }
    for (key, label) in base {
        found.entry(key).or_insert(label);
    }
    found
}

/// The label for a route's `key`: indexed routes fall back to the base label.
fn route_label<'a>(reader: &Reader<'a>, index: Option<u32>, key: &str) -> Option<(String, &'a str)> {
    match index {
        Some(n) => reader.get(&format!("{n}.{key}")).or_else(|| reader.get(key)),
        None => reader.get(key),
    }
}

fn origin_options(reader: &mut Reader<'_>, index: Option<u32>, kind: ServiceKind) -> OriginOptions {
    let mut origin = OriginOptions::default();
    // (key, applies to tcp-like services too)
    let keys: &[(&str, bool)] = &[
        ("no_tls_verify", false),
        ("originsrvname", false),
        ("httpHostHeader", false),
        ("http2_origin", false),
        ("disable_chunked_encoding", false),
        ("match_sni_to_host", false),
        ("ca_pool", false),
        ("tls_timeout", false),
        ("connect_timeout", true),
        ("tcp_keep_alive", true),
        ("keep_alive_timeout", true),
        ("keep_alive_connections", true),
        ("no_happy_eyeballs", true),
        ("proxy_type", true),
    ];
    for (key, tcp_too) in keys {
        let Some((label, value)) = route_label(reader, index, key) else { continue };
        let applies = match kind {
            ServiceKind::Http => true,
            ServiceKind::Tcp => *tcp_too,
            ServiceKind::HttpStatus | ServiceKind::Bastion => false,
        };
        if !applies {
            reader.diagnose(&label, value, "ignored: this origin option does not apply to this kind of service");
            continue;
        }
        let result: Result<(), String> = match *key {
            "no_tls_verify" => values::boolean(value).map(|v| origin.no_tls_verify = Some(v)),
            "http2_origin" => values::boolean(value).map(|v| origin.http2_origin = Some(v)),
            "disable_chunked_encoding" => values::boolean(value).map(|v| origin.disable_chunked_encoding = Some(v)),
            "match_sni_to_host" => values::boolean(value).map(|v| origin.match_sni_to_host = Some(v)),
            "no_happy_eyeballs" => values::boolean(value).map(|v| origin.no_happy_eyeballs = Some(v)),
            "originsrvname" => non_empty(value).map(|v| origin.origin_server_name = Some(v)),
            "httpHostHeader" => non_empty(value).map(|v| origin.http_host_header = Some(v)),
            "ca_pool" => non_empty(value).map(|v| origin.ca_pool = Some(v)),
            "connect_timeout" => values::duration(value).map(|v| origin.connect_timeout = Some(v)),
            "tls_timeout" => values::duration(value).map(|v| origin.tls_timeout = Some(v)),
            "tcp_keep_alive" => values::duration(value).map(|v| origin.tcp_keep_alive = Some(v)),
            "keep_alive_timeout" => values::duration(value).map(|v| origin.keep_alive_timeout = Some(v)),
            "keep_alive_connections" => values::count(value).map(|v| origin.keep_alive_connections = Some(v)),
            "proxy_type" => match value.trim() {
                "" | "socks" => {
                    origin.proxy_type = Some(value.trim().to_string());
                    Ok(())
                }
                _ => Err("proxy_type must be empty or \"socks\"".into()),
            },
            _ => Ok(()),
        };
        if let Err(reason) = result {
            reader.diagnose(&label, value, format!("{reason}; option ignored"));
        }
    }
    origin
}

fn non_empty(value: &str) -> Result<String, String> {
    let trimmed = value.trim();
    if trimmed.is_empty() || trimmed.chars().any(char::is_control) {
        Err("must be non-empty printable text".into())
    } else {
        Ok(trimmed.to_string())
    }
}

#[cfg(test)]
mod tests;
