//! Serde types of the Cloudflare API v4 calls DockFlare makes (tunnels,
//! tunnel configurations, zones, DNS records, token verification, Access
//! applications, policies, tags, identity providers, the organization and
//! account members), shared by
//! the HTTP client and the emulator. Shapes follow
//! `shared/reference/cloudflare-api.md`.
//!
//! Every type tolerates unknown fields (none uses `deny_unknown_fields`), and
//! objects that DockFlare writes back (ingress rules, configurations, DNS
//! records) keep what they do not model in an `extra` map, so a foreign value
//! read and written again keeps its meaning. Request types omit `None` so
//! they serialize like Cloudflare's examples.
//!
//! Also here: the tunnel token format (§8.1), [`encode_tunnel_token`] and
//! [`decode_tunnel_token`].

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// The envelope of every answer (§1.1). `result` is `None` for `null` and on
/// failures; `result_info` is only on list endpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    #[serde(default)]
    pub success: bool,
    #[serde(default)]
    pub errors: Vec<ApiMessage>,
    #[serde(default)]
    pub messages: Vec<ApiMessage>,
    #[serde(default = "none")]
    pub result: Option<T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_info: Option<ResultInfo>,
}

fn none<T>() -> Option<T> {
    None
}

impl<T> Envelope<T> {
    /// A successful answer carrying `result`.
    pub fn success(result: T) -> Envelope<T> {
        Envelope { success: true, errors: Vec::new(), messages: Vec::new(), result: Some(result), result_info: None }
    }

    /// A successful page of a list.
    pub fn page(result: T, info: ResultInfo) -> Envelope<T> {
        Envelope { result_info: Some(info), ..Envelope::success(result) }
    }

    /// A failed answer.
    pub fn failure(errors: Vec<ApiMessage>) -> Envelope<T> {
        Envelope { success: false, errors, messages: Vec::new(), result: None, result_info: None }
    }
}

/// One entry of `errors` or `messages`. Codes exceed 65 535 (DNS: 81xxx).
/// Fields beyond `code` and `message` (`error_chain`, `type`,
/// `documentation_url`, `source` …) are kept in `extra`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiMessage {
    #[serde(default)]
    pub code: i64,
    #[serde(default)]
    pub message: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ApiMessage {
    pub fn new(code: i64, message: impl Into<String>) -> ApiMessage {
        ApiMessage { code, message: message.into(), extra: Map::new() }
    }
}

/// Page information of a list answer (§1.2). `total_pages` is not in the
/// OpenAPI schema but real answers carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ResultInfo {
    #[serde(default)]
    pub page: u64,
    #[serde(default)]
    pub per_page: u64,
    #[serde(default)]
    pub count: u64,
    #[serde(default)]
    pub total_count: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_pages: Option<u64>,
}

/// A Cloudflare Tunnel (`cfd_tunnel`, §3.1). Dates are RFC 3339 strings as
/// Cloudflare sends them (microseconds, `Z`); nullable ones are `Option`
/// and serialize as `null`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tunnel {
    pub id: String,
    #[serde(default)]
    pub account_tag: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub deleted_at: Option<String>,
    #[serde(default)]
    pub conns_active_at: Option<String>,
    #[serde(default)]
    pub conns_inactive_at: Option<String>,
    /// `inactive` (never ran), `degraded`, `healthy` or `down`.
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub tun_type: String,
    /// Deprecated: `config_src == "cloudflare"`.
    #[serde(default)]
    pub remote_config: bool,
    /// `local` or `cloudflare` (newer API versions only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_src: Option<String>,
    #[serde(default)]
    pub metadata: Value,
    /// Deprecated by Cloudflare (may become empty); use the `/connections` endpoint.
    #[serde(default)]
    pub connections: Vec<TunnelConnection>,
}

/// One edge connection of a connector.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TunnelConnection {
    #[serde(default)]
    pub id: String,
    /// Deprecated alias of `id`.
    #[serde(default)]
    pub uuid: String,
    /// The connector (cloudflared replica) holding this connection.
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub client_version: String,
    #[serde(default)]
    pub colo_name: String,
    #[serde(default)]
    pub is_pending_reconnect: bool,
    #[serde(default)]
    pub opened_at: String,
    #[serde(default)]
    pub origin_ip: String,
}

/// A connector (cloudflared replica) of a tunnel, as listed by
/// `GET .../cfd_tunnel/{id}/connections` (§3.6). A healthy one holds 4 connections.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TunnelClient {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub arch: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub run_at: String,
    /// The configuration version the connector applied.
    #[serde(default)]
    pub config_version: i64,
    #[serde(default)]
    pub features: Vec<String>,
    #[serde(default)]
    pub conns: Vec<TunnelConnection>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `POST /accounts/{a}/cfd_tunnel` body. Send `config_src: "cloudflare"`
