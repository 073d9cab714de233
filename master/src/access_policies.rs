//! Operator-defined Access policies, checked: the name, the decision, every rule object of
//! `include`, `exclude` and `require` (Cloudflare's shapes, one key each, with the inner field
//! each needs), and the session duration (Go's duration syntax). Every error names the field
//! path (`include[1].email.email: "bob" is not an email address`). Also the
//! `--access-policies` file's format (TOML, `[[policy]]` tables), parsed and checked as a whole.
//! Pure: no I/O, no store, no gRPC.

use crate::model::{OperatorPolicy, PolicySource};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::net::IpAddr;

/// The decisions Cloudflare's policies take.
pub const DECISIONS: &[&str] = &["allow", "deny", "non_identity", "bypass"];

/// Words the access labels give a meaning of their own: no policy may be called so.
pub const RESERVED_NAMES: &[&str] = &["bypass", "authenticate", "default_tld", "public"];

/// The longest policy name.
pub const MAX_NAME: usize = 64;

/// The rule types a policy may hold, each with the inner fields it takes.
const RULE_TYPES: &[(&str, &[&str])] = &[
    ("email", &["email"]),
    ("email_domain", &["domain"]),
    ("everyone", &[]),
    ("ip", &["ip"]),
    ("group", &["id"]),
    ("service_token", &["token_id"]),
    ("any_valid_service_token", &[]),
    ("geo", &["country_code"]),
    ("login_method", &["id"]),
];

/// A value that is not valid, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct PolicyError {
    /// The field path: `name`, `include[1].email.email`, `session_duration`, …
    pub field: String,
    pub reason: String,
}

fn error(field: impl Into<String>, reason: impl Into<String>) -> PolicyError {
    PolicyError { field: field.into(), reason: reason.into() }
}

/// A policy as an operator writes it (PutAccessPolicy, or one `[[policy]]` of the file).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyInput {
    pub name: String,
    pub decision: String,
    #[serde(default)]
    pub include: Vec<Value>,
    #[serde(default)]
    pub exclude: Vec<Value>,
    #[serde(default)]
    pub require: Vec<Value>,
    #[serde(default)]
    pub session_duration: Option<String>,
}

/// Checks a policy name.
pub fn validate_name(name: &str) -> Result<(), PolicyError> {
    if name.is_empty() {
        return Err(error("name", "required"));
    }
    if name.chars().count() > MAX_NAME {
        return Err(error("name", format!("{name:?} is longer than {MAX_NAME} characters")));
    }
    if let Some(bad) = name.chars().find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '-')) {
        return Err(error("name", format!("{name:?} holds {bad:?}: use lower-case letters, digits, '.', '_' and '-'")));
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(error(
            "name",
            format!("{name:?} is a keyword of the access labels; reserved: {}", RESERVED_NAMES.join(", ")),
        ));
    }
    Ok(())
}

/// The policy `input` defines, checked, from `source` at `now` (Unix ms).
pub fn validate(input: &PolicyInput, source: PolicySource, now: i64) -> Result<OperatorPolicy, PolicyError> {
    validate_name(&input.name)?;
    let decision = input.decision.trim();
    if decision.is_empty() {
        return Err(error("decision", format!("required: one of {}", DECISIONS.join(", "))));
    }
    if !DECISIONS.contains(&decision) {
        return Err(error("decision", format!("{decision:?} is not one of {}", DECISIONS.join(", "))));
    }
    if input.include.is_empty() {
        return Err(error("include", "at least one rule is required (e.g. {\"everyone\": {}})"));
    }
    for (list, rules) in [("include", &input.include), ("exclude", &input.exclude), ("require", &input.require)] {
        for (index, rule) in rules.iter().enumerate() {
            validate_rule(&format!("{list}[{index}]"), rule)?;
        }
    }
    let session_duration = match input.session_duration.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(duration) => {
            go_duration(duration).map_err(|reason| error("session_duration", reason))?;
            Some(duration.to_string())
        }
    };
    Ok(OperatorPolicy {
        name: input.name.clone(),
        decision: decision.to_string(),
        include: input.include.clone(),
        exclude: input.exclude.clone(),
        require: input.require.clone(),
        session_duration,
        source,
        updated_at: now,
    })
}

