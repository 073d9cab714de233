//! A Cloudflare API v4 emulator: the tunnel, configuration, zone, DNS, token
//! (with permission scopes), Access (applications, reusable and app-scoped policies,
//! tags, identity providers, the organization) and account-member endpoints DockFlare uses, in memory, with the envelope,
//! pagination, filters and error codes of `shared/reference/cloudflare-api.md`
//! (§11 is the checklist). The master runs it in-process in offline mode;
//! tests point the real HTTP client at it.
//!
//! Besides the API (under [`EmulatorConfig::base_path`], default
//! `/client/v4`) it serves an unauthenticated inspection API under
//! `/__emulator/` — state snapshot, seeding "dashboard" edits, request
//! counters and log, fault injection, connector health — mirrored by methods
//! on [`Emulator`] for in-process tests — and the connector endpoint
//! `/__emulator/connector/configuration` the local edge (a cloudflared
//! stand-in) reads its tunnel's configuration from, authenticated by the
//! tunnel token (see `connector`).
//!
//! Layout: `state` (the data and its rules), `tunnels`, `dns`, `access` (applications,
//! policies, tags, identity providers, organization, members) and
//! `ingress` (cloudflared's validation) for the endpoints, `http` (envelope,
//! errors, auth and traffic middleware), `permissions` (what each token may call), `faults` (injection, counters, log),
//! `inspect` (`/__emulator/`), `connector` (what connectors call), `persist` (the account saved
//! in [`EmulatorConfig::state_file`] after every change, restored by [`Emulator::open`]).
//!
//! **Invariant:** the state lives behind `std::sync::Mutex`es that are never
//! held across an `.await`; a poisoned lock is recovered, never unwrapped.

mod access;
mod access_edge;
mod connector;
mod dns;
mod faults;
mod http;
pub mod ingress;
mod inspect;
mod permissions;
mod persist;
mod state;
mod tunnels;

pub use faults::{FaultSpec, RequestCount, RequestLogEntry, RequestReport};
pub use http::ApiError;
pub use inspect::{ConnectorsRequest, EmulatorInfo, IdentityProviderSeed};
pub use permissions::{Permission, RestrictedToken};
pub use persist::{saved_public_url, StateFileError};
pub use state::{Snapshot, ZoneDnsRecord};

use axum::Router;
use dockflare_cloudflare::types::{
    DnsRecord, DnsRecordRequest, IdentityProvider, Tunnel, TunnelConfig, TunnelConfiguration, Zone,
};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The default API base path, as on `https://api.cloudflare.com/client/v4`.
pub const DEFAULT_BASE_PATH: &str = "/client/v4";
/// The default API token. Not a secret: the emulator guards nothing.
pub const DEFAULT_TOKEN: &str = "emulator-token";
/// The default account id.
pub const DEFAULT_ACCOUNT_ID: &str = "0123456789abcdef0123456789abcdef";
/// Where the inspection API lives (never under the base path).
pub const INSPECT_PREFIX: &str = "/__emulator";
/// The default Zero Trust team name: the organization's `auth_domain` is
/// `dockflare-emulator.cloudflareaccess.com`.
pub const DEFAULT_ACCESS_TEAM: &str = "dockflare-emulator";
/// The default email of the account's one member.
pub const DEFAULT_MEMBER_EMAIL: &str = "owner@example.com";

/// What the emulated account holds at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulatorConfig {
    /// The one account (32 hex) whose paths are served.
    pub account_id: String,
    /// Bearer tokens accepted with every permission (each verifies as `active`).
    pub api_tokens: Vec<String>,
    /// Bearer tokens accepted with only some permissions (they verify as `active` too); a call
    /// outside them gets 403/10000 "Authentication error". Not accepted by `/__emulator/` when
    /// [`EmulatorConfig::inspect_token_required`] is set.
    pub restricted_tokens: Vec<RestrictedToken>,
    /// The Zero Trust team: `GET /accounts/{a}/access/organizations` answers `auth_domain`
    /// `<team>.cloudflareaccess.com`. `None`: Zero Trust is not set up (that call is a 404).
    pub access_team: Option<String>,
    /// The email of the account's one member (`GET /accounts/{a}/members`, status `accepted`).
    pub member_email: String,
    /// Zone names; ids are generated (32 hex), status `active`.
    pub zones: Vec<String>,
    /// Path prefix of the API; `""` or `"/"` serves it at the root.
    pub base_path: String,
    /// The emulator's API base URL as connectors reach it (e.g.
    /// `http://host.docker.internal:8788/client/v4`). When set, it is written as `"e"` into every
    /// tunnel token issued, which is how the local edge finds its configuration (see `connector`).
    pub public_url: Option<String>,
    /// Where the account is kept across restarts (offline mode). [`Emulator::open`] restores it
    /// and every successful state-changing HTTP request saves it (0600: it holds tunnel secrets).
    /// `None`: in memory only. [`Emulator::new`] ignores it (it never overwrites a saved account).
    pub state_file: Option<PathBuf>,
    /// Whether `/__emulator/` (inspection, seeding, faults) needs one of `api_tokens`, like the
    /// API. An offline master's emulator sets it: its account is the master's. The connector
    /// endpoint is authenticated by tunnel tokens either way.
    pub inspect_token_required: bool,
}

