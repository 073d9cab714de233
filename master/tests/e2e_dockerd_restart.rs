//! End-to-end scenario 5: the Docker daemon restarts under a running agent. The agent reconnects,
//! relists and sends a full status report, so routes converge on what runs: an origin with
//! `--restart always` comes back and is served again in all three places (its connector, restart
//! policy always, comes back too), an origin without a restart policy is gone everywhere after the
//! grace period, and an origin started right after the restart is served; the master's container
//! list holds exactly what runs, nothing stale, nothing missing. Its own test binary because it
//! restarts the engine under every other test; the Swarm this engine manages must come back too.

#[path = "e2e/harness.rs"]
mod harness;
#[path = "support/mod.rs"]
mod support;

use anyhow::{bail, Context, Result};
use dockflare_testsupport::{docker, eventually, unique, Master};
use harness::*;
use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// The grace period of the master, in seconds: longer than the restart (about 6 s here) plus the
/// agent's reconnect backoff (at most 10 s), so R's route outlives the outage and N's ends after it.
const GRACE_SECONDS: u64 = 30;
/// Deadlines after the restart: the engine restarts containers, the agent reconnects with backoff,
/// N's grace period runs out.
const AFTER_RESTART: Duration = Duration::from_secs(GRACE_SECONDS + 60);

/// (name, id) of every container the master has for `agent_id`.
async fn reported(master: &Master, agent_id: &str) -> Result<BTreeSet<(String, String)>> {
    Ok(containers(master, agent_id).await?.into_iter().map(|c| (c.name, c.id)).collect())
}

/// Waits until the master's container list for `agent` is exactly `expected`.
async fn expect_reported(
    master: &Master,
    agent: &EdgeAgent,
    expected: &BTreeSet<(String, String)>,
    within: Duration,
) -> Result<()> {
    let last = std::sync::Mutex::new(BTreeSet::new());
    let result = eventually("the master lists exactly what runs", within, || async {
        let seen = reported(master, &agent.id).await?;
        let done = seen == *expected;
        *last.lock().unwrap_or_else(|p| p.into_inner()) = seen;
        Ok(done.then_some(()))
    })
    .await;
    result.with_context(|| {
        format!(
            "expected {expected:?}, last listed {:?}\n{}",
            last.lock().unwrap_or_else(|p| p.into_inner()),
            agent.diagnostics()
        )
    })
}

/// Ids of the DNS records named `hostname` in the account.
fn record_ids(cloud: &Cloud, hostname: &str) -> Vec<String> {
    cloud.snapshot().dns_records_named(hostname).into_iter().map(|r| r.id.clone()).collect()
}

/// The engine's Swarm state: "<LocalNodeState> <ControlAvailable>".
fn swarm_state() -> Result<String> {
    docker(&["info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}"])
}

