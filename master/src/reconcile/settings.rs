//! The reconciler's tunables and what a pass reports.

use std::time::Duration;

pub const DEFAULT_MAX_ROUTES_PER_AGENT: u32 = 200;

/// Tunables.
#[derive(Debug, Clone)]
pub struct ReconcileSettings {
    /// How long a stopped container's routes stay.
    pub grace: Duration,
    /// How often to re-read everything from Cloudflare and repair drift.
    pub drift_interval: Duration,
    /// CF_ZONE_ID: the zone of last resort.
    pub default_zone_id: Option<String>,
    /// Tunnel names start with this.
    pub tunnel_prefix: String,
    /// The longest a trigger waits for more before a pass (a burst → one pass).
    pub debounce: Duration,
    /// A pass starts once triggers have been quiet this long (a lone change goes out at once).
    pub quiet: Duration,
    /// Routes per agent when its hostname policy says 0 (`--max-routes-per-agent`).
    pub max_routes_per_agent: u32,
}

impl Default for ReconcileSettings {
    fn default() -> Self {
        ReconcileSettings {
            grace: Duration::from_secs(28_800),
            drift_interval: Duration::from_secs(300),
            default_zone_id: None,
            tunnel_prefix: "dockflare".into(),
            debounce: Duration::from_millis(300),
            quiet: Duration::from_millis(40),
            max_routes_per_agent: DEFAULT_MAX_ROUTES_PER_AGENT,
        }
    }
}

/// What a pass changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    pub tunnels_created: u32,
    pub tunnels_deleted: u32,
    pub ingress_updates: u32,
    pub dns_created: u32,
    pub dns_updated: u32,
    pub dns_deleted: u32,
    pub commands_sent: u32,
    pub routes_changed: u32,
    pub access_apps_created: u32,
    pub access_apps_updated: u32,
    pub access_apps_deleted: u32,
    /// Our reusable Access policies created or updated.
    pub access_policies_written: u32,
    pub access_policies_deleted: u32,
    pub errors: Vec<String>,
}

impl PassReport {
    pub fn changed_anything(&self) -> bool {
        self.tunnels_created
            + self.tunnels_deleted
            + self.ingress_updates
            + self.dns_created
            + self.dns_updated
            + self.dns_deleted
            + self.commands_sent
            + self.routes_changed
            + self.access_writes()
            > 0
    }

    /// Every Access write of the pass.
    pub fn access_writes(&self) -> u32 {
        self.access_apps_created
            + self.access_apps_updated
            + self.access_apps_deleted
            + self.access_policies_written
            + self.access_policies_deleted
    }
}

/// The setting that holds the last pass's summary ([`last_pass_summary`]).
pub const LAST_PASS_SETTING: &str = "last_pass";

/// The last pass in JSON: when, how long, what it changed, its errors, and the Cloudflare
/// requests it made against the budget (requests, requests allowed per 5 minutes). Pure.
pub fn last_pass_summary(
    report: &PassReport,
    at_ms: i64,
    took: std::time::Duration,
    (requests, budget_per_5_minutes): (u64, u32),
) -> String {
    serde_json::json!({
        "at_ms": at_ms,
        "took_ms": took.as_millis() as u64,
        "cloudflare_requests": requests,
        "budget_per_5_minutes": budget_per_5_minutes,
        "tunnels_created": report.tunnels_created,
        "tunnels_deleted": report.tunnels_deleted,
        "ingress_updates": report.ingress_updates,
        "dns_created": report.dns_created,
        "dns_updated": report.dns_updated,
        "dns_deleted": report.dns_deleted,
        "commands_sent": report.commands_sent,
        "routes_changed": report.routes_changed,
        "access_apps_created": report.access_apps_created,
        "access_apps_updated": report.access_apps_updated,
        "access_apps_deleted": report.access_apps_deleted,
        "access_policies_written": report.access_policies_written,
        "access_policies_deleted": report.access_policies_deleted,
        "errors": report.errors,
    })
    .to_string()
}

/// The kind of a pass error, for the `dockflare_reconcile_errors_total{kind}` metric (the
/// errors' own wording starts with what failed). Pure.
pub fn error_kind(error: &str) -> &'static str {
    const KINDS: &[(&str, &str)] = &[
        ("Cloudflare ", "access"),
        ("standby", "standby"),
        ("listing zones", "zones"),
        ("listing DNS", "dns"),
        ("removing DNS", "dns"),
        ("ingress", "ingress"),
        ("tunnel ", "tunnel"),
        ("deleting tunnel", "tunnel"),
        ("start_tunnel", "command"),
    ];
    match KINDS.iter().find(|(prefix, _)| error.starts_with(prefix)) {
        Some((_, kind)) => kind,
        // The Access step's errors name what they were doing with Access.
        None if error.contains("Access") => "access_apps",
        None => "store",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_grouped_by_what_failed() {
        assert_eq!(error_kind("listing zones: 503"), "zones");
        assert_eq!(error_kind("ingress of dockflare-agent-a1: 400"), "ingress");
        assert_eq!(error_kind("Cloudflare unreachable (DNS/network): verifying the API token: …"), "access");
        assert_eq!(error_kind("database is locked"), "store");
        assert_eq!(error_kind("creating Access policy dockflare-x-bypass: 500"), "access_apps");
    }
}
