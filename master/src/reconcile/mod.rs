//! The Cloudflare reconciler: desired state (routes claimed by reported
//! containers and manual routes) against Cloudflare's state (tunnels, their
//! ingress configuration, DNS records), diffed and applied.
//!
//! One task owns it ([`ReconcilerHandle`] talks to it): bursts of triggers
//! coalesce into one pass; a timer runs drift checks. Decisions are plain
//! functions in the submodules — [`route_table`] (claims, grace period,
//! conflicts), [`ingress`] (merging with rules this master did not write),
//! [`dns_plan`] (ownership), [`zones`] — and this module does the I/O.
//! Cloudflare errors land on the route or tunnel they concern and never stop
//! the rest of a pass.

pub mod claims;
pub mod dns_plan;
pub mod fairness;
pub mod ingress;
pub mod policy;
pub mod route_table;
pub mod swarms;
pub mod zones;

use crate::clock::now_millis;
use crate::cloudflare::client::{CfError, CloudflareClient};
use crate::cloudflare::codes;
use crate::cloudflare::types::{DnsRecord, DnsRecordRequest, IngressRule};
use crate::commands::CommandQueue;
use crate::store::{AgentRecord, ContainerRow, Store, StoreError, TunnelRow};
use dockflare::v1::{command, StartTunnel};
use route_table::{RouteRow, Status};
use secrecy::ExposeSecret;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};

/// `--max-routes-per-agent`: routes an agent may have when its policy does not say.
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
            > 0
    }
}

enum Request {
    Trigger,
    RunNow(oneshot::Sender<PassReport>),
}

/// Talks to the reconciler task. Cheap to clone.
#[derive(Clone)]
pub struct ReconcilerHandle {
    requests: mpsc::Sender<Request>,
}

/// The receiving end of a [`ReconcilerHandle`], for [`Reconciler::spawn_with`].
pub struct ReconcilerInbox(mpsc::Receiver<Request>);

impl ReconcilerHandle {
    /// A handle and the inbox its reconciler will read (the handle can be shared before the
    /// reconciler exists: the command queue and the fan-out need it first).
    pub fn channel() -> (ReconcilerHandle, ReconcilerInbox) {
        let (tx, rx) = mpsc::channel(64);
        (ReconcilerHandle { requests: tx }, ReconcilerInbox(rx))
    }

    /// Asks for a pass soon (coalesced with other requests).
    pub fn trigger(&self) {
        let _ = self.requests.try_send(Request::Trigger);
    }

    /// Runs a pass now and returns what it changed.
    pub async fn run_now(&self) -> Option<PassReport> {
        let (tx, rx) = oneshot::channel();
        self.requests.send(Request::RunNow(tx)).await.ok()?;
        rx.await.ok()
    }
}

/// The reconciler's state between passes.
pub struct Reconciler {
    store: Store,
    commands: CommandQueue,
    client: CloudflareClient,
    settings: ReconcileSettings,
    installation_id: String,
    /// Per tunnel id: hash of the rules last known to be in Cloudflare.
    /// Per tunnel: the fingerprint of the ingress last synced, and the conflicts it had.
    synced: HashMap<String, (u64, BTreeSet<ingress::RuleKey>)>,
    /// Per tunnel id: the configuration version last read or written (tunnel health needs it).
    config_versions: HashMap<String, i64>,
    last_drift: Option<Instant>,
    /// Whether the token was verified and its permissions checked.
    ready: bool,
    /// Whether this master reconciles (holds the leader lock; always on SQLite).
    leader: watch::Receiver<bool>,
    /// Claims the hostname policies refused at the last pass (each is logged once, when it starts).
    refused: BTreeSet<(String, String, String, String)>,
    /// The last pass left DNS writes for the next one ([`fairness::WRITES_PER_HOLDER`]).
    backlog: bool,
    /// Stored routes the last pass could not read (each is logged once).
    corrupt: BTreeSet<(String, String, String)>,
    /// The soonest grace deadline (Unix ms) the last saved pass left.
    next_deadline: Option<i64>,
}

