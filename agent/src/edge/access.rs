//! Cloudflare Access at the local edge: reading the `"access"` part of the emulator's connector
//! answer (the account's self-hosted Access applications and their policies), finding the
//! application that covers a request, and deciding like Access would. Pure: no I/O.
//!
//! **Coverage.** An application's domain is `host` or `host/path`. The host matches the request's
//! host (port removed) case-insensitively; `*.zone` matches every subdomain of `zone` (not `zone`
//! itself), and another `*` in a host matches any run of characters. A path matches segment-wise:
//! `/admin` covers `/admin` and `/admin/x`, not `/administrator`; a `*` segment matches any one
//! segment; the request path is percent-decoded and its dot segments resolved first, and compared
//! case-insensitively (a covered path is never reached by spelling it differently). The most
//! specific application wins: more path segments, then an exact host over a wildcard one.
//!
//! **Evaluation.** Like Access: first the `bypass` and `non_identity` (Service Auth) policies in
//! precedence order, then `allow` and `deny` in precedence order; the first that matches decides.
//! A policy matches when one `include` rule, every `require` rule and no `exclude` rule matches.
//! Rules: `everyone`, `email.email` (case-insensitive), `email_domain.domain`, `ip.ip` (CIDR or
//! address), `service_token.token_id` (the request's `CF-Access-Client-Id`), and
//! `any_valid_service_token` (any `CF-Access-Client-Id` + `CF-Access-Client-Secret` pair). A rule
//! this edge cannot evaluate (`group`, `login_method`, `geo`, … or a malformed one) fails closed:
//! it never grants — it does not match in an `allow`/`bypass`/`non_identity` policy's include or
//! require, and does match in its exclude — and a `deny` policy's unknown rules count as matching.
//!
//! The identity of a request is the emulator's test device, the `Cf-Access-Test-Identity: <email>`
//! header ([`TEST_IDENTITY_HEADER`]) — not a Cloudflare header: offline there is no login page.
//! Without it, an application with an `allow` policy answers a redirect to the team's login page
//! (as Cloudflare does); with one that no policy allows, 403. An application without policies, or
//! whose policies cannot be read, refuses everyone (403).

use serde::Serialize;
use serde_json::Value;
use std::net::IpAddr;

/// The emulator's test device: the identity (an email) a request presents offline.
pub const TEST_IDENTITY_HEADER: &str = "cf-access-test-identity";
/// What an origin behind Access learns: the authenticated user's email (set by the edge only).
pub const AUTHENTICATED_EMAIL_HEADER: &str = "cf-access-authenticated-user-email";
/// A service token's client id…
pub const CLIENT_ID_HEADER: &str = "cf-access-client-id";
/// …and its secret.
pub const CLIENT_SECRET_HEADER: &str = "cf-access-client-secret";

/// Why the `"access"` part cannot be read at all (the previous view then stays).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error("the access part is not a JSON object")]
    NotAnObject,
    #[error("the access part has no \"apps\" list")]
    NoApps,
}

/// A policy's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Allow,
    Deny,
    Bypass,
    NonIdentity,
}

/// An IP range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// `10.0.0.0/8`, `2001:db8::/32`, or a single address.
    pub fn parse(text: &str) -> Option<Cidr> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix.parse::<u8>().ok()?)),
            None => (text, None),
        };
        let network: IpAddr = address.parse().ok()?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Cidr { network, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) if self.network.is_ipv4() => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            other => other,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// One Access rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    Everyone,
    Email(String),
    EmailDomain(String),
    Ip {
        ip: String,
        #[serde(skip)]
        cidr: Cidr,
    },
    ServiceToken(String),
    AnyValidServiceToken,
    /// A rule this edge cannot evaluate (its kind): fails closed.
    Unknown(String),
}

