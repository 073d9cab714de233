//! cloudflared's ingress validation (`ingress/ingress.go` `validateIngress`),
//! which the API runs on every `PUT .../configurations` and answers with
//! HTTP 400, code 1056, `Bad Configuration: Validation failed: <error>\n`.
//! Pure; the error strings are cloudflared's.
//!
//! Per rule, in cloudflared's order: the service (`unix:`, `unix+tls:`,
//! `http_status:NNN`, `hello_world`, `socks-proxy`, `bastion`, else a URL
//! with a scheme, a host and no path, parsed like Go's `net/url`), the Access
//! settings, the hostname (no port, `*` only first, catch-all last and only
//! last), the path regex. Go's RE2 and the `regex` crate accept nearly the
//! same syntax; the text after "has an invalid regex: " differs from Go's.
//! Beyond cloudflared: `originRequest` durations must be integer seconds.

use dockflare_cloudflare::types::{IngressRule, TunnelConfig};
use serde_json::Value;

/// Validates a configuration; `Err` holds cloudflared's message.
pub fn validate_config(config: &TunnelConfig) -> Result<(), String> {
    if config.ingress.is_empty() {
        return Err("The config file doesn't contain any ingress rules".to_string());
    }
    check_durations(config.origin_request.as_ref(), "originRequest")?;
    let defaults_bastion = flag(config.origin_request.as_ref(), "bastionMode");
    let total = config.ingress.len();
    for (index, rule) in config.ingress.iter().enumerate() {
        let bastion = defaults_bastion || flag(rule.origin_request.as_ref(), "bastionMode");
        validate_service(&rule.service, bastion)?;
        validate_access(rule.origin_request.as_ref())?;
        validate_hostname(rule, index, total)?;
        if let Some(path) = rule.path.as_deref().filter(|p| !p.is_empty()) {
            if let Err(error) = regex::Regex::new(path) {
                return Err(format!(
                    "Rule #{} has an invalid regex: error parsing regexp: {}",
                    index + 1,
                    regex_error(&error)
                ));
            }
        }
        check_durations(rule.origin_request.as_ref(), &format!("ingress[{index}].originRequest"))?;
    }
    Ok(())
}

/// The message to send for a failed validation.
pub fn bad_configuration_message(error: &str) -> String {
    format!("Bad Configuration: Validation failed: {error}\n")
}

fn flag(origin_request: Option<&Value>, key: &str) -> bool {
    origin_request.and_then(|o| o.get(key)).and_then(Value::as_bool).unwrap_or(false)
}

/// The one-line description of a `regex` error.
fn regex_error(error: &regex::Error) -> String {
    match error {
        regex::Error::Syntax(text) => text
            .lines()
            .find_map(|line| line.strip_prefix("error: "))
            .map(str::to_string)
            .unwrap_or_else(|| text.lines().last().unwrap_or("invalid regex").to_string()),
        other => other.to_string(),
    }
}

fn validate_service(service: &str, bastion: bool) -> Result<(), String> {
    if service.starts_with("unix:") || service.starts_with("unix+tls:") {
        return Ok(());
    }
    if let Some(code) = service.strip_prefix("http_status:") {
        let code = go_atoi(code).map_err(|e| format!("invalid HTTP status code: {e}"))?;
        if !(100..=999).contains(&code) {
            return Err(format!("invalid HTTP status code: {code}"));
        }
        return Ok(());
    }
    if matches!(service, "hello_world" | "hello-world" | "helloworld" | "socks-proxy" | "bastion") || bastion {
        return Ok(());
    }
    let url = go_url::parse(service)?;
    if url.scheme.is_empty() || url.hostname().is_empty() {
        return Err(format!("{service} is an invalid address, please make sure it has a scheme and a hostname"));
    }
    if !url.path.is_empty() {
        return Err(format!(
            "{service} is an invalid address, ingress rules don't support proxying to a different path on the origin service. The path will be the same as the eyeball request's path"
        ));
    }
    Ok(())
}

/// Go's `strconv.Atoi` with its error text.
fn go_atoi(text: &str) -> Result<i64, String> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.Atoi: parsing {}: invalid syntax", go_quote(text)));
    }
    text.parse::<i64>().map_err(|_| format!("strconv.Atoi: parsing {}: value out of range", go_quote(text)))
}

