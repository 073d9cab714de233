//! Table tests of the Access labels: every form DockFlare users write, every mistake's diagnostic.

use super::*;

fn labels(pairs: &[(&str, &str)]) -> AccessLabels {
    pairs
        .iter()
        .map(|(key, value)| {
            (key.to_string(), AccessLabel { label: format!("dockflare.access.{key}"), value: value.to_string() })
        })
        .collect()
}

fn application(pairs: &[(&str, &str)]) -> ApplicationRequest {
    match interpret(&labels(pairs)) {
        Ok(AccessRequest::Application(app)) => app,
        other => panic!("expected an application for {pairs:?}, got {other:?}"),
    }
}

fn refusal(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    match interpret(&labels(pairs)) {
        Err(problems) => problems.into_iter().map(|d| (d.label, d.reason)).collect(),
        Ok(request) => panic!("expected a refusal for {pairs:?}, got {request:?}"),
    }
}

#[test]
fn keywords_names_groups_and_rules_become_policies_in_order() {
    assert_eq!(application(&[("policy", "bypass")]).policies, vec![PolicyChoice::Bypass]);
    assert_eq!(application(&[("policy", "authenticate")]).policies, vec![PolicyChoice::Authenticate]);
    let named = |name: &str, key: &str, required: bool| PolicyChoice::Named {
        label: format!("dockflare.access.{key}"),
        name: name.into(),
        required,
    };
    assert_eq!(application(&[("policy", "team")]).policies, vec![named("team", "policy", true)]);
}

#[test]
fn groups_wins_over_group_and_says_so() {
    let both = labels(&[("groups", "ops, dev,,"), ("group", "x")]);
    let note = shadowed_group(&both).map(|d| (d.label, d.reason));
    assert_eq!(
        note,
        Some(("dockflare.access.group".to_string(), "ignored: dockflare.access.groups takes precedence".to_string()))
    );
    let app = application(&[("groups", "ops, dev,,"), ("group", "x")]);
    assert_eq!(app.policies.len(), 2);
}

#[test]
fn custom_rules_take_references_and_policy_objects() {
    let app = application(&[(
        "custom_rules",
        r#"[{"decision":"allow","include":[{"email":{"email":"a@example.com"}}]}, "team", {"id":"0f1e"}]"#,
    )]);
    assert_eq!(app.policies.len(), 3);
    match &app.policies[0] {
        PolicyChoice::Inline { policy, .. } => {
            assert_eq!(policy.decision, "allow");
            assert_eq!(policy.include, r#"[{"email":{"email":"a@example.com"}}]"#);
            assert_eq!(policy.exclude, "[]");
        }
        other => panic!("expected an inline policy, got {other:?}"),
    }
    // DockFlare's `policy=<anything>` beside custom_rules is a marker, not a required name.
    let app = application(&[
        ("policy", "custom"),
        ("custom_rules", r#"[{"decision":"bypass","include":[{"everyone":{}}]}]"#),
    ]);
    assert!(matches!(&app.policies[0], PolicyChoice::Named { required: false, .. }));
}

#[test]
fn settings_are_the_labels_not_a_groups() {
    let app = application(&[
        ("groups", "ops"),
        ("session_duration", "2h45m"),
        ("app_launcher_visible", "true"),
        ("auto_redirect_to_identity", "yes"),
        ("allowed_idps", "github, 5a0b"),
        ("name", "Grafana"),
    ]);
    assert_eq!(app.session_duration.as_deref(), Some("2h45m"));
    assert_eq!(app.app_launcher_visible, Some(true));
    assert_eq!(app.auto_redirect_to_identity, Some(true));
    assert_eq!(app.allowed_idps, vec!["github".to_string(), "5a0b".to_string()]);
    assert_eq!(app.name.as_deref(), Some("Grafana"));
}

#[test]
fn every_mistake_names_its_label() {
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: &[Case] = &[
        (&[("policy", "team"), ("session_duration", "a day")], "session_duration", "not a duration"),
        (&[("policy", "team"), ("app_launcher_visible", "maybe")], "app_launcher_visible", "not a boolean"),
        (&[("custom_rules", "[{\"decision\":\"allow\"")], "custom_rules", "not valid JSON"),
        (
            &[("custom_rules", "[{\"decision\":\"permit\",\"include\":[{\"everyone\":{}}]}]")],
            "custom_rules",
            "[0].decision",
        ),
        (
            &[("custom_rules", "[{\"decision\":\"allow\",\"include\":[]}]")],
            "custom_rules",
            "[0].include: must not be empty",
        ),
        (
            &[("custom_rules", "[{\"decision\":\"allow\",\"include\":[{\"emial\":{}}]}]")],
            "custom_rules",
            "unknown rule type \"emial\"",
        ),
        (
            &[("custom_rules", "[{\"decision\":\"allow\",\"include\":[{\"email\":{\"email\":\"bob\"}}]}]")],
            "custom_rules",
            "not an email address",
        ),
        (&[("custom_rules", "[]")], "custom_rules", "protects nothing"),
        (&[("policy", "")], "policy", "empty"),
        (&[("polcy", "bypass")], "polcy", "did you mean \"access.policy\""),
        (&[("name", "Grafana")], "name", "no policy"),
        (&[("policy", "default_tld"), ("groups", "ops")], "groups", "default_tld"),
    ];
    for (pairs, key, reason) in cases {
        let problems = refusal(pairs);
        assert!(
            problems.iter().any(|(label, text)| label == &format!("dockflare.access.{key}") && text.contains(reason)),
            "{pairs:?}: expected {key} / {reason:?}, got {problems:?}"
        );
    }
}

#[test]
fn default_tld_asks_for_no_application() {
    assert_eq!(
        interpret(&labels(&[("policy", "default_tld")])),
        Ok(AccessRequest::ZoneDefault { label: "dockflare.access.policy".into() })
    );
}

#[test]
fn path_routes_are_covered_as_hostname_slash_path() {
    assert_eq!(application_domain("a.example.com", ""), Ok("a.example.com".into()));
    assert_eq!(application_domain("a.example.com", "/admin"), Ok("a.example.com/admin".into()));
    assert!(application_domain("a.example.com", "^/api/.*").is_err());
}

#[test]
fn session_durations_are_go_durations() {
    assert_eq!(session_duration("30m"), Ok("30m".into()));
    assert!(session_duration("0s").is_err());
    assert!(session_duration("1d").is_err());
}