impl Default for EmulatorConfig {
    fn default() -> EmulatorConfig {
        EmulatorConfig {
            account_id: DEFAULT_ACCOUNT_ID.to_string(),
            api_tokens: vec![DEFAULT_TOKEN.to_string()],
            restricted_tokens: Vec::new(),
            access_team: Some(DEFAULT_ACCESS_TEAM.to_string()),
            member_email: DEFAULT_MEMBER_EMAIL.to_string(),
            zones: vec!["example.test".to_string()],
            base_path: DEFAULT_BASE_PATH.to_string(),
            public_url: None,
            state_file: None,
            inspect_token_required: false,
        }
    }
}

/// Why the emulator could not start, serve or accept an inspection call.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot read the listening address: {0}")]
    LocalAddr(std::io::Error),
    #[error("the emulator's HTTP server failed: {0}")]
    Serve(std::io::Error),
    #[error("invalid fault: {0}")]
    InvalidFault(String),
    #[error(transparent)]
    StateFile(#[from] StateFileError),
}

/// The emulator. Cheap to clone: clones share one state.
#[derive(Clone)]
pub struct Emulator {
    inner: Arc<Inner>,
}

struct Inner {
    base_path: String,
    public_url: Option<String>,
    account_id: String,
    /// Accepted tokens: full ones first, in configuration order, then restricted ones.
    tokens: Vec<permissions::TokenEntry>,
    /// [`EmulatorConfig::access_team`].
    access_team: Option<String>,
    /// The account's one member: (member id, user id, email).
    member: (String, String, String),
    /// When the emulator was built (the organization's timestamps).
    started_at: String,
    data: Mutex<state::Data>,
    traffic: Mutex<faults::Traffic>,
    /// Set when the account is saved ([`EmulatorConfig::state_file`], through [`Emulator::open`]).
    saver: Option<Arc<persist::Saver>>,
    /// Whether [`Emulator::open`] restored a saved account.
    restored: bool,
    /// [`EmulatorConfig::inspect_token_required`].
    inspect_token_required: bool,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("base_path", &self.inner.base_path)
            .field("account_id", &self.inner.account_id)
            .finish_non_exhaustive()
    }
}

