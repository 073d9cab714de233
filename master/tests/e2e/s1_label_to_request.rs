//! Scenario 1: label → route → request. A labelled container on a standalone engine (started
//! without a network: the agent attaches it to the connector's) answers through the local edge;
//! on a Swarm manager, `docker service create` with labels and 3 replicas on the overlay, then
//! `docker service scale … =6`, answers throughout.

use crate::harness::*;
use anyhow::{bail, Result};
use dockflare_testsupport::{docker, eventually, unique};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_label_to_route_to_request() -> Result<()> {
    require_rig();
    let cloud = Cloud::start().await?;
    let master = cloud.master(None, 5, &[]).await?;
    let mut agent = EdgeAgent::start(&[master.url()], &master.join_token(1).await?, AgentOptions::default()).await?;
    agent.edge.wait_up(WAIT).await.map_err(|e| e.context(agent.diagnostics()))?;

    let web = unique("web");
    let hostname = format!("{web}.{ZONE}");
    let started = Instant::now();
    agent.run_origin(&web, &hostname, &[])?;
    let tunnel = expect_served(&cloud, &master, &agent.edge, &hostname, Some(&web), WAIT)
        .await
        .map_err(|e| e.context(agent.diagnostics()))?;
    eprintln!("scenario 1: docker run → first answer through the local edge in {} ms", started.elapsed().as_millis());

    // The request reached the origin as sent: Host kept, path and query intact.
    let answer = agent.edge.get(&hostname, "/hello?x=1").await?;
    let body: serde_json::Value = serde_json::from_str(&answer.body)?;
    assert_eq!((body["host"].as_str(), body["path"].as_str()), (Some(hostname.as_str()), Some("/hello?x=1")));
    // The origin was attached to the connector network by the agent.
    let networks = docker(&["inspect", "--format", "{{json .NetworkSettings.Networks}}", &web])?;
    if !networks.contains(&agent.network) {
        bail!("{web} was not attached to {}: {networks}", agent.network);
    }
    // Master: the tunnel is the agent's and its connector (the edge) is connected.
    let listed = tunnels(&master).await?;
    let ours = listed.iter().find(|t| t.id == tunnel);
    assert!(ours.is_some_and(|t| t.agent_ids == vec![agent.id.clone()] && t.route_count == 1), "{listed:?}");
    eventually("the tunnel is healthy in the account", WAIT, || async {
        let snapshot = cloud.snapshot();
        Ok(snapshot.tunnels.iter().any(|t| t.id == tunnel && t.status == "healthy").then_some(()))
    })
    .await?;
    // Unknown hosts get the catch-all.
    assert_eq!(agent.edge.get(&format!("nobody.{ZONE}"), "/").await?.status, 404);
    assert_no_duplicates(&cloud.snapshot())?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_service_with_replicas_scales_while_answering() -> Result<()> {
    require_swarm();
    let cloud = Cloud::start().await?;
    let master = cloud.master(None, 5, &[]).await?;
    let options = AgentOptions { mode: "swarm", ..AgentOptions::default() };
    let mut agent = EdgeAgent::start(&[master.url()], &master.join_token(1).await?, options).await?;
    agent.edge.wait_up(WAIT).await.map_err(|e| e.context(agent.diagnostics()))?;

    let service = unique("web-app");
    agent.cleanup.services.push(service.clone());
    let hostname = format!("{service}.{ZONE}");
    docker(&[
        "service",
        "create",
        "-d",
        "--name",
        &service,
        "--replicas",
        "3",
        // Swarm's virtual IPs need the kernel's IPVS, which this CI kernel lacks; DNS round robin
        // resolves the service name to its tasks instead (what cloudflared would see either way).
        "--endpoint-mode",
        "dnsrr",
        "--network",
        &agent.network,
        "--label",
        &agent.scope_label,
        "--label",
        "dockflare.enable=true",
        "--label",
        &format!("dockflare.hostname={hostname}"),
        "--label",
        &format!("dockflare.service=http://{service}:80"),
        ORIGIN_IMAGE,
    ])?;
    expect_served(&cloud, &master, &agent.edge, &hostname, None, WAIT)
        .await
        .map_err(|e| e.context(agent.diagnostics()))?;
    let prober = agent.edge.probe(&hostname, Duration::from_millis(20));
    docker(&["service", "scale", "-d", &format!("{service}=6")])?;
    let running = eventually("the master sees 6 running replicas", WAIT, || async {
        let status = containers(&master, &agent.id)
            .await?
            .into_iter()
            .find(|c| c.name == service && c.task_id.is_empty())
            .map(|c| c.status);
        Ok(status.filter(|s| s == "running 6/6"))
    })
    .await?;
    // The new replicas serve too (the name resolves to every task, in turn).
    let origins = std::sync::Mutex::new(std::collections::BTreeSet::new());
    eventually("all six replicas answer", WAIT, || async {
        let origin = agent.edge.get(&hostname, "/").await?.origin();
        let mut seen = origins.lock().unwrap_or_else(|p| p.into_inner());
        seen.extend(origin);
        Ok((seen.len() == 6).then_some(()))
    })
    .await?;
    // Once all six run, every request still succeeds.
    for attempt in 0..50 {
        let answer = agent.edge.get(&hostname, "/").await?;
        if answer.origin().is_none() {
            bail!("request {attempt} after the scale-up failed: {answer:?}");
        }
    }
    let report = prober.finish().await?;
    assert!(report.failures.is_empty(), "requests failed during the scale-up: {:?}", report.failures);
    assert!(report.ok > 10, "too few requests during the scale-up: {report:?}");
    eprintln!(
        "scenario 1 (Swarm): {running}; {} requests through the scale-up, none failed; origins seen: {:?}",
        report.ok, report.origins
    );

    // One route, one tunnel, one record.
    let tunnel = expect_served(&cloud, &master, &agent.edge, &hostname, None, WAIT).await?;
    let listed = tunnels(&master).await?;
    assert!(listed.iter().any(|t| t.id == tunnel && t.agent_ids == vec![agent.id.clone()]), "{listed:?}");
    assert_no_duplicates(&cloud.snapshot())?;
    Ok(())
}
