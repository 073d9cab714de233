//! Label claims screened against their agents' hostname policies
//! ([`dockflare_common::hostname_policy`]): wildcard hostnames and names
//! outside the allowed patterns are refused, and so are routes beyond the
//! agent's quota — routes it already has keep their place, new ones queue
//! behind them in hostname order. A refused claim is not published and holds
//! no hostname (it cannot block anyone); it is a diagnostic on its container.
//! Manual routes are the operator's and are not screened. The apex is checked
//! where zones are known (the zone step). Pure.

use super::route_table::{Claim, Source};
use crate::model::AgentRecord;
use std::collections::{BTreeMap, HashMap, HashSet};

/// How every refusal's reason starts (common/src/hostname_policy.rs writes it).
pub const REFUSED: &str = "refused by this agent's hostname policy";

/// A claim the policy refused, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub agent_id: String,
    pub owner: String,
    pub container_id: String,
    pub container_name: String,
    pub hostname: String,
    pub path: String,
    pub reason: String,
}

/// The key of a claim: owner, hostname, path.
pub type ClaimKey = (String, String, String);

fn key(claim: &Claim) -> ClaimKey {
    (claim.owner.clone(), claim.spec.hostname.clone(), claim.spec.path.clone())
}

/// The keys of the label routes carried now (they keep their place in a quota).
pub fn established(rows: &[super::route_table::RouteRow]) -> HashSet<ClaimKey> {
    rows.iter()
        .filter(|row| row.source == Source::Labels && row.status.is_routed())
        .map(|row| (row.owner.clone(), row.spec.hostname.clone(), row.spec.path.clone()))
        .collect()
}

/// Splits `claims` into those the policies let through and the refusals. `established` are the
/// keys of routes already carried (they come first in the quota); `default_quota` stands for a
/// policy's 0.
pub fn screen(
    claims: Vec<Claim>,
    agents: &HashMap<String, AgentRecord>,
    established: &HashSet<ClaimKey>,
    default_quota: u32,
) -> (Vec<Claim>, Vec<Refusal>) {
    let mut refusals = Vec::new();
    let refuse = |claim: &Claim, reason: String| Refusal {
        agent_id: claim.spec.agent_id.clone(),
        owner: claim.owner.clone(),
        container_id: claim.spec.container_id.clone(),
        container_name: claim.spec.container_name.clone(),
        hostname: claim.spec.hostname.clone(),
        path: claim.spec.path.clone(),
        reason,
    };
    // Names first.
    let mut named = Vec::with_capacity(claims.len());
    for claim in claims {
        let policy = agents.get(&claim.spec.agent_id).map(|a| &a.policy);
        match policy.filter(|_| claim.source == Source::Labels).and_then(|p| p.name_refusal(&claim.spec.hostname)) {
            Some(reason) => refusals.push(refuse(&claim, reason)),
            None => named.push(claim),
        }
    }
    // Then the quota, per agent: established routes first, then by hostname, path, owner.
    let mut per_agent: BTreeMap<&str, Vec<(bool, ClaimKey)>> = BTreeMap::new();
    for claim in named.iter().filter(|c| c.source == Source::Labels) {
        let key = key(claim);
        per_agent.entry(claim.spec.agent_id.as_str()).or_default().push((!established.contains(&key), key));
    }
    let mut over: HashMap<ClaimKey, u32> = HashMap::new();
    for (agent_id, mut keys) in per_agent {
        let quota = agents.get(agent_id).map_or(default_quota, |a| a.policy.quota(default_quota));
        keys.sort_by(|a, b| (a.0, &a.1 .1, &a.1 .2, &a.1 .0).cmp(&(b.0, &b.1 .1, &b.1 .2, &b.1 .0)));
        keys.dedup_by(|a, b| a.1 == b.1);
        for (_, key) in keys.into_iter().skip(quota as usize) {
            over.insert(key, quota);
        }
    }
    let mut allowed = Vec::with_capacity(named.len());
    for claim in named {
        match over.get(&key(&claim)).filter(|_| claim.source == Source::Labels) {
            Some(quota) => refusals.push(refuse(
                &claim,
                format!(
                    "refused by this agent's hostname policy: its route quota of {quota} is used up by routes it \
                     already has (max_routes, or the master's --max-routes-per-agent)"
                ),
            )),
            None => allowed.push(claim),
        }
    }
    (allowed, refusals)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::route::test_spec;
    use dockflare_common::hostname_policy::HostnamePolicy;

    fn claim(agent: &str, owner: &str, hostname: &str, source: Source) -> Claim {
        Claim { owner: owner.into(), source, spec: test_spec(agent, owner, hostname), withheld: None }
    }

    fn agents(policy: HostnamePolicy) -> HashMap<String, AgentRecord> {
        let record = crate::reconcile::swarms::tests::agent("a1", "standalone", "", "", "", &[]);
        HashMap::from([("a1".to_string(), AgentRecord { policy, ..record })])
    }

    #[test]
    fn names_outside_the_policy_and_wildcards_are_refused_and_manual_routes_pass() {
        let policy = HostnamePolicy { allowed_hostnames: vec!["*.apps.example.com".into()], ..Default::default() };
        let claims = vec![
            claim("a1", "c1", "web.apps.example.com", Source::Labels),
            claim("a1", "c1", "bank.example.com", Source::Labels),
            claim("a1", "c2", "*.apps.example.com", Source::Labels),
            claim("a1", "manual", "anything.example.org", Source::Manual),
        ];
        let (allowed, refused) = screen(claims, &agents(policy), &HashSet::new(), 200);
        let names: Vec<&str> = allowed.iter().map(|c| c.spec.hostname.as_str()).collect();
        assert_eq!(names, vec!["web.apps.example.com", "anything.example.org"]);
        assert_eq!(refused.len(), 2);
        assert!(refused[0].reason.contains("outside its allowed hostnames"), "{}", refused[0].reason);
        assert!(refused[1].reason.contains("wildcard"), "{}", refused[1].reason);
        assert_eq!((refused[1].container_id.as_str(), refused[1].agent_id.as_str()), ("c2", "a1"));
    }

    #[test]
    fn the_quota_keeps_established_routes_and_refuses_the_newest() {
        let policy = HostnamePolicy { max_routes: 2, ..Default::default() };
        let claims: Vec<Claim> = ["a", "b", "c", "d"]
            .iter()
            .map(|h| claim("a1", "c1", &format!("{h}.example.com"), Source::Labels))
            .collect();
        let established: HashSet<ClaimKey> =
            ["c", "d"].iter().map(|h| ("c1".to_string(), format!("{h}.example.com"), String::new())).collect();
        let (allowed, refused) = screen(claims, &agents(policy.clone()), &established, 200);
        let names: Vec<&str> = allowed.iter().map(|c| c.spec.hostname.as_str()).collect();
        assert_eq!(names, vec!["c.example.com", "d.example.com"], "established routes keep their place");
        assert!(refused.iter().all(|r| r.reason.contains("quota of 2")));
        // Without history, hostname order decides; the default quota stands for 0.
        let claims: Vec<Claim> =
            ["b", "a", "c"].iter().map(|h| claim("a1", "c1", &format!("{h}.example.com"), Source::Labels)).collect();
        let (allowed, _) = screen(claims, &agents(HostnamePolicy::default()), &HashSet::new(), 2);
        let names: Vec<&str> = allowed.iter().map(|c| c.spec.hostname.as_str()).collect();
        assert_eq!(names, vec!["b.example.com", "a.example.com"]);
    }
}