impl Rule {
    fn parse(value: &Value) -> Rule {
        let Some((kind, body)) = value.as_object().and_then(|o| if o.len() == 1 { o.iter().next() } else { None })
        else {
            return Rule::Unknown(value.to_string().chars().take(60).collect());
        };
        let field = |key: &str| body.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
        let parsed = match kind.as_str() {
            "everyone" => Some(Rule::Everyone),
            "any_valid_service_token" => Some(Rule::AnyValidServiceToken),
            "email" => field("email").map(|e| Rule::Email(e.to_ascii_lowercase())),
            "email_domain" => {
                field("domain").map(|d| Rule::EmailDomain(d.trim_start_matches('@').to_ascii_lowercase()))
            }
            "ip" => field("ip").and_then(|ip| Cidr::parse(ip).map(|cidr| Rule::Ip { ip: ip.to_string(), cidr })),
            "service_token" => field("token_id").map(|id| Rule::ServiceToken(id.to_string())),
            _ => None,
        };
        parsed.unwrap_or_else(|| Rule::Unknown(kind.clone()))
    }

    /// `None`: this edge cannot tell.
    fn matches(&self, visitor: &Visitor<'_>) -> Option<bool> {
        let email = visitor.identity.map(str::to_ascii_lowercase);
        Some(match self {
            Rule::Everyone => true,
            Rule::Email(wanted) => email.is_some_and(|e| &e == wanted),
            Rule::EmailDomain(domain) => {
                email.is_some_and(|e| e.rsplit_once('@').is_some_and(|(_, d)| d == domain.as_str()))
            }
            Rule::Ip { cidr, .. } => cidr.contains(visitor.ip),
            Rule::ServiceToken(token_id) => visitor.service_token.is_some_and(|(id, _)| id == token_id),
            Rule::AnyValidServiceToken => visitor.service_token.is_some(),
            Rule::Unknown(_) => return None,
        })
    }
}

/// One policy of an application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Policy {
    pub id: String,
    pub name: String,
    pub decision: Decision,
    pub precedence: i64,
    pub include: Vec<Rule>,
    pub exclude: Vec<Rule>,
    pub require: Vec<Rule>,
}

impl Policy {
    fn parse(value: &Value) -> Result<Policy, String> {
        let object = value.as_object().ok_or("a policy is not an object")?;
        let text = |key: &str| object.get(key).and_then(Value::as_str).unwrap_or("").to_string();
        let id = text("id");
        let decision = match text("decision").as_str() {
            "allow" => Decision::Allow,
            "deny" => Decision::Deny,
            "bypass" => Decision::Bypass,
            "non_identity" => Decision::NonIdentity,
            "unresolved" => return Err(format!("policy {id:?} could not be resolved")),
            other => return Err(format!("policy {id:?} has an unknown decision {other:?}")),
        };
        let rules = |key: &str| -> Vec<Rule> {
            object
                .get(key)
                .and_then(Value::as_array)
                .map(|rules| rules.iter().map(Rule::parse).collect())
                .unwrap_or_default()
        };
        Ok(Policy {
            name: text("name"),
            decision,
            precedence: object.get("precedence").and_then(Value::as_i64).unwrap_or(i64::MAX),
            include: rules("include"),
            exclude: rules("exclude"),
            require: rules("require"),
            id,
        })
    }

    /// One include, every require, no exclude — unknown rules resolved against granting.
    fn matches(&self, visitor: &Visitor<'_>) -> bool {
        let deny = self.decision == Decision::Deny;
        let rule = |rule: &Rule, unknown: bool| rule.matches(visitor).unwrap_or(unknown);
        self.include.iter().any(|r| rule(r, deny))
            && self.require.iter().all(|r| rule(r, deny))
            && !self.exclude.iter().any(|r| rule(r, !deny))
    }
}

/// The host part of a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Exact(String),
    /// `*.zone`: `.zone`, with its leading dot.
    Subdomains(String),
    /// Another pattern with `*` (any run of characters).
    Glob(String),
}

impl HostPattern {
    fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(exact) => exact == host,
            HostPattern::Subdomains(zone) => {
                host.strip_suffix(zone.as_str()).is_some_and(|prefix| !prefix.is_empty() && !prefix.ends_with('.'))
            }
            HostPattern::Glob(pattern) => glob(pattern, host),
        }
    }
}