/// for a remotely managed tunnel; without `tunnel_secret` Cloudflare makes one.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CreateTunnelRequest {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_src: Option<String>,
    /// Standard base64 of at least 32 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel_secret: Option<String>,
}

/// `PATCH /accounts/{a}/cfd_tunnel/{id}` body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UpdateTunnelRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel_secret: Option<String>,
}

/// The create answer: the tunnel plus, when Cloudflare sends them, the
/// connector token and the credentials file (not in the OpenAPI schema;
/// fall back to `GET .../token` when absent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TunnelWithToken {
    #[serde(flatten)]
    pub tunnel: Tunnel,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<TunnelCredentials>,
}

/// The credentials file of a tunnel (cloudflared's JSON keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelCredentials {
    #[serde(rename = "AccountTag", default)]
    pub account_tag: String,
    #[serde(rename = "TunnelID", default)]
    pub tunnel_id: String,
    #[serde(rename = "TunnelName", default)]
    pub tunnel_name: String,
    /// Standard base64 with padding.
    #[serde(rename = "TunnelSecret", default)]
    pub tunnel_secret: String,
}

/// A tunnel's remote configuration as `GET`/`PUT .../configurations`
/// return it (§4.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TunnelConfiguration {
    #[serde(default)]
    pub account_id: String,
    #[serde(default)]
    pub tunnel_id: String,
    /// +1 on every PUT.
    #[serde(default)]
    pub version: i64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub config: TunnelConfig,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub created_at: String,
}

/// The `PUT .../configurations` body.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PutConfigurationRequest {
    #[serde(default, deserialize_with = "null_as_default")]
    pub config: TunnelConfig,
}

/// The configuration document (§4.1): ingress rules, defaults, and every
/// other key kept as it came in `extra`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TunnelConfig {
    #[serde(default, deserialize_with = "null_as_default")]
    pub ingress: Vec<IngressRule>,
    #[serde(rename = "originRequest", default, skip_serializing_if = "Option::is_none")]
    pub origin_request: Option<Value>,
    #[serde(rename = "warp-routing", default, skip_serializing_if = "Option::is_none")]
    pub warp_routing: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One ingress rule. `hostname` and `path` are absent on the catch-all;
/// `path` is an unanchored Go regular expression. `originRequest` stays raw
/// JSON so rules DockFlare does not own round-trip unchanged.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct IngressRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default)]
    pub service: String,
    #[serde(rename = "originRequest", default, skip_serializing_if = "Option::is_none")]
    pub origin_request: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A zone (§5.1); Cloudflare sends many more fields, kept in `extra`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Zone {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub account: ZoneAccount,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The account owning a zone.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ZoneAccount {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
}

/// A DNS record as Cloudflare returns it (§5.2). `ttl` 1 means automatic.
/// Fields not modelled (`proxiable`, `settings`, `meta`, `*_modified_on` …)
/// are kept in `extra`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DnsRecord {
    pub id: String,
    #[serde(rename = "type", default)]
    pub record_type: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub proxied: bool,
    #[serde(default = "automatic_ttl")]
    pub ttl: u32,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub tags: Vec<String>,
    #[serde(default)]
    pub created_on: String,
    #[serde(default)]
    pub modified_on: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn automatic_ttl() -> u32 {
    1
}

/// `POST` / `PUT` body of a DNS record (PUT overwrites: what is omitted
/// takes its default). A tunnel route is
/// `{"type":"CNAME","name":host,"content":"<tunnel>.cfargotunnel.com","proxied":true,"ttl":1}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DnsRecordRequest {
    #[serde(rename = "type")]
    pub record_type: String,
    pub name: String,
    pub content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxied: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub tags: Vec<String>,
}

/// `PATCH` body of a DNS record: only what is `Some` changes. An empty
/// `comment` removes the comment.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DnsRecordPatch {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub record_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxied: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
}

/// The `DELETE .../dns_records/{id}` result (also Access deletes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedId {
    pub id: String,
}

/// `GET /user/tokens/verify` or `/accounts/{a}/tokens/verify` result (§2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenVerification {
    pub id: String,
    /// `active`, `disabled` or `expired`.
    #[serde(default)]
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_on: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
}

