//! `/accounts/{a}/cfd_tunnel…`: tunnels (§3), their token (§8.1),
//! connectors (§3.6) and remote configuration (§4).
//!
//! Rules: a live name is unique (409/1013; a deleted tunnel's name may be
//! reused); DELETE is a soft delete and refuses a tunnel with active
//! connections (400/1022) unless `?cascade=true`; an unknown tunnel is
//! 404/1003; the configuration is 404/1055 before the first PUT and on a
//! deleted tunnel; each PUT is validated like cloudflared (400/1056),
//! stored verbatim and bumps `version`.

use super::http::{ok, ok_page, paginate, parse_body, ApiError, ApiResult, Query, TUNNEL_PAGES};
use super::ingress;
use super::state::{now, uuid, Data, TunnelEntry};
use super::Emulator;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::Uri;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use dockflare_cloudflare::codes;
use dockflare_cloudflare::types::{
    CreateTunnelRequest, PutConfigurationRequest, Tunnel, TunnelClient, TunnelConfig, TunnelConfiguration,
    TunnelConnection, TunnelWithToken, UpdateTunnelRequest,
};
use serde_json::Value;

const NAME_CONFLICT: &str =
    "You already have a tunnel with this name. Delete the existing tunnel, or choose a different name for your new tunnel";
const ACTIVE_CONNECTIONS: &str = "This tunnel has active connections. Please stop all cloudflared replicas, or wait a few minutes for connections to close, then try again.";
/// Edge connections a healthy connector holds.
const CONNECTIONS_PER_CONNECTOR: usize = 4;
const COLOS: [&str; 4] = ["fra08", "ams01", "fra10", "ams08"];

fn tunnel_not_found() -> ApiError {
    ApiError::new(404, 1003, "Tunnel not found")
}

fn configuration_not_found() -> ApiError {
    ApiError::new(404, codes::TUNNEL_CONFIGURATION_NOT_FOUND, "Configuration for tunnel not found")
}

fn invalid(message: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(1001, format!("Invalid request: {message}"))
}

/// A base64 tunnel secret of at least 32 bytes.
fn decode_secret(secret: &str) -> Result<Vec<u8>, ApiError> {
    match STANDARD.decode(secret.trim()) {
        Ok(bytes) if bytes.len() >= 32 => Ok(bytes),
        _ => Err(invalid("tunnel_secret must be standard base64 of at least 32 bytes")),
    }
}

impl Data {
    fn live_name_taken(&self, name: &str, except: Option<&str>) -> bool {
        self.tunnels.iter().any(|t| t.is_live() && t.name == name && Some(t.id.as_str()) != except)
    }

    fn tunnel(&self, tunnel_id: &str) -> Result<&TunnelEntry, ApiError> {
        self.tunnel_index(tunnel_id).and_then(|i| self.tunnels.get(i)).ok_or_else(tunnel_not_found)
    }

    fn tunnel_mut(&mut self, tunnel_id: &str) -> Result<&mut TunnelEntry, ApiError> {
        let index = self.tunnel_index(tunnel_id).ok_or_else(tunnel_not_found)?;
        self.tunnels.get_mut(index).ok_or_else(tunnel_not_found)
    }

    pub(super) fn create_tunnel(&mut self, request: CreateTunnelRequest) -> Result<TunnelWithToken, ApiError> {
        let name = request.name.trim().to_string();
        if name.is_empty() {
            return Err(invalid("name must not be empty"));
        }
        let config_src = request.config_src.unwrap_or_else(|| "local".to_string());
        if config_src != "local" && config_src != "cloudflare" {
            return Err(invalid("config_src must be one of: local, cloudflare"));
        }
        let secret = match request.tunnel_secret.as_deref() {
            Some(secret) => decode_secret(secret)?,
            None => rand::random::<[u8; 32]>().to_vec(),
        };
        if self.live_name_taken(&name, None) {
            return Err(ApiError::new(409, codes::TUNNEL_NAME_TAKEN, NAME_CONFLICT));
        }
        let created_at = now();
        let entry = TunnelEntry {
            id: uuid(),
            name,
            config_src,
            secret,
            created_at: created_at.clone(),
            deleted_at: None,
            conns_active_at: None,
            conns_inactive_at: Some(created_at),
            ever_connected: false,
            clients: Vec::new(),
            configuration: None,
        };
        let created = TunnelWithToken {
            tunnel: entry.to_tunnel(&self.account_id),
            token: Some(entry.token(&self.account_id, self.public_url.as_deref())),
            credentials_file: Some(entry.credentials(&self.account_id)),
        };
        self.tunnels.push(entry);
        Ok(created)
    }

