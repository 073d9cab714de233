//! Scenario 8: several agents on one engine. (a) Two agents, each scoped to its own containers
//! (`--scope`), get a tunnel each: each route is on its own agent's tunnel only, and each edge
//! serves only its own agent's hostnames. (b) Two agents sharing a `--tunnel-group` share one
//! tunnel: both connectors register with it, it carries both agents' hostnames, and when one
//! agent's origin stops only that hostname goes away.

use crate::harness::*;
use anyhow::{anyhow, bail, Result};
use dockflare_emulator::Snapshot;
use dockflare_testsupport::{docker, eventually, unique, Master};
use std::collections::BTreeSet;
use std::time::Instant;

/// Names of the containers the master has for `agent_id`.
async fn container_names(master: &Master, agent_id: &str) -> Result<Vec<String>> {
    let mut names: Vec<String> = containers(master, agent_id).await?.into_iter().map(|c| c.name).collect();
    names.sort();
    Ok(names)
}

/// The connector id the agent's local edge registers with the emulator (its latest "Starting
/// tunnel" log line, text or JSON), if it has logged one.
fn edge_connector_id(agent: &EdgeAgent) -> Result<Option<String>> {
    let output = std::process::Command::new("docker").args(["logs", &agent.connector]).output()?;
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let mut found = None;
    let mut rest = text.as_str();
    while let Some(at) = rest.find("connectorID") {
        rest = &rest[at + "connectorID".len()..];
        let candidate: String = rest
            .trim_start_matches(['"', ':', '=', ' '])
            .chars()
            .take_while(|c| c.is_ascii_hexdigit() || *c == '-')
            .collect();
        if uuid::Uuid::parse_str(&candidate).is_ok() {
            found = Some(candidate);
        }
    }
    Ok(found)
}

/// Client (connector) ids of the connections of tunnel `tunnel_id` in the account.
fn connector_ids(snapshot: &Snapshot, tunnel_id: &str) -> BTreeSet<String> {
    snapshot
        .tunnels
        .iter()
        .filter(|t| t.id == tunnel_id)
        .flat_map(|t| t.connections.iter().map(|c| c.client_id.clone()))
        .collect()
}

/// Hostnames of the ingress rules of tunnel `tunnel_id` in the account.
fn ingress_hostnames(snapshot: &Snapshot, tunnel_id: &str) -> BTreeSet<String> {
    snapshot
        .configuration(tunnel_id)
        .map(|c| c.config.ingress.iter().filter_map(|rule| rule.hostname.clone()).collect())
        .unwrap_or_default()
}

