//! Desired Access state against the account's: which of this installation's reusable policies
//! to create, update or delete; which applications to create or update (with the policies linked
//! by hand kept); which domains another party's application already covers (a conflict, never
//! overwritten); which of our applications nothing asks for any more. Pure.

use super::resolve::{DesiredApp, DesiredPolicy, PolicyRef};
use dockflare_cloudflare::types::{AccessApp, AccessAppRequest, AccessPolicy, AccessPolicyLink, AccessPolicyRequest};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The policy writes before the applications.
#[derive(Debug, Default, PartialEq)]
pub struct PolicyPlan {
    pub create: Vec<DesiredPolicy>,
    /// (id, what it must become).
    pub update: Vec<(String, DesiredPolicy)>,
}

/// Our policies to create or update: `desired` against `observed` (ours are found by name).
pub fn plan_policies(desired: &[DesiredPolicy], observed: &[AccessPolicy]) -> PolicyPlan {
    let by_name: HashMap<&str, &AccessPolicy> = observed.iter().map(|p| (p.name.as_str(), p)).collect();
    let mut plan = PolicyPlan::default();
    for want in desired {
        match by_name.get(want.name.as_str()) {
            None => plan.create.push(want.clone()),
            Some(found) if !policy_matches(want, found) => plan.update.push((found.id.clone(), want.clone())),
            Some(_) => {}
        }
    }
    plan
}

fn policy_matches(want: &DesiredPolicy, found: &AccessPolicy) -> bool {
    want.decision == found.decision
        && want.include == found.include
        && want.exclude == found.exclude
        && want.require == found.require
        && (want.session_duration.is_none() || want.session_duration == found.session_duration)
}

/// The request body of a policy.
pub fn policy_request(policy: &DesiredPolicy) -> AccessPolicyRequest {
    AccessPolicyRequest {
        name: policy.name.clone(),
        decision: policy.decision.clone(),
        include: policy.include.clone(),
        exclude: policy.exclude.clone(),
        require: policy.require.clone(),
        session_duration: policy.session_duration.clone(),
    }
}

/// One application write.
#[derive(Debug, Clone, PartialEq)]
pub enum AppWrite {
    Create(AccessAppRequest),
    /// (id, the whole application as it must be).
    Update(String, AccessAppRequest),
}

/// The application writes, by domain.
#[derive(Debug, Default, PartialEq)]
pub struct AppPlan {
    pub writes: BTreeMap<String, AppWrite>,
    /// Domains covered by an application that is not ours: the reason, for its route.
    pub conflicts: BTreeMap<String, String>,
    /// Domains whose application cannot be written yet (a policy of ours is missing): why.
    pub blocked: BTreeMap<String, String>,
}

