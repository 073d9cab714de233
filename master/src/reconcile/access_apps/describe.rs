//! How the Access step's writes read in a dry run's plan, and what a dry run pretends it wrote.

use super::resolve;
use dockflare_cloudflare::types::{AccessApp, AccessAppPolicy, AccessAppRequest};

/// What a policy is, for a plan.
pub(super) fn policy_detail(policy: &resolve::DesiredPolicy) -> String {
    let rules = |rules: &[serde_json::Value]| serde_json::Value::Array(rules.to_vec()).to_string();
    let mut detail = format!("{} include {}", policy.decision, rules(&policy.include));
    if !policy.exclude.is_empty() {
        detail.push_str(&format!(" exclude {}", rules(&policy.exclude)));
    }
    if !policy.require.is_empty() {
        detail.push_str(&format!(" require {}", rules(&policy.require)));
    }
    detail
}

/// What an application is, for a plan.
pub(super) fn app_detail(request: &AccessAppRequest) -> String {
    let policies: Vec<&str> = request.policies.iter().map(|p| p.id.as_str()).collect();
    format!(
        "{:?}, session {}, policies [{}]",
        request.name,
        request.session_duration.as_deref().unwrap_or("24h"),
        policies.join(", ")
    )
}

/// The application a dry run pretends to have written.
pub(super) fn planned_app(id: &str, request: &AccessAppRequest) -> AccessApp {
    AccessApp {
        id: id.to_string(),
        domain: request.domain.clone(),
        name: request.name.clone(),
        app_type: request.app_type.clone(),
        session_duration: request.session_duration.clone(),
        app_launcher_visible: request.app_launcher_visible,
        allowed_idps: request.allowed_idps.clone(),
        auto_redirect_to_identity: request.auto_redirect_to_identity,
        tags: request.tags.clone(),
        policies: request
            .policies
            .iter()
            .map(|link| AccessAppPolicy {
                id: link.id.clone(),
                precedence: Some(link.precedence),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}
