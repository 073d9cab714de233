//! Health, readiness and metrics of the real binaries, over their plain-HTTP endpoints: a master
//! that loses its database and an agent that loses its master say so on `/readyz` (503, with
//! why) while `/healthz` stays 200; `/metrics` carries the series operators alert on; and the
//! `healthcheck` subcommands (the images' HEALTHCHECK) answer by exit status.

mod support;

use anyhow::{ensure, Context, Result};
use dockflare_testsupport::{eventually, require_docker, Agent, Master, TcpProxy, TestDatabase};
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// GET `path` from `addr`: (status, body).
fn get(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    match dockflare_observe::probe::get(addr, path, Duration::from_secs(5)) {
        Ok(body) => Ok((200, body)),
        Err(dockflare_observe::probe::ProbeError::Status { status, body, .. }) => Ok((status, body)),
        Err(error) => Err(error.into()),
    }
}

/// `url` with its `host:port` replaced by `addr`.
fn through(url: &str, addr: SocketAddr) -> Result<String> {
    let at = url.rfind('@').context("no @ in the database URL")?;
    let slash = url[at..].find('/').map(|i| at + i).context("no database name in the URL")?;
    Ok(format!("{}@{addr}{}", &url[..at], &url[slash..]))
}

fn healthcheck(binary: &str, addr: SocketAddr, path: &str) -> Result<bool> {
    let status = Command::new(dockflare_testsupport::workspace_binary(binary)?)
        .args(["healthcheck", "--metrics-listen", &addr.to_string(), "--path", path])
        .env_remove("DOCKFLARE_METRICS_LISTEN")
        .output()?
        .status;
    Ok(status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_without_its_database_is_live_but_not_ready_and_says_why() -> Result<()> {
    let database = TestDatabase::postgres().await?;
    let target: SocketAddr = database.url[database.url.rfind('@').context("url")? + 1..]
        .split('/')
        .next()
        .context("host")?
        .parse()
        .context("the PostgreSQL test URL names no IP:port")?;
    let proxy = TcpProxy::start(target).await?;
    let master = Master::start(Some(&through(&database.url, proxy.addr)?), &[]).await?;
    let health = master.metrics_addr()?;
    let (status, body) = get(health, "/readyz")?;
    ensure!(status == 200 && body.contains("[+] database: postgres answers"), "{status} {body}");
    ensure!(healthcheck("dockflare-master", health, "/readyz")?, "healthcheck --path /readyz failed while ready");

    proxy.cut();
    let body = eventually("/readyz says the database is gone", WAIT, || async {
        let (status, body) = get(health, "/readyz")?;
        Ok((status == 503).then_some(body))
    })
    .await?;
    ensure!(body.contains("[-] database: postgres"), "{body}");
    ensure!(body.contains("readyz failed"), "{body}");
    let (status, body) = get(health, "/healthz")?;
    ensure!(status == 200, "/healthz answered {status} while the process is sound: {body}");
    ensure!(healthcheck("dockflare-master", health, "/healthz")?, "healthcheck failed while the process is sound");
    ensure!(
        !healthcheck("dockflare-master", health, "/readyz")?,
        "healthcheck --path /readyz passed without a database"
    );

    proxy.restore();
    eventually("/readyz recovers with the database", WAIT, || async {
        Ok((get(health, "/readyz")?.0 == 200).then_some(()))
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_lost_its_master_is_live_but_not_ready_and_says_why() -> Result<()> {
    require_docker();
    let mut master = Master::start(None, &[]).await?;
    let agent = Agent::start(&[master.url()], &master.join_token(1).await?)?;
    let health = agent.metrics_addr(WAIT).await?;
    let agent_id = agent.id(WAIT).await?;
    eventually("the agent is ready", WAIT, || async {
        let (status, body) = get(health, "/readyz")?;
        Ok((status == 200 && body.contains("[+] master: connected to")).then_some(()))
    })
    .await
    .with_context(|| format!("agent {agent_id}: {}", get(health, "/readyz").map(|r| r.1).unwrap_or_default()))?;

    // Its metrics carry what it did; the master's what it stored.
    let (_, metrics) = get(health, "/metrics")?;
    for series in
        ["dockflare_build_info{binary=\"agent\"", "dockflare_agent_master_connected 1", "dockflare_agent_outbox_events"]
    {
        ensure!(metrics.contains(series), "agent /metrics lacks {series}:\n{metrics}");
    }
    let (_, master_metrics) = get(master.metrics_addr()?, "/metrics")?;
    for series in
        ["dockflare_events_stored_total", "dockflare_agents{status=\"online\"} 1", "dockflare_agent_streams 1"]
    {
        ensure!(master_metrics.contains(series), "master /metrics lacks {series}:\n{master_metrics}");
    }

    master.kill9()?;
    let body = eventually("/readyz says the master is gone", WAIT, || async {
        let (status, body) = get(health, "/readyz")?;
        Ok((status == 503).then_some(body))
    })
    .await?;
    ensure!(body.contains("[-] master: not connected:"), "{body}");
    ensure!(get(health, "/healthz")?.0 == 200, "/healthz failed while the agent is sound");
    ensure!(healthcheck("dockflare-agent", health, "/healthz")?, "agent healthcheck failed while sound");
    ensure!(
        !healthcheck("dockflare-agent", health, "/readyz")?,
        "agent healthcheck --path /readyz passed without a master"
    );
    Ok(())
}