/// An Access application (`/accounts/{a}/access/apps`, §6). `aud` is what a tunnel's
/// `originRequest.access.audTag` names; `policies` come expanded, in precedence order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AccessApp {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub aud: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub domain: String,
    #[serde(rename = "type", default)]
    pub app_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_duration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_launcher_visible: Option<bool>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub allowed_idps: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_redirect_to_identity: Option<bool>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub tags: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub policies: Vec<AccessAppPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

/// A policy as an application answer carries it: reusable or app-scoped, with its precedence
/// within the application. Rules are kept as JSON (`{"email": {"email": "a@b.c"}}`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AccessAppPolicy {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub decision: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precedence: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reusable: Option<bool>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub include: Vec<Value>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub exclude: Vec<Value>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub require: Vec<Value>,
}

/// `POST` / `PUT` body of an Access application (PUT replaces: what is omitted takes its
/// default). `policies` link reusable policies by id, in precedence order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AccessAppRequest {
    #[serde(rename = "type")]
    pub app_type: String,
    pub domain: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_duration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_launcher_visible: Option<bool>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub allowed_idps: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_redirect_to_identity: Option<bool>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub tags: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub policies: Vec<AccessPolicyLink>,
}

/// A reusable policy linked to an application (`access_app_policy_link`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AccessPolicyLink {
    pub id: String,
    pub precedence: i64,
}

/// A reusable Access policy (`/accounts/{a}/access/policies`); `app_count` is how many
/// applications link it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AccessPolicy {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub decision: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub include: Vec<Value>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub exclude: Vec<Value>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub require: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_duration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reusable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

/// `POST` / `PUT` body of a reusable Access policy.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AccessPolicyRequest {
    pub name: String,
    /// `allow`, `deny`, `non_identity` or `bypass`.
    pub decision: String,
    pub include: Vec<Value>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub exclude: Vec<Value>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub require: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_duration: Option<String>,
}

/// A login method of the account (`/accounts/{a}/access/identity_providers`); `kind` is its
/// `type` (`onetimepin`, `github`, `google`, `oidc` …). Its `config` is not modelled.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IdentityProvider {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: String,
}

/// The account's Zero Trust organization (`/accounts/{a}/access/organizations`): its team
/// domain, `<team>.cloudflareaccess.com`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AccessOrganization {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub auth_domain: String,
}

/// A member of the account (`/accounts/{a}/members`); `status` is `accepted` or `pending`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AccountMember {
    #[serde(default)]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default)]
    pub user: AccountMemberUser,
}

/// The user behind an [`AccountMember`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AccountMemberUser {
    #[serde(default)]
    pub email: String,
}

/// An Access tag (`/accounts/{a}/access/tags`): applications name tags that exist.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AccessTag {
    #[serde(default)]
    pub name: String,
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// The decoded content of a tunnel token.
#[derive(Clone, PartialEq, Eq)]
pub struct TunnelToken {
    pub account_tag: String,
    /// Canonical lowercase UUID.
    pub tunnel_id: String,
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for TunnelToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunnelToken")
            .field("account_tag", &self.account_tag)
            .field("tunnel_id", &self.tunnel_id)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// Why a string is not a tunnel token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TunnelTokenError {
    #[error("the tunnel token is not standard base64 with padding")]
    Base64,
    #[error("the tunnel token is not the expected JSON ({0})")]
    Json(String),
    #[error("the tunnel token's secret is not standard base64")]
    SecretBase64,
    #[error("the tunnel token's tunnel id is not a UUID")]
    TunnelId,
}

/// cloudflared's `TunnelToken` JSON; field order a, s, t as Go emits it.
#[derive(Serialize, Deserialize)]
struct TokenJson {
    a: String,
    s: String,
    t: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    e: Option<String>,
}

/// The connector token cloudflared runs with (§8.1):
/// `base64std(json({"a": account, "s": base64std(secret), "t": tunnel_uuid}))`.
pub fn encode_tunnel_token(account_tag: &str, tunnel_id: &str, secret: &[u8]) -> String {
    encode_tunnel_token_with_endpoint(account_tag, tunnel_id, secret, None)
}

/// [`encode_tunnel_token`] with cloudflared's optional `"e"` (endpoint) field. DockFlare's
/// emulator puts its public URL there, for the local edge to find it.
pub fn encode_tunnel_token_with_endpoint(
    account_tag: &str,
    tunnel_id: &str,
    secret: &[u8],
    endpoint: Option<&str>,
) -> String {
    let json = TokenJson {
        a: account_tag.to_string(),
        s: STANDARD.encode(secret),
        t: tunnel_id.to_string(),
        e: endpoint.map(str::to_string),
    };
    // Serializing a struct of strings cannot fail.
    let bytes = serde_json::to_vec(&json).unwrap_or_default();
    STANDARD.encode(bytes)
}