impl Reconciler {
    pub fn new(
        store: Store,
        commands: CommandQueue,
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
            synced: HashMap::new(),
            config_versions: HashMap::new(),
            last_drift: None,
            ready: false,
            leader,
            refused: BTreeSet::new(),
            backlog: false,
            corrupt: BTreeSet::new(),
            next_deadline: None,
        }
    }

    /// Starts the task.
    /// Starts the task, reading the requests of an existing handle.
    pub fn spawn_with(self, inbox: ReconcilerInbox, supervisor: &crate::supervisor::Supervisor) {
        supervisor.spawn("reconciler", self.run(inbox.0));
    }

    async fn run(mut self, mut requests: mpsc::Receiver<Request>) {
        let mut retry = Duration::from_secs(2);
        let mut next = tokio::time::Instant::now();
        let mut was_leader = false;
        let mut leadership_changes = true;
        loop {
            let mut waiting: Vec<oneshot::Sender<PassReport>> = Vec::new();
            tokio::select! {
                request = requests.recv() => match request {
                    None => return,
                    Some(Request::RunNow(reply)) => waiting.push(reply),
                    Some(Request::Trigger) => {
                        // Coalesce a burst of triggers into one pass: wait until they have been
                        // quiet for a moment, at most `debounce` after the first.
                        let latest = tokio::time::Instant::now() + self.settings.debounce;
                        loop {
                            let until = latest.min(tokio::time::Instant::now() + self.settings.quiet);
                            match tokio::time::timeout_at(until, requests.recv()).await {
                                Ok(Some(Request::Trigger)) => continue,
                                Ok(Some(Request::RunNow(reply))) => {
                                    waiting.push(reply);
                                    break;
                                }
                                Ok(None) | Err(_) => break,
                            }
                        }
                    }
                },
                _ = tokio::time::sleep_until(next) => {}
                // Leadership only changes with PostgreSQL; on SQLite the value is fixed.
                changed = self.leader.changed(), if leadership_changes => {
                    if changed.is_err() {
                        leadership_changes = false;
                    }
                }
            }
            if !*self.leader.borrow_and_update() {
                was_leader = false;
                let standby = PassReport {
                    errors: vec!["standby: another master reconciles Cloudflare".into()],
                    ..PassReport::default()
                };
                for reply in waiting {
                    let _ = reply.send(standby.clone());
                }
                next = tokio::time::Instant::now() + self.settings.drift_interval;
                continue;
            }
            if !was_leader {
                // Newly leading: whatever another master did, look at everything.
                was_leader = true;
                self.synced.clear();
                self.last_drift = None;
            }
            if !waiting.is_empty() {
                // Asked for by an operator: a full look (drift repair, tunnel health included).
                self.last_drift = None;
            }
            self.backlog = false;
            let report = self.pass().await;
            let transient = !report.errors.is_empty();
            if report.changed_anything() || transient {
                tracing::info!(
                    message = "Reconcile pass.",
                    tunnels_created = report.tunnels_created,
                    tunnels_deleted = report.tunnels_deleted,
                    ingress_updates = report.ingress_updates,
                    dns_created = report.dns_created,
                    dns_updated = report.dns_updated,
                    dns_deleted = report.dns_deleted,
                    commands_sent = report.commands_sent,
                    routes_changed = report.routes_changed,
                    errors = report.errors.len(),
                );
            }
            for reply in waiting {
                let _ = reply.send(report.clone());
            }
            // Errors: look again soon, backing off; otherwise at the next drift check
            // or when the soonest grace period ends.
            let wait = if self.backlog {
                Duration::ZERO // the next writes of a backlog, right away
            } else if transient {
                let wait = retry;
                retry = (retry * 2).min(Duration::from_secs(60));
                wait
            } else {
                retry = Duration::from_secs(2);
                self.next_wakeup()
            };
            next = tokio::time::Instant::now() + wait;
        }
    }

    /// How long until the next pass is due: the drift timer, or the soonest grace deadline the
    /// last pass saw (the pass tells; the loop reads nothing).
    fn next_wakeup(&self) -> Duration {
        // The next drift pass is due `drift_interval` after the last one, not after the last
        // (possibly triggered) pass.
        let mut wait = match self.last_drift {
            Some(at) => self.settings.drift_interval.saturating_sub(at.elapsed()),
            None => Duration::ZERO,
        };
        if let Some(soonest) = self.next_deadline {
            wait = wait.min(Duration::from_millis((soonest - now_millis()).max(0) as u64 + 10));
        }
        wait
    }

    /// Verifies the token and its permissions; says what is missing.
    async fn check_access(&mut self) -> Result<(), String> {
        if self.ready {
            return Ok(());
        }
        let verified = self.client.verify_token().await.map_err(|e| access_error("verifying the API token", &e))?;
        if verified.status != "active" {
            return Err(format!(
                "Cloudflare refused (token/permission): the API token is {} (not active)",
                verified.status
            ));
        }
        let mut missing = Vec::new();
        if let Err(error) = self.client.find_tunnel(&format!("{}-permission-check", self.settings.tunnel_prefix)).await
        {
            if error.is_transient() {
                return Err(access_error("listing tunnels", &error));
            }
            missing.push(format!("Account › Cloudflare Tunnel › Edit ({error})"));
        }
        match self.client.list_zones().await {
            Err(error) if error.is_transient() => return Err(access_error("listing zones", &error)),
            Err(error) => missing.push(format!("Zone › Zone › Read ({error})")),
            Ok(zones) => {
                if let Some(zone) = zones.first() {
                    if let Err(error) =
                        self.client.dns_records_named(&zone.id, &format!("dockflare-check.{}", zone.name)).await
                    {
                        if error.is_transient() {
                            return Err(access_error("reading DNS records", &error));
                        }
                        missing.push(format!("Zone › DNS › Edit ({error})"));
                    }
                }
            }
        }
        if !missing.is_empty() {
            return Err(format!(
                "Cloudflare refused (token/permission): the API token lacks permissions: {}",
                missing.join("; ")
            ));
        }
        tracing::info!(message = "Cloudflare token verified.", account = %self.client.account_id());
        self.ready = true;
        Ok(())
    }

    /// One reconcile pass.
    pub async fn pass(&mut self) -> PassReport {
        let mut report = PassReport::default();
        if let Err(reason) = self.check_access().await {
            tracing::error!(message = "Cloudflare work is waiting.", %reason);
            report.errors.push(reason);
            return report;
        }
        if let Err(error) = self.pass_inner(&mut report).await {
            tracing::warn!(message = "Reconcile pass failed.", %error);
            report.errors.push(error.to_string());
        }
        report
    }

    async fn pass_inner(&mut self, report: &mut PassReport) -> Result<(), StoreError> {
        let now = now_millis();
        let drift = self.last_drift.is_none_or(|at| at.elapsed() >= self.settings.drift_interval);
        if drift {
            self.synced.clear();
            self.config_versions.clear();
            self.last_drift = Some(Instant::now());
        }

        // Desired state.
        let agents = load_agents(&self.store).await?;
        let containers = self.store.list_containers(None).await?;
        let manual = self.store.list_manual_routes().await?;
        let table = self.store.load_route_table().await?;
        self.log_corrupt(&table.corrupt);
        let existing = table.rows;
        let (mut claims, refusals) = policy::screen(
            claims::from_containers(&containers, &agents),
            &agents,
            &policy::established(&existing),
            self.settings.max_routes_per_agent,
        );
        self.log_refusals(&refusals);
        claims.extend(claims::from_manual(&manual));
        // A row this master cannot read is left alone: nothing claims its hostname and path.
        let untouchable: BTreeSet<(&str, &str)> =
            table.corrupt.iter().map(|c| (c.hostname.as_str(), c.path.as_str())).collect();
        claims.retain(|c| !untouchable.contains(&(c.spec.hostname.as_str(), c.spec.path.as_str())));
        let grace_ms = self.settings.grace.as_millis() as i64;
        let plan = route_table::plan(now, grace_ms, claims, existing.clone());
        let mut rows = plan.rows;
        let removed = plan.removed;
        let mut errors: HashMap<usize, String> = HashMap::new();

        // Tunnels: one per active agent or group, and one for every routed tunnel key.
        let active: Vec<&AgentRecord> = agents.values().filter(|a| a.removed_at.is_none() && !a.is_revoked()).collect();
        let mut needed: BTreeSet<String> = active.iter().map(|a| claims::tunnel_key(a)).collect();
        needed.extend(rows.iter().filter(|r| r.status.is_routed()).map(|r| r.spec.tunnel_key.clone()));
        let stored: HashMap<String, TunnelRow> =
            self.store.list_tunnels().await?.into_iter().map(|t| (t.tunnel_key.clone(), t)).collect();
        let live_ids = if drift { self.live_tunnel_ids().await } else { None };
        let mut members: HashMap<String, Vec<&AgentRecord>> = HashMap::new();
        for agent in &active {
            members.entry(claims::tunnel_key(agent)).or_default().push(agent);
        }
        let mut tunnels: HashMap<String, TunnelRow> = HashMap::new();
        for key in &needed {
            match self.ensure_tunnel(key, stored.get(key), live_ids.as_ref(), report).await {
                Ok(tunnel) => {
                    // Its agents run its connector, as soon as it exists: with many new agents
                    // (and Cloudflare's request budget) the first need not wait for the last.
                    for agent in members.get(key).into_iter().flatten() {
                        if agent.assigned_tunnel_id == tunnel.tunnel_id {
                            continue;
                        }
                        match self.start_tunnel(agent, &tunnel).await {
                            Ok(()) => report.commands_sent += 1,
                            Err(error) => report.errors.push(format!("start_tunnel for agent {}: {error}", agent.id)),
                        }
                    }
                    tunnels.insert(key.clone(), tunnel);
                }
                Err(error) => {
                    report.errors.push(format!("tunnel {key}: {error}"));
                    for (index, row) in rows.iter().enumerate() {
                        if &row.spec.tunnel_key == key {
                            errors.insert(index, format!("tunnel: {error}"));
                        }
                    }
                }
            }
        }

        // Zones: a routed hostname needs one; without, the route is invalid.
        let zones = match self.client.list_zones().await {
            Ok(zones) => zones.into_iter().map(|z| zones::ZoneRef { id: z.id, name: z.name }).collect::<Vec<_>>(),
            Err(error) => {
                report.errors.push(format!("listing zones: {error}"));
                return self.save(report, &existing, rows, &removed, &errors).await;
            }
        };
        let default_zone = self.settings.default_zone_id.as_deref();
        let mut zone_of: HashMap<String, zones::ZoneRef> = HashMap::new();
        // (Rows are `invalid` here only when withheld: the route table re-asks every claim.)
        for row in rows.iter_mut().filter(|r| r.status.is_routed()) {
            match zones::zone_for(&row.spec.hostname, &row.spec.zone_name, &zones, default_zone) {
                Ok(zone) => {
                    let apex = agents
                        .get(&row.spec.agent_id)
                        .filter(|_| row.source == route_table::Source::Labels)
                        .and_then(|agent| agent.policy.apex_refusal(&row.spec.hostname, &zone.name));
                    if let Some(reason) = apex {
                        row.status = Status::Invalid;
                        row.reason = reason;
                        continue;
                    }
                    zone_of.insert(row.spec.hostname.clone(), zone);
                }
                Err(reason) => {
                    row.status = Status::Invalid;
                    row.reason = reason;
                }
            }
        }
        // Where records may have to go: routes that left, and routes no longer routed (withheld,
        // conflicts), whose record of ours must not keep their hostname published.
        for row in removed.iter().chain(rows.iter().filter(|r| !r.status.is_routed())) {
            if let Ok(zone) = zones::zone_for(&row.spec.hostname, &row.spec.zone_name, &zones, default_zone) {
                zone_of.entry(row.spec.hostname.clone()).or_insert(zone);
            }
        }

        // One hostname, one tunnel: its CNAME can point to only one.
        let mut hostname_tunnel: BTreeMap<String, String> = BTreeMap::new();
        let mut order: Vec<usize> = (0..rows.len()).collect();
        order.sort_by_key(|&i| (rows[i].source != route_table::Source::Manual, rows[i].first_seen_at));
        for index in order {
            let row = &mut rows[index];
            if !row.status.is_routed() {
                continue;
            }
            match hostname_tunnel.get(&row.spec.hostname) {
                None => {
                    hostname_tunnel.insert(row.spec.hostname.clone(), row.spec.tunnel_key.clone());
                }
                Some(key) if *key == row.spec.tunnel_key => {}
                Some(key) => {
                    row.status = Status::Conflict;
                    row.reason = format!("{} is already served by tunnel {key}", row.spec.hostname);
                }
            }
        }

        // DNS records as they are; what each routed hostname should point to.
        let wanted: BTreeMap<String, String> = rows
            .iter()
            .filter(|r| r.status.is_routed())
            .filter_map(|r| {
                tunnels
                    .get(&r.spec.tunnel_key)
                    .map(|t| (r.spec.hostname.clone(), dns_plan::tunnel_target(&t.tunnel_id)))
            })
            .collect();
        let mut unwanted: BTreeSet<String> = removed.iter().map(|r| r.spec.hostname.clone()).collect();
        let wanted = still_routed(wanted, &rows, &mut unwanted);
        let mut zone_ids: BTreeSet<String> = BTreeSet::new();
        for hostname in wanted.keys().chain(unwanted.iter()) {
            if let Some(zone) = zone_of.get(hostname) {
                zone_ids.insert(zone.id.clone());
            }
        }
        let mut by_name: HashMap<String, Vec<dns_plan::FoundRecord>> = HashMap::new();
        let mut unreadable_zones: BTreeSet<String> = BTreeSet::new();
        for zone_id in &zone_ids {
            match self.client.dns_records(zone_id).await {
                Ok(records) => {
                    for record in records {
                        by_name.entry(record.name.to_ascii_lowercase()).or_default().push(found(record));
                    }
                }
                Err(error) => {
                    report.errors.push(format!("listing DNS records of zone {zone_id}: {error}"));
                    unreadable_zones.insert(zone_id.clone());
                }
            }
        }
        // A foreign record at a wanted hostname: the route is a conflict before
        // anything is written for it (no ingress rule either).
        for row in rows.iter_mut().filter(|r| r.status.is_routed()) {
            let Some(target) = wanted.get(&row.spec.hostname) else { continue };
            let existing = by_name.get(&row.spec.hostname).map(Vec::as_slice).unwrap_or(&[]);
            for action in dns_plan::plan(&row.spec.hostname, Some(target), existing, &self.installation_id) {
                if let dns_plan::DnsAction::Conflict(reason) = action {
                    row.status = Status::Conflict;
                    row.reason = reason;
                }
            }
        }
        let wanted = still_routed(wanted, &rows, &mut unwanted);

        // Ingress, per tunnel.
        for (key, tunnel) in &tunnels {
            let mut desired: Vec<IngressRule> = rows
                .iter()
                .filter(|r| r.status.is_routed() && &r.spec.tunnel_key == key)
                .map(|r| ingress::rule_for(&r.spec))
                .collect();
            ingress::sort_rules(&mut desired);
            match self.sync_ingress(tunnel, &desired, report).await {
                Ok(conflicts) => {
                    for row in rows.iter_mut().filter(|r| &r.spec.tunnel_key == key && r.status.is_routed()) {
                        if conflicts.contains(&(row.spec.hostname.clone(), row.spec.path.clone())) {
                            row.status = Status::Conflict;
                            row.reason = format!(
                                "tunnel {} already has a rule for {}{} that this DockFlare did not write",
                                tunnel.name, row.spec.hostname, row.spec.path
                            );
                        }
                    }
                }
                Err(error) => {
                    report.errors.push(format!("ingress of {}: {error}", tunnel.name));
                    for (index, row) in rows.iter().enumerate() {
                        if &row.spec.tunnel_key == key && row.status.is_routed() {
                            errors.insert(index, format!("ingress: {error}"));
                        }
                    }
                }
            }
        }

        // DNS (for what is still routed after the ingress step).
        let wanted = still_routed(wanted, &rows, &mut unwanted);
        let mut dns_conflicts: HashMap<String, String> = HashMap::new();
        let mut dns_errors: HashMap<String, String> = HashMap::new();
        // Round-robin across agents, a few writes per agent and pass: one agent's backlog does
        // not hold up another's change.
        let mut writes: HashMap<String, u32> = HashMap::new();
        for (holder, hostname, target) in &fairness::round_robin(&wanted, &rows) {
            if writes.get(holder).is_some_and(|n| *n >= fairness::WRITES_PER_HOLDER) {
                self.backlog = true;
                continue;
            }
            let written_before = report.dns_created + report.dns_updated + report.dns_deleted;
            let Some(zone) = zone_of.get(hostname) else { continue };
            if unreadable_zones.contains(&zone.id) {
                dns_errors.insert(hostname.clone(), "DNS: the zone's records could not be read".into());
                continue;
            }
            let existing = by_name.get(hostname).map(Vec::as_slice).unwrap_or(&[]);
            match self.sync_record(&zone.id, hostname, Some(target), existing, report).await {
                Ok(Some(conflict)) => {
                    dns_conflicts.insert(hostname.clone(), conflict);
                }
                Ok(None) => {}
                Err(error) => {
                    dns_errors.insert(hostname.clone(), format!("DNS: {error}"));
                }
            }
            if report.dns_created + report.dns_updated + report.dns_deleted > written_before {
                *writes.entry(holder.clone()).or_default() += 1;
            }
        }
        for hostname in &unwanted {
            let Some(zone) = zone_of.get(hostname) else { continue };
            if unreadable_zones.contains(&zone.id) {
                continue;
            }
            let existing = by_name.get(hostname).map(Vec::as_slice).unwrap_or(&[]);
            if let Err(error) = self.sync_record(&zone.id, hostname, None, existing, report).await {
                report.errors.push(format!("removing DNS record of {hostname}: {error}"));
            }
        }
        for (index, row) in rows.iter_mut().enumerate() {
            if let Some(reason) = dns_conflicts.get(&row.spec.hostname) {
                if row.status.is_routed() {
                    row.status = Status::Conflict;
                    row.reason = reason.clone();
                }
            }
            if let Some(error) = dns_errors.get(&row.spec.hostname) {
                errors.insert(index, error.clone());
            }
        }

        // Tunnels nobody needs any more (their routes and records are gone).
        for (key, tunnel) in &stored {
            if needed.contains(key) {
                continue;
            }
            match self.client.delete_tunnel(&tunnel.tunnel_id).await {
                Ok(()) => {
                    self.store.delete_tunnel(key).await?;
                    self.synced.remove(&tunnel.tunnel_id);
                    self.config_versions.remove(&tunnel.tunnel_id);
                    report.tunnels_deleted += 1;
                    tracing::info!(message = "Tunnel deleted (no agent uses it).", tunnel = %tunnel.name);
                }
                Err(error) => report.errors.push(format!("deleting tunnel {}: {error}", tunnel.name)),
            }
        }
        if drift {
            self.refresh_tunnel_status(&tunnels).await;
        }
        self.save(report, &existing, rows, &removed, &errors).await
    }

    /// Stores the route table: rows that changed, rows that left.
    async fn save(
        &mut self,
        report: &mut PassReport,
        existing: &[RouteRow],
        mut rows: Vec<RouteRow>,
        removed: &[RouteRow],
        errors: &HashMap<usize, String>,
    ) -> Result<(), StoreError> {
        for (index, row) in rows.iter_mut().enumerate() {
            row.last_error = errors.get(&index).cloned().unwrap_or_default();
        }
        // When the next pass is due at the latest: the soonest end of a grace period.
        self.next_deadline = rows.iter().filter_map(|r| r.delete_at).min();
        let before: HashMap<(&str, &str, &str), &RouteRow> =
            existing.iter().map(|r| ((r.spec.hostname.as_str(), r.spec.path.as_str(), r.owner.as_str()), r)).collect();
        let changed: Vec<RouteRow> = rows
            .into_iter()
            .filter(|row| {
                before.get(&(row.spec.hostname.as_str(), row.spec.path.as_str(), row.owner.as_str())) != Some(&row)
            })
            .collect();
        for row in &changed {
            tracing::info!(message = "Route.", hostname = %row.spec.hostname, path = %row.spec.path, status = row.status.as_str(), reason = %row.reason, service = %row.spec.service);
        }
        for row in removed {
            tracing::info!(message = "Route removed.", hostname = %row.spec.hostname, path = %row.spec.path, owner = %row.owner);
        }
        report.routes_changed += (changed.len() + removed.len()) as u32;
        self.store.save_routes(&changed, removed).await
    }

    fn tunnel_name(&self, key: &str) -> String {
        match key.split_once(':') {
            Some(("group", group)) => format!("{}-group-{group}", self.settings.tunnel_prefix),
            Some((_, agent)) => format!("{}-agent-{agent}", self.settings.tunnel_prefix),
            None => format!("{}-{key}", self.settings.tunnel_prefix),
        }
    }

    async fn live_tunnel_ids(&self) -> Option<BTreeSet<String>> {
        match self.client.list_tunnels(&self.settings.tunnel_prefix).await {
            Ok(tunnels) => Some(tunnels.into_iter().map(|t| t.id).collect()),
            Err(error) => {
                tracing::warn!(message = "Listing tunnels failed.", %error);
                None
            }
        }
    }

    /// The tunnel for `key`: stored, found by name, or created.
    async fn ensure_tunnel(
        &self,
        key: &str,
        stored: Option<&TunnelRow>,
        live_ids: Option<&BTreeSet<String>>,
        report: &mut PassReport,
    ) -> Result<TunnelRow, String> {
        if let Some(tunnel) = stored {
            if live_ids.is_none_or(|ids| ids.contains(&tunnel.tunnel_id)) {
                return Ok(tunnel.clone());
            }
            tracing::warn!(message = "A managed tunnel disappeared from Cloudflare; recreating it.", tunnel = %tunnel.name);
        }
        let name = self.tunnel_name(key);
        let found = match self.client.find_tunnel(&name).await.map_err(|e| e.to_string())? {
            Some(tunnel) => tunnel,
            None => match self.client.create_tunnel(&name).await {
                Ok(tunnel) => {
                    report.tunnels_created += 1;
                    tracing::info!(message = "Tunnel created.", tunnel = %name, id = %tunnel.id);
                    tunnel
                }
                // Created meanwhile (409/1013), or a POST whose outcome is unknown (5xx): look again.
                Err(error) if error.has_code(codes::TUNNEL_NAME_TAKEN) || error.is_transient() => {
                    self.client.find_tunnel(&name).await.map_err(|e| e.to_string())?.ok_or_else(|| error.to_string())?
                }
                Err(error) => return Err(error.to_string()),
            },
        };
        let now = now_millis();
        let row = TunnelRow {
            tunnel_key: key.to_string(),
            name,
            tunnel_id: found.id,
            status: found.status.clone(),
            connector_count: 0,
            config_version: stored.map_or(0, |s| s.config_version),
            connector_config_version: stored.map_or(0, |s| s.connector_config_version),
            last_error: String::new(),
            created_at: stored.map(|s| s.created_at).unwrap_or(now),
            updated_at: now,
        };
        self.store.save_tunnel(&row).await.map_err(|e| e.to_string())?;
        Ok(row)
    }

    /// Logs each corrupt row once, when it is first seen.
    fn log_corrupt(&mut self, corrupt: &[crate::store::CorruptRoute]) {
        let fresh = newly_seen(
            &mut self.corrupt,
            corrupt.iter().map(|c| (c.hostname.clone(), c.path.clone(), c.owner.clone())),
        );
        for row in corrupt.iter().filter(|c| fresh.contains(&(c.hostname.clone(), c.path.clone(), c.owner.clone()))) {
            tracing::error!(
                message = "A stored route cannot be read; it is left alone (not routed, not deleted).",
                hostname = %row.hostname,
                path = %row.path,
                owner = %row.owner,
                problem = %row.problem,
            );
        }
    }

    /// Logs each refusal once, when it starts (they are listed by ListDiagnostics meanwhile).
    fn log_refusals(&mut self, refusals: &[policy::Refusal]) {
        let key = |r: &policy::Refusal| (r.agent_id.clone(), r.owner.clone(), r.hostname.clone(), r.path.clone());
        let fresh = newly_seen(&mut self.refused, refusals.iter().map(key));
        for refusal in refusals.iter().filter(|r| fresh.contains(&key(r))) {
            tracing::warn!(
                message = "Route refused by the agent's hostname policy.",
                agent = %refusal.agent_id,
                container = %refusal.container_name,
                hostname = %refusal.hostname,
                path = %refusal.path,
                reason = %refusal.reason,
            );
        }
    }

    async fn start_tunnel(&self, agent: &AgentRecord, tunnel: &TunnelRow) -> Result<(), String> {
        let token = self.client.tunnel_token(&tunnel.tunnel_id).await.map_err(|e| e.to_string())?;
        let kind = command::Kind::StartTunnel(StartTunnel {
            tunnel_id: tunnel.tunnel_id.clone(),
            tunnel_name: tunnel.name.clone(),
            token: token.expose_secret().to_string(),
            rules: Vec::new(),
        });
        self.commands.enqueue(&agent.id, kind).await.map_err(|e| e.to_string())?;
        self.store.set_assigned_tunnel(&agent.id, &tunnel.tunnel_id).await.map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Writes the tunnel's ingress when it differs; returns our keys that a
    /// foreign rule holds. The rules it places are recorded as ours *before*
    /// the PUT (and narrowed to exactly what was placed after it), so a crash
    /// between the two can never make our own rules look foreign on the next
    /// start. An unchanged desired set answers from the last outcome, its
    /// conflicts included, so a route does not flip between passes.
    async fn sync_ingress(
        &mut self,
        tunnel: &TunnelRow,
        desired: &[IngressRule],
        report: &mut PassReport,
    ) -> Result<BTreeSet<ingress::RuleKey>, IngressSyncError> {
        let fingerprint = fingerprint(desired);
        if let Some((synced, conflicts)) = self.synced.get(&tunnel.tunnel_id) {
            if *synced == fingerprint {
                return Ok(conflicts.clone());
            }
        }
        let current = self.client.get_configuration(&tunnel.tunnel_id).await?;
        self.config_versions.insert(tunnel.tunnel_id.clone(), current.as_ref().map_or(0, |c| c.version));
        let owned = self.store.owned_rules(&tunnel.tunnel_id).await?;
        let current_rules = current.as_ref().map(|c| c.config.ingress.clone()).unwrap_or_default();
        let merged = ingress::merge(&current_rules, &owned, desired);
        let placed: BTreeSet<ingress::RuleKey> =
            desired.iter().map(ingress::rule_key).filter(|key| !merged.conflicts.contains(key)).collect();
        let nothing_to_write = current.is_none() && desired.is_empty();
        if !nothing_to_write && (current.is_none() || merged.rules != current_rules) {
            let ahead: BTreeSet<ingress::RuleKey> = owned.union(&placed).cloned().collect();
            if ahead != owned {
                self.store.set_owned_rules(&tunnel.tunnel_id, &ahead).await?;
            }
            let mut config = current.map(|c| c.config).unwrap_or_default();
            config.ingress = merged.rules.clone();
            let written = self.client.put_configuration(&tunnel.tunnel_id, &config).await?;
            self.config_versions.insert(tunnel.tunnel_id.clone(), written.version);
            report.ingress_updates += 1;
        }
        if placed != owned {
            if let Err(error) = self.store.set_owned_rules(&tunnel.tunnel_id, &placed).await {
                // Still a superset of what the tunnel holds of ours: safe; retried next pass.
                tracing::warn!(message = "Could not record the tunnel's rules.", tunnel = %tunnel.name, %error);
                return Ok(merged.conflicts);
            }
        }
        self.synced.insert(tunnel.tunnel_id.clone(), (fingerprint, merged.conflicts.clone()));
        Ok(merged.conflicts)
    }

    /// Brings one hostname's records in line; `Some(reason)` on a conflict.
    async fn sync_record(
        &self,
        zone_id: &str,
        hostname: &str,
        target: Option<&str>,
        found: &[dns_plan::FoundRecord],
        report: &mut PassReport,
    ) -> Result<Option<String>, CfError> {
        let request = |target: &str| DnsRecordRequest {
            record_type: "CNAME".into(),
            name: hostname.to_string(),
            content: target.to_string(),
            proxied: Some(true),
            ttl: Some(1),
            comment: Some(dns_plan::marker_comment(&self.installation_id)),
            tags: Vec::new(),
        };
        for action in dns_plan::plan(hostname, target, found, &self.installation_id) {
            match action {
                dns_plan::DnsAction::Create => {
                    let Some(target) = target else { continue };
                    match self.client.create_dns_record(zone_id, &request(target)).await {
                        Ok(_) => {
                            report.dns_created += 1;
                            tracing::info!(message = "DNS record created.", %hostname, %target);
                        }
                        Err(error)
                            if error.has_code(codes::DNS_NAME_TAKEN)
                                || error.has_code(codes::DNS_RECORD_EXISTS)
                                || error.has_code(codes::DNS_IDENTICAL_RECORD) =>
                        {
                            return Ok(Some(format!("a DNS record for {hostname} appeared meanwhile: {error}")));
                        }
                        Err(error) => return Err(error),
                    }
                }
                dns_plan::DnsAction::Update { id } => {
                    let Some(target) = target else { continue };
                    self.client.update_dns_record(zone_id, &id, &request(target)).await?;
                    report.dns_updated += 1;
                    tracing::info!(message = "DNS record updated.", %hostname, %target);
                }
                dns_plan::DnsAction::Delete { id } => {
                    self.client.delete_dns_record(zone_id, &id).await?;
                    report.dns_deleted += 1;
                    tracing::info!(message = "DNS record deleted.", %hostname);
                }
                dns_plan::DnsAction::Conflict(reason) => return Ok(Some(reason)),
            }
        }
        Ok(None)
    }

    async fn refresh_tunnel_status(&self, tunnels: &HashMap<String, TunnelRow>) {
        for tunnel in tunnels.values() {
            let mut row = tunnel.clone();
            match self.client.get_tunnel(&tunnel.tunnel_id).await {
                Ok(found) => {
                    row.status = found.status;
                    row.last_error.clear();
                }
                Err(error) => row.last_error = error.to_string(),
            }
            if let Ok(clients) = self.client.tunnel_connectors(&tunnel.tunnel_id).await {
                row.connector_count = clients.len() as i64;
                row.connector_config_version = clients.iter().map(|c| c.config_version).min().unwrap_or(0);
            }
            // This drift pass's ingress step read (or wrote) the version; read it only if it could not.
            match self.config_versions.get(&tunnel.tunnel_id) {
                Some(version) => row.config_version = *version,
                None => {
                    if let Ok(configuration) = self.client.get_configuration(&tunnel.tunnel_id).await {
                        row.config_version = configuration.map_or(0, |c| c.version);
                    }
                }
            }
            if row != *tunnel {
                row.updated_at = now_millis();
                let _ = self.store.save_tunnel(&row).await;
            }
        }
    }
}