/// Checks one rule object at `path` (`include[0]`).
fn validate_rule(path: &str, rule: &Value) -> Result<(), PolicyError> {
    let known = || RULE_TYPES.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(", ");
    let Some(object) = rule.as_object() else {
        return Err(error(path, format!("a rule is an object with one key ({}), not {rule}", known())));
    };
    let mut keys = object.keys();
    let (Some(kind), None) = (keys.next(), keys.next()) else {
        return Err(error(path, format!("a rule has exactly one key ({}); this one has {}", known(), object.len())));
    };
    let Some((_, fields)) = RULE_TYPES.iter().find(|(name, _)| name == kind) else {
        return Err(error(format!("{path}.{kind}"), format!("unknown rule type (known: {})", known())));
    };
    let at = format!("{path}.{kind}");
    let Some(inner) = object.get(kind).and_then(Value::as_object) else {
        return Err(error(&at, "must be an object"));
    };
    if let Some(extra) = inner.keys().find(|key| !fields.contains(&key.as_str())) {
        let takes = if fields.is_empty() { "nothing: write {}".to_string() } else { fields.join(", ") };
        return Err(error(format!("{at}.{extra}"), format!("unknown field ({kind} takes {takes})")));
    }
    for field in fields.iter() {
        let value = text_field(&at, field, inner)?;
        let checked = match kind.as_str() {
            "email" => email(value),
            "email_domain" => domain(value),
            "ip" => ip_or_cidr(value),
            "geo" => country_code(value),
            _ => Ok(()),
        };
        checked.map_err(|reason| error(format!("{at}.{field}"), reason))?;
    }
    Ok(())
}

/// The non-empty text field `field` of a rule's inner object.
fn text_field<'a>(at: &str, field: &str, inner: &'a Map<String, Value>) -> Result<&'a str, PolicyError> {
    match inner.get(field) {
        None => Err(error(format!("{at}.{field}"), "required")),
        Some(Value::String(text)) if text.trim().is_empty() => Err(error(format!("{at}.{field}"), "required")),
        Some(Value::String(text)) => Ok(text),
        Some(other) => Err(error(format!("{at}.{field}"), format!("must be a string, not {other}"))),
    }
}

fn email(value: &str) -> Result<(), String> {
    let not = || format!("{value:?} is not an email address");
    let (local, host) = value.rsplit_once('@').ok_or_else(not)?;
    if local.is_empty() || local.contains(char::is_whitespace) || local.contains('@') || domain(host).is_err() {
        return Err(not());
    }
    Ok(())
}

fn domain(value: &str) -> Result<(), String> {
    let not = || format!("{value:?} is not a domain name (e.g. example.com)");
    let labels: Vec<&str> = value.split('.').collect();
    let label_ok = |label: &&str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if value.len() > 253 || labels.len() < 2 || !labels.iter().all(label_ok) {
        return Err(not());
    }
    Ok(())
}

fn ip_or_cidr(value: &str) -> Result<(), String> {
    let not = || format!("{value:?} is not an IP address or CIDR range (e.g. 10.0.0.0/8)");
    let (address, prefix) = match value.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (value, None),
    };
    let address: IpAddr = address.parse().map_err(|_| not())?;
    if let Some(prefix) = prefix {
        let bits: u8 = prefix.parse().map_err(|_| not())?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        if bits > max || prefix.starts_with('+') {
            return Err(not());
        }
    }
    Ok(())
}

fn country_code(value: &str) -> Result<(), String> {
    if value.len() == 2 && value.chars().all(|c| c.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(format!("{value:?} is not a country code (two upper-case letters, ISO 3166-1, e.g. DE)"))
    }
}

/// Checks Go's duration syntax (`24h`, `30m`, `2h45m`, `1.5h`; units ns, us, µs, ms, s, m, h):
/// one or more numbers with units, positive.
pub fn go_duration(value: &str) -> Result<(), String> {
    let not = || format!("{value:?} is not a duration (e.g. 24h, 30m, 2h45m)");
    let mut rest = value;
    let mut positive = false;
    if rest.is_empty() {
        return Err(not());
    }
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(not)?;
        let number = &rest[..number_len];
        if number.is_empty() || number.starts_with('.') || number.ends_with('.') || number.matches('.').count() > 1 {
            return Err(not());
        }
        positive |= number.chars().any(|c| c.is_ascii_digit() && c != '0');
        rest = &rest[number_len..];
        let unit =
            ["ns", "us", "µs", "ms", "h", "m", "s"].iter().find(|unit| rest.starts_with(*unit)).ok_or_else(not)?;
        rest = &rest[unit.len()..];
    }
    if !positive {
        return Err(format!("{value:?} is not a positive duration"));
    }
    Ok(())
}

