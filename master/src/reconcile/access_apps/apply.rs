//! The pass's Access step, in two halves around ingress and DNS:
//! [`AccessSync::before_routes`] observes the account (cached between passes, re-read on drift
//! passes), resolves each protected route, and writes our policies then our applications — a
//! route whose application is not in place is not published; [`AccessSync::after_routes`] then
//! deletes what nothing asks for (applications, then policies), after the routes went.
//!
//! A token without the Access permission is said once per problem (log, route reasons, the
//! pass's errors), and routes without Access labels keep working.

use super::account::{call_error, ensure_tag, observe, operator_policies, Cached};
pub use super::account::{ACCESS_PERMISSION, IDP_PERMISSION, MEMBERS_PERMISSION};
use super::describe::{app_detail, planned_app};
use super::plan::{self, AppWrite};
use super::resolve::{self, AccountView, Protection};
use super::writes;
use super::{labels_from_json, owner_tag, policy_prefix};
use crate::model::{RouteRow, Status};
use crate::reconcile::dry_run::DryRun;
use crate::reconcile::PassReport;
use crate::store::{AccessRelease, Store};
use dockflare_cloudflare::client::CloudflareClient;
use dockflare_common::labels::access::application_domain;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// What the reason of a route that keeps its last good Access state starts with.
const KEPT: &str = "kept its last good Access state";

/// The Access step's state between passes.
#[derive(Debug, Default, Clone)]
pub struct AccessSync {
    pub(super) cache: Option<Cached>,
    /// Whether our ownership tag exists in the account.
    pub(super) tag_ready: bool,
    /// Whether the account was looked at once (the start's permission check).
    pub(super) checked: bool,
    /// The unavailability last logged (said once).
    pub(super) logged: Option<String>,
    /// A write's outcome is unknown: read the account again next pass, delete nothing now.
    pub(super) stale: bool,
    /// When the soonest release ends (Unix ms): a pass is due then.
    pub(super) next_release: Option<i64>,
}

impl AccessSync {
    /// When the soonest application release ends (Unix ms): the next pass is due then at the latest.
    pub fn next_release(&self) -> Option<i64> {
        self.next_release
    }
}

/// What the Access step needs of the pass.
pub struct AccessStep<'a> {
    pub client: &'a CloudflareClient,
    pub store: &'a Store,
    pub installation_id: &'a str,
    pub now: i64,
    pub grace_ms: i64,
    /// A dry run: writes are recorded here instead of made ([`crate::reconcile::dry_run`]).
    pub dry_run: Option<&'a DryRun>,
}

/// What [`AccessSync::before_routes`] decided, for [`AccessSync::after_routes`].
#[derive(Debug, Default)]
pub struct AccessPass {
    /// Whether the account was observed and written this pass (else nothing is deleted).
    pub(super) active: bool,
    /// The domains our applications must keep covering.
    pub(super) desired_domains: BTreeSet<String>,
    /// Our policies that must stay.
    pub(super) wanted_policies: BTreeSet<String>,
    pub(super) releases: Vec<AccessRelease>,
}

/// The domain an application for `row` covers (its hostname when the path is a pattern).
pub(super) fn row_domain(row: &RouteRow) -> String {
    application_domain(&row.spec.hostname, &row.spec.path).unwrap_or_else(|_| row.spec.hostname.clone()).to_lowercase()
}

fn is_protected(row: &RouteRow) -> bool {
    row.status.is_routed() && !row.spec.access_json.is_empty()
}

