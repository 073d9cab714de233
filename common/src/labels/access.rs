//! DockFlare's Cloudflare Access labels (`access.policy`, `access.group(s)`, `access.name`,
//! `access.session_duration`, `access.app_launcher_visible`, `access.allowed_idps`,
//! `access.auto_redirect_to_identity`, `access.custom_rules`) → what a route asks of Access,
//! checked for everything that can be checked without the Cloudflare account. Pure.
//!
//! What the labels mean is DockFlare's (shared/reference/dockflare-python.md §1.4), with its
//! lock-outs removed:
//! - `policy`: `bypass` (public behind an application that lets everyone through), `authenticate`
//!   (the account's members), `default_tld` (no application of its own: a `*.zone` one must cover
//!   it), or the name or id of a policy (an operator-defined one, or a reusable one in the account).
//! - `groups` (comma list) or `group`: more policies by name or id; `groups` wins over `group`.
//! - `custom_rules`: a JSON array whose items are policy references (a name or id string, or
//!   `{"id": …}`) or policy objects (`{"decision", "include", "exclude"?, "require"?}`).
//! - Per-route settings are never overridden by a group's (DockFlare #295): labels win, else
//!   Cloudflare's defaults (`24h`, not visible, no auto-redirect).
//!
//! A route whose Access labels are wrong is never published unprotected: every mistake is a
//! [`Diagnostic`] and [`interpret`] refuses the request, so the master withholds the route.

use super::{values, Diagnostic};
use std::collections::BTreeMap;

/// The Access label keys (after `access.`).
pub const ACCESS_KEYS: &[&str] = &[
    "policy",
    "group",
    "groups",
    "name",
    "session_duration",
    "app_launcher_visible",
    "allowed_idps",
    "auto_redirect_to_identity",
    "custom_rules",
];

/// The `access.policy` values that are not policy names.
pub const POLICY_KEYWORDS: &[&str] = &["bypass", "authenticate", "default_tld"];

/// One Access label that applies to a route: its full name (for diagnostics) and value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AccessLabel {
    pub label: String,
    pub value: String,
}

/// The Access labels of a route, by key (`policy`, `custom_rules`, … or an unknown key as written).
pub type AccessLabels = BTreeMap<String, AccessLabel>;

/// A policy a route refers to, with the label that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyChoice {
    /// `access.policy=bypass`: everyone passes.
    Bypass,
    /// `access.policy=authenticate`: the account's members.
    Authenticate,
    /// A policy by name or id, resolved against the operator's and the account's policies.
    /// `required` is false for DockFlare's `access.policy=<anything>` beside `custom_rules` (the
    /// rules protect the route): a value that names no policy is then only DockFlare's marker.
    Named { label: String, name: String, required: bool },
    /// A policy written out in `custom_rules` (decision, include, exclude, require as JSON).
    Inline { label: String, policy: InlinePolicy },
}

/// A policy object from `custom_rules`: the rule arrays as JSON text (canonical, compact).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlinePolicy {
    pub decision: String,
    pub include: String,
    pub exclude: String,
    pub require: String,
    pub session_duration: Option<String>,
}

/// What a route asks of Cloudflare Access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessRequest {
    /// `default_tld`: no application of its own; one for `*.zone` must exist.
    ZoneDefault { label: String },
    /// An application of its own with these policies, in precedence order.
    Application(ApplicationRequest),
}

/// The application a route asks for (see [`AccessRequest::Application`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationRequest {
    pub policies: Vec<PolicyChoice>,
    pub name: Option<String>,
    pub session_duration: Option<String>,
    pub app_launcher_visible: Option<bool>,
    /// IdP ids or names, with the label (resolved against the account).
    pub allowed_idps: Vec<String>,
    pub allowed_idps_label: String,
    pub auto_redirect_to_identity: Option<bool>,
}

/// The decisions a policy may have.
pub const DECISIONS: &[&str] = &["allow", "deny", "non_identity", "bypass"];