/// A failed check of the Cloudflare setup, cause first: "Cloudflare unreachable (DNS/network):
/// verifying the API token: …" is told apart from "Cloudflare refused (token/permission): …".
fn access_error(step: &str, error: &CfError) -> String {
    format!("Cloudflare {}: {step}: {error}", error.cause())
}

/// In words, whether a tunnel is served by connectors that follow its configuration (as of the
/// last drift check). Pure.
pub fn tunnel_health(tunnel: &TunnelRow) -> String {
    let connectors = tunnel.connector_count.max(0);
    let plural = if connectors == 1 { "" } else { "s" };
    if connectors == 0 {
        "no connector connected: nothing serves its routes".to_string()
    } else if tunnel.config_version > 0 && tunnel.connector_config_version < tunnel.config_version {
        format!(
            "connectors behind: they run configuration v{}, Cloudflare holds v{} (a connector that cannot \
             reach its API, or an old token?)",
            tunnel.connector_config_version, tunnel.config_version
        )
    } else if tunnel.config_version > 0 {
        format!("serving: {connectors} connector{plural} on configuration v{}", tunnel.config_version)
    } else {
        format!("serving: {connectors} connector{plural}, no configuration yet")
    }
}

/// Why a tunnel's ingress could not be synced.
#[derive(Debug, thiserror::Error)]
enum IngressSyncError {
    #[error(transparent)]
    Cloudflare(#[from] CfError),
    #[error("recording the rules this master owns: {0}")]
    Store(#[from] StoreError),
}

/// The keys of `now` that were not in `seen` (what to log once), and `seen` becomes `now`: a key
/// that goes and comes back is logged again. Pure.
fn newly_seen<K: Ord + Clone>(seen: &mut BTreeSet<K>, now: impl IntoIterator<Item = K>) -> BTreeSet<K> {
    let now: BTreeSet<K> = now.into_iter().collect();
    let fresh = now.difference(seen).cloned().collect();
    *seen = now;
    fresh
}

/// `wanted` (hostname → CNAME target) narrowed to the hostnames a row still routes after a step
/// that can turn routes into conflicts; the hostnames no longer routed join `unwanted`. A hostname
/// some row still routes is never unwanted, even when it is not wanted this pass (its tunnel
/// could not be set up): its record stays until the route really goes.
fn still_routed(
    wanted: BTreeMap<String, String>,
    rows: &[RouteRow],
    unwanted: &mut BTreeSet<String>,
) -> BTreeMap<String, String> {
    let routed: BTreeSet<&str> =
        rows.iter().filter(|r| r.status.is_routed()).map(|r| r.spec.hostname.as_str()).collect();
    let wanted: BTreeMap<String, String> =
        wanted.into_iter().filter(|(hostname, _)| routed.contains(hostname.as_str())).collect();
    unwanted.extend(rows.iter().filter(|r| !r.status.is_routed()).map(|r| r.spec.hostname.clone()));
    unwanted.retain(|hostname| !routed.contains(hostname.as_str()));
    wanted
}

/// The label routes the agents' hostname policies refuse now (for ListDiagnostics; the
/// reconciler computes the same each pass), and the apex routes the last pass refused (zones are
/// known there: they are stored `invalid` with the reason). `containers` are those the caller
/// lists (one agent's, or all): quotas are per agent, so one agent's containers suffice for it.
pub async fn policy_refusals(
    store: &Store,
    containers: &[ContainerRow],
    default_quota: u32,
) -> Result<Vec<policy::Refusal>, StoreError> {
    let agents = load_agents(store).await?;
    let existing = store.load_routes().await?;
    let (_, mut refusals) = policy::screen(
        claims::from_containers(containers, &agents),
        &agents,
        &policy::established(&existing),
        default_quota,
    );
    let apex = existing.iter().filter(|row| row.status == Status::Invalid && row.reason.starts_with(policy::REFUSED));
    refusals.extend(apex.map(|row| policy::Refusal {
        agent_id: row.spec.agent_id.clone(),
        owner: row.owner.clone(),
        container_id: row.spec.container_id.clone(),
        container_name: row.spec.container_name.clone(),
        hostname: row.spec.hostname.clone(),
        path: row.spec.path.clone(),
        reason: row.reason.clone(),
    }));
    Ok(refusals)
}

async fn load_agents(store: &Store) -> Result<HashMap<String, AgentRecord>, StoreError> {
    let mut agents = HashMap::new();
    let mut after = String::new();
    loop {
        let page = store.list_agents(&after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.id.clone();
        agents.extend(page.into_iter().map(|agent| (agent.id.clone(), agent)));
    }
    Ok(agents)
}

fn found(record: DnsRecord) -> dns_plan::FoundRecord {
    dns_plan::FoundRecord {
        id: record.id,
        record_type: record.record_type,
        content: record.content,
        proxied: record.proxied,
        comment: record.comment.unwrap_or_default(),
    }
}

fn fingerprint(rules: &[IngressRule]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(rules).unwrap_or_default().hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_newly_seen_is_told_once_and_again_after_it_went() {
        let mut seen = BTreeSet::new();
        assert_eq!(newly_seen(&mut seen, ["a", "b"]), BTreeSet::from(["a", "b"]));
        assert!(newly_seen(&mut seen, ["a", "b"]).is_empty());
        assert_eq!(newly_seen(&mut seen, ["b", "c"]), BTreeSet::from(["c"]));
        assert_eq!(newly_seen(&mut seen, ["a"]), BTreeSet::from(["a"]), "a went and came back");
    }
    use route_table::{RouteSpec, Source};

    fn row(hostname: &str, owner: &str, status: Status) -> RouteRow {
        RouteRow {
            owner: owner.into(),
            source: Source::Labels,
            spec: RouteSpec {
                hostname: hostname.into(),
                path: String::new(),
                service: "http://web:80".into(),
                origin_json: "{}".into(),
                zone_name: String::new(),
                agent_id: "a1".into(),
                tunnel_key: "agent:a1".into(),
                container_id: owner.into(),
                container_name: owner.into(),
                service_name: String::new(),
            },
            status,
            reason: String::new(),
            delete_at: None,
            first_seen_at: 0,
            updated_at: 0,
            last_error: String::new(),
        }
    }

    #[test]
    fn a_hostname_still_routed_keeps_its_record_even_without_a_tunnel_this_pass() {
        // "kept" is routed but its tunnel failed this pass (not wanted); a removed row and a
        // conflicting row share its hostname. "gone" is only conflicting.
        let rows = vec![
            row("kept.example.com", "c1", Status::Active),
            row("kept.example.com", "c2", Status::Conflict),
            row("gone.example.com", "c3", Status::Conflict),
        ];
        let mut unwanted: BTreeSet<String> = ["kept.example.com".to_string()].into();
        let wanted = still_routed(BTreeMap::new(), &rows, &mut unwanted);
        assert!(wanted.is_empty());
        assert_eq!(unwanted, ["gone.example.com".to_string()].into());
    }

    #[test]
    fn a_hostname_that_turned_into_a_conflict_leaves_wanted_for_unwanted() {
        let rows = vec![row("app.example.com", "c1", Status::Conflict)];
        let wanted: BTreeMap<String, String> =
            [("app.example.com".to_string(), "t.cfargotunnel.com".to_string())].into();
        let mut unwanted = BTreeSet::new();
        let wanted = still_routed(wanted, &rows, &mut unwanted);
        assert!(wanted.is_empty());
        assert_eq!(unwanted, ["app.example.com".to_string()].into());
    }
}