/// Why a policy file was refused (as a whole).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("access policy file {file}: cannot read it: {reason}")]
    Read { file: String, reason: String },
    #[error("access policy file {file}: not valid TOML of [[policy]] tables: {reason}")]
    Syntax { file: String, reason: String },
    #[error("access policy file {file}: policy {name:?} (policy[{index}]): {error}")]
    Invalid { file: String, index: usize, name: String, error: PolicyError },
    #[error("access policy file {file}: policy {name:?} is defined twice (policy[{first}] and policy[{second}])")]
    Duplicate { file: String, name: String, first: usize, second: usize },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    policy: Vec<PolicyInput>,
}

/// The policies of a file's `text` (`file` names it in errors), every one checked; the first
/// problem refuses the whole file.
pub fn parse_file(file: &str, text: &str, now: i64) -> Result<Vec<OperatorPolicy>, FileError> {
    let parsed: PolicyFile = toml::from_str(text)
        .map_err(|e| FileError::Syntax { file: file.to_string(), reason: e.to_string().trim().to_string() })?;
    let mut seen: Vec<&str> = Vec::new();
    let mut policies = Vec::with_capacity(parsed.policy.len());
    for (index, input) in parsed.policy.iter().enumerate() {
        let policy = validate(input, PolicySource::File, now).map_err(|error| FileError::Invalid {
            file: file.to_string(),
            index,
            name: input.name.clone(),
            error,
        })?;
        if let Some(first) = seen.iter().position(|name| *name == input.name) {
            return Err(FileError::Duplicate {
                file: file.to_string(),
                name: input.name.clone(),
                first,
                second: index,
            });
        }
        seen.push(&input.name);
        policies.push(policy);
    }
    Ok(policies)
}

