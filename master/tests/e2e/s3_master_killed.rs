//! Scenario 3: `kill -9` of the master while containers start and stop, then a restart on the same
//! port and SQLite data dir. Containers keep changing while the master is down. Afterwards
//! everything converges: every running origin is served and every removed one is gone (in the
//! account, at the master, through the edge), there is no duplicate tunnel or DNS record, the
//! agent keeps its one tunnel, every command is acknowledged and the agent applied each exactly
//! once; and a route that existed the whole time was served without a single failed request,
//! also while the master was down.

use crate::harness::*;
use anyhow::{bail, Context, Result};
use dockflare::v1::{send_command_request::Kind, CommandState, Resync, SendCommandRequest};
use dockflare_testsupport::{docker, eventually, unique, Master};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const GRACE_SECONDS: u64 = 2;
const LOST: &str = "Connection to the master lost.";

/// Queues a resync command through the admin API; its id.
async fn send_resync(master: &Master, agent_id: &str, reason: &str) -> Result<String> {
    let response = master
        .admin()
        .await?
        .send_command(SendCommandRequest {
            agent_id: agent_id.into(),
            kind: Some(Kind::Resync(Resync { reason: reason.into() })),
        })
        .await?;
    Ok(response.into_inner().command_id)
}

/// The command ids in the agent's "Applied command." log records, in order (every run).
fn applied_command_ids(agent: &EdgeAgent) -> Vec<String> {
    agent
        .agent
        .logs
        .records("Applied command.")
        .iter()
        .filter_map(|r| r.get("command")?.as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_killed_during_container_churn_converges() -> Result<()> {
    require_rig();
    let scenario_started = Instant::now();
    let cloud = Cloud::start().await?;
    let mut master = cloud.master(None, GRACE_SECONDS, &[]).await?;
    let mut agent = EdgeAgent::start(&[master.url()], &master.join_token(1).await?, AgentOptions::default()).await?;
    agent.edge.wait_up(WAIT).await.map_err(|e| e.context(agent.diagnostics()))?;

    // Before: one origin that stays up throughout, two that will be removed.
    let host = |name: &str| format!("{name}.{ZONE}");
    let stable = unique("stable");
    let old: Vec<String> = (0..2).map(|i| unique(&format!("old{i}"))).collect();
    for name in std::iter::once(&stable).chain(&old) {
        agent.run_origin(name, &host(name), &[])?;
    }
    let mut tunnel_ids = BTreeSet::new();
    for name in std::iter::once(&stable).chain(&old) {
        let tunnel = expect_served(&cloud, &master, &agent.edge, &host(name), Some(name), WAIT)
            .await
            .map_err(|e| e.context(agent.diagnostics()))?;
        tunnel_ids.insert(tunnel);
    }
    if tunnel_ids.len() != 1 {
        bail!("one agent's origins are routed by several tunnels: {tunnel_ids:?}");
    }
    let tunnel = tunnel_ids.into_iter().next().unwrap_or_default();
    let prober = agent.edge.probe(&host(&stable), Duration::from_millis(50));

    // Churn with the master up, then kill it right after the last change and a few queued
    // commands, while it is processing them (events, reconcile passes, command deliveries).
    let new: Vec<String> = (0..4).map(|i| unique(&format!("new{i}"))).collect();
    let mut resyncs = Vec::new();
    agent.run_origin(&new[0], &host(&new[0]), &[])?;
    resyncs.push(send_resync(&master, &agent.id, "before the kill 1").await?);
    agent.run_origin(&new[1], &host(&new[1]), &[])?;
    docker(&["stop", "--time", "1", &old[0]])?;
    resyncs.push(send_resync(&master, &agent.id, "before the kill 2").await?);
    resyncs.push(send_resync(&master, &agent.id, "before the kill 3").await?);
    let lost_before = agent.agent.logs.count(LOST);
    let killed_at = Instant::now();
    master.kill9()?;

    // While it is down: more containers come and go.
    agent.run_origin(&new[2], &host(&new[2]), &[])?;
    docker(&["rm", "-f", &old[1]])?;
    agent.run_origin(&new[3], &host(&new[3]), &[])?;
    docker(&["rm", &old[0]])?;
    if master.admin().await.is_ok() {
        bail!("the master still answers after kill -9");
    }
    // The agent noticed and keeps trying.
    eventually("the agent noticed the master is gone", WAIT, || async {
        Ok((agent.agent.logs.count(LOST) > lost_before).then_some(()))
    })
    .await
    .map_err(|e| e.context(agent.diagnostics()))?;
    master.restart().await?;
    let down_ms = killed_at.elapsed().as_millis();
    let restarted = Instant::now();
    eventually("the agent reconnected to the restarted master", WAIT, || async {
        Ok(connected(&master, &agent.id).await?.then_some(()))
    })
    .await
    .map_err(|e| e.context(agent.diagnostics()))?;

    // Everything converges: running origins served, removed ones gone (after the grace period).
    for name in std::iter::once(&stable).chain(&new) {
        let routed = expect_served(&cloud, &master, &agent.edge, &host(name), Some(name), WAIT)
            .await
            .map_err(|e| e.context(format!("{}\nmaster:\n{}", agent.diagnostics(), tail(&master.logs.text(), 40))))?;
        if routed != tunnel {
            bail!("{name} is routed by tunnel {routed}, not by the agent's tunnel {tunnel}");
        }
    }
    let converged_ms = restarted.elapsed().as_millis();
    for name in &old {
        expect_gone(&cloud, &master, &agent.edge, &host(name), WAIT)
            .await
            .map_err(|e| e.context(format!("{}\nmaster:\n{}", agent.diagnostics(), tail(&master.logs.text(), 40))))?;
    }
    let report = prober.finish().await?;

    // The route that existed the whole time never failed, even while the master was down.
    assert!(report.failures.is_empty(), "requests to {stable} failed: {:?}", report.failures);
    assert!(report.ok > 40, "too few requests to {stable}: {report:?}");
    assert_eq!(report.origins.keys().collect::<Vec<_>>(), vec![&stable], "{report:?}");

    // Account: no duplicates, the agent's one tunnel is still its only live tunnel.
    let snapshot = cloud.snapshot();
    assert_no_duplicates(&snapshot)?;
    let live = live_tunnels(&snapshot);
    assert!(live.len() == 1 && live[0].0 == tunnel, "live tunnels: {live:?} (expected only {tunnel})");
    let records: Vec<&str> = snapshot.dns_records.iter().map(|r| r.record.name.as_str()).collect();
    if records.len() != 1 + new.len() {
        let dns_log: Vec<String> = master
            .logs
            .lines()
            .into_iter()
            .filter(|line| line.contains("DNS record") || line.contains("Route"))
            .collect();
        bail!(
            "DNS records: {records:?} (expected the stable and the {} new ones)\nroutes at the master: {:#?}\n\
             DNS and route log of this run of the master:\n{}",
            new.len(),
            routes(&master).await?,
            dns_log.join("\n")
        );
    }

    // Master: the same single tunnel, carrying exactly the running origins.
    let listed = tunnels(&master).await?;
    assert!(
        listed.len() == 1
            && listed[0].id == tunnel
            && listed[0].agent_ids == vec![agent.id.clone()]
            && listed[0].route_count as usize == 1 + new.len(),
        "master tunnels: {listed:?}"
    );
    let mut served: Vec<String> = routes(&master).await?.into_iter().map(|r| r.hostname).collect();
    served.sort();
    let mut expected: Vec<String> = std::iter::once(&stable).chain(&new).map(|n| host(n)).collect();
    expected.sort();
    assert_eq!(served, expected, "master routes");

    // Commands: all acknowledged (the ones queued just before the kill included), sequences
    // 1..=n without gaps, and the agent applied each one exactly once.
    let commands = eventually("every command acknowledged", WAIT, || async {
        let commands = commands(&master, &agent.id).await?;
        Ok(commands.iter().all(|c| c.state == CommandState::Acked as i32).then_some(commands))
    })
    .await
    .map_err(|e| e.context(agent.diagnostics()))?;
    let sequences: Vec<u64> = commands.iter().map(|c| c.sequence).collect();
    assert_eq!(sequences, (1..=commands.len() as u64).collect::<Vec<_>>(), "command sequences");
    let ids: BTreeSet<&str> = commands.iter().map(|c| c.id.as_str()).collect();
    for resync in &resyncs {
        assert!(ids.contains(resync.as_str()), "resync {resync} missing from the master's log: {commands:?}");
    }
    let applied = applied_command_ids(&agent);
    let mut times: BTreeMap<&str, usize> = BTreeMap::new();
    for id in &applied {
        *times.entry(id.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = times.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "commands applied more than once: {twice:?}\n{}", agent.diagnostics());
    let applied_ids: BTreeSet<&str> = times.keys().copied().collect();
    assert_eq!(applied_ids, ids, "commands the agent applied vs the master's log");
    let redelivered = commands.iter().filter(|c| c.delivery_count > 1).count();
    let acked_again = agent.agent.logs.count("Command already applied; acknowledging again.");

    // The request through the edge after everything: the stable origin still answers.
    let answer = agent.edge.get(&host(&stable), "/").await.context("the edge after convergence")?;
    assert_eq!(answer.origin().as_deref(), Some(stable.as_str()), "{answer:?}");
    eprintln!(
        "scenario 3: master down {down_ms} ms; converged {converged_ms} ms after the restart; {} commands all acked \
         ({redelivered} delivered more than once, {acked_again} acknowledged again by the agent), each applied once; \
         {} requests to the stable route, none failed; total {} ms",
        commands.len(),
        report.ok,
        scenario_started.elapsed().as_millis()
    );
    Ok(())
}