    fn list_tunnels(&self, query: &Query) -> Result<Vec<Tunnel>, ApiError> {
        for unsupported in ["existed_at", "was_active_at", "was_inactive_at"] {
            if query.get(unsupported).is_some() {
                return Err(invalid(format!("the emulator does not implement the {unsupported} filter")));
            }
        }
        let is_deleted = query.bool("is_deleted")?;
        let name = query.get("name").filter(|v| !v.is_empty());
        let uuid = query.get("uuid").filter(|v| !v.is_empty()).map(str::to_ascii_lowercase);
        let status = query.get("status").filter(|v| !v.is_empty());
        let include_prefix = query.get("include_prefix").filter(|v| !v.is_empty());
        let name_prefix = query.get("name_prefix").filter(|v| !v.is_empty());
        let exclude_prefix = query.get("exclude_prefix").filter(|v| !v.is_empty());
        Ok(self
            .tunnels
            .iter()
            .filter(|t| match is_deleted {
                Some(true) => !t.is_live(),
                Some(false) => t.is_live(),
                None => true,
            })
            .filter(|t| name.is_none_or(|n| t.name == n))
            .filter(|t| uuid.as_deref().is_none_or(|u| t.id == u))
            .filter(|t| status.is_none_or(|s| t.status() == s))
            .filter(|t| include_prefix.is_none_or(|p| t.name.starts_with(p)))
            .filter(|t| name_prefix.is_none_or(|p| t.name.starts_with(p)))
            .filter(|t| exclude_prefix.is_none_or(|p| !t.name.starts_with(p)))
            .map(|t| t.to_tunnel(&self.account_id))
            .collect())
    }

    fn update_tunnel(&mut self, tunnel_id: &str, request: UpdateTunnelRequest) -> Result<Tunnel, ApiError> {
        let secret = request.tunnel_secret.as_deref().map(decode_secret).transpose()?;
        let name = request.name.map(|n| n.trim().to_string());
        if name.as_deref() == Some("") {
            return Err(invalid("name must not be empty"));
        }
        let index = self.tunnel_index(tunnel_id).ok_or_else(tunnel_not_found)?;
        let id = self.tunnels.get(index).map(|t| t.id.clone()).unwrap_or_default();
        if let Some(name) = name.as_deref() {
            if self.live_name_taken(name, Some(&id)) {
                return Err(ApiError::new(409, codes::TUNNEL_NAME_TAKEN, NAME_CONFLICT));
            }
        }
        let account_id = self.account_id.clone();
        let entry = self.tunnel_mut(&id)?;
        if let Some(name) = name {
            entry.name = name;
        }
        if let Some(secret) = secret {
            entry.secret = secret;
        }
        Ok(entry.to_tunnel(&account_id))
    }

    fn delete_tunnel(&mut self, tunnel_id: &str, cascade: bool) -> Result<Tunnel, ApiError> {
        let account_id = self.account_id.clone();
        let entry = self.tunnel_mut(tunnel_id)?;
        if entry.has_active_connections() && !cascade {
            return Err(ApiError::bad_request(1022, ACTIVE_CONNECTIONS));
        }
        if !entry.clients.is_empty() {
            disconnect(entry, None);
        }
        if entry.deleted_at.is_none() {
            entry.deleted_at = Some(now());
        }
        let tunnel = entry.to_tunnel(&account_id);
        self.changed.notify_waiters();
        Ok(tunnel)
    }

    fn configuration(&self, tunnel_id: &str) -> Result<TunnelConfiguration, ApiError> {
        let entry = self.tunnel(tunnel_id)?;
        if !entry.is_live() {
            return Err(configuration_not_found());
        }
        entry.configuration.clone().ok_or_else(configuration_not_found)
    }

