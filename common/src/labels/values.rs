//! Validation of single label values: hostnames, origin services, paths,
//! booleans, durations. Each check returns the normalised value or the
//! reason it is wrong, phrased for an operator.

/// A valid public hostname, lowercased, trailing dot removed. A leading
/// `*.` wildcard is allowed.
pub fn hostname(value: &str) -> Result<String, String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err("empty hostname".into());
    }
    if trimmed.contains("://") {
        return Err("a hostname, not a URL: drop the scheme".into());
    }
    if let Some(slash) = trimmed.find('/') {
        return Err(format!(
            "hostname must not contain a path ({:?}); put the path in the path label",
            &trimmed[slash..]
        ));
    }
    if trimmed.contains(':') {
        return Err("hostname must not contain a port".into());
    }
    let host = trimmed.trim_end_matches('.').to_ascii_lowercase();
    let bare = host.strip_prefix("*.").unwrap_or(&host);
    if host.len() > 253 {
        return Err("longer than 253 characters".into());
    }
    let labels: Vec<&str> = bare.split('.').collect();
    if labels.len() < 2 {
        return Err("needs at least two labels, like app.example.com".into());
    }
    for label in &labels {
        if label.is_empty() {
            return Err("has an empty label (two dots in a row?)".into());
        }
        if label.len() > 63 {
            return Err(format!("label {label:?} is longer than 63 characters"));
        }
        if label.contains('*') {
            return Err("a wildcard is only allowed as the whole first label (*.example.com)".into());
        }
        if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(format!("label {label:?} may only contain a-z, 0-9, '-' and '_'"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label {label:?} must not start or end with '-'"));
        }
    }
    Ok(host)
}

/// Which kind of origin a service is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceKind {
    Http,
    Tcp,
    HttpStatus,
    Bastion,
}

/// A valid origin service and its kind.
pub fn service(value: &str) -> Result<(String, ServiceKind), String> {
    let value = value.trim();
    if value.is_empty() {
        return Err("empty service".into());
    }
    if value == "bastion" {
        return Ok((value.into(), ServiceKind::Bastion));
    }
    if let Some(code) = value.strip_prefix("http_status:") {
        return match code.parse::<u16>() {
            Ok(code) if (100..=599).contains(&code) => Ok((value.into(), ServiceKind::HttpStatus)),
            _ => Err(format!("http_status needs a status code 100-599, got {code:?}")),
        };
    }
    let Some((scheme, rest)) = value.split_once("://") else {
        return Err(
            "expected http(s)://host[:port], tcp://, ssh:// or rdp://host:port, http_status:NNN or bastion".into()
        );
    };
    let scheme = scheme.to_ascii_lowercase();
    let kind = match scheme.as_str() {
        "http" | "https" => ServiceKind::Http,
        "tcp" | "ssh" | "rdp" => ServiceKind::Tcp,
        other => {
            return Err(format!(
                "unsupported scheme {other:?}; use http, https, tcp, ssh, rdp, http_status:NNN or bastion"
            ))
        }
    };
    let authority = rest.trim_end_matches('/');
    if authority.contains('/') || authority.contains('?') || authority.contains('#') {
        return Err("service must not contain a path or query; put the path in the path label".into());
    }
    let (host, port) = split_host_port(authority)?;
    if host.is_empty() {
        return Err("service has no host".into());
    }
    let host_ok = host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
        || host.parse::<std::net::IpAddr>().is_ok();
    if !host_ok {
        return Err(format!("service host {host:?} is not a host name or IP address"));
    }
    match (kind, port) {
        (ServiceKind::Tcp, None) => return Err(format!("{scheme}:// needs a port (host:port)")),
        (_, Some(port)) if port.parse::<u16>().map(|p| p == 0).unwrap_or(true) => {
            return Err(format!("port {port:?} is not 1-65535"))
        }
        _ => {}
    }
    let normalised = match port {
        Some(port) => format!("{scheme}://{}:{port}", bracket(host)),
        None => format!("{scheme}://{}", bracket(host)),
    };
    Ok((normalised, kind))
}

/// The host a normalised URL-form service (`http://web:80`, `tcp://db:5432`) connects to; `None`
/// for `http_status:NNN`, `bastion` and anything that is not `scheme://host[:port]`.
pub fn service_host(service: &str) -> Option<&str> {
    let (_, rest) = service.split_once("://")?;
    let authority = rest.trim_end_matches('/');
    split_host_port(authority).ok().map(|(host, _)| host).filter(|host| !host.is_empty())
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("unclosed '[' in service")?;
        return match after.strip_prefix(':') {
            Some(port) => Ok((host, Some(port))),
            None if after.is_empty() => Ok((host, None)),
            None => Err("unexpected text after ']' in service".into()),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Ok((host, Some(port))),
        None => Ok((authority, None)),
    }
}

