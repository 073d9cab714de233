//! The `dockflare-master` command line (the binary's, not the library's): flags and
//! environment variables ([`Cli`]), turned into the server's options ([`options`]), and the
//! `token` and `admin` subcommands that manage join tokens ([`token`]) and admin identities
//! ([`admin`]) in the database directly.

pub mod admin;
pub mod options;
pub mod token;
pub mod ui;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use dockflare_cloudflare::client::CloudflareSettings;
use dockflare_master::admin_service::new_join_token;
use dockflare_master::call_limits::CallLimits;
use dockflare_master::clock::now_millis;
use dockflare_master::listener::admission::default_max_connections;
use dockflare_master::listener::ConnectionLimits;
use dockflare_master::pki_files::{self, PkiOptions};
use dockflare_master::reconcile::ReconcileSettings;
use dockflare_master::server::{self, CloudflareOptions, ServeOptions};
use dockflare_master::state::ProtocolSettings;
use dockflare_observe::{listen_or_off, ListenOrOff};
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
pub struct Cli {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Args, Debug)]
pub struct CommonArgs {
    /// Directory for the SQLite database and the PKI (created 0700).
    #[arg(long, env = "DOCKFLARE_DATA_DIR", default_value = "dockflare-data", global = true)]
    pub data_dir: PathBuf,
    /// Database URL: sqlite://PATH or postgres://USER:PASSWORD@HOST/DB. Default: SQLite in the data dir.
    #[arg(long, env = "DOCKFLARE_DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// Log format: text or json.
    #[arg(long, env = "DOCKFLARE_LOG_FORMAT", default_value = "text", global = true)]
    pub log_format: LogFormat,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the master (the default).
    Serve,
    /// Ask the running master's health endpoint (--metrics-listen) whether it is sound: exit 0 if
    /// it answers 200, 1 otherwise. Needs no shell: the images' HEALTHCHECK.
    Healthcheck {
        /// `/healthz` (the process is sound) or `/readyz` (it can do its job now).
        #[arg(long, default_value = "/healthz")]
        path: String,
    },
    /// Manage join tokens.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Manage admin identities (client certificates for AdminService and the `dockflare` CLI),
    /// straight in the database, with the CA key of this data dir.
    Admin {
        #[command(subcommand)]
        action: AdminAction,
    },
    /// Manage the web dashboard's users (straight in the database).
    Ui {
        #[command(subcommand)]
        action: UiAction,
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
pub enum TokenAction {
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

#[derive(Subcommand, Debug)]
pub enum AdminAction {
    /// Issue an identity: writes NAME.key (0600), NAME.crt and ca.crt into --out-dir.
    Issue {
        /// 1-64 of a-z, A-Z, 0-9, '-', '_', '.'.
        #[arg(long)]
        name: String,
        /// viewer (reads all but secrets), operator (also manual routes, commands, reconcile),
        /// admin (also join tokens, agents, identities).
        #[arg(long, value_parser = parse_role)]
        role: dockflare_common::identity::Role,
        /// How long the certificate is valid (1m to 3y), e.g. 30d.
        #[arg(long, default_value = "90d", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// Where to write the files (created 0700). Default: <data-dir>/identities/NAME.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
    /// List identities with role, expiry and last use.
    List {
        /// Include revoked and expired identities.
        #[arg(long)]
        all: bool,
    },
    /// Revoke an identity by id (its certificate serial, as `admin list` shows it): its calls are
    /// refused and its open streams end within a second.
    Revoke { id: String },
}

#[derive(Subcommand, Debug)]
pub enum UiAction {
    /// Create a dashboard user or change its role and password (its sessions end). The password
    /// is read from --password-file, or from standard input (never from the command line).
    SetPassword {
        /// 1-64 of a-z, A-Z, 0-9, '-', '_', '.', '@'.
        #[arg(long)]
        user: String,
        /// viewer, operator or admin (as for admin identities).
        #[arg(long, value_parser = parse_role)]
        role: dockflare_common::identity::Role,
        /// A file holding the password (at least 12 characters; a trailing newline is dropped).
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// List dashboard users and their roles.
    List,
    /// Remove a dashboard user (its sessions end).
    Remove { user: String },
}

fn parse_role(value: &str) -> Result<dockflare_common::identity::Role, String> {
    dockflare_common::identity::Role::parse(value).ok_or_else(|| format!("{value:?}: one of viewer, operator, admin"))
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address of the gRPC port (mutual TLS).
    #[arg(long, env = "DOCKFLARE_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    /// Names and addresses agents use to reach the master; they go into the server certificate.
    /// Default: this host's name, localhost, 127.0.0.1 and ::1.
    #[arg(long = "server-name", env = "DOCKFLARE_SERVER_NAMES", value_delimiter = ',')]
    pub server_names: Vec<String>,
    /// Operator-supplied CA certificate (PEM), used instead of generating one. Needs --ca-key.
    #[arg(long, env = "DOCKFLARE_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// Key of --ca-cert (PEM).
    #[arg(long, env = "DOCKFLARE_CA_KEY")]
    pub ca_key: Option<PathBuf>,
    /// Operator-supplied server certificate (PEM, issued by the CA). Needs --tls-key.
    #[arg(long, env = "DOCKFLARE_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// Key of --tls-cert (PEM).
    #[arg(long, env = "DOCKFLARE_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// How often agents send heartbeats.
    #[arg(long, env = "DOCKFLARE_HEARTBEAT_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub heartbeat_interval: Duration,
    /// An agent with no heartbeat for this long is offline.
    #[arg(long, env = "DOCKFLARE_HEARTBEAT_TIMEOUT", default_value = "35s", value_parser = humantime::parse_duration)]
    pub heartbeat_timeout: Duration,
    /// Lifetime of agent certificates (agents renew at ~70%).
    #[arg(long, env = "DOCKFLARE_AGENT_CERT_TTL", default_value = "7d", value_parser = humantime::parse_duration)]
    pub agent_cert_ttl: Duration,
    /// How long a command may wait for a slow agent before its stream is closed.
    #[arg(long, env = "DOCKFLARE_COMMAND_SEND_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub command_send_timeout: Duration,
    /// How long stored agent events are kept (heartbeats keep no row at all).
    #[arg(long, env = "DOCKFLARE_EVENT_RETENTION", default_value = "30d", value_parser = humantime::parse_duration)]
    pub event_retention: Duration,
    /// Cloudflare API token (Account › Cloudflare Tunnel › Edit, Zone › DNS › Edit). Without it the
    /// master runs offline against its built-in Cloudflare emulator.
    #[arg(long, env = "CF_API_TOKEN", hide_env_values = true, value_parser = secret)]
    pub cf_api_token: Option<SecretString>,
    /// File holding the Cloudflare API token (a Docker or systemd secret), instead of CF_API_TOKEN.
    #[arg(long, env = "CF_API_TOKEN_FILE", conflicts_with = "cf_api_token")]
    pub cf_api_token_file: Option<PathBuf>,
    /// Cloudflare account id (required with CF_API_TOKEN).
    #[arg(long, env = "CF_ACCOUNT_ID")]
    pub cf_account_id: Option<String>,
    /// Zone of last resort for DNS records (when no account zone matches a hostname).
    #[arg(long, env = "CF_ZONE_ID")]
    pub cf_zone_id: Option<String>,
    /// Cloudflare API base URL.
    #[arg(long, env = "CF_API_URL", default_value = "https://api.cloudflare.com/client/v4")]
    pub cf_api_url: String,
    /// How long a stopped container's routes stay, in seconds.
    #[arg(long, env = "GRACE_PERIOD_SECONDS", default_value_t = 28_800)]
    pub grace_period_seconds: u64,
    /// How often to re-read Cloudflare and repair drift (changes made outside DockFlare).
    #[arg(long, env = "DOCKFLARE_RECONCILE_INTERVAL", default_value = "5m", value_parser = humantime::parse_duration)]
    pub reconcile_interval: Duration,
    /// Routes per agent when its hostname policy sets no quota (more are refused: a diagnostic on
    /// the container).
    #[arg(long, env = "DOCKFLARE_MAX_ROUTES_PER_AGENT", default_value_t = dockflare_master::reconcile::DEFAULT_MAX_ROUTES_PER_AGENT)]
    pub max_routes_per_agent: u32,
    /// Tunnel names start with this (dockflare-agent-<id>, dockflare-group-<name>).
    #[arg(long, env = "DOCKFLARE_TUNNEL_PREFIX", default_value = "dockflare")]
    pub tunnel_prefix: String,
    /// Request budget towards Cloudflare (its limit is 1 200 per five minutes, shared with the dashboard).
    #[arg(long, env = "DOCKFLARE_CF_REQUESTS_PER_5MIN", default_value_t = 1_100)]
    pub cf_requests_per_5min: u32,
    /// Zones of the built-in emulator in offline mode.
    #[arg(long, env = "DOCKFLARE_OFFLINE_ZONES", value_delimiter = ',', default_value = "example.test")]
    pub offline_zones: Vec<String>,
    /// Offline mode: where the built-in emulator listens, so that connector containers (the local
    /// edge) can reach it. Default 127.0.0.1:8788 and the same port on the Docker bridge's gateway
    /// (docker0; without one, every interface), except that a data dir keeps the port its tunnel
    /// tokens carry. A taken port falls back to a free one (and the tokens are renewed).
    #[arg(long, env = "DOCKFLARE_OFFLINE_EMULATOR_LISTEN")]
    pub offline_emulator_listen: Option<SocketAddr>,
    /// Offline mode: the emulator's URL as connector containers reach it (written into tunnel
    /// tokens). Default: http://host.docker.internal:PORT/client/v4.
    #[arg(long, env = "DOCKFLARE_OFFLINE_EMULATOR_URL")]
    pub offline_emulator_url: Option<String>,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Keep a valid join token in this file (0600), for agents started beside the master that
    /// read it from a shared volume or secret (--join-token-file): compose, a Swarm stack.
    #[arg(long, env = "DOCKFLARE_BOOTSTRAP_JOIN_TOKEN_FILE")]
    pub bootstrap_join_token_file: Option<PathBuf>,
    /// How many agents the bootstrap join token enrolls.
    #[arg(long, env = "DOCKFLARE_BOOTSTRAP_JOIN_TOKEN_USES", default_value_t = 16)]
    pub bootstrap_join_token_uses: u32,
    /// How long a bootstrap join token is valid (a new one is written at the next start after).
    #[arg(long, env = "DOCKFLARE_BOOTSTRAP_JOIN_TOKEN_TTL", default_value = "30d", value_parser = humantime::parse_duration)]
    pub bootstrap_join_token_ttl: Duration,
    /// Where to serve /healthz, /readyz and /metrics over plain HTTP ("off": nowhere). Keep it
    /// off the internet: it needs no credentials.
    #[arg(long, env = "DOCKFLARE_METRICS_LISTEN", default_value = "127.0.0.1:9180", value_parser = listen_or_off, global = true)]
    pub metrics_listen: ListenOrOff,
    /// Address of the web dashboard, or "off". Beyond loopback it is served over TLS with the
    /// master's server certificate. Users: `dockflare-master ui set-password`.
    #[arg(long, env = "DOCKFLARE_WEB_LISTEN", default_value = "127.0.0.1:8090", value_parser = listen_or_off)]
    pub web_listen: ListenOrOff,
    /// Change batches a WatchChanges client may fall behind by before it is cut off (it resumes
    /// from its last revision).
    #[arg(long, env = "DOCKFLARE_WATCH_BACKLOG", default_value_t = 1024)]
    pub watch_backlog: usize,
    /// Operator-defined Cloudflare Access policies, a TOML file of [[policy]] tables (name,
    /// decision, include, exclude, require, session_duration), which access labels name. Read at
    /// start (an invalid file stops the master) and on SIGHUP (an invalid file is logged and the
    /// previous policies stay). Its policies cannot be changed through the admin API.
    #[arg(long, env = "DOCKFLARE_ACCESS_POLICIES", value_name = "FILE")]
    pub access_policies: Option<PathBuf>,
    /// Tests only: the long-lived task (by its name in the logs, e.g. "reconciler") that fails on
    /// purpose once the master listens, to show that the process then exits.
    #[arg(long, hide = true)]
    pub test_fault_task: Option<String>,
}

/// Limits that keep one peer from taking what the fleet needs (README: "Limits").
#[derive(Args, Debug)]
pub struct LimitArgs {
    /// Open connections at most. Default: the open-files limit less 256.
    #[arg(long, env = "DOCKFLARE_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Open connections from one source address (IPv6: one /64) at most; more are closed at once.
    #[arg(long, env = "DOCKFLARE_MAX_CONNECTIONS_PER_SOURCE", default_value_t = 1024)]
    pub max_connections_per_source: usize,
    /// Longest wait for a new connection's TLS ClientHello.
    #[arg(long, env = "DOCKFLARE_TLS_HELLO_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub tls_hello_timeout: Duration,
    /// Longest the rest of a TLS handshake may take.
    #[arg(long, env = "DOCKFLARE_TLS_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub tls_handshake_timeout: Duration,
    /// A connection whose peer sends nothing for this long is closed (live peers answer the
    /// server's pings, sent every third of it, at most every 20 s).
    #[arg(long, env = "DOCKFLARE_IDLE_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// Largest message an agent may send, e.g. 4MiB (a status report of a whole host).
    #[arg(long, env = "DOCKFLARE_MAX_AGENT_MESSAGE", default_value = "4MiB", value_parser = byte_size)]
    pub max_agent_message: usize,
    /// Largest request message of a call without a valid client certificate (and of Enroll).
    #[arg(long, env = "DOCKFLARE_MAX_UNAUTHENTICATED_MESSAGE", default_value = "64KiB", value_parser = byte_size)]
    pub max_unauthenticated_message: usize,
    /// Calls without a valid client certificate in progress at once.
    #[arg(long, env = "DOCKFLARE_MAX_UNAUTHENTICATED_CALLS", default_value_t = 256)]
    pub max_unauthenticated_calls: usize,
    /// ... of which from one source address.
    #[arg(long, env = "DOCKFLARE_MAX_UNAUTHENTICATED_CALLS_PER_SOURCE", default_value_t = 16)]
    pub max_unauthenticated_calls_per_source: usize,
    /// What one agent's events may cost, in bytes per second (each event counts its size, at
    /// least 1 KiB); an agent over it is read more slowly, the others are not.
    #[arg(long, env = "DOCKFLARE_AGENT_EVENT_RATE", default_value = "256KiB", value_parser = byte_size)]
    pub agent_event_rate: usize,
    /// … and at once (a reconnect's full status report must fit).
    #[arg(long, env = "DOCKFLARE_AGENT_EVENT_BURST", default_value = "8MiB", value_parser = byte_size)]
    pub agent_event_burst: usize,
    /// Register calls in progress at once (a restarted master meets its whole fleet); more are
    /// refused at once with UNAVAILABLE and a retry hint (grpc-retry-pushback-ms) that spreads
    /// the agents' retries over the time the master needs to serve them.
    #[arg(long, env = "DOCKFLARE_MAX_CONCURRENT_REGISTRATIONS", default_value_t = dockflare_master::register_gate::DEFAULT_MAX_CONCURRENT_REGISTRATIONS)]
    pub max_concurrent_registrations: usize,
    /// Failed enrollments per source address and minute; then Enroll refuses it until the minute ends.
    #[arg(long, env = "DOCKFLARE_ENROLL_FAILURES_PER_MINUTE", default_value_t = 30)]
    pub enroll_failures_per_minute: u32,
}

/// Parses "4MiB", "64KiB", "512" (bytes).
pub fn byte_size(value: &str) -> Result<usize, String> {
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

pub fn secret(value: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(value.to_string()))
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
