//! The Access step after the routes: our applications nothing asks for are deleted (one whose
//! hostname went public stays for the grace period first, `access_releases`), then our
//! policies nothing uses.

use super::account::{call_error, ACCESS_PERMISSION};
use super::apply::{row_domain, AccessPass, AccessStep, AccessSync};
use super::{owner_tag, plan, policy_prefix};
use crate::model::RouteRow;
use crate::reconcile::PassReport;
use crate::store::AccessRelease;
use dockflare_cloudflare::types::{AccessApp, AccessPolicy};
use std::collections::{BTreeSet, HashMap};

impl AccessSync {
    /// Deletes our applications nothing asks for (after the routes left; one whose hostname is
    /// now public stays for the grace period), then our policies nothing uses.
    pub async fn after_routes(
        &mut self,
        step: &AccessStep<'_>,
        pass: AccessPass,
        rows: &[RouteRow],
        report: &mut PassReport,
    ) {
        if !pass.active {
            return;
        }
        let stale = self.stale;
        let Some(cache) = self.cache.as_mut() else { return };
        let tag = owner_tag(step.installation_id);
        let prefix = policy_prefix(step.installation_id);
        let public: BTreeSet<String> =
            rows.iter().filter(|r| r.status.is_routed() && r.spec.access_json.is_empty()).map(row_domain).collect();
        let releases: HashMap<&str, &AccessRelease> = pass.releases.iter().map(|r| (r.domain.as_str(), r)).collect();
        let leftovers: Vec<AccessApp> =
            plan::leftover_apps(&cache.apps, &pass.desired_domains, &tag).into_iter().cloned().collect();
        let mut releasing = BTreeSet::new();
        // The soonest end of a release: the next pass is due then.
        let mut soonest: Option<i64> = None;
        if !stale {
            for app in leftovers {
                let domain = app.domain.to_lowercase();
                if public.contains(&domain) {
                    match releases.get(domain.as_str()) {
                        Some(release) if release.delete_at > step.now => {
                            soonest = soonest.min(Some(release.delete_at)).or(Some(release.delete_at));
                            releasing.insert(domain);
                            continue;
                        }
                        Some(_) => {}
                        None => {
                            let release = AccessRelease {
                                domain: domain.clone(),
                                app_id: app.id.clone(),
                                delete_at: step.now + step.grace_ms,
                            };
                            if let Some(dry) = step.dry_run {
                                dry.record(
                                    "access_application",
                                    "release",
                                    &domain,
                                    format!(
                                        "its route is public now: kept until the grace period ends, then deleted ({})",
                                        app.id
                                    ),
                                );
                                releasing.insert(domain);
                                continue;
                            }
                            soonest = soonest.min(Some(release.delete_at)).or(Some(release.delete_at));
                            match step.store.start_access_release(&release).await {
                                Ok(()) => tracing::info!(
                                    message = "Access application kept for the grace period: its route is public now.",
                                    domain = %domain, id = %app.id,
                                ),
                                Err(error) => {
                                    report.errors.push(format!("storing the Access release of {domain}: {error}"))
                                }
                            }
                            releasing.insert(domain);
                            continue;
                        }
                    }
                }
                let deleted = match step.dry_run {
                    Some(dry) => {
                        dry.record("access_application", "delete", &domain, format!("{} ({})", app.name, app.id));
                        Ok(())
                    }
                    None => step.client.delete_access_app(&app.id).await,
                };
                match deleted {
                    Ok(()) => {
                        report.access_apps_deleted += 1;
                        tracing::info!(message = "Access application deleted.", domain = %app.domain, id = %app.id);
                        cache.apps.retain(|a| a.id != app.id);
                    }
                    Err(error) => report.errors.push(call_error(
                        &format!("deleting the Access application for {}", app.domain),
                        ACCESS_PERMISSION,
                        &error,
                    )),
                }
            }
        }
        for release in &pass.releases {
            let gone = !cache.apps.iter().any(|a| a.id == release.app_id);
            if (gone || !releasing.contains(&release.domain)) && !stale && step.dry_run.is_none() {
                if let Err(error) = step.store.end_access_release(&release.domain).await {
                    report.errors.push(format!("ending the Access release of {}: {error}", release.domain));
                }
            }
        }
        if !stale {
            let leftover: Vec<AccessPolicy> =
                plan::leftover_policies(&cache.policies, &pass.wanted_policies, &cache.apps, &prefix)
                    .into_iter()
                    .cloned()
                    .collect();
            for policy in leftover {
                let deleted = match step.dry_run {
                    Some(dry) => {
                        dry.record("access_policy", "delete", &policy.name, format!("unused ({})", policy.id));
                        Ok(())
                    }
                    None => step.client.delete_access_policy(&policy.id).await,
                };
                match deleted {
                    Ok(()) => {
                        report.access_policies_deleted += 1;
                        tracing::info!(message = "Access policy deleted.", name = %policy.name, id = %policy.id);
                        cache.policies.retain(|p| p.id != policy.id);
                    }
                    Err(error) => report.errors.push(call_error(
                        &format!("deleting Access policy {}", policy.name),
                        ACCESS_PERMISSION,
                        &error,
                    )),
                }
            }
        }
        if step.dry_run.is_none() {
            self.next_release = soonest;
        }
        if stale {
            self.cache = None;
            self.stale = false;
        }
    }
}