fn validate_access(origin_request: Option<&Value>) -> Result<(), String> {
    let Some(access) = origin_request.and_then(|o| o.get("access")) else { return Ok(()) };
    let required = access.get("required").and_then(Value::as_bool).unwrap_or(false);
    let team_name = access.get("teamName").and_then(Value::as_str).unwrap_or("");
    let has_aud_tags = access.get("audTag").and_then(Value::as_array).is_some_and(|tags| !tags.is_empty());
    if required && team_name.is_empty() && has_aud_tags {
        return Err("access.TeamName cannot be blank when access.audTags are present".to_string());
    }
    Ok(())
}

fn validate_hostname(rule: &IngressRule, index: usize, total: usize) -> Result<(), String> {
    let hostname = rule.hostname.as_deref().unwrap_or("");
    let path = rule.path.as_deref().unwrap_or("");
    if go_split_host_port_ok(hostname) {
        return Err("Hostname cannot contain a port".to_string());
    }
    if hostname.rfind('*').is_some_and(|i| i > 0) {
        return Err(
            "Hostname patterns can have at most one wildcard character (\"*\") and it can only be used for subdomains, e.g. \"*.example.com\""
                .to_string(),
        );
    }
    let catch_all = (hostname.is_empty() || hostname == "*") && path.is_empty();
    let last = index + 1 == total;
    if last && !catch_all {
        return Err(
            "The last ingress rule must match all URLs (i.e. it should not have a hostname or path filter)".to_string()
        );
    }
    if !last && catch_all {
        return Err(format!(
            "Rule #{} is matching the hostname '{hostname}', but this will match every hostname, meaning the rules which follow it will never be triggered.",
            index + 1
        ));
    }
    Ok(())
}

/// Whether Go's `net.SplitHostPort` accepts `hostport` (then it has a port).
fn go_split_host_port_ok(hostport: &str) -> bool {
    let Some(last_colon) = hostport.rfind(':') else { return false };
    let (host_start, host_end) = if hostport.starts_with('[') {
        let Some(end) = hostport.find(']') else { return false };
        if end + 1 == hostport.len() || end + 1 != last_colon {
            return false;
        }
        (1, end + 1)
    } else {
        if hostport[..last_colon].contains(':') {
            return false;
        }
        (0, 0)
    };
    !hostport[host_start..].contains('[') && !hostport[host_end..].contains(']')
}

/// Go's `%q` for the ASCII cases that matter in error messages.
fn go_quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `originRequest` keys cloudflared reads as integer seconds (§4.1).
const DURATION_KEYS: [&str; 4] = ["connectTimeout", "tlsTimeout", "tcpKeepAlive", "keepAliveTimeout"];

fn check_durations(origin_request: Option<&Value>, at: &str) -> Result<(), String> {
    let Some(origin_request) = origin_request else { return Ok(()) };
    for key in DURATION_KEYS {
        match origin_request.get(key) {
            None | Some(Value::Null) => {}
            Some(value) if value.is_i64() || value.is_u64() => {}
            Some(value) => {
                return Err(format!("{at}.{key} must be an integer number of seconds, not {value}"));
            }
        }
    }
    Ok(())
}

/// The part of Go's `net/url.Parse` cloudflared's checks depend on: scheme,
/// host (port validation, invalid characters) and path; errors read like Go's.
mod go_url {
    use super::go_quote;

    pub struct Url {
        pub scheme: String,
        pub host: String,
        pub path: String,
    }

    impl Url {
        /// Host without port or IPv6 brackets.
        pub fn hostname(&self) -> &str {
            let host = self.host.as_str();
            if let Some(rest) = host.strip_prefix('[') {
                return rest.split(']').next().unwrap_or("");
            }
            match host.rfind(':') {
                Some(i) => &host[..i],
                None => host,
            }
        }
    }

    pub fn parse(raw: &str) -> Result<Url, String> {
        let without_fragment = raw.split('#').next().unwrap_or("");
        parse_inner(without_fragment).map_err(|e| format!("parse {}: {e}", go_quote(without_fragment)))
    }

