//! A tunnel's ingress list, merged: the rules this master owns are written
//! from the routes, every rule it did not write stays where it is, and one
//! catch-all closes the list (the existing one's service is kept, else
//! `http_status:404`). The PUT happens only when the merged list differs.

use crate::model::{RouteRow, RouteSpec, Status};
use dockflare_cloudflare::types::IngressRule;
use std::collections::{BTreeMap, BTreeSet};

/// (hostname, path) of a rule; "" for absent.
pub type RuleKey = (String, String);

pub fn rule_key(rule: &IngressRule) -> RuleKey {
    (rule.hostname.clone().unwrap_or_default(), rule.path.clone().unwrap_or_default())
}

/// A rule that matches every request (no hostname or "*", no path).
pub fn is_catch_all(rule: &IngressRule) -> bool {
    let host = rule.hostname.as_deref().unwrap_or("");
    (host.is_empty() || host == "*") && rule.path.as_deref().unwrap_or("").is_empty()
}

/// The ingress rule of a route.
pub fn rule_for(route: &RouteSpec) -> IngressRule {
    let origin = serde_json::from_str::<serde_json::Value>(&route.origin_json)
        .ok()
        .filter(|v| v.as_object().is_some_and(|o| !o.is_empty()));
    IngressRule {
        hostname: Some(route.hostname.clone()),
        path: (!route.path.is_empty()).then(|| route.path.clone()),
        service: route.service.clone(),
        origin_request: origin,
        ..Default::default()
    }
}

/// Deterministic order for our rules: exact hostnames before wildcards,
/// hostname A→Z, longer paths first.
pub fn sort_rules(rules: &mut [IngressRule]) {
    rules.sort_by(|a, b| {
        let (ah, ap) = rule_key(a);
        let (bh, bp) = rule_key(b);
        (ah.starts_with("*."), ah.clone(), std::cmp::Reverse(ap.len()), ap).cmp(&(
            bh.starts_with("*."),
            bh.clone(),
            std::cmp::Reverse(bp.len()),
            bp,
        ))
    });
}

/// Whether `broad` would catch requests meant for `key` if it came first.
fn shadows(broad: &IngressRule, key: &RuleKey) -> bool {
    let (host, path) = rule_key(broad);
    let host_covers =
        host == key.0 || (host.starts_with("*.") && key.0.ends_with(&host[1..])) || host.is_empty() || host == "*";
    host_covers && (path.is_empty() || (path != key.1 && key.1.starts_with(&path)))
}

/// The merge result.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    pub rules: Vec<IngressRule>,
    /// Keys of ours that were not placed: a rule this master did not write
    /// already has that hostname and path.
    pub conflicts: BTreeSet<RuleKey>,
}

/// Merges `desired` (our rules, sorted) into `current`; `owned` are the keys
/// this master wrote last time.
pub fn merge(current: &[IngressRule], owned: &BTreeSet<RuleKey>, desired: &[IngressRule]) -> Merged {
    let catch_all = current
        .iter()
        .rev()
        .find(|rule| is_catch_all(rule))
        .cloned()
        .unwrap_or_else(|| IngressRule { service: "http_status:404".into(), ..Default::default() });
    let wanted: BTreeMap<RuleKey, &IngressRule> = desired.iter().map(|rule| (rule_key(rule), rule)).collect();
    let mut rules = Vec::new();
    let mut placed = BTreeSet::new();
    let mut conflicts = BTreeSet::new();
    for rule in current.iter().filter(|rule| !is_catch_all(rule)) {
        let key = rule_key(rule);
        if owned.contains(&key) {
            if let Some(ours) = wanted.get(&key) {
                rules.push((*ours).clone());
                placed.insert(key);
            }
        } else {
            rules.push(rule.clone());
            if wanted.contains_key(&key) {
                conflicts.insert(key);
            }
        }
    }
    for rule in desired {
        let key = rule_key(rule);
        if placed.contains(&key) || conflicts.contains(&key) {
            continue;
        }
        let position = rules.iter().position(|existing| shadows(existing, &key)).unwrap_or(rules.len());
        rules.insert(position, rule.clone());
        placed.insert(key);
    }
    rules.push(catch_all);
    Merged { rules, conflicts }
}

/// The rules a tunnel should hold for the routed rows on it (`key`), in order. Pure.
///
/// A protected path route that is not published (its Access protection is not in place) while
/// its hostname is routed here gets a rule answering 503, so that its requests do not fall
/// through to the hostname's public rule: it never goes public by accident.
pub fn desired_for(rows: &[RouteRow], key: &str) -> Vec<IngressRule> {
    let routed: Vec<&RouteRow> = rows.iter().filter(|r| r.status.is_routed() && r.spec.tunnel_key == key).collect();
    let hostnames: BTreeSet<&str> = routed.iter().map(|r| r.spec.hostname.as_str()).collect();
    let mut desired: Vec<IngressRule> = routed.iter().map(|r| rule_for(&r.spec)).collect();
    let mut blocked = BTreeSet::new();
    for row in rows {
        let unprotected = !row.status.is_routed() && !row.spec.access_json.is_empty() && !row.spec.path.is_empty();
        if unprotected
            && hostnames.contains(row.spec.hostname.as_str())
            && !routed.iter().any(|r| r.key() == row.key())
            && blocked.insert(row.key())
        {
            desired.push(IngressRule {
                hostname: Some(row.spec.hostname.clone()),
                path: Some(row.spec.path.clone()),
                service: WITHHELD_SERVICE.into(),
                ..Default::default()
            });
        }
    }
    sort_rules(&mut desired);
    desired
}