/// Waits until both connectors have logged their ids, and until the account lists exactly
/// `expected` agents' edges as `tunnel_id`'s connectors.
async fn expect_connectors(cloud: &Cloud, tunnel_id: &str, agents: &[&EdgeAgent]) -> Result<BTreeSet<String>> {
    let mut last = (BTreeSet::new(), BTreeSet::new());
    let result = eventually(&format!("the connectors of {tunnel_id} are exactly the agents' edges"), WAIT, || {
        let ids: Result<BTreeSet<String>> = agents
            .iter()
            .map(|agent| {
                edge_connector_id(agent)?.ok_or_else(|| anyhow!("{} logged no connector id yet", agent.connector))
            })
            .collect();
        let connected = connector_ids(&cloud.snapshot(), tunnel_id);
        let done = match &ids {
            Ok(ids) => (ids.len() == agents.len() && *ids == connected).then(|| ids.clone()),
            Err(_) => None,
        };
        last = (ids.unwrap_or_default(), connected);
        async move { Ok(done) }
    })
    .await;
    result.map_err(|e| e.context(format!("edges' connector ids {:?}, tunnel's connections from {:?}", last.0, last.1)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoped_agents_get_separate_tunnels() -> Result<()> {
    require_rig();
    let started = Instant::now();
    let cloud = Cloud::start().await?;
    let master = cloud.master(None, 2, &[]).await?;
    let token = master.join_token(2).await?;
    let mut one = EdgeAgent::start(&[master.url()], &token, AgentOptions::default()).await?;
    let mut two = EdgeAgent::start(&[master.url()], &token, AgentOptions::default()).await?;
    one.edge.wait_up(WAIT).await.map_err(|e| e.context(one.diagnostics()))?;
    two.edge.wait_up(WAIT).await.map_err(|e| e.context(two.diagnostics()))?;

    let (x, y) = (unique("scope-x"), unique("scope-y"));
    let (host_x, host_y) = (format!("{x}.{ZONE}"), format!("{y}.{ZONE}"));
    one.run_origin(&x, &host_x, &[])?;
    two.run_origin(&y, &host_y, &[])?;
    let tunnel_x = expect_served(&cloud, &master, &one.edge, &host_x, Some(&x), WAIT)
        .await
        .map_err(|e| e.context(one.diagnostics()))?;
    let tunnel_y = expect_served(&cloud, &master, &two.edge, &host_y, Some(&y), WAIT)
        .await
        .map_err(|e| e.context(two.diagnostics()))?;
    if tunnel_x == tunnel_y {
        bail!("both scoped agents' routes are on one tunnel {tunnel_x}");
    }

    // Emulator: two live tunnels, one per agent, each with its own agent's rule only and its own
    // agent's edge as its connector.
    let snapshot = cloud.snapshot();
    let live = live_tunnels(&snapshot);
    assert_eq!(live.len(), 2, "{live:?}");
    for (tunnel, agent, host, other) in [(&tunnel_x, &one, &host_x, &host_y), (&tunnel_y, &two, &host_y, &host_x)] {
        let name = live.iter().find(|(id, _, _)| id == tunnel).map(|(_, name, _)| name.clone());
        assert_eq!(name, Some(format!("dockflare-agent-{}", agent.id)), "{live:?}");
        let hostnames = ingress_hostnames(&snapshot, tunnel);
        assert!(hostnames.contains(host) && !hostnames.contains(other), "{tunnel}: {hostnames:?}");
    }
    assert_eq!(cloud.view(&host_x).tunnels_with_rule, vec![tunnel_x.clone()]);
    assert_eq!(cloud.view(&host_y).tunnels_with_rule, vec![tunnel_y.clone()]);
    expect_connectors(&cloud, &tunnel_x, &[&one]).await.map_err(|e| e.context(one.diagnostics()))?;
    expect_connectors(&cloud, &tunnel_y, &[&two]).await.map_err(|e| e.context(two.diagnostics()))?;

    // Master: each tunnel is its own agent's, and each agent reported only its own container.
    let listed = tunnels(&master).await?;
    assert_eq!(listed.len(), 2, "{listed:?}");
    for (tunnel, agent) in [(&tunnel_x, &one), (&tunnel_y, &two)] {
        let ours = listed.iter().find(|t| &t.id == tunnel);
        assert!(
            ours.is_some_and(|t| t.agent_ids == vec![agent.id.clone()]
                && t.key == format!("agent:{}", agent.id)
                && t.route_count == 1),
            "{tunnel} of {}: {listed:?}",
            agent.id
        );
    }
    assert_eq!(container_names(&master, &one.id).await?, vec![x.clone()]);
    assert_eq!(container_names(&master, &two.id).await?, vec![y.clone()]);

    // Data plane: each edge serves its own agent's hostname and knows nothing of the other's.
    assert_eq!(one.edge.get(&host_x, "/").await?.origin(), Some(x.clone()));
    assert_eq!(one.edge.get(&host_y, "/").await?.status, 404);
    assert_eq!(two.edge.get(&host_y, "/").await?.origin(), Some(y.clone()));
    assert_eq!(two.edge.get(&host_x, "/").await?.status, 404);
    assert_no_duplicates(&cloud.snapshot())?;
    eprintln!("scenario 8a: two scoped agents, two tunnels; wall time {} ms", started.elapsed().as_millis());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_group_shares_one_tunnel() -> Result<()> {
    require_rig();
    let started = Instant::now();
    let cloud = Cloud::start().await?;
    let master = cloud.master(None, 2, &[]).await?;
    let group = unique("grp");
    let token = master.join_token_in_group(2, &group).await?;
    let options = AgentOptions { tunnel_group: Some(group.clone()), ..AgentOptions::default() };
    let mut one = EdgeAgent::start(&[master.url()], &token, options.clone()).await?;
    let mut two = EdgeAgent::start(&[master.url()], &token, options).await?;
    one.edge.wait_up(WAIT).await.map_err(|e| e.context(one.diagnostics()))?;
    two.edge.wait_up(WAIT).await.map_err(|e| e.context(two.diagnostics()))?;

    let (p, q) = (unique("group-p"), unique("group-q"));
    let (host_p, host_q) = (format!("{p}.{ZONE}"), format!("{q}.{ZONE}"));
    one.run_origin(&p, &host_p, &[])?;
    two.run_origin(&q, &host_q, &[])?;
    // Each edge answers its own agent's origin (the other's is not on its network).
    let tunnel = expect_served(&cloud, &master, &one.edge, &host_p, Some(&p), WAIT)
        .await
        .map_err(|e| e.context(one.diagnostics()))?;
    let tunnel_q = expect_served(&cloud, &master, &two.edge, &host_q, Some(&q), WAIT)
        .await
        .map_err(|e| e.context(two.diagnostics()))?;
    assert_eq!(tunnel_q, tunnel, "the group's agents' routes are on different tunnels");

    // Emulator: one live tunnel, named after the group, carrying both hostnames, with both edges
    // as its connectors.
    let snapshot = cloud.snapshot();
    let live = live_tunnels(&snapshot);
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!((&live[0].0, &live[0].1), (&tunnel, &format!("dockflare-group-{group}")), "{live:?}");
    let hostnames = ingress_hostnames(&snapshot, &tunnel);
    assert_eq!(hostnames, BTreeSet::from([host_p.clone(), host_q.clone()]));
    let connectors = expect_connectors(&cloud, &tunnel, &[&one, &two])
        .await
        .map_err(|e| e.context(format!("{}\n{}", one.diagnostics(), two.diagnostics())))?;

    // Master: one tunnel for the group, run by both agents, carrying both routes.
    let listed = tunnels(&master).await?;
    let mut both = vec![one.id.clone(), two.id.clone()];
    both.sort();
    assert_eq!(listed.len(), 1, "{listed:?}");
    let mut agent_ids = listed[0].agent_ids.clone();
    agent_ids.sort();
    assert_eq!(
        (&listed[0].id, &listed[0].key, &agent_ids, listed[0].route_count),
        (&tunnel, &format!("group:{group}"), &both, 2),
        "{listed:?}"
    );
    assert_eq!(container_names(&master, &one.id).await?, vec![p.clone()]);
    assert_eq!(container_names(&master, &two.id).await?, vec![q.clone()]);

    // One agent's origin stops: its hostname goes away everywhere (through both edges), the
    // other's stays on the shared tunnel.
    docker(&["stop", "--time", "2", &p])?;
    let stopped = Instant::now();
    expect_gone(&cloud, &master, &one.edge, &host_p, WAIT).await.map_err(|e| e.context(one.diagnostics()))?;
    eprintln!("scenario 8b: {host_p} gone everywhere {} ms after docker stop", stopped.elapsed().as_millis());
    eventually(&format!("{host_p} unknown to the second edge too"), WAIT, || async {
        Ok((two.edge.get(&host_p, "/").await?.status == 404).then_some(()))
    })
    .await?;
    let still = expect_served(&cloud, &master, &two.edge, &host_q, Some(&q), WAIT).await?;
    assert_eq!(still, tunnel, "{host_q} moved to another tunnel");
    let snapshot = cloud.snapshot();
    assert_eq!(ingress_hostnames(&snapshot, &tunnel), BTreeSet::from([host_q.clone()]));
    assert_eq!(live_tunnels(&snapshot).len(), 1, "{:?}", live_tunnels(&snapshot));
    // Both connectors still serve the group's tunnel.
    assert_eq!(connector_ids(&snapshot, &tunnel), connectors);
    let listed = tunnels(&master).await?;
    assert!(listed.len() == 1 && listed[0].id == tunnel && listed[0].route_count == 1, "{listed:?}");
    assert_no_duplicates(&snapshot)?;
    eprintln!("scenario 8b: two agents in group {group}, one tunnel; wall time {} ms", started.elapsed().as_millis());
    Ok(())
}