/// `*` matches any run of characters (including none).
fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else { return pattern == text };
    let Some(mut rest) = text.strip_prefix(first) else { return false };
    let parts: Vec<&str> = parts.collect();
    for (index, part) in parts.iter().enumerate() {
        if index + 1 == parts.len() {
            return rest.len() >= part.len() && rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// One domain an application covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    /// As the emulator sent it.
    pub text: String,
    host: HostPattern,
    /// Lowercase segments; empty: the whole host.
    path: Vec<String>,
}

impl Domain {
    pub fn parse(text: &str) -> Option<Domain> {
        let trimmed = text.trim();
        let bare = trimmed.strip_prefix("https://").or_else(|| trimmed.strip_prefix("http://")).unwrap_or(trimmed);
        let (host, path) = match bare.find('/') {
            Some(at) => (&bare[..at], &bare[at..]),
            None => (bare, ""),
        };
        let host = normalize_host(host);
        if host.is_empty() || host.contains(['/', ' ', '?', '#']) {
            return None;
        }
        let pattern = match host.strip_prefix("*.") {
            Some(zone) if !zone.contains('*') && !zone.is_empty() => HostPattern::Subdomains(format!(".{zone}")),
            _ if host.contains('*') => HostPattern::Glob(host.clone()),
            _ => HostPattern::Exact(host.clone()),
        };
        let mut path = segments(path);
        // `host/*` and `host/a/*` cover everything below.
        if path.last().is_some_and(|s| s == "*") {
            path.pop();
        }
        Some(Domain { text: trimmed.to_string(), host: pattern, path })
    }

    fn covers(&self, host: &str, path: &[String]) -> bool {
        self.host.matches(host)
            && path.len() >= self.path.len()
            && self.path.iter().zip(path).all(|(wanted, got)| wanted == "*" || wanted == got)
    }

    /// Bigger is more specific.
    fn specificity(&self) -> (usize, u8, usize) {
        let host = match &self.host {
            HostPattern::Exact(host) => (2, host.len()),
            HostPattern::Subdomains(zone) => (1, zone.len()),
            HostPattern::Glob(pattern) => (1, pattern.len()),
        };
        (self.path.len(), host.0, host.1)
    }
}

/// Lowercase, no port, no trailing dot.
fn normalize_host(host: &str) -> String {
    let host = host.trim();
    let host = if host.starts_with('[') {
        // [v6]:port
        host.split_once(']').map_or(host, |(v6, _)| v6.trim_start_matches('['))
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        }
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// A path's segments: percent-decoded, lowercase, empty and `.` segments dropped, `..` applied.
fn segments(path: &str) -> Vec<String> {
    let path = path.split(['?', '#']).next().unwrap_or("");
    let decoded = percent_decode(path).to_lowercase();
    let mut out: Vec<String> = Vec::new();
    for segment in decoded.split(['/', '\\']) {
        match segment {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            other => out.push(other.to_string()),
        }
    }
    out
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = |at: usize| bytes.get(at).and_then(|b| char::from(*b).to_digit(16));
        match (bytes[index], hex(index + 1), hex(index + 2)) {
            (b'%', Some(high), Some(low)) => {
                out.push(u8::try_from(high * 16 + low).unwrap_or(b'?'));
                index += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A query value: everything but unreserved characters and `/` percent-encoded.
pub(crate) fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// One self-hosted Access application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    pub id: String,
    pub aud: String,
    pub name: String,
    pub domains: Vec<Domain>,
    /// By evaluation order within each pass (precedence); `Err`: why they cannot be read (the
    /// application then refuses everyone).
    pub policies: Result<Vec<Policy>, String>,
}

impl App {
    fn parse(value: &Value) -> Result<App, String> {
        let object = value.as_object().ok_or("an application is not an object")?;
        let text = |key: &str| object.get(key).and_then(Value::as_str).unwrap_or("").to_string();
        let mut texts: Vec<String> = object
            .get("domains")
            .and_then(Value::as_array)
            .map(|all| all.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default();
        if texts.is_empty() {
            texts.push(text("domain"));
        }
        let mut domains = Vec::new();
        for domain in texts {
            match Domain::parse(&domain) {
                Some(parsed) => domains.push(parsed),
                None => {
                    return Err(format!("application {:?} has a domain this edge cannot read: {domain:?}", text("id")))
                }
            }
        }
        let policies = match object.get("policies") {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(all)) => all.iter().map(Policy::parse).collect::<Result<Vec<_>, _>>().map(|mut all| {
                all.sort_by_key(|p| p.precedence);
                all
            }),
            Some(_) => Err("policies is not a list".to_string()),
        };
        let name = Some(text("name"))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| domains.first().map(|d| d.text.clone()).unwrap_or_default());
        Ok(App { id: text("id"), aud: text("aud"), name, domains, policies })
    }

    fn specificity(&self, host: &str, path: &[String]) -> Option<(usize, u8, usize)> {
        self.domains.iter().filter(|d| d.covers(host, path)).map(Domain::specificity).max()
    }
}

/// Who is asking.
#[derive(Debug, Clone, Copy)]
pub struct Visitor<'a> {
    /// The test device's email ([`TEST_IDENTITY_HEADER`]).
    pub identity: Option<&'a str>,
    /// `CF-Access-Client-Id` and `CF-Access-Client-Secret`, both non-empty.
    pub service_token: Option<(&'a str, &'a str)>,
    pub ip: IpAddr,
}

/// What Access decides about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No application covers it: the ingress decides alone.
    Uncovered,
    /// Serve it; `email` is the identity the origin is told (none for a bypass or a service token).
    Serve { app: String, email: Option<String> },
    /// Send the browser to the login page (`Location`).
    Login { location: String },
    /// 403 with this text.
    Forbidden { reason: String },
}

/// The Access view of the account, as the edge enforces it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessView {
    pub auth_domain: String,
    /// The emulator's fingerprint of what it sent (`None`: nothing was sent).
    pub fingerprint: Option<String>,
    pub apps: Vec<App>,
}

