//! Writes a tunnel's ingress when it differs from what the plan wants, and remembers per tunnel
//! what was last synced (so an unchanged desired set costs no request) and the configuration
//! version Cloudflare holds (tunnel health reads it).

use crate::reconcile::dry_run::DryRun;
use super::plan::{self as ingress, RuleKey};
use crate::model::TunnelRow;
use crate::reconcile::PassReport;
use crate::store::{Store, StoreError};
use dockflare_cloudflare::client::{CfError, CloudflareClient};
use dockflare_cloudflare::types::IngressRule;
use std::collections::{BTreeSet, HashMap};

/// Why a tunnel's ingress could not be synced.
#[derive(Debug, thiserror::Error)]
pub enum IngressSyncError {
    #[error(transparent)]
    Cloudflare(#[from] CfError),
    #[error("recording the rules this master owns: {0}")]
    Store(#[from] StoreError),
}

/// What the reconciler remembers of the ingress it synced, between passes.
#[derive(Debug, Default)]
pub struct IngressSync {
    /// Per tunnel id: the fingerprint of the rules last synced, and the conflicts they had.
    synced: HashMap<String, (u64, BTreeSet<RuleKey>)>,
    /// Per tunnel id: the configuration version last read or written.
    config_versions: HashMap<String, i64>,
}

impl IngressSync {
    /// Forgets everything: the next sync of every tunnel reads Cloudflare again (a drift pass,
    /// or a master that just became the leader).
    pub fn forget_all(&mut self) {
        self.synced.clear();
        self.config_versions.clear();
    }

    /// Only what was synced (the versions stay): the next pass compares again.
    pub fn forget_synced(&mut self) {
        self.synced.clear();
    }

    /// A deleted tunnel.
    pub fn forget(&mut self, tunnel_id: &str) {
        self.synced.remove(tunnel_id);
        self.config_versions.remove(tunnel_id);
    }

    /// The configuration version this pass read or wrote for the tunnel, if it did.
    pub fn config_version(&self, tunnel_id: &str) -> Option<i64> {
        self.config_versions.get(tunnel_id).copied()
    }

    /// Writes the tunnel's ingress when it differs; returns our keys that a foreign rule holds.
    /// The rules it places are recorded as ours *before* the PUT (and narrowed to exactly what
    /// was placed after it), so a crash between the two can never make our own rules look
    /// foreign on the next start. An unchanged desired set answers from the last outcome, its
    /// conflicts included, so a route does not flip between passes.
    pub async fn sync(
        &mut self,
        client: &CloudflareClient,
        store: &Store,
        tunnel: &TunnelRow,
        desired: &[IngressRule],
        report: &mut PassReport,
        dry_run: Option<&DryRun>,
    ) -> Result<BTreeSet<RuleKey>, IngressSyncError> {
        let fingerprint = fingerprint(desired);
        if let Some((synced, conflicts)) = self.synced.get(&tunnel.tunnel_id) {
            if *synced == fingerprint && dry_run.is_none() {
                return Ok(conflicts.clone());
            }
        }
        if let Some(dry) = dry_run {
            return Self::plan(client, store, tunnel, desired, dry).await;
        }
        let current = client.get_configuration(&tunnel.tunnel_id).await?;
        self.config_versions.insert(tunnel.tunnel_id.clone(), current.as_ref().map_or(0, |c| c.version));
        let owned = store.owned_rules(&tunnel.tunnel_id).await?;
        let current_rules = current.as_ref().map(|c| c.config.ingress.clone()).unwrap_or_default();
        let merged = ingress::merge(&current_rules, &owned, desired);
        let placed: BTreeSet<RuleKey> =
            desired.iter().map(ingress::rule_key).filter(|key| !merged.conflicts.contains(key)).collect();
        let nothing_to_write = current.is_none() && desired.is_empty();
        if !nothing_to_write && (current.is_none() || merged.rules != current_rules) {
            let ahead: BTreeSet<RuleKey> = owned.union(&placed).cloned().collect();
            if ahead != owned {
                store.set_owned_rules(&tunnel.tunnel_id, &ahead).await?;
            }
            let mut config = current.map(|c| c.config).unwrap_or_default();
            config.ingress = merged.rules.clone();
            let written = client.put_configuration(&tunnel.tunnel_id, &config).await?;
            self.config_versions.insert(tunnel.tunnel_id.clone(), written.version);
            report.ingress_updates += 1;
            metrics::counter!("dockflare_ingress_writes_total").increment(1);
        }
        if placed != owned {
            if let Err(error) = store.set_owned_rules(&tunnel.tunnel_id, &placed).await {
                // Still a superset of what the tunnel holds of ours: safe; retried next pass.
                tracing::warn!(message = "Could not record the tunnel's rules.", tunnel = %tunnel.name, %error);
                return Ok(merged.conflicts);
            }
        }
        self.synced.insert(tunnel.tunnel_id.clone(), (fingerprint, merged.conflicts.clone()));
        Ok(merged.conflicts)
    }
}

impl IngressSync {
    /// What [`IngressSync::sync`] would write, recorded in `dry` (rules added and removed).
    async fn plan(
        client: &CloudflareClient,
        store: &Store,
        tunnel: &TunnelRow,
        desired: &[IngressRule],
        dry: &DryRun,
    ) -> Result<BTreeSet<RuleKey>, IngressSyncError> {
        let planned = tunnel.tunnel_id == crate::reconcile::tunnels::apply::PLANNED_TUNNEL_ID;
        let current = if planned { None } else { client.get_configuration(&tunnel.tunnel_id).await? };
        let owned = if planned { BTreeSet::new() } else { store.owned_rules(&tunnel.tunnel_id).await? };
        let current_rules = current.as_ref().map(|c| c.config.ingress.clone()).unwrap_or_default();
        let merged = ingress::merge(&current_rules, &owned, desired);
        if (current.is_some() || !desired.is_empty()) && merged.rules != current_rules {
            let describe = |rule: &IngressRule| {
                format!(
                    "{}{} → {}",
                    rule.hostname.as_deref().unwrap_or("*"),
                    rule.path.as_deref().unwrap_or(""),
                    rule.service
                )
            };
            let before: BTreeSet<String> = current_rules.iter().map(describe).collect();
            let after: BTreeSet<String> = merged.rules.iter().map(describe).collect();
            let mut detail: Vec<String> = after.difference(&before).map(|r| format!("+ {r}")).collect();
            detail.extend(before.difference(&after).map(|r| format!("- {r}")));
            if detail.is_empty() {
                detail.push("rules reordered".into());
            }
            dry.record("ingress", "update", &tunnel.name, detail.join("; "));
        }
        Ok(merged.conflicts)
    }
}

fn fingerprint(rules: &[IngressRule]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(rules).unwrap_or_default().hash(&mut hasher);
    hasher.finish()
}