impl AccessSync {
    /// Resolves the protected rows, writes policies and applications; rows whose protection is
    /// not in place are withheld (`invalid`) or kept on their last good state.
    #[allow(clippy::too_many_arguments)]
    pub async fn before_routes(
        &mut self,
        step: &AccessStep<'_>,
        rows: &mut [RouteRow],
        removed: &[RouteRow],
        existing: &[RouteRow],
        errors: &mut HashMap<usize, String>,
        drift: bool,
        report: &mut PassReport,
    ) -> AccessPass {
        let protected: Vec<usize> = (0..rows.len()).filter(|&i| is_protected(&rows[i])).collect();
        let releases = match step.store.list_access_releases().await {
            Ok(releases) => releases,
            Err(error) => {
                report.errors.push(format!("reading Access releases: {error}"));
                return self.withhold_all(rows, &protected, existing, errors, "the store could not be read");
            }
        };
        let operator = match operator_policies(step.store).await {
            Ok(operator) => operator,
            Err(error) => {
                report.errors.push(format!("reading the operator's Access policies: {error}"));
                return self.withhold_all(rows, &protected, existing, errors, "the store could not be read");
            }
        };
        let ours_known = self.cache.as_ref().is_some_and(|c| {
            let prefix = policy_prefix(step.installation_id);
            let tag = owner_tag(step.installation_id);
            c.apps.iter().any(|a| a.tags.contains(&tag)) || c.policies.iter().any(|p| p.name.starts_with(&prefix))
        });
        let needed = !protected.is_empty()
            || !operator.is_empty()
            || !releases.is_empty()
            || removed.iter().any(|r| !r.spec.access_json.is_empty())
            || ours_known;
        if !needed && self.checked && !drift {
            return AccessPass::default();
        }
        if self.cache.is_none() || drift {
            match observe(step.client).await {
                Ok(cached) => {
                    self.cache = Some(cached);
                    if self.logged.take().is_some() {
                        tracing::info!(message = "Cloudflare Access is available again.");
                    }
                }
                Err(error) => {
                    self.cache = None;
                    let why = call_error("listing Access applications and policies", ACCESS_PERMISSION, &error);
                    let first = !self.checked;
                    self.checked = true;
                    if self.logged.as_deref() != Some(why.as_str()) {
                        tracing::error!(
                            message = "Cloudflare Access is unavailable: routes with Access labels are not published; \
                                       routes without keep working.",
                            reason = %why,
                        );
                        self.logged = Some(why.clone());
                    }
                    if protected.is_empty() && first {
                        return AccessPass::default();
                    }
                    if !protected.is_empty() || !error.is_permission_denied() {
                        report.errors.push(format!("Access: {why}"));
                    }
                    return self.withhold_all(rows, &protected, existing, errors, &why);
                }
            }
        }
        self.checked = true;
        let Some(cache) = self.cache.as_mut() else { return AccessPass::default() };
        let needs = |needle: &str| protected.iter().any(|&i| rows[i].spec.access_json.contains(needle));
        if cache.idps.is_none() && needs("allowed_idps") {
            cache.idps = Some(
                step.client
                    .list_identity_providers()
                    .await
                    .map_err(|e| call_error("listing identity providers", IDP_PERMISSION, &e)),
            );
        }
        if cache.members.is_none() && needs("\"authenticate\"") {
            cache.members = Some(
                step.client
                    .list_account_members()
                    .await
                    .map(|members| {
                        members
                            .into_iter()
                            .filter(|m| m.status.as_deref().is_none_or(|s| s == "accepted"))
                            .map(|m| m.user.email)
                            .filter(|email| !email.is_empty())
                            .collect()
                    })
                    .map_err(|e| call_error("listing the account's members", MEMBERS_PERMISSION, &e)),
            );
        }
        let view = AccountView {
            apps: cache.apps.clone(),
            policies: cache.policies.clone(),
            idps: cache.idps.clone().unwrap_or_else(|| Ok(Vec::new())),
            members: cache.members.clone().unwrap_or_else(|| Ok(Vec::new())),
            operator: operator.clone(),
            prefix: policy_prefix(step.installation_id),
        };

        // Resolve each protected row (or fall back on its last good state).
        let mut protections: BTreeMap<usize, Protection> = BTreeMap::new();
        for &index in &protected {
            let row = &mut rows[index];
            match resolve_row(row, &view) {
                Ok(protection) => {
                    if row.reason.starts_with(KEPT) {
                        row.reason.clear();
                    }
                    protections.insert(index, protection);
                }
                Err(reason) => match last_good(row, existing, &view) {
                    Some((access_json, protection)) => {
                        row.spec.access_json = access_json;
                        row.reason = format!("{KEPT} (its labels changed): {reason}");
                        protections.insert(index, protection);
                    }
                    None => {
                        row.status = Status::Invalid;
                        row.reason = reason;
                    }
                },
            }
        }

        // Our policies first: every operator policy, and those the routes need.
        let mut desired_policies: BTreeMap<String, resolve::DesiredPolicy> = BTreeMap::new();
        for def in &operator {
            let policy = resolve::DesiredPolicy::synced(&view.prefix, def);
            desired_policies.insert(policy.name.clone(), policy);
        }
        for protection in protections.values() {
            if let Protection::App { policies, .. } = protection {
                for policy in policies {
                    desired_policies.entry(policy.name.clone()).or_insert_with(|| policy.clone());
                }
            }
        }
        let desired: Vec<resolve::DesiredPolicy> = desired_policies.values().cloned().collect();
        let policy_plan = plan::plan_policies(&desired, &cache.policies);
        writes::write_policies(step, &mut cache.policies, &policy_plan, report).await;

        // Then the applications.
        let tag = owner_tag(step.installation_id);
        let policy_ids: HashMap<String, String> = cache
            .policies
            .iter()
            .filter(|p| p.name.starts_with(&view.prefix))
            .map(|p| (p.name.clone(), p.id.clone()))
            .collect();
        let mut desired_apps: BTreeMap<String, resolve::DesiredApp> = BTreeMap::new();
        for protection in protections.values() {
            if let Protection::App { app, .. } = protection {
                desired_apps.entry(app.domain.to_lowercase()).or_insert_with(|| app.clone());
            }
        }
        let apps: Vec<resolve::DesiredApp> = desired_apps.values().cloned().collect();
        let app_plan = plan::plan_apps(&apps, &cache.apps, &policy_ids, &tag, &view.prefix);
        let mut failed: BTreeMap<String, (bool, String)> = BTreeMap::new(); // domain → (app exists, why)
        for (domain, why) in &app_plan.blocked {
            let exists = cache.apps.iter().any(|a| a.domain.eq_ignore_ascii_case(domain));
            failed.insert(domain.to_lowercase(), (exists, why.clone()));
        }
        if !app_plan.writes.is_empty() && !self.tag_ready {
            let ensured = match step.dry_run {
                Some(dry) => match step.client.list_access_tags().await {
                    Ok(tags) if !tags.iter().any(|t| t.name == tag) => {
                        dry.record("access_tag", "create", &tag, "marks this installation's applications");
                        Ok(())
                    }
                    Ok(_) => Ok(()),
                    Err(error) => Err(error),
                },
                None => ensure_tag(step.client, &tag).await,
            };
            match ensured {
                Ok(()) => self.tag_ready = true,
                Err(error) => {
                    let why = call_error(&format!("creating the Access tag {tag}"), ACCESS_PERMISSION, &error);
                    report.errors.push(why.clone());
                    for (domain, write) in &app_plan.writes {
                        failed.insert(domain.to_lowercase(), (matches!(write, AppWrite::Update(..)), why.clone()));
                    }
                }
            }
        }
        let mut stale = false;
        // An update replaces the whole application: read it first, so that what someone changed
        // since the cache was filled (a policy attached by hand) is kept.
        let mut app_plan = app_plan;
        let context =
            writes::AppContext { desired: &desired_apps, policy_ids: &policy_ids, tag: &tag, prefix: &view.prefix };
        writes::reread_updates(step, &mut cache.apps, &mut app_plan, &context, &mut failed, report).await;
        if self.tag_ready {
            for (domain, write) in &app_plan.writes {
                let (result, exists) = match (write, step.dry_run) {
                    (AppWrite::Create(request), Some(dry)) => {
                        dry.record("access_application", "create", domain, app_detail(request));
                        (Ok(planned_app("(new)", request)), false)
                    }
                    (AppWrite::Update(id, request), Some(dry)) => {
                        dry.record("access_application", "update", domain, app_detail(request));
                        (Ok(planned_app(id, request)), true)
                    }
                    (AppWrite::Create(request), None) => (step.client.create_access_app(request).await, false),
                    (AppWrite::Update(id, request), None) => (step.client.update_access_app(id, request).await, true),
                };
                match result {
                    Ok(app) => {
                        tracing::info!(
                            message = if exists { "Access application updated." } else { "Access application created." },
                            domain = %app.domain, id = %app.id, name = %app.name,
                        );
                        if exists {
                            report.access_apps_updated += 1;
                            if let Some(slot) = cache.apps.iter_mut().find(|a| a.id == app.id) {
                                *slot = app;
                            }
                        } else {
                            report.access_apps_created += 1;
                            cache.apps.push(app);
                        }
                    }
                    Err(error) => {
                        let why = call_error(
                            &format!("writing the Access application for {domain}"),
                            ACCESS_PERMISSION,
                            &error,
                        );
                        report.errors.push(why.clone());
                        if error.is_transient() || !exists {
                            // The answer may be lost though the write happened: look again next pass.
                            stale = true;
                        }
                        failed.insert(domain.to_lowercase(), (exists, why));
                    }
                }
            }
        }

        self.stale |= stale;

        // What that means for each row.
        let mut desired_domains = BTreeSet::new();
        for (&index, protection) in &protections {
            let row = &mut rows[index];
            let Protection::App { app, .. } = protection else { continue };
            let domain = app.domain.to_lowercase();
            if let Some(reason) = app_plan.conflicts.get(&app.domain) {
                row.status = Status::Conflict;
                row.reason = reason.clone();
                continue;
            }
            desired_domains.insert(domain.clone());
            match failed.get(&domain) {
                Some((true, why)) => {
                    errors.insert(index, format!("Access: {why}"));
                }
                Some((false, why)) => {
                    row.status = Status::Invalid;
                    row.reason = format!("not published yet: its Access application is not in place: {why}");
                }
                None => {}
            }
        }
        AccessPass { active: true, desired_domains, wanted_policies: desired_policies.into_keys().collect(), releases }
    }

