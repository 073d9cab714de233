//! What the connector endpoint tells the local edge about Cloudflare Access: the account's
//! self-hosted Access applications with their policies resolved, the team's auth domain, and a
//! fingerprint of the lot. Real Cloudflare enforces Access at its edge for every hostname an
//! application covers, whatever the tunnel's configuration says; the local edge is that edge
//! offline, so it needs the same view.
//!
//! Every `self_hosted` application of the account is sent, not only those whose domain matches a
//! hostname of the tunnel's ingress: a catch-all or wildcard ingress rule serves hostnames it does
//! not name, Cloudflare's enforcement is per account (not per tunnel), and the list is small. The
//! holder of a tunnel token is the account's connector; the view carries policy rules (emails,
//! service token ids), never a secret.
//!
//! The part added to the connector's answer (`"access"`):
//!
//! ```json
//! {"auth_domain": "<team>.cloudflareaccess.com", "fingerprint": "<16 hex>",
//!  "apps": [{"id", "aud", "name", "domain", "domains": ["host[/path]", …],
//!            "policies": [{"id", "name", "decision", "precedence", "include", "exclude", "require"}]}]}
//! ```
//!
//! An application's `policies` may hold links (`{"id", "precedence"}` or a bare id string) to the
//! account's reusable policies, or whole inline policies (with `decision`/`include`); both are
//! resolved here and sorted by precedence. A link to no known policy is sent as
//! `"decision": "unresolved"`, which the edge evaluates as a refusal (fail closed, never open).
//! `fingerprint` is a hash of the rest: the edge passes it back (`access_fingerprint=`) and a
//! long-poll answers as soon as it differs.

use super::state::Data;
use serde_json::{json, Map, Value};
use std::hash::{Hash, Hasher};

/// The auth domain used when the account has no Zero Trust organization.
pub(super) const DEFAULT_AUTH_DOMAIN: &str = "dockflare-emulator.cloudflareaccess.com";

/// The team's auth domain: `<team>.cloudflareaccess.com` ([`crate::EmulatorConfig::access_team`]),
/// or [`DEFAULT_AUTH_DOMAIN`] when Zero Trust is not set up.
pub(super) fn auth_domain(team: Option<&str>) -> String {
    team.map(|team| format!("{team}.cloudflareaccess.com")).unwrap_or_else(|| DEFAULT_AUTH_DOMAIN.to_string())
}

fn text<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    object.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// Every domain an application covers: `domain`, `self_hosted_domains`, and the `uri` of its
/// public `destinations`, each once, in that order.
fn domains(app: &Map<String, Value>) -> Vec<String> {
    let mut all: Vec<String> = Vec::new();
    let mut add = |domain: &str| {
        let domain = domain.trim();
        if !domain.is_empty() && !all.iter().any(|d| d.eq_ignore_ascii_case(domain)) {
            all.push(domain.to_string());
        }
    };
    if let Some(domain) = text(app, "domain") {
        add(domain);
    }
    for domain in app.get("self_hosted_domains").and_then(Value::as_array).into_iter().flatten() {
        if let Some(domain) = domain.as_str() {
            add(domain);
        }
    }
    for destination in app.get("destinations").and_then(Value::as_array).into_iter().flatten() {
        let public = destination.get("type").and_then(Value::as_str).is_none_or(|t| t == "public");
        if let (true, Some(uri)) = (public, destination.get("uri").and_then(Value::as_str)) {
            add(uri);
        }
    }
    all
}

/// One policy as the edge gets it.
fn edge_policy(policy: &Map<String, Value>, id: Option<&str>, precedence: i64) -> Value {
    let rules = |key: &str| policy.get(key).filter(|v| v.is_array()).cloned().unwrap_or_else(|| json!([]));
    json!({
        "id": id.or_else(|| text(policy, "id")).unwrap_or(""),
        "name": text(policy, "name").unwrap_or(""),
        "decision": text(policy, "decision").unwrap_or("unresolved"),
        "precedence": precedence,
        "include": rules("include"),
        "exclude": rules("exclude"),
        "require": rules("require"),
    })
}

/// An application's policies, links resolved against the reusable ones, by precedence (an entry
/// without one keeps its place: its position, 1-based).
fn resolve_policies(app: &Map<String, Value>, reusable: &[Map<String, Value>]) -> Vec<Value> {
    let find = |id: &str| reusable.iter().find(|p| p.get("id").and_then(Value::as_str) == Some(id));
    let mut resolved: Vec<(i64, usize, Value)> = Vec::new();
    for (index, entry) in app.get("policies").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let position = i64::try_from(index).unwrap_or(i64::MAX).saturating_add(1);
        let policy = match entry {
            Value::String(id) => {
                let precedence = find(id).and_then(|p| p.get("precedence")).and_then(Value::as_i64);
                let precedence = precedence.unwrap_or(position);
                match find(id) {
                    Some(policy) => edge_policy(policy, Some(id), precedence),
                    None => edge_policy(&Map::new(), Some(id), precedence),
                }
            }
            Value::Object(entry) => {
                let inline = entry.contains_key("decision") || entry.contains_key("include");
                let linked = text(entry, "id").and_then(find);
                let precedence = entry
                    .get("precedence")
                    .and_then(Value::as_i64)
                    .or_else(|| linked.and_then(|p| p.get("precedence")).and_then(Value::as_i64))
                    .unwrap_or(position);
                match (inline, linked) {
                    (true, _) => edge_policy(entry, None, precedence),
                    (false, Some(policy)) => edge_policy(policy, text(entry, "id"), precedence),
                    (false, None) => edge_policy(&Map::new(), text(entry, "id"), precedence),
                }
            }
            // Neither a link nor a policy: something the edge cannot evaluate.
            _ => edge_policy(&Map::new(), None, position),
        };
        resolved.push((precedence_of(&policy), index, policy));
    }
    resolved.sort_by_key(|(precedence, index, _)| (*precedence, *index));
    resolved.into_iter().map(|(_, _, policy)| policy).collect()
}

