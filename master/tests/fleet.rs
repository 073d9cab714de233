//! Fleet behaviour with real processes: two agents enroll and stay apart;
//! commands survive an agent's downtime and a `kill -9` of the master with
//! exactly-once application and no acknowledged event lost (SQLite and
//! PostgreSQL); a stuck agent does not delay others; certificates renew
//! while streams stay up; the command log holds no tunnel token in the clear,
//! and a command that cannot be read fails alone; a busy master refuses
//! registrations with a retry hint that, honoured, gets every agent registered.

mod support;

use anyhow::{bail, Context, Result};
use dockflare::v1::agent_service_client::AgentServiceClient;
use dockflare::v1::{
    send_command_request::Kind, CommandState, DockerMode, GetAgentRequest, IngressRule, ListCommandsRequest,
    ListEventsRequest, RegisterRequest, Resync, SendCommandRequest, StartTunnel, WatchCommandsRequest,
};
use dockflare_testsupport::{eventually, Agent, Master};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

async fn wait_connected(master: &Master, agent_id: &str) -> Result<()> {
    eventually(&format!("agent {agent_id} connected"), WAIT, || async {
        let agent = master.admin().await?.get_agent(GetAgentRequest { id: agent_id.into() }).await?.into_inner().agent;
        Ok(agent.filter(|a| a.connected).map(|_| ()))
    })
    .await
}

async fn send(master: &Master, agent_id: &str, kind: Kind) -> Result<(String, u64)> {
    let response = master
        .admin()
        .await?
        .send_command(SendCommandRequest { agent_id: agent_id.into(), kind: Some(kind) })
        .await?
        .into_inner();
    Ok((response.command_id, response.sequence))
}

fn resync(reason: &str) -> Kind {
    Kind::Resync(Resync { reason: reason.into() })
}

fn start_tunnel(n: usize) -> Kind {
    Kind::StartTunnel(StartTunnel {
        tunnel_id: format!("tunnel-{n}"),
        tunnel_name: format!("name-{n}"),
        token: format!("token-{n}"),
        rules: vec![],
    })
}

/// Once every command of the agent is acked and `expected` are among them:
/// delivery counts by id. (The reconciler queues its own start_tunnel too.)
async fn wait_all_acked(master: &Master, agent_id: &str, expected: &BTreeSet<String>) -> Result<BTreeMap<String, u32>> {
    eventually(&format!("{} commands acked by {agent_id}", expected.len()), Duration::from_secs(60), || async {
        let commands = master
            .admin()
            .await?
            .list_commands(ListCommandsRequest { agent_id: agent_id.into(), page_size: 1000, ..Default::default() })
            .await?
            .into_inner()
            .commands;
        let all_acked = commands.iter().all(|c| c.state == CommandState::Acked as i32);
        let listed: BTreeSet<String> = commands.iter().map(|c| c.id.clone()).collect();
        Ok((all_acked && expected.is_subset(&listed)).then(|| {
            commands.iter().filter(|c| expected.contains(&c.id)).map(|c| (c.id.clone(), c.delivery_count)).collect()
        }))
    })
    .await
}

