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
use crate::reconcile::{Reconciler, ReconcilerHandle};
use crate::sessions::Sessions;
use crate::state::{MasterState, ProtocolSettings};
use crate::store::{self, Store};
use crate::supervisor::{Exits, Supervisor};
use crate::tls;
use dockflare::v1::admin_service_server::AdminServiceServer;
use dockflare::v1::agent_service_server::AgentServiceServer;
use dockflare_emulator::Emulator;
use secrecy::ExposeSecret;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
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
    /// A join token kept valid in a file, for agents started beside the master.
    pub bootstrap_token: Option<crate::bootstrap_token::BootstrapToken>,
    /// Where `/healthz`, `/readyz` and `/metrics` are served (`None`: nowhere).
    pub metrics_listen: Option<SocketAddr>,
    /// Tests only (`--test-fault-task`): the long-lived task that fails once the master listens.
    pub test_fault_task: Option<String>,
    /// Where the web dashboard listens (`None`: off).
    pub web_listen: Option<SocketAddr>,
    /// The operator's Access policy file (`--access-policies`), loaded at start and on SIGHUP.
    pub access_policies: Option<PathBuf>,
    /// Change batches a watcher may fall behind by ([`crate::watch::WatchHub::new`]).
    pub watch_backlog: usize,
}

