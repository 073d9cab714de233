//! The Access step's writes of policies, and the fresh read before an application is replaced.

use super::account::{call_error, ACCESS_PERMISSION};
use super::apply::AccessStep;
use super::describe::policy_detail;
use super::plan::{self, AppPlan, AppWrite, PolicyPlan};
use super::resolve;
use crate::reconcile::PassReport;
use dockflare_cloudflare::types::{AccessApp, AccessPolicy};
use std::collections::{BTreeMap, HashMap};

/// Creates and updates our policies (or records it, in a dry run); `policies` follows.
pub(super) async fn write_policies(
    step: &AccessStep<'_>,
    policies: &mut Vec<AccessPolicy>,
    policy_plan: &PolicyPlan,
    report: &mut PassReport,
) {
    for policy in &policy_plan.create {
        let result = match step.dry_run {
            Some(dry) => {
                dry.record("access_policy", "create", &policy.name, policy_detail(policy));
                Ok(AccessPolicy {
                    id: format!("(new) {}", policy.name),
                    name: policy.name.clone(),
                    ..Default::default()
                })
            }
            None => step.client.create_access_policy(&plan::policy_request(policy)).await,
        };
        match result {
            Ok(created) => {
                report.access_policies_written += 1;
                tracing::info!(message = "Access policy created.", name = %created.name, id = %created.id);
                policies.push(created);
            }
            Err(error) => report.errors.push(call_error(
                &format!("creating Access policy {}", policy.name),
                ACCESS_PERMISSION,
                &error,
            )),
        }
    }
    for (id, policy) in &policy_plan.update {
        let result = match step.dry_run {
            Some(dry) => {
                dry.record("access_policy", "update", &policy.name, policy_detail(policy));
                Ok(AccessPolicy { id: id.clone(), name: policy.name.clone(), ..Default::default() })
            }
            None => step.client.update_access_policy(id, &plan::policy_request(policy)).await,
        };
        match result {
            Ok(updated) => {
                report.access_policies_written += 1;
                tracing::info!(message = "Access policy updated.", name = %updated.name, id = %updated.id);
                if let Some(slot) = policies.iter_mut().find(|p| p.id == *id) {
                    *slot = updated;
                }
            }
            Err(error) => report.errors.push(call_error(
                &format!("updating Access policy {}", policy.name),
                ACCESS_PERMISSION,
                &error,
            )),
        }
    }
}

/// What deciding an application's write needs.
pub(super) struct AppContext<'a> {
    pub desired: &'a BTreeMap<String, resolve::DesiredApp>,
    pub policy_ids: &'a HashMap<String, String>,
    pub tag: &'a str,
    pub prefix: &'a str,
}

/// Reads each application about to be replaced and plans its write again from what it is now:
/// a policy attached by hand since the cache was filled stays; one deleted meanwhile is made
/// again. `failed`: domain → (the application exists, why its write cannot happen).
pub(super) async fn reread_updates(
    step: &AccessStep<'_>,
    apps: &mut Vec<AccessApp>,
    app_plan: &mut AppPlan,
    context: &AppContext<'_>,
    failed: &mut BTreeMap<String, (bool, String)>,
    report: &mut PassReport,
) {
    let updates: Vec<String> = app_plan
        .writes
        .iter()
        .filter(|(_, write)| matches!(write, AppWrite::Update(..)))
        .map(|(domain, _)| domain.clone())
        .collect();
    for domain in updates {
        let Some(AppWrite::Update(id, _)) = app_plan.writes.get(&domain) else { continue };
        let id = id.clone();
        match step.client.get_access_app(&id).await {
            Ok(Some(fresh)) => {
                if let Some(slot) = apps.iter_mut().find(|a| a.id == id) {
                    *slot = fresh.clone();
                }
                let want: Vec<resolve::DesiredApp> =
                    context.desired.get(&domain.to_lowercase()).cloned().into_iter().collect();
                let again = plan::plan_apps(&want, &[fresh], context.policy_ids, context.tag, context.prefix);
                match again.writes.into_values().next() {
                    Some(write) => {
                        app_plan.writes.insert(domain, write);
                    }
                    None => {
                        app_plan.writes.remove(&domain);
                        if let Some(reason) = again.conflicts.into_values().next() {
                            app_plan.conflicts.insert(domain, reason);
                        }
                    }
                }
            }
            // Deleted by hand meanwhile: made again, as it must be.
            Ok(None) => {
                apps.retain(|a| a.id != id);
                let want: Vec<resolve::DesiredApp> =
                    context.desired.get(&domain.to_lowercase()).cloned().into_iter().collect();
                let again = plan::plan_apps(&want, &[], context.policy_ids, context.tag, context.prefix);
                if let Some(write) = again.writes.into_values().next() {
                    app_plan.writes.insert(domain, write);
                }
            }
            Err(error) => {
                let why =
                    call_error(&format!("reading the Access application for {domain}"), ACCESS_PERMISSION, &error);
                report.errors.push(why.clone());
                app_plan.writes.remove(&domain);
                failed.insert(domain.to_lowercase(), (true, why));
            }
        }
    }
}
