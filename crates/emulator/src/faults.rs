//! What the emulator saw and what it breaks on purpose: request counters per
//! (method, route template), a bounded request log, and fault rules that
//! answer 429 (with `retry-after` and code 971) or a 5xx instead of the
//! real handler. A rule with a seed rolls a seeded RNG, so a test sees the
//! same faults on every run.

use super::http::ApiError;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// The log keeps the newest entries only.
pub const REQUEST_LOG_CAPACITY: usize = 100_000;

/// One API request as served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestLogEntry {
    pub method: String,
    /// Relative to the base path, e.g. `/accounts/…/cfd_tunnel`.
    pub path: String,
    #[serde(default)]
    pub query: Option<String>,
    /// The route template (`/zones/{zone_id}/dns_records`), or `<unmatched>`.
    pub route: String,
    pub status: u16,
    /// Answered by an injected fault.
    #[serde(default)]
    pub faulted: bool,
}

/// Requests per method and route template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCount {
    pub method: String,
    pub route: String,
    pub count: u64,
}

/// `GET /__emulator/requests`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RequestReport {
    /// Sorted by route, then method.
    pub counts: Vec<RequestCount>,
    /// Oldest first.
    pub log: Vec<RequestLogEntry>,
}

impl RequestReport {
    pub fn count(&self, method: &str, route: &str) -> u64 {
        self.counts.iter().find(|c| c.method.eq_ignore_ascii_case(method) && c.route == route).map_or(0, |c| c.count)
    }
}

/// A fault rule. Requests that match every filter given are answered with
/// `status` with probability `probability`, at most `count` times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultSpec {
    /// 429, 500, 502 or 503.
    pub status: u16,
    /// 0.0 ..= 1.0; default 1.0.
    #[serde(default = "certain")]
    pub probability: f64,
    /// `retry-after` header value. A 429 always carries the header (1 s
    /// when unset); a 5xx only when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
    /// Only these methods (any case); empty or absent: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Only request paths (relative to the base path) containing this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_contains: Option<String>,
    /// Only this route template, e.g. `/accounts/{account_id}/cfd_tunnel`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// Fire at most this many times, then the rule is gone; absent: forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Seed of the rule's RNG; absent: entropy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

fn certain() -> f64 {
    1.0
}

impl Default for FaultSpec {
    /// Always 503, any request, forever.
    fn default() -> FaultSpec {
        FaultSpec {
            status: 503,
            probability: 1.0,
            retry_after_seconds: None,
            methods: Vec::new(),
            path_contains: None,
            route: None,
            count: None,
            seed: None,
        }
    }
}

impl FaultSpec {
    /// Answers `status` to every request until cleared.
    pub fn always(status: u16) -> FaultSpec {
        FaultSpec { status, ..FaultSpec::default() }
    }
}

pub(super) struct FaultRule {
    spec: FaultSpec,
    remaining: Option<u32>,
    rng: StdRng,
}

impl FaultRule {
    pub fn new(spec: FaultSpec) -> Result<FaultRule, String> {
        if ![429, 500, 502, 503].contains(&spec.status) {
            return Err(format!("status {} is not one of 429, 500, 502, 503", spec.status));
        }
        if !(0.0..=1.0).contains(&spec.probability) {
            return Err(format!("probability {} is not within 0..=1", spec.probability));
        }
        let rng = match spec.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        Ok(FaultRule { remaining: spec.count, spec, rng })
    }

    pub fn remaining_spec(&self) -> FaultSpec {
        FaultSpec { count: self.remaining, ..self.spec.clone() }
    }

    fn matches(&self, method: &str, path: &str, route: &str) -> bool {
        (self.spec.methods.is_empty() || self.spec.methods.iter().any(|m| m.eq_ignore_ascii_case(method)))
            && self.spec.path_contains.as_deref().is_none_or(|p| path.contains(p))
            && self.spec.route.as_deref().is_none_or(|r| r == route)
    }