/// `"/client/v4/"` → `"/client/v4"`, `"x"` → `"/x"`, `"/"` → `""`.
fn normalize_base_path(path: &str) -> String {
    let trimmed = path.trim().trim_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("/{trimmed}")
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Emulator {
    /// A fresh account, in memory only ([`EmulatorConfig::state_file`] is ignored: see [`Emulator::open`]).
    pub fn new(config: EmulatorConfig) -> Emulator {
        let data = state::Data::new(&config.account_id, &config.zones);
        Emulator::assemble(config, data, None, false)
    }

    /// Like [`Emulator::new`], but with [`EmulatorConfig::state_file`] set, restores the account
    /// saved there (a missing file is a fresh start), writes the file at once, and saves after
    /// every change. An unreadable or invalid file, or one of another account, is an error: the
    /// file is left as it is.
    pub fn open(config: EmulatorConfig) -> Result<Emulator, EmulatorError> {
        let Some(path) = config.state_file.clone() else { return Ok(Emulator::new(config)) };
        let (data, restored) = match persist::load(&path)? {
            None => (state::Data::new(&config.account_id, &config.zones), false),
            Some(saved) => {
                let data = persist::restore(saved, &config.account_id, &config.zones).map_err(|error| match error {
                    persist::RestoreError::AccountMismatch { saved, configured } => {
                        StateFileError::AccountMismatch { path: path.clone(), saved, configured }
                    }
                    other => StateFileError::Invalid { path: path.clone(), reason: other.to_string() },
                })?;
                (data, true)
            }
        };
        let emulator = Emulator::assemble(config, data, Some(Arc::new(persist::Saver::new(path))), restored);
        if let Some(saver) = &emulator.inner.saver {
            persist::save_data(saver.path(), &emulator.inner.data)?;
        }
        Ok(emulator)
    }

    fn assemble(
        config: EmulatorConfig,
        mut data: state::Data,
        saver: Option<Arc<persist::Saver>>,
        restored: bool,
    ) -> Emulator {
        let full = config.api_tokens.iter().map(|token| permissions::TokenEntry {
            token: token.clone(),
            id: state::hex32(),
            permissions: None,
        });
        let restricted = config.restricted_tokens.iter().map(|restricted| permissions::TokenEntry {
            token: restricted.token.clone(),
            id: state::hex32(),
            permissions: Some(restricted.permissions.clone()),
        });
        let tokens = full.chain(restricted).collect();
        let access_team = config.access_team.map(|t| t.trim().to_ascii_lowercase()).filter(|t| !t.is_empty());
        let member = (state::hex32(), state::hex32(), config.member_email.clone());
        data.public_url = config.public_url.map(|u| u.trim().to_string()).filter(|u| !u.is_empty());
        Emulator {
            inner: Arc::new(Inner {
                base_path: normalize_base_path(&config.base_path),
                public_url: data.public_url.clone(),
                account_id: config.account_id,
                tokens,
                access_team,
                member,
                started_at: state::now(),
                data: Mutex::new(data),
                traffic: Mutex::new(faults::Traffic::default()),
                saver,
                restored,
                inspect_token_required: config.inspect_token_required,
            }),
        }
    }

    /// Whether `/__emulator/` needs an API token ([`EmulatorConfig::inspect_token_required`]).
    pub fn inspect_token_required(&self) -> bool {
        self.inner.inspect_token_required
    }

    /// Whether [`Emulator::open`] restored a saved account.
    pub fn restored(&self) -> bool {
        self.inner.restored
    }

    /// The state file, when the account is saved.
    pub fn state_file(&self) -> Option<&std::path::Path> {
        self.inner.saver.as_deref().map(persist::Saver::path)
    }

    /// Binds `addr` (port 0 for any), serves in a spawned task, and returns
    /// the emulator with the bound address.
    pub async fn start(config: EmulatorConfig, addr: SocketAddr) -> Result<(Emulator, SocketAddr), EmulatorError> {
        let listener =
            tokio::net::TcpListener::bind(addr).await.map_err(|source| EmulatorError::Bind { addr, source })?;
        let bound = listener.local_addr().map_err(EmulatorError::LocalAddr)?;
        Ok((Emulator::start_on(config, listener), bound))
    }

    /// Serves on a bound `listener` in a spawned task; returns the emulator.
    pub fn start_on(config: EmulatorConfig, listener: tokio::net::TcpListener) -> Emulator {
        let emulator = Emulator::new(config);
        emulator.serve_in_background(listener);
        emulator
    }

    /// Serves this emulator on a bound `listener` in a spawned task (e.g. after [`Emulator::open`]).
    pub fn serve_in_background(&self, listener: tokio::net::TcpListener) {
        let server = self.clone();
        tokio::spawn(async move {
            if let Err(error) = server.serve(listener).await {
                tracing::warn!(message = "The Cloudflare emulator stopped.", %error);
            }
        });
    }

    /// Serves the API and the inspection API on `listener` until it fails.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> Result<(), EmulatorError> {
        self.spawn_connector_sweeper();
        axum::serve(listener, self.router()).await.map_err(EmulatorError::Serve)
    }

    /// The API (under the base path) and `/__emulator/`, as one router.
    pub fn router(&self) -> Router {
        // Saves after each change (when a state file is set); connectors' traffic is not saved.
        // … and wakes the connectors' long-polls (the Access view they follow may have changed).
        let saving = || axum::middleware::from_fn_with_state(self.clone(), persist::save_after_change);
        let waking = || axum::middleware::from_fn_with_state(self.clone(), connector::wake_after_change);
        let api = http::api_router(self.clone()).layer(saving()).layer(waking());
        let inspect = inspect::router(self.clone()).layer(saving()).layer(waking());
        let router = if self.inner.base_path.is_empty() {
            Router::new().merge(api)
        } else {
            Router::new().nest(&self.inner.base_path, api)
        };
        router.merge(inspect).merge(connector::router(self.clone()))
    }

    /// The API base path, e.g. `/client/v4` (empty when served at the root).
    pub fn base_path(&self) -> &str {
        &self.inner.base_path
    }

    /// `http://{addr}{base_path}`: what the client takes as its API URL.
    pub fn base_url(&self, addr: SocketAddr) -> String {
        format!("http://{addr}{}", self.inner.base_path)
    }

    pub fn account_id(&self) -> &str {
        &self.inner.account_id
    }

    /// [`EmulatorConfig::public_url`]: the `"e"` of the tunnel tokens issued.
    pub fn public_url(&self) -> Option<&str> {
        self.inner.public_url.as_deref()
    }

    /// The first token accepted with every permission (empty if none was configured).
    pub fn api_token(&self) -> &str {
        self.inner.tokens.iter().find(|t| t.permissions.is_none()).map(|t| t.token.as_str()).unwrap_or("")
    }

    pub fn zones(&self) -> Vec<Zone> {
        lock(&self.inner.data).zones.iter().map(|z| z.zone.clone()).collect()
    }

    /// The id of the zone named `name`.
    pub fn zone_id(&self, name: &str) -> Option<String> {
        lock(&self.inner.data).zone_by_name(name).map(|z| z.zone.id.clone())
    }

    /// Everything the emulated account holds, deleted tunnels included.
    pub fn snapshot(&self) -> Snapshot {
        lock(&self.inner.data).snapshot()
    }

    /// Account id, tokens, base path and zones.
    pub fn info(&self) -> EmulatorInfo {
        EmulatorInfo {
            account_id: self.inner.account_id.clone(),
            api_tokens: self.inner.tokens.iter().filter(|t| t.permissions.is_none()).map(|t| t.token.clone()).collect(),
            base_path: self.inner.base_path.clone(),
            zones: self.zones(),
        }
    }

    /// Creates a DNS record as if made in the dashboard (same rules as the
    /// API: 81053/81054/81058 apply). `zone` is a zone id or name.
    pub fn seed_dns_record(&self, zone: &str, record: &DnsRecordRequest) -> Result<DnsRecord, ApiError> {
        let body = serde_json::to_value(record).map_err(|e| ApiError::bad_request(1001, e.to_string()))?;
        let map = body.as_object().cloned().unwrap_or_default();
        lock(&self.inner.data).seed_dns_record(zone, &map)
    }

    /// Deletes a DNS record behind DockFlare's back (any zone). 404/81044 if unknown.
    pub fn delete_dns_record(&self, record_id: &str) -> Result<(), ApiError> {
        lock(&self.inner.data).delete_dns_record_anywhere(record_id)
    }

    /// Replaces a tunnel's ingress configuration as if edited in the
    /// dashboard: validated like a PUT, `version` + 1.
    pub fn seed_configuration(&self, tunnel_id: &str, config: TunnelConfig) -> Result<TunnelConfiguration, ApiError> {
        lock(&self.inner.data).put_configuration(tunnel_id, config)
    }

    /// Adds a login method as if configured in the dashboard (`GET …/access/identity_providers`
    /// lists it; applications may name its id in `allowed_idps`). `kind` is its `type`
    /// (`github`, `google`, `oidc` …). 400 without a name or type.
    pub fn seed_identity_provider(&self, name: &str, kind: &str) -> Result<IdentityProvider, ApiError> {
        let seed = IdentityProviderSeed { name: name.to_string(), kind: kind.to_string(), config: None };
        let added = lock(&self.inner.data).add_identity_provider(&seed)?;
        serde_json::from_value(added).map_err(|e| ApiError::new(500, 1500, e.to_string()))
    }

    /// Connects one connector (4 connections, status `healthy`) or
    /// disconnects every connector (status `down`).
    pub fn set_connectors(&self, tunnel_id: &str, connected: bool) -> Result<Tunnel, ApiError> {
        lock(&self.inner.data).set_connectors(tunnel_id, connected)
    }

    /// Requests served per (method, route template), and the request log.
    pub fn requests(&self) -> RequestReport {
        lock(&self.inner.traffic).report()
    }

    /// How many `method` requests matched `route`, a template relative to
    /// the base path such as `/accounts/{account_id}/cfd_tunnel/{tunnel_id}/configurations`.
    pub fn request_count(&self, method: &str, route: &str) -> u64 {
        lock(&self.inner.traffic).count(method, route)
    }

    /// Forgets counters and log.
    pub fn reset_requests(&self) {
        lock(&self.inner.traffic).reset();
    }

    /// Adds a fault rule; rules are tried in the order added.
    pub fn inject_faults(&self, spec: FaultSpec) -> Result<(), EmulatorError> {
        let rule = faults::FaultRule::new(spec).map_err(EmulatorError::InvalidFault)?;
        lock(&self.inner.traffic).faults.push(rule);
        Ok(())
    }

    /// The fault rules still active (`count` is what remains).
    pub fn faults(&self) -> Vec<FaultSpec> {
        lock(&self.inner.traffic).faults.iter().map(|r| r.remaining_spec()).collect()
    }

    pub fn clear_faults(&self) {
        lock(&self.inner.traffic).faults.clear();
    }

    fn data(&self) -> MutexGuard<'_, state::Data> {
        lock(&self.inner.data)
    }

    fn traffic(&self) -> MutexGuard<'_, faults::Traffic> {
        lock(&self.inner.traffic)
    }
}

