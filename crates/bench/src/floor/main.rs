//! `floor_server`: the floor baseline of `fleet_bench`. A bare tonic server with the master's
//! mutual TLS ([`dockflare_common::tls`]), its HTTP/2 settings, and the same two long-lived streams
//! per agent (ReportEvents in, WatchCommands out with receipts and commands), but no storage,
//! no admission limits and no per-agent logging: what serving thousands of agents costs at
//! least, so that the master's memory per agent and command latency can be read against it.
//!
//! At start it makes a fresh CA, a server certificate for 127.0.0.1/localhost and an admin
//! client certificate, writes `ca.crt`, `admin.crt` and `admin.key` into `--data-dir`, and prints
//! one JSON line to stdout: `{"message":"Floor listening.","addr":"127.0.0.1:PORT"}`.
//!
//! ```sh
//! cargo build --release -p dockflare-bench --bin floor_server
//! target/release/floor_server --data-dir /tmp/floor --listen 127.0.0.1:0
//! ```

mod agent_service;
mod agents;
mod auth;
mod control;
mod listener;
mod pki;

/// The generated FloorControl service (`proto/floor.proto`).
mod proto {
    #![allow(clippy::doc_lazy_continuation)]
    tonic::include_proto!("dockflare.bench.v1");
}

use anyhow::{Context, Result};
use clap::Parser;
use dockflare::v1::agent_service_server::AgentServiceServer;
use proto::floor_control_server::FloorControlServer;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// HTTP/2 streams one connection may have open: the master's `MAX_STREAMS_PER_CONNECTION`.
const MAX_STREAMS_PER_CONNECTION: u32 = 100;
/// The master's HTTP/2 ping interval with its default idle timeout (60 s / 3).
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
/// The master's HTTP/2 ping timeout.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest message an agent may send (the master's `--max-agent-message` default).
const MAX_AGENT_MESSAGE: usize = 4 * 1024 * 1024;

#[derive(Parser, Debug)]
#[command(about = "The floor baseline of fleet_bench: the master's mTLS and agent streams, no storage.")]
struct Args {
    /// Where ca.crt, admin.crt and admin.key are written (created if missing).
    #[arg(long)]
    data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The heartbeat interval Register tells agents (the master's default).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    heartbeat_interval: Duration,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let pki = pki::FloorPki::create(&args.data_dir)?;
    let verifier = dockflare_common::tls::client_chain_verifier(pki.ca.certificate_der())?;
    let tls = dockflare_common::tls::server_config(
        &pki.server_cert_pem,
        &pki.server_key_pem,
        pki.ca.certificate_der(),
        verifier.clone(),
    )?;

    let agents = Arc::new(agents::Agents::default());
    let auth = auth::Authenticator::new(verifier);
    let agent_api = agent_service::AgentApi::new(pki.ca, auth, agents.clone(), args.heartbeat_interval);
    let control = control::Control::new(agents, pki.admin_cert_der);

    let tcp =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("listening on {}", args.listen))?;
    let addr = tcp.local_addr()?;
    let incoming = listener::incoming(tcp, tls);
    let server = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .max_concurrent_streams(Some(MAX_STREAMS_PER_CONNECTION))
        .tcp_nodelay(true)
        .add_service(AgentServiceServer::new(agent_api).max_decoding_message_size(MAX_AGENT_MESSAGE))
        .add_service(FloorControlServer::new(control));

    // By hand, to keep the key order of the documented line (a socket address needs no escaping).
    let line = format!(r#"{{"message":"Floor listening.","addr":"{addr}"}}"#);
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()?;
    drop(stdout);

    server.serve_with_incoming(incoming).await.context("serving")?;
    Ok(())
}
