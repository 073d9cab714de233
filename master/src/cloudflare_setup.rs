//! The Cloudflare side of starting a master: the API client with the operator's token, or — in
//! offline mode — the built-in emulator (its state file, its token, where it listens so that
//! connector containers reach it) and a client pointed at it.

use crate::reconcile::ReconcileSettings;
use crate::store::Store;
use crate::supervisor::Supervisor;
use dockflare_cloudflare::client::{CloudflareClient, CloudflareSettings};
use dockflare_emulator::{Emulator, EmulatorConfig};
use std::net::SocketAddr;
use std::path::Path;
use tokio::net::TcpListener;

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

/// Why Cloudflare could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("Cloudflare client: {0}")]
    Cloudflare(String),
    #[error("built-in Cloudflare emulator: {0}")]
    Emulator(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
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
pub(crate) async fn cloudflare_client(
    options: &CloudflareOptions,
    data_dir: &Path,
    store: &Store,
    supervisor: &Supervisor,
) -> Result<(CloudflareClient, Option<(Emulator, SocketAddr)>), SetupError> {
    if let Some(settings) = &options.api {
        let client = CloudflareClient::new(settings.clone()).map_err(|e| SetupError::Cloudflare(e.to_string()))?;
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
        dockflare_emulator::bind_public(&candidates).await.map_err(|e| SetupError::Emulator(e.to_string()))?;
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
    .map_err(|e| SetupError::Emulator(e.to_string()))?;
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
        .map_err(|e| SetupError::Emulator(format!("writing {}: {e}", token_file.display())))?;
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
    let client = CloudflareClient::new(settings).map_err(|e| SetupError::Cloudflare(e.to_string()))?;
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
