//! `dockflare-local-edge`: the local edge (see `dockflare_agent::edge`), started like cloudflared:
//!
//! ```text
//! TUNNEL_TOKEN=… dockflare-local-edge tunnel --no-autoupdate run
//! ```
//!
//! It serves the tunnel's ingress on `--listen` (`DOCKFLARE_EDGE_LISTEN`, default `0.0.0.0:8080`)
//! and cloudflared's metrics on `--metrics` (`TUNNEL_METRICS`, default `0.0.0.0:2000`). Exit codes
//! as cloudflared: 0 after SIGTERM/SIGINT, 1 on a runtime error, 255 for an invalid token.

use clap::{Parser, Subcommand};
use dockflare_agent::edge::token::TunnelToken;
use dockflare_agent::edge::{self, EdgeSettings};
use secrecy::SecretString;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "dockflare-local-edge",
    version,
    about = "DockFlare's local edge: serves a tunnel's ingress from the DockFlare Cloudflare emulator on a local HTTP port."
)]
struct Cli {
    /// The tunnel token (prefer the environment variable: a command line is visible to every user).
    #[arg(long, env = "TUNNEL_TOKEN", hide_env_values = true, global = true, value_parser = secret)]
    token: Option<SecretString>,
    /// Where the ingress is served.
    #[arg(long, env = "DOCKFLARE_EDGE_LISTEN", default_value = "0.0.0.0:8080", global = true)]
    listen: SocketAddr,
    /// Where /ready, /healthcheck and /config are served.
    #[arg(long, env = "TUNNEL_METRICS", default_value = "0.0.0.0:2000", global = true)]
    metrics: SocketAddr,
    /// The emulator's URL, overriding the token's "e" field.
    #[arg(long, env = "DOCKFLARE_EDGE_ENDPOINT", global = true)]
    endpoint: Option<String>,
    /// How long in-flight requests may finish after SIGTERM.
    #[arg(long, env = "TUNNEL_GRACE_PERIOD", default_value = "5s", value_parser = humantime::parse_duration, global = true)]
    grace_period: Duration,
    /// Accepted for cloudflared compatibility; there is nothing to update.
    #[arg(long, env = "NO_AUTOUPDATE", global = true)]
    no_autoupdate: bool,
    /// Log format: text or json.
    #[arg(long, env = "DOCKFLARE_LOG_FORMAT", default_value = "text", global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Tunnel commands (only `run`).
    Tunnel {
        #[command(subcommand)]
        action: Option<TunnelAction>,
    },
    /// Print the version.
    Version,
}

#[derive(Subcommand)]
enum TunnelAction {
    /// Run the tunnel (the default).
    Run {
        /// Tunnel name or id, as cloudflared takes it; the token decides.
        tunnel: Option<String>,
    },
}

#[derive(clap::ValueEnum, Clone, Copy)]
enum LogFormat {
    Text,
    Json,
}

fn secret(value: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(value.to_string()))
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,h2=warn,hyper=warn,rustls=warn"));
    // Colours only on a terminal: `docker logs` shows them as escape codes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// SIGTERM or SIGINT; the name of the one that came.
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => "interrupt",
                _ = terminate.recv() => "terminated",
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            "interrupt"
        }
    }
}

/// cloudflared's exit status for usage errors (`cli.Exit(msg, -1)`).
const USAGE_ERROR: u8 = 255;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Version) = cli.command {
        println!("dockflare-local-edge version {} (cloudflared stand-in)", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    init_logging(cli.log_format);
    let Some(raw) = cli.token else {
        eprintln!("No tunnel token: set TUNNEL_TOKEN (or --token).\nSee 'dockflare-local-edge tunnel run --help'.");
        return ExitCode::from(USAGE_ERROR);
    };
    let token = match TunnelToken::decode(&raw) {
        Ok(token) => token,
        Err(error) => {
            eprintln!("Provided Tunnel token is not valid ({error}).\nSee 'dockflare-local-edge tunnel run --help'.");
            return ExitCode::from(USAGE_ERROR);
        }
    };
    let settings = EdgeSettings {
        token,
        endpoint: cli.endpoint.filter(|e| !e.trim().is_empty()),
        listen: cli.listen,
        metrics: cli.metrics,
        grace: cli.grace_period,
    };
    let running = match edge::start(settings).await {
        Ok(running) => running,
        Err(error) => {
            tracing::error!(message = "The local edge cannot start.", %error);
            return ExitCode::FAILURE;
        }
    };
    let signal = shutdown_signal().await;
    tracing::info!(message = format!("Initiating graceful shutdown due to signal {signal} ..."));
    running.shutdown().await;
    tracing::info!(message = "Stopped.");
    ExitCode::SUCCESS
}
