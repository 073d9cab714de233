//! What an Access policy body must be, as Cloudflare checks it: a `name`, a `decision` among
//! allow/deny/non_identity/bypass, a non-empty `include`, and rules (in `include`, `exclude`,
//! `require`) that are objects with exactly one known selector whose value is an object.
//! Also `session_duration`, a Go duration (`300ms`, `24h`, `2h45m`; units ns, us/µs, ms, s,
//! m, h), on applications and policies alike. Pure: no state.

use super::super::http::ApiError;
use super::INVALID;
use serde_json::{Map, Value};

/// The rule selectors Cloudflare's schema (`access_rule`) names.
pub(super) const SELECTORS: &[&str] = &[
    "email",
    "email_domain",
    "email_list",
    "everyone",
    "group",
    "ip",
    "ip_list",
    "geo",
    "service_token",
    "any_valid_service_token",
    "login_method",
    "auth_method",
    "certificate",
    "common_name",
    "device_posture",
    "external_evaluation",
    "azureAD",
    "github-organization",
    "gsuite",
    "okta",
    "saml",
    "auth_context",
];

/// The decisions a policy may take.
pub(super) const DECISIONS: &[&str] = &["allow", "deny", "non_identity", "bypass"];

fn invalid(message: String) -> ApiError {
    ApiError::bad_request(INVALID, format!("Invalid request: {message}"))
}

/// A non-empty string field, or `None`.
pub(super) fn text<'a>(body: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    body.get(key).and_then(Value::as_str).filter(|s| !s.trim().is_empty())
}

/// 400 unless `key` is present and a non-empty string.
pub(super) fn required<'a>(body: &'a Map<String, Value>, key: &str) -> Result<&'a str, ApiError> {
    text(body, key).ok_or_else(|| invalid(format!("{key} is required")))
}

/// Checks a policy body (reusable or app-scoped) and fills the defaults Cloudflare answers
/// with (`exclude`, `require`: `[]`).
pub(super) fn check_policy(body: &mut Map<String, Value>) -> Result<(), ApiError> {
    required(body, "name")?;
    let decision = required(body, "decision")?;
    if !DECISIONS.contains(&decision) {
        return Err(invalid(format!("unknown decision {decision:?} (allow, deny, non_identity or bypass)")));
    }
    for key in ["include", "exclude", "require"] {
        let rules = match body.get(key) {
            None | Some(Value::Null) if key != "include" => {
                body.insert(key.into(), Value::Array(Vec::new()));
                continue;
            }
            None | Some(Value::Null) => return Err(invalid("include is required".into())),
            Some(Value::Array(rules)) => rules,
            Some(_) => return Err(invalid(format!("{key} must be a list of rules"))),
        };
        if key == "include" && rules.is_empty() {
            return Err(invalid("include needs at least one rule".into()));
        }
        for (index, rule) in rules.iter().enumerate() {
            check_rule(rule).map_err(|why| invalid(format!("{key}[{index}] {rule}: {why}")))?;
        }
    }
    check_session_duration(body)?;
    Ok(())
}

/// Why `rule` is not one rule, if it is not.
fn check_rule(rule: &Value) -> Result<(), String> {
    let Value::Object(map) = rule else { return Err("a rule is an object such as {\"everyone\": {}}".into()) };
    let mut keys = map.keys();
    let (Some(selector), None) = (keys.next(), keys.next()) else {
        return Err(format!("a rule has exactly one selector, this one has {}", map.len()));
    };
    if !SELECTORS.contains(&selector.as_str()) {
        return Err(format!("unknown rule selector {selector:?}"));
    }
    if !map.get(selector).is_some_and(Value::is_object) {
        return Err(format!("the value of {selector:?} must be an object"));
    }
    Ok(())
}

/// 400 unless `session_duration`, when present, is a Go duration.
pub(super) fn check_session_duration(body: &Map<String, Value>) -> Result<(), ApiError> {
    match body.get("session_duration") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(text)) if is_go_duration(text) => Ok(()),
        Some(other) => Err(invalid(format!(
            "session_duration {other} is not a duration such as 24h, 30m or 2h45m (units ns, us, ms, s, m, h)"
        ))),
    }
}

/// Whether `text` parses as Go's `time.ParseDuration` does, without a sign (a session is never
/// negative): `0`, or one or more decimal numbers each followed by a unit.
pub(super) fn is_go_duration(text: &str) -> bool {
    if text == "0" {
        return true;
    }
    let mut rest = text;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(rest.len());
        let number = &rest[..digits];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return false;
        }
        rest = &rest[digits..];
        let unit = ["ns", "us", "µs", "μs", "ms", "s", "m", "h"]
            .iter()
            .filter(|unit| rest.starts_with(**unit))
            .max_by_key(|unit| unit.len());
        match unit {
            Some(unit) => rest = &rest[unit.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_durations() {
        for good in ["24h", "30m", "2h45m", "300ms", "1.5h", "0", "10us", "10µs", "1h0m0s", ".5s"] {
            assert!(is_go_duration(good), "{good}");
        }
        for bad in ["", "24", "h", "1d", "-1h", "24 h", "1..5h", "1hh", "one hour", "5m3"] {
            assert!(!is_go_duration(bad), "{bad}");
        }
    }

    fn policy(value: Value) -> Result<Map<String, Value>, String> {
        let mut map = value.as_object().cloned().unwrap_or_default();
        check_policy(&mut map).map(|()| map).map_err(|e| e.to_string())
    }

    #[test]
    fn policies_are_checked_naming_the_bad_rule() {
        let good =
            policy(json!({"name": "staff", "decision": "allow", "include": [{"email_domain": {"domain": "a.b"}}]}));
        assert_eq!(good.map(|m| (m["exclude"].clone(), m["require"].clone())), Ok((json!([]), json!([]))));
        let error = policy(json!({"name": "n", "decision": "allow", "include": [{"everyone": {}}, {"emial": {}}]}))
            .err()
            .unwrap_or_default();
        assert!(error.contains("include[1]") && error.contains("emial"), "{error}");
        let error = policy(json!({"name": "n", "decision": "allow", "include": [{"everyone": {}, "email": {}}]}))
            .err()
            .unwrap_or_default();
        assert!(error.contains("exactly one selector"), "{error}");
        let error = policy(json!({"name": "n", "decision": "allow", "include": [{"everyone": {}}], "require": ["x"]}))
            .err()
            .unwrap_or_default();
        assert!(error.contains("require[0]"), "{error}");
        assert!(policy(json!({"name": "n", "decision": "maybe", "include": [{"everyone": {}}]})).is_err());
        assert!(policy(json!({"name": "n", "decision": "allow", "include": []})).is_err());
        assert!(policy(json!({"decision": "allow", "include": [{"everyone": {}}]})).is_err());
        assert!(policy(json!({"name": "n", "decision": "allow", "include": [{"everyone": true}]})).is_err());
        let error =
            policy(json!({"name": "n", "decision": "allow", "include": [{"everyone": {}}], "session_duration": "1d"}))
                .err()
                .unwrap_or_default();
        assert!(error.contains("session_duration"), "{error}");
    }
}
