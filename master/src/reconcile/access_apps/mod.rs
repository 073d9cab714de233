//! Cloudflare Access from labels: one self-hosted application per protected route (its domain
//! `hostname` or `hostname/path`), with the policies its labels name, made before the route goes
//! live and removed after it.
//!
//! - [`resolve`] (pure): a route's Access labels + what the account holds → the application
//!   and the policies it needs, or why not (naming the label, suggesting the known names).
//! - [`plan`] (pure): desired against observed → the writes, the conflicts (an application of
//!   someone else on the domain), the applications to release.
//! - [`apply`]: the pass's step — observe (cached between passes, refreshed on drift; `account`),
//!   resolve, write policies (`writes`) then applications before ingress and DNS; delete after
//!   them (`cleanup`). `describe` says what a dry run would write.
//!
//! **Ownership.** Applications this installation makes carry the Access tag
//! [`owner_tag`]; reusable policies it makes are named with [`policy_prefix`]. Nothing else is
//! updated or deleted; policies attached by hand to one of our applications stay attached.
//!
//! **Fail closed.** A route whose Access labels are wrong, or name a policy or identity provider
//! the account does not have, is not published — or, if it was published protected, keeps its
//! last good Access state ([`crate::model::RouteSpec::access_json`]). Only removing every
//! `access.*` label makes a protected hostname public, and its application stays for the routes'
//! grace period first (`access_releases`).

mod account;
pub mod apply;
mod cleanup;
mod describe;
pub mod plan;
pub mod resolve;
mod writes;

use dockflare_common::labels::access::{AccessLabel, AccessLabels};
use std::collections::BTreeMap;

/// The Access tag that marks this installation's applications.
pub fn owner_tag(installation_id: &str) -> String {
    format!("dockflare-{installation_id}")
}

/// The name prefix of this installation's reusable policies.
pub fn policy_prefix(installation_id: &str) -> String {
    let short: String = installation_id.chars().take(12).collect();
    format!("dockflare-{short}-")
}

/// A route's Access labels as stored in [`crate::model::RouteSpec::access_json`] ("" for none).
pub fn labels_json(labels: &AccessLabels) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let map: serde_json::Map<String, serde_json::Value> = labels
        .iter()
        .map(|(key, label)| (key.clone(), serde_json::json!({"label": label.label, "value": label.value})))
        .collect();
    serde_json::Value::Object(map).to_string()
}

/// The Access labels of a stored route; `Err` for text this master cannot read.
pub fn labels_from_json(json: &str) -> Result<AccessLabels, String> {
    if json.is_empty() {
        return Ok(AccessLabels::new());
    }
    let map: BTreeMap<String, serde_json::Value> =
        serde_json::from_str(json).map_err(|e| format!("stored Access labels are not readable: {e}"))?;
    map.into_iter()
        .map(|(key, entry)| {
            let text = |field: &str| entry.get(field).and_then(|v| v.as_str()).map(str::to_string);
            match (text("label"), text("value")) {
                (Some(label), Some(value)) => Ok((key, AccessLabel { label, value })),
                _ => Err(format!("stored Access label {key:?} is not readable")),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip_through_the_stored_json() {
        let mut labels = AccessLabels::new();
        labels.insert(
            "policy".into(),
            AccessLabel { label: "dockflare.0.access.policy".into(), value: "authenticate".into() },
        );
        let json = labels_json(&labels);
        assert_eq!(labels_from_json(&json), Ok(labels));
        assert_eq!(labels_json(&AccessLabels::new()), "");
        assert_eq!(labels_from_json(""), Ok(AccessLabels::new()));
        assert!(labels_from_json("{").is_err());
    }
}
