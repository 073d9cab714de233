//! `dockflare-master`: flags and environment in, a running master out.
//! `dockflare-master` (or `serve`) runs the server; `token create|list|revoke`
//! manage join tokens directly in the database.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use dockflare_master::admin_service::new_join_token;
use dockflare_master::call_limits::CallLimits;
use dockflare_master::clock::now_millis;
use dockflare_master::cloudflare::client::CloudflareSettings;
use dockflare_master::cloudflare::emulator::{run_standalone, EmulatorConfig};
use dockflare_master::listener::admission::default_max_connections;
use dockflare_master::listener::ConnectionLimits;
use dockflare_master::pki_files::{self, PkiOptions};
use dockflare_master::reconcile::ReconcileSettings;
use dockflare_master::server::{self, CloudflareOptions, ServeOptions};
use dockflare_master::state::ProtocolSettings;
use secrecy::SecretString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "dockflare-master",
    version,
    about = "DockFlare master: turns Docker labels reported by agents into Cloudflare Tunnel routes."
)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Args, Debug)]
struct CommonArgs {
    /// Directory for the SQLite database and the PKI (created 0700).
    #[arg(long, env = "DOCKFLARE_DATA_DIR", default_value = "dockflare-data", global = true)]
    data_dir: PathBuf,
    /// Database URL: sqlite://PATH or postgres://USER:PASSWORD@HOST/DB. Default: SQLite in the data dir.
    #[arg(long, env = "DOCKFLARE_DATABASE_URL", global = true, hide_env_values = true)]
    database_url: Option<String>,
    /// Log format: text or json.
    #[arg(long, env = "DOCKFLARE_LOG_FORMAT", default_value = "text", global = true)]
    log_format: LogFormat,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the master (the default).
    Serve,
    /// Manage join tokens.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Run the Cloudflare API emulator on its own (for tests and offline experiments).
    CloudflareEmulator {
        /// Address to serve on.
        #[arg(long, default_value = "127.0.0.1:8787")]
        listen: SocketAddr,
        /// Zones of the emulated account (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "example.test")]
        zones: Vec<String>,
        /// API token the emulator accepts (not a secret: it guards nothing real).
        #[arg(long, default_value = "emulator-token")]
        token: String,
    },
}

