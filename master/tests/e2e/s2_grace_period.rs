//! Scenario 2: a stopped container's route waits out the grace period, then leaves the account,
//! the master and the edge; a container restarted within the grace keeps its route (same DNS
//! record, never taken out of the tunnel's ingress); a container recreated under a new id (what
//! `docker compose up` does after a change) takes the route over at once.

use crate::harness::*;
use crate::processes::{docker, eventually, unique};
use anyhow::{bail, Result};
use dockflare::v1::RouteStatus;
use std::time::{Duration, Instant};

const GRACE_SECONDS: u64 = 6;

fn record_ids(cloud: &Cloud, hostname: &str) -> Vec<String> {
    cloud.snapshot().dns_records.iter().filter(|r| r.record.name == hostname).map(|r| r.record.id.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_routes_leave_after_the_grace_and_a_quick_restart_keeps_them() -> Result<()> {
    require_rig();
    let cloud = Cloud::start().await?;
    let master = cloud.master(None, GRACE_SECONDS, &[]).await?;
    let mut agent = EdgeAgent::start(&[master.url()], &master.join_token(1).await?, AgentOptions::default()).await?;
    let (keep, leave) = (unique("keep"), unique("leave"));
    let (keep_host, leave_host) = (format!("{keep}.{ZONE}"), format!("{leave}.{ZONE}"));
    agent.run_origin(&keep, &keep_host, &[])?;
    agent.run_origin(&leave, &leave_host, &[])?;
    let tunnel = expect_served(&cloud, &master, &agent.edge, &keep_host, Some(&keep), WAIT)
        .await
        .map_err(|e| e.context(agent.diagnostics()))?;
    expect_served(&cloud, &master, &agent.edge, &leave_host, Some(&leave), WAIT).await?;
    let keep_record = record_ids(&cloud, &keep_host);

    // Both stop; `keep` comes back as soon as the master has it pending deletion.
    let stopped = Instant::now();
    docker(&["stop", "--time", "1", &keep, &leave])?;
    for hostname in [&keep_host, &leave_host] {
        eventually(&format!("{hostname} pending deletion"), WAIT, || async {
            let pending = route(&master, hostname).await?.filter(|r| r.status == RouteStatus::PendingDeletion as i32);
            Ok(pending.filter(|r| r.delete_at.is_some()))
        })
        .await?;
    }
    // While pending (looked at first, well inside the grace), `leave` is still in the account and
    // the edge still has its rule (the origin is gone: 502, not the catch-all's 404).
    let pending = observe(&cloud, &master, &agent.edge, &leave_host).await;
    if pending.cloud.routed().as_deref() != Some(tunnel.as_str())
        || pending.answer.as_ref().map(|a| a.status) != Some(502)
    {
        bail!("within the grace period {leave_host} should still be routed: {pending:?}");
    }
    docker(&["start", &keep])?;
    expect_served(&cloud, &master, &agent.edge, &keep_host, Some(&keep), WAIT).await.map_err(|e| {
        let networks = docker(&["inspect", "--format", "{{json .NetworkSettings.Networks}}", &keep]);
        e.context(format!("{}\n{keep} networks: {networks:?}", agent.diagnostics()))
    })?;
    let restored = route(&master, &keep_host).await?;
    assert!(restored.as_ref().is_some_and(|r| r.delete_at.is_none()), "no deletion left scheduled: {restored:?}");

    // After the grace, `leave` is gone everywhere — and not before.
    expect_gone(&cloud, &master, &agent.edge, &leave_host, Duration::from_secs(GRACE_SECONDS) + WAIT).await?;
    let removed_after = stopped.elapsed();
    assert!(
        removed_after >= Duration::from_secs(GRACE_SECONDS - 1),
        "{leave_host} was removed {removed_after:?} after the stop, before the {GRACE_SECONDS} s grace"
    );
    eprintln!("scenario 2: removed {} ms after the stop (grace {GRACE_SECONDS} s)", removed_after.as_millis());

    // By now the grace has passed for `keep` too: still served, same record, same tunnel.
    let kept = expect_served(&cloud, &master, &agent.edge, &keep_host, Some(&keep), WAIT).await?;
    assert_eq!(kept, tunnel);
    let now_record = record_ids(&cloud, &keep_host);
    if now_record != keep_record {
        bail!(
            "the record of {keep_host} was replaced: {keep_record:?} → {now_record:?}\nthe master's log of it:\n{}",
            hostname_log(&master, &keep_host)
        );
    }
    let listed = tunnels(&master).await?;
    assert!(listed.iter().any(|t| t.id == tunnel && t.route_count == 1), "{listed:?}");

    // Recreated with another name and origin (a changed label, say): the new container takes the
    // hostname over at once, without waiting out the old one's grace period.
    docker(&["rm", "-f", &keep])?;
    let recreated = format!("{keep}-v2");
    let started = Instant::now();
    agent.run_origin(&recreated, &keep_host, &[])?;
    expect_served(&cloud, &master, &agent.edge, &keep_host, Some(&recreated), WAIT)
        .await
        .map_err(|e| e.context(agent.diagnostics()))?;
    let took_over = started.elapsed();
    assert!(took_over < Duration::from_secs(GRACE_SECONDS), "the takeover waited {took_over:?}");
    eprintln!("scenario 2: a recreated container took its route over in {} ms", took_over.as_millis());
    let service = route(&master, &keep_host).await?.map(|r| r.service);
    assert_eq!(service, Some(format!("http://{recreated}:80")));
    eventually("only the recreated container's route remains", WAIT, || async {
        let left: Vec<String> =
            routes(&master).await?.into_iter().filter(|r| r.hostname == keep_host).map(|r| r.container_name).collect();
        Ok((left == vec![recreated.clone()]).then_some(()))
    })
    .await?;
    assert_no_duplicates(&cloud.snapshot())?;
    Ok(())
}
