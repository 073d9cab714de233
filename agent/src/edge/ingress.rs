//! Ingress rules as cloudflared applies them (`shared/reference/cloudflare-api.md` §4): compiling a
//! remote configuration's `ingress` list, and finding the rule for a request. Pure: no I/O.
//!
//! Matching follows cloudflared's `ingress.FindMatchingRule`: rules are tried top to bottom and the
//! first match wins; a rule's hostname matches by exact (case-sensitive) equality, or — for a
//! leading `*.` — by suffix (`*.example.test` matches `a.example.test` and `a.b.example.test`, not
//! `example.test`); an empty or `*` hostname matches every host; the request's port is ignored;
//! `path` is an unanchored regular expression over the request path (`/api` also matches
//! `/x/api`). A request no rule matches gets the last rule, the catch-all.

use dockflare_cloudflare::types::TunnelConfig;
use regex::Regex;
use serde_json::Value;
use std::time::Duration;

/// What a rule sends requests to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Service {
    /// An HTTP or HTTPS origin: `https` tells which, `authority` is `host[:port]`.
    Origin { https: bool, authority: String },
    /// `http_status:NNN`: answered at the edge with that status.
    Status(u16),
    /// `hello_world`: cloudflared's built-in test page (a short text here).
    HelloWorld,
    /// A service cloudflared knows but this edge does not proxy (`tcp://`, `ssh://`, `unix:` …).
    Unsupported(String),
}

/// The `originRequest` settings the local edge honours. Others are accepted and ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginRequest {
    /// Skip certificate verification of an `https://` origin.
    pub no_tls_verify: bool,
    /// The `Host` header sent to the origin instead of the request's.
    pub http_host_header: Option<String>,
    /// How long connecting to the origin may take (cloudflared's default: 30 s).
    pub connect_timeout: Option<Duration>,
}

impl OriginRequest {
    /// Reads an `originRequest` object over `defaults` (the configuration-wide settings); fields of
    /// an unexpected type are ignored rather than failing the whole configuration.
    pub fn read(value: Option<&Value>, defaults: &OriginRequest) -> OriginRequest {
        let mut settings = defaults.clone();
        let Some(object) = value.and_then(Value::as_object) else { return settings };
        if let Some(flag) = object.get("noTLSVerify").and_then(Value::as_bool) {
            settings.no_tls_verify = flag;
        }
        if let Some(host) = object.get("httpHostHeader").and_then(Value::as_str) {
            settings.http_host_header = Some(host.to_string()).filter(|h| !h.is_empty());
        }
        if let Some(seconds) = object.get("connectTimeout").and_then(Value::as_u64) {
            settings.connect_timeout = Some(Duration::from_secs(seconds)).filter(|d| !d.is_zero());
        }
        settings
    }
}

/// One compiled ingress rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// `""` (or `"*"`) matches every host.
    pub hostname: String,
    pub path: Option<Regex>,
    pub service: Service,
    pub origin: OriginRequest,
}

impl Rule {
    /// Whether a request for `host` (port already removed) and `path` matches.
    pub fn matches(&self, host: &str, path: &str) -> bool {
        let host_matches = self.hostname.is_empty() || self.hostname == "*" || match_host(&self.hostname, host);
        host_matches && self.path.as_ref().is_none_or(|regex| regex.is_match(path))
    }
}

/// A compiled `ingress` list (never empty).
#[derive(Debug, Clone)]
pub struct Ingress {
    pub rules: Vec<Rule>,
}

/// Why a configuration cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngressError {
    #[error("The config file doesn't contain any ingress rules")]
    Empty,
    #[error("Rule #{rule} has an invalid regex: {reason}")]
    Regex { rule: usize, reason: String },
    #[error("Rule #{rule}: {service} is an invalid address, please make sure it has a scheme and a hostname")]
    Service { rule: usize, service: String },
    #[error("Rule #{rule}: invalid HTTP status code: {code}")]
    Status { rule: usize, code: String },
}

impl Ingress {
    /// Compiles the `config` object of a remote configuration (`{"ingress": [...], "originRequest": {...}}`),
    /// in the Cloudflare API's own types.
    pub fn from_config(config: &TunnelConfig) -> Result<Ingress, IngressError> {
        let defaults = OriginRequest::read(config.origin_request.as_ref(), &OriginRequest::default());
        if config.ingress.is_empty() {
            return Err(IngressError::Empty);
        }
        let mut rules = Vec::with_capacity(config.ingress.len());
        for (index, raw) in config.ingress.iter().enumerate() {
            let number = index + 1;
            let text = |value: &Option<String>| value.as_deref().unwrap_or("").trim().to_string();
            let path = text(&raw.path);
            let path = if path.is_empty() {
                None
            } else {
                Some(Regex::new(&path).map_err(|e| IngressError::Regex { rule: number, reason: e.to_string() })?)
            };
            rules.push(Rule {
                hostname: text(&raw.hostname),
                path,
                service: parse_service(number, raw.service.trim())?,
                origin: OriginRequest::read(raw.origin_request.as_ref(), &defaults),
            });
        }
        Ok(Ingress { rules })
    }

