//! What an agent's labels may route: allowed hostname patterns, whether
//! wildcard and apex hostnames may be claimed, and a route quota. Set when
//! the agent is admitted (carried by its join token), changed only by an
//! operator. Plain functions over values; the master screens claims with them.

/// Patterns one policy may hold at most.
pub const MAX_PATTERNS: usize = 64;

/// An agent's hostname policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostnamePolicy {
    /// "app.example.com" (that name) or "*.example.com" (any name below it). Empty: any name.
    pub allowed_hostnames: Vec<String>,
    /// Whether "*.…" hostnames may be routed.
    pub allow_wildcards: bool,
    /// Whether a zone's apex may be routed.
    pub allow_apex: bool,
    /// Routes at most; 0: the master's default.
    pub max_routes: u32,
}

/// A policy field that is not acceptable, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct PolicyError {
    pub field: String,
    pub reason: String,
}

impl HostnamePolicy {
    /// The policy with its patterns trimmed and lower-cased, or the first bad field.
    pub fn normalized(mut self) -> Result<HostnamePolicy, PolicyError> {
        if self.allowed_hostnames.len() > MAX_PATTERNS {
            return Err(PolicyError {
                field: "allowed_hostnames".into(),
                reason: format!("at most {MAX_PATTERNS} patterns"),
            });
        }
        for (index, pattern) in self.allowed_hostnames.iter_mut().enumerate() {
            *pattern = pattern.trim().trim_end_matches('.').to_ascii_lowercase();
            let name = pattern.strip_prefix("*.").unwrap_or(pattern);
            if let Err(reason) = check_name(name) {
                return Err(PolicyError { field: format!("allowed_hostnames[{index}]"), reason });
            }
        }
        self.allowed_hostnames.sort();
        self.allowed_hostnames.dedup();
        Ok(self)
    }

    /// The quota, with `default` for 0.
    pub fn quota(&self, default: u32) -> u32 {
        if self.max_routes == 0 {
            default
        } else {
            self.max_routes
        }
    }

    /// Why the policy does not let a route claim `hostname` (`None`: it does). The apex is
    /// checked where zones are known: [`HostnamePolicy::apex_refusal`].
    pub fn name_refusal(&self, hostname: &str) -> Option<String> {
        let hostname = hostname.trim_end_matches('.').to_ascii_lowercase();
        if hostname.starts_with("*.") && !self.allow_wildcards {
            return Some(format!(
                "refused by this agent's hostname policy: {hostname} is a wildcard (it would catch every name \
                 without a route of its own), and wildcards are not allowed for this agent (allow_wildcards)"
            ));
        }
        if self.allowed_hostnames.is_empty() || self.allowed_hostnames.iter().any(|p| covers(p, &hostname)) {
            return None;
        }
        Some(format!(
            "refused by this agent's hostname policy: {hostname} is outside its allowed hostnames ({})",
            self.allowed_hostnames.join(", ")
        ))
    }

    /// Why the policy refuses `hostname` when it is the apex of `zone`.
    pub fn apex_refusal(&self, hostname: &str, zone: &str) -> Option<String> {
        let is_apex = hostname.trim_end_matches('.').eq_ignore_ascii_case(zone.trim_end_matches('.'));
        (is_apex && !self.allow_apex).then(|| {
            format!(
                "refused by this agent's hostname policy: {hostname} is the apex of zone {zone}, and apex routes \
                 are not allowed for this agent (allow_apex)"
            )
        })
    }
}

/// Whether `pattern` allows `hostname` (both lower-case). A wildcard hostname is covered by a
/// pattern that covers every name it catches.
fn covers(pattern: &str, hostname: &str) -> bool {
    let below = |suffix: &str, name: &str| {
        name.len() > suffix.len() + 1 && name.ends_with(suffix) && {
            name.as_bytes()[name.len() - suffix.len() - 1] == b'.'
        }
    };
    match pattern.strip_prefix("*.") {
        None => pattern == hostname,
        Some(suffix) => match hostname.strip_prefix("*.") {
            Some(caught) => caught == suffix || below(suffix, caught),
            None => below(suffix, hostname),
        },
    }
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 253 {
        return Err("a hostname of 1 to 253 characters, optionally starting with \"*.\"".into());
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!("{name:?} is not a hostname (labels of a-z, 0-9 and '-', at most 63 each)"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(patterns: &[&str]) -> HostnamePolicy {
        HostnamePolicy { allowed_hostnames: patterns.iter().map(|p| p.to_string()).collect(), ..Default::default() }
            .normalized()
            .unwrap_or_default()
    }

    #[test]
    fn patterns_allow_exact_names_and_names_below_a_suffix() {
        let p = policy(&["*.Apps.Example.com", "portal.example.org."]);
        assert_eq!(p.allowed_hostnames, vec!["*.apps.example.com", "portal.example.org"]);
        for allowed in ["a.apps.example.com", "x.y.apps.example.com", "portal.example.org", "PORTAL.example.org"] {
            assert_eq!(p.name_refusal(allowed), None, "{allowed}");
        }
        for refused in ["apps.example.com", "evilapps.example.com", "example.com", "a.portal.example.org", "other.net"]
        {
            assert!(p.name_refusal(refused).is_some_and(|r| r.contains("outside its allowed hostnames")), "{refused}");
        }
        assert_eq!(policy(&[]).name_refusal("anything.example.net"), None, "no patterns: any name");
    }

    #[test]
    fn wildcards_and_apex_need_permission() {
        let strict = policy(&[]);
        assert!(strict.name_refusal("*.example.com").is_some_and(|r| r.contains("allow_wildcards")));
        assert!(strict.apex_refusal("example.com", "example.com").is_some_and(|r| r.contains("allow_apex")));
        assert_eq!(strict.apex_refusal("www.example.com", "example.com"), None);
        let open = HostnamePolicy { allow_wildcards: true, allow_apex: true, ..policy(&["*.example.com"]) };
        assert_eq!(open.name_refusal("*.example.com"), None);
        assert_eq!(open.name_refusal("*.a.example.com"), None);
        assert!(open.name_refusal("*.com").is_some(), "a wildcard wider than the pattern");
        assert_eq!(open.apex_refusal("example.com", "example.com"), None);
    }

    #[test]
    fn bad_patterns_name_the_field() {
        let bad = HostnamePolicy {
            allowed_hostnames: vec!["ok.example.com".into(), "no spaces".into()],
            ..Default::default()
        };
        assert_eq!(bad.normalized().unwrap_err().field, "allowed_hostnames[1]");
        let many = HostnamePolicy { allowed_hostnames: vec!["a.com".into(); MAX_PATTERNS + 1], ..Default::default() };
        assert_eq!(many.normalized().unwrap_err().field, "allowed_hostnames");
        assert_eq!(HostnamePolicy { max_routes: 0, ..Default::default() }.quota(200), 200);
        assert_eq!(HostnamePolicy { max_routes: 5, ..Default::default() }.quota(200), 5);
    }
}