/// Applications to create or update. `policy_ids` maps our policies' names to their ids;
/// `tag` is [`super::owner_tag`], `prefix` [`super::policy_prefix`].
pub fn plan_apps(
    desired: &[DesiredApp],
    observed: &[AccessApp],
    policy_ids: &HashMap<String, String>,
    tag: &str,
    prefix: &str,
) -> AppPlan {
    let by_domain: HashMap<String, &AccessApp> = observed.iter().map(|a| (a.domain.to_ascii_lowercase(), a)).collect();
    let mut plan = AppPlan::default();
    for want in desired {
        let found = by_domain.get(&want.domain.to_ascii_lowercase()).copied();
        if let Some(app) = found.filter(|app| !app.tags.iter().any(|t| t == tag)) {
            plan.conflicts.insert(
                want.domain.clone(),
                format!(
                    "conflict: the Access application {:?} ({}) covers {}, and this DockFlare did not make it: it is \
                     never overwritten. Delete it, tag it {tag:?} to hand it over, or remove the access.* labels",
                    app.name, app.id, want.domain
                ),
            );
            continue;
        }
        let mut links = Vec::new();
        let mut missing = Vec::new();
        for reference in &want.policies {
            match reference {
                PolicyRef::Account(id) => links.push(id.clone()),
                PolicyRef::Owned(name) => match policy_ids.get(name) {
                    Some(id) => links.push(id.clone()),
                    None => missing.push(name.clone()),
                },
            }
        }
        if !missing.is_empty() {
            plan.blocked.insert(
                want.domain.clone(),
                format!("waiting for its Access policies {} to exist", missing.join(", ")),
            );
            continue;
        }
        // Policies attached by hand stay attached, after ours.
        if let Some(app) = found {
            let ours: BTreeSet<&String> = links.iter().collect();
            let kept: Vec<String> = app
                .policies
                .iter()
                .filter(|p| !ours.contains(&p.id) && !p.name.starts_with(prefix))
                .map(|p| p.id.clone())
                .collect();
            links.extend(kept);
        }
        let mut tags: Vec<String> = found.map(|app| app.tags.clone()).unwrap_or_default();
        if !tags.iter().any(|t| t == tag) {
            tags.push(tag.to_string());
        }
        let request = AccessAppRequest {
            app_type: "self_hosted".into(),
            domain: want.domain.clone(),
            name: want.name.clone(),
            session_duration: Some(want.session_duration.clone()),
            app_launcher_visible: Some(want.app_launcher_visible),
            allowed_idps: want.allowed_idps.clone(),
            auto_redirect_to_identity: Some(want.auto_redirect_to_identity),
            tags,
            policies: links
                .iter()
                .enumerate()
                .map(|(n, id)| AccessPolicyLink { id: id.clone(), precedence: n as i64 + 1 })
                .collect(),
        };
        match found {
            None => {
                plan.writes.insert(want.domain.clone(), AppWrite::Create(request));
            }
            Some(app) if !app_matches(&request, app) => {
                plan.writes.insert(want.domain.clone(), AppWrite::Update(app.id.clone(), request));
            }
            Some(_) => {}
        }
    }
    plan
}

/// Whether `app` already is what `request` asks for (Cloudflare's defaults filled in).
fn app_matches(request: &AccessAppRequest, app: &AccessApp) -> bool {
    let mut linked: Vec<(i64, &str)> =
        app.policies.iter().enumerate().map(|(n, p)| (p.precedence.unwrap_or(n as i64 + 1), p.id.as_str())).collect();
    linked.sort();
    let linked: Vec<&str> = linked.into_iter().map(|(_, id)| id).collect();
    let wanted: Vec<&str> = request.policies.iter().map(|p| p.id.as_str()).collect();
    let sorted = |list: &[String]| {
        let mut list = list.to_vec();
        list.sort();
        list
    };
    app.name == request.name
        && app.app_type == request.app_type
        && app.session_duration.as_deref().unwrap_or("24h") == request.session_duration.as_deref().unwrap_or("24h")
        && app.app_launcher_visible.unwrap_or(false) == request.app_launcher_visible.unwrap_or(false)
        && app.auto_redirect_to_identity.unwrap_or(false) == request.auto_redirect_to_identity.unwrap_or(false)
        && sorted(&app.allowed_idps) == sorted(&request.allowed_idps)
        && sorted(&app.tags) == sorted(&request.tags)
        && linked == wanted
}

/// Our applications (tagged `tag`) whose domain nothing asks for.
pub fn leftover_apps<'a>(observed: &'a [AccessApp], desired: &BTreeSet<String>, tag: &str) -> Vec<&'a AccessApp> {
    observed
        .iter()
        .filter(|app| app.tags.iter().any(|t| t == tag) && !desired.contains(&app.domain.to_ascii_lowercase()))
        .collect()
}

/// Our policies (named with `prefix`) that are neither wanted nor linked by any application.
pub fn leftover_policies<'a>(
    observed: &'a [AccessPolicy],
    wanted: &BTreeSet<String>,
    apps: &[AccessApp],
    prefix: &str,
) -> Vec<&'a AccessPolicy> {
    let linked: BTreeSet<&str> = apps.iter().flat_map(|a| a.policies.iter().map(|p| p.id.as_str())).collect();
    observed
        .iter()
        .filter(|p| p.name.starts_with(prefix) && !wanted.contains(&p.name) && !linked.contains(p.id.as_str()))
        .collect()
}

#[cfg(test)]
mod tests;
