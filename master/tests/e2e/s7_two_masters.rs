//! Scenario 7: two masters on one PostgreSQL database and one Cloudflare account. Exactly one
//! reconciles (advisory lock); a command queued through the master the agent is not connected to
//! reaches it (LISTEN/NOTIFY). The master the agent uses is killed with SIGKILL: the agent fails
//! over to the other while requests through the edge keep succeeding (the
//! connector does not depend on the master link), the standby takes over reconciling and routes a
//! new origin, commands still arrive, and the account holds one tunnel and no duplicate records.

use crate::harness::*;
use crate::support::TestDatabase;
use anyhow::{bail, Context, Result};
use dockflare::v1::{send_command_request::Kind, CommandState, Resync, SendCommandRequest};
use dockflare_testsupport::{eventually, unique, Master};
use std::time::{Duration, Instant};

const LEADER: &str = "This master now reconciles Cloudflare (leader).";
/// A deadline for the failover and for a command's delivery: a bound for correctness that a
/// loaded machine cannot outlast (the agent's reconnect waits are capped at 4 s), not a speed
/// claim. How fast they are is what the scenario prints.
const FAILOVER: Duration = Duration::from_secs(30);

/// Queues a Resync through `master`; its command id.
async fn send_resync(master: &Master, agent_id: &str) -> Result<String> {
    let response = master
        .admin()
        .await?
        .send_command(SendCommandRequest {
            agent_id: agent_id.into(),
            kind: Some(Kind::Resync(Resync { reason: "e2e scenario 7".into() })),
        })
        .await?;
    Ok(response.into_inner().command_id)
}

/// Queues a Resync through `master` and waits until it is acknowledged; the time it took.
async fn resync_delivered(master: &Master, agent: &EdgeAgent, within: Duration) -> Result<Duration> {
    let started = Instant::now();
    let command_id = send_resync(master, &agent.id).await?;
    eventually(&format!("command {command_id} acknowledged"), within, || async {
        let acked = commands(master, &agent.id)
            .await?
            .iter()
            .any(|c| c.id == command_id && c.state == CommandState::Acked as i32);
        Ok(acked.then_some(()))
    })
    .await
    .map_err(|e| e.context(agent.diagnostics()))?;
    Ok(started.elapsed())
}