pub use crate::cloudflare_setup::{CloudflareOptions, SetupError};

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
    #[error(transparent)]
    Cloudflare(#[from] SetupError),
    #[error(transparent)]
    Health(#[from] crate::health::HealthError),
    #[error(transparent)]
    Bootstrap(#[from] crate::bootstrap_token::BootstrapError),
    #[error(transparent)]
    Web(#[from] crate::web::WebError),
    #[error(transparent)]
    AccessPolicies(#[from] crate::access_policy_file::LoadError),
    #[error("cannot watch for SIGHUP (access policy reloads): {0}")]
    Signal(std::io::Error),
    #[error("cannot start the {task} thread: {source}")]
    Thread { task: &'static str, source: std::io::Error },
    #[error("recording the master's admin identity: {0}")]
    AdminIdentity(#[from] crate::admin_identities::AdmissionError),
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
    if let Some(bootstrap) = &options.bootstrap_token {
        crate::bootstrap_token::ensure(&store, pki.ca.certificate_der(), bootstrap).await?;
    }

    if let Some(path) = &options.access_policies {
        crate::access_policy_file::load(&store, path).await?;
    }
    let policy_reloads =
        crate::access_policy_file::reloads(options.access_policies.clone()).map_err(StartError::Signal)?;

    let (mut supervisor, exits) = Supervisor::new();
    let (listening_tx, listening) = tokio::sync::watch::channel(false);
    if let Some(task) = &options.test_fault_task {
        tracing::warn!(message = "Test fault armed: this task fails once the master listens.", %task);
        supervisor.inject_fault(task.clone(), listening);
    }
    let sessions = Sessions::default();
    let (reconciler, reconciler_inbox) = ReconcilerHandle::channel();
    let watch = crate::watch::WatchHub::new(options.watch_backlog);
    let announcer = crate::cluster::CommandAnnouncer::spawn(&store, &supervisor);
    let fanout = Fanout::new(store.clone(), sessions.clone(), reconciler.clone(), watch.clone(), announcer);
    let seal = CommandSeal::derive(pki.ca.private_key_der()).map_err(|e| StartError::Seal(e.to_string()))?;
    let commands = CommandQueue::prepare(store.clone(), fanout.clone(), seal)
        .await
        .map_err(|e| StartError::Seal(e.to_string()))?;
    let (client, emulator) =
        crate::cloudflare_setup::cloudflare_client(&options.cloudflare, &options.data_dir, &store, &supervisor).await?;
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
    let events = EventWriter::spawn(store.clone(), sessions.clone(), fanout.clone(), &supervisor)
        .map_err(|source| StartError::Thread { task: "event writer", source })?;
    let registration_writer = crate::registration_writer::RegistrationWriter::spawn(store.clone(), &supervisor);
    supervisor.spawn("access policy reloads", policy_reloads.run(store.clone(), fanout.clone()));
    let admins = crate::admin_identities::AdminRegistry::new(store.clone());
    let own_admin = std::fs::read_to_string(pki.dir.join("admin.crt"))
        .map_err(|source| StartError::DataDir { path: pki.dir.join("admin.crt"), source })?;
    crate::admin_identities::record_master_identity(&store, &own_admin).await?;
    supervisor.spawn("admin revocations", admins.clone().follow_revocations());
    let quota = options.cloudflare.reconcile.max_routes_per_agent;
    supervisor.spawn("watch feed", crate::watch::feed::run(store.clone(), watch.clone(), leader.clone(), quota));
    supervisor.spawn(
        "command stream watchdog",
        sessions.clone().end_unread_command_streams_every(options.settings.command_send_timeout),
    );
    supervisor.spawn("liveness", crate::liveness::run(store.clone(), options.settings.heartbeat_timeout));
    supervisor.spawn("event retention", crate::retention::run(store.clone(), options.settings.event_retention));
    let state = Arc::new(MasterState {
        store,
        sessions,
        commands,
        events,
        ca: pki.ca,
        auth: Authenticator::new(chain_verifier),
        admins,
        watch,
        settings: options.settings.clone(),
        fanout,
        route_quota: options.cloudflare.reconcile.max_routes_per_agent,
        agent_budget: crate::agent_budget::AgentBudget::new(
            options.calls.agent_event_rate,
            options.calls.agent_event_burst,
        ),
        enroll_guard: crate::enroll_guard::EnrollGuard::new(options.calls.enroll_failures_per_minute),
        registrations: crate::register_gate::RegisterGate::new(options.calls.max_concurrent_registrations),
        registration_writer,
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
        .layer(crate::admin_access::AdminAccessLayer::new(state.auth.clone(), state.admins.clone()))
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
    let watch_for_shutdown = state.watch.clone();
    let shutdown = async move {
        shutdown.await;
        tracing::info!(message = "Shutting down: ending the agents' streams, then storing what was received.");
        supervisor_for_shutdown.stopping(); // before tonic lets go of the listener: its end is expected now
        stopping_tx.send_replace(true);
        // Long-lived streams would hold the graceful shutdown open: end them (agents reconnect).
        sessions_for_shutdown.end_all();
        watch_for_shutdown.close();
    };
    let served = tokio::spawn(router.serve_with_incoming_shutdown(incoming, shutdown));
    tracing::info!(
        message = "Master listening.",
        addr = %local_addr,
        ca = %pki.dir.join("ca.crt").display(),
        admin_cert = %pki.dir.join("admin.crt").display(),
    );
    let leader_for_web = leader.clone();
    if let Some(addr) = options.metrics_listen {
        let health = crate::health::MasterHealth { state: state.clone(), supervisor, leader, grpc: local_addr };
        crate::health::start(addr, health, stopping.clone()).await?;
    }
    if let Some(addr) = options.web_listen {
        let facts = crate::web::MasterFacts {
            offline: options.cloudflare.api.is_none(),
            emulator: emulator.as_ref().map(|(_, addr)| *addr),
            leader: Some(leader_for_web),
        };
        crate::web::start(
            state.clone(),
            facts,
            addr,
            &pki.server_cert_pem,
            pki.server_key_pem.expose_secret(),
            stopping.clone(),
        )
        .await?;
    }
    listening_tx.send_replace(true);
    Ok(RunningMaster { local_addr, emulator, state, served, exits, stopping })
}

/// How often the server pings a connection: often enough that a live peer's answer always
/// comes within the idle timeout.
fn keepalive_interval(idle_timeout: Duration) -> Duration {
    (idle_timeout / 3).clamp(Duration::from_millis(100), Duration::from_secs(20))
}