#[derive(Subcommand, Debug)]
enum TokenAction {
    /// Create a join token and print it (the only time it is shown).
    Create {
        /// How long the token stays valid, e.g. 1h, 7d.
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// How many agents may enroll with it.
        #[arg(long, default_value_t = 1)]
        max_uses: u32,
        /// Free text shown by `token list`.
        #[arg(long, default_value = "")]
        description: String,
        /// The tunnel group agents enrolled with this token join (they share one tunnel).
        /// Default: each agent gets a tunnel of its own.
        #[arg(long, default_value = "")]
        tunnel_group: String,
        /// Hostnames the agents' labels may route: "app.example.com" or "*.example.com" (any
        /// name below it). Repeat or comma-separate. Default: any hostname of the account.
        #[arg(long, value_delimiter = ',')]
        allow_hostname: Vec<String>,
        /// Let the agents route wildcard hostnames ("*.example.com").
        #[arg(long)]
        allow_wildcards: bool,
        /// Let the agents route a zone's apex ("example.com").
        #[arg(long)]
        allow_apex: bool,
        /// Routes per agent at most (0: the master's --max-routes-per-agent).
        #[arg(long, default_value_t = 0)]
        max_routes: u32,
    },
    /// List join tokens (without secrets).
    List,
    /// Revoke a join token by id.
    Revoke { id: String },
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Address of the gRPC port (mutual TLS).
    #[arg(long, env = "DOCKFLARE_LISTEN", default_value = "0.0.0.0:8443")]
    listen: SocketAddr,
    /// Names and addresses agents use to reach the master; they go into the server certificate.
    /// Default: this host's name, localhost, 127.0.0.1 and ::1.
    #[arg(long = "server-name", env = "DOCKFLARE_SERVER_NAMES", value_delimiter = ',')]
    server_names: Vec<String>,
    /// Operator-supplied CA certificate (PEM), used instead of generating one. Needs --ca-key.
    #[arg(long, env = "DOCKFLARE_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// Key of --ca-cert (PEM).
    #[arg(long, env = "DOCKFLARE_CA_KEY")]
    ca_key: Option<PathBuf>,
    /// Operator-supplied server certificate (PEM, issued by the CA). Needs --tls-key.
    #[arg(long, env = "DOCKFLARE_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// Key of --tls-cert (PEM).
    #[arg(long, env = "DOCKFLARE_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// How often agents send heartbeats.
    #[arg(long, env = "DOCKFLARE_HEARTBEAT_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    heartbeat_interval: Duration,
    /// An agent with no heartbeat for this long is offline.
    #[arg(long, env = "DOCKFLARE_HEARTBEAT_TIMEOUT", default_value = "35s", value_parser = humantime::parse_duration)]
    heartbeat_timeout: Duration,
    /// Lifetime of agent certificates (agents renew at ~70%).
    #[arg(long, env = "DOCKFLARE_AGENT_CERT_TTL", default_value = "7d", value_parser = humantime::parse_duration)]
    agent_cert_ttl: Duration,
    /// How long a command may wait for a slow agent before its stream is closed.
    #[arg(long, env = "DOCKFLARE_COMMAND_SEND_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    command_send_timeout: Duration,
    /// How long stored agent events are kept (heartbeats keep no row at all).
    #[arg(long, env = "DOCKFLARE_EVENT_RETENTION", default_value = "30d", value_parser = humantime::parse_duration)]
    event_retention: Duration,
    /// Cloudflare API token (Account › Cloudflare Tunnel › Edit, Zone › DNS › Edit). Without it the
    /// master runs offline against its built-in Cloudflare emulator.
    #[arg(long, env = "CF_API_TOKEN", hide_env_values = true, value_parser = secret)]
    cf_api_token: Option<SecretString>,
    /// File holding the Cloudflare API token (a Docker or systemd secret), instead of CF_API_TOKEN.
    #[arg(long, env = "CF_API_TOKEN_FILE", conflicts_with = "cf_api_token")]
    cf_api_token_file: Option<PathBuf>,
    /// Cloudflare account id (required with CF_API_TOKEN).
    #[arg(long, env = "CF_ACCOUNT_ID")]
    cf_account_id: Option<String>,
    /// Zone of last resort for DNS records (when no account zone matches a hostname).
    #[arg(long, env = "CF_ZONE_ID")]
    cf_zone_id: Option<String>,
    /// Cloudflare API base URL.
    #[arg(long, env = "CF_API_URL", default_value = "https://api.cloudflare.com/client/v4")]
    cf_api_url: String,
    /// How long a stopped container's routes stay, in seconds.
    #[arg(long, env = "GRACE_PERIOD_SECONDS", default_value_t = 28_800)]
    grace_period_seconds: u64,
    /// How often to re-read Cloudflare and repair drift (changes made outside DockFlare).
    #[arg(long, env = "DOCKFLARE_RECONCILE_INTERVAL", default_value = "5m", value_parser = humantime::parse_duration)]
    reconcile_interval: Duration,
    /// Routes per agent when its hostname policy sets no quota (more are refused: a diagnostic on
    /// the container).
    #[arg(long, env = "DOCKFLARE_MAX_ROUTES_PER_AGENT", default_value_t = dockflare_master::reconcile::DEFAULT_MAX_ROUTES_PER_AGENT)]
    max_routes_per_agent: u32,
    /// Tunnel names start with this (dockflare-agent-<id>, dockflare-group-<name>).
    #[arg(long, env = "DOCKFLARE_TUNNEL_PREFIX", default_value = "dockflare")]
    tunnel_prefix: String,
    /// Request budget towards Cloudflare (its limit is 1 200 per five minutes, shared with the dashboard).
    #[arg(long, env = "DOCKFLARE_CF_REQUESTS_PER_5MIN", default_value_t = 1_100)]
    cf_requests_per_5min: u32,
    /// Zones of the built-in emulator in offline mode.
    #[arg(long, env = "DOCKFLARE_OFFLINE_ZONES", value_delimiter = ',', default_value = "example.test")]
    offline_zones: Vec<String>,
    /// Offline mode: where the built-in emulator listens, so that connector containers (the local
    /// edge) can reach it. Default 127.0.0.1:8788 and the same port on the Docker bridge's gateway
    /// (docker0; without one, every interface), except that a data dir keeps the port its tunnel
    /// tokens carry. A taken port falls back to a free one (and the tokens are renewed).
    #[arg(long, env = "DOCKFLARE_OFFLINE_EMULATOR_LISTEN")]
    offline_emulator_listen: Option<SocketAddr>,
    /// Offline mode: the emulator's URL as connector containers reach it (written into tunnel
    /// tokens). Default: http://host.docker.internal:PORT/client/v4.
    #[arg(long, env = "DOCKFLARE_OFFLINE_EMULATOR_URL")]
    offline_emulator_url: Option<String>,
    #[command(flatten)]
    limits: LimitArgs,
}