    /// A validated full replace; `version` + 1; connectors apply it.
    pub(super) fn put_configuration(
        &mut self,
        tunnel_id: &str,
        config: TunnelConfig,
    ) -> Result<TunnelConfiguration, ApiError> {
        let account_id = self.account_id.clone();
        let entry = self.tunnel_mut(tunnel_id)?;
        if !entry.is_live() {
            return Err(configuration_not_found());
        }
        ingress::validate_config(&config)
            .map_err(|error| ApiError::bad_request(1056, ingress::bad_configuration_message(&error)))?;
        let version = entry.configuration.as_ref().map_or(0, |c| c.version) + 1;
        let configuration = TunnelConfiguration {
            account_id,
            tunnel_id: entry.id.clone(),
            version,
            config,
            source: "cloudflare".to_string(),
            created_at: now(),
        };
        // Simulated connectors apply it at once; the local edge's say what it last fetched.
        for client in entry.clients.iter_mut().filter(|c| c.version != super::connector::CONNECTOR_VERSION) {
            client.config_version = version;
        }
        entry.configuration = Some(configuration.clone());
        self.changed.notify_waiters();
        Ok(configuration)
    }

    /// The inspection knob: one healthy connector, or none.
    pub(super) fn set_connectors(&mut self, tunnel_id: &str, connected: bool) -> Result<Tunnel, ApiError> {
        let account_id = self.account_id.clone();
        let entry = self.tunnel_mut(tunnel_id)?;
        if connected {
            if !entry.is_live() {
                return Err(ApiError::bad_request(1001, "Invalid request: a deleted tunnel cannot connect"));
            }
            if !entry.has_active_connections() {
                connect(entry, uuid(), "2025.8.1");
            }
        } else {
            disconnect(entry, None);
        }
        Ok(entry.to_tunnel(&account_id))
    }
}

/// Adds connector `client_id` (cloudflared `version`) with 4 connections; the tunnel is `healthy`.
pub(super) fn connect(entry: &mut TunnelEntry, client_id: String, version: &str) {
    let opened_at = now();
    let version = version.to_string();
    let conns = COLOS
        .iter()
        .take(CONNECTIONS_PER_CONNECTOR)
        .map(|colo| {
            let id = uuid();
            TunnelConnection {
                id: id.clone(),
                uuid: id,
                client_id: client_id.clone(),
                client_version: version.clone(),
                colo_name: colo.to_string(),
                is_pending_reconnect: false,
                opened_at: opened_at.clone(),
                origin_ip: "192.0.2.10".to_string(),
            }
        })
        .collect();
    let mut extra = serde_json::Map::new();
    extra.insert("ha_status".into(), Value::Null);
    entry.clients.push(TunnelClient {
        id: client_id,
        arch: "linux_amd64".into(),
        version,
        run_at: opened_at.clone(),
        config_version: entry.configuration.as_ref().map_or(0, |c| c.version),
        features: ["ha-origin", "serialized_headers", "support_datagram_v2", "management_logs"]
            .map(String::from)
            .to_vec(),
        conns,
        extra,
    });
    entry.ever_connected = true;
    entry.conns_active_at = Some(opened_at);
    entry.conns_inactive_at = None;
}

/// Drops connectors (one, or all); a tunnel left without connections is `down`.
pub(super) fn disconnect(entry: &mut TunnelEntry, client_id: Option<&str>) {
    let was_active = entry.has_active_connections();
    entry.clients.retain(|c| client_id.is_some_and(|id| c.id != id));
    if was_active && !entry.has_active_connections() {
        entry.conns_active_at = None;
        entry.conns_inactive_at = Some(now());
    }
}

pub(super) async fn create(State(emulator): State<Emulator>, Path(account_id): Path<String>, body: Bytes) -> ApiResult {
    emulator.check_account(&account_id)?;
    let request: CreateTunnelRequest = parse_body(&body, 1001, "Invalid request")?;
    let created = emulator.data().create_tunnel(request)?;
    Ok(ok(created))
}