/// Restarts dockerd with `deploy/dockerd-restart.sh`, in a process group of its own so that a
/// Ctrl-C of the test run cannot interrupt the script between stopping and starting the engine.
fn restart_dockerd() -> Result<()> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/dockerd-restart.sh");
    let output = std::process::Command::new(&script)
        .process_group(0)
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !output.status.success() {
        bail!(
            "{} failed ({}): {}{}",
            script.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_converge_on_what_runs_after_a_dockerd_restart() -> Result<()> {
    require_rig();
    let test_started = Instant::now();
    let swarm_before = swarm_state()?;
    let cloud = Cloud::start().await?;
    let master = cloud.master(None, GRACE_SECONDS, &[]).await?;
    let mut agent = EdgeAgent::start(&[master.url()], &master.join_token(1).await?, AgentOptions::default()).await?;
    agent.edge.wait_up(WAIT).await.map_err(|e| e.context(agent.diagnostics()))?;

    // R comes back with the engine, N does not.
    let restarted = unique("restarted");
    let not_restarted = unique("not-restarted");
    let (restarted_host, not_restarted_host) = (format!("{restarted}.{ZONE}"), format!("{not_restarted}.{ZONE}"));
    let restarted_id = agent.run_origin(&restarted, &restarted_host, &["--restart", "always"])?;
    let not_restarted_id = agent.run_origin(&not_restarted, &not_restarted_host, &["--restart", "no"])?;
    let tunnel = expect_served(&cloud, &master, &agent.edge, &restarted_host, Some(&restarted), WAIT)
        .await
        .map_err(|e| e.context(agent.diagnostics()))?;
    let tunnel_n = expect_served(&cloud, &master, &agent.edge, &not_restarted_host, Some(&not_restarted), WAIT)
        .await
        .map_err(|e| e.context(agent.diagnostics()))?;
    if tunnel_n != tunnel {
        bail!("one agent, two tunnels: {tunnel} and {tunnel_n}");
    }
    let before: BTreeSet<(String, String)> =
        [(restarted.clone(), restarted_id.clone()), (not_restarted.clone(), not_restarted_id)].into_iter().collect();
    expect_reported(&master, &agent, &before, WAIT).await?;
    let connector_before = agent.connector_container_id()?;
    let relists_before = agent.agent.logs.count("Docker inventory listed.");
    let record_before = record_ids(&cloud, &restarted_host);

    let restart_started = Instant::now();
    restart_dockerd()?;
    let engine_back = restart_started.elapsed();
    // The engine is a Swarm manager again before anything else (the rest of the suite needs it).
    let swarm_back = if swarm_before == "active true" {
        eventually("the Swarm manager is back after the restart", AFTER_RESTART, || async {
            Ok((swarm_state()? == "active true").then_some(()))
        })
        .await?;
        Some(restart_started.elapsed())
    } else {
        None
    };

    // A container started right after the restart is not missed.
    let newcomer = unique("newcomer");
    let newcomer_host = format!("{newcomer}.{ZONE}");
    let newcomer_id = agent.run_origin(&newcomer, &newcomer_host, &[])?;

    // R is served again, through the same tunnel and the restarted connector.
    let served_again = expect_served(&cloud, &master, &agent.edge, &restarted_host, Some(&restarted), AFTER_RESTART)
        .await
        .map_err(|e| e.context(agent.diagnostics()))?;
    let r_back = restart_started.elapsed();
    if served_again != tunnel {
        bail!("R is served through tunnel {served_again}, not {tunnel} as before the restart");
    }
    // R was gone for less than the grace period: its route was kept, not deleted and recreated.
    let record_after = record_ids(&cloud, &restarted_host);
    if record_after != record_before {
        bail!(
            "R's DNS record changed across a {engine_back:?} restart ({record_before:?} → {record_after:?}): its \
             route did not outlive the outage within the {GRACE_SECONDS} s grace period\n{}",
            agent.diagnostics()
        );
    }
    expect_served(&cloud, &master, &agent.edge, &newcomer_host, Some(&newcomer), AFTER_RESTART)
        .await
        .map_err(|e| e.context(agent.diagnostics()))?;
    // N is not running: gone everywhere once the grace period is over.
    expect_gone(&cloud, &master, &agent.edge, &not_restarted_host, AFTER_RESTART)
        .await
        .map_err(|e| e.context(agent.diagnostics()))?;
    let n_gone = restart_started.elapsed();
    if n_gone < Duration::from_secs(GRACE_SECONDS) {
        bail!("N was removed {n_gone:?} after the restart, before the {GRACE_SECONDS} s grace period");
    }

    // The master lists exactly what runs: R (same container, restarted) and the newcomer.
    let after: BTreeSet<(String, String)> =
        [(restarted.clone(), restarted_id.clone()), (newcomer.clone(), newcomer_id)].into_iter().collect();
    expect_reported(&master, &agent, &after, AFTER_RESTART).await?;
    let states = docker(&["inspect", "--format", "{{.Name}} {{.State.Status}}", &restarted, &not_restarted])?;
    if states != format!("/{restarted} running\n/{not_restarted} exited") {
        bail!("unexpected container states after the restart: {states}");
    }
    // The connector came back by its restart policy (the same container, running).
    let connector_after = agent.connector_container_id()?;
    let connector_state = docker(&["inspect", "--format", "{{.State.Status}}", &agent.connector])?;
    if connector_after != connector_before || connector_state != "running" {
        bail!(
            "the connector is {connector_after} ({connector_state}), before the restart it was {connector_before}\n{}",
            agent.diagnostics()
        );
    }

    // The agent noticed, reconnected and relisted.
    let logs = &agent.agent.logs;
    if logs.count("Lost the Docker engine; reconnecting.") < 1
        || logs.count("Docker inventory listed.") <= relists_before
    {
        bail!("the agent did not reconnect and relist:\n{}", agent.diagnostics());
    }
    let snapshot = cloud.snapshot();
    assert_no_duplicates(&snapshot)?;
    let live = live_tunnels(&snapshot);
    if live.len() != 1 || live[0].0 != tunnel {
        bail!("expected exactly the agent's tunnel {tunnel}, the account has {live:?}");
    }
    assert_eq!(agent.edge.get(&format!("nobody.{ZONE}"), "/").await?.status, 404);
    eprintln!(
        "scenario 5: dockerd restart took {} ms{}; R served again {} ms after the restart began (same DNS record), \
         N gone after {} ms (grace {GRACE_SECONDS} s); total {} ms",
        engine_back.as_millis(),
        swarm_back.map_or(String::new(), |t| format!(", Swarm manager back after {} ms", t.as_millis())),
        r_back.as_millis(),
        n_gone.as_millis(),
        test_started.elapsed().as_millis(),
    );
    Ok(())
}
