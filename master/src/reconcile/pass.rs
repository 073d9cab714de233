//! One reconcile pass, in kube-runtime's shape: observe (the store, then Cloudflare), decide
//! (pure planners), apply (one step per Cloudflare resource: tunnels, ingress, DNS), and store
//! the route table that results. Cloudflare errors land on the route or tunnel they concern and
//! never stop the rest of the pass; the pass says when the next one is due.

use super::access_apps::apply::{AccessStep, AccessSync};
use super::desired::{self, Observed};
use super::dns::apply::{DnsOutcome, DnsWriter};
use super::dns::plan::{self as dns_plan, Hostnames};
use super::dry_run::{self, DryRun, Plan, ProposedContainer};
use super::ingress::apply::IngressSync;
use super::noticed::Noticed;
use super::tunnels::apply::Tunnels;
use super::tunnels::plan::TunnelPlan;
use super::{ingress, route_table, zones, AgentCommands, PassReport, ReconcileSettings};
use crate::clock::now_millis;
use crate::model::{RouteRow, Status, TunnelRow};
use crate::store::{Store, StoreError};
use dockflare_cloudflare::client::CloudflareClient;
use std::collections::HashMap;
use std::time::Instant;
use tokio::sync::watch;

/// The reconciler's state between passes.
pub struct Reconciler {
    pub(super) store: Store,
    pub(super) commands: std::sync::Arc<dyn AgentCommands>,
    pub(super) client: CloudflareClient,
    pub(super) settings: ReconcileSettings,
    pub(super) installation_id: String,
    /// What was last synced of each tunnel's ingress.
    pub(super) ingress: IngressSync,
    pub(super) last_drift: Option<Instant>,
    /// Whether the token was verified and its permissions checked.
    pub(super) ready: bool,
    /// Whether this master reconciles (holds the leader lock; always on SQLite).
    pub(super) leader: watch::Receiver<bool>,
    /// Corrupt rows and refusals already logged.
    noticed: Noticed,
    /// The last pass left DNS writes for the next one ([`super::fairness::WRITES_PER_HOLDER`]).
    pub(super) backlog: bool,
    /// The soonest grace deadline (Unix ms) the last saved pass left.
    pub(super) next_deadline: Option<i64>,
    /// The zones this master last stored for the admin API ([`zones::KnownZones`]).
    known_zones: Option<zones::KnownZones>,
    /// Cloudflare Access as last seen ([`super::access_apps`]).
    access: AccessSync,
}

/// The route table while a pass works on it: the rows, those leaving, and per row the
/// Cloudflare error it met this pass.
struct Table {
    rows: Vec<RouteRow>,
    removed: Vec<RouteRow>,
    errors: HashMap<usize, String>,
}

impl Table {
    /// Every row on tunnel `key` (routed ones only, when `routed_only`) carries `error`.
    fn fail_tunnel(&mut self, key: &str, routed_only: bool, error: String) {
        for (index, row) in self.rows.iter().enumerate() {
            if row.spec.tunnel_key == key && (!routed_only || row.status.is_routed()) {
                self.errors.insert(index, error.clone());
            }
        }
    }

    /// The DNS step's conflicts and errors, on the rows of their hostnames.
    fn mark_dns(&mut self, outcome: &DnsOutcome) {
        for (index, row) in self.rows.iter_mut().enumerate() {
            if let Some(reason) = outcome.conflicts.get(&row.spec.hostname) {
                if row.status.is_routed() {
                    row.status = Status::Conflict;
                    row.reason = reason.clone();
                }
            }
            if let Some(error) = outcome.errors.get(&row.spec.hostname) {
                self.errors.insert(index, error.clone());
            }
        }
    }
}

impl Reconciler {
    pub fn new(
        store: Store,
        commands: std::sync::Arc<dyn AgentCommands>,
        client: CloudflareClient,
        settings: ReconcileSettings,
        installation_id: String,
        leader: watch::Receiver<bool>,
    ) -> Self {
        Reconciler {
            store,
            commands,
            client,
            settings,
            installation_id,
            ingress: IngressSync::default(),
            last_drift: None,
            ready: false,
            leader,
            noticed: Noticed::default(),
            backlog: false,
            next_deadline: None,
            known_zones: None,
            access: AccessSync::default(),
        }
    }

    /// One reconcile pass.
    pub async fn pass(&mut self) -> PassReport {
        let mut report = PassReport::default();
        self.backlog = false;
        if let Err(reason) = self.check_access().await {
            tracing::error!(message = "Cloudflare work is waiting.", %reason);
            report.errors.push(reason);
            return report;
        }
        if let Err(error) = self.pass_inner(&mut report, None, &[]).await {
            tracing::warn!(message = "Reconcile pass failed.", %error);
            report.errors.push(error.to_string());
        }
        report
    }

