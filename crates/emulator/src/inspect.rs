//! `/__emulator/`: the inspection API, for tests and tools in other
//! processes. Successful answers are plain JSON (no envelope); refusals are
//! Cloudflare envelopes with the API's codes. Open, except in an offline
//! master's emulator ([`super::EmulatorConfig::inspect_token_required`]):
//! there it needs the API token, like the API (403/10000 without it).
//!
//! | method | path | body | answer |
//! |---|---|---|---|
//! | GET | `/__emulator/info` | | [`EmulatorInfo`] |
//! | GET | `/__emulator/state` | | [`Snapshot`] |
//! | POST | `/__emulator/zones/{zone}/dns_records` | DNS record (as the API) | `DnsRecord` |
//! | DELETE | `/__emulator/dns_records/{record_id}` | | `{"id"}` |
//! | PUT | `/__emulator/tunnels/{tunnel_id}/configuration` | `{"config": {...}}` | `TunnelConfiguration` |
//! | PUT | `/__emulator/tunnels/{tunnel_id}/connectors` | [`ConnectorsRequest`] | `Tunnel` |
//! | POST | `/__emulator/access/identity_providers` | [`IdentityProviderSeed`] | the IdP as the API lists it |
//! | GET / DELETE | `/__emulator/requests` | | [`RequestReport`] / 204 |
//! | GET / POST / DELETE | `/__emulator/faults` | [`FaultSpec`] (POST) | `[FaultSpec]` / 204 / 204 |

use super::http::{json_response, parse_body, parse_object, ApiError, ApiResult};
use super::{Emulator, FaultSpec, RequestReport, Snapshot, INSPECT_PREFIX};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Router;
use dockflare_cloudflare::types::{DeletedId, PutConfigurationRequest, Zone};
use serde::{Deserialize, Serialize};

/// `GET /__emulator/info`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmulatorInfo {
    pub account_id: String,
    pub api_tokens: Vec<String>,
    /// e.g. `/client/v4`.
    pub base_path: String,
    pub zones: Vec<Zone>,
}

/// `POST /__emulator/access/identity_providers` body: a login method as if configured in the
/// dashboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdentityProviderSeed {
    pub name: String,
    /// Its `type`: `onetimepin`, `github`, `google`, `oidc`, `saml` …
    #[serde(rename = "type")]
    pub kind: String,
    /// Its `config` (default `{}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
}

/// `PUT /__emulator/tunnels/{tunnel_id}/connectors` body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectorsRequest {
    /// `true`: one connector with 4 connections (`healthy`); `false`: none (`down`).
    pub connected: bool,
}

fn plain<T: Serialize>(value: &T) -> Response {
    json_response(StatusCode::OK, value)
}

async fn info(State(emulator): State<Emulator>) -> Response {
    plain(&emulator.info())
}

async fn state(State(emulator): State<Emulator>) -> Response {
    let snapshot: Snapshot = emulator.snapshot();
    plain(&snapshot)
}

async fn seed_dns_record(State(emulator): State<Emulator>, Path(zone): Path<String>, body: Bytes) -> ApiResult {
    let body = parse_object(&body, 9207, "Request body is invalid.")?;
    let record = emulator.data().seed_dns_record(&zone, &body)?;
    Ok(plain(&record))
}

async fn delete_dns_record(State(emulator): State<Emulator>, Path(record_id): Path<String>) -> ApiResult {
    emulator.delete_dns_record(&record_id)?;
    Ok(plain(&DeletedId { id: record_id }))
}

async fn seed_configuration(State(emulator): State<Emulator>, Path(tunnel_id): Path<String>, body: Bytes) -> ApiResult {
    let request: PutConfigurationRequest = parse_body(&body, 1001, "Invalid request")?;
    let configuration = emulator.seed_configuration(&tunnel_id, request.config)?;
    Ok(plain(&configuration))
}

async fn set_connectors(State(emulator): State<Emulator>, Path(tunnel_id): Path<String>, body: Bytes) -> ApiResult {
    let request: ConnectorsRequest = parse_body(&body, 1001, "Invalid request")?;
    let tunnel = emulator.set_connectors(&tunnel_id, request.connected)?;
    Ok(plain(&tunnel))
}

async fn seed_identity_provider(State(emulator): State<Emulator>, body: Bytes) -> ApiResult {
    let seed: IdentityProviderSeed = parse_body(&body, 1001, "Invalid request")?;
    let added = emulator.data().add_identity_provider(&seed)?;
    Ok(plain(&added))
}

async fn requests(State(emulator): State<Emulator>) -> Response {
    let report: RequestReport = emulator.requests();
    plain(&report)
}

async fn reset_requests(State(emulator): State<Emulator>) -> StatusCode {
    emulator.reset_requests();
    StatusCode::NO_CONTENT
}

async fn faults(State(emulator): State<Emulator>) -> Response {
    plain(&emulator.faults())
}

async fn inject_faults(State(emulator): State<Emulator>, body: Bytes) -> ApiResult {
    let spec: FaultSpec = parse_body(&body, 1001, "Invalid fault")?;
    emulator.inject_faults(spec).map_err(|e| ApiError::bad_request(1001, e.to_string()))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn clear_faults(State(emulator): State<Emulator>) -> StatusCode {
    emulator.clear_faults();
    StatusCode::NO_CONTENT
}

/// 403/10000 without an accepted API token with every permission, when the emulator requires
/// one here.
async fn require_token(
    State(emulator): State<Emulator>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if emulator.inspect_token_required() {
        match emulator.authenticate(request.headers(), false) {
            Err(error) => return error.into_response(),
            Ok(token) if token.permissions.is_some() => {
                return ApiError::new(403, 10000, "Authentication error").into_response()
            }
            Ok(_) => {}
        }
    }
    next.run(request).await
}

pub(super) fn router(emulator: Emulator) -> Router {
    let at = |path: &str| format!("{INSPECT_PREFIX}{path}");
    Router::new()
        .route(&at("/info"), get(info))
        .route(&at("/state"), get(state))
        .route(&at("/zones/{zone}/dns_records"), post(seed_dns_record))
        .route(&at("/dns_records/{record_id}"), delete(delete_dns_record))
        .route(&at("/tunnels/{tunnel_id}/configuration"), put(seed_configuration))
        .route(&at("/tunnels/{tunnel_id}/connectors"), put(set_connectors))
        .route(&at("/access/identity_providers"), post(seed_identity_provider))
        .route(&at("/requests"), get(requests).delete(reset_requests))
        .route(&at("/faults"), get(faults).post(inject_faults).delete(clear_faults))
        .layer(axum::middleware::from_fn_with_state(emulator.clone(), require_token))
        .with_state(emulator)
}
