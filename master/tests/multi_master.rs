//! Two masters on one PostgreSQL database: an agent given both URLs fails
//! over when the master it uses dies; a command queued through the other
//! master reaches it (LISTEN/NOTIFY); one master at a time reconciles
//! Cloudflare (advisory lock) and the standby takes over.

mod processes;
mod support;

use anyhow::{Context, Result};
use dockflare::v1::{
    send_command_request::Kind, CommandState, GetAgentRequest, ListCommandsRequest, ListRoutesRequest, Resync,
    RouteStatus, SendCommandRequest,
};
use dockflare_master::cloudflare::emulator::{Emulator, EmulatorConfig};
use processes::{docker, eventually, require_docker, unique, Agent, DockerCleanup, Master};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);
const LEADER: &str = "This master now reconciles Cloudflare (leader).";

async fn connected_to(master: &Master, agent_id: &str) -> Result<bool> {
    let agent = master.admin().await?.get_agent(GetAgentRequest { id: agent_id.into() }).await?.into_inner().agent;
    Ok(agent.is_some_and(|a| a.connected))
}

async fn send_resync(master: &Master, agent_id: &str) -> Result<String> {
    let response = master
        .admin()
        .await?
        .send_command(SendCommandRequest {
            agent_id: agent_id.into(),
            kind: Some(Kind::Resync(Resync { reason: "test".into() })),
        })
        .await?;
    Ok(response.into_inner().command_id)
}

async fn wait_acked(master: &Master, agent_id: &str, command_id: &str, within: Duration) -> Result<()> {
    eventually(&format!("command {command_id} acknowledged"), within, || async {
        let commands = master
            .admin()
            .await?
            .list_commands(ListCommandsRequest { agent_id: agent_id.into(), after_sequence: 0, limit: 1000 })
            .await?
            .into_inner()
            .commands;
        Ok(commands.iter().any(|c| c.id == command_id && c.state == CommandState::Acked as i32).then_some(()))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_masters_share_commands_fail_over_and_hand_over_the_reconciler() -> Result<()> {
    require_docker();
    let database = support::TestDatabase::postgres().await?;
    let (emulator, addr) = Emulator::start(EmulatorConfig::default(), SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let url = emulator.base_url(addr);
    let env = [
        ("CF_API_TOKEN", emulator.api_token()),
        ("CF_ACCOUNT_ID", emulator.account_id()),
        ("CF_API_URL", url.as_str()),
    ];
    let mut first = Master::start_with_env(Some(&database.url), &[], &env).await?;
    let ca_cert = first.data_dir.path().join("pki/ca.crt");
    let ca_key = first.data_dir.path().join("pki/ca.key");
    let (ca_cert, ca_key) = (ca_cert.to_string_lossy().to_string(), ca_key.to_string_lossy().to_string());
    let second =
        Master::start_with_env(Some(&database.url), &["--ca-cert", &ca_cert, "--ca-key", &ca_key], &env).await?;
    first.logs.wait_for(LEADER, WAIT).await?;

    let mut cleanup = DockerCleanup::default();
    let scope = unique("ha");
    let scope_arg = format!("test.scope={scope}");
    let network = unique("net");
    cleanup.networks.push(network.clone());
    let token = first.join_token(1).await?;
    let agent = Agent::start_with(
        &[first.url(), second.url()],
        &token,
        &[
            "--mode",
            "standalone",
            "--scope",
            &scope_arg,
            "--network",
            &network,
            "--cloudflared-image",
            "dockflare-test/connector:latest",
        ],
    )?;
    let agent_id = agent.id(WAIT).await?;
    cleanup.containers.push(format!("dockflare-tunnel-{}", &agent_id[..8]));
    eventually("the agent on the first master", WAIT, || async {
        Ok(connected_to(&first, &agent_id).await?.then_some(()))
    })
    .await?;

    // A command queued through the other master reaches the agent at once.
    let started = Instant::now();
    let command = send_resync(&second, &agent_id).await?;
    wait_acked(&second, &agent_id, &command, Duration::from_secs(10)).await?;
    let delivery = started.elapsed();
    assert!(delivery < Duration::from_secs(2), "a command through the other master took {delivery:?}");

    // Only one master reconciles: one tunnel, the standby never led.
    eventually("the agent's tunnel", WAIT, || async {
        Ok((emulator.snapshot().tunnels.iter().filter(|t| t.deleted_at.is_none()).count() == 1).then_some(()))
    })
    .await?;
    assert_eq!(second.logs.count(LEADER), 0, "two leaders at once");

    // The first master dies: the agent fails over within 10 s; the standby leads.
    first.kill9()?;
    let killed = Instant::now();
    eventually("the agent on the second master", Duration::from_secs(10), || async {
        Ok(connected_to(&second, &agent_id).await?.then_some(()))
    })
    .await
    .with_context(|| format!("no failover within 10 s; agent log:\n{}", agent.logs.text()))?;
    let failover = killed.elapsed();
    second.logs.wait_for(LEADER, WAIT).await?;

    // The new leader routes a new container; commands still arrive.
    let web = format!("web-{scope}");
    cleanup.containers.push(web.clone());
    docker(&[
        "run",
        "-d",
        "--name",
        &web,
        "--network",
        &network,
        "--label",
        &scope_arg,
        "--label",
        "dockflare.enable=true",
        "--label",
        &format!("dockflare.hostname={scope}.example.test"),
        "--label",
        &format!("dockflare.service=http://{web}:80"),
        "dockflare-test/origin:latest",
    ])?;
    eventually("the route routed by the new leader", WAIT, || async {
        let routes = second.admin().await?.list_routes(ListRoutesRequest::default()).await?.into_inner().routes;
        let active = routes
            .iter()
            .any(|r| r.hostname == format!("{scope}.example.test") && r.status == RouteStatus::Active as i32);
        Ok((active && !emulator.snapshot().dns_records_named(&format!("{scope}.example.test")).is_empty())
            .then_some(()))
    })
    .await?;
    let command = send_resync(&second, &agent_id).await?;
    wait_acked(&second, &agent_id, &command, Duration::from_secs(10)).await?;
    assert_eq!(emulator.snapshot().tunnels.iter().filter(|t| t.deleted_at.is_none()).count(), 1, "duplicate tunnels");
    eprintln!("failover took {failover:?}; a command through the other master took {delivery:?}");
    Ok(())
}
