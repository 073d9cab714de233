//! Scenario 2: a stopped container's route waits out the grace period, then leaves the account,
//! the master and the edge; a container restarted within the grace keeps its route (same DNS
//! record, never taken out of the tunnel's ingress); a container recreated under a new id (what
//! `docker compose up` does after a change) takes the route over at once.
//!
//! Timing assumptions are stated, not hoped for. Load only ever delays, so each property gets a
//! grace that no delay can spoil:
//! - leaving (a short grace, [`SHORT_GRACE_SECONDS`]): "not before the grace" is a lower bound,
//!   which delays cannot break; "still routed inside the grace" is checked against the deadline
//!   the master itself set, and the test says so if its look came too late to count;
//! - keeping and taking over (a grace no restart outlasts, [`LONG_GRACE_SECONDS`]): the restart
//!   and the takeover are then inside the grace by construction, and "the takeover did not wait
//!   for the grace" needs no stopwatch.

use crate::harness::*;
use anyhow::{bail, Context, Result};
use dockflare::v1::{ReconcileRequest, RouteStatus};
use dockflare_testsupport::{docker, eventually, unique};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The grace of the master that removes a route: short, to wait it out.
const SHORT_GRACE_SECONDS: u64 = 10;
/// The grace of the master that keeps one: longer than any restart on a loaded machine.
const LONG_GRACE_SECONDS: u64 = 600;