/// Binds the first of `candidates` that is free (a taken port moves on to the next; any other
/// error is final), or, when every one is taken, a free port on the last one's address. Answers
/// the listener and the address to reach it from this host (an unspecified IP becomes loopback).
pub async fn bind_public(candidates: &[SocketAddr]) -> Result<(tokio::net::TcpListener, SocketAddr), EmulatorError> {
    let mut last = None;
    let mut listener = None;
    for &addr in candidates {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(bound) => {
                listener = Some(bound);
                break;
            }
            Err(error) if error.kind() == std::io::ErrorKind::AddrInUse && addr.port() != 0 => {
                tracing::warn!(message = "The emulator's port is taken.", wanted = %addr, %error);
                last = Some(addr);
            }
            Err(source) => return Err(EmulatorError::Bind { addr, source }),
        }
    }
    let listener = match (listener, last) {
        (Some(listener), _) => listener,
        (None, last) => {
            let any = SocketAddr::new(last.map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |a| a.ip()), 0);
            tokio::net::TcpListener::bind(any).await.map_err(|source| EmulatorError::Bind { addr: any, source })?
        }
    };
    let bound = listener.local_addr().map_err(EmulatorError::LocalAddr)?;
    let local_ip = match bound.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Ok((listener, SocketAddr::new(local_ip, bound.port())))
}

