//! Starting the master: PKI, store, sessions, the event writer, the
//! liveness check, and the gRPC server (AgentService, AdminService, health,
//! reflection v1 and v1alpha) on one mutual-TLS port.

use crate::admin_service::AdminApi;
use crate::agent_service::AgentApi;
use crate::auth::Authenticator;
use crate::call_limits::{CallLimits, CallLimitsLayer};
use crate::command_seal::CommandSeal;
use crate::commands::CommandQueue;
use crate::event_writer::EventWriter;
use crate::fanout::Fanout;
use crate::listener::ConnectionLimits;
use crate::pki_files::{self, PkiOptions};
use crate::reconcile::{ReconcileSettings, Reconciler, ReconcilerHandle};
use crate::sessions::Sessions;
use crate::state::{MasterState, ProtocolSettings};
use crate::store::{self, Store};
use crate::supervisor::{Exits, Supervisor};
use crate::tls;
use dockflare::v1::admin_service_server::AdminServiceServer;
use dockflare::v1::agent_service_server::AgentServiceServer;
use dockflare_cloudflare::client::{CloudflareClient, CloudflareSettings};
use dockflare_emulator::{Emulator, EmulatorConfig};
use secrecy::ExposeSecret;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// HTTP/2 streams one connection may have open (an agent needs three).
const MAX_STREAMS_PER_CONNECTION: u32 = 100;

/// Everything `start` needs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `None`: SQLite in the data dir.
    pub database_url: Option<String>,
    pub pki: PkiOptions,
    pub settings: ProtocolSettings,
    pub cloudflare: CloudflareOptions,
    /// Which connections the master takes, and for how long.
    pub connections: ConnectionLimits,
    /// Message sizes, unauthenticated calls, failed enrollments.
    pub calls: CallLimits,
    /// Where `/healthz`, `/readyz` and `/metrics` are served (`None`: nowhere).
    pub metrics_listen: Option<SocketAddr>,
    /// Tests only (`--test-fault-task`): the long-lived task that fails once the master listens.
    pub test_fault_task: Option<String>,
}

/// How the master reaches Cloudflare.
#[derive(Debug, Clone)]
pub struct CloudflareOptions {
    /// `None`: offline mode, against the built-in emulator.
    pub api: Option<CloudflareSettings>,
    /// Zones the built-in emulator has in offline mode.
    pub offline_zones: Vec<String>,
    /// Where the built-in emulator listens in offline mode (containers reach it: the local edge
    /// reads its configuration there). `None`: [`DEFAULT_OFFLINE_EMULATOR_LISTEN`], except that a
    /// data dir first takes back the port its tunnel tokens carry. A taken port falls back to a
    /// free one (and the tokens are renewed).
    pub offline_emulator_listen: Option<SocketAddr>,
    /// The emulator's API URL as connector containers reach it, written as `"e"` into tunnel
    /// tokens. `None`: `http://host.docker.internal:PORT/client/v4`.
    pub offline_emulator_url: Option<String>,
    pub reconcile: ReconcileSettings,
}

/// Why the master could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("data dir {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Pki(#[from] pki_files::PkiFilesError),
    #[error(transparent)]
    Tls(#[from] tls::TlsSetupError),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("reflection: {0}")]
    Reflection(String),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("command log: {0}")]
    Seal(String),
    #[error("Cloudflare client: {0}")]
    Cloudflare(String),
    #[error("built-in Cloudflare emulator: {0}")]
    Emulator(String),
    #[error(transparent)]
    Health(#[from] crate::health::HealthError),
}

