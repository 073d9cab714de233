//! Table tests of label parsing: every form, every diagnostic text.

use super::*;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn route(hostname: &str, service: &str) -> RouteSpec {
    RouteSpec {
        index: None,
        hostname: hostname.into(),
        path: String::new(),
        service: service.into(),
        zone_name: None,
        origin: OriginOptions::default(),
        access: BTreeMap::new(),
    }
}

fn protected(mut route: RouteSpec, access: &[(&str, &str)]) -> RouteSpec {
    route.access = access
        .iter()
        .map(|(label, value)| {
            let key = label.rsplit_once("access.").map(|(_, key)| key).unwrap_or_default();
            (key.to_string(), access::AccessLabel { label: label.to_string(), value: value.to_string() })
        })
        .collect();
    route
}

fn diag(label: &str, value: &str, reason: &str) -> Diagnostic {
    Diagnostic { label: label.into(), value: value.into(), reason: reason.into() }
}

fn check(
    name: &str,
    input: &[(&str, &str)],
    custom: Option<&str>,
    routes: Vec<RouteSpec>,
    diagnostics: Vec<Diagnostic>,
) {
    let parsed = parse("web", &labels(input), &LabelPrefixes::new(custom));
    assert_eq!(parsed.routes, routes, "{name}: routes");
    assert_eq!(parsed.diagnostics, diagnostics, "{name}: diagnostics");
}

#[test]
fn valid_forms() {
    check(
        "base pair",
        &[
            ("dockflare.enable", "true"),
            ("dockflare.hostname", "App.Example.com"),
            ("dockflare.service", "http://web:80"),
        ],
        None,
        vec![route("app.example.com", "http://web:80")],
        vec![],
    );
    check(
        "legacy prefix",
        &[
            ("cloudflare.tunnel.enable", "yes"),
            ("cloudflare.tunnel.hostname", "a.example.com"),
            ("cloudflare.tunnel.service", "https://web"),
        ],
        None,
        vec![route("a.example.com", "https://web")],
        vec![],
    );
    check(
        "custom prefix, mixed with the standard ones",
        &[("acme.enable", "1"), ("acme.hostname", "a.example.com"), ("dockflare.service", "http://web:8080")],
        Some("acme"),
        vec![route("a.example.com", "http://web:8080")],
        vec![],
    );
    check(
        "seed form: domain + port",
        &[("dockflare.enable", "true"), ("dockflare.domain", "app.example.com"), ("dockflare.port", "3000")],
        None,
        vec![route("app.example.com", "http://web:3000")],
        vec![],
    );
    let mut api = route("api.example.com", "http://web:80");
    api.index = Some(0);
    api.path = "/v1".into();
    let mut ssh = route("ssh.example.com", "ssh://web:22");
    ssh.index = Some(1);
    check(
        "indexed, falling back to base labels",
        &[
            ("dockflare.enable", "true"),
            ("dockflare.service", "http://web:80"),
            ("dockflare.0.hostname", "api.example.com"),
            ("dockflare.0.path", "v1/"),
            ("dockflare.1.hostname", "ssh.example.com"),
            ("dockflare.1.service", "ssh://web:22"),
        ],
        None,
        vec![api, ssh],
        vec![],
    );
    let mut wildcard = route("*.example.com", "http://web:80");
    wildcard.zone_name = Some("example.com".into());
    wildcard.origin.no_tls_verify = Some(true);
    wildcard.origin.http_host_header = Some("internal".into());
    wildcard.origin.connect_timeout = Some("10s".into());
    check(
        "wildcard, zone and origin options",
        &[
            ("dockflare.enable", "T"),
            ("dockflare.hostname", "*.example.com"),
            ("dockflare.service", "http://web:80"),
            ("dockflare.zonename", "example.com"),
            ("dockflare.no_tls_verify", "yes"),
            ("dockflare.httpHostHeader", "internal"),
            ("dockflare.connect_timeout", "10s"),
        ],
        None,
        vec![wildcard],
        vec![],
    );
    check("not a DockFlare container", &[("com.example.x", "1")], None, vec![], vec![]);
    check(
        "explicitly disabled",
        &[("dockflare.enable", "false"), ("dockflare.hostname", "a.example.com")],
        None,
        vec![],
        vec![],
    );
}

