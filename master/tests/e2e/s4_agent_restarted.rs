//! Scenario 4: the agent is killed (`kill -9`) and restarted with its data dir. The connector it
//! started keeps running while the agent is gone and is adopted on restart (the same container,
//! never restarted), so a hostname is served without a single failed request from before the
//! kill until after the agent reconnected and re-reported. A container started while the agent
//! was down is routed after the restart and one removed meanwhile is unrouted; the account keeps
//! the agent's one tunnel.

use crate::harness::*;
use anyhow::{bail, Result};
use dockflare_testsupport::{docker, eventually, unique};
use std::time::{Duration, Instant};

const GRACE_SECONDS: u64 = 2;

/// (id, StartedAt, RestartCount, Status) of a container.
fn container_state(name: &str) -> Result<(String, String, String, String)> {
    let out =
        docker(&["inspect", "--format", "{{.Id}}|{{.State.StartedAt}}|{{.RestartCount}}|{{.State.Status}}", name])?;
    match out.split('|').collect::<Vec<_>>().as_slice() {
        [id, started, restarts, status] => {
            Ok((id.to_string(), started.to_string(), restarts.to_string(), status.to_string()))
        }
        _ => bail!("unexpected docker inspect output for {name}: {out:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_killed_and_restarted_adopts_its_connector_without_a_gap() -> Result<()> {
    require_rig();
    let scenario_started = Instant::now();
    let cloud = Cloud::start().await?;
    let master = cloud.master(None, GRACE_SECONDS, &[]).await?;
    let mut agent = EdgeAgent::start(&[master.url()], &master.join_token(1).await?, AgentOptions::default()).await?;
    agent.edge.wait_up(WAIT).await.map_err(|e| e.context(agent.diagnostics()))?;
    let host = |name: &str| format!("{name}.{ZONE}");

    let stable = unique("stable");
    let doomed = unique("doomed");
    agent.run_origin(&stable, &host(&stable), &[])?;
    agent.run_origin(&doomed, &host(&doomed), &[])?;
    let tunnel = expect_served(&cloud, &master, &agent.edge, &host(&stable), Some(&stable), WAIT)
        .await
        .map_err(|e| e.context(agent.diagnostics()))?;
    expect_served(&cloud, &master, &agent.edge, &host(&doomed), Some(&doomed), WAIT)
        .await
        .map_err(|e| e.context(agent.diagnostics()))?;
    let live_before = live_tunnels(&cloud.snapshot());
    assert!(live_before.len() == 1 && live_before[0].0 == tunnel, "live tunnels before: {live_before:?}");
    let connector_before = agent.connector_container_id()?;
    let state_before = container_state(&agent.connector)?;
    assert_eq!((state_before.2.as_str(), state_before.3.as_str()), ("0", "running"), "connector {state_before:?}");
    let created_before = agent.agent.logs.count("Connector created.");
    let connects_before = agent.agent.logs.count("Connected to the master.");

    let prober = agent.edge.probe(&host(&stable), Duration::from_millis(50));
    let killed_at = Instant::now();
    agent.agent.kill9()?;
    eventually("the master sees the agent disconnected", WAIT, || async {
        Ok((!connected(&master, &agent.id).await?).then_some(()))
    })
    .await?;

    // While the agent is down: one container starts, another goes away.
    let late = unique("late");
    agent.run_origin(&late, &host(&late), &[])?;
    docker(&["rm", "-f", &doomed])?;
    // The connector does not depend on the agent: it still serves the stable hostname.
    let answer = agent.edge.get(&host(&stable), "/").await?;
    assert_eq!(answer.origin().as_deref(), Some(stable.as_str()), "through the edge with the agent down: {answer:?}");

    agent.agent.restart()?;
    let down_ms = killed_at.elapsed().as_millis();
    let restarted = Instant::now();
    eventually("the agent reconnected and the master sees it connected", WAIT, || async {
        let reconnected = agent.agent.logs.count("Connected to the master.") > connects_before;
        Ok((reconnected && connected(&master, &agent.id).await?).then_some(()))
    })
    .await
    .map_err(|e| e.context(agent.diagnostics()))?;
    let reconnect_ms = restarted.elapsed().as_millis();

    // Re-reported: the container started while it was down is routed, the removed one is gone,
    // and a container started after the restart is routed too.
    let routed = expect_served(&cloud, &master, &agent.edge, &host(&late), Some(&late), WAIT)
        .await
        .map_err(|e| e.context(agent.diagnostics()))?;
    assert_eq!(routed, tunnel, "{late} routed by another tunnel");
    let late_ms = restarted.elapsed().as_millis();
    expect_gone(&cloud, &master, &agent.edge, &host(&doomed), WAIT)
        .await
        .map_err(|e| e.context(agent.diagnostics()))?;
    let after = unique("after");
    agent.run_origin(&after, &host(&after), &[])?;
    let routed = expect_served(&cloud, &master, &agent.edge, &host(&after), Some(&after), WAIT)
        .await
        .map_err(|e| e.context(agent.diagnostics()))?;
    assert_eq!(routed, tunnel, "{after} routed by another tunnel");
    let report = prober.finish().await?;

    // No gap in serving: not one failed request from before the kill to now.
    assert!(report.failures.is_empty(), "requests to {stable} failed: {:?}", report.failures);
    assert!(report.ok > 30, "too few requests to {stable}: {report:?}");

    // The connector was adopted: the same container, never restarted or recreated.
    let connector_after = agent.connector_container_id()?;
    assert_eq!(connector_after, connector_before, "the connector container was replaced");
    let state_after = container_state(&agent.connector)?;
    assert_eq!(state_after, state_before, "the connector was restarted (id, StartedAt, RestartCount, Status)");
    assert_eq!(agent.agent.logs.count("Connector created."), created_before, "{}", agent.diagnostics());
    assert_eq!(agent.agent.logs.count("Connector removed."), 0, "{}", agent.diagnostics());

    // Account: still the one tunnel, no duplicates.
    let snapshot = cloud.snapshot();
    assert_no_duplicates(&snapshot)?;
    let live_after = live_tunnels(&snapshot);
    assert!(live_after.len() == 1 && live_after[0].0 == tunnel, "live tunnels after: {live_after:?} (was {tunnel})");
    assert_eq!(snapshot.tunnels.len(), 1, "a tunnel was created (and deleted) meanwhile: {:?}", snapshot.tunnels);

    // Master: the same tunnel with the three running origins, the agent connected.
    let listed = tunnels(&master).await?;
    assert!(
        listed.len() == 1
            && listed[0].id == tunnel
            && listed[0].agent_ids == vec![agent.id.clone()]
            && listed[0].route_count == 3,
        "master tunnels: {listed:?}"
    );
    let mut served: Vec<String> = routes(&master).await?.into_iter().map(|r| r.hostname).collect();
    served.sort();
    let mut expected = vec![host(&stable), host(&late), host(&after)];
    expected.sort();
    assert_eq!(served, expected, "master routes");
    assert!(connected(&master, &agent.id).await?, "the agent is not connected at the end");

    // Through the edge: the stable origin still answers.
    let answer = agent.edge.get(&host(&stable), "/").await?;
    assert_eq!(answer.origin().as_deref(), Some(stable.as_str()), "{answer:?}");
    eprintln!(
        "scenario 4: agent down {down_ms} ms; reconnected {reconnect_ms} ms and the container started meanwhile \
         served {late_ms} ms after the restart; connector {} adopted; {} requests, none failed; total {} ms",
        &connector_before[..12.min(connector_before.len())],
        report.ok,
        scenario_started.elapsed().as_millis()
    );
    Ok(())
}