/// A path match: a leading '/', no trailing '/'; "/" or "" matches everything ("").
/// cloudflared treats it as a regular expression, so it must compile.
pub fn path(value: &str) -> Result<String, String> {
    let trimmed = value.trim();
    if trimmed.is_empty() || trimmed == "/" {
        return Ok(String::new());
    }
    let with_slash =
        if trimmed.starts_with('/') || trimmed.starts_with('^') { trimmed.to_string() } else { format!("/{trimmed}") };
    let normalised = with_slash.trim_end_matches('/').to_string();
    regex::Regex::new(&normalised).map_err(|e| format!("not a valid regular expression: {e}"))?;
    Ok(normalised)
}

/// DockFlare's booleans: true/1/t/yes and false/0/f/no, any case.
pub fn boolean(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "t" | "yes" | "y" | "on" => Ok(true),
        "false" | "0" | "f" | "no" | "n" | "off" => Ok(false),
        _ => Err("not a boolean (use true or false)".into()),
    }
}

/// What an origin timeout may be, said in every refusal of one.
const WHOLE_SECONDS: &str =
    "origin timeouts are whole seconds, like 30s, 1m30s or 2h (Cloudflare's API takes integer seconds)";

/// An origin timeout: a Go duration ("30s", "1m30s", "2h") of whole seconds, at least one.
/// Cloudflare's API takes these timeouts as integer seconds, so a duration that is not a whole
/// number of seconds ("500ms", "1.5s") is refused rather than rounded. Returns the text as given.
pub fn duration(value: &str) -> Result<String, String> {
    duration_seconds(value).map(|_| value.trim().to_string())
}

/// The whole seconds of an origin timeout (see [`duration`]): "1m30s" → 90.
pub fn duration_seconds(value: &str) -> Result<u64, String> {
    let text = value.trim();
    let nanos = go_duration_nanos(text).ok_or_else(|| format!("not a duration: {text:?}; {WHOLE_SECONDS}"))?;
    if nanos % NANOS_PER_SECOND != 0 {
        return Err(format!("{text:?} is not a whole number of seconds; {WHOLE_SECONDS}"));
    }
    match u64::try_from(nanos / NANOS_PER_SECOND) {
        Ok(0) => Err(format!("{text:?} is shorter than a second; {WHOLE_SECONDS}")),
        Ok(seconds) => Ok(seconds),
        Err(_) => Err(format!("{text:?} is too long")),
    }
}

const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// A Go duration ("1m30s", "1.5h", "500ms") in nanoseconds, exactly; `None` when it is not one
/// or is not a whole number of nanoseconds.
pub(crate) fn go_duration_nanos(text: &str) -> Option<u128> {
    const UNITS: [(&str, u128); 7] = [
        ("ns", 1),
        ("us", 1_000),
        ("µs", 1_000),
        ("ms", 1_000_000),
        ("s", NANOS_PER_SECOND),
        ("m", 60 * NANOS_PER_SECOND),
        ("h", 3600 * NANOS_PER_SECOND),
    ];
    if text.is_empty() || text.len() > 64 {
        return None;
    }
    let mut total: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (number, after) = rest.split_at(digits);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() || !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let (unit, factor) =
            UNITS.iter().filter(|(unit, _)| after.starts_with(unit)).max_by_key(|(unit, _)| unit.len())?;
        let scale = 10u128.checked_pow(u32::try_from(fraction.len()).ok()?)?;
        let whole: u128 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
        let fraction: u128 = if fraction.is_empty() { 0 } else { fraction.parse().ok()? };
        let scaled = whole.checked_mul(scale)?.checked_add(fraction)?.checked_mul(*factor)?;
        if scaled % scale != 0 {
            return None;
        }
        total = total.checked_add(scaled / scale)?;
        rest = &after[unit.len()..];
    }
    Some(total)
}

