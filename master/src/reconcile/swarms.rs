//! Which agents are in the same Swarm, from what each node saw at its last
//! Register: two agents are in one swarm when they report the same cluster
//! id, or share a manager (a worker lists its managers; a manager is one).
//! Reports of one Swarm service merge only within one swarm: everywhere else
//! the same service id is somebody else's claim. Pure.

use crate::model::AgentRecord;
use std::collections::{BTreeMap, HashMap};

/// The swarm key of every agent: agents of one swarm share it; an agent in no
/// swarm (standalone, or in swarm mode without any id to prove it) has one of its own.
pub fn swarm_keys(agents: &HashMap<String, AgentRecord>) -> HashMap<String, String> {
    let mut ids: Vec<&String> = agents.keys().collect();
    ids.sort();
    let mut parent: Vec<usize> = (0..ids.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    // Each proof ("cluster:<id>", "node:<manager id>") joins every agent that shows it.
    let mut first_with: BTreeMap<String, usize> = BTreeMap::new();
    let mut proofs_of: Vec<Vec<String>> = vec![Vec::new(); ids.len()];
    for (index, id) in ids.iter().enumerate() {
        let agent = &agents[*id];
        if agent.docker_mode != "swarm" {
            continue;
        }
        let mut proofs: Vec<String> = agent.swarm_managers.iter().map(|m| format!("node:{m}")).collect();
        if !agent.swarm_cluster_id.is_empty() {
            proofs.push(format!("cluster:{}", agent.swarm_cluster_id));
        }
        if !proofs.is_empty() && !agent.node_id.is_empty() && agent.node_role == "manager" {
            proofs.push(format!("node:{}", agent.node_id));
        }
        for proof in &proofs {
            match first_with.get(proof) {
                Some(&other) => {
                    let (a, b) = (root(&mut parent, index), root(&mut parent, other));
                    parent[a.max(b)] = a.min(b);
                }
                None => {
                    first_with.insert(proof.clone(), index);
                }
            }
        }
        proofs_of[index] = proofs;
    }
    // A swarm's key: its smallest cluster proof, else its smallest proof (stable across passes).
    let mut key_of_root: HashMap<usize, String> = HashMap::new();
    for (index, proofs) in proofs_of.iter().enumerate() {
        let r = root(&mut parent, index);
        for proof in proofs {
            let better = match key_of_root.get(&r) {
                None => true,
                Some(current) => (!proof.starts_with("cluster:"), proof) < (!current.starts_with("cluster:"), current),
            };
            if better {
                key_of_root.insert(r, proof.clone());
            }
        }
    }
    ids.iter()
        .enumerate()
        .map(|(index, id)| {
            let key = if proofs_of[index].is_empty() {
                format!("agent:{id}")
            } else {
                let r = root(&mut parent, index);
                format!("swarm:{}", key_of_root.get(&r).cloned().unwrap_or_default())
            };
            ((*id).clone(), key)
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn agent(id: &str, mode: &str, role: &str, node: &str, cluster: &str, managers: &[&str]) -> AgentRecord {
        AgentRecord {
            id: id.into(),
            display_name: id.into(),
            hostname: String::new(),
            status: "online".into(),
            docker_mode: mode.into(),
            node_id: node.into(),
            node_role: role.into(),
            version: String::new(),
            tunnel_group: String::new(),
            capabilities: vec![],
            label_prefix: String::new(),
            enrolled_at: 0,
            last_seen_at: None,
            cert_serial: String::new(),
            cert_not_after: 0,
            last_command_seq: 0,
            last_acked_command_seq: 0,
            last_event_id: 0,
            assigned_tunnel_id: String::new(),
            removed_at: None,
            swarm_cluster_id: cluster.into(),
            swarm_managers: managers.iter().map(|m| m.to_string()).collect(),
            policy: Default::default(),
        }
    }

    fn keys(agents: Vec<AgentRecord>) -> HashMap<String, String> {
        swarm_keys(&agents.into_iter().map(|a| (a.id.clone(), a)).collect())
    }

    #[test]
    fn managers_and_workers_of_one_swarm_share_a_key_and_other_swarms_do_not() {
        let keys = keys(vec![
            agent("m1", "swarm", "manager", "n1", "c1", &["n1", "n2"]),
            agent("m2", "swarm", "manager", "n2", "c1", &["n1", "n2"]),
            agent("w1", "swarm", "worker", "n3", "", &["n2"]),
            agent("x1", "swarm", "manager", "n9", "c9", &["n9"]),
            agent("s1", "standalone", "", "engine", "", &[]),
            agent("s2", "swarm", "worker", "n5", "", &[]),
        ]);
        assert_eq!(keys["m1"], "swarm:cluster:c1");
        assert_eq!(keys["m2"], "swarm:cluster:c1");
        assert_eq!(keys["w1"], "swarm:cluster:c1", "a worker joins through a manager it names");
        assert_eq!(keys["x1"], "swarm:cluster:c9");
        assert_eq!(keys["s1"], "agent:s1");
        assert_eq!(keys["s2"], "agent:s2", "nothing proves which swarm it is in");
    }

    #[test]
    fn a_standalone_agent_claiming_swarm_ids_in_its_report_stays_alone() {
        // A standalone agent's Register carries no swarm proofs that count.
        let keys = keys(vec![
            agent("m1", "swarm", "manager", "n1", "c1", &["n1"]),
            agent("evil", "standalone", "", "n1", "c1", &["n1"]),
        ]);
        assert_eq!(keys["m1"], "swarm:cluster:c1");
        assert_eq!(keys["evil"], "agent:evil");
    }
}
