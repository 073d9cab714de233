//! What the reconciler says once: a corrupt stored route or a policy refusal is logged when it
//! starts, not every pass (ListRoutes and ListDiagnostics show them meanwhile), and again if it
//! went and came back.

use super::policy::Refusal;
use crate::store::CorruptRoute;
use std::collections::BTreeSet;

/// The problems the last pass saw.
#[derive(Debug, Default)]
pub struct Noticed {
    corrupt: BTreeSet<(String, String, String)>,
    refused: BTreeSet<(String, String, String, String)>,
}

impl Noticed {
    /// Logs each corrupt row once, when it is first seen.
    pub fn corrupt_rows(&mut self, corrupt: &[CorruptRoute]) {
        let key = |c: &CorruptRoute| (c.hostname.clone(), c.path.clone(), c.owner.clone());
        let fresh = newly_seen(&mut self.corrupt, corrupt.iter().map(key));
        for row in corrupt.iter().filter(|c| fresh.contains(&key(c))) {
            tracing::error!(
                message = "A stored route cannot be read; it is left alone (not routed, not deleted).",
                hostname = %row.hostname,
                path = %row.path,
                owner = %row.owner,
                problem = %row.problem,
            );
        }
    }

    /// Logs each refusal once, when it starts.
    pub fn refusals(&mut self, refusals: &[Refusal]) {
        let key = |r: &Refusal| (r.agent_id.clone(), r.owner.clone(), r.hostname.clone(), r.path.clone());
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
}

/// The keys of `now` that were not in `seen` (what to log once), and `seen` becomes `now`: a key
/// that goes and comes back is logged again. Pure.
fn newly_seen<K: Ord + Clone>(seen: &mut BTreeSet<K>, now: impl IntoIterator<Item = K>) -> BTreeSet<K> {
    let now: BTreeSet<K> = now.into_iter().collect();
    let fresh = now.difference(seen).cloned().collect();
    *seen = now;
    fresh
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
}