/// A count (non-negative integer).
pub fn count(value: &str) -> Result<u32, String> {
    value.trim().parse::<u32>().map_err(|_| "not a non-negative integer".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_of_a_service() {
        assert_eq!(service_host("http://web:80"), Some("web"));
        assert_eq!(service_host("https://web"), Some("web"));
        assert_eq!(service_host("tcp://[::1]:22"), Some("::1"));
        assert_eq!(service_host("http_status:404"), None);
        assert_eq!(service_host("bastion"), None);
    }

    #[test]
    fn hostnames() {
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("App.Example.com.", Ok("app.example.com")),
            ("*.example.com", Ok("*.example.com")),
            ("my_host.example.com", Ok("my_host.example.com")),
            ("example.com/api", Err("hostname must not contain a path (\"/api\"); put the path in the path label")),
            ("https://example.com", Err("a hostname, not a URL: drop the scheme")),
            ("example.com:8080", Err("hostname must not contain a port")),
            ("localhost", Err("needs at least two labels, like app.example.com")),
            ("a..example.com", Err("has an empty label (two dots in a row?)")),
            ("a.*.example.com", Err("a wildcard is only allowed as the whole first label (*.example.com)")),
            ("-a.example.com", Err("label \"-a\" must not start or end with '-'")),
            ("ex ample.com", Err("label \"ex ample\" may only contain a-z, 0-9, '-' and '_'")),
            ("", Err("empty hostname")),
        ];
        for (input, expected) in cases {
            assert_eq!(hostname(input).as_deref(), expected.map_err(str::to_string).as_deref(), "{input}");
        }
    }

    #[test]
    fn services() {
        let ok: &[(&str, &str, ServiceKind)] = &[
            ("http://web:80", "http://web:80", ServiceKind::Http),
            ("HTTPS://web", "https://web", ServiceKind::Http),
            ("http://my_app:8080/", "http://my_app:8080", ServiceKind::Http),
            ("tcp://db:5432", "tcp://db:5432", ServiceKind::Tcp),
            ("ssh://host:22", "ssh://host:22", ServiceKind::Tcp),
            ("rdp://10.0.0.5:3389", "rdp://10.0.0.5:3389", ServiceKind::Tcp),
            ("http://[::1]:8080", "http://[::1]:8080", ServiceKind::Http),
            ("http_status:404", "http_status:404", ServiceKind::HttpStatus),
            ("bastion", "bastion", ServiceKind::Bastion),
        ];
        for (input, normalised, kind) in ok {
            assert_eq!(service(input), Ok((normalised.to_string(), *kind)), "{input}");
        }
        let bad: &[(&str, &str)] = &[
            ("web:80", "expected http(s)://host[:port]"),
            ("unix:/tmp/sock", "expected http(s)://host[:port]"),
            ("hello_world", "expected http(s)://host[:port]"),
            ("udp://dns:53", "unsupported scheme \"udp\""),
            ("tcp://db", "tcp:// needs a port"),
            ("http://web:0", "port \"0\" is not 1-65535"),
            ("http://web:http", "port \"http\" is not 1-65535"),
            ("http://web:80/api", "service must not contain a path"),
            ("http_status:999", "http_status needs a status code 100-599"),
            ("http://", "service has no host"),
        ];
        for (input, reason) in bad {
            let got = service(input).err().unwrap_or_default();
            assert!(got.starts_with(reason), "{input}: {got}");
        }
    }

    #[test]
    fn paths_booleans_durations() {
        assert_eq!(path("api/"), Ok("/api".into()));
        assert_eq!(path("/"), Ok(String::new()));
        assert_eq!(path("^/v[0-9]+"), Ok("^/v[0-9]+".into()));
        assert!(path("/a(").err().unwrap_or_default().starts_with("not a valid regular expression"));
        for yes in ["true", "1", "T", "YES", "t"] {
            assert_eq!(boolean(yes), Ok(true), "{yes}");
        }
        for no in ["false", "0", "no", "F"] {
            assert_eq!(boolean(no), Ok(false), "{no}");
        }
        assert!(boolean("maybe").is_err());
        for (good, seconds) in
            [("30s", 30), ("1m30s", 90), ("1.5h", 5400), ("1.1h", 3960), ("2h0m5s", 7205), ("2000ms", 2)]
        {
            assert_eq!(duration_seconds(good), Ok(seconds), "{good}");
            assert_eq!(duration(good), Ok(good.to_string()), "{good}");
        }
        for bad in ["30", "s", "1x", "", "1m 30s", ".s", "1..5s"] {
            let reason = duration(bad).err().unwrap_or_default();
            assert!(reason.starts_with("not a duration: "), "{bad}: {reason}");
        }
        // Under a second, or not whole seconds: refused (Cloudflare takes integer seconds), never
        // rounded; the reason says what is allowed.
        for (bad, problem) in [
            ("500ms", "is not a whole number of seconds"),
            ("1.5s", "is not a whole number of seconds"),
            ("1500ms", "is not a whole number of seconds"),
            ("10us", "is not a whole number of seconds"),
            ("0s", "is shorter than a second"),
        ] {
            let reason = duration(bad).err().unwrap_or_default();
            assert_eq!(
                reason,
                format!("{bad:?} {problem}; origin timeouts are whole seconds, like 30s, 1m30s or 2h (Cloudflare's API takes integer seconds)"),
            );
        }
    }
}