/// What [`AccessView::parse`] could not use (logged; the rest applies).
pub type Problems = Vec<String>;

impl AccessView {
    /// Reads the `"access"` part. An application whose domain cannot be read is left out (it
    /// says nothing this edge could enforce); one whose policies cannot be read refuses everyone.
    pub fn parse(value: &Value) -> Result<(AccessView, Problems), AccessError> {
        let object = value.as_object().ok_or(AccessError::NotAnObject)?;
        let apps = object.get("apps").and_then(Value::as_array).ok_or(AccessError::NoApps)?;
        let mut problems = Vec::new();
        let mut parsed = Vec::new();
        for app in apps {
            match App::parse(app) {
                Ok(app) => {
                    if let Err(reason) = &app.policies {
                        problems.push(format!("application {:?}: {reason}; it refuses every request", app.name));
                    }
                    parsed.push(app);
                }
                Err(reason) => problems.push(reason),
            }
        }
        let text = |key: &str| object.get(key).and_then(Value::as_str).map(str::to_string);
        let auth_domain =
            text("auth_domain").filter(|d| !d.is_empty()).unwrap_or_else(|| "cloudflareaccess.com".into());
        Ok((AccessView { auth_domain, fingerprint: text("fingerprint"), apps: parsed }, problems))
    }

    /// The most specific application covering `host` and `path` (first listed on a tie).
    pub fn covering(&self, host: &str, path: &str) -> Option<&App> {
        let host = normalize_host(host);
        let path = segments(path);
        let mut best: Option<(&App, (usize, u8, usize))> = None;
        for app in &self.apps {
            if let Some(score) = app.specificity(&host, &path) {
                if best.is_none_or(|(_, top)| score > top) {
                    best = Some((app, score));
                }
            }
        }
        best.map(|(app, _)| app)
    }

    /// Decides about a request for `host` and `target` (path and query).
    pub fn evaluate(&self, host: &str, target: &str, visitor: &Visitor<'_>) -> Verdict {
        let path = target.split('?').next().unwrap_or("");
        let Some(app) = self.covering(host, path) else { return Verdict::Uncovered };
        let policies = match &app.policies {
            Ok(policies) => policies,
            Err(reason) => {
                return Verdict::Forbidden {
                    reason: format!(
                        "Forbidden: the Access policies of {} cannot be evaluated here ({reason})",
                        app.name
                    ),
                }
            }
        };
        let serve = |email: Option<&str>| Verdict::Serve { app: app.name.clone(), email: email.map(str::to_string) };
        let service = |p: &&Policy| matches!(p.decision, Decision::Bypass | Decision::NonIdentity);
        if policies.iter().filter(service).any(|p| p.matches(visitor)) {
            return serve(None);
        }
        for policy in policies.iter().filter(|p| !service(p)) {
            match (policy.decision, visitor.identity) {
                (Decision::Deny, identity) if policy.matches(visitor) => {
                    let who = identity.unwrap_or("this request");
                    return Verdict::Forbidden {
                        reason: format!(
                            "Forbidden: {who} is denied by the Access policy {:?} of {}",
                            policy.name, app.name
                        ),
                    };
                }
                (Decision::Allow, None) => return Verdict::Login { location: self.login_url(app, host, target) },
                (Decision::Allow, Some(email)) if policy.matches(visitor) => return serve(Some(email)),
                _ => {}
            }
        }
        let who = visitor.identity.unwrap_or("this request");
        Verdict::Forbidden { reason: format!("Forbidden: {who} is not allowed by the Access policies of {}", app.name) }
    }