/// How many times the agent applied each command id (across all its runs).
fn applied_counts(agent: &Agent) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for record in agent.logs.records("Applying command.") {
        if let Some(id) = record.get("command").and_then(|c| c.as_str()) {
            *counts.entry(id.to_string()).or_insert(0) += 1;
        }
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_enroll_register_and_cannot_act_as_each_other() -> Result<()> {
    let master = Master::start(None, &["--heartbeat-interval", "500ms", "--heartbeat-timeout", "3s"]).await?;
    let token = master.join_token(2).await?;
    let first = Agent::start(&[master.url()], &token)?;
    let second = Agent::start(&[master.url()], &token)?;
    let (first_id, second_id) = (first.id(WAIT).await?, second.id(WAIT).await?);
    assert_ne!(first_id, second_id);
    wait_connected(&master, &first_id).await?;
    wait_connected(&master, &second_id).await?;

    let (command_id, _) = send(&master, &first_id, resync("only for the first")).await?;
    wait_all_acked(&master, &first_id, &BTreeSet::from([command_id.clone()])).await?;
    assert_eq!(applied_counts(&first).get(&command_id), Some(&1));
    assert!(
        !applied_counts(&second).contains_key(&command_id),
        "the second agent applied a command meant for the first"
    );

    // The only way to call as an agent is with its certificate; the id the
    // master answers with is the certificate's, whatever the request says.
    let bundle = std::fs::read_to_string(first.data_dir.path().join("agent.pem"))?;
    let split = bundle.find("-----BEGIN PRIVATE KEY-----").context("agent.pem has no key")?;
    let (cert, key) = bundle.split_at(split);
    let channel = dockflare_testsupport::mtls_channel(master.addr, &master.pki("ca.crt")?, Some((cert, key))).await?;
    let registered = AgentServiceClient::new(channel)
        .register(RegisterRequest {
            display_name: second_id.clone(),
            docker_mode: DockerMode::Standalone as i32,
            hostname: "impostor".into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(registered.agent_id, first_id);
    let second_agent = master.admin().await?.get_agent(GetAgentRequest { id: second_id.clone() }).await?.into_inner();
    assert_ne!(second_agent.agent.map(|a| a.hostname), Some("impostor".to_string()));
    Ok(())
}

async fn commands_and_events_survive_restarts(database_url: Option<&str>) -> Result<()> {
    let mut master =
        Master::start(database_url, &["--heartbeat-interval", "100ms", "--heartbeat-timeout", "5s"]).await?;
    let token = master.join_token(1).await?;
    let mut agent = Agent::start(&[master.url()], &token)?;
    let agent_id = agent.id(WAIT).await?;
    wait_connected(&master, &agent_id).await?;
    // The reconciler's own start_tunnel is settled first: killed in the middle of applying it, the
    // agent would rightly apply it again after the restart (at least once across its own crash).
    master.wait_reconciler_start_tunnel(&agent_id, WAIT).await?;

    // Commands queued while the agent is down arrive when it returns.
    agent.kill9()?;
    let mut queued = BTreeSet::new();
    for n in 0..20 {
        queued.insert(send(&master, &agent_id, start_tunnel(n)).await?.0);
    }
    agent.restart()?;
    wait_all_acked(&master, &agent_id, &queued).await?;

    // kill -9 of the master while commands are queued and events stream.
    let sender = {
        let (addr, ca, cert, key) =
            (master.addr, master.pki("ca.crt")?, master.pki("admin.crt")?, master.pki("admin.key")?);
        let agent_id = agent_id.clone();
        tokio::spawn(async move {
            let mut sent = BTreeSet::new();
            let mut n = 100;
            let deadline = Instant::now() + Duration::from_secs(90);
            while sent.len() < 60 && Instant::now() < deadline {
                let attempt = async {
                    let channel = dockflare_testsupport::mtls_channel(addr, &ca, Some((&cert, &key))).await?;
                    let response = dockflare::v1::admin_service_client::AdminServiceClient::new(channel)
                        .send_command(SendCommandRequest { agent_id: agent_id.clone(), kind: Some(start_tunnel(n)) })
                        .await?;
                    anyhow::Ok(response.into_inner().command_id)
                };
                match attempt.await {
                    Ok(id) => {
                        sent.insert(id);
                        n += 1;
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
            sent
        })
    };
    master.logs.wait_for("Command queued.", WAIT).await?;
    eventually("a few commands queued before the kill", WAIT, || async {
        Ok((master.logs.count("Command queued.") >= 20 + 10).then_some(()))
    })
    .await?;
    master.restart().await?;
    let sent = sender.await?;
    if sent.len() < 60 {
        bail!("only {} commands could be queued around the restart", sent.len());
    }
    queued.extend(sent);
    let delivered = wait_all_acked(&master, &agent_id, &queued).await?;
    assert_eq!(delivered.keys().cloned().collect::<BTreeSet<_>>(), queued);

    // Every command arrived exactly once: applied once, never again.
    let applied = applied_counts(&agent);
    let missing: Vec<&String> = queued.iter().filter(|id| !applied.contains_key(*id)).collect();
    assert!(missing.is_empty(), "queued commands never applied: {missing:?}");
    let twice: Vec<_> = applied.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "commands applied more than once: {twice:?}");

    // No acknowledged event is lost: the master's cursor covers the highest receipt the agent
    // saw, and every acknowledged event that keeps a history row (all but heartbeats, which only
    // move the cursor) is stored — every command's result among them.
    let confirmed = agent
        .logs
        .records("Events confirmed.")
        .iter()
        .filter_map(|r| r.get("through").and_then(|t| t.as_u64()))
        .max()
        .context("the agent saw no receipt")?;
    let mut stored = BTreeSet::new();
    let mut results = BTreeSet::new();
    let mut admin = master.admin().await?;
    let mut page_token = String::new();
    loop {
        let request =
            ListEventsRequest { agent_id: agent_id.clone(), page_size: 1000, page_token, ..Default::default() };
        let page = admin.list_events(request).await?.into_inner();
        page_token = page.next_page_token;
        for record in &page.events {
            assert_ne!(record.kind, "heartbeat", "a heartbeat has a history row");
            stored.insert(record.event_id);
            if let Some(dockflare::v1::agent_event::Event::CommandResult(result)) =
                record.event.as_ref().and_then(|e| e.event.as_ref())
            {
                results.insert(result.command_id.clone());
            }
        }
        if page_token.is_empty() {
            break;
        }
    }
    // Read after the events: everything listed was stored with the cursor moved past it.
    let cursor = master
        .admin()
        .await?
        .get_agent(GetAgentRequest { id: agent_id.clone() })
        .await?
        .into_inner()
        .agent
        .context("no agent")?
        .last_event_id;
    assert!(cursor >= confirmed, "the master's event cursor {cursor} is behind the receipt {confirmed}");
    let unrecorded: Vec<&String> = queued.iter().filter(|id| !results.contains(*id)).collect();
    assert!(unrecorded.is_empty(), "acknowledged command results missing after kill -9: {unrecorded:?}");
    assert!(stored.iter().all(|id| *id <= cursor), "stored events beyond the cursor");
    assert!(confirmed > 20, "too few events streamed to prove anything: {confirmed}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_and_events_survive_agent_downtime_and_master_kill9_on_sqlite() -> Result<()> {
    commands_and_events_survive_restarts(None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_and_events_survive_agent_downtime_and_master_kill9_on_postgres() -> Result<()> {
    let database = support::TestDatabase::postgres().await?;
    commands_and_events_survive_restarts(Some(&database.url)).await
}

/// The state an agent's command reached, and its error, by command id.
async fn command_state(master: &Master, agent_id: &str, command_id: &str) -> Result<Option<(i32, String)>> {
    let commands = master.commands(agent_id).await?;
    Ok(commands.into_iter().find(|c| c.id == command_id).map(|c| (c.state, c.error)))
}

async fn commands_are_sealed_at_rest(database_url: Option<&str>) -> Result<()> {
    let mut master = Master::start(database_url, &[]).await?;
    let join_token = master.join_token(1).await?;
    let mut agent = Agent::start(&[master.url()], &join_token)?;
    let agent_id = agent.id(WAIT).await?;
    wait_connected(&master, &agent_id).await?;
    // The reconciler's own start_tunnel lands first, so ours is the last one.
    master.wait_reconciler_start_tunnel(&agent_id, WAIT).await?;

    let secret = format!("sealed-token-{}", uuid::Uuid::new_v4().simple());
    let start = |token: &str| {
        Kind::StartTunnel(StartTunnel {
            tunnel_id: "tunnel-sealed".into(),
            tunnel_name: "sealed".into(),
            token: token.into(),
            rules: vec![],
        })
    };
    let (sent, _) = send(&master, &agent_id, start(&secret)).await?;
    eventually("the start_tunnel acked", WAIT, || async {
        Ok(command_state(&master, &agent_id, &sent).await?.filter(|(state, _)| *state == CommandState::Acked as i32))
    })
    .await?;
    let tunnel_state = std::fs::read_to_string(agent.data_dir.path().join("tunnel_state.json"))?;
    assert!(tunnel_state.contains(&secret), "the agent received the token as sent");

    // The database holds it only sealed: not in any payload, nor anywhere in the SQLite files.
    let url = database_url
        .map(str::to_string)
        .unwrap_or_else(|| dockflare_master::store::default_sqlite_url(master.data_dir.path()));
    let store = dockflare_master::store::Store::connect(&url).await?;
    let rows = store.commands_after(&agent_id, 0, 1000).await?;
    assert!(rows.len() >= 2, "both start_tunnels are in the log: {}", rows.len());
    for row in &rows {
        assert!(row.payload.starts_with(b"DFS1"), "command {} is stored sealed", row.sequence);
        assert!(!contains(&row.payload, secret.as_bytes()), "command {} holds the token in the clear", row.sequence);
    }
    if database_url.is_none() {
        for entry in std::fs::read_dir(master.data_dir.path())? {
            let path = entry?.path();
            if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("dockflare.db")) {
                assert!(!contains(&std::fs::read(&path)?, secret.as_bytes()), "{} holds the token", path.display());
            }
        }
    }

    // A payload that does not open (altered in the database) fails alone, with
    // the reason; the command queued after it is still delivered.
    agent.kill9()?;
    let (damaged, damaged_sequence) = send(&master, &agent_id, start("another-token")).await?;
    let (after, _) = send(&master, &agent_id, Kind::Resync(Resync { reason: "after the damaged one".into() })).await?;
    let pool = sqlx::AnyPool::connect(&url).await?;
    sqlx::query("UPDATE agent_commands SET payload = $1 WHERE agent_id = $2 AND sequence = $3")
        .bind(b"DFS1 not a sealed command".to_vec())
        .bind(&agent_id)
        .bind(damaged_sequence as i64)
        .execute(&pool)
        .await?;
    agent.restart()?;
    eventually("the command after the damaged one acked", WAIT, || async {
        Ok(command_state(&master, &agent_id, &after).await?.filter(|(state, _)| *state == CommandState::Acked as i32))
    })
    .await?;
    let (state, error) = command_state(&master, &agent_id, &damaged).await?.context("the damaged command is listed")?;
    assert_eq!(state, CommandState::Failed as i32, "the damaged command failed");
    assert!(error.contains("undeliverable") && error.contains("does not open"), "reason given: {error}");
    assert!(master.logs.text().contains("Stored command cannot be delivered; marked failed."));
    // It was a start_tunnel: the agent lost its tunnel assignment, and the reconciler sends a fresh one.
    eventually("a fresh start_tunnel after the damaged one acked", WAIT, || async {
        let commands = master.commands(&agent_id).await?;
        Ok(commands
            .iter()
            .any(|c| c.kind == "start_tunnel" && c.sequence > damaged_sequence && c.state == CommandState::Acked as i32)
            .then_some(()))
    })
    .await?;

    // A row stored in the clear (by a master older than sealing) is sealed at the next start, then delivered.
    agent.kill9()?;
    let legacy_sequence: i64 = sqlx::query_scalar(
        "UPDATE agents SET last_command_seq = last_command_seq + 1 WHERE id = $1 RETURNING last_command_seq",
    )
    .bind(&agent_id)
    .fetch_one(&pool)
    .await?;
    let legacy = dockflare::v1::Command {
        id: uuid::Uuid::now_v7().to_string(),
        sequence: legacy_sequence as u64,
        created_at: None,
        kind: Some(dockflare::v1::command::Kind::Resync(Resync { reason: "stored in the clear".into() })),
    };
    sqlx::query(
        "INSERT INTO agent_commands (agent_id, sequence, id, kind, payload, state, created_at) \
         VALUES ($1, $2, $3, 'resync', $4, 'queued', 0)",
    )
    .bind(&agent_id)
    .bind(legacy_sequence)
    .bind(&legacy.id)
    .bind(prost::Message::encode_to_vec(&legacy))
    .execute(&pool)
    .await?;
    sqlx::query("DELETE FROM settings WHERE key = 'command_log_sealed'").execute(&pool).await?;
    master.restart().await?;
    let sealing = master.logs.wait_for("Sealed commands stored before sealing.", WAIT).await?;
    assert_eq!(sealing.get("commands").and_then(|n| n.as_u64()), Some(1), "{sealing}");
    agent.restart()?;
    eventually("the command stored in the clear acked", WAIT, || async {
        Ok(command_state(&master, &agent_id, &legacy.id)
            .await?
            .filter(|(state, _)| *state == CommandState::Acked as i32))
    })
    .await?;
    let rows = store.commands_after(&agent_id, legacy_sequence as u64 - 1, 1).await?;
    assert!(rows.first().is_some_and(|row| row.payload.starts_with(b"DFS1")), "the legacy row is sealed now");

    // A master holding another CA key refuses to use this database's log.
    let error = Master::start(Some(&url), &[]).await.err().context("a master with another CA key started")?;
    let message = format!("{error:#}");
    assert!(
        message.contains("is not the one the command log in this database is sealed with"),
        "the refusal says why: {message}"
    );
    Ok(())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_are_sealed_at_rest_on_sqlite() -> Result<()> {
    commands_are_sealed_at_rest(None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_are_sealed_at_rest_on_postgres() -> Result<()> {
    let database = support::TestDatabase::postgres().await?;
    commands_are_sealed_at_rest(Some(&database.url)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_agent_does_not_delay_commands_to_others() -> Result<()> {
    let master = Master::start(None, &["--command-send-timeout", "5s"]).await?;
    let token = master.join_token(2).await?;
    // Raw clients (not FakeAgent): the stuck one must never read its command stream.
    let enroll = |name: &'static str| {
        let (token, master) = (token.clone(), &master);
        async move {
            let agent = dockflare_testsupport::FakeAgent::enroll(master, &token, name).await?;
            let mut client = AgentServiceClient::new(agent.channel(master).await?);
            client
                .register(RegisterRequest { docker_mode: DockerMode::Standalone as i32, ..Default::default() })
                .await?;
            anyhow::Ok((agent.id.clone(), client))
        }
    };
    let (stuck_id, mut stuck) = enroll("stuck").await?;
    let (fast_id, mut fast) = enroll("fast").await?;

    // The stuck agent opens its command stream and never reads it.
    let _never_read = stuck.watch_commands(WatchCommandsRequest {}).await?.into_inner();
    let mut fast_stream = fast.watch_commands(WatchCommandsRequest {}).await?.into_inner();
    wait_connected(&master, &stuck_id).await?;
    wait_connected(&master, &fast_id).await?;

    // Fill every buffer between the master and the stuck agent (~4 MiB).
    let big_rules: Vec<IngressRule> = (0..40)
        .map(|i| IngressRule {
            hostname: format!("{i}-{}.example.test", "x".repeat(200)),
            service: "http://a:1".into(),
            ..Default::default()
        })
        .collect();
    for n in 0..400 {
        let kind = Kind::StartTunnel(StartTunnel {
            tunnel_id: format!("t{n}"),
            tunnel_name: "stuck".into(),
            token: "t".into(),
            rules: big_rules.clone(),
        });
        send(&master, &stuck_id, kind).await?;
    }

    // Meanwhile commands to the other agent arrive at once.
    let mut latencies = Vec::new();
    for n in 0..20 {
        let started = Instant::now();
        send(&master, &fast_id, resync(&format!("ping {n}"))).await?;
        loop {
            let message = tokio::time::timeout(WAIT, fast_stream.message()).await??.context("fast stream ended")?;
            if let Some(dockflare::v1::watch_commands_response::Message::Command(_)) = message.message {
                break;
            }
        }
        latencies.push(started.elapsed());
    }
    latencies.sort();
    let worst = latencies[latencies.len() - 1];
    assert!(
        worst < Duration::from_secs(1),
        "a command to a healthy agent took {worst:?} while another agent was stuck"
    );

    // And the stuck agent really was stuck: the master gave up on its stream.
    master.logs.wait_for("Agent is not reading its command stream; closing it.", WAIT).await?;
    Ok(())
}

async fn certificate_serial(master: &Master, agent_id: &str) -> Result<String> {
    let agent = master.admin().await?.get_agent(GetAgentRequest { id: agent_id.into() }).await?.into_inner().agent;
    Ok(agent.map(|a| a.certificate_serial).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_renew_while_streams_stay_up() -> Result<()> {
    let master = Master::start(None, &["--agent-cert-ttl", "10s", "--heartbeat-interval", "500ms"]).await?;
    let token = master.join_token(1).await?;
    let agent = Agent::start(&[master.url()], &token)?;
    let agent_id = agent.id(WAIT).await?;
    let enrolled_at = Instant::now();
    wait_connected(&master, &agent_id).await?;
    let first_serial = certificate_serial(&master, &agent_id).await?;

    agent.logs.wait_for("Certificate renewed.", WAIT).await?;
    // The agent saves its new certificate once the master has answered.
    let pem_path = agent.data_dir.path().join("agent.pem");
    eventually("the renewed certificate saved by the agent", WAIT, || async {
        let on_disk = std::fs::read_to_string(&pem_path)?;
        let der = dockflare_common::pki::pem_certificates_der(&on_disk)?;
        let serial = dockflare_common::pki::describe_certificate(&der[0])?.serial_hex;
        let at_master = certificate_serial(&master, &agent_id).await?;
        Ok((serial != first_serial && serial == at_master).then_some(()))
    })
    .await?;

    // Past the first certificate's expiry, the original streams still carry commands.
    let first_expiry = enrolled_at + Duration::from_secs(11);
    eventually("the first certificate expired", WAIT, || async { Ok((Instant::now() > first_expiry).then_some(())) })
        .await?;
    let (command_id, _) = send(&master, &agent_id, resync("after expiry")).await?;
    wait_all_acked(&master, &agent_id, &BTreeSet::from([command_id])).await?;
    assert_eq!(agent.logs.count("Connected to the master."), 1, "the agent reconnected: {}", agent.logs.text());
    Ok(())
}

/// The `grpc-retry-pushback-ms` of a refusal, if it carries a parsable one.
fn pushback(status: &tonic::Status) -> Option<Duration> {
    let value = status.metadata().get(dockflare_common::retry_pushback::RETRY_PUSHBACK_KEY)?.to_str().ok()?;
    dockflare_common::retry_pushback::parse(value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_master_refuses_registrations_with_a_retry_hint_that_registers_everyone() -> Result<()> {
    const AGENTS: usize = 32;
    let master = Master::start(None, &["--max-concurrent-registrations", "1"]).await?;
    let token = master.join_token(AGENTS as u32).await?;
    let mut clients = Vec::new();
    for index in 0..AGENTS {
        let agent = dockflare_testsupport::FakeAgent::enroll(&master, &token, &format!("busy-{index}")).await?;
        let client = AgentServiceClient::new(agent.channel(&master).await?);
        clients.push((agent.id.clone(), client, dockflare_testsupport::fake_agent::registration("busy", "")));
    }

    // Everyone at once, each honouring the hints: with one registration at a time some are
    // refused (UNAVAILABLE, a parsable hint), and all are registered in the end.
    let deadline = Instant::now() + Duration::from_secs(60);
    let registrations = clients.into_iter().map(|(agent_id, mut client, request)| async move {
        let mut refusals = Vec::new();
        loop {
            let asked = Instant::now();
            match client.register(request.clone()).await {
                Ok(response) => {
                    assert_eq!(response.into_inner().agent_id, agent_id);
                    return Ok::<_, anyhow::Error>(refusals);
                }
                Err(status) if status.code() == tonic::Code::Unavailable => {
                    let hint = pushback(&status).with_context(|| format!("a refusal without a hint: {status:?}"))?;
                    anyhow::ensure!(status.message().contains("busy"), "{status:?}");
                    anyhow::ensure!(Instant::now() + hint < deadline, "{agent_id}: still refused at the deadline");
                    refusals.push(hint);
                    tokio::time::sleep_until((asked + hint).into()).await;
                }
                Err(status) => bail!("{agent_id}: Register failed: {status:?}"),
            }
        }
    });
    let refusals: Vec<Vec<Duration>> = futures::future::try_join_all(registrations).await?;
    let refused = refusals.iter().filter(|hints| !hints.is_empty()).count();
    assert!(refused > 0, "no Register was refused with one slot and {AGENTS} at once");
    let hints: Vec<Duration> = refusals.into_iter().flatten().collect();
    let (min, max) = (dockflare_master::register_gate::MIN_HINT, dockflare_master::register_gate::MAX_HINT);
    assert!(hints.iter().all(|hint| *hint >= min && *hint <= max), "hints out of range: {hints:?}");

    let metrics = dockflare_observe::probe::get(master.metrics_addr()?, "/metrics", WAIT)?;
    let counted: u64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("dockflare_registrations_refused_total ")?.trim().parse().ok())
        .context("no dockflare_registrations_refused_total in /metrics")?;
    assert_eq!(counted, hints.len() as u64, "every refusal is counted");
    Ok(())
}