/// Decodes a tunnel token as cloudflared does (standard alphabet, padding
/// required); surrounding whitespace is ignored.
pub fn decode_tunnel_token(token: &str) -> Result<TunnelToken, TunnelTokenError> {
    let bytes = STANDARD.decode(token.trim()).map_err(|_| TunnelTokenError::Base64)?;
    let json: TokenJson = serde_json::from_slice(&bytes).map_err(|e| TunnelTokenError::Json(e.to_string()))?;
    let secret = STANDARD.decode(&json.s).map_err(|_| TunnelTokenError::SecretBase64)?;
    let tunnel_id = uuid::Uuid::parse_str(&json.t).map_err(|_| TunnelTokenError::TunnelId)?;
    Ok(TunnelToken { account_tag: json.a, tunnel_id: tunnel_id.hyphenated().to_string(), secret })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of cloudflare-api.md §8.1.
    const EXAMPLE: &str = "eyJhIjoiNjk5ZDk4NjQyYzU2NGQyZTg1NWU5NjYxODk5YjcyNTIiLCJzIjoiQUFFQ0F3UUZCZ2NJQ1FvTERBME9EeEFSRWhNVUZSWVhHQmthR3h3ZEhoOD0iLCJ0IjoiYzE3NDRmOGItZmFhMS00OGE0LTllNWMtMDJhYzkyMTQ2N2ZhIn0=";
    const ACCOUNT: &str = "699d98642c564d2e855e9661899b7252";
    const TUNNEL: &str = "c1744f8b-faa1-48a4-9e5c-02ac921467fa";

    fn secret() -> Vec<u8> {
        (0u8..32).collect()
    }

    #[test]
    fn token_encodes_like_cloudflared() {
        assert_eq!(encode_tunnel_token(ACCOUNT, TUNNEL, &secret()), EXAMPLE);
    }

    #[test]
    fn the_endpoint_goes_last_and_decoding_ignores_it() {
        let token = encode_tunnel_token_with_endpoint(ACCOUNT, TUNNEL, &secret(), Some("http://emu:8788/client/v4"));
        let json = String::from_utf8(STANDARD.decode(&token).unwrap_or_default()).unwrap_or_default();
        assert!(json.ends_with(r#","e":"http://emu:8788/client/v4"}"#), "{json}");
        assert_eq!(decode_tunnel_token(&token).map(|t| t.tunnel_id), Ok(TUNNEL.to_string()));
        assert_eq!(encode_tunnel_token_with_endpoint(ACCOUNT, TUNNEL, &secret(), None), EXAMPLE);
    }

    #[test]
    fn token_decodes() {
        let token = decode_tunnel_token(EXAMPLE);
        assert_eq!(token, Ok(TunnelToken { account_tag: ACCOUNT.into(), tunnel_id: TUNNEL.into(), secret: secret() }));
        assert_eq!(decode_tunnel_token(&format!(" {EXAMPLE}\n")).map(|t| t.tunnel_id), Ok(TUNNEL.to_string()));
    }

    #[test]
    fn bad_tokens_are_rejected() {
        assert_eq!(decode_tunnel_token(EXAMPLE.trim_end_matches('=')), Err(TunnelTokenError::Base64));
        assert_eq!(decode_tunnel_token("not base64!"), Err(TunnelTokenError::Base64));
        assert!(matches!(decode_tunnel_token(&STANDARD.encode("{}")), Err(TunnelTokenError::Json(_))));
        let bad_id = STANDARD.encode(r#"{"a":"x","s":"AAAA","t":"nope"}"#);
        assert_eq!(decode_tunnel_token(&bad_id), Err(TunnelTokenError::TunnelId));
    }

    #[test]
    fn debug_hides_the_secret() {
        let token = TunnelToken { account_tag: "a".into(), tunnel_id: "t".into(), secret: vec![42; 32] };
        assert!(!format!("{token:?}").contains("42"));
    }

    #[test]
    fn requests_omit_what_is_unset() {
        let create =
            CreateTunnelRequest { name: "t".into(), config_src: Some("cloudflare".into()), tunnel_secret: None };
        assert_eq!(serde_json::to_string(&create).ok(), Some(r#"{"name":"t","config_src":"cloudflare"}"#.into()));
        let record = DnsRecordRequest {
            record_type: "CNAME".into(),
            name: "app.example.com".into(),
            content: "x.cfargotunnel.com".into(),
            proxied: Some(true),
            ttl: Some(1),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&record).ok(),
            Some(
                r#"{"type":"CNAME","name":"app.example.com","content":"x.cfargotunnel.com","proxied":true,"ttl":1}"#
                    .into()
            )
        );
        let catch_all = IngressRule { service: "http_status:404".into(), ..Default::default() };
        assert_eq!(serde_json::to_string(&catch_all).ok(), Some(r#"{"service":"http_status:404"}"#.into()));
    }

    #[test]
    fn access_requests_omit_what_is_unset_and_answers_parse_tolerantly() {
        let request = AccessAppRequest {
            app_type: "self_hosted".into(),
            domain: "a.example.com".into(),
            name: "a".into(),
            policies: vec![AccessPolicyLink { id: "p1".into(), precedence: 1 }],
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&request).ok(),
            Some(
                r#"{"type":"self_hosted","domain":"a.example.com","name":"a","allowed_idps":[],"tags":[],"policies":[{"id":"p1","precedence":1}]}"#
                    .into()
            )
        );
        let answer = r#"{"id":"app1","aud":"ab","name":"a","domain":"a.example.com","type":"self_hosted",
            "session_duration":"24h","allowed_idps":null,"tags":["t"],"cors_headers":null,"destinations":[],
            "policies":[{"id":"p1","name":"staff","decision":"allow","precedence":1,"reusable":true,
              "include":[{"everyone":{}}],"exclude":null,"approval_groups":[]}]}"#;
        let app: Option<AccessApp> = serde_json::from_str(answer).ok();
        assert_eq!(
            app.as_ref().map(|a| (
                a.app_type.as_str(),
                a.allowed_idps.len(),
                a.policies[0].precedence,
                a.policies[0].exclude.len()
            )),
            Some(("self_hosted", 0, Some(1), 0))
        );
        let member: Option<AccountMember> = serde_json::from_str(
            r#"{"id":"m","status":"accepted","user":{"id":"u","email":"o@example.com","first_name":null},"roles":[]}"#,
        )
        .ok();
        assert_eq!(member.map(|m| m.user.email), Some("o@example.com".into()));
        let idp: Option<IdentityProvider> =
            serde_json::from_str(r#"{"id":"i","name":"One-time PIN","type":"onetimepin","config":{}}"#).ok();
        assert_eq!(idp.map(|i| i.kind), Some("onetimepin".into()));
    }

    #[test]
    fn foreign_configuration_round_trips() {
        let text = r#"{"ingress":[{"hostname":"a.example.com","path":"^/api/","service":"http://a:80",
            "originRequest":{"noTLSVerify":true,"connectTimeout":30,"access":{"required":true,"teamName":"t","audTag":["x"]}},
            "futureKey":[1,2]},{"service":"http_status:404"}],
            "originRequest":{"http2Origin":true},"warp-routing":{"enabled":false},"somethingNew":{"a":1}}"#;
        let original: Value = serde_json::from_str(text).unwrap_or_default();
        let parsed: Result<TunnelConfig, _> = serde_json::from_value(original.clone());
        let again = parsed.as_ref().ok().and_then(|c| serde_json::to_value(c).ok());
        assert_eq!(again, Some(original));
        assert_eq!(parsed.ok().map(|c| c.ingress[0].extra.contains_key("futureKey")), Some(true));
    }

    #[test]
    fn answers_parse_tolerantly() {
        let text = r#"{"success":false,"errors":[{"code":6003,"message":"Invalid request headers",
            "error_chain":[{"code":6111,"message":"Invalid format for Authorization header"}]}],
            "messages":[],"result":null,"unknown":true}"#;
        let envelope: Option<Envelope<Tunnel>> = serde_json::from_str(text).ok();
        let error =
            envelope.as_ref().map(|e| (e.success, e.errors[0].code, e.errors[0].extra.contains_key("error_chain")));
        assert_eq!(error, Some((false, 6003, true)));

        let record = r#"{"id":"0123","type":"CNAME","name":"a.example.com","content":"b","proxied":true,"ttl":1,
            "comment":null,"tags":null,"proxiable":true,"settings":{},"created_on":"x","modified_on":"y"}"#;
        let record: Option<DnsRecord> = serde_json::from_str(record).ok();
        assert_eq!(
            record.as_ref().map(|r| (r.comment.clone(), r.tags.len(), r.extra.contains_key("proxiable"))),
            Some((None, 0, true))
        );

        let page = r#"{"page":1,"per_page":100,"count":0,"total_count":0}"#;
        let info: Option<ResultInfo> = serde_json::from_str(page).ok();
        assert_eq!(info.map(|i| i.total_pages), Some(None));
    }
}