#[test]
fn every_mistake_is_diagnosed() {
    check(
        "typo in enable",
        &[
            ("dockflare.enabled", "true"),
            ("dockflare.hostname", "a.example.com"),
            ("dockflare.service", "http://web:80"),
        ],
        None,
        vec![],
        vec![
            diag("dockflare.enabled", "true", "unknown key \"enabled\" (did you mean \"enable\"?)"),
            diag("dockflare.hostname", "a.example.com", "has no effect: dockflare.enable is not set to true"),
        ],
    );
    check(
        "typo in hostname",
        &[("dockflare.enable", "true"), ("dockflare.hostnme", "a.example.com"), ("dockflare.service", "http://web:80")],
        None,
        vec![],
        vec![diag("dockflare.hostnme", "a.example.com", "unknown key \"hostnme\" (did you mean \"hostname\"?)")],
    );
    check(
        "case matters for httpHostHeader",
        &[
            ("dockflare.enable", "true"),
            ("dockflare.hostname", "a.example.com"),
            ("dockflare.service", "http://web:80"),
            ("dockflare.httphostheader", "x"),
        ],
        None,
        vec![route("a.example.com", "http://web:80")],
        vec![diag(
            "dockflare.httphostheader",
            "x",
            "unknown key \"httphostheader\" (did you mean \"httpHostHeader\"?)",
        )],
    );
    check(
        "unknown key with no near match",
        &[
            ("dockflare.enable", "true"),
            ("dockflare.hostname", "a.example.com"),
            ("dockflare.service", "http://web:80"),
            ("dockflare.colour", "red"),
        ],
        None,
        vec![route("a.example.com", "http://web:80")],
        vec![diag("dockflare.colour", "red", "unknown key \"colour\"")],
    );
    let mut good = route("good.example.com", "http://web:80");
    good.index = Some(1);
    check(
        "a hostname with a path; the other route still works",
        &[
            ("dockflare.enable", "true"),
            ("dockflare.service", "http://web:80"),
            ("dockflare.0.hostname", "bad.example.com/api"),
            ("dockflare.1.hostname", "good.example.com"),
        ],
        None,
        vec![good],
        vec![diag(
            "dockflare.0.hostname",
            "bad.example.com/api",
            "hostname must not contain a path (\"/api\"); put the path in the path label",
        )],
    );
    let mut first = route("a.example.com", "http://web:80");
    first.index = Some(0);
    check(
        "a gap in indexes",
        &[
            ("dockflare.enable", "true"),
            ("dockflare.service", "http://web:80"),
            ("dockflare.0.hostname", "a.example.com"),
            ("dockflare.2.hostname", "c.example.com"),
        ],
        None,
        vec![first],
        vec![diag(
            "dockflare.2.hostname",
            "c.example.com",
            "ignored: indexes must run 0, 1, 2… without gaps, and index 1 has no hostname",
        )],
    );
    check(
        "indexed key without its hostname",
        &[("dockflare.enable", "true"), ("dockflare.0.service", "http://web:80")],
        None,
        vec![],
        vec![diag("dockflare.0.service", "http://web:80", "ignored: dockflare.0.hostname is missing")],
    );
    check(
        "unknown indexed key",
        &[("dockflare.enable", "true"), ("dockflare.0.hostnam", "a.example.com")],
        None,
        vec![],
        vec![
            diag("dockflare.0.hostnam", "a.example.com", "unknown key \"hostnam\" (did you mean \"hostname\"?)"),
            diag("dockflare.0.hostnam", "a.example.com", "ignored: dockflare.0.hostname is missing"),
        ],
    );
    check(
        "invalid service",
        &[("dockflare.enable", "true"), ("dockflare.hostname", "a.example.com"), ("dockflare.service", "web:80")],
        None,
        vec![],
        vec![diag(
            "dockflare.service",
            "web:80",
            "expected http(s)://host[:port], tcp://, ssh:// or rdp://host:port, http_status:NNN or bastion",
        )],
    );
    check(
        "missing service",
        &[("dockflare.enable", "true"), ("dockflare.hostname", "a.example.com")],
        None,
        vec![],
        vec![diag("dockflare.hostname", "a.example.com", "no service: set dockflare.service")],
    );
    check(
        "enable is not a boolean",
        &[("dockflare.enable", "maybe"), ("dockflare.hostname", "a.example.com")],
        None,
        vec![],
        vec![diag("dockflare.enable", "maybe", "not a boolean (use true or false); the container is not enabled")],
    );
    check(
        "enabled without any hostname",
        &[("dockflare.enable", "true")],
        None,
        vec![],
        vec![diag("dockflare.enable", "true", "enabled, but no hostname label is set")],
    );
    check(
        "hostname outside its zone",
        &[
            ("dockflare.enable", "true"),
            ("dockflare.hostname", "a.example.com"),
            ("dockflare.service", "http://web:80"),
            ("dockflare.zonename", "other.org"),
        ],
        None,
        vec![],
        vec![diag("dockflare.zonename", "other.org", "hostname a.example.com is not in zone other.org")],
    );
    let mut status = route("gone.example.com", "http_status:410");
    status.origin = OriginOptions::default();
    check(
        "origin option on a status service",
        &[
            ("dockflare.enable", "true"),
            ("dockflare.hostname", "gone.example.com"),
            ("dockflare.service", "http_status:410"),
            ("dockflare.no_tls_verify", "true"),
        ],
        None,
        vec![status],
        vec![diag(
            "dockflare.no_tls_verify",
            "true",
            "ignored: this origin option does not apply to this kind of service",
        )],
    );
    check(
        "invalid option value keeps the route",
        &[
            ("dockflare.enable", "true"),
            ("dockflare.hostname", "a.example.com"),
            ("dockflare.service", "http://web:80"),
            ("dockflare.connect_timeout", "30"),
        ],
        None,
        vec![route("a.example.com", "http://web:80")],
        vec![diag(
            "dockflare.connect_timeout",
            "30",
            "not a duration: \"30\"; origin timeouts are whole seconds, like 30s, 1m30s or 2h (Cloudflare's API \
             takes integer seconds); option ignored",
        )],
    );
    check(
        "a timeout under a second is a diagnostic, not rounded up",
        &[
            ("dockflare.enable", "true"),
            ("dockflare.hostname", "a.example.com"),
            ("dockflare.service", "http://web:80"),
            ("dockflare.connect_timeout", "500ms"),
        ],
        None,
        vec![route("a.example.com", "http://web:80")],
        vec![diag(
            "dockflare.connect_timeout",
            "500ms",
            "\"500ms\" is not a whole number of seconds; origin timeouts are whole seconds, like 30s, 1m30s or \
             2h (Cloudflare's API takes integer seconds); option ignored",
        )],
    );
    check(
        "shadowed legacy label",
        &[
            ("dockflare.enable", "true"),
            ("dockflare.hostname", "a.example.com"),
            ("cloudflare.tunnel.hostname", "old.example.com"),
            ("dockflare.service", "http://web:80"),
        ],
        None,
        vec![route("a.example.com", "http://web:80")],
        vec![diag("cloudflare.tunnel.hostname", "old.example.com", "ignored: dockflare.hostname takes precedence")],
    );
    let mut dup = route("a.example.com", "http://web:80");
    dup.index = Some(0);
    check(
        "duplicate hostname and path",
        &[
            ("dockflare.enable", "true"),
            ("dockflare.service", "http://web:80"),
            ("dockflare.hostname", "a.example.com"),
            ("dockflare.0.hostname", "a.example.com"),
        ],
        None,
        vec![route("a.example.com", "http://web:80")],
        vec![diag(
            "dockflare.0.hostname",
            "a.example.com",
            "duplicate route for a.example.com: only the first applies",
        )],
    );
    check(
        "access labels are carried by the route they protect",
        &[
            ("dockflare.enable", "true"),
            ("dockflare.hostname", "a.example.com"),
            ("dockflare.service", "http://web:80"),
            ("dockflare.access.policy", "authenticate"),
        ],
        None,
        vec![protected(route("a.example.com", "http://web:80"), &[("dockflare.access.policy", "authenticate")])],
        vec![],
    );
    let mut indexed = route("b.example.com", "http://web:80");
    indexed.index = Some(0);
    check(
        "indexed access labels protect their route; base ones every route (indexed keys fall back)",
        &[
            ("dockflare.enable", "true"),
            ("dockflare.service", "http://web:80"),
            ("dockflare.0.hostname", "b.example.com"),
            ("dockflare.0.access.policy", "bypass"),
            ("dockflare.1.hostname", "c.example.com"),
        ],
        None,
        vec![protected(indexed.clone(), &[("dockflare.0.access.policy", "bypass")]), {
            let mut public = route("c.example.com", "http://web:80");
            public.index = Some(1);
            public
        }],
        vec![],
    );
    check(
        "a base access label (even a misspelt one, under the legacy prefix) covers the indexed routes",
        &[
            ("dockflare.enable", "true"),
            ("dockflare.service", "http://web:80"),
            ("dockflare.0.hostname", "b.example.com"),
            ("cloudflare.tunnel.access.polcy", "x"),
        ],
        None,
        vec![protected(indexed, &[("cloudflare.tunnel.access.polcy", "x")])],
        vec![diag(
            "cloudflare.tunnel.access.polcy",
            "x",
            "unknown Access key \"polcy\" (did you mean \"access.policy\"?); the route is not published until its \
             Access labels are right",
        )],
    );
    check(
        "seed form without a port",
        &[("dockflare.enable", "true"), ("dockflare.domain", "app.example.com")],
        None,
        vec![],
        vec![diag(
            "dockflare.domain",
            "app.example.com",
            "needs a port label (or a service label) to know where to route",
        )],
    );
}

#[test]
fn connectors_and_foreign_containers_are_recognised() {
    let prefixes = LabelPrefixes::default();
    assert!(is_managed_connector(&labels(&[("dockflare.managed", "true"), ("dockflare.type", "tunnel")])));
    assert!(!is_managed_connector(&labels(&[("dockflare.enable", "true")])));
    assert!(has_dockflare_labels(&labels(&[("dockflare.enabled", "true")]), &prefixes));
    assert!(!has_dockflare_labels(&labels(&[("traefik.enable", "true")]), &prefixes));
}
