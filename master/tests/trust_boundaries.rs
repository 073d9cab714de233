//! Trust boundaries, attacked from outside with a real master process on
//! loopback and real mTLS clients: a hostile network peer without a
//! certificate (slowloris, silent connections, huge and garbled messages,
//! token guessing) and one enrolled agent reaching for what is not its own
//! (another tunnel group, calls after its removal). Attackers connect from
//! other loopback addresses (127.0.0.2 …) than the fleet (127.0.0.1), as a
//! peer on the network would.

mod support;

use anyhow::{bail, ensure, Context, Result};
use bytes::Bytes;
use dockflare::v1::agent_service_client::AgentServiceClient;
use dockflare::v1::{
    AgentEvent, AgentStatus, EnrollRequest, GetAgentRequest, ListEventsRequest, RegisterRequest, RemoveAgentRequest,
    RenewCertificateRequest, SetAgentTunnelGroupRequest, WatchCommandsRequest,
};
use dockflare_common::join_token::{certificate_digest, JoinToken};
use dockflare_testsupport::fake_agent::FakeAgent;
use dockflare_testsupport::{eventually, Master};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};
use tonic::transport::Channel;
use tonic::Code;

const WAIT: Duration = Duration::from_secs(30);
/// How fast the fleet must still get in under attack (the bound).
const GET_IN_WITHIN: Duration = Duration::from_secs(2);

fn ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

/// The gRPC status somewhere in an error's chain.
fn status_of(error: &anyhow::Error) -> Option<&tonic::Status> {
    error.chain().find_map(|cause| cause.downcast_ref::<tonic::Status>())
}

fn expect_status<T: std::fmt::Debug>(result: Result<T>, code: Code, needle: &str, what: &str) -> Result<()> {
    let error = match result {
        Ok(value) => bail!("{what}: succeeded ({value:?}) but should be refused with {code:?}"),
        Err(error) => error,
    };
    let status = status_of(&error).with_context(|| format!("{what}: failed without a gRPC status: {error:#}"))?;
    ensure!(
        status.code() == code && status.message().contains(needle),
        "{what}: expected {code:?} mentioning {needle:?}, got {:?}: {}",
        status.code(),
        status.message()
    );
    Ok(())
}

async fn get_agent(master: &Master, id: &str) -> Result<dockflare::v1::Agent> {
    master.admin().await?.get_agent(GetAgentRequest { id: id.into() }).await?.into_inner().agent.context("no agent")
}

fn ca_pem(master: &Master) -> Result<String> {
    master.pki("ca.crt")
}

/// A channel without a client certificate, from `local`.
async fn anonymous_from(master: &Master, local: IpAddr) -> Result<Channel> {
    dockflare_testsupport::mtls_channel_from(master.addr, &ca_pem(master)?, None, Some(local)).await
}

/// One gRPC request message frame: flag, announced length, then `payload`
/// (which may be shorter than announced: the rest never comes).
fn frame(announced: u32, payload: &[u8]) -> Bytes {
    let mut bytes = vec![0u8];
    bytes.extend_from_slice(&announced.to_be_bytes());
    bytes.extend_from_slice(payload);
    Bytes::from(bytes)
}