    /// `https://<auth_domain>/cdn-cgi/access/login/<host>?kid=<aud>&redirect_url=<target>`.
    fn login_url(&self, app: &App, host: &str, target: &str) -> String {
        let target = if target.is_empty() { "/" } else { target };
        format!(
            "https://{}/cdn-cgi/access/login/{}?kid={}&redirect_url={}",
            self.auth_domain,
            normalize_host(host),
            percent_encode(&app.aud),
            percent_encode(target)
        )
    }

    /// What `/config` shows.
    pub fn summary(&self) -> Value {
        let apps: Vec<Value> = self
            .apps
            .iter()
            .map(|app| {
                let mut entry = serde_json::json!({
                    "id": app.id,
                    "aud": app.aud,
                    "name": app.name,
                    "domains": app.domains.iter().map(|d| d.text.clone()).collect::<Vec<_>>(),
                });
                if let Some(object) = entry.as_object_mut() {
                    match &app.policies {
                        Ok(policies) => {
                            object.insert("policies".into(), serde_json::to_value(policies).unwrap_or_default())
                        }
                        Err(reason) => object.insert("error".into(), Value::String(reason.clone())),
                    };
                }
                entry
            })
            .collect();
        serde_json::json!({"auth_domain": self.auth_domain, "fingerprint": self.fingerprint, "apps": apps})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn view(apps: Value) -> AccessView {
        match AccessView::parse(&json!({"auth_domain": "team.cloudflareaccess.com", "fingerprint": "f", "apps": apps}))
        {
            Ok((view, _)) => view,
            Err(error) => panic!("{error}"),
        }
    }

    fn app(id: &str, domain: &str, policies: Value) -> Value {
        json!({"id": id, "aud": format!("aud-{id}"), "name": id, "domain": domain, "policies": policies})
    }

    fn visitor<'a>(identity: Option<&'a str>, token: Option<(&'a str, &'a str)>, ip: &str) -> Visitor<'a> {
        Visitor { identity, service_token: token, ip: ip.parse().unwrap_or(IpAddr::from([127, 0, 0, 1])) }
    }

    #[test]
    fn cidrs() {
        let cases = [
            ("10.0.0.0/8", "10.1.2.3", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("192.0.2.7", "192.0.2.7", true),
            ("192.0.2.7", "192.0.2.8", false),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("10.0.0.0/8", "::ffff:10.0.0.1", true),
            ("2001:db8::/32", "2001:db8::1", true),
            ("2001:db8::/32", "2001:db9::1", false),
            ("2001:db8::/32", "10.0.0.1", false),
        ];
        for (cidr, ip, expected) in cases {
            let parsed = Cidr::parse(cidr).unwrap_or_else(|| panic!("{cidr}"));
            let ip: IpAddr = ip.parse().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(parsed.contains(ip), expected, "{cidr} ∋ {ip}");
        }
        for bad in ["10.0.0.0/33", "x", "10.0.0.0/", "::/129"] {
            assert_eq!(Cidr::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn coverage_and_specificity() {
        let view = view(json!([
            app("wild", "*.example.com", json!([])),
            app("bare", "app.example.com", json!([])),
            app("admin", "app.example.com/admin", json!([])),
            app("deep", "APP.example.com/admin/secret/", json!([])),
            app("glob", "shop-*.example.org", json!([])),
            app("wildpath", "*.example.net/api/*", json!([])),
        ]));
        // (host, path, expected app)
        let cases = [
            ("app.example.com", "/", Some("bare")),
            ("APP.Example.COM:8080", "/x", Some("bare")),
            ("app.example.com.", "/x", Some("bare")),
            ("app.example.com", "/admin", Some("admin")),
            ("app.example.com", "/admin/", Some("admin")),
            ("app.example.com", "/admin/users", Some("admin")),
            ("app.example.com", "/Admin/users", Some("admin")),
            ("app.example.com", "/%61dmin", Some("admin")),
            ("app.example.com", "/public/../admin", Some("admin")),
            ("app.example.com", "//admin", Some("admin")),
            ("app.example.com", "/administrator", Some("bare")),
            ("app.example.com", "/admin/secret/x", Some("deep")),
            ("other.example.com", "/admin", Some("wild")),
            ("a.b.example.com", "/", Some("wild")),
            ("example.com", "/", None),
            ("notexample.com", "/", None),
            ("shop-1.example.org", "/", Some("glob")),
            ("shop.example.org", "/", None),
            ("x.example.net", "/api", Some("wildpath")),
            ("x.example.net", "/api/v1", Some("wildpath")),
            ("x.example.net", "/apiv1", None),
            ("", "/", None),
        ];
        for (host, path, expected) in cases {
            assert_eq!(view.covering(host, path).map(|a| a.id.as_str()), expected, "{host}{path}");
        }
    }

    #[test]
    fn domains_parse() {
        assert!(Domain::parse("").is_none());
        assert!(Domain::parse("/path").is_none());
        assert!(Domain::parse("https://app.example.com/x").is_some_and(|d| d.path == ["x"]));
        assert!(Domain::parse("app.example.com/*").is_some_and(|d| d.path.is_empty()));
        assert!(Domain::parse("app.example.com/a/*/b").is_some_and(|d| d.path == ["a", "*", "b"]));
    }

    #[test]
    fn evaluation() {
        let staff = json!({"id": "p1", "name": "staff", "decision": "allow", "precedence": 2,
            "include": [{"email": {"email": "A@Example.com"}}, {"email_domain": {"domain": "staff.test"}}],
            "exclude": [{"email": {"email": "fired@staff.test"}}], "require": []});
        let block = json!({"id": "p0", "name": "block", "decision": "deny", "precedence": 1,
            "include": [{"ip": {"ip": "198.51.100.0/24"}}]});
        let office = json!({"id": "p3", "name": "office", "decision": "bypass", "precedence": 3,
            "include": [{"ip": {"ip": "192.0.2.0/24"}}]});
        let robots = json!({"id": "p4", "name": "robots", "decision": "non_identity", "precedence": 4,
            "include": [{"service_token": {"token_id": "tok-1"}}]});
        let view = view(json!([
            app("app", "app.example.com", json!([staff, block, office, robots])),
            app("public", "public.example.com", json!([{"decision": "bypass", "include": [{"everyone": {}}]}])),
            app("closed", "closed.example.com", json!([])),
            app("broken", "broken.example.com", json!([{"id": "x", "decision": "unresolved"}])),
            app(
                "strict",
                "strict.example.com",
                json!([{"decision": "allow", "include": [{"everyone": {}}],
                "require": [{"email_domain": {"domain": "example.com"}}, {"login_method": {"id": "otp"}}]}])
            ),
            app(
                "groups",
                "groups.example.com",
                json!([
                {"decision": "deny", "include": [{"group": {"id": "g"}}]},
                {"decision": "allow", "include": [{"everyone": {}}]}])
            ),
            app(
                "tokens",
                "tokens.example.com",
                json!([{"decision": "non_identity", "include": [{"any_valid_service_token": {}}]}])
            ),
            app(
                "excl",
                "excl.example.com",
                json!([{"decision": "allow", "include": [{"everyone": {}}],
                "exclude": [{"geo": {"country_code": "XX"}}]}])
            ),
        ]));
        let serve =
            |app: &str, email: Option<&str>| Verdict::Serve { app: app.into(), email: email.map(str::to_string) };
        let login = "https://team.cloudflareaccess.com/cdn-cgi/access/login/app.example.com?kid=aud-app&redirect_url=/x%3Fy%3D1";
        let forbidden = |text: &str| Verdict::Forbidden { reason: text.into() };
        // (host, visitor, expected)
        let cases = [
            ("app.example.com", visitor(None, None, "127.0.0.1"), Verdict::Login { location: login.into() }),
            ("app.example.com", visitor(Some("a@example.com"), None, "127.0.0.1"), serve("app", Some("a@example.com"))),
            (
                "app.example.com",
                visitor(Some("bob@STAFF.test"), None, "127.0.0.1"),
                serve("app", Some("bob@STAFF.test")),
            ),
            (
                "app.example.com",
                visitor(Some("fired@staff.test"), None, "127.0.0.1"),
                forbidden("Forbidden: fired@staff.test is not allowed by the Access policies of app"),
            ),
            (
                "app.example.com",
                visitor(Some("b@example.com"), None, "127.0.0.1"),
                forbidden("Forbidden: b@example.com is not allowed by the Access policies of app"),
            ),
            (
                "app.example.com",
                visitor(Some("a@example.com"), None, "198.51.100.7"),
                forbidden("Forbidden: a@example.com is denied by the Access policy \"block\" of app"),
            ),
            ("app.example.com", visitor(None, None, "192.0.2.1"), serve("app", None)),
            ("app.example.com", visitor(None, Some(("tok-1", "s")), "127.0.0.1"), serve("app", None)),
            (
                "app.example.com",
                visitor(None, Some(("tok-2", "s")), "127.0.0.1"),
                Verdict::Login { location: login.into() },
            ),
            ("public.example.com", visitor(None, None, "127.0.0.1"), serve("public", None)),
            (
                "closed.example.com",
                visitor(Some("a@example.com"), None, "127.0.0.1"),
                forbidden("Forbidden: a@example.com is not allowed by the Access policies of closed"),
            ),
            (
                "strict.example.com",
                visitor(Some("a@example.com"), None, "127.0.0.1"),
                forbidden("Forbidden: a@example.com is not allowed by the Access policies of strict"),
            ),
            (
                "groups.example.com",
                visitor(Some("a@example.com"), None, "127.0.0.1"),
                forbidden("Forbidden: a@example.com is denied by the Access policy \"\" of groups"),
            ),
            ("tokens.example.com", visitor(None, Some(("any", "s")), "127.0.0.1"), serve("tokens", None)),
            (
                "tokens.example.com",
                visitor(None, None, "127.0.0.1"),
                forbidden("Forbidden: this request is not allowed by the Access policies of tokens"),
            ),
            (
                "excl.example.com",
                visitor(Some("a@example.com"), None, "127.0.0.1"),
                forbidden("Forbidden: a@example.com is not allowed by the Access policies of excl"),
            ),
            ("elsewhere.example.com", visitor(None, None, "127.0.0.1"), Verdict::Uncovered),
        ];
        for (host, visitor, expected) in cases {
            assert_eq!(view.evaluate(host, "/x?y=1", &visitor), expected, "{host} {visitor:?}");
        }
        let broken = view.evaluate("broken.example.com", "/", &visitor(Some("a@example.com"), None, "127.0.0.1"));
        assert!(
            matches!(&broken, Verdict::Forbidden { reason } if reason.contains("cannot be evaluated")),
            "{broken:?}"
        );
    }

    #[test]
    fn unreadable_parts() {
        assert_eq!(AccessView::parse(&json!([])).err(), Some(AccessError::NotAnObject));
        assert_eq!(AccessView::parse(&json!({"apps": 1})).err(), Some(AccessError::NoApps));
        let (view, problems) = match AccessView::parse(&json!({"apps": [
            {"id": "nodomain", "policies": []},
            {"id": "badpolicies", "domain": "a.test", "policies": {"x": 1}},
            {"id": "ok", "domain": "b.test", "policies": [{"decision": "allow", "include": [{"everyone": {}}], "precedence": 1}]},
            7
        ]})) {
            Ok(parsed) => parsed,
            Err(error) => panic!("{error}"),
        };
        assert_eq!(view.apps.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(), ["badpolicies", "ok"]);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(view.apps[0].policies.is_err());
        assert_eq!(view.fingerprint, None);
        let summary = view.summary();
        assert_eq!(summary["apps"][1]["policies"][0]["decision"], "allow");
        assert_eq!(summary["apps"][1]["policies"][0]["include"], json!(["everyone"]));
        assert!(summary["apps"][0]["error"].is_string());
    }
}