fn record_ids(cloud: &Cloud, hostname: &str) -> Vec<String> {
    cloud.snapshot().dns_records.iter().filter(|r| r.record.name == hostname).map(|r| r.record.id.clone()).collect()
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

/// Waits until `hostname` is pending deletion; answers its deadline (Unix ms).
async fn pending_deadline(master: &dockflare_testsupport::Master, hostname: &str) -> Result<i64> {
    let pending = eventually(&format!("{hostname} pending deletion"), WAIT, || async {
        let pending = route(master, hostname).await?.filter(|r| r.status == RouteStatus::PendingDeletion as i32);
        Ok(pending.and_then(|r| r.delete_at))
    })
    .await?;
    Ok(pending.seconds * 1000 + i64::from(pending.nanos) / 1_000_000)
}

/// A master with `grace_seconds`, an agent with the local edge, and one origin served through it.
/// (Fields drop in order: the agent before the master and the account.)
struct Rig {
    agent: EdgeAgent,
    master: dockflare_testsupport::Master,
    cloud: Cloud,
    origin: String,
    hostname: String,
    /// The tunnel that serves it.
    tunnel: String,
}

async fn rig(grace_seconds: u64, name: &str) -> Result<Rig> {
    require_rig();
    let cloud = Cloud::start().await?;
    let master = cloud.master(None, grace_seconds, &[]).await?;
    let mut agent = EdgeAgent::start(&[master.url()], &master.join_token(1).await?, AgentOptions::default()).await?;
    let origin = unique(name);
    let hostname = format!("{origin}.{ZONE}");
    agent.run_origin(&origin, &hostname, &[])?;
    let tunnel = expect_served(&cloud, &master, &agent.edge, &hostname, Some(&origin), WAIT)
        .await
        .map_err(|e| e.context(agent.diagnostics()))?;
    Ok(Rig { agent, master, cloud, origin, hostname, tunnel })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_route_stays_for_the_grace_then_leaves_everywhere() -> Result<()> {
    let Rig { cloud, master, agent, origin: leave, hostname: leave_host, tunnel } =
        rig(SHORT_GRACE_SECONDS, "leave").await?;

    let stopped = Instant::now();
    docker(&["stop", "--time", "1", &leave])?;
    let deadline = pending_deadline(&master, &leave_host).await?;
    // While pending, the route is still in the account and the edge still has its rule (the
    // origin is gone: 502, not the catch-all's 404) — if this look ends before the deadline the
    // master set; a look that ended later proves nothing, and says so.
    let pending = observe(&cloud, &master, &agent.edge, &leave_host).await;
    let looked_by = now_ms();
    if looked_by >= deadline {
        bail!(
            "the look at the pending route ended {} ms after its deadline: this machine was too slow for a {} s \
             grace (nothing was checked)",
            looked_by - deadline,
            SHORT_GRACE_SECONDS
        );
    }
    if pending.cloud.routed().as_deref() != Some(tunnel.as_str())
        || pending.answer.as_ref().map(|a| a.status) != Some(502)
    {
        bail!(
            "within the grace period {leave_host} should still be routed: {pending:?}\nthe master's log of it:\n{}",
            hostname_log(&master, &leave_host)
        );
    }

    // After the grace, gone everywhere — and not before (a lower bound: delays cannot break it).
    expect_gone(&cloud, &master, &agent.edge, &leave_host, Duration::from_secs(SHORT_GRACE_SECONDS) + WAIT).await?;
    let removed_after = stopped.elapsed();
    assert!(
        removed_after >= Duration::from_secs(SHORT_GRACE_SECONDS - 1),
        "{leave_host} was removed {removed_after:?} after the stop, before the {SHORT_GRACE_SECONDS} s grace"
    );
    eprintln!("scenario 2: removed {} ms after the stop (grace {SHORT_GRACE_SECONDS} s)", removed_after.as_millis());
    assert_no_duplicates(&cloud.snapshot())?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quick_restart_keeps_the_route_and_a_recreated_container_takes_it_over() -> Result<()> {
    let Rig { cloud, master, mut agent, origin: keep, hostname: keep_host, tunnel } =
        rig(LONG_GRACE_SECONDS, "keep").await?;
    let keep_record = record_ids(&cloud, &keep_host);

    // Stopped, pending deletion, started again: well inside a grace no restart outlasts.
    docker(&["stop", "--time", "1", &keep])?;
    let deadline = pending_deadline(&master, &keep_host).await?;
    docker(&["start", &keep])?;
    expect_served(&cloud, &master, &agent.edge, &keep_host, Some(&keep), WAIT).await.map_err(|e| {
        let networks = docker(&["inspect", "--format", "{{json .NetworkSettings.Networks}}", &keep]);
        e.context(format!("{}\n{keep} networks: {networks:?}", agent.diagnostics()))
    })?;
    let back_at = now_ms();
    assert!(back_at < deadline, "the restart was served {} ms after the route's deadline", back_at - deadline);
    let restored = route(&master, &keep_host).await?;
    assert!(restored.as_ref().is_some_and(|r| r.delete_at.is_none()), "no deletion left scheduled: {restored:?}");
    // A full pass (drift repair included) leaves it alone: same record, same tunnel.
    master.admin().await?.reconcile(ReconcileRequest {}).await?;
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
    // hostname over at once. With this grace, a takeover at all is one that did not wait for it.
    docker(&["rm", "-f", &keep])?;
    let recreated = format!("{keep}-v2");
    let started = Instant::now();
    agent.run_origin(&recreated, &keep_host, &[])?;
    expect_served(&cloud, &master, &agent.edge, &keep_host, Some(&recreated), WAIT)
        .await
        .map_err(|e| e.context(agent.diagnostics()))?;
    eprintln!("scenario 2: a recreated container took its route over in {} ms", started.elapsed().as_millis());
    let service = route(&master, &keep_host).await?.map(|r| r.service);
    assert_eq!(service, Some(format!("http://{recreated}:80")));
    eventually("only the recreated container's route remains", WAIT, || async {
        let left: Vec<String> =
            routes(&master).await?.into_iter().filter(|r| r.hostname == keep_host).map(|r| r.container_name).collect();
        Ok((left == vec![recreated.clone()]).then_some(()))
    })
    .await
    .with_context(|| hostname_log(&master, &keep_host))?;
    assert_no_duplicates(&cloud.snapshot())?;
    Ok(())
}
