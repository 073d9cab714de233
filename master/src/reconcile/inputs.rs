//! What of an agent's record a pass reads: its tunnel group and assigned tunnel, its Docker and
//! Swarm identity, its label prefix and hostname policy, whether it was removed or revoked. A
//! Register that changes none of it — the same agent reconnecting, as a whole fleet does after
//! a master restart — needs no pass (watchers are still told it is online). Pure.

use crate::model::AgentRecord;

/// Whether the record after a Register differs from the one before in anything a pass reads
/// (or the agent has no tunnel assigned yet).
pub fn registration_needs_pass(before: &AgentRecord, after: &AgentRecord) -> bool {
    before.assigned_tunnel_id.is_empty()
        || before.assigned_tunnel_id != after.assigned_tunnel_id
        || before.tunnel_group != after.tunnel_group
        || before.docker_mode != after.docker_mode
        || before.node_id != after.node_id
        || before.node_role != after.node_role
        || before.swarm_cluster_id != after.swarm_cluster_id
        || before.swarm_managers != after.swarm_managers
        || before.label_prefix != after.label_prefix
        || before.policy != after.policy
        || before.removed_at != after.removed_at
        || before.is_revoked() != after.is_revoked()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::swarms::tests::agent;

    fn assigned() -> AgentRecord {
        let mut record = agent("a1", "standalone", "", "engine-1", "", &[]);
        record.assigned_tunnel_id = "tunnel-1".into();
        record
    }

    #[test]
    fn the_same_agent_reconnecting_needs_no_pass() {
        let before = assigned();
        let mut after = before.clone();
        after.status = "online".into();
        after.last_seen_at = Some(42);
        after.version = "1.2.3".into();
        after.display_name = "renamed".into();
        after.hostname = "other-host".into();
        after.capabilities = vec!["events.receipts".into()];
        assert!(!registration_needs_pass(&before, &after));
    }

    #[test]
    fn what_a_pass_reads_asks_for_one() {
        let before = assigned();
        let changes: Vec<fn(&mut AgentRecord)> = vec![
            |r| r.assigned_tunnel_id.clear(),
            |r| r.docker_mode = "swarm".into(),
            |r| r.node_id = "engine-2".into(),
            |r| r.node_role = "manager".into(),
            |r| r.swarm_cluster_id = "c1".into(),
            |r| r.swarm_managers = vec!["n1".into()],
            |r| r.label_prefix = "other".into(),
            |r| r.tunnel_group = "edge".into(),
            |r| r.removed_at = Some(1),
            |r| r.status = crate::model::STATUS_REVOKED.into(),
            |r| r.policy.allow_apex = !r.policy.allow_apex,
        ];
        for (n, change) in changes.into_iter().enumerate() {
            let mut after = before.clone();
            change(&mut after);
            assert!(registration_needs_pass(&before, &after), "change {n}");
        }
        let mut unassigned = before.clone();
        unassigned.assigned_tunnel_id.clear();
        assert!(registration_needs_pass(&unassigned, &unassigned), "no tunnel yet: a pass gives it one");
    }
}