    /// A dry run ([`dry_run`]): what a pass would change now — with `proposals` in place of
    /// the reported containers they name — written nowhere. Reads Cloudflare as a drift pass
    /// does; leaves this reconciler's caches as they were.
    pub async fn plan(&mut self, proposals: &[ProposedContainer]) -> Plan {
        let mut report = PassReport::default();
        if let Err(reason) = self.check_access().await {
            return Plan { errors: vec![reason], ..Plan::default() };
        }
        let dry = DryRun::default();
        let access = self.access.clone();
        let result = self.pass_inner(&mut report, Some(&dry), proposals).await;
        self.access = access;
        let mut plan = Plan { errors: report.errors, ..Plan::default() };
        match result {
            Ok((routes, removed)) => {
                plan.routes = routes;
                plan.removed = removed;
            }
            Err(error) => plan.errors.push(error.to_string()),
        }
        plan.changes = dry.into_changes();
        plan
    }

    /// One pass; with `dry`, a dry run: every write is recorded there instead of made, and the
    /// route rows it would store are returned instead of stored.
    async fn pass_inner(
        &mut self,
        report: &mut PassReport,
        dry: Option<&DryRun>,
        proposals: &[ProposedContainer],
    ) -> Result<(Vec<RouteRow>, Vec<RouteRow>), StoreError> {
        let drift = dry.is_some() || self.last_drift.is_none_or(|at| at.elapsed() >= self.settings.drift_interval);
        if drift && dry.is_none() {
            self.ingress.forget_all();
            self.last_drift = Some(Instant::now());
        }

        // Observe the store; decide the route table.
        let mut observed = Observed::read(&self.store).await?;
        if !proposals.is_empty() {
            observed.containers = dry_run::with_proposals(observed.containers, proposals, now_millis());
        }
        if dry.is_none() {
            self.noticed.corrupt_rows(&observed.corrupt);
        }
        let grace_ms = self.settings.grace.as_millis() as i64;
        let decided = desired::decide(&observed, now_millis(), grace_ms, self.settings.max_routes_per_agent);
        if dry.is_none() {
            self.noticed.refusals(&decided.refusals);
        }
        let mut table = Table { rows: decided.rows, removed: decided.removed, errors: HashMap::new() };

        // Tunnels: one per active agent or group, and one for every routed tunnel key; its
        // agents run its connector as soon as it exists (with many new agents and Cloudflare's
        // request budget, the first need not wait for the last).
        let step = Tunnels {
            client: &self.client,
            store: &self.store,
            commands: self.commands.as_ref(),
            prefix: &self.settings.tunnel_prefix,
            dry_run: dry,
        };
        let plan = TunnelPlan::of(&observed.agents, &table.rows);
        let live_ids = if drift { step.live_ids().await } else { None };
        let mut tunnels: HashMap<String, TunnelRow> = HashMap::new();
        for key in &plan.needed {
            match step.ensure(key, observed.tunnels.get(key), live_ids.as_ref(), report).await {
                Ok(tunnel) => {
                    for agent in plan.to_start(key, &tunnel) {
                        match step.start(agent, &tunnel).await {
                            Ok(()) => report.commands_sent += 1,
                            Err(error) => report.errors.push(format!("start_tunnel for agent {}: {error}", agent.id)),
                        }
                    }
                    tunnels.insert(key.clone(), tunnel);
                }
                Err(error) => {
                    report.errors.push(format!("tunnel {key}: {error}"));
                    table.fail_tunnel(key, false, format!("tunnel: {error}"));
                }
            }
        }

        // Zones: a routed hostname needs one; without, the route is invalid. One hostname, one
        // tunnel: its CNAME can point to only one.
        let zones = match self.client.list_zones().await {
            Ok(zones) => zones.into_iter().map(|z| zones::ZoneRef { id: z.id, name: z.name }).collect::<Vec<_>>(),
            Err(error) => {
                report.errors.push(format!("listing zones: {error}"));
                return self.save(report, &observed.routes, table, dry).await;
            }
        };
        if dry.is_none() {
            let default_zone_id = self.settings.default_zone_id.clone();
            remember_zones(&self.store, &mut self.known_zones, &zones, default_zone_id).await;
        }
        let default_zone = self.settings.default_zone_id.as_deref();
        let zone_of = zones::assign(&mut table.rows, &table.removed, &observed.agents, &zones, default_zone);
        route_table::one_tunnel_per_hostname(&mut table.rows);

        // DNS as it is: a foreign record at a wanted hostname is a conflict before anything is
        // written for it.
        let dns = DnsWriter { client: &self.client, installation_id: &self.installation_id, dry_run: dry };
        let mut hostnames = Hostnames::of(&table.rows, &table.removed, &tunnels);
        let records = dns.observe(&hostnames, &zone_of, report).await;
        dns_plan::mark_foreign_records(&mut table.rows, &hostnames, &records.by_name, &self.installation_id);
        hostnames.narrow(&table.rows);

        // Access: a protected route's application (and its policies) exist before its ingress
        // rule and DNS record; a route whose protection is not in place is not published.
        let now = now_millis();
        let access_step = AccessStep {
            client: &self.client,
            store: &self.store,
            installation_id: &self.installation_id,
            now,
            grace_ms,
            dry_run: dry,
        };
        let access = self
            .access
            .before_routes(
                &access_step,
                &mut table.rows,
                &table.removed,
                &observed.routes,
                &mut table.errors,
                drift,
                report,
            )
            .await;
        hostnames.narrow(&table.rows);

        // Ingress, per tunnel.
        for (key, tunnel) in &tunnels {
            let desired = ingress::desired_for(&table.rows, key);
            match self.ingress.sync(&self.client, &self.store, tunnel, &desired, report, dry).await {
                Ok(conflicts) => ingress::mark_conflicts(&mut table.rows, key, &tunnel.name, &conflicts),
                Err(error) => {
                    report.errors.push(format!("ingress of {}: {error}", tunnel.name));
                    table.fail_tunnel(key, true, format!("ingress: {error}"));
                }
            }
        }

        // DNS writes, for what is still routed after the ingress step.
        hostnames.narrow(&table.rows);
        let outcome = dns.apply(&hostnames, &table.rows, &zone_of, &records, report).await;
        if dry.is_none() {
            self.backlog = outcome.backlog;
        }
        table.mark_dns(&outcome);

        // Access applications and policies nothing asks for go after their routes.
        self.access.after_routes(&access_step, access, &table.rows, report).await;

        // Tunnels nobody needs any more; on drift passes, the health of the others.
        for tunnel in plan.unneeded(&observed.tunnels) {
            step.delete(tunnel, &mut self.ingress, report).await?;
        }
        if drift && dry.is_none() {
            step.refresh_status(&tunnels, &self.ingress).await;
        }
        self.save(report, &observed.routes, table, dry).await
    }

