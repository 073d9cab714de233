//! A route's Access labels, resolved against what the account holds: the application it needs
//! and the reusable policies that application links, or why the route cannot be protected as
//! asked (the label, and the names that do exist). Pure.
//!
//! Policy names resolve first to the operator's policies (synced to the account as this
//! installation's reusable policies), then to the account's reusable policies by name, then by
//! id. `bypass`, `authenticate` and `custom_rules` objects become this installation's own
//! reusable policies (named by [`super::policy_prefix`]; a `custom_rules` object by the hash of
//! its content, so the same rules on many routes are one policy).

use crate::model::OperatorPolicy;
use dockflare_cloudflare::types::{AccessApp, AccessPolicy, IdentityProvider};
use dockflare_common::labels::access::{self, AccessLabels, AccessRequest, InlinePolicy, PolicyChoice};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// What the account holds, as far as resolving needs it.
#[derive(Debug, Clone)]
pub struct AccountView {
    pub apps: Vec<AccessApp>,
    pub policies: Vec<AccessPolicy>,
    /// `Err`: why they could not be listed.
    pub idps: Result<Vec<IdentityProvider>, String>,
    /// The account members' emails (for `authenticate`); `Err`: why they could not be listed.
    pub members: Result<Vec<String>, String>,
    /// The operator's policies (admin API, CLI or file).
    pub operator: Vec<OperatorPolicy>,
    /// [`super::policy_prefix`].
    pub prefix: String,
}

/// A reusable policy this installation keeps (creates or updates to match).
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredPolicy {
    pub name: String,
    pub decision: String,
    pub include: Vec<Value>,
    pub exclude: Vec<Value>,
    pub require: Vec<Value>,
    pub session_duration: Option<String>,
}

impl DesiredPolicy {
    /// The reusable policy an operator's policy is synced to (named with `prefix`).
    pub fn synced(prefix: &str, def: &OperatorPolicy) -> DesiredPolicy {
        DesiredPolicy {
            name: format!("{prefix}{}", def.name),
            decision: def.decision.clone(),
            include: def.include.clone(),
            exclude: def.exclude.clone(),
            require: def.require.clone(),
            session_duration: def.session_duration.clone(),
        }
    }
}

/// A policy an application links.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PolicyRef {
    /// A reusable policy of the account (not ours), by id.
    Account(String),
    /// One of this installation's reusable policies, by name (its id is known once it exists).
    Owned(String),
}

/// The application a protected route needs.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredApp {
    pub domain: String,
    pub name: String,
    pub session_duration: String,
    pub app_launcher_visible: bool,
    pub allowed_idps: Vec<String>,
    pub auto_redirect_to_identity: bool,
    pub policies: Vec<PolicyRef>,
}

/// How a route is protected.
#[derive(Debug, Clone, PartialEq)]
pub enum Protection {
    /// `default_tld`: the account's application for this wildcard covers it.
    ZoneDefault { wildcard: String },
    /// Its own application, and the policies of ours it needs.
    App { app: DesiredApp, policies: Vec<DesiredPolicy> },
}

