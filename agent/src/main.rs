//! `dockflare-agent`: enrolls once with a join token, then keeps a session
//! with the master, applies its commands, and renews its certificate.

use anyhow::{bail, Context, Result};
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser};
use dockflare::v1::{DockerMode, NodeRole, RegisterRequest};
use dockflare_agent::applier::{self, Applier};
use dockflare_agent::connector::plan::PortPublish;
use dockflare_agent::connector::{
    ConnectorManager, ConnectorSettings, OfflineConnector, LOCAL_EDGE_IMAGE, LOCAL_EDGE_PORT,
};
use dockflare_agent::docker::engine::ModeChoice;
use dockflare_agent::docker::observe::Selection;
use dockflare_agent::docker::watcher::{self, WatchContext};
use dockflare_agent::enroll::{enroll, EnrollError};
use dockflare_agent::identity::AgentIdentity;
use dockflare_agent::inventory::Inventory;
use dockflare_agent::ledger::Ledger;
use dockflare_agent::outbox::{self, Outbox};
use dockflare_agent::session::{self, SessionContext};
use dockflare_agent::{renewal, tunnel_state};
use dockflare_common::join_token::JoinToken;
use dockflare_common::labels::LabelPrefixes;
use dockflare_observe::{listen_or_off, ListenOrOff};
use secrecy::{ExposeSecret, SecretString};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

/// Agent capabilities reported at Register.
const CAPABILITIES: &[&str] = &["commands.at_most_once", "events.resend", "tunnel_state.file"];

#[derive(Parser)]
#[command(
    name = "dockflare-agent",
    version,
    about = "DockFlare agent: reports a Docker host's labelled containers to the master and runs its tunnel connector."
)]
struct Args {
    /// Master URL(s), https://HOST:PORT, comma-separated; the agent fails over between them.
    #[arg(long = "master", env = "DOCKFLARE_MASTER_URL", value_delimiter = ',', required = true)]
    masters: Vec<String>,
    /// Join token for the first start (prefer the environment variable or --join-token-file:
    /// a command line is visible to every user of the host).
    #[arg(long, env = "DOCKFLARE_JOIN_TOKEN", hide_env_values = true, value_parser = secret)]
    join_token: Option<SecretString>,
    /// File holding the join token.
    #[arg(long, env = "DOCKFLARE_JOIN_TOKEN_FILE")]
    join_token_file: Option<PathBuf>,
    /// Directory for the agent's identity and state (created 0700).
    #[arg(long, env = "DOCKFLARE_DATA_DIR", default_value = "dockflare-agent-data")]
    data_dir: PathBuf,
    /// Name shown in the master (default: the host name).
    #[arg(long, env = "AGENT_DISPLAY_NAME")]
    display_name: Option<String>,
    /// Agents with the same tunnel group share one Cloudflare tunnel.
    #[arg(long, env = "DOCKFLARE_TUNNEL_GROUP", default_value = "")]
    tunnel_group: String,
    /// Log format: text or json.
    #[arg(long, env = "DOCKFLARE_LOG_FORMAT", default_value = "text")]
    log_format: LogFormat,
    /// Image of the tunnel connector.
    #[arg(long, env = "CLOUDFLARED_IMAGE", default_value = "cloudflare/cloudflared:2026.8.2")]
    cloudflared_image: String,
    /// Docker network the connector joins (created if missing; an attachable overlay in Swarm).
    /// Containers it routes to must be reachable on it.
    #[arg(long, env = "CLOUDFLARED_NETWORK_NAME", default_value = "cloudflare-net")]
    network: String,
    /// Publish a port of the connector container on the host, [HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|udp]
    /// (repeat or comma-separate; in Swarm published in host mode on this node). The local edge
    /// serves its ingress on 8080.
    #[arg(long = "connector-publish", env = "DOCKFLARE_CONNECTOR_PUBLISH", value_delimiter = ',', value_parser = PortPublish::parse)]
    connector_publish: Vec<PortPublish>,
    /// The connector of tunnels from an offline master (its built-in emulator, not Cloudflare),
    /// unless --cloudflared-image is given; it publishes --connector-publish, or 8080:8080.
    #[arg(long, env = "DOCKFLARE_OFFLINE_CONNECTOR_IMAGE", default_value = LOCAL_EDGE_IMAGE)]
    offline_connector_image: String,
    /// Connect enabled containers that are not on the connector network to it, aliased by their
    /// name, so that http://NAME:PORT resolves from the connector (standalone only).
    #[arg(long, env = "DOCKFLARE_ATTACH_NETWORK", default_value_t = true, action = clap::ArgAction::Set)]
    attach_network: bool,
    /// Docker mode: auto-detected, or forced.
    #[arg(long, env = "DOCKFLARE_MODE", default_value = "auto")]
    mode: ModeChoice,
    /// Custom label prefix honoured before "dockflare." and "cloudflare.tunnel.".
    #[arg(long, env = "LABEL_PREFIX", default_value = "")]
    label_prefix: String,
    /// Only report containers carrying this label (KEY=VALUE): several agents can share one engine.
    #[arg(long, env = "DOCKFLARE_SCOPE", value_parser = dockflare_agent::docker::observe::parse_scope)]
    scope: Option<(String, String)>,
    /// How often to relist all containers (events cover changes in between).
    #[arg(long, env = "DOCKFLARE_RELIST_INTERVAL", default_value = "60s", value_parser = humantime::parse_duration)]
    relist_interval: Duration,
    /// How often a Swarm manager relists services and tasks (task moves produce no events).
    #[arg(long, env = "DOCKFLARE_SWARM_RELIST_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    swarm_relist_interval: Duration,
    /// Longest wait between reconnect attempts (each wait is drawn from the
    /// upper half of its doubling step). Short, so a healed partition or a
    /// restarted master is noticed within seconds; raise it for very large
    /// fleets to spread reconnects over a longer window.
    #[arg(long, env = "DOCKFLARE_RECONNECT_MAX", default_value = "4s", value_parser = humantime::parse_duration)]
    reconnect_max: Duration,
    /// Where to serve /healthz, /readyz and /metrics over plain HTTP ("off": nowhere).
    #[arg(long, env = "DOCKFLARE_METRICS_LISTEN", default_value = DEFAULT_METRICS_LISTEN, value_parser = listen_or_off)]
    metrics_listen: ListenOrOff,
}