    /// Stores the route table: rows that changed, rows that left; and notes when the next pass
    /// is due at the latest (the soonest end of a grace period). A dry run stores nothing.
    /// Returns what changed and what left.
    async fn save(
        &mut self,
        report: &mut PassReport,
        existing: &[RouteRow],
        table: Table,
        dry: Option<&DryRun>,
    ) -> Result<(Vec<RouteRow>, Vec<RouteRow>), StoreError> {
        let Table { mut rows, removed, errors } = table;
        for (index, row) in rows.iter_mut().enumerate() {
            row.last_error = errors.get(&index).cloned().unwrap_or_default();
        }
        if dry.is_some() {
            let changed = changed_rows(existing, rows);
            return Ok((changed, removed));
        }
        self.next_deadline = rows.iter().filter_map(|r| r.delete_at).chain(self.access.next_release()).min();
        let changed = changed_rows(existing, rows);
        for row in &changed {
            tracing::info!(message = "Route.", hostname = %row.spec.hostname, path = %row.spec.path, status = row.status.as_str(), reason = %row.reason, service = %row.spec.service);
        }
        for row in &removed {
            tracing::info!(message = "Route removed.", hostname = %row.spec.hostname, path = %row.spec.path, owner = %row.owner);
        }
        report.routes_changed += (changed.len() + removed.len()) as u32;
        self.store.save_routes(&changed, &removed).await?;
        Ok((changed, removed))
    }
}

/// The rows that differ from the stored ones (new ones included).
fn changed_rows(existing: &[RouteRow], rows: Vec<RouteRow>) -> Vec<RouteRow> {
    let before: HashMap<(&str, &str, &str), &RouteRow> =
        existing.iter().map(|r| ((r.spec.hostname.as_str(), r.spec.path.as_str(), r.owner.as_str()), r)).collect();
    rows.into_iter()
        .filter(|row| {
            before.get(&(row.spec.hostname.as_str(), row.spec.path.as_str(), row.owner.as_str())) != Some(&row)
        })
        .collect()
}

/// Stores the zones just listed (and the default zone) when they differ from what this master
/// last stored (`last`), so that every master's AddManualRoute can refuse a hostname no zone takes.
async fn remember_zones(
    store: &Store,
    last: &mut Option<zones::KnownZones>,
    listed: &[zones::ZoneRef],
    default_zone_id: Option<String>,
) {
    let known = zones::KnownZones { zones: listed.to_vec(), default_zone_id };
    if last.as_ref() == Some(&known) {
        return;
    }
    let stored = match serde_json::to_string(&known) {
        Ok(json) => store.set_setting(zones::KnownZones::SETTING, &json).await.map_err(|e| e.to_string()),
        Err(error) => Err(error.to_string()),
    };
    match stored {
        Ok(()) => *last = Some(known),
        Err(error) => tracing::warn!(message = "Could not store the account's zones.", %error),
    }
}