/// Resolves a route's Access labels (non-empty) for `hostname` + `path`.
pub fn resolve(labels: &AccessLabels, hostname: &str, path: &str, account: &AccountView) -> Result<Protection, String> {
    let request = access::interpret(labels).map_err(|problems| {
        let said: Vec<String> = problems.iter().map(|d| format!("{}={:?}: {}", d.label, d.value, d.reason)).collect();
        format!("not published: its Access labels are wrong: {}", said.join("; "))
    })?;
    let app = match request {
        AccessRequest::ZoneDefault { label } => return zone_default(&label, hostname, account),
        AccessRequest::Application(app) => app,
    };
    let domain = access::application_domain(hostname, path).map_err(|reason| format!("not published: {reason}"))?;
    let mut refs = Vec::new();
    let mut owned = Vec::new();
    for choice in &app.policies {
        match choice {
            PolicyChoice::Bypass => {
                let policy = keyword_policy(account, "bypass", "bypass", vec![json!({"everyone": {}})]);
                refs.push(PolicyRef::Owned(policy.name.clone()));
                owned.push(policy);
            }
            PolicyChoice::Authenticate => {
                let members = account.members.as_ref().map_err(|why| {
                    format!(
                        "not published: access.policy=authenticate lets the Cloudflare account's members in, and \
                         they cannot be listed: {why}"
                    )
                })?;
                if members.is_empty() {
                    return Err("not published: access.policy=authenticate lets the Cloudflare account's members \
                                in, and the account lists none"
                        .into());
                }
                let include = members.iter().map(|email| json!({"email": {"email": email}})).collect();
                let policy = keyword_policy(account, "authenticate", "allow", include);
                refs.push(PolicyRef::Owned(policy.name.clone()));
                owned.push(policy);
            }
            PolicyChoice::Named { label, name, required } => match named(account, name) {
                Some((reference, policy)) => {
                    refs.push(reference);
                    owned.extend(policy);
                }
                None if !required => {}
                None => return Err(unknown_policy(account, label, name)),
            },
            PolicyChoice::Inline { policy, .. } => {
                let policy = inline(account, policy)?;
                refs.push(PolicyRef::Owned(policy.name.clone()));
                owned.push(policy);
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    refs.retain(|r| seen.insert(r.clone()));
    let mut names = std::collections::BTreeSet::new();
    owned.retain(|p| names.insert(p.name.clone()));
    let allowed_idps = if app.allowed_idps.is_empty() {
        Vec::new()
    } else {
        identity_providers(account, &app.allowed_idps_label, &app.allowed_idps)?
    };
    let default_name = if path.is_empty() {
        format!("DockFlare-{hostname}")
    } else {
        format!("DockFlare-{hostname}-{}", path.trim_start_matches('/'))
    };
    Ok(Protection::App {
        app: DesiredApp {
            domain,
            name: app.name.unwrap_or(default_name),
            session_duration: app.session_duration.unwrap_or_else(|| "24h".into()),
            app_launcher_visible: app.app_launcher_visible.unwrap_or(false),
            allowed_idps,
            auto_redirect_to_identity: app.auto_redirect_to_identity.unwrap_or(false),
            policies: refs,
        },
        policies: owned,
    })
}

fn zone_default(label: &str, hostname: &str, account: &AccountView) -> Result<Protection, String> {
    let mut parent = hostname;
    while let Some((_, rest)) = parent.split_once('.') {
        if !rest.contains('.') {
            break;
        }
        let wildcard = format!("*.{rest}");
        if account.apps.iter().any(|app| app.domain.eq_ignore_ascii_case(&wildcard)) {
            return Ok(Protection::ZoneDefault { wildcard });
        }
        parent = rest;
    }
    let zone = hostname.split_once('.').map(|(_, rest)| rest).unwrap_or(hostname);
    Err(format!(
        "not published: {label}=default_tld relies on an Access application for *.{zone} (a zone default), and \
         the account has none: create one, or name a policy"
    ))
}

fn keyword_policy(account: &AccountView, local: &str, decision: &str, include: Vec<Value>) -> DesiredPolicy {
    DesiredPolicy {
        name: format!("{}{local}", account.prefix),
        decision: decision.into(),
        include,
        exclude: Vec::new(),
        require: Vec::new(),
        session_duration: None,
    }
}

/// A policy by name or id: the operator's, then the account's (not ours) by name, then by id.
fn named(account: &AccountView, name: &str) -> Option<(PolicyRef, Option<DesiredPolicy>)> {
    if let Some(def) = account.operator.iter().find(|p| p.name == name) {
        let policy = DesiredPolicy::synced(&account.prefix, def);
        return Some((PolicyRef::Owned(policy.name.clone()), Some(policy)));
    }
    let theirs = || account.policies.iter().filter(|p| !p.name.starts_with(&account.prefix));
    theirs()
        .find(|p| p.name == name)
        .or_else(|| theirs().find(|p| p.id.eq_ignore_ascii_case(name)))
        .map(|p| (PolicyRef::Account(p.id.clone()), None))
}

fn unknown_policy(account: &AccountView, label: &str, name: &str) -> String {
    let mut known: Vec<&str> = account.operator.iter().map(|p| p.name.as_str()).collect();
    known.extend(account.policies.iter().filter(|p| !p.name.starts_with(&account.prefix)).map(|p| p.name.as_str()));
    known.sort_unstable();
    known.dedup();
    let closest = known
        .iter()
        .map(|candidate| (strsim::levenshtein(&name.to_lowercase(), &candidate.to_lowercase()), *candidate))
        .filter(|(distance, _)| *distance <= 3)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| format!(" (did you mean {candidate:?}?)"))
        .unwrap_or_default();
    let listed = if known.is_empty() {
        "none is defined: define one with `dockflare access policy put` or in the policies file, or use bypass or \
         authenticate"
            .to_string()
    } else {
        format!("known: {}", known.iter().take(20).copied().collect::<Vec<_>>().join(", "))
    };
    format!(
        "not published: {label}={name:?} names no policy of this DockFlare or of the Cloudflare account{closest}; \
         {listed}"
    )
}

fn inline(account: &AccountView, policy: &InlinePolicy) -> Result<DesiredPolicy, String> {
    let rules = |text: &str| -> Result<Vec<Value>, String> {
        serde_json::from_str(text).map_err(|e| format!("not published: custom_rules: {e}"))
    };
    let mut hash = Sha256::new();
    for part in [&policy.decision, &policy.include, &policy.exclude, &policy.require] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hash.update(policy.session_duration.as_deref().unwrap_or("").as_bytes());
    let digest = hex::encode(hash.finalize());
    Ok(DesiredPolicy {
        name: format!("{}rules-{}", account.prefix, &digest[..12]),
        decision: policy.decision.clone(),
        include: rules(&policy.include)?,
        exclude: rules(&policy.exclude)?,
        require: rules(&policy.require)?,
        session_duration: policy.session_duration.clone(),
    })
}

fn identity_providers(account: &AccountView, label: &str, wanted: &[String]) -> Result<Vec<String>, String> {
    let idps = account.idps.as_ref().map_err(|why| {
        format!("not published: {label} names identity providers, and they cannot be listed to check them: {why}")
    })?;
    wanted
        .iter()
        .map(|want| {
            idps.iter()
                .find(|idp| idp.id.eq_ignore_ascii_case(want) || idp.name.eq_ignore_ascii_case(want))
                .map(|idp| idp.id.clone())
                .ok_or_else(|| {
                    let known: Vec<String> = idps.iter().map(|idp| format!("{} ({})", idp.name, idp.id)).collect();
                    format!(
                        "not published: {label}: the account has no identity provider {want:?}; known: {}",
                        if known.is_empty() { "none".to_string() } else { known.join(", ") }
                    )
                })
        })
        .collect()
}

#[cfg(test)]
mod tests;