/// Reads a route's Access labels; every mistake is a diagnostic naming the label.
pub fn interpret(labels: &AccessLabels) -> Result<AccessRequest, Vec<Diagnostic>> {
    let mut problems = Vec::new();
    for (key, label) in labels {
        if !ACCESS_KEYS.contains(&key.as_str()) {
            say(&mut problems, label, unknown_key(key));
        }
    }
    let get = |key: &str| labels.get(key);
    let mut policies = Vec::new();
    let mut zone_default = None;
    if let Some(label) = get("policy") {
        match label.value.trim() {
            "" => say(
                &mut problems,
                label,
                "empty: name a policy, or remove every access.* label to make the route public".into(),
            ),
            "bypass" => policies.push(PolicyChoice::Bypass),
            "authenticate" => policies.push(PolicyChoice::Authenticate),
            "default_tld" => zone_default = Some(label.label.clone()),
            name => policies.push(PolicyChoice::Named {
                label: label.label.clone(),
                name: name.to_string(),
                required: !labels.contains_key("custom_rules"),
            }),
        }
    }
    // `groups` wins over `group` ([`shadowed_group`] says so).
    let groups = get("groups").or(get("group"));
    if let Some(label) = groups {
        let names = comma_list(&label.value);
        if names.is_empty() {
            say(&mut problems, label, "empty: name one or more policies, separated by commas".into());
        }
        for name in names {
            policies.push(PolicyChoice::Named { label: label.label.clone(), name, required: true });
        }
    }
    if let Some(label) = get("custom_rules") {
        match custom_rules(label) {
            Ok(rules) => policies.extend(rules),
            Err(reason) => say(&mut problems, label, reason),
        }
    }
    let name = get("name").and_then(|label| match non_empty_text(&label.value) {
        Ok(name) => Some(name),
        Err(reason) => {
            say(&mut problems, label, reason);
            None
        }
    });
    let session_duration = get("session_duration").and_then(|label| match session_duration(&label.value) {
        Ok(duration) => Some(duration),
        Err(reason) => {
            say(&mut problems, label, reason);
            None
        }
    });
    let app_launcher_visible = flag(get("app_launcher_visible"), &mut problems);
    let auto_redirect_to_identity = flag(get("auto_redirect_to_identity"), &mut problems);
    let (allowed_idps, allowed_idps_label) = match get("allowed_idps") {
        Some(label) => {
            let idps = comma_list(&label.value);
            if idps.is_empty() {
                say(&mut problems, label, "empty: list identity provider ids or names, separated by commas".into());
            }
            (idps, label.label.clone())
        }
        None => (Vec::new(), String::new()),
    };
    if let Some(policy_label) = zone_default {
        let extra: Vec<&AccessLabel> =
            labels.iter().filter(|(key, _)| key.as_str() != "policy").map(|(_, l)| l).collect();
        for label in extra {
            say(
                &mut problems,
                label,
                format!("conflicts with {policy_label}=default_tld, which creates no application of its own"),
            );
        }
        if problems.is_empty() {
            return Ok(AccessRequest::ZoneDefault { label: policy_label });
        }
        return Err(problems);
    }
    if policies.is_empty() && problems.is_empty() {
        // Settings alone (a name, a session duration …) protect nothing: fail closed.
        if let Some(label) = labels.values().next() {
            say(
                &mut problems,
                label,
                "no policy: set access.policy, access.group(s) or access.custom_rules (or remove every \
                 access.* label to make the route public); the route is not published meanwhile"
                    .into(),
            );
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(AccessRequest::Application(ApplicationRequest {
        policies,
        name,
        session_duration,
        app_launcher_visible,
        allowed_idps,
        allowed_idps_label,
        auto_redirect_to_identity,
    }))
}

/// The note for a `group` label that `groups` shadows (the route is still protected, by `groups`).
pub fn shadowed_group(labels: &AccessLabels) -> Option<Diagnostic> {
    let (groups, group) = (labels.get("groups")?, labels.get("group")?);
    Some(Diagnostic {
        label: group.label.clone(),
        value: group.value.clone(),
        reason: format!("ignored: {} takes precedence", groups.label),
    })
}

fn say(problems: &mut Vec<Diagnostic>, label: &AccessLabel, reason: String) {
    problems.push(Diagnostic { label: label.label.clone(), value: label.value.clone(), reason });
}

fn flag(label: Option<&AccessLabel>, problems: &mut Vec<Diagnostic>) -> Option<bool> {
    let label = label?;
    match values::boolean(&label.value) {
        Ok(value) => Some(value),
        Err(reason) => {
            say(problems, label, reason);
            None
        }
    }
}

fn unknown_key(key: &str) -> String {
    let lower = key.to_ascii_lowercase();
    let closest = ACCESS_KEYS
        .iter()
        .map(|candidate| (strsim::levenshtein(&lower, candidate), *candidate))
        .filter(|(distance, _)| *distance <= 3)
        .min_by_key(|(distance, _)| *distance);
    let known = ACCESS_KEYS.join(", ");
    match closest {
        Some((_, candidate)) => format!(
            "unknown Access key {key:?} (did you mean \"access.{candidate}\"?); the route is not published until \
             its Access labels are right"
        ),
        None => format!(
            "unknown Access key {key:?} (known: {known}); the route is not published until its Access labels are right"
        ),
    }
}

fn comma_list(value: &str) -> Vec<String> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

fn non_empty_text(value: &str) -> Result<String, String> {
    let trimmed = value.trim();
    if trimmed.is_empty() || trimmed.chars().any(char::is_control) || trimmed.len() > 350 {
        Err("must be non-empty printable text of at most 350 characters".into())
    } else {
        Ok(trimmed.to_string())
    }
}

/// An Access session duration: a positive Go duration (`30m`, `24h`, `2h45m`), as Cloudflare takes it.
pub fn session_duration(value: &str) -> Result<String, String> {
    let text = value.trim();
    match values::go_duration_nanos(text) {
        Some(nanos) if nanos > 0 => Ok(text.to_string()),
        Some(_) => Err(format!("{text:?} is not a positive duration")),
        None => Err(format!("not a duration: {text:?} (use a Go duration like 30m, 24h or 2h45m)")),
    }
}

/// The policies of `custom_rules`: a JSON array of references and policy objects.
fn custom_rules(label: &AccessLabel) -> Result<Vec<PolicyChoice>, String> {
    let parsed: serde_json::Value =
        serde_json::from_str(label.value.trim()).map_err(|e| format!("not valid JSON: {e}"))?;
    let items = match parsed {
        serde_json::Value::Array(items) => items,
        serde_json::Value::Object(_) => vec![parsed],
        _ => return Err("must be a JSON array of policies (objects) or policy ids/names (strings)".into()),
    };
    if items.is_empty() {
        return Err("an empty array protects nothing: add a policy or remove the label".into());
    }
    let mut choices = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        let at = format!("[{index}]");
        match item {
            serde_json::Value::String(name) if !name.trim().is_empty() => choices.push(PolicyChoice::Named {
                label: label.label.clone(),
                name: name.trim().to_string(),
                required: true,
            }),
            serde_json::Value::Object(object) => {
                let decision = object.get("decision");
                match (object.get("id").and_then(|v| v.as_str()), decision) {
                    (Some(id), None) if !id.trim().is_empty() => choices.push(PolicyChoice::Named {
                        label: label.label.clone(),
                        name: id.trim().to_string(),
                        required: true,
                    }),
                    _ => choices.push(PolicyChoice::Inline {
                        label: label.label.clone(),
                        policy: inline_policy(&at, &object)?,
                    }),
                }
            }
            _ => return Err(format!("{at}: must be a policy object or a policy id/name string")),
        }
    }
    Ok(choices)
}

/// A policy object of `custom_rules`, checked like Cloudflare checks one.
fn inline_policy(at: &str, object: &serde_json::Map<String, serde_json::Value>) -> Result<InlinePolicy, String> {
    const KNOWN: &[&str] = &["decision", "include", "exclude", "require", "name", "session_duration", "precedence"];
    if let Some(key) = object.keys().find(|key| !KNOWN.contains(&key.as_str())) {
        return Err(format!("{at}: unknown key {key:?} (a policy has decision, include, exclude, require)"));
    }
    let decision = object.get("decision").and_then(|v| v.as_str()).unwrap_or_default();
    if !DECISIONS.contains(&decision) {
        return Err(format!("{at}.decision: must be one of {}", DECISIONS.join(", ")));
    }
    let rules = |key: &str, required: bool| -> Result<String, String> {
        match object.get(key) {
            None if !required => Ok("[]".into()),
            None => Err(format!("{at}.{key}: required (a non-empty array of rules)")),
            Some(serde_json::Value::Array(rules)) => {
                if required && rules.is_empty() {
                    return Err(format!("{at}.{key}: must not be empty"));
                }
                for (n, rule) in rules.iter().enumerate() {
                    check_rule(rule).map_err(|reason| format!("{at}.{key}[{n}]: {reason}"))?;
                }
                Ok(serde_json::Value::Array(rules.clone()).to_string())
            }
            Some(_) => Err(format!("{at}.{key}: must be an array of rules")),
        }
    };
    let session = match object.get("session_duration") {
        None => None,
        Some(serde_json::Value::String(text)) => {
            Some(session_duration(text).map_err(|reason| format!("{at}.session_duration: {reason}"))?)
        }
        Some(_) => return Err(format!("{at}.session_duration: must be a string like \"24h\"")),
    };
    Ok(InlinePolicy {
        decision: decision.to_string(),
        include: rules("include", true)?,
        exclude: rules("exclude", false)?,
        require: rules("require", false)?,
        session_duration: session,
    })
}

/// The Access rule types and the field each needs inside (`None`: an empty object).
pub const RULE_TYPES: &[(&str, Option<&str>)] = &[
    ("everyone", None),
    ("email", Some("email")),
    ("email_domain", Some("domain")),
    ("email_list", Some("id")),
    ("ip", Some("ip")),
    ("ip_list", Some("id")),
    ("geo", Some("country_code")),
    ("group", Some("id")),
    ("service_token", Some("token_id")),
    ("any_valid_service_token", None),
    ("login_method", Some("id")),
    ("auth_method", Some("auth_method")),
    ("certificate", None),
    ("common_name", Some("common_name")),
    ("device_posture", Some("integration_uid")),
];

/// One Access rule: an object with exactly one known rule type and the field it needs.
pub fn check_rule(rule: &serde_json::Value) -> Result<(), String> {
    let object = rule.as_object().ok_or("a rule must be an object like {\"email\": {\"email\": \"a@example.com\"}}")?;
    if object.len() != 1 {
        return Err(format!("a rule has exactly one type, found {}", object.len()));
    }
    let Some((kind, body)) = object.iter().next() else { return Err("empty rule".into()) };
    let Some((_, field)) = RULE_TYPES.iter().find(|(known, _)| known == kind) else {
        let names: Vec<&str> = RULE_TYPES.iter().map(|(name, _)| *name).collect();
        return Err(format!("unknown rule type {kind:?} (known: {})", names.join(", ")));
    };
    let body = body.as_object().ok_or_else(|| format!("{kind}: must be an object"))?;
    if let Some(field) = field {
        let value = body.get(*field).and_then(|v| v.as_str()).map(str::trim).unwrap_or_default();
        if value.is_empty() {
            return Err(format!("{kind}.{field}: required"));
        }
        if *kind == "email" && !looks_like_email(value) {
            return Err(format!("{kind}.{field}: {value:?} is not an email address"));
        }
    }
    Ok(())
}

fn looks_like_email(value: &str) -> bool {
    match value.split_once('@') {
        Some((local, domain)) => !local.is_empty() && domain.contains('.') && !value.contains(char::is_whitespace),
        None => false,
    }
}

/// The Access application's `domain` for a route: `hostname` or `hostname/path`. A path that is a
/// regular expression cannot be covered by an application: the reason.
pub fn application_domain(hostname: &str, path: &str) -> Result<String, String> {
    if path.is_empty() {
        return Ok(hostname.to_string());
    }
    let plain = path.strip_prefix('/').unwrap_or(path);
    if path.starts_with('^') || plain.chars().any(|c| "^$*+?()[]{}|\\".contains(c)) {
        return Err(format!(
            "the path {path:?} is a regular expression, and a Cloudflare Access application covers a \
             hostname and a plain path prefix: use a plain path like /admin"
        ));
    }
    Ok(format!("{hostname}/{plain}"))
}

#[cfg(test)]
mod tests;