/// Exactly one live tunnel in the account, and no duplicate tunnel or record.
fn one_tunnel(cloud: &Cloud) -> Result<String> {
    let snapshot = cloud.snapshot();
    assert_no_duplicates(&snapshot)?;
    match live_tunnels(&snapshot).as_slice() {
        [(id, _, _)] => Ok(id.clone()),
        other => bail!("expected exactly one live tunnel, found {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_masters_fail_over_without_a_gap_and_hand_over_the_reconciler() -> Result<()> {
    require_rig();
    let test_started = Instant::now();
    let database = TestDatabase::postgres().await?;
    let cloud = Cloud::start().await?;
    let first = cloud.master(Some(&database.url), 5, &[]).await?;
    let pki = first.data_dir.path().join("pki");
    let (ca_cert, ca_key) =
        (pki.join("ca.crt").to_string_lossy().to_string(), pki.join("ca.key").to_string_lossy().to_string());
    let second = cloud.master(Some(&database.url), 5, &["--ca-cert", &ca_cert, "--ca-key", &ca_key]).await?;
    let mut masters = [first, second];

    // Exactly one master reconciles.
    let leader =
        eventually("a master leads", WAIT, || async { Ok(masters.iter().position(|m| m.logs.count(LEADER) > 0)) })
            .await?;
    let standby = 1 - leader;
    let leading: Vec<usize> = masters.iter().map(|m| m.logs.count(LEADER)).collect();
    if leading[standby] != 0 || leading[leader] != 1 {
        bail!("two leaders at once (leader log count per master: {leading:?})");
    }

    // The agent prefers the leader (the first URL), so killing its master also kills the leader.
    let urls = [masters[leader].url(), masters[standby].url()];
    let mut agent = EdgeAgent::start(&urls, &masters[leader].join_token(1).await?, AgentOptions::default()).await?;
    agent.edge.wait_up(WAIT).await.map_err(|e| e.context(agent.diagnostics()))?;

    let web = unique("web");
    let hostname = format!("{web}.{ZONE}");
    agent.run_origin(&web, &hostname, &[])?;
    // Both masters see the same route (one database).
    let tunnel = expect_served(&cloud, &masters[standby], &agent.edge, &hostname, Some(&web), WAIT)
        .await
        .map_err(|e| e.context(agent.diagnostics()))?;
    expect_served(&cloud, &masters[leader], &agent.edge, &hostname, Some(&web), WAIT).await?;
    if one_tunnel(&cloud)? != tunnel {
        bail!("the served tunnel {tunnel} is not the account's only tunnel");
    }
    if masters[standby].logs.count(LEADER) != 0 {
        bail!("the standby led while the leader was alive");
    }

    // Which master the agent is connected to, as the masters say: exactly one.
    let agents_master = eventually("the agent connected to exactly one master", WAIT, || async {
        let on = [connected(&masters[0], &agent.id).await?, connected(&masters[1], &agent.id).await?];
        Ok(match on {
            [true, false] => Some(0),
            [false, true] => Some(1),
            _ => None,
        })
    })
    .await
    .map_err(|e| e.context(agent.diagnostics()))?;
    let other = 1 - agents_master;

    // A command queued through the master the agent is not connected to reaches it at once.
    let delivery_before = resync_delivered(&masters[other], &agent, FAILOVER).await?;

    // Kill -9 the agent's master while requests flow through the edge.
    let prober = agent.edge.probe(&hostname, Duration::from_millis(20));
    let killed_leader = agents_master == leader;
    masters[agents_master].kill9()?;
    let killed = Instant::now();
    eventually("the agent on the surviving master", FAILOVER, || async {
        Ok(connected(&masters[other], &agent.id).await?.then_some(()))
    })
    .await
    .map_err(|e| e.context(agent.diagnostics()))
    .with_context(|| format!("no failover within {FAILOVER:?}"))?;
    let failover = killed.elapsed();

    // Commands still arrive (queued through the survivor, which the agent now uses).
    let delivery_after = resync_delivered(&masters[other], &agent, FAILOVER).await?;

    // The survivor reconciles: it took over, or it led all along.
    let takeover = if killed_leader {
        masters[other]
            .logs
            .wait_for(LEADER, WAIT)
            .await
            .context("the standby did not take over reconciling after the leader died")?;
        Some(killed.elapsed())
    } else {
        None
    };
    let survivor = &masters[other];
    if survivor.logs.count(LEADER) != 1 {
        bail!("the survivor became leader {} times", survivor.logs.count(LEADER));
    }

    // A new origin started after the kill is routed by the survivor; the old one still is.
    let late = unique("late");
    let late_hostname = format!("{late}.{ZONE}");
    let late_started = Instant::now();
    agent.run_origin(&late, &late_hostname, &[])?;
    let late_tunnel = expect_served(&cloud, survivor, &agent.edge, &late_hostname, Some(&late), WAIT)
        .await
        .map_err(|e| e.context(agent.diagnostics()))?;
    let late_served = late_started.elapsed();
    let report = prober.finish().await?;
    if !report.failures.is_empty() {
        bail!("requests failed across the failover ({} ok): {:?}", report.ok, report.failures);
    }
    if report.ok < 20 || report.origins.keys().collect::<Vec<_>>() != vec![&web] {
        bail!("too few requests, or the wrong origin, across the failover: {report:?}");
    }
    expect_served(&cloud, survivor, &agent.edge, &hostname, Some(&web), WAIT).await?;

    // Still one tunnel (the agent's), nothing duplicated; the master knows it as the agent's.
    if late_tunnel != tunnel || one_tunnel(&cloud)? != tunnel {
        bail!(
            "the tunnel changed across the failover: {tunnel} → {late_tunnel}; {:?}",
            live_tunnels(&cloud.snapshot())
        );
    }
    let listed = tunnels(survivor).await?;
    if !listed.iter().any(|t| t.id == tunnel && t.agent_ids == vec![agent.id.clone()] && t.route_count == 2) {
        bail!("the survivor's tunnels: {listed:?}");
    }
    assert_eq!(agent.edge.get(&format!("nobody.{ZONE}"), "/").await?.status, 404);
    eprintln!(
        "scenario 7: killed the {} the agent used; failover {} ms, {} requests through the edge meanwhile, none \
         failed; command through the other master {} ms before, {} ms after the kill; takeover {}; new origin \
         served {} ms after docker run; total {} ms",
        if killed_leader { "leader" } else { "standby" },
        failover.as_millis(),
        report.ok,
        delivery_before.as_millis(),
        delivery_after.as_millis(),
        takeover.map_or("not needed".to_string(), |t| format!("{} ms after the kill", t.as_millis())),
        late_served.as_millis(),
        test_started.elapsed().as_millis(),
    );
    Ok(())
}