pub(super) async fn list(State(emulator): State<Emulator>, Path(account_id): Path<String>, uri: Uri) -> ApiResult {
    emulator.check_account(&account_id)?;
    let query = Query::from_uri(&uri);
    let tunnels = emulator.data().list_tunnels(&query)?;
    let (page, info) = paginate(tunnels, &query, TUNNEL_PAGES)?;
    Ok(ok_page(page, info))
}

pub(super) async fn get_one(
    State(emulator): State<Emulator>,
    Path((account_id, tunnel_id)): Path<(String, String)>,
) -> ApiResult {
    emulator.check_account(&account_id)?;
    let data = emulator.data();
    let tunnel = data.tunnel(&tunnel_id)?.to_tunnel(&data.account_id);
    Ok(ok(tunnel))
}

pub(super) async fn update(
    State(emulator): State<Emulator>,
    Path((account_id, tunnel_id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    emulator.check_account(&account_id)?;
    let request: UpdateTunnelRequest = parse_body(&body, 1001, "Invalid request")?;
    let tunnel = emulator.data().update_tunnel(&tunnel_id, request)?;
    Ok(ok(tunnel))
}

pub(super) async fn delete(
    State(emulator): State<Emulator>,
    Path((account_id, tunnel_id)): Path<(String, String)>,
    uri: Uri,
) -> ApiResult {
    emulator.check_account(&account_id)?;
    let cascade = Query::from_uri(&uri).bool("cascade")?.unwrap_or(false);
    let tunnel = emulator.data().delete_tunnel(&tunnel_id, cascade)?;
    Ok(ok(tunnel))
}

pub(super) async fn token(
    State(emulator): State<Emulator>,
    Path((account_id, tunnel_id)): Path<(String, String)>,
) -> ApiResult {
    emulator.check_account(&account_id)?;
    let data = emulator.data();
    let token = data.tunnel(&tunnel_id)?.token(&data.account_id, data.public_url.as_deref());
    Ok(ok(token))
}

pub(super) async fn connections(
    State(emulator): State<Emulator>,
    Path((account_id, tunnel_id)): Path<(String, String)>,
) -> ApiResult {
    emulator.check_account(&account_id)?;
    let clients = emulator.data().tunnel(&tunnel_id)?.clients.clone();
    Ok(ok(clients))
}

pub(super) async fn delete_connections(
    State(emulator): State<Emulator>,
    Path((account_id, tunnel_id)): Path<(String, String)>,
    uri: Uri,
) -> ApiResult {
    emulator.check_account(&account_id)?;
    let query = Query::from_uri(&uri);
    let client_id = query.get("client_id").filter(|c| !c.is_empty());
    let mut data = emulator.data();
    let entry = data.tunnel_mut(&tunnel_id)?;
    disconnect(entry, client_id);
    Ok(ok(Value::Null))
}

pub(super) async fn connector(
    State(emulator): State<Emulator>,
    Path((account_id, tunnel_id, connector_id)): Path<(String, String, String)>,
) -> ApiResult {
    emulator.check_account(&account_id)?;
    let data = emulator.data();
    let client = data.tunnel(&tunnel_id)?.clients.iter().find(|c| c.id.eq_ignore_ascii_case(&connector_id)).cloned();
    client.map(ok).ok_or_else(|| ApiError::new(404, 1003, "Connector not found"))
}

pub(super) async fn get_configuration(
    State(emulator): State<Emulator>,
    Path((account_id, tunnel_id)): Path<(String, String)>,
) -> ApiResult {
    emulator.check_account(&account_id)?;
    let configuration = emulator.data().configuration(&tunnel_id)?;
    Ok(ok(configuration))
}

pub(super) async fn put_configuration(
    State(emulator): State<Emulator>,
    Path((account_id, tunnel_id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    emulator.check_account(&account_id)?;
    // The tunnel is looked up before the body is read: unknown → 404.
    emulator.data().tunnel(&tunnel_id)?;
    let request: PutConfigurationRequest = parse_body(&body, 1001, "Invalid request")?;
    let configuration = emulator.data().put_configuration(&tunnel_id, request.config)?;
    Ok(ok(configuration))
}
