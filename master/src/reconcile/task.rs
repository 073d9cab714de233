//! The reconciler task's loop — when to run a pass, not what it does: bursts of triggers
//! coalesce (quiet period, bounded by the debounce), only the leader reconciles, errors back off
//! (2 s doubling to 60 s), a backlog runs again at once, and otherwise the next pass is due at
//! the drift timer or at the soonest grace deadline the last pass reported.

use super::handle::{ReconcilerInbox, Request};
use super::{PassReport, Reconciler};
use crate::clock::now_millis;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

const FIRST_RETRY: Duration = Duration::from_secs(2);
const LONGEST_RETRY: Duration = Duration::from_secs(60);

impl Reconciler {
    /// Starts the task, reading the requests of an existing handle.
    pub fn spawn_with(self, inbox: ReconcilerInbox, supervisor: &crate::supervisor::Supervisor) {
        supervisor.spawn("reconciler", self.run(inbox.0));
    }

    async fn run(mut self, mut requests: mpsc::Receiver<Request>) {
        let mut retry = FIRST_RETRY;
        let mut next = tokio::time::Instant::now();
        let mut was_leader = false;
        let mut leadership_changes = true;
        loop {
            let mut waiting: Vec<oneshot::Sender<PassReport>> = Vec::new();
            let mut plans = Vec::new();
            let mut plan_only = false;
            tokio::select! {
                request = requests.recv() => match request {
                    None => return,
                    Some(Request::RunNow(reply)) => waiting.push(reply),
                    Some(Request::Trigger) => self.coalesce(&mut requests, &mut waiting, &mut plans).await,
                    Some(Request::Plan(proposals, reply)) => {
                        plans.push((proposals, reply));
                        plan_only = true;
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
            // Dry runs read and write nothing: any master answers them, between passes.
            for (proposals, reply) in plans.drain(..) {
                let plan = self.plan(&proposals).await;
                let _ = reply.send(plan);
            }
            if plan_only {
                continue; // the next pass stays due when it was
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
                self.ingress.forget_synced();
                self.last_drift = None;
            }
            if !waiting.is_empty() {
                // Asked for by an operator: a full look (drift repair, tunnel health included).
                self.last_drift = None;
            }
            let started = std::time::Instant::now();
            let sent_before = self.client.counters().sent.load(std::sync::atomic::Ordering::Relaxed);
            let report = self.pass().await;
            let sent = self.client.counters().sent.load(std::sync::atomic::Ordering::Relaxed) - sent_before;
            record_pass(&report, started.elapsed());
            self.publish_last_pass(&report, started.elapsed(), sent).await;
            let transient = !report.errors.is_empty();
            if report.changed_anything() || transient {
                log_pass(&report, started.elapsed());
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
                retry = (retry * 2).min(LONGEST_RETRY);
                wait
            } else {
                retry = FIRST_RETRY;
                self.next_wakeup()
            };
            next = tokio::time::Instant::now() + wait;
        }
    }

    /// Coalesces a burst of triggers into one pass: waits until they have been quiet for a
    /// moment, at most `debounce` after the first. A run-now request ends the wait.
    async fn coalesce(
        &self,
        requests: &mut mpsc::Receiver<Request>,
        waiting: &mut Vec<oneshot::Sender<PassReport>>,
        plans: &mut Vec<(Vec<super::dry_run::ProposedContainer>, oneshot::Sender<super::dry_run::Plan>)>,
    ) {
        let latest = tokio::time::Instant::now() + self.settings.debounce;
        loop {
            let until = latest.min(tokio::time::Instant::now() + self.settings.quiet);
            match tokio::time::timeout_at(until, requests.recv()).await {
                Ok(Some(Request::Trigger)) => continue,
                Ok(Some(Request::Plan(proposals, reply))) => plans.push((proposals, reply)),
                Ok(Some(Request::RunNow(reply))) => {
                    waiting.push(reply);
                    break;
                }
                Ok(None) | Err(_) => break,
            }
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
}

impl Reconciler {
    /// The last pass, for the dashboard on every master (the `last_pass` setting).
    async fn publish_last_pass(&self, report: &PassReport, took: Duration, requests: u64) {
        let budget = (requests, self.client.requests_per_5_minutes());
        let summary = super::settings::last_pass_summary(report, crate::clock::now_millis(), took, budget);
        if let Err(error) = self.store.set_setting(super::settings::LAST_PASS_SETTING, &summary).await {
            tracing::debug!(message = "Could not record the last reconcile pass.", %error);
        }
    }
}

/// The pass's metrics: passes by result, duration, errors by kind, the last success.
fn record_pass(report: &PassReport, took: Duration) {
    let result = if report.errors.is_empty() { "ok" } else { "error" };
    metrics::counter!("dockflare_reconcile_passes_total", "result" => result).increment(1);
    metrics::histogram!("dockflare_reconcile_pass_seconds").record(took.as_secs_f64());
    for error in &report.errors {
        metrics::counter!("dockflare_reconcile_errors_total", "kind" => super::settings::error_kind(error))
            .increment(1);
    }
    if report.errors.is_empty() {
        metrics::gauge!("dockflare_reconcile_last_success_timestamp_seconds").set(now_millis() as f64 / 1000.0);
    }
}

/// The pass's outcome, with how long it took (`took_ms`: it began that long before the record).
fn log_pass(report: &PassReport, took: Duration) {
    tracing::info!(
        message = "Reconcile pass.",
        took_ms = took.as_millis() as u64,
        tunnels_created = report.tunnels_created,
        tunnels_deleted = report.tunnels_deleted,
        ingress_updates = report.ingress_updates,
        dns_created = report.dns_created,
        dns_updated = report.dns_updated,
        dns_deleted = report.dns_deleted,
        commands_sent = report.commands_sent,
        routes_changed = report.routes_changed,
        access_apps_created = report.access_apps_created,
        access_apps_updated = report.access_apps_updated,
        access_apps_deleted = report.access_apps_deleted,
        access_policies_written = report.access_policies_written,
        access_policies_deleted = report.access_policies_deleted,
        errors = report.errors.len(),
    );
}