/// A started master.
pub struct RunningMaster {
    pub local_addr: SocketAddr,
    /// The built-in Cloudflare emulator, in offline mode.
    pub emulator: Option<(Emulator, SocketAddr)>,
    pub state: Arc<MasterState>,
    pub served: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
    /// The first long-lived task to end ([`crate::supervisor`]): the process should exit then.
    pub exits: Exits,
    /// Becomes true when the shutdown signal has come.
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

/// Connects to the database, retrying while it is unreachable (a PostgreSQL
/// that is still starting, say); other errors are final.
pub async fn connect_store(url: &str) -> Result<Store, store::StoreError> {
    let mut delay = Duration::from_millis(200);
    loop {
        match Store::connect(url).await {
            Ok(store) => return Ok(store),
            Err(error) if error.is_unavailable() => {
                tracing::warn!(message = "Database unreachable; retrying.", url = %store::redact_url(url), %error, retry_in_ms = delay.as_millis() as u64);
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(error) => return Err(error),
        }
    }
}

/// The database URL the options select.
pub fn database_url(options: &ServeOptions) -> String {
    options.database_url.clone().unwrap_or_else(|| store::default_sqlite_url(&options.data_dir))
}

/// Starts the master; it serves until `shutdown` completes.
pub async fn start(
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<RunningMaster, StartError> {
    dockflare_common::secret_file::create_private_dir(&options.data_dir)
        .map_err(|source| StartError::DataDir { path: options.data_dir.clone(), source })?;
    let pki = pki_files::load_or_create(&options.pki, time::OffsetDateTime::now_utc())?;
    let chain_verifier = tls::client_chain_verifier(pki.ca.certificate_der())?;
    let tls_config = tls::server_config(
        &pki.server_cert_pem,
        pki.server_key_pem.expose_secret(),
        pki.ca.certificate_der(),
        chain_verifier.clone(),
    )?;

    let url = database_url(&options);
    let store = connect_store(&url).await?;
    tracing::info!(message = "Database ready.", backend = ?store.backend(), url = %store::redact_url(&url));

    let (mut supervisor, exits) = Supervisor::new();
    let (listening_tx, listening) = tokio::sync::watch::channel(false);
    if let Some(task) = &options.test_fault_task {
        tracing::warn!(message = "Test fault armed: this task fails once the master listens.", %task);
        supervisor.inject_fault(task.clone(), listening);
    }
    let sessions = Sessions::default();
    let (reconciler, reconciler_inbox) = ReconcilerHandle::channel();
    let fanout = Fanout::new(store.clone(), sessions.clone(), reconciler.clone());
    let seal = CommandSeal::derive(pki.ca.private_key_der()).map_err(|e| StartError::Seal(e.to_string()))?;
    let commands = CommandQueue::prepare(store.clone(), fanout.clone(), seal)
        .await
        .map_err(|e| StartError::Seal(e.to_string()))?;
    let (client, emulator) = cloudflare_client(&options.cloudflare, &options.data_dir, &store, &supervisor).await?;
    let installation_id = store.setting_or_init("installation_id", &uuid::Uuid::new_v4().simple().to_string()).await?;
    let leader = crate::cluster::leadership(&store, &url, &supervisor);
    Reconciler::new(
        store.clone(),
        std::sync::Arc::new(commands.clone()),
        client,
        options.cloudflare.reconcile.clone(),
        installation_id,
        leader.clone(),
    )
    .spawn_with(reconciler_inbox, &supervisor);
    if store.backend() == store::Backend::Postgres {
        crate::cluster::spawn_listener(url.clone(), sessions.clone(), reconciler.clone(), &supervisor);
    }
    let events = EventWriter::spawn(store.clone(), sessions.clone(), fanout.clone(), &supervisor);
    supervisor.spawn("liveness", crate::liveness::run(store.clone(), options.settings.heartbeat_timeout));
    supervisor.spawn("event retention", crate::retention::run(store.clone(), options.settings.event_retention));
    let state = Arc::new(MasterState {
        store,
        sessions,
        commands,
        events,
        ca: pki.ca,
        auth: Authenticator::new(chain_verifier),
        settings: options.settings.clone(),
        fanout,
        route_quota: options.cloudflare.reconcile.max_routes_per_agent,
        agent_budget: crate::agent_budget::AgentBudget::new(
            options.calls.agent_event_rate,
            options.calls.agent_event_burst,
        ),
        enroll_guard: crate::enroll_guard::EnrollGuard::new(options.calls.enroll_failures_per_minute),
    });

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<AgentServiceServer<AgentApi>>().await;
    health_reporter.set_serving::<AdminServiceServer<AdminApi>>().await;
    let reflection = |builder: tonic_reflection::server::Builder<'static>| {
        builder
            .register_encoded_file_descriptor_set(dockflare::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection(tonic_reflection::server::Builder::configure())
        .build_v1()
        .map_err(|e| StartError::Reflection(e.to_string()))?;
    let reflection_v1alpha = reflection(tonic_reflection::server::Builder::configure())
        .build_v1alpha()
        .map_err(|e| StartError::Reflection(e.to_string()))?;

    let listener = TcpListener::bind(options.listen)
        .await
        .map_err(|source| StartError::Listen { addr: options.listen, source })?;
    let local_addr = listener.local_addr().map_err(|source| StartError::Listen { addr: options.listen, source })?;
    let incoming = crate::listener::incoming(listener, tls_config, options.connections.clone(), &supervisor);

    let router = tonic::transport::Server::builder()
        // Pings keep live connections talking, so the listener's idle timeout closes only silent ones.
        .http2_keepalive_interval(Some(keepalive_interval(options.connections.idle_timeout)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .max_concurrent_streams(Some(MAX_STREAMS_PER_CONNECTION))
        .tcp_nodelay(true)
        .layer(CallLimitsLayer::new(options.calls.clone(), state.auth.clone()))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            AgentServiceServer::new(AgentApi::new(state.clone()))
                .max_decoding_message_size(options.calls.max_agent_message),
        )
        .add_service(AdminServiceServer::new(AdminApi::new(state.clone())));
    let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
    let (supervisor_for_shutdown, sessions_for_shutdown) = (supervisor.clone(), state.sessions.clone());
    let shutdown = async move {
        shutdown.await;
        tracing::info!(message = "Shutting down: ending the agents' streams, then storing what was received.");
        supervisor_for_shutdown.stopping(); // before tonic lets go of the listener: its end is expected now
        stopping_tx.send_replace(true);
        // Long-lived streams would hold the graceful shutdown open: end them (agents reconnect).
        sessions_for_shutdown.end_all();
    };
    let served = tokio::spawn(router.serve_with_incoming_shutdown(incoming, shutdown));
    tracing::info!(
        message = "Master listening.",
        addr = %local_addr,
        ca = %pki.dir.join("ca.crt").display(),
        admin_cert = %pki.dir.join("admin.crt").display(),
    );
    if let Some(addr) = options.metrics_listen {
        let health = crate::health::MasterHealth { state: state.clone(), supervisor, leader, grpc: local_addr };
        crate::health::start(addr, health, stopping.clone()).await?;
    }
    listening_tx.send_replace(true);
    Ok(RunningMaster { local_addr, emulator, state, served, exits, stopping })
}

/// How often the server pings a connection: often enough that a live peer's answer always
/// comes within the idle timeout.
fn keepalive_interval(idle_timeout: Duration) -> Duration {
    (idle_timeout / 3).clamp(Duration::from_millis(100), Duration::from_secs(20))
}

/// Where an offline master keeps its emulated Cloudflare account, in the data dir.
pub const OFFLINE_STATE_FILE: &str = "offline-cloudflare.json";

/// The offline emulator's API token (0600, rewritten at every start): its `/__emulator/` pages
/// need it, e.g. `curl -H "Authorization: Bearer $(cat dockflare-data/offline-emulator.token)" …`.
pub const OFFLINE_EMULATOR_TOKEN_FILE: &str = "offline-emulator.token";

/// Where the built-in emulator listens by default in offline mode: loopback (the master, and the
/// operator's curl), and the same port on the Docker bridge's gateway, which is where containers
/// reach `host.docker.internal` — not on every interface. Without a Docker bridge on this host,
/// every interface (its pages need the API token; the connector endpoint a tunnel token).
pub const DEFAULT_OFFLINE_EMULATOR_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8788);

/// The Docker bridge's gateway address on this host (`docker0`), where containers reach the
/// host as `host.docker.internal`.
fn docker_bridge_gateway() -> Option<std::net::IpAddr> {
    let interfaces = if_addrs::get_if_addrs().ok()?;
    interfaces.into_iter().find(|i| i.name == "docker0" && i.ip().is_ipv4()).map(|i| i.ip())
}

/// The addresses to try for the emulator, in order: the configured one alone when set;
/// otherwise the port the saved tokens carry (when they carry the default URL form), then the
/// default port, on `host`. Pure.
fn emulator_candidates(
    configured: Option<SocketAddr>,
    url_configured: bool,
    saved_url: Option<&str>,
    host: std::net::IpAddr,
) -> Vec<SocketAddr> {
    if let Some(listen) = configured {
        return vec![listen];
    }
    let default = SocketAddr::new(host, DEFAULT_OFFLINE_EMULATOR_LISTEN.port());
    let remembered = saved_url
        .filter(|_| !url_configured)
        .and_then(|url| url.strip_prefix("http://host.docker.internal:"))
        .and_then(|rest| rest.split('/').next())
        .and_then(|port| port.parse::<u16>().ok())
        .filter(|port| *port != 0 && *port != default.port())
        .map(|port| SocketAddr::new(default.ip(), port));
    remembered.into_iter().chain([default]).collect()
}

/// The Cloudflare client: the real API, or — without an API token — the
/// built-in emulator started here (offline mode), its account kept in
/// `data_dir/`[`OFFLINE_STATE_FILE`] across restarts, on the address its
/// tokens carry when it can. When the saved account's tokens carry another
/// address, every agent's tunnel assignment is cleared *before* the file
/// records the new one (so a crash in between cannot lose the renewal): the
/// reconciler then sends each a start_tunnel with a token that reaches it.
async fn cloudflare_client(
    options: &CloudflareOptions,
    data_dir: &Path,
    store: &Store,
    supervisor: &Supervisor,
) -> Result<(CloudflareClient, Option<(Emulator, SocketAddr)>), StartError> {
    if let Some(settings) = &options.api {
        let client = CloudflareClient::new(settings.clone()).map_err(|e| StartError::Cloudflare(e.to_string()))?;
        tracing::info!(message = "Cloudflare API configured.", url = %settings.api_url, account = %settings.account_id);
        return Ok((client, None));
    }
    let token = uuid::Uuid::new_v4().simple().to_string();
    let config = EmulatorConfig {
        api_tokens: vec![token.clone()],
        zones: options.offline_zones.clone(),
        ..EmulatorConfig::default()
    };
    let account_id = config.account_id.clone();
    let base_path = config.base_path.clone();
    let state_file = data_dir.join(OFFLINE_STATE_FILE);
    let saved_url = dockflare_emulator::saved_public_url(&state_file);
    // Loopback plus the Docker bridge's gateway; every interface only without a Docker bridge.
    let gateway = if options.offline_emulator_listen.is_none() { docker_bridge_gateway() } else { None };
    let host = if gateway.is_some() || options.offline_emulator_listen.is_some() {
        DEFAULT_OFFLINE_EMULATOR_LISTEN.ip()
    } else {
        std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
    };
    let candidates = emulator_candidates(
        options.offline_emulator_listen,
        options.offline_emulator_url.is_some(),
        saved_url.as_deref(),
        host,
    );
    let (listener, addr) =
        dockflare_emulator::bind_public(&candidates).await.map_err(|e| StartError::Emulator(e.to_string()))?;
    let bridge_listener = match gateway {
        Some(ip) => match TcpListener::bind(SocketAddr::new(ip, addr.port())).await {
            Ok(listener) => Some(listener),
            Err(error) => {
                tracing::warn!(message = "The emulator cannot listen on the Docker bridge: connectors in containers will not reach it; set --offline-emulator-listen.", bridge = %ip, port = addr.port(), %error);
                None
            }
        },
        None if options.offline_emulator_listen.is_none() => {
            tracing::warn!(message = "No Docker bridge (docker0) on this host: the emulator listens on every interface (its pages need its API token; the connector endpoint a tunnel token). Set --offline-emulator-listen to choose.", port = addr.port());
            None
        }
        None => None,
    };
    let public_url = options
        .offline_emulator_url
        .clone()
        .unwrap_or_else(|| format!("http://host.docker.internal:{}{base_path}", addr.port()));
    if state_file.exists() && saved_url.as_deref() != Some(public_url.as_str()) {
        let agents = store.clear_assigned_tunnels().await?;
        tracing::warn!(
            message = "Connectors get new tunnel tokens (the emulator's address changed).",
            previous = saved_url.as_deref().unwrap_or("unknown (not recorded)"),
            now = %public_url,
            agents,
        );
    }
    let emulator = Emulator::open(EmulatorConfig {
        public_url: Some(public_url.clone()),
        state_file: Some(state_file.clone()),
        inspect_token_required: true,
        ..config
    })
    .map_err(|e| StartError::Emulator(e.to_string()))?;
    if emulator.restored() {
        let snapshot = emulator.snapshot();
        tracing::info!(
            message = "Restored the offline Cloudflare account.",
            file = %state_file.display(),
            tunnels = snapshot.tunnels.iter().filter(|t| t.deleted_at.is_none()).count(),
            deleted_tunnels = snapshot.tunnels.iter().filter(|t| t.deleted_at.is_some()).count(),
            zones = snapshot.zones.len(),
            records = snapshot.dns_records.len(),
        );
    }
    let token_file = data_dir.join(OFFLINE_EMULATOR_TOKEN_FILE);
    dockflare_common::secret_file::write_secret_file(&token_file, token.as_bytes())
        .map_err(|e| StartError::Emulator(format!("writing {}: {e}", token_file.display())))?;
    let mut listening = listener.local_addr().map_or_else(|_| addr.to_string(), |a| a.to_string());
    let serving = emulator.clone();
    supervisor.spawn("offline Cloudflare emulator", async move {
        if let Err(error) = serving.serve(listener).await {
            tracing::error!(message = "The built-in Cloudflare emulator stopped.", %error);
        }
    });
    if let Some(bridge) = bridge_listener {
        if let Ok(bound) = bridge.local_addr() {
            listening = format!("{listening} and {bound}");
        }
        let router = emulator.router();
        supervisor.spawn("offline Cloudflare emulator (Docker bridge)", async move {
            if let Err(error) = axum::serve(bridge, router).await {
                tracing::error!(message = "The built-in Cloudflare emulator stopped on the Docker bridge.", %error);
            }
        });
    }
    let api_url = format!("http://{addr}{base_path}");
    tracing::warn!(
        message = "No CF_API_TOKEN: running OFFLINE. Tunnels, ingress and DNS go to the built-in Cloudflare emulator; nothing reaches Cloudflare.",
        emulator = %api_url,
        zones = %options.offline_zones.join(","),
    );
    tracing::info!(
        message = "Connectors reach the built-in emulator at its public URL (the \"e\" of tunnel tokens); the local edge reads its configuration there.",
        public_url = %public_url,
        %listening,
        wanted = %candidates.iter().map(ToString::to_string).collect::<Vec<_>>().join(" or "),
    );
    // The emulator has no rate limit to respect.
    let settings = CloudflareSettings { api_url, token: token.into(), account_id, requests_per_5_minutes: 1_000_000 };
    let client = CloudflareClient::new(settings).map_err(|e| StartError::Cloudflare(e.to_string()))?;
    Ok((client, Some((emulator, addr))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_emulator_takes_back_the_port_its_tokens_carry_unless_told_otherwise() {
        let host = DEFAULT_OFFLINE_EMULATOR_LISTEN.ip();
        let default = DEFAULT_OFFLINE_EMULATOR_LISTEN;
        let at = |port: u16| SocketAddr::new(host, port);
        assert_eq!(emulator_candidates(None, false, None, host), vec![default]);
        let saved = Some("http://host.docker.internal:41669/client/v4");
        assert_eq!(emulator_candidates(None, false, saved, host), vec![at(41669), default]);
        assert_eq!(
            emulator_candidates(None, false, Some("http://host.docker.internal:8788/client/v4"), host),
            vec![default]
        );
        // An explicit listen address, or a URL of the operator's: theirs, not the memory.
        let explicit = SocketAddr::from(([127, 0, 0, 1], 9000));
        assert_eq!(emulator_candidates(Some(explicit), false, saved, host), vec![explicit]);
        assert_eq!(emulator_candidates(None, true, saved, host), vec![default]);
        assert_eq!(emulator_candidates(None, false, Some("http://10.0.0.5:9000/client/v4"), host), vec![default]);
        // Without a Docker bridge: every interface.
        let any = std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
        assert_eq!(emulator_candidates(None, false, None, any), vec![SocketAddr::new(any, 8788)]);
    }
}