fn precedence_of(policy: &Value) -> i64 {
    policy.get("precedence").and_then(Value::as_i64).unwrap_or(i64::MAX)
}

/// A short, stable hash of `value` (16 hex).
fn fingerprint(value: &Value) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    value.to_string().hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

impl Data {
    /// The `"access"` part of the connector's answer (see the module docs).
    pub(super) fn access_view(&self, auth_domain: &str) -> Value {
        let apps: Vec<Value> = self
            .access_apps
            .iter()
            .filter(|app| text(app, "type") == Some("self_hosted"))
            .map(|app| {
                let domains = domains(app);
                json!({
                    "id": text(app, "id").unwrap_or(""),
                    "aud": text(app, "aud").unwrap_or(""),
                    "name": text(app, "name").or_else(|| domains.first().map(String::as_str)).unwrap_or(""),
                    "domain": text(app, "domain").unwrap_or(""),
                    "domains": domains,
                    "policies": resolve_policies(app, &self.access_policies),
                })
            })
            .collect();
        let mut view = json!({"auth_domain": auth_domain, "apps": apps});
        let print = fingerprint(&view);
        if let Some(object) = view.as_object_mut() {
            object.insert("fingerprint".into(), json!(print));
        }
        view
    }
}

/// The fingerprint of an `"access"` part made by [`Data::access_view`].
pub(super) fn fingerprint_of(view: &Value) -> &str {
    view.get("fingerprint").and_then(Value::as_str).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    fn data() -> Data {
        let mut data = Data::new("acc", &["example.test".to_string()]);
        data.access_policies.push(object(json!({
            "id": "p-allow", "name": "staff", "decision": "allow", "include": [{"email_domain": {"domain": "example.com"}}],
            "exclude": [], "require": [], "reusable": true
        })));
        data.access_policies.push(object(json!({
            "id": "p-deny", "name": "blocked", "decision": "deny", "include": [{"email": {"email": "x@example.com"}}]
        })));
        data
    }

    #[test]
    fn links_and_inline_policies_are_resolved_by_precedence() {
        let mut data = data();
        data.access_apps.push(object(json!({
            "id": "a1", "aud": "aud1", "type": "self_hosted", "name": "App", "domain": "app.example.test/admin",
            "self_hosted_domains": ["app.example.test/admin", "other.example.test"],
            "destinations": [{"type": "public", "uri": "third.example.test"}, {"type": "private", "cidr": "10.0.0.0/8"}],
            "policies": [
                {"id": "p-allow", "precedence": 2},
                {"id": "p-deny", "precedence": 1},
                {"name": "inline", "decision": "bypass", "include": [{"everyone": {}}], "precedence": 3},
                "missing",
                {"id": "gone", "precedence": 0}
            ]
        })));
        data.access_apps.push(object(json!({"id": "a2", "type": "saas", "name": "ignored"})));
        let view = data.access_view(DEFAULT_AUTH_DOMAIN);
        assert_eq!(view["auth_domain"], DEFAULT_AUTH_DOMAIN);
        let apps = view["apps"].as_array().cloned().unwrap_or_default();
        assert_eq!(apps.len(), 1, "only self_hosted applications");
        let app = &apps[0];
        assert_eq!(
            (app["id"].as_str(), app["aud"].as_str(), app["name"].as_str()),
            (Some("a1"), Some("aud1"), Some("App"))
        );
        assert_eq!(app["domains"], json!(["app.example.test/admin", "other.example.test", "third.example.test"]));
        let summary: Vec<(String, String, i64)> = app["policies"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                (
                    p["id"].as_str().unwrap_or("").to_string(),
                    p["decision"].as_str().unwrap_or("").to_string(),
                    p["precedence"].as_i64().unwrap_or(-1),
                )
            })
            .collect();
        let expected: Vec<(String, String, i64)> = [
            ("gone", "unresolved", 0),
            ("p-deny", "deny", 1),
            ("p-allow", "allow", 2),
            ("", "bypass", 3),
            ("missing", "unresolved", 4),
        ]
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), *c))
        .collect();
        assert_eq!(summary, expected);
        assert_eq!(app["policies"][2]["include"], json!([{"email_domain": {"domain": "example.com"}}]));
        assert_eq!(app["policies"][1]["require"], json!([]), "absent rule lists are empty");
    }

    #[test]
    fn the_fingerprint_follows_the_view() {
        let mut data = data();
        let empty = data.access_view(DEFAULT_AUTH_DOMAIN);
        assert_eq!(fingerprint_of(&empty).len(), 16);
        assert_eq!(fingerprint_of(&empty), fingerprint_of(&data.access_view(DEFAULT_AUTH_DOMAIN)), "stable");
        data.access_apps.push(object(json!({
            "id": "a1", "aud": "aud1", "type": "self_hosted", "domain": "app.example.test", "policies": [{"id": "p-allow"}]
        })));
        let one = data.access_view(DEFAULT_AUTH_DOMAIN);
        assert_ne!(fingerprint_of(&empty), fingerprint_of(&one));
        assert_eq!(one["apps"][0]["name"], "app.example.test", "no name: the domain");
        // Changing a linked reusable policy changes the view.
        if let Some(policy) = data.access_policies.first_mut() {
            policy.insert("include".into(), json!([{"everyone": {}}]));
        }
        assert_ne!(fingerprint_of(&one), fingerprint_of(&data.access_view(DEFAULT_AUTH_DOMAIN)));
    }
}