/// Runs the emulator on `listen` until ctrl-c (the `cloudflare-emulator`
/// subcommand). Logs the base URL, account id and token.
pub async fn run_standalone(listen: SocketAddr, config: EmulatorConfig) -> Result<(), EmulatorError> {
    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|source| EmulatorError::Bind { addr: listen, source })?;
    let bound = listener.local_addr().map_err(EmulatorError::LocalAddr)?;
    let emulator = Emulator::new(config);
    emulator.spawn_connector_sweeper();
    let zones: Vec<String> = emulator.zones().iter().map(|z| format!("{} ({})", z.name, z.id)).collect();
    tracing::info!(
        message = "Cloudflare API emulator listening.",
        base_url = %emulator.base_url(bound),
        account_id = %emulator.account_id(),
        token = %emulator.api_token(),
        zones = %zones.join(", "),
        inspect = %format!("http://{bound}{INSPECT_PREFIX}/state"),
        public_url = %emulator.public_url().unwrap_or("-"),
    );
    axum::serve(listener, emulator.router())
        .with_graceful_shutdown({
            let emulator = emulator.clone();
            async move {
                if let Err(error) = tokio::signal::ctrl_c().await {
                    tracing::warn!(message = "Cannot wait for ctrl-c; stopping the emulator.", %error);
                }
                // Connector long-polls answer now rather than hold the shutdown.
                emulator.end_long_polls();
            }
        })
        .await
        .map_err(EmulatorError::Serve)?;
    tracing::info!(message = "Cloudflare API emulator stopped.");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::normalize_base_path;

    #[test]
    fn base_paths_are_normalized() {
        assert_eq!(normalize_base_path("/client/v4"), "/client/v4");
        assert_eq!(normalize_base_path("client/v4/"), "/client/v4");
        assert_eq!(normalize_base_path("/"), "");
        assert_eq!(normalize_base_path(""), "");
    }
}