/// Sends `first` as the request body of `path` and answers the call's gRPC
/// status. With `stall`, the body stays open (more is never sent): the answer
/// must come from the master refusing early.
async fn raw_call(channel: &Channel, path: &str, first: Bytes, stall: bool) -> Result<(Code, String)> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, tonic::Status>>(2);
    tx.send(Ok(Frame::data(first))).await.ok().context("body channel")?;
    let _open = if stall { Some(tx) } else { None };
    let body = tonic::body::Body::new(StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx)));
    let request = http::Request::builder()
        .method(http::Method::POST)
        .uri(format!("https://localhost{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(body)?;
    let response = tower::ServiceExt::oneshot(channel.clone(), request).await?;
    let status_in = |headers: &http::HeaderMap| {
        let code = headers.get("grpc-status")?.to_str().ok()?.parse::<i32>().ok()?;
        let message = headers.get("grpc-message").and_then(|m| m.to_str().ok()).unwrap_or_default();
        let message = percent_decode(message);
        Some((Code::from(code), message))
    };
    if let Some(status) = status_in(response.headers()) {
        return Ok(status);
    }
    let collected = response.into_body().collect().await?;
    collected.trailers().and_then(status_in).context("no grpc-status in the answer")
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| text.get(i + 1..i + 3).and_then(|hex| u8::from_str_radix(hex, 16).ok()))
            .flatten();
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

// --- One compromised agent against the others ---------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_cannot_choose_its_tunnel_group() -> Result<()> {
    let master = Master::start(None, &[]).await?;
    // Admitted without a group: naming one at Register is refused, and logged.
    let intruder = FakeAgent::join(&master, &master.join_token(1).await?, "intruder", "edge").await;
    expect_status(intruder.map(|a| a.id.clone()), Code::PermissionDenied, "tunnel_group", "Register naming a group")?;
    master.logs.wait_for("Register refused: the agent names a tunnel group it was not admitted to.", WAIT).await?;

    // Admitted to "edge" by its join token: Register with it (or with nothing) is fine.
    let mut member = FakeAgent::join(&master, &master.join_token_in_group(1, "edge").await?, "member", "edge").await?;
    ensure!(get_agent(&master, &member.id).await?.tunnel_group == "edge", "the token's group was not applied");

    // The operator moves it; the group it names is then refused, and nothing changed its record.
    let moved = master
        .admin()
        .await?
        .set_agent_tunnel_group(SetAgentTunnelGroupRequest { id: member.id.clone(), tunnel_group: "blue".into() })
        .await?
        .into_inner()
        .agent
        .context("no agent")?;
    ensure!(moved.tunnel_group == "blue", "SetAgentTunnelGroup answered {:?}", moved.tunnel_group);
    expect_status(
        member.connect(&master).await,
        Code::PermissionDenied,
        "group \"blue\"",
        "Register naming its old group",
    )?;
    ensure!(get_agent(&master, &member.id).await?.tunnel_group == "blue", "a refused Register changed the group");
    let bad = master
        .admin()
        .await?
        .set_agent_tunnel_group(SetAgentTunnelGroupRequest { id: member.id.clone(), tunnel_group: "a b".into() })
        .await;
    expect_status(bad.map_err(anyhow::Error::from), Code::InvalidArgument, "tunnel_group", "an invalid group")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_agent_is_cut_off() -> Result<()> {
    let master = Master::start(None, &[]).await?;
    let agent = FakeAgent::join(&master, &master.join_token(1).await?, "doomed", "").await?;
    master.wait_reconciler_start_tunnel(&agent.id, WAIT).await?;
    let channel = agent.channel(&master).await?;
    let removed_at = Instant::now();
    master.admin().await?.remove_agent(RemoveAgentRequest { id: agent.id.clone() }).await?;
    // Its connector was told to stop (and acknowledged it) before the streams ended.
    let commands = master.commands(&agent.id).await?;
    ensure!(
        commands.iter().any(|c| c.kind == "stop_tunnel" && c.state == dockflare::v1::CommandState::Acked as i32),
        "no acknowledged stop_tunnel: {commands:?}"
    );
    eventually("the removed agent shown revoked and disconnected", WAIT, || async {
        let shown = get_agent(&master, &agent.id).await?;
        Ok((shown.status == AgentStatus::Revoked as i32 && !shown.connected).then_some(()))
    })
    .await?;
    println!("removed agent cut off {:?} after RemoveAgent", removed_at.elapsed());

    let mut client = AgentServiceClient::new(channel);
    let (_, csr_der) = dockflare_common::pki::new_key_and_csr("doomed")?;
    let renewed = client.renew_certificate(RenewCertificateRequest { csr_der }).await.map(|_| ());
    expect_status(renewed.map_err(anyhow::Error::from), Code::PermissionDenied, "removed", "RenewCertificate")?;
    let registered = client.register(RegisterRequest::default()).await.map(|_| ());
    expect_status(registered.map_err(anyhow::Error::from), Code::InvalidArgument, "docker_mode", "Register (invalid)")?;
    let register = RegisterRequest { docker_mode: dockflare::v1::DockerMode::Standalone as i32, ..Default::default() };
    let registered = client.register(register).await.map(|_| ());
    expect_status(registered.map_err(anyhow::Error::from), Code::PermissionDenied, "removed", "Register")?;
    let watched = client.watch_commands(WatchCommandsRequest {}).await.map(|_| ());
    expect_status(watched.map_err(anyhow::Error::from), Code::PermissionDenied, "removed", "WatchCommands")?;
    let reported = client.report_events(tokio_stream::iter(Vec::<AgentEvent>::new())).await.map(|_| ());
    expect_status(reported.map_err(anyhow::Error::from), Code::PermissionDenied, "removed", "ReportEvents")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloudflare_token_on_the_command_line_is_warned_about_and_never_logged() -> Result<()> {
    let secret = "cf-token-on-the-command-line-0123456789";
    let master = Master::start(
        None,
        &[
            "--cf-api-token",
            secret,
            "--cf-account-id",
            "0123456789abcdef0123456789abcdef",
            "--cf-api-url",
            "http://127.0.0.1:9/client/v4",
        ],
    )
    .await?;
    master.logs.wait_for("The Cloudflare API token was given on the command line, where every user of this host can read it (/proc/PID/cmdline); prefer CF_API_TOKEN or --cf-api-token-file.", WAIT).await?;
    ensure!(!master.logs.text().contains(secret), "the token reached the log");
    // The file form: read, trimmed, and not warned about.
    let file = master.data_dir.path().join("cf-token");
    std::fs::write(&file, format!("{secret}\n"))?;
    let from_file = Master::start(
        None,
        &[
            "--cf-api-token-file",
            &file.to_string_lossy(),
            "--cf-account-id",
            "0123456789abcdef0123456789abcdef",
            "--cf-api-url",
            "http://127.0.0.1:9/client/v4",
        ],
    )
    .await?;
    from_file.logs.wait_for("Cloudflare API configured.", WAIT).await?;
    ensure!(from_file.logs.count("The Cloudflare API token was given on the command line, where every user of this host can read it (/proc/PID/cmdline); prefer CF_API_TOKEN or --cf-api-token-file.") == 0);
    ensure!(!from_file.logs.text().contains(secret), "the token reached the log");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_event_load_loses_no_acknowledged_event() -> Result<()> {
    let mut master = Master::start(None, &[]).await?;
    let agent = Arc::new(FakeAgent::join(&master, &master.join_token(1).await?, "a1", "").await?);
    // Load: container_start events (each a stored row) as fast as the stream takes them.
    let load = {
        let agent = agent.clone();
        tokio::spawn(async move {
            let mut n = 0u64;
            while agent.start(dockflare_testsupport::labelled(&format!("c{n}"), &[])).await.is_ok() {
                n += 1;
            }
        })
    };
    eventually("events stored under load", WAIT, || async { Ok((agent.receipt() >= 300).then_some(())) }).await?;
    let status = master.terminate(WAIT)?;
    load.abort();
    ensure!(status.success(), "the master exited with {status} on SIGTERM; log:\n{}", master.logs.text());
    master.logs.wait_for("Stopped; every received event is stored.", WAIT).await?;
    ensure!(master.logs.count("A master task ended unexpectedly; exiting.") == 0, "a shutdown counted as a failure");
    let acknowledged = agent.receipt();
    ensure!(agent.sent() >= acknowledged, "receipts beyond what was sent");

    // After a restart on the same database, every event the agent was told is stored is there.
    master.restart().await?;
    let mut admin = master.admin().await?;
    let mut stored = Vec::new();
    let mut page_token = String::new();
    loop {
        let request =
            ListEventsRequest { agent_id: agent.id.clone(), page_size: 1000, page_token, ..Default::default() };
        let page = admin.list_events(request).await?.into_inner();
        stored.extend(page.events.iter().map(|event| event.event_id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let missing: Vec<u64> = (1..=acknowledged).filter(|id| stored.binary_search(id).is_err()).collect();
    ensure!(
        missing.is_empty(),
        "{} of {acknowledged} acknowledged events are not stored (first: {:?})",
        missing.len(),
        missing.first()
    );
    Ok(())
}

/// A long-lived task that dies (here: made to fail through the hidden test hook) ends the master
/// with a non-zero status and a log line naming the task — not a master that serves half-alive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_task_ends_the_master_with_its_name_in_the_log() -> Result<()> {
    for task in ["reconciler", "event writer"] {
        let mut master = Master::start(None, &["--test-fault-task", task]).await?;
        let status = master.wait_exit(WAIT)?;
        ensure!(!status.success(), "the master exited with {status} after its {task} task died");
        let record = master.logs.wait_for("A master task ended unexpectedly; exiting.", WAIT).await?;
        ensure!(record["task"] == task, "the log names {} instead of {task}: {record}", record["task"]);
        ensure!(record["level"] == "ERROR", "{record}");
    }
    Ok(())
}

// --- Anyone on the network, without a certificate ------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_messages_are_refused_before_they_cost_anything() -> Result<()> {
    let master = Master::start(None, &[]).await?;
    let anonymous = anonymous_from(&master, ip(2)).await?;
    // Garbled protobuf: the sender's mistake, INVALID_ARGUMENT (with or without a certificate).
    let garbled = frame(3, &[0xff, 0xff, 0xff]);
    let (code, message) = raw_call(&anonymous, "/dockflare.v1.AgentService/Enroll", garbled.clone(), false).await?;
    ensure!(code == Code::InvalidArgument && message.contains("malformed"), "garbled Enroll: {code:?} {message}");
    let admin_channel = dockflare_testsupport::mtls_channel(
        master.addr,
        &ca_pem(&master)?,
        Some((&master.pki("admin.crt")?, &master.pki("admin.key")?)),
    )
    .await?;
    let (code, _) = raw_call(&admin_channel, "/dockflare.v1.AdminService/ListAgents", garbled, false).await?;
    ensure!(code == Code::InvalidArgument, "garbled ListAgents: {code:?}");

    // A 16 MiB Enroll, or a Register without a certificate, is refused on its 5-byte header,
    // while the body is still coming: the master reserves nothing for it.
    let before = master.rss_mib()?;
    for path in ["/dockflare.v1.AgentService/Enroll", "/dockflare.v1.AgentService/Register"] {
        let call = raw_call(&anonymous, path, frame(16 << 20, &[0u8; 16 * 1024]), true);
        let (code, message) = tokio::time::timeout(Duration::from_secs(5), call)
            .await
            .with_context(|| format!("{path}: no answer while the 16 MiB body stalls"))??;
        ensure!(
            code == Code::ResourceExhausted && message.contains("--max-unauthenticated-message"),
            "{path}: {code:?} {message}"
        );
    }
    // Many at once, from one source: the first few are refused for their size, the rest for
    // their number; nothing waits, and memory stays put.
    let calls = (0..200)
        .map(|_| raw_call(&anonymous, "/dockflare.v1.AgentService/Enroll", frame(16 << 20, &[0u8; 1024]), true));
    let answers = tokio::time::timeout(Duration::from_secs(10), futures::future::join_all(calls))
        .await
        .context("stalled Enroll calls were not all answered")?;
    for answer in answers {
        let (code, message) = answer?;
        ensure!(code == Code::ResourceExhausted, "stalled Enroll: {code:?} {message}");
    }
    let after = master.rss_mib()?;
    println!("master RSS {before} MiB before 202 stalled 16 MiB calls, {after} MiB after");
    ensure!(after < before + 64, "master memory grew from {before} MiB to {after} MiB");

    // A real enrollment still works.
    let agent = FakeAgent::join(&master, &master.join_token(1).await?, "still-works", "").await?;
    // An enrolled agent's event over --max-agent-message (4 MiB) is refused on its header too,
    // and the master says so.
    let agent_channel = agent.channel(&master).await?;
    let call = raw_call(&agent_channel, "/dockflare.v1.AgentService/ReportEvents", frame(5 << 20, &[0u8; 1024]), true);
    let (code, message) = tokio::time::timeout(Duration::from_secs(5), call).await.context("no answer")??;
    ensure!(code == Code::OutOfRange && message.contains("too large"), "oversized event: {code:?} {message}");
    let line = master.logs.wait_for("Refused an event larger than --max-agent-message.", WAIT).await?;
    ensure!(line["agent"].as_str() == Some(agent.id.as_str()), "{line}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_guessing_is_cheap_to_refuse_and_limited_per_source() -> Result<()> {
    let master = Master::start(None, &["--enroll-failures-per-minute", "20"]).await?;
    let ca_der = dockflare_common::pki::pem_certificates_der(&ca_pem(&master)?)?.remove(0);
    let guess = || JoinToken::generate(certificate_digest(&ca_der)).expose();
    let mut attacker = AgentServiceClient::new(anonymous_from(&master, ip(3)).await?);
    // The token is checked before anything else: a guess with junk for a CSR is refused for
    // its token (no CSR was parsed, nothing signed, nothing written).
    for attempt in 0..20 {
        let request = EnrollRequest { join_token: guess(), csr_der: b"junk".to_vec(), display_name: "x".into() };
        let refused = attacker.enroll(request).await.map(|_| ());
        expect_status(
            refused.map_err(anyhow::Error::from),
            Code::Unauthenticated,
            "join_token",
            &format!("guess {attempt}"),
        )?;
    }
    let request = EnrollRequest { join_token: guess(), csr_der: b"junk".to_vec(), display_name: "x".into() };
    let limited = attacker.enroll(request).await.map(|_| ());
    expect_status(limited.map_err(anyhow::Error::from), Code::ResourceExhausted, "retry in", "guess 21")?;
    // The fleet's own address is not affected.
    FakeAgent::join(&master, &master.join_token(1).await?, "legit", "").await?;
    // One aggregate line, not one per guess.
    let line = master.logs.wait_for("Refused enrollments.", WAIT).await?;
    ensure!(line["total"].as_u64() == Some(21), "aggregate line: {line}");
    ensure!(line["sources"].as_str().is_some_and(|s| s.contains("127.0.0.3=21")), "aggregate line: {line}");
    ensure!(master.logs.count("Enrollment refused.") == 0, "a log line per guess");
    Ok(())
}

/// A TLS client configuration trusting the master's CA, without a client certificate.
fn tls_client(ca_pem: &str) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for der in dockflare_common::pki::pem_certificates_der(ca_pem)? {
        roots.add(rustls::pki_types::CertificateDer::from(der))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

async fn tcp_from(local: IpAddr, to: SocketAddr) -> Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(local, 0))?;
    Ok(socket.connect(to).await?)
}

/// How long until the agent `id` has its command stream open on the master.
async fn until_connected(master: &Master, id: &str) -> Result<()> {
    eventually(&format!("agent {id} connected"), WAIT, || async {
        Ok(get_agent(master, id).await.ok().filter(|a| a.connected).map(|_| ()))
    })
    .await
}

/// The real `dockflare-agent` gets in too: enrolls and connects, and after a `kill -9`
/// reconnects, each within [`GET_IN_WITHIN`].
async fn real_agent_gets_in(master: &Master, token: &str, what: &str) -> Result<()> {
    let started = Instant::now();
    let mut agent = dockflare_testsupport::Agent::start(&[master.url()], token)?;
    let id = agent.id(WAIT).await?;
    until_connected(master, &id).await?;
    let enrolled = started.elapsed();
    agent.kill9()?;
    eventually("the killed agent seen disconnected", WAIT, || async {
        Ok(get_agent(master, &id).await.ok().filter(|a| !a.connected).map(|_| ()))
    })
    .await?;
    let started = Instant::now();
    agent.restart()?;
    until_connected(master, &id).await?;
    let reconnected = started.elapsed();
    println!("{what}: the real agent enrolled and connected in {enrolled:?}; after kill -9 it reconnected in {reconnected:?}");
    ensure!(enrolled < GET_IN_WITHIN, "{what}: the real agent took {enrolled:?} to enroll and connect");
    ensure!(reconnected < GET_IN_WITHIN, "{what}: the real agent took {reconnected:?} to reconnect");
    Ok(())
}

/// An admin gets in, a new agent enrolls and an existing one reconnects, each within
/// [`GET_IN_WITHIN`] (`token` was made before the attack: nothing untimed runs first).
async fn fleet_gets_in(master: &Master, token: &str, existing: &mut FakeAgent, what: &str) -> Result<()> {
    let started = Instant::now();
    master.admin().await?.list_agents(dockflare::v1::ListAgentsRequest::default()).await?;
    let admin = started.elapsed();
    ensure!(admin < GET_IN_WITHIN, "{what}: an admin call took {admin:?}");
    let started = Instant::now();
    FakeAgent::join(master, token, "newcomer", "").await.with_context(|| format!("{what}: enrolling"))?;
    let enrolled = started.elapsed();
    let started = Instant::now();
    existing.connect(master).await.with_context(|| format!("{what}: reconnecting"))?;
    let reconnected = started.elapsed();
    println!(
        "{what}: an admin call took {admin:?}; a new agent enrolled and registered in {enrolled:?}; an existing one \
         reconnected in {reconnected:?}"
    );
    ensure!(enrolled < GET_IN_WITHIN, "{what}: enrolling took {enrolled:?}");
    ensure!(reconnected < GET_IN_WITHIN, "{what}: reconnecting took {reconnected:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_and_silent_connections_do_not_lock_the_fleet_out() -> Result<()> {
    rlimit::increase_nofile_limit(u64::MAX)?;
    let master = Master::start(None, &["--idle-timeout", "3s"]).await?;
    let mut existing = FakeAgent::join(&master, &master.join_token(1).await?, "existing", "").await?;
    let baseline = master.rss_mib()?;
    let mut tokens = Vec::new();
    for _ in 0..4 {
        tokens.push(master.join_token(1).await?);
    }

    // 1,500 connections from one peer that never send a ClientHello.
    let mut slowloris = Vec::new();
    for _ in 0..1500 {
        slowloris.push(tcp_from(ip(2), master.addr).await?);
    }
    fleet_gets_in(&master, &tokens[0], &mut existing, "under 1,500 slowloris connections").await?;
    real_agent_gets_in(&master, &tokens[1], "under 1,500 slowloris connections").await?;
    let refused = master.logs.wait_for("Refused connections (connection limits reached).", WAIT).await?;
    ensure!(
        refused["reasons"].as_str().is_some_and(|r| r.contains("max_connections_per_source=")),
        "refusals: {refused}"
    );

    // 2,000 connections from two peers that finish the TLS handshake, then say nothing.
    let config = tls_client(&ca_pem(&master)?)?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let server_name = rustls::pki_types::ServerName::try_from("localhost")?;
    let mut silent = Vec::new();
    let opened = Instant::now();
    for batch in 0..40 {
        let handshakes = (0..50).map(|i| {
            let (connector, server_name) = (connector.clone(), server_name.clone());
            let source = ip(4 + ((batch * 50 + i) % 2) as u8);
            async move {
                let tcp = tcp_from(source, master.addr).await?;
                Ok::<_, anyhow::Error>(connector.connect(server_name, tcp).await?)
            }
        });
        for stream in futures::future::join_all(handshakes).await {
            silent.push(stream.context("a silent TLS connection")?);
        }
    }
    println!("opened 2,000 silent TLS connections in {:?}", opened.elapsed());
    let under_attack = master.rss_mib()?;
    fleet_gets_in(&master, &tokens[2], &mut existing, "under 2,000 silent TLS connections").await?;
    real_agent_gets_in(&master, &tokens[3], "under 2,000 silent TLS connections").await?;
    println!("master RSS {baseline} MiB before the attack, {under_attack} MiB under it");
    ensure!(under_attack < baseline + 128, "master memory grew from {baseline} MiB to {under_attack} MiB");

    // The master closes every silent connection once the idle timeout has passed.
    let closing = Instant::now();
    let reads = silent.into_iter().map(|mut stream| async move {
        let mut buf = [0u8; 64];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue, // the server's settings and pings
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(15), futures::future::join_all(reads))
        .await
        .context("silent TLS connections were not closed within 15 s (idle timeout 3 s)")?;
    println!("the master closed 2,000 silent TLS connections {:?} after the attack", closing.elapsed());
    let closes = slowloris.into_iter().map(|mut stream| async move {
        let mut buf = [0u8; 1];
        let _ = stream.read(&mut buf).await;
    });
    tokio::time::timeout(Duration::from_secs(15), futures::future::join_all(closes))
        .await
        .context("slowloris connections were not closed (ClientHello timeout 5 s)")?;
    ensure!(master.logs.count("Accepting a connection failed.") == 0, "the master ran out of descriptors");
    master.admin().await?.list_agents(dockflare::v1::ListAgentsRequest::default()).await?; // admin still gets in
    Ok(())
}