    /// Access cannot be used this pass: rows already published with the same labels stay (their
    /// application protects them); the others are withheld with `why`.
    fn withhold_all(
        &mut self,
        rows: &mut [RouteRow],
        protected: &[usize],
        existing: &[RouteRow],
        errors: &mut HashMap<usize, String>,
        why: &str,
    ) -> AccessPass {
        for &index in protected {
            let row = &mut rows[index];
            let published = existing.iter().any(|old| {
                old.key() == row.key()
                    && old.owner == row.owner
                    && old.status.is_routed()
                    && old.spec.access_json == row.spec.access_json
            });
            if published {
                errors.insert(index, format!("Access: {why}"));
            } else {
                row.status = Status::Invalid;
                row.reason = format!("not published: it asks for Cloudflare Access protection, and {why}");
            }
        }
        AccessPass::default()
    }
}

fn resolve_row(row: &RouteRow, view: &AccountView) -> Result<Protection, String> {
    let labels = labels_from_json(&row.spec.access_json)?;
    resolve::resolve(&labels, &row.spec.hostname, &row.spec.path, view)
}

/// The stored row's Access labels when it was published with others that still resolve.
fn last_good(row: &RouteRow, existing: &[RouteRow], view: &AccountView) -> Option<(String, Protection)> {
    let old = existing.iter().find(|old| {
        old.key() == row.key()
            && old.owner == row.owner
            && old.status.is_routed()
            && !old.spec.access_json.is_empty()
            && old.spec.access_json != row.spec.access_json
    })?;
    let protection = resolve_row(old, view).ok()?;
    Some((old.spec.access_json.clone(), protection))
}
