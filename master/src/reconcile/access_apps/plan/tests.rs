//! Planning Access writes: create, update only when something differs, hand-attached policies
//! kept, someone else's application a conflict, leftovers found by tag and name prefix.

use super::*;
use dockflare_cloudflare::types::AccessAppPolicy;
use serde_json::json;

const TAG: &str = "dockflare-install";
const PREFIX: &str = "dockflare-install-";

fn desired_app(domain: &str, policies: Vec<PolicyRef>) -> DesiredApp {
    DesiredApp {
        domain: domain.into(),
        name: format!("DockFlare-{domain}"),
        session_duration: "24h".into(),
        app_launcher_visible: false,
        allowed_idps: vec![],
        auto_redirect_to_identity: false,
        policies,
    }
}

fn policy(name: &str) -> DesiredPolicy {
    DesiredPolicy {
        name: name.into(),
        decision: "bypass".into(),
        include: vec![json!({"everyone": {}})],
        exclude: vec![],
        require: vec![],
        session_duration: None,
    }
}

fn ids() -> HashMap<String, String> {
    [(format!("{PREFIX}bypass"), "p1".to_string())].into_iter().collect()
}

fn observed_app(domain: &str, tags: &[&str], policies: &[(&str, &str)]) -> AccessApp {
    AccessApp {
        id: format!("app-{domain}"),
        domain: domain.into(),
        name: format!("DockFlare-{domain}"),
        app_type: "self_hosted".into(),
        session_duration: Some("24h".into()),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        policies: policies
            .iter()
            .enumerate()
            .map(|(n, (id, name))| AccessAppPolicy {
                id: id.to_string(),
                name: name.to_string(),
                precedence: Some(n as i64 + 1),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

#[test]
fn policies_are_created_then_updated_only_when_they_differ() {
    let want = vec![policy(&format!("{PREFIX}bypass"))];
    assert_eq!(plan_policies(&want, &[]).create.len(), 1);
    let same = AccessPolicy {
        id: "p1".into(),
        name: format!("{PREFIX}bypass"),
        decision: "bypass".into(),
        include: vec![json!({"everyone": {}})],
        session_duration: Some("24h".into()),
        ..Default::default()
    };
    assert_eq!(plan_policies(&want, std::slice::from_ref(&same)), PolicyPlan::default());
    let changed = AccessPolicy { decision: "allow".into(), ..same };
    assert_eq!(plan_policies(&want, &[changed]).update.len(), 1);
}

#[test]
fn an_application_is_created_with_our_tag_and_policies_in_order() {
    let want = desired_app(
        "a.example.com",
        vec![PolicyRef::Owned(format!("{PREFIX}bypass")), PolicyRef::Account("team".into())],
    );
    let plan = plan_apps(&[want], &[], &ids(), TAG, PREFIX);
    let Some(AppWrite::Create(request)) = plan.writes.get("a.example.com") else { panic!("{plan:?}") };
    assert_eq!(request.tags, vec![TAG.to_string()]);
    let links: Vec<(&str, i64)> = request.policies.iter().map(|p| (p.id.as_str(), p.precedence)).collect();
    assert_eq!(links, vec![("p1", 1), ("team", 2)]);
}

#[test]
fn nothing_changed_is_no_write_and_hand_attached_policies_stay() {
    let want = desired_app("a.example.com", vec![PolicyRef::Owned(format!("{PREFIX}bypass"))]);
    let ours = observed_app("a.example.com", &[TAG], &[("p1", "dockflare-install-bypass")]);
    assert!(plan_apps(std::slice::from_ref(&want), &[ours], &ids(), TAG, PREFIX).writes.is_empty());
    let with_hand =
        observed_app("a.example.com", &[TAG, "team"], &[("p1", "dockflare-install-bypass"), ("hand", "Break glass")]);
    assert!(plan_apps(std::slice::from_ref(&want), std::slice::from_ref(&with_hand), &ids(), TAG, PREFIX)
        .writes
        .is_empty());
    // A change of ours keeps the hand-attached policy and the hand-set tag.
    let mut renamed = want.clone();
    renamed.name = "Grafana".into();
    let plan = plan_apps(&[renamed], &[with_hand], &ids(), TAG, PREFIX);
    let Some(AppWrite::Update(id, request)) = plan.writes.get("a.example.com") else { panic!("{plan:?}") };
    assert_eq!(id, "app-a.example.com");
    assert_eq!(request.policies.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), vec!["p1", "hand"]);
    assert!(request.tags.contains(&"team".to_string()));
}

#[test]
fn someone_elses_application_is_a_conflict_and_a_missing_policy_blocks() {
    let want = desired_app("a.example.com", vec![PolicyRef::Owned(format!("{PREFIX}bypass"))]);
    let theirs = observed_app("A.example.com", &["team"], &[]);
    let plan = plan_apps(std::slice::from_ref(&want), &[theirs], &ids(), TAG, PREFIX);
    assert!(plan.writes.is_empty());
    assert!(plan.conflicts.get("a.example.com").is_some_and(|r| r.contains("did not make it")));
    let plan = plan_apps(&[want], &[], &HashMap::new(), TAG, PREFIX);
    assert!(plan.blocked.contains_key("a.example.com") && plan.writes.is_empty());
}

#[test]
fn leftovers_are_ours_only() {
    let apps = vec![
        observed_app("a.example.com", &[TAG], &[("p1", "dockflare-install-bypass")]),
        observed_app("b.example.com", &["team"], &[]),
    ];
    let none = BTreeSet::new();
    let left: Vec<&str> = leftover_apps(&apps, &none, TAG).iter().map(|a| a.domain.as_str()).collect();
    assert_eq!(left, vec!["a.example.com"]);
    let policies = vec![
        AccessPolicy { id: "p1".into(), name: format!("{PREFIX}bypass"), ..Default::default() },
        AccessPolicy { id: "p2".into(), name: format!("{PREFIX}rules-x"), ..Default::default() },
        AccessPolicy { id: "p3".into(), name: "Team".into(), ..Default::default() },
    ];
    let left: Vec<&str> =
        leftover_policies(&policies, &BTreeSet::new(), &apps, PREFIX).iter().map(|p| p.id.as_str()).collect();
    assert_eq!(left, vec!["p2"], "p1 is still linked, p3 is not ours");
}