/// Limits that keep one peer from taking what the fleet needs (README: "Limits").
#[derive(Args, Debug)]
struct LimitArgs {
    /// Open connections at most. Default: the open-files limit less 256.
    #[arg(long, env = "DOCKFLARE_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Open connections from one source address (IPv6: one /64) at most; more are closed at once.
    #[arg(long, env = "DOCKFLARE_MAX_CONNECTIONS_PER_SOURCE", default_value_t = 1024)]
    max_connections_per_source: usize,
    /// Longest wait for a new connection's TLS ClientHello.
    #[arg(long, env = "DOCKFLARE_TLS_HELLO_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    tls_hello_timeout: Duration,
    /// Longest the rest of a TLS handshake may take.
    #[arg(long, env = "DOCKFLARE_TLS_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    tls_handshake_timeout: Duration,
    /// A connection whose peer sends nothing for this long is closed (live peers answer the
    /// server's pings, sent every third of it, at most every 20 s).
    #[arg(long, env = "DOCKFLARE_IDLE_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    idle_timeout: Duration,
    /// Largest message an agent may send, e.g. 4MiB (a status report of a whole host).
    #[arg(long, env = "DOCKFLARE_MAX_AGENT_MESSAGE", default_value = "4MiB", value_parser = byte_size)]
    max_agent_message: usize,
    /// Largest request message of a call without a valid client certificate (and of Enroll).
    #[arg(long, env = "DOCKFLARE_MAX_UNAUTHENTICATED_MESSAGE", default_value = "64KiB", value_parser = byte_size)]
    max_unauthenticated_message: usize,
    /// Calls without a valid client certificate in progress at once.
    #[arg(long, env = "DOCKFLARE_MAX_UNAUTHENTICATED_CALLS", default_value_t = 256)]
    max_unauthenticated_calls: usize,
    /// ... of which from one source address.
    #[arg(long, env = "DOCKFLARE_MAX_UNAUTHENTICATED_CALLS_PER_SOURCE", default_value_t = 16)]
    max_unauthenticated_calls_per_source: usize,
    /// What one agent's events may cost, in bytes per second (each event counts its size, at
    /// least 1 KiB); an agent over it is read more slowly, the others are not.
    #[arg(long, env = "DOCKFLARE_AGENT_EVENT_RATE", default_value = "256KiB", value_parser = byte_size)]
    agent_event_rate: usize,
    /// … and at once (a reconnect's full status report must fit).
    #[arg(long, env = "DOCKFLARE_AGENT_EVENT_BURST", default_value = "8MiB", value_parser = byte_size)]
    agent_event_burst: usize,
    /// Failed enrollments per source address and minute; then Enroll refuses it until the minute ends.
    #[arg(long, env = "DOCKFLARE_ENROLL_FAILURES_PER_MINUTE", default_value_t = 30)]
    enroll_failures_per_minute: u32,
}

/// Parses "4MiB", "64KiB", "512" (bytes).
fn byte_size(value: &str) -> Result<usize, String> {
    let value = value.trim();
    let split = value.find(|c: char| !c.is_ascii_digit()).unwrap_or(value.len());
    let (digits, unit) = value.split_at(split);
    let multiplier: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "KB" => 1024,
        "MiB" | "M" | "MB" => 1024 * 1024,
        other => return Err(format!("unknown unit {other:?}: use B, KiB or MiB")),
    };
    let number: usize = digits.parse().map_err(|_| format!("{value:?} is not a size such as 4MiB or 65536"))?;
    number.checked_mul(multiplier).filter(|n| *n > 0).ok_or_else(|| format!("{value:?} is out of range"))
}