    fn error(&self) -> ApiError {
        let (code, message) = match self.spec.status {
            429 => (971, "Please wait and consider throttling your request speed"),
            500 => (1500, "Internal Server Error"),
            502 => (1502, "Bad Gateway"),
            _ => (1503, "Service Unavailable"),
        };
        let retry_after = if self.spec.status == 429 {
            Some(self.spec.retry_after_seconds.unwrap_or(1))
        } else {
            self.spec.retry_after_seconds
        };
        ApiError::new(self.spec.status, code, message).with_retry_after(retry_after)
    }
}

#[derive(Default)]
pub(super) struct Traffic {
    counts: BTreeMap<(String, String), u64>,
    log: VecDeque<RequestLogEntry>,
    pub faults: Vec<FaultRule>,
}

impl Traffic {
    /// The fault answer for this request, if a rule fires.
    pub fn roll_fault(&mut self, method: &str, path: &str, route: &str) -> Option<ApiError> {
        let mut fired = None;
        for (index, rule) in self.faults.iter_mut().enumerate() {
            if rule.remaining == Some(0) || !rule.matches(method, path, route) {
                continue;
            }
            if rule.rng.random::<f64>() < rule.spec.probability {
                if let Some(remaining) = rule.remaining.as_mut() {
                    *remaining -= 1;
                }
                fired = Some((index, rule.error()));
                break;
            }
        }
        let (index, error) = fired?;
        if self.faults.get(index).is_some_and(|r| r.remaining == Some(0)) {
            self.faults.remove(index);
        }
        Some(error)
    }

    pub fn record(&mut self, entry: RequestLogEntry) {
        *self.counts.entry((entry.route.clone(), entry.method.clone())).or_default() += 1;
        if self.log.len() >= REQUEST_LOG_CAPACITY {
            self.log.pop_front();
        }
        self.log.push_back(entry);
    }

    pub fn count(&self, method: &str, route: &str) -> u64 {
        self.counts.get(&(route.to_string(), method.to_ascii_uppercase())).copied().unwrap_or(0)
    }

    pub fn report(&self) -> RequestReport {
        RequestReport {
            counts: self
                .counts
                .iter()
                .map(|((route, method), count)| RequestCount {
                    method: method.clone(),
                    route: route.clone(),
                    count: *count,
                })
                .collect(),
            log: self.log.iter().cloned().collect(),
        }
    }

    pub fn reset(&mut self) {
        self.counts.clear();
        self.log.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(seed: u64) -> Vec<bool> {
        let spec = FaultSpec { probability: 0.5, seed: Some(seed), ..FaultSpec::always(503) };
        let mut traffic = Traffic::default();
        traffic.faults.push(FaultRule::new(spec).unwrap_or_else(|e| panic!("{e}")));
        (0..64).map(|_| traffic.roll_fault("GET", "/zones", "/zones").is_some()).collect()
    }

    #[test]
    fn seeded_faults_repeat() {
        let first = pattern(7);
        assert_eq!(first, pattern(7));
        assert!(first.iter().any(|f| *f) && first.iter().any(|f| !*f), "{first:?}");
    }

    #[test]
    fn counted_faults_expire_and_filters_apply() {
        let spec = FaultSpec {
            status: 429,
            count: Some(2),
            methods: vec!["put".into()],
            route: Some("/r".into()),
            ..FaultSpec::default()
        };
        let mut traffic = Traffic::default();
        traffic.faults.push(FaultRule::new(spec).unwrap_or_else(|e| panic!("{e}")));
        assert!(traffic.roll_fault("GET", "/r", "/r").is_none());
        assert!(traffic.roll_fault("PUT", "/x", "/x").is_none());
        let fault = traffic.roll_fault("PUT", "/r", "/r");
        assert_eq!(fault.as_ref().map(|f| (f.status, f.errors[0].code)), Some((429, 971)));
        assert!(traffic.roll_fault("PUT", "/r", "/r").is_some());
        assert!(traffic.roll_fault("PUT", "/r", "/r").is_none());
        assert!(traffic.faults.is_empty());
    }

    #[test]
    fn invalid_faults_are_refused() {
        assert!(FaultRule::new(FaultSpec::always(404)).is_err());
        assert!(FaultRule::new(FaultSpec { probability: 1.5, ..FaultSpec::default() }).is_err());
        assert!(FaultRule::new(FaultSpec { probability: f64::NAN, ..FaultSpec::default() }).is_err());
    }
}
