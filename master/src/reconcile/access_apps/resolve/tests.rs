//! Resolving Access labels against an account: every label form, every refusal's words.

use super::*;
use dockflare_common::labels::access::AccessLabel;

const PREFIX: &str = "dockflare-abc-";

fn account() -> AccountView {
    AccountView {
        apps: vec![AccessApp { id: "zone-app".into(), domain: "*.example.com".into(), ..Default::default() }],
        policies: vec![
            AccessPolicy { id: "p-team".into(), name: "Team".into(), decision: "allow".into(), ..Default::default() },
            AccessPolicy { id: "p-ours".into(), name: format!("{PREFIX}old"), ..Default::default() },
        ],
        idps: Ok(vec![IdentityProvider { id: "idp-1".into(), name: "GitHub".into(), kind: "github".into() }]),
        members: Ok(vec!["owner@example.com".into()]),
        operator: vec![crate::model::OperatorPolicy {
            name: "ops".into(),
            decision: "allow".into(),
            include: vec![json!({"email_domain": {"domain": "example.com"}})],
            exclude: vec![],
            require: vec![],
            session_duration: Some("12h".into()),
            source: crate::model::PolicySource::Api,
            updated_at: 0,
        }],
        prefix: PREFIX.into(),
    }
}

fn labels(pairs: &[(&str, &str)]) -> AccessLabels {
    pairs
        .iter()
        .map(|(key, value)| {
            (key.to_string(), AccessLabel { label: format!("dockflare.access.{key}"), value: value.to_string() })
        })
        .collect()
}

fn application(pairs: &[(&str, &str)], path: &str) -> (DesiredApp, Vec<DesiredPolicy>) {
    match resolve(&labels(pairs), "a.example.com", path, &account()) {
        Ok(Protection::App { app, policies }) => (app, policies),
        other => panic!("expected an application for {pairs:?}, got {other:?}"),
    }
}

fn refused(pairs: &[(&str, &str)]) -> String {
    match resolve(&labels(pairs), "a.example.com", "", &account()) {
        Err(reason) => reason,
        Ok(protection) => panic!("expected a refusal for {pairs:?}, got {protection:?}"),
    }
}

#[test]
fn keywords_become_our_policies() {
    let (app, policies) = application(&[("policy", "bypass")], "");
    assert_eq!(app.policies, vec![PolicyRef::Owned(format!("{PREFIX}bypass"))]);
    assert_eq!(policies[0].decision, "bypass");
    assert_eq!(policies[0].include, vec![json!({"everyone": {}})]);
    let (_, policies) = application(&[("policy", "authenticate")], "");
    assert_eq!(policies[0].decision, "allow");
    assert_eq!(policies[0].include, vec![json!({"email": {"email": "owner@example.com"}})]);
}

#[test]
fn names_resolve_to_operator_then_account_policies_by_name_then_id() {
    let (app, policies) = application(&[("groups", "ops, Team, p-team")], "");
    assert_eq!(app.policies, vec![PolicyRef::Owned(format!("{PREFIX}ops")), PolicyRef::Account("p-team".into())]);
    assert_eq!(policies.len(), 1);
    assert_eq!(policies[0].session_duration.as_deref(), Some("12h"));
}

#[test]
fn settings_and_defaults_follow_the_labels() {
    let (app, _) = application(&[("policy", "Team")], "/admin");
    assert_eq!(app.domain, "a.example.com/admin");
    assert_eq!(app.name, "DockFlare-a.example.com-admin");
    assert_eq!(app.session_duration, "24h");
    assert!(!app.app_launcher_visible && !app.auto_redirect_to_identity);
    let (app, _) = app_with(&[("policy", "Team"), ("allowed_idps", "github"), ("auto_redirect_to_identity", "true")]);
    assert_eq!(app.allowed_idps, vec!["idp-1".to_string()]);
    assert!(app.auto_redirect_to_identity);
}

fn app_with(pairs: &[(&str, &str)]) -> (DesiredApp, Vec<DesiredPolicy>) {
    application(pairs, "")
}

#[test]
fn the_same_custom_rules_are_one_policy() {
    let rules = r#"[{"decision":"allow","include":[{"email":{"email":"a@example.com"}}]}]"#;
    let (first, a) = application(&[("custom_rules", rules)], "");
    let (second, b) = application(&[("policy", "anything"), ("custom_rules", rules)], "");
    assert_eq!(first.policies, second.policies, "the marker value names no policy and is dropped");
    assert_eq!(a, b);
    assert!(a[0].name.starts_with(&format!("{PREFIX}rules-")));
}

#[test]
fn what_does_not_exist_is_refused_with_the_known_names() {
    let reason = refused(&[("policy", "tem")]);
    assert!(reason.contains("dockflare.access.policy=\"tem\""), "{reason}");
    assert!(reason.contains("did you mean \"Team\"?"), "{reason}");
    assert!(!reason.contains(PREFIX), "our own policies are not suggested: {reason}");
    let reason = refused(&[("policy", "Team"), ("allowed_idps", "okta")]);
    assert!(reason.contains("no identity provider \"okta\"") && reason.contains("GitHub (idp-1)"), "{reason}");
    let reason = refused(&[("custom_rules", "[{")]);
    assert!(reason.contains("dockflare.access.custom_rules") && reason.contains("not valid JSON"), "{reason}");
}

#[test]
fn default_tld_needs_a_zone_application() {
    assert_eq!(
        resolve(&labels(&[("policy", "default_tld")]), "a.example.com", "", &account()),
        Ok(Protection::ZoneDefault { wildcard: "*.example.com".into() })
    );
    let reason = resolve(&labels(&[("policy", "default_tld")]), "a.example.org", "", &account());
    assert!(reason.is_err_and(|r| r.contains("*.example.org")));
}

#[test]
fn authenticate_without_members_is_refused() {
    let mut account = account();
    account.members = Err("the token lacks Account › Account Settings › Read".into());
    let reason = resolve(&labels(&[("policy", "authenticate")]), "a.example.com", "", &account);
    assert!(reason.is_err_and(|r| r.contains("Account Settings")));
}