const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9181";

/// `dockflare-agent healthcheck`: asks the running agent's health endpoint (the images'
/// HEALTHCHECK; needs no shell). Exit 0 when it answers 200.
#[derive(Parser, Debug)]
#[command(name = "dockflare-agent healthcheck")]
struct HealthcheckArgs {
    #[arg(long, env = "DOCKFLARE_METRICS_LISTEN", default_value = DEFAULT_METRICS_LISTEN, value_parser = listen_or_off)]
    metrics_listen: ListenOrOff,
    /// `/healthz` (the process is sound) or `/readyz` (connected, Docker answers, connector ready).
    #[arg(long, default_value = "/healthz")]
    path: String,
}

fn healthcheck(args: &HealthcheckArgs) -> Result<()> {
    let addr = args.metrics_listen.0.context("--metrics-listen is off: there is no health endpoint")?;
    let body = dockflare_observe::probe::get(addr, &args.path, Duration::from_secs(5))?;
    print!("{body}");
    Ok(())
}

/// Serves /healthz, /readyz and /metrics (a task of the agent's JoinSet).
async fn start_health(
    addr: std::net::SocketAddr,
    status: dockflare_agent::status::AgentStatus,
    tasks: &mut JoinSet<&'static str>,
) -> Result<()> {
    let handle = dockflare_observe::recorder::install("agent", env!("CARGO_PKG_VERSION"))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for health and metrics (--metrics-listen)"))?;
    let local = listener.local_addr()?;
    tasks.spawn(named("metrics upkeep", dockflare_observe::recorder::upkeep(handle.clone())));
    tasks.spawn(named("health server", async move {
        let served = dockflare_observe::server::serve(
            listener,
            std::sync::Arc::new(status),
            Some(handle),
            std::future::pending(),
        );
        if let Err(error) = served.await {
            tracing::error!(message = "The health and metrics server failed.", %error);
        }
    }));
    tracing::info!(message = "Health and metrics listening.", addr = %local, paths = "/healthz /readyz /metrics");
    Ok(())
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum LogFormat {
    Text,
    Json,
}

fn secret(value: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(value.to_string()))
}

/// The connector of offline tunnels: the local edge on port 8080, unless the operator chose the
/// image (then that image, whatever the master's mode).
fn offline_connector(matches: &clap::ArgMatches, args: &Args) -> Option<OfflineConnector> {
    let chosen = |id: &str| matches.value_source(id).is_some_and(|source| source != ValueSource::DefaultValue);
    if chosen("cloudflared_image") {
        return None;
    }
    let publish = if chosen("connector_publish") {
        args.connector_publish.clone()
    } else {
        vec![PortPublish {
            host_ip: None,
            host_port: LOCAL_EDGE_PORT,
            container_port: LOCAL_EDGE_PORT,
            protocol: "tcp".into(),
        }]
    };
    Some(OfflineConnector { image: args.offline_connector_image.clone(), publish })
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,h2=warn,hyper=warn,tower=warn"));
    // Colours only on a terminal: a log file would get escape codes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_default()
}