/// The names of `policies`, for logs.
pub fn names(policies: &[OperatorPolicy]) -> BTreeSet<String> {
    policies.iter().map(|p| p.name.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(include: Value) -> PolicyInput {
        PolicyInput { name: "team".into(), decision: "allow".into(), include: vec![include], ..PolicyInput::default() }
    }

    fn refusal(input: &PolicyInput) -> String {
        validate(input, PolicySource::Api, 0).unwrap_err().to_string()
    }

    #[test]
    fn a_good_policy_is_kept_as_written() -> anyhow::Result<()> {
        let mut good = input(json!({"email_domain": {"domain": "example.com"}}));
        good.exclude = vec![json!({"geo": {"country_code": "DE"}})];
        good.require = vec![json!({"ip": {"ip": "10.0.0.0/8"}}), json!({"any_valid_service_token": {}})];
        good.session_duration = Some("2h45m".into());
        let policy = validate(&good, PolicySource::Api, 7)?;
        assert_eq!(policy.include, good.include);
        assert_eq!((policy.session_duration.as_deref(), policy.updated_at), (Some("2h45m"), 7));
        for rule in [
            json!({"everyone": {}}),
            json!({"email": {"email": "a@b.example"}}),
            json!({"group": {"id": "abc"}}),
            json!({"service_token": {"token_id": "t1"}}),
            json!({"login_method": {"id": "m1"}}),
            json!({"ip": {"ip": "2001:db8::/32"}}),
            json!({"ip": {"ip": "192.0.2.1"}}),
        ] {
            assert!(validate(&input(rule.clone()), PolicySource::Api, 0).is_ok(), "{rule}");
        }
        Ok(())
    }

    #[test]
    fn names_are_short_lower_case_and_not_keywords() {
        for (name, expected) in [
            ("", "name: required"),
            ("Team", "name: \"Team\" holds 'T'"),
            ("a b", "name: \"a b\" holds ' '"),
            ("bypass", "name: \"bypass\" is a keyword of the access labels"),
            ("public", "name: \"public\" is a keyword"),
        ] {
            let message = validate_name(name).unwrap_err().to_string();
            assert!(message.starts_with(expected), "{name}: {message}");
        }
        assert!(validate_name(&"a".repeat(64)).is_ok());
        assert!(validate_name(&"a".repeat(65)).unwrap_err().to_string().contains("longer than 64"));
        assert!(validate_name("team.ops_1-eu").is_ok());
    }

    #[test]
    fn every_error_names_the_field_path() {
        let mut two = input(json!({"everyone": {}}));
        two.include.push(json!({"email": {"email": "bob"}}));
        assert_eq!(refusal(&two), "include[1].email.email: \"bob\" is not an email address");
        let cases = [
            (json!({"emial": {"email": "a@b.c"}}), "include[0].emial: unknown rule type (known: email, "),
            (json!({"email": {"email": "a@b.c"}, "everyone": {}}), "include[0]: a rule has exactly one key"),
            (json!("everyone"), "include[0]: a rule is an object with one key"),
            (json!({"email": "a@b.c"}), "include[0].email: must be an object"),
            (json!({"email": {}}), "include[0].email.email: required"),
            (json!({"email": {"email": 3}}), "include[0].email.email: must be a string, not 3"),
            (json!({"email_domain": {"domain": "not a domain"}}), "include[0].email_domain.domain: \"not a domain\""),
            (json!({"ip": {"ip": "10.0.0.0/33"}}), "include[0].ip.ip: \"10.0.0.0/33\" is not an IP address"),
            (json!({"ip": {"ip": "ten"}}), "include[0].ip.ip: \"ten\" is not an IP"),
            (json!({"geo": {"country_code": "Germany"}}), "include[0].geo.country_code: \"Germany\" is not a country"),
            (json!({"group": {"id": ""}}), "include[0].group.id: required"),
            (
                json!({"service_token": {"id": "x"}}),
                "include[0].service_token.id: unknown field (service_token takes token_id)",
            ),
            (json!({"everyone": {"x": 1}}), "include[0].everyone.x: unknown field (everyone takes nothing: write {})"),
        ];
        for (rule, expected) in cases {
            let message = refusal(&input(rule.clone()));
            assert!(message.starts_with(expected), "{rule}: {message}");
        }
        let mut excluded = input(json!({"everyone": {}}));
        excluded.require = vec![json!({"login_method": {}})];
        assert_eq!(refusal(&excluded), "require[0].login_method.id: required");
    }

    #[test]
    fn decision_include_and_session_are_checked() -> anyhow::Result<()> {
        let mut bad = input(json!({"everyone": {}}));
        bad.decision = "permit".into();
        assert!(refusal(&bad).starts_with("decision: \"permit\" is not one of allow, deny, non_identity, bypass"));
        bad.decision = String::new();
        assert!(refusal(&bad).starts_with("decision: required"));
        let mut empty = input(json!({"everyone": {}}));
        empty.include.clear();
        assert!(refusal(&empty).starts_with("include: at least one rule is required"));
        let mut session = input(json!({"everyone": {}}));
        session.session_duration = Some("1 day".into());
        assert_eq!(refusal(&session), "session_duration: \"1 day\" is not a duration (e.g. 24h, 30m, 2h45m)");
        session.session_duration = Some(String::new());
        assert_eq!(validate(&session, PolicySource::Api, 0)?.session_duration, None);
        Ok(())
    }

    #[test]
    fn go_durations() {
        for good in ["24h", "30m", "2h45m", "1.5h", "300ms", "10s", "1h0m0s", "5µs"] {
            assert!(go_duration(good).is_ok(), "{good}");
        }
        for bad in ["", "24", "h", "1d", "0s", "0h0m", "1.h", ".5h", "1..5h", "-1h", "1h 30m", "24H"] {
            assert!(go_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_file_is_checked_as_a_whole_naming_the_policy_and_field() -> anyhow::Result<()> {
        let text = r#"
[[policy]]
name = "team"
decision = "allow"
include = [{ email_domain = { domain = "example.com" } }]
session_duration = "12h"

[[policy]]
name = "ops"
decision = "allow"
include = [{ everyone = {} }]
exclude = [{ geo = { country_code = "XX" } }, { email = { email = "nobody" } }]
"#;
        let error = parse_file("/etc/p.toml", text, 0).unwrap_err().to_string();
        assert_eq!(
            error,
            "access policy file /etc/p.toml: policy \"ops\" (policy[1]): exclude[1].email.email: \"nobody\" is not an email address"
        );
        let good = text.replace("\"nobody\"", "\"nobody@example.com\"");
        let policies = parse_file("/etc/p.toml", &good, 5)?;
        assert_eq!(names(&policies).into_iter().collect::<Vec<_>>(), ["ops", "team"]);
        assert_eq!(policies[0].include, vec![json!({"email_domain": {"domain": "example.com"}})]);
        assert!(policies.iter().all(|p| p.source == PolicySource::File && p.updated_at == 5));
        assert_eq!(policies[0].session_duration.as_deref(), Some("12h"));

        let twice =
            format!("{good}\n[[policy]]\nname = \"team\"\ndecision = \"deny\"\ninclude = [{{ everyone = {{}} }}]\n");
        let error = parse_file("p.toml", &twice, 0).unwrap_err().to_string();
        assert!(error.contains("policy \"team\" is defined twice (policy[0] and policy[2])"), "{error}");
        let typo = parse_file("p.toml", "[[policy]]\nname = \"a\"\ndecison = \"allow\"\n", 0).unwrap_err().to_string();
        assert!(typo.starts_with("access policy file p.toml: not valid TOML"), "{typo}");
        assert!(typo.contains("decison"), "{typo}");
        assert_eq!(parse_file("p.toml", "", 0)?, vec![]);
        Ok(())
    }
}
