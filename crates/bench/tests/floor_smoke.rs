//! The floor baseline serves the tests' FakeAgent unchanged (so that fleet_bench can drive it
//! like a master): 20 agents enroll, connect on their own channels, get receipts for their events
//! and a command each through FloorControl; an agent without a stream is NOT_FOUND, and only the
//! admin certificate may call FloorControl.

#[path = "../src/floor_process.rs"]
mod floor_process;

use anyhow::{ensure, Context, Result};
use dockflare::v1::agent_event::Event;
use dockflare::v1::{send_command_request, Heartbeat, Resync, SendCommandRequest, StatusReport};
use dockflare_testsupport::{eventually, mtls_channel, FakeAgent};
use floor_process::{floor_control_client, FloorControlClient, FloorProcess};
use std::path::Path;
use std::time::Duration;

const AGENTS: usize = 20;
const WAIT: Duration = Duration::from_secs(30);

fn resync(agent_id: &str) -> SendCommandRequest {
    SendCommandRequest {
        agent_id: agent_id.into(),
        kind: Some(send_command_request::Kind::Resync(Resync { reason: "floor_smoke".into() })),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_agents_enroll_stream_and_get_commands_from_the_floor() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let floor = FloorProcess::start(Some(Path::new(env!("CARGO_BIN_EXE_floor_server"))), Some(4096)).await?;
    let ca = floor.ca_pem()?;
    let idle_kib = floor.rss_kib()?;

    let mut agents = Vec::new();
    for index in 0..AGENTS {
        let name = format!("floor-{index:02}");
        let mut agent = FakeAgent::enroll_over(mtls_channel(floor.addr, &ca, None).await?, "any-token", &name).await?;
        let channel = mtls_channel(floor.addr, &ca, Some(agent.identity())).await?;
        agent.connect_over(channel).await.with_context(|| format!("connecting {name}"))?;
        agent.send(Event::StatusReport(StatusReport { containers: Vec::new() })).await?;
        for _ in 0..5 {
            agent.send(Event::Heartbeat(Heartbeat { container_count: 0 })).await?;
        }
        agents.push(agent);
    }
    eventually("every event confirmed by a receipt", WAIT, || async {
        if let Some(why) = agents.iter().find_map(FakeAgent::ended) {
            anyhow::bail!("a stream ended: {why}");
        }
        Ok(agents.iter().all(|agent| agent.sent() == 6 && agent.stored_everything_sent()).then_some(()))
    })
    .await?;
    let connected_kib = floor.rss_kib()?;
    eprintln!("floor_server {} RSS: idle {idle_kib} KiB, {AGENTS} agents connected {connected_kib} KiB", floor.pid());

    let (cert, key) = floor.admin_identity()?;
    let mut control = floor_control_client(floor.addr, &ca, (&cert, &key)).await?;
    for agent in &agents {
        let sent = control.send_command(resync(&agent.id)).await?.into_inner();
        ensure!(sent.sequence == 1, "{}: the first command has sequence {}", agent.id, sent.sequence);
    }
    eventually("every agent received its command", WAIT, || async {
        Ok(agents.iter().all(|agent| agent.commands_received() == 1).then_some(()))
    })
    .await?;
    // The acknowledgements are events too: confirmed by receipts.
    eventually("every acknowledgement confirmed", WAIT, || async {
        Ok(agents.iter().all(|agent| agent.sent() == 7 && agent.stored_everything_sent()).then_some(()))
    })
    .await?;

    let unknown = control.send_command(resync("0190a5c4-0000-7000-8000-000000000000")).await;
    ensure!(
        matches!(&unknown, Err(status) if status.code() == tonic::Code::NotFound),
        "SendCommand to an unknown agent: {unknown:?}"
    );

    let as_agent = mtls_channel(floor.addr, &ca, Some(agents[0].identity())).await?;
    let refused = FloorControlClient::new(as_agent).send_command(resync(&agents[0].id)).await;
    ensure!(
        matches!(&refused, Err(status) if status.code() == tonic::Code::PermissionDenied),
        "SendCommand with an agent certificate: {refused:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_floor_binary_that_does_not_start_is_reported_with_its_stderr() -> Result<()> {
    let Err(error) = FloorProcess::start(Some(Path::new("/bin/false")), None).await else {
        anyhow::bail!("/bin/false started as a floor");
    };
    ensure!(error.to_string().contains("did not start"), "unexpected error: {error:#}");
    Ok(())
}