/// What a withheld protected path answers ([`desired_for`]).
pub const WITHHELD_SERVICE: &str = "http_status:503";

/// The routed rows on tunnel `key` whose rule a foreign rule holds become conflicts. Pure.
pub fn mark_conflicts(rows: &mut [RouteRow], key: &str, tunnel_name: &str, conflicts: &BTreeSet<RuleKey>) {
    for row in rows.iter_mut().filter(|r| r.spec.tunnel_key == key && r.status.is_routed()) {
        if conflicts.contains(&(row.spec.hostname.clone(), row.spec.path.clone())) {
            row.status = Status::Conflict;
            row.reason = format!(
                "tunnel {tunnel_name} already has a rule for {}{} that this DockFlare did not write",
                row.spec.hostname, row.spec.path
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_withheld_protected_path_answers_503_instead_of_falling_through_to_the_public_rule() {
        let public = crate::model::route::test_row("a.example.com", "web");
        let mut admin = crate::model::route::test_row("a.example.com", "admin");
        admin.spec.path = "/admin".into();
        admin.spec.access_json = r#"{"policy":{"label":"dockflare.access.policy","value":"nope"}}"#.into();
        admin.status = Status::Invalid;
        let desired = desired_for(&[public.clone(), admin.clone()], "agent:a1");
        let services: Vec<(Option<&str>, &str)> =
            desired.iter().map(|r| (r.path.as_deref(), r.service.as_str())).collect();
        assert_eq!(services, vec![(Some("/admin"), WITHHELD_SERVICE), (None, "http://web:80")]);
        // Nothing routed on the hostname: nothing to fall through to, no rule.
        assert!(desired_for(&[admin], "agent:a1").is_empty());
    }

    fn rule(host: &str, path: &str, service: &str) -> IngressRule {
        IngressRule {
            hostname: (!host.is_empty()).then(|| host.to_string()),
            path: (!path.is_empty()).then(|| path.to_string()),
            service: service.into(),
            ..Default::default()
        }
    }

    fn keys(rules: &[IngressRule]) -> Vec<String> {
        rules
            .iter()
            .map(|r| {
                format!(
                    "{}{}={}",
                    r.hostname.clone().unwrap_or_default(),
                    r.path.clone().unwrap_or_default(),
                    r.service
                )
            })
            .collect()
    }

    fn owned(keys: &[(&str, &str)]) -> BTreeSet<RuleKey> {
        keys.iter().map(|(h, p)| (h.to_string(), p.to_string())).collect()
    }

    #[test]
    fn foreign_rules_stay_in_place_and_ours_are_replaced_in_place() {
        let current = vec![
            rule("manual.example.com", "", "http://hand:1"),
            rule("app.example.com", "", "http://old:80"),
            rule("*.example.com", "", "http://wild:1"),
            rule("", "", "http_status:418"),
        ];
        let desired = vec![rule("app.example.com", "", "http://new:80"), rule("new.example.com", "", "http://n:80")];
        let merged = merge(&current, &owned(&[("app.example.com", "")]), &desired);
        assert_eq!(
            keys(&merged.rules),
            vec![
                "manual.example.com=http://hand:1",
                "app.example.com=http://new:80",
                "new.example.com=http://n:80",
                "*.example.com=http://wild:1",
                "=http_status:418",
            ]
        );
        assert!(merged.conflicts.is_empty());
    }

    #[test]
    fn removed_routes_disappear_and_an_empty_config_gets_a_404_catch_all() {
        let current = vec![rule("gone.example.com", "", "http://g:1"), rule("", "", "http_status:404")];
        let merged = merge(&current, &owned(&[("gone.example.com", "")]), &[]);
        assert_eq!(keys(&merged.rules), vec!["=http_status:404"]);
        let fresh = merge(&[], &BTreeSet::new(), &[rule("a.example.com", "/api", "http://a:1")]);
        assert_eq!(keys(&fresh.rules), vec!["a.example.com/api=http://a:1", "=http_status:404"]);
    }

    #[test]
    fn a_foreign_rule_with_our_key_is_a_conflict_and_wins() {
        let current = vec![rule("app.example.com", "", "http://theirs:1")];
        let merged = merge(&current, &BTreeSet::new(), &[rule("app.example.com", "", "http://ours:1")]);
        assert_eq!(keys(&merged.rules), vec!["app.example.com=http://theirs:1", "=http_status:404"]);
        assert_eq!(merged.conflicts, owned(&[("app.example.com", "")]));
    }

    #[test]
    fn specific_paths_go_before_the_rules_that_would_shadow_them() {
        let current = vec![rule("app.example.com", "", "http://app:1")];
        let merged = merge(&current, &BTreeSet::new(), &[rule("app.example.com", "/api", "http://api:1")]);
        assert_eq!(
            keys(&merged.rules),
            vec!["app.example.com/api=http://api:1", "app.example.com=http://app:1", "=http_status:404"]
        );
    }

    #[test]
    fn our_rules_sort_deterministically() {
        let mut rules = vec![
            rule("*.example.com", "", "s"),
            rule("b.example.com", "", "s"),
            rule("a.example.com", "/x", "s"),
            rule("a.example.com", "/xyz", "s"),
        ];
        sort_rules(&mut rules);
        assert_eq!(
            keys(&rules),
            vec!["a.example.com/xyz=s", "a.example.com/x=s", "b.example.com=s", "*.example.com=s"]
        );
    }
}