fn join_token(args: &Args) -> Result<Option<JoinToken>> {
    let text = match (&args.join_token, &args.join_token_file) {
        (Some(token), _) => SecretString::from(token.expose_secret().to_string()),
        (None, Some(path)) => SecretString::from(
            std::fs::read_to_string(path).with_context(|| format!("reading the join token from {}", path.display()))?,
        ),
        (None, None) => return Ok(None),
    };
    JoinToken::parse(text.expose_secret()).map(Some).context("the join token is malformed")
}

/// The identity from the data dir, or a new one from enrollment.
async fn identity(args: &Args, display_name: &str, max_wait: Duration) -> Result<AgentIdentity> {
    if let Some(identity) = AgentIdentity::load(&args.data_dir)? {
        if identity.not_after > time::OffsetDateTime::now_utc() {
            tracing::info!(message = "Using the stored identity.", agent = %identity.agent_id, not_after = %identity.not_after);
            return Ok(identity);
        }
        tracing::warn!(message = "The stored certificate has expired; enrolling again.", agent = %identity.agent_id);
    }
    let Some(token) = join_token(args)? else {
        bail!("this agent is not enrolled yet: give a join token (DOCKFLARE_JOIN_TOKEN, --join-token-file or --join-token)");
    };
    let mut delay = Duration::from_millis(500);
    loop {
        let mut last_error = None;
        for url in &args.masters {
            match enroll(url, &token, display_name).await {
                Ok(identity) => {
                    identity.save(&args.data_dir)?;
                    tracing::info!(message = "Enrolled.", agent = %identity.agent_id, master = %url);
                    return Ok(identity);
                }
                Err(error @ (EnrollError::Refused(_) | EnrollError::CaMismatch(_) | EnrollError::BadUrl(_))) => {
                    return Err(error).context("enrollment failed");
                }
                Err(error) => last_error = Some(error),
            }
        }
        if let Some(error) = last_error {
            tracing::warn!(message = "Enrollment failed; retrying.", %error, retry_in_ms = delay.as_millis() as u64);
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(max_wait);
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Blocking-pool threads at most (name lookups, the few file writes tokio moves off the runtime).
const BLOCKING_THREADS: usize = 2;

fn main() -> Result<()> {
    if std::env::args().nth(1).as_deref() == Some("healthcheck") {
        return healthcheck(&HealthcheckArgs::parse_from(std::env::args().skip(1)));
    }
    // One thread runs the agent: it waits on I/O far more than it computes, and each thread that
    // allocates gets a malloc arena of its own that keeps what it once held (a runtime with a
    // worker per core held several megabytes more at 1,000 containers; README, Benchmarks).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS)
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run())
}

async fn run() -> Result<()> {
    let matches = Args::command().get_matches();
    let args = Args::from_arg_matches(&matches)?;
    init_logging(args.log_format);
    let _ = rustls::crypto::ring::default_provider().install_default();
    if matches.value_source("join_token") == Some(ValueSource::CommandLine) {
        tracing::warn!(message = "The join token was given on the command line, where every user of this host can read it; prefer DOCKFLARE_JOIN_TOKEN or --join-token-file.");
    }
    for url in &args.masters {
        dockflare_agent::enroll::host_and_port(url)?;
    }
    dockflare_common::secret_file::create_private_dir(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let display_name = args.display_name.clone().filter(|n| !n.trim().is_empty()).unwrap_or_else(host_name);
    // Every long-lived task is owned: one that ends (or panics) ends the agent, which says why and
    // exits non-zero for its supervisor (systemd, Docker, Swarm) to restart it.
    let mut tasks: JoinSet<&'static str> = JoinSet::new();
    let inventory = Inventory::default();
    let outbox = Outbox::new(outbox::DEFAULT_CAPACITY, inventory.clone());
    let status = dockflare_agent::status::AgentStatus::new(outbox.clone(), inventory.clone());
    // Before enrollment, so that an orchestrator sees a live process while it waits for a master.
    if let Some(addr) = args.metrics_listen.0 {
        start_health(addr, status.clone(), &mut tasks).await?;
    }

    let identity = identity(&args, &display_name, args.reconnect_max).await?;
    let agent_id = identity.agent_id.clone();
    let (identity_tx, identity_rx) = watch::channel(identity);

    let tunnel = tunnel_state::load(&args.data_dir)?;
    if let Some(state) = &tunnel {
        tracing::info!(message = "Loaded the desired tunnel state.", tunnel = %state.id, desired = ?state.desired_state);
    }
    let (tunnel_tx, tunnel_rx) = watch::channel(tunnel);
    let (commands_tx, commands_rx) = mpsc::channel(applier::QUEUE);
    let applier = Applier {
        data_dir: args.data_dir.clone(),
        ledger: Ledger::load(&args.data_dir)?,
        outbox: outbox.clone(),
        tunnel: tunnel_tx,
    };
    tasks.spawn(named("command applier", applier.run(commands_rx)));
    tasks.spawn(named("certificate renewal", renewal::run(args.masters.clone(), args.data_dir.clone(), identity_tx)));

    let registration = RegisterRequest {
        display_name: display_name.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        docker_mode: DockerMode::Standalone as i32,
        node_id: String::new(),
        node_role: NodeRole::Unspecified as i32,
        capabilities: CAPABILITIES.iter().map(|c| c.to_string()).collect(),
        hostname: host_name(),
        tunnel_group: args.tunnel_group.clone(),
        label_prefix: args.label_prefix.trim().to_string(),
        // Filled in from the engine ([`session::registration`]).
        swarm_cluster_id: String::new(),
        swarm_manager_node_ids: Vec::new(),
    };
    let (mode_tx, mode_rx) = watch::channel(None);
    tasks.spawn(named(
        "Docker watcher",
        watcher::run(WatchContext {
            selection: Selection { prefixes: LabelPrefixes::new(Some(&args.label_prefix)), scope: args.scope.clone() },
            mode_choice: args.mode,
            inventory: inventory.clone(),
            outbox: outbox.clone(),
            relist_every: args.relist_interval,
            swarm_relist_every: args.swarm_relist_interval,
            mode: mode_tx,
            attach_network: args.attach_network.then(|| args.network.clone()),
            status: status.clone(),
        }),
    ));
    // In a stack, the connector joins it: `docker stack rm` removes it with the agent.
    let stack_namespace =
        match tokio::time::timeout(Duration::from_secs(5), dockflare_agent::docker::engine::connect()).await {
            Ok(Ok(docker)) => dockflare_agent::docker::engine::own_stack_namespace(&docker).await,
            _ => None,
        };
    if let Some(namespace) = &stack_namespace {
        tracing::info!(message = "Running in a stack: the connector joins it.", stack = %namespace);
    }
    tasks.spawn(named(
        "connector manager",
        ConnectorManager {
            settings: ConnectorSettings {
                image: args.cloudflared_image.clone(),
                network: args.network.clone(),
                publish: args.connector_publish.clone(),
                offline: offline_connector(&matches, &args),
                stack_namespace,
            },
            agent_id: agent_id.clone(),
            desired: tunnel_rx,
            mode: mode_rx.clone(),
            outbox: outbox.clone(),
            status: status.clone(),
            last_error: Default::default(),
        }
        .run(),
    ));
    // Register with the host's real mode when Docker answers quickly.
    let mut first_mode = mode_rx.clone();
    let _ = tokio::time::timeout(Duration::from_secs(5), first_mode.wait_for(Option::is_some)).await;
    let context = SessionContext {
        master_urls: args.masters.clone(),
        registration,
        host_mode: mode_rx,
        identity: identity_rx,
        outbox,
        inventory,
        commands: commands_tx,
        backoff: (Duration::from_millis(200), args.reconnect_max),
        status,
    };
    tokio::select! {
        _ = session::run(context) => {}
        _ = shutdown_signal() => tracing::info!(message = "Shutting down."),
        ended = tasks.join_next() => {
            let reason = match ended {
                Some(Ok(task)) => format!("the {task} task stopped"),
                Some(Err(error)) if error.is_panic() => format!("a task panicked: {error}"),
                Some(Err(error)) => format!("a task was cancelled: {error}"),
                None => "no task is running".to_string(),
            };
            tracing::error!(message = "An agent task ended unexpectedly; exiting.", %reason);
            anyhow::bail!("{reason}");
        }
    }
    Ok(())
}

/// A task that answers its name when it ends.
async fn named(name: &'static str, task: impl std::future::Future<Output = ()>) -> &'static str {
    task.await;
    name
}
