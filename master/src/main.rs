//! `dockflare-master`: flags and environment in, a running master out.
//! `dockflare-master` (or `serve`) runs the server; `token create|list|revoke`
//! manage join tokens directly in the database.

mod cli;

use anyhow::{bail, Context, Result};
use cli::{Cli, Command, LogFormat};
use dockflare_emulator::{run_standalone, EmulatorConfig};
use dockflare_master::server;
use std::time::Duration;

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,h2=warn,hyper=warn,tower=warn,sqlx=warn"));
    // Colours only on a terminal: a log file would get escape codes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut terminate) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!(message = "Shutting down.");
}

/// How long connections may take to close after the shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Every agent holds a connection: lift the soft open-files limit to the hard one.
fn raise_file_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            tracing::info!(message = "Open files limit.", limit);
            Some(limit)
        }
        Err(error) => {
            tracing::warn!(message = "Could not raise the open files limit.", %error);
            rlimit::getrlimit(rlimit::Resource::NOFILE).ok().map(|(soft, _)| soft)
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let matches = <Cli as clap::CommandFactory>::command().get_matches();
    let cli = <Cli as clap::FromArgMatches>::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    init_logging(cli.common.log_format);
    if matches.value_source("cf_api_token") == Some(clap::parser::ValueSource::CommandLine) {
        tracing::warn!(message = "The Cloudflare API token was given on the command line, where every user of this host can read it (/proc/PID/cmdline); prefer CF_API_TOKEN or --cf-api-token-file.");
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    match &cli.command {
        Some(Command::Token { action }) => cli::token::token_command(&cli, action).await,
        Some(Command::Admin { action }) => cli::admin::admin_command(&cli, action).await,
        Some(Command::Ui { action }) => cli::ui::ui_command(&cli, action).await,
        Some(Command::Healthcheck { path }) => {
            let addr = cli.serve.metrics_listen.0.context("--metrics-listen is off: there is no health endpoint")?;
            let body = dockflare_observe::probe::get(addr, path, Duration::from_secs(5))?;
            print!("{body}");
            Ok(())
        }
        Some(Command::CloudflareEmulator { listen, zones, token }) => {
            let config =
                EmulatorConfig { api_tokens: vec![token.clone()], zones: zones.clone(), ..EmulatorConfig::default() };
            run_standalone(*listen, config).await.context("Cloudflare emulator")
        }
        None | Some(Command::Serve) => {
            let open_files = raise_file_limit();
            let options = cli::options::serve_options(&cli, open_files)?;
            if options.metrics_listen.is_some() {
                // First: a metric handle taken before the recorder exists records nowhere.
                dockflare_observe::recorder::install("master", env!("CARGO_PKG_VERSION"))?;
            }
            let mut running = server::start(options, shutdown_signal()).await?;
            let mut stopping = running.stopping.clone();
            let stopped_in_time = async {
                let _ = stopping.wait_for(|stopping| *stopping).await;
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            };
            tokio::select! {
                served = &mut running.served => served.context("server task")?.context("gRPC server")?,
                exit = running.exits.first_exit() => {
                    // Half a master is worse than none: exit, and let the supervisor restart it.
                    tracing::error!(message = "A master task ended unexpectedly; exiting.", task = exit.task, reason = %exit);
                    bail!("{exit}");
                }
                _ = stopped_in_time => {
                    tracing::warn!(message = "Connections were still open after the shutdown grace; stopping anyway.", grace_s = SHUTDOWN_GRACE.as_secs());
                }
            }
            // Shutting down: what the event writer holds is stored before the process exits.
            if running.state.events.drain(Duration::from_secs(30)).await {
                tracing::info!(message = "Stopped; every received event is stored.");
            } else {
                tracing::warn!(message = "Stopped before every received event was stored (the agents resend them).");
            }
            Ok(())
        }
    }
}