    /// The rule for a request: the first that matches, else the last (the catch-all), with its
    /// index. `host` may carry a port; it is ignored.
    pub fn find(&self, host: &str, path: &str) -> Option<(usize, &Rule)> {
        let host = strip_port(host);
        self.rules.iter().enumerate().find(|(_, rule)| rule.matches(host, path)).or_else(|| {
            let last = self.rules.len().checked_sub(1)?;
            self.rules.get(last).map(|rule| (last, rule))
        })
    }
}

/// cloudflared's `matchHost`: equality, or a `*.` suffix match.
pub fn match_host(rule: &str, host: &str) -> bool {
    if rule == host {
        return true;
    }
    match rule.strip_prefix('*') {
        Some(suffix) if suffix.starts_with('.') => host.len() > suffix.len() && host.ends_with(suffix),
        _ => false,
    }
}

/// `host:port` → `host`; `[::1]:80` → `::1`; a host without a port is returned as it is.
pub fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').map_or(host, |(inner, _)| inner);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

fn parse_service(rule: usize, service: &str) -> Result<Service, IngressError> {
    let invalid = || IngressError::Service { rule, service: service.to_string() };
    if let Some(code) = service.strip_prefix("http_status:") {
        return match code.parse::<u16>() {
            Ok(status) if (100..=999).contains(&status) => Ok(Service::Status(status)),
            _ => Err(IngressError::Status { rule, code: code.to_string() }),
        };
    }
    if service == "hello_world" {
        return Ok(Service::HelloWorld);
    }
    let https = match service.split_once("://") {
        Some(("http", _)) => false,
        Some(("https", _)) => true,
        Some(_) => return Ok(Service::Unsupported(service.to_string())),
        None if service.starts_with("unix:")
            || service.starts_with("unix+tls:")
            || matches!(service, "bastion" | "socks5") =>
        {
            return Ok(Service::Unsupported(service.to_string()))
        }
        None => return Err(invalid()),
    };
    let uri: http::Uri = service.parse().map_err(|_| invalid())?;
    let authority = uri.authority().map(|a| a.as_str().to_string()).filter(|a| !a.is_empty()).ok_or_else(invalid)?;
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(invalid());
    }
    Ok(Service::Origin { https, authority })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(value: Value) -> TunnelConfig {
        serde_json::from_value(value).unwrap_or_else(|e| panic!("not a tunnel configuration: {e}"))
    }

    fn ingress(rules: Value) -> Ingress {
        match Ingress::from_config(&config(json!({ "ingress": rules }))) {
            Ok(ingress) => ingress,
            Err(error) => panic!("{error}"),
        }
    }

    #[test]
    fn hosts_match_like_cloudflared() {
        // (rule hostname, request host, matches)
        let cases = [
            ("app.example.test", "app.example.test", true),
            ("app.example.test", "App.example.test", false),
            ("app.example.test", "x.app.example.test", false),
            ("*.example.test", "a.example.test", true),
            ("*.example.test", "a.b.example.test", true),
            ("*.example.test", "example.test", false),
            ("*.example.test", ".example.test", false),
            ("*.example.test", "aexample.test", false),
            ("*example.test", "aexample.test", false),
            ("", "anything", true),
        ];
        for (rule, host, expected) in cases {
            let matched = rule.is_empty() || match_host(rule, host);
            assert_eq!(matched, expected, "{rule:?} vs {host:?}");
        }
    }

    #[test]
    fn ports_are_stripped() {
        let cases = [
            ("app.test:8080", "app.test"),
            ("app.test", "app.test"),
            ("[::1]:80", "::1"),
            ("[::1]", "::1"),
            ("::1", "::1"),
            ("app.test:x", "app.test:x"),
        ];
        for (host, expected) in cases {
            assert_eq!(strip_port(host), expected, "{host}");
        }
    }

    #[test]
    fn first_match_wins_and_the_catch_all_closes() {
        let table = ingress(json!([
            {"hostname": "app.example.test", "path": "^/api/", "service": "http://api:8080"},
            {"hostname": "app.example.test", "service": "http://web:80"},
            {"hostname": "*.example.test", "path": "/static", "service": "https://cdn:443"},
            {"hostname": "*.example.test", "service": "http_status:418"},
            {"hostname": "other.test", "path": "\\.php$", "service": "http_status:403"},
            {"service": "http_status:404"}
        ]));
        // (host, path, expected rule index)
        let cases = [
            ("app.example.test", "/api/users", 0),
            ("app.example.test:8080", "/api/users", 0),
            ("app.example.test", "/x/api/users", 1),
            ("app.example.test", "/", 1),
            ("b.example.test", "/static/a.css", 2),
            ("b.example.test", "/x/static", 2),
            ("b.example.test", "/", 3),
            ("example.test", "/", 5),
            ("other.test", "/index.php", 4),
            ("other.test", "/index.php.bak", 5),
            ("unknown.test", "/", 5),
            ("", "/", 5),
        ];
        for (host, path, expected) in cases {
            assert_eq!(table.find(host, path).map(|(i, _)| i), Some(expected), "{host} {path}");
        }
    }

    #[test]
    fn no_match_falls_to_the_last_rule() {
        let table = ingress(
            json!([{"hostname": "a.test", "service": "http://a:80"}, {"hostname": "b.test", "service": "http_status:503"}]),
        );
        assert_eq!(table.find("c.test", "/").map(|(i, _)| i), Some(1));
    }

    #[test]
    fn services_parse() {
        // (service, expected)
        let cases = [
            ("http://web:80", Ok(Service::Origin { https: false, authority: "web:80".into() })),
            ("http://web", Ok(Service::Origin { https: false, authority: "web".into() })),
            ("https://10.0.0.1:8443/", Ok(Service::Origin { https: true, authority: "10.0.0.1:8443".into() })),
            ("http_status:404", Ok(Service::Status(404))),
            ("hello_world", Ok(Service::HelloWorld)),
            ("tcp://db:5432", Ok(Service::Unsupported("tcp://db:5432".into()))),
            ("unix:/run/app.sock", Ok(Service::Unsupported("unix:/run/app.sock".into()))),
            ("http://web:80/path", Err(IngressError::Service { rule: 1, service: "http://web:80/path".into() })),
            ("web:80", Err(IngressError::Service { rule: 1, service: "web:80".into() })),
            ("bastion", Ok(Service::Unsupported("bastion".into()))),
            ("web", Err(IngressError::Service { rule: 1, service: "web".into() })),
            ("http_status:99", Err(IngressError::Status { rule: 1, code: "99".into() })),
            ("http_status:abc", Err(IngressError::Status { rule: 1, code: "abc".into() })),
        ];
        for (service, expected) in cases {
            assert_eq!(parse_service(1, service), expected, "{service}");
        }
    }

    #[test]
    fn bad_configurations_are_refused() {
        assert_eq!(Ingress::from_config(&config(json!({}))).err(), Some(IngressError::Empty));
        assert_eq!(Ingress::from_config(&config(json!({"ingress": []}))).err(), Some(IngressError::Empty));
        assert!(serde_json::from_value::<TunnelConfig>(json!({"ingress": [1]})).is_err(), "a rule is an object");
        let bad_regex = config(json!({"ingress": [{"path": "*", "service": "http_status:404"}]}));
        assert!(matches!(Ingress::from_config(&bad_regex), Err(IngressError::Regex { rule: 1, .. })));
    }

    #[test]
    fn origin_request_settings_inherit_and_override() {
        let table = match Ingress::from_config(&config(json!({
            "originRequest": {"noTLSVerify": true, "connectTimeout": 5},
            "ingress": [
                {"hostname": "a.test", "service": "https://a:443", "originRequest": {"httpHostHeader": "a.internal"}},
                {"hostname": "b.test", "service": "https://b:443", "originRequest": {"noTLSVerify": false, "connectTimeout": "x"}},
                {"service": "http_status:404"}
            ]
        }))) {
            Ok(table) => table,
            Err(error) => panic!("{error}"),
        };
        let origin = |i: usize| table.rules.get(i).map(|r| r.origin.clone()).unwrap_or_default();
        assert_eq!(
            origin(0),
            OriginRequest {
                no_tls_verify: true,
                http_host_header: Some("a.internal".into()),
                connect_timeout: Some(Duration::from_secs(5))
            }
        );
        assert_eq!(
            origin(1),
            OriginRequest {
                no_tls_verify: false,
                http_host_header: None,
                connect_timeout: Some(Duration::from_secs(5))
            }
        );
        assert!(origin(2).no_tls_verify);
    }
}