    fn parse_inner(raw: &str) -> Result<Url, String> {
        if raw.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return Err("net/url: invalid control character in URL".to_string());
        }
        if raw == "*" {
            return Ok(Url { scheme: String::new(), host: String::new(), path: "*".into() });
        }
        let (scheme, rest) = scheme(raw)?;
        let scheme = scheme.to_ascii_lowercase();
        let rest = match rest.split_once('?') {
            Some((before, _query)) => before,
            None => rest,
        };
        if !rest.starts_with('/') {
            if !scheme.is_empty() {
                // Opaque: no host.
                return Ok(Url { scheme, host: String::new(), path: String::new() });
            }
            if rest.split('/').next().unwrap_or("").contains(':') {
                return Err("first path segment in URL cannot contain colon".to_string());
            }
        }
        let (host, path) = match rest.strip_prefix("//") {
            Some(after) if !scheme.is_empty() || !rest.starts_with("///") => {
                let (authority, path) = match after.find('/') {
                    Some(i) => (&after[..i], &after[i..]),
                    None => (after, ""),
                };
                (parse_authority(authority)?, path)
            }
            _ => (String::new(), rest),
        };
        Ok(Url { scheme, host, path: unescape(path)? })
    }

    fn scheme(raw: &str) -> Result<(&str, &str), String> {
        for (i, c) in raw.bytes().enumerate() {
            match c {
                b'a'..=b'z' | b'A'..=b'Z' => {}
                b'0'..=b'9' | b'+' | b'-' | b'.' if i > 0 => {}
                b':' if i == 0 => return Err("missing protocol scheme".to_string()),
                b':' => return Ok((&raw[..i], &raw[i + 1..])),
                _ => return Ok(("", raw)),
            }
        }
        Ok(("", raw))
    }

    fn parse_authority(authority: &str) -> Result<String, String> {
        let host = match authority.rfind('@') {
            Some(i) => &authority[i + 1..],
            None => authority,
        };
        parse_host(host)
    }

    fn valid_optional_port(port: &str) -> bool {
        match port.strip_prefix(':') {
            None => port.is_empty(),
            Some(digits) => digits.bytes().all(|b| b.is_ascii_digit()),
        }
    }

    fn parse_host(host: &str) -> Result<String, String> {
        if host.starts_with('[') {
            let Some(end) = host.rfind(']') else { return Err("missing ']' in host".to_string()) };
            let colon_port = &host[end + 1..];
            if !valid_optional_port(colon_port) {
                return Err(format!("invalid port {} after host", go_quote(colon_port)));
            }
        } else if let Some(i) = host.rfind(':') {
            let colon_port = &host[i..];
            if !valid_optional_port(colon_port) {
                return Err(format!("invalid port {} after host", go_quote(colon_port)));
            }
        }
        for c in host.chars() {
            let allowed = c.is_ascii_alphanumeric() || !c.is_ascii() || "-_.~!$&'()*+,;=:[]<>\"%".contains(c);
            if !allowed {
                return Err(format!("invalid character {} in host name", go_quote(&c.to_string())));
            }
        }
        unescape(host)
    }

    fn unescape(text: &str) -> Result<String, String> {
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hex = text.get(i + 1..i + 3).filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
                let Some(value) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) else {
                    let end = (i + 3).min(text.len());
                    return Err(format!("invalid URL escape {}", go_quote(text.get(i..end).unwrap_or("%"))));
                };
                out.push(value);
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(rules: Value) -> TunnelConfig {
        serde_json::from_value(json!({ "ingress": rules })).unwrap_or_default()
    }

    fn check(rules: Value) -> Result<(), String> {
        validate_config(&config(rules))
    }

    #[test]
    fn valid_configurations_pass() {
        let ok = [
            json!([{"service": "http_status:404"}]),
            json!([{"hostname": "a.example.com", "service": "http://app:8080"}, {"service": "http_status:404"}]),
            json!([{"hostname": "*.example.com", "path": "^/api/", "service": "https://10.0.0.1:8443"}, {"hostname": "*", "service": "hello_world"}]),
            json!([{"hostname": "a.example.com", "service": "unix:/run/app.sock"}, {"service": "http://x?y=1"}]),
            json!([{"hostname": "a.example.com", "service": "tcp://db:5432"}, {"hostname": "b.example.com", "service": "ssh://h:22"}, {"service": "http_status:503"}]),
            json!([{"hostname": "[::1]", "service": "http://[::1]:80"}, {"service": "bastion"}]),
        ];
        for rules in ok {
            assert_eq!(check(rules.clone()), Ok(()), "{rules}");
        }
    }

    #[test]
    fn invalid_configurations_fail_with_cloudflared_messages() {
        let cases = [
            (json!([]), "The config file doesn't contain any ingress rules".to_string()),
            (
                json!([{"hostname": "a.example.com", "service": "http://a:1"}]),
                "The last ingress rule must match all URLs (i.e. it should not have a hostname or path filter)".into(),
            ),
            (
                json!([{"path": "/x", "service": "http://a:1"}]),
                "The last ingress rule must match all URLs (i.e. it should not have a hostname or path filter)".into(),
            ),
            (
                json!([{"service": "http://a:1"}, {"hostname": "b.example.com", "service": "http://b:1"}, {"service": "http_status:404"}]),
                "Rule #1 is matching the hostname '', but this will match every hostname, meaning the rules which follow it will never be triggered.".into(),
            ),
            (
                json!([{"hostname": "*", "service": "http://a:1"}, {"service": "http_status:404"}]),
                "Rule #1 is matching the hostname '*', but this will match every hostname, meaning the rules which follow it will never be triggered.".into(),
            ),
            (
                json!([{"hostname": "a.*.example.com", "service": "http://a:1"}, {"service": "http_status:404"}]),
                "Hostname patterns can have at most one wildcard character (\"*\") and it can only be used for subdomains, e.g. \"*.example.com\"".into(),
            ),
            (
                json!([{"hostname": "a.example.com:8443", "service": "http://a:1"}, {"service": "http_status:404"}]),
                "Hostname cannot contain a port".into(),
            ),
            (
                json!([{"hostname": "a.example.com", "service": "localhost:8080"}, {"service": "http_status:404"}]),
                "localhost:8080 is an invalid address, please make sure it has a scheme and a hostname".into(),
            ),
            (
                json!([{"hostname": "a.example.com", "service": "app"}, {"service": "http_status:404"}]),
                "app is an invalid address, please make sure it has a scheme and a hostname".into(),
            ),
            (
                json!([{"hostname": "a.example.com", "service": "http://app:8080/api"}, {"service": "http_status:404"}]),
                "http://app:8080/api is an invalid address, ingress rules don't support proxying to a different path on the origin service. The path will be the same as the eyeball request's path".into(),
            ),
            (
                json!([{"hostname": "a.example.com", "service": "http://127.0.0.1:2333 "}, {"service": "http_status:404"}]),
                "parse \"http://127.0.0.1:2333 \": invalid port \":2333 \" after host".into(),
            ),
            (json!([{"service": "http_status:42"}]), "invalid HTTP status code: 42".into()),
            (
                json!([{"service": "http_status:abc"}]),
                "invalid HTTP status code: strconv.Atoi: parsing \"abc\": invalid syntax".into(),
            ),
            (
                json!([{"hostname": "a.example.com", "service": "http://a:1", "originRequest": {"access": {"required": true, "audTag": ["x"]}}}, {"service": "http_status:404"}]),
                "access.TeamName cannot be blank when access.audTags are present".into(),
            ),
            (
                json!([{"hostname": "a.example.com", "service": "http://a:1", "originRequest": {"connectTimeout": "30s"}}, {"service": "http_status:404"}]),
                "ingress[0].originRequest.connectTimeout must be an integer number of seconds, not \"30s\"".into(),
            ),
        ];
        for (rules, message) in cases {
            assert_eq!(check(rules.clone()), Err(message), "{rules}");
        }
        let regex = check(
            json!([{"hostname": "a.example.com", "path": "*", "service": "http://a:1"}, {"service": "http_status:404"}]),
        );
        assert!(
            regex.as_ref().is_err_and(|e| e.starts_with("Rule #1 has an invalid regex: error parsing regexp: ")),
            "{regex:?}"
        );
    }

    #[test]
    fn split_host_port_follows_go() {
        for (hostport, ok) in [
            ("a:1", true),
            ("a:", true),
            ("[::1]:80", true),
            ("a", false),
            ("a:b:c", false),
            ("[::1]", false),
            ("", false),
        ] {
            assert_eq!(go_split_host_port_ok(hostport), ok, "{hostport}");
        }
    }
}