fn secret(value: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(value.to_string()))
}

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

fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

fn pki_options(common: &CommonArgs, serve: &ServeArgs) -> PkiOptions {
    let server_names = if serve.server_names.is_empty() {
        let mut names: Vec<String> = host_name().into_iter().collect();
        for name in ["localhost", "127.0.0.1", "::1"] {
            if !names.iter().any(|n| n == name) {
                names.push(name.to_string());
            }
        }
        names
    } else {
        serve.server_names.iter().map(|n| n.trim().to_string()).filter(|n| !n.is_empty()).collect()
    };
    PkiOptions {
        dir: common.data_dir.join("pki"),
        server_names,
        ca_cert: serve.ca_cert.clone(),
        ca_key: serve.ca_key.clone(),
        server_cert: serve.tls_cert.clone(),
        server_key: serve.tls_key.clone(),
    }
}

fn serve_options(cli: &Cli, open_files_limit: Option<u64>) -> Result<ServeOptions> {
    let serve = &cli.serve;
    let limits = &serve.limits;
    if serve.heartbeat_timeout <= serve.heartbeat_interval {
        bail!(
            "--heartbeat-timeout ({:?}) must be longer than --heartbeat-interval ({:?})",
            serve.heartbeat_timeout,
            serve.heartbeat_interval
        );
    }
    if serve.agent_cert_ttl < Duration::from_secs(10) {
        bail!("--agent-cert-ttl must be at least 10s");
    }
    let cf_api_token = match &serve.cf_api_token_file {
        Some(path) => Some(read_secret_file(path)?),
        None => serve.cf_api_token.clone(),
    };
    let api = match (&cf_api_token, &serve.cf_account_id) {
        (Some(token), Some(account_id)) => Some(CloudflareSettings {
            api_url: serve.cf_api_url.clone(),
            token: token.clone(),
            account_id: account_id.trim().to_string(),
            requests_per_5_minutes: serve.cf_requests_per_5min.max(1),
        }),
        (Some(_), None) => bail!("CF_API_TOKEN is set but CF_ACCOUNT_ID is not: both are needed to manage tunnels"),
        (None, _) => None,
    };
    Ok(ServeOptions {
        listen: serve.listen,
        data_dir: cli.common.data_dir.clone(),
        database_url: cli.common.database_url.clone(),
        pki: pki_options(&cli.common, serve),
        settings: ProtocolSettings {
            heartbeat_interval: serve.heartbeat_interval,
            heartbeat_timeout: serve.heartbeat_timeout,
            agent_certificate_lifetime: serve.agent_cert_ttl,
            command_send_timeout: serve.command_send_timeout,
            event_retention: serve.event_retention,
        },
        cloudflare: CloudflareOptions {
            api,
            offline_zones: serve.offline_zones.iter().map(|z| z.trim().to_string()).filter(|z| !z.is_empty()).collect(),
            offline_emulator_listen: serve.offline_emulator_listen,
            offline_emulator_url: serve.offline_emulator_url.clone().filter(|u| !u.trim().is_empty()),
            reconcile: ReconcileSettings {
                grace: Duration::from_secs(serve.grace_period_seconds),
                drift_interval: serve.reconcile_interval,
                default_zone_id: serve.cf_zone_id.clone().filter(|z| !z.trim().is_empty()),
                tunnel_prefix: serve.tunnel_prefix.clone(),
                max_routes_per_agent: serve.max_routes_per_agent.max(1),
                ..ReconcileSettings::default()
            },
        },
        connections: ConnectionLimits {
            max_connections: limits
                .max_connections
                .unwrap_or_else(|| default_max_connections(open_files_limit.unwrap_or(4096))),
            max_connections_per_source: limits.max_connections_per_source,
            hello_timeout: limits.tls_hello_timeout,
            handshake_timeout: limits.tls_handshake_timeout,
            idle_timeout: limits.idle_timeout.max(Duration::from_millis(300)),
        },
        calls: CallLimits {
            max_agent_message: limits.max_agent_message,
            enroll_failures_per_minute: limits.enroll_failures_per_minute,
            agent_event_rate: u32::try_from(limits.agent_event_rate).unwrap_or(u32::MAX),
            agent_event_burst: u32::try_from(limits.agent_event_burst).unwrap_or(u32::MAX),
            max_unauthenticated_message: limits.max_unauthenticated_message,
            max_unauthenticated_calls: limits.max_unauthenticated_calls,
            max_unauthenticated_calls_per_source: limits.max_unauthenticated_calls_per_source,
        },
    })
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

async fn token_command(cli: &Cli, action: &TokenAction) -> Result<()> {
    let options = serve_options(cli, None)?;
    dockflare_common::secret_file::create_private_dir(&options.data_dir)
        .with_context(|| format!("creating {}", options.data_dir.display()))?;
    let store = server::connect_store(&server::database_url(&options)).await.context("opening the database")?;
    match action {
        TokenAction::Create {
            ttl,
            max_uses,
            description,
            tunnel_group,
            allow_hostname,
            allow_wildcards,
            allow_apex,
            max_routes,
        } => {
            let pki = pki_files::load_or_create(&options.pki, time::OffsetDateTime::now_utc())?;
            let request = dockflare::v1::CreateJoinTokenRequest {
                ttl_seconds: ttl.as_secs(),
                max_uses: *max_uses,
                description: description.clone(),
                tunnel_group: tunnel_group.clone(),
                policy: Some(dockflare::v1::HostnamePolicy {
                    allowed_hostnames: allow_hostname.clone(),
                    allow_wildcards: *allow_wildcards,
                    allow_apex: *allow_apex,
                    max_routes: *max_routes,
                }),
            };
            let (token, row) = new_join_token(pki.ca.certificate_der(), &request, now_millis())
                .map_err(|status| anyhow::anyhow!("{}", status.message()))?;
            store.insert_join_token(&row, &token.secret_hash()).await?;
            eprintln!(
                "Join token {} created (max uses {}, expires in {}).",
                row.id,
                row.max_uses,
                humantime::format_duration(*ttl)
            );
            println!("{}", token.expose());
        }
        TokenAction::List => {
            println!(
                "{:<14} {:>5} {:>8} {:<8} {:<25} {:<16} DESCRIPTION",
                "ID", "USES", "MAX", "STATE", "EXPIRES", "TUNNEL GROUP"
            );
            let now = now_millis();
            for row in store.list_join_tokens().await? {
                let state = if row.revoked {
                    "revoked"
                } else if row.expires_at <= now {
                    "expired"
                } else {
                    "valid"
                };
                let expires = humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + Duration::from_millis(row.expires_at.max(0) as u64),
                );
                println!(
                    "{:<14} {:>5} {:>8} {:<8} {:<25} {:<16} {}",
                    row.id,
                    row.uses,
                    row.max_uses,
                    state,
                    expires,
                    if row.tunnel_group.is_empty() { "-" } else { &row.tunnel_group },
                    row.description
                );
            }
        }
        TokenAction::Revoke { id } => match store.revoke_join_token(id, now_millis()).await? {
            Some(row) => println!("Join token {} revoked.", row.id),
            None => bail!("join token {id:?} does not exist"),
        },
    }
    store.close().await;
    Ok(())
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

/// Reads a secret from a file (trailing newline dropped); the file should be private.
fn read_secret_file(path: &std::path::Path) -> Result<SecretString> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value = text.trim();
    if value.is_empty() {
        bail!("{} is empty", path.display());
    }
    Ok(SecretString::from(value.to_string()))
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
        Some(Command::Token { action }) => token_command(&cli, action).await,
        Some(Command::CloudflareEmulator { listen, zones, token }) => {
            let config =
                EmulatorConfig { api_tokens: vec![token.clone()], zones: zones.clone(), ..EmulatorConfig::default() };
            run_standalone(*listen, config).await.context("Cloudflare emulator")
        }
        None | Some(Command::Serve) => {
            let open_files = raise_file_limit();
            let options = serve_options(&cli, open_files)?;
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

#[cfg(test)]
mod tests {
    use super::byte_size;

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(byte_size("4MiB"), Ok(4 * 1024 * 1024));
        assert_eq!(byte_size("64KiB"), Ok(65536));
        assert_eq!(byte_size("512"), Ok(512));
        assert!(byte_size("0").is_err());
        assert!(byte_size("4GB").unwrap_err().contains("unknown unit"));
        assert!(byte_size("MiB").is_err());
    }
}
