//! The Cloudflare v4 API client: bearer token, tolerant envelope parsing
//! (`success:false` on HTTP 200 is an error; codes above 65535), pagination
//! to the end, retries of what can succeed (429 honouring Retry-After, 5xx
//! with backoff on idempotent requests) and never of what cannot (409/1013,
//! 1056 …), and a request budget under Cloudflare's 1 200 requests per five
//! minutes.

use crate::codes;
use crate::types::{
    AccessApp, AccessAppRequest, AccessOrganization, AccessPolicy, AccessPolicyRequest, AccessTag, AccountMember,
    ApiMessage, CreateTunnelRequest, DnsRecord, DnsRecordRequest, Envelope, IdentityProvider, ResultInfo,
    TokenVerification, Tunnel, TunnelConfig, TunnelConfiguration, Zone,
};
use dockflare_common::error_text::error_chain;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

/// Requests sent at most, by default: a burst of 20, then 1 100 per five
/// minutes — 1 120 in any five minutes, under Cloudflare's 1 200.
pub const DEFAULT_BURST: u32 = 20;
pub const DEFAULT_REQUESTS_PER_5_MINUTES: u32 = 1_100;
const MAX_ATTEMPTS: u32 = 5;
const RETRY_AFTER_CAP: Duration = Duration::from_secs(60);
const TIMEOUT: Duration = Duration::from_secs(30);

/// A failed Cloudflare call.
#[derive(Debug, thiserror::Error)]
pub enum CfError {
    /// Cloudflare answered with errors.
    #[error("{}", describe_api_error(*status, errors))]
    Api { status: u16, errors: Vec<ApiMessage> },
    /// No usable answer: connection, timeout, TLS.
    #[error("Cloudflare unreachable: {0}")]
    Transport(String),
    /// An answer that is not Cloudflare's JSON.
    #[error("unexpected Cloudflare answer (HTTP {status}): {detail}")]
    Decode { status: u16, detail: String },
}

fn describe_api_error(status: u16, errors: &[ApiMessage]) -> String {
    let parts: Vec<String> = errors.iter().map(|e| format!("{} {}", e.code, e.message.trim_end())).collect();
    if parts.is_empty() {
        format!("Cloudflare error (HTTP {status})")
    } else {
        format!("Cloudflare error {} (HTTP {status})", parts.join("; "))
    }
}

impl CfError {
    /// Whether Cloudflare reported this error code.
    pub fn has_code(&self, code: i64) -> bool {
        matches!(self, CfError::Api { errors, .. } if errors.iter().any(|e| e.code == code))
    }

    /// The HTTP status, when Cloudflare answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            CfError::Api { status, .. } | CfError::Decode { status, .. } => Some(*status),
            CfError::Transport(_) => None,
        }
    }

    /// What went wrong, in the words an operator acts on: no answer at all (DNS, network, TLS),
    /// an answer that refuses the token or a permission, or an outage on Cloudflare's side.
    pub fn cause(&self) -> &'static str {
        match self {
            CfError::Transport(_) => "unreachable (DNS/network)",
            CfError::Api { status, .. } | CfError::Decode { status, .. } if *status == 429 => {
                "rate-limited (too many requests)"
            }
            CfError::Api { status, .. } | CfError::Decode { status, .. } if *status >= 500 => {
                "unavailable (Cloudflare's side)"
            }
            CfError::Api { .. } => "refused (token/permission)",
            CfError::Decode { .. } => "not answering as Cloudflare's API (is CF_API_URL right?)",
        }
    }

    /// Whether the token lacks the permission for the call: HTTP 403, or code 9109
    /// ("Unauthorized to access requested resource") or 10000 ("Authentication error").
    pub fn is_permission_denied(&self) -> bool {
        self.status() == Some(403)
            || self.has_code(codes::UNAUTHORIZED_RESOURCE)
            || self.has_code(codes::AUTHENTICATION_ERROR)
    }

    /// Whether trying again later may succeed (rate limits, outages).
    pub fn is_transient(&self) -> bool {
        match self {
            CfError::Transport(_) => true,
            CfError::Api { status, .. } | CfError::Decode { status, .. } => *status == 429 || *status >= 500,
        }
    }
}

/// Who the client acts for.
#[derive(Clone)]
pub struct CloudflareSettings {
    /// Base URL, e.g. https://api.cloudflare.com/client/v4
    pub api_url: String,
    pub token: SecretString,
    pub account_id: String,
    /// Request budget: at most this many requests in five minutes (after a burst).
    pub requests_per_5_minutes: u32,
}

impl fmt::Debug for CloudflareSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudflareSettings")
            .field("api_url", &self.api_url)
            .field("account_id", &self.account_id)
            .field("requests_per_5_minutes", &self.requests_per_5_minutes)
            .field("token", &"[redacted]")
            .finish()
    }
}

/// The client. Cheap to clone; clones share the request budget.
#[derive(Clone)]
pub struct CloudflareClient {
    http: reqwest::Client,
    settings: CloudflareSettings,
    budget: Arc<DefaultDirectRateLimiter>,
    counters: Arc<RequestCounters>,
}

/// How many requests this client sent, by outcome.
#[derive(Debug, Default)]
pub struct RequestCounters {
    pub sent: std::sync::atomic::AtomicU64,
    pub retried: std::sync::atomic::AtomicU64,
    pub failed: std::sync::atomic::AtomicU64,
}

/// Which requests may be repeated after an uncertain outcome (5xx, timeout).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Idempotence {
    Safe,
    /// A POST that may have happened: only retried on 429 (surely not done).
    Unsafe,
}

impl CloudflareClient {
    pub fn new(settings: CloudflareSettings) -> Result<CloudflareClient, CfError> {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("dockflare-master/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CfError::Transport(e.to_string()))?;
        let per_request = Duration::from_secs(300) / settings.requests_per_5_minutes.max(1);
        let quota = Quota::with_period(per_request)
            .map(|q| q.allow_burst(NonZeroU32::new(DEFAULT_BURST).unwrap_or(NonZeroU32::MIN)))
            .ok_or_else(|| CfError::Transport("invalid request budget".into()))?;
        Ok(CloudflareClient {
            http,
            settings: CloudflareSettings { api_url: settings.api_url.trim_end_matches('/').to_string(), ..settings },
            budget: Arc::new(RateLimiter::direct(quota)),
            counters: Arc::new(RequestCounters::default()),
        })
    }

    pub fn account_id(&self) -> &str {
        &self.settings.account_id
    }

    pub fn counters(&self) -> &RequestCounters {
        &self.counters
    }

    /// The request budget: requests per 5 minutes (Cloudflare's limit is 1,200).
    pub fn requests_per_5_minutes(&self) -> u32 {
        self.settings.requests_per_5_minutes
    }

    /// One call with retries; returns the result and, for lists, `result_info`.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&dyn erased::Body>,
        idempotence: Idempotence,
    ) -> Result<(Option<T>, Option<ResultInfo>), CfError> {
        use std::sync::atomic::Ordering::Relaxed;
        let url = format!("{}{}", self.settings.api_url, path);
        let mut attempt = 0;
        let operation = operation(&method, path);
        loop {
            attempt += 1;
            let waiting = std::time::Instant::now();
            self.budget.until_ready().await;
            let waited = waiting.elapsed();
            if waited > Duration::from_millis(1) {
                metrics::counter!("dockflare_cloudflare_budget_waits_total").increment(1);
                metrics::histogram!("dockflare_cloudflare_budget_wait_seconds").record(waited.as_secs_f64());
            }
            let mut request =
                self.http.request(method.clone(), &url).bearer_auth(self.settings.token.expose_secret()).query(query);
            if let Some(body) = body {
                request = request.header("content-type", "application/json").body(body.to_json());
            }
            self.counters.sent.fetch_add(1, Relaxed);
            let outcome = match request.send().await {
                Err(error) => {
                    metrics::counter!("dockflare_cloudflare_requests_total", "operation" => operation.clone(), "code" => "transport")
                        .increment(1);
                    Err((CfError::Transport(error_chain(&error)), None))
                }
                Ok(response) => {
                    let status = response.status();
                    metrics::counter!("dockflare_cloudflare_requests_total", "operation" => operation.clone(), "code" => status.as_u16().to_string())
                        .increment(1);
                    let retry_after = retry_after(response.headers());
                    let bytes = response.bytes().await.map_err(|e| CfError::Transport(error_chain(&e)));
                    match bytes {
                        Err(error) => Err((error, None)),
                        Ok(bytes) => parse::<T>(status, &bytes).map_err(|error| (error, retry_after)),
                    }
                }
            };
            let (error, retry_after) = match outcome {
                Ok(parsed) => return Ok(parsed),
                Err(pair) => pair,
            };
            let retryable = match (&error, idempotence) {
                (error, _) if error.status() == Some(429) => true,
                (error, Idempotence::Safe) => error.is_transient(),
                (_, Idempotence::Unsafe) => false,
            };
            if !retryable || attempt >= MAX_ATTEMPTS {
                self.counters.failed.fetch_add(1, Relaxed);
                return Err(error);
            }
            self.counters.retried.fetch_add(1, Relaxed);
            metrics::counter!("dockflare_cloudflare_retries_total", "operation" => operation.clone()).increment(1);
            let backoff = Duration::from_millis(250 * 2u64.pow(attempt - 1));
            let jitter = Duration::from_millis(rand::random::<u64>() % 250);
            let wait = retry_after.map(|d| d.min(RETRY_AFTER_CAP)).unwrap_or(backoff + jitter);
            tracing::debug!(message = "Retrying a Cloudflare call.", %method, path, attempt, wait_ms = wait.as_millis() as u64, %error);
            tokio::time::sleep(wait).await;
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str, query: &[(&str, String)]) -> Result<T, CfError> {
        let (result, _) = self.call::<T>(Method::GET, path, query, None, Idempotence::Safe).await?;
        result.ok_or_else(|| CfError::Decode { status: 200, detail: format!("no result from GET {path}") })
    }

    /// Every page of a list.
    async fn list<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        per_page: u32,
    ) -> Result<Vec<T>, CfError> {
        let mut all = Vec::new();
        let mut page = 1u32;
        loop {
            let mut paged = query.to_vec();
            paged.push(("page", page.to_string()));
            paged.push(("per_page", per_page.to_string()));
            let (result, info) = self.call::<Vec<T>>(Method::GET, path, &paged, None, Idempotence::Safe).await?;
            let items = result.unwrap_or_default();
            let count = items.len();
            all.extend(items);
            let more = match info {
                Some(info) => match info.total_pages {
                    Some(total_pages) => u64::from(page) < total_pages,
                    None => count > 0 && count as u64 >= u64::from(per_page),
                },
                None => false,
            };
            if !more || count == 0 {
                return Ok(all);
            }
            page += 1;
        }
    }

    /// Verifies the token: the account endpoint first (account-owned
    /// tokens), then the user endpoint.
    pub async fn verify_token(&self) -> Result<TokenVerification, CfError> {
        let account_path = format!("/accounts/{}/tokens/verify", self.settings.account_id);
        match self.get::<TokenVerification>(&account_path, &[]).await {
            Ok(verification) => Ok(verification),
            Err(error) if error.is_transient() => Err(error),
            Err(_) => self.get::<TokenVerification>("/user/tokens/verify", &[]).await,
        }
    }

    /// Live (not deleted) tunnels named exactly `name`.
    pub async fn find_tunnel(&self, name: &str) -> Result<Option<Tunnel>, CfError> {
        let path = format!("/accounts/{}/cfd_tunnel", self.settings.account_id);
        let tunnels: Vec<Tunnel> =
            self.list(&path, &[("name", name.to_string()), ("is_deleted", "false".into())], 100).await?;
        Ok(tunnels.into_iter().find(|t| t.name == name && t.deleted_at.is_none()))
    }

    /// Every live tunnel whose name starts with `prefix`.
    pub async fn list_tunnels(&self, prefix: &str) -> Result<Vec<Tunnel>, CfError> {
        let path = format!("/accounts/{}/cfd_tunnel", self.settings.account_id);
        let tunnels: Vec<Tunnel> =
            self.list(&path, &[("include_prefix", prefix.to_string()), ("is_deleted", "false".into())], 1000).await?;
        Ok(tunnels.into_iter().filter(|t| t.name.starts_with(prefix) && t.deleted_at.is_none()).collect())
    }

    /// Creates a remotely managed tunnel (config_src: cloudflare).
    pub async fn create_tunnel(&self, name: &str) -> Result<Tunnel, CfError> {
        let path = format!("/accounts/{}/cfd_tunnel", self.settings.account_id);
        let body =
            CreateTunnelRequest { name: name.to_string(), config_src: Some("cloudflare".into()), tunnel_secret: None };
        let (result, _) = self.call::<Tunnel>(Method::POST, &path, &[], Some(&body), Idempotence::Unsafe).await?;
        result.ok_or_else(|| CfError::Decode { status: 200, detail: "no tunnel in the create answer".into() })
    }

    /// The token a connector runs the tunnel with.
    pub async fn tunnel_token(&self, tunnel_id: &str) -> Result<SecretString, CfError> {
        let path = format!("/accounts/{}/cfd_tunnel/{tunnel_id}/token", self.settings.account_id);
        self.get::<String>(&path, &[]).await.map(SecretString::from)
    }

    /// Deletes a tunnel (and its stale connections).
    pub async fn delete_tunnel(&self, tunnel_id: &str) -> Result<(), CfError> {
        let path = format!("/accounts/{}/cfd_tunnel/{tunnel_id}", self.settings.account_id);
        let query = [("cascade", "true".to_string())];
        match self.call::<serde_json::Value>(Method::DELETE, &path, &query, None, Idempotence::Safe).await {
            Ok(_) => Ok(()),
            Err(error) if error.status() == Some(404) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// The connectors (cloudflared processes) that hold the tunnel now, each with the
    /// configuration version it applied.
    pub async fn tunnel_connectors(&self, tunnel_id: &str) -> Result<Vec<super::types::TunnelClient>, CfError> {
        let path = format!("/accounts/{}/cfd_tunnel/{tunnel_id}/connections", self.settings.account_id);
        self.get::<Vec<super::types::TunnelClient>>(&path, &[]).await
    }

    /// A tunnel by id.
    pub async fn get_tunnel(&self, tunnel_id: &str) -> Result<Tunnel, CfError> {
        let path = format!("/accounts/{}/cfd_tunnel/{tunnel_id}", self.settings.account_id);
        self.get(&path, &[]).await
    }

    /// The tunnel's remote configuration; `None` before the first PUT (1055).
    pub async fn get_configuration(&self, tunnel_id: &str) -> Result<Option<TunnelConfiguration>, CfError> {
        let path = format!("/accounts/{}/cfd_tunnel/{tunnel_id}/configurations", self.settings.account_id);
        match self.call::<TunnelConfiguration>(Method::GET, &path, &[], None, Idempotence::Safe).await {
            Ok((result, _)) => Ok(result),
            Err(error) if error.has_code(codes::TUNNEL_CONFIGURATION_NOT_FOUND) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Replaces the tunnel's remote configuration.
    pub async fn put_configuration(
        &self,
        tunnel_id: &str,
        config: &TunnelConfig,
    ) -> Result<TunnelConfiguration, CfError> {
        #[derive(Serialize)]
        struct Put<'a> {
            config: &'a TunnelConfig,
        }
        let path = format!("/accounts/{}/cfd_tunnel/{tunnel_id}/configurations", self.settings.account_id);
        let (result, _) =
            self.call::<TunnelConfiguration>(Method::PUT, &path, &[], Some(&Put { config }), Idempotence::Safe).await?;
        result.ok_or_else(|| CfError::Decode { status: 200, detail: "no configuration in the PUT answer".into() })
    }

    /// Every zone of the account.
    pub async fn list_zones(&self) -> Result<Vec<Zone>, CfError> {
        self.list("/zones", &[("account.id", self.settings.account_id.clone())], 50).await
    }

    /// DNS records of a zone named `name` (every type).
    pub async fn dns_records_named(&self, zone_id: &str, name: &str) -> Result<Vec<DnsRecord>, CfError> {
        let path = format!("/zones/{zone_id}/dns_records");
        self.list(&path, &[("name", name.to_string())], 100).await
    }

    /// Every DNS record of a zone.
    pub async fn dns_records(&self, zone_id: &str) -> Result<Vec<DnsRecord>, CfError> {
        let path = format!("/zones/{zone_id}/dns_records");
        self.list(&path, &[], 5000).await
    }

    pub async fn create_dns_record(&self, zone_id: &str, record: &DnsRecordRequest) -> Result<DnsRecord, CfError> {
        let path = format!("/zones/{zone_id}/dns_records");
        let (result, _) = self.call::<DnsRecord>(Method::POST, &path, &[], Some(record), Idempotence::Unsafe).await?;
        result.ok_or_else(|| CfError::Decode { status: 200, detail: "no record in the create answer".into() })
    }

    pub async fn update_dns_record(
        &self,
        zone_id: &str,
        id: &str,
        record: &DnsRecordRequest,
    ) -> Result<DnsRecord, CfError> {
        let path = format!("/zones/{zone_id}/dns_records/{id}");
        let (result, _) = self.call::<DnsRecord>(Method::PUT, &path, &[], Some(record), Idempotence::Safe).await?;
        result.ok_or_else(|| CfError::Decode { status: 200, detail: "no record in the update answer".into() })
    }

    pub async fn delete_dns_record(&self, zone_id: &str, id: &str) -> Result<(), CfError> {
        let path = format!("/zones/{zone_id}/dns_records/{id}");
        match self.call::<serde_json::Value>(Method::DELETE, &path, &[], None, Idempotence::Safe).await {
            Ok(_) => Ok(()),
            Err(error) if error.has_code(codes::DNS_RECORD_NOT_FOUND) || error.status() == Some(404) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Every Access application of the account.
    pub async fn list_access_apps(&self) -> Result<Vec<AccessApp>, CfError> {
        let path = format!("/accounts/{}/access/apps", self.settings.account_id);
        self.list(&path, &[], 100).await
    }

    /// Creates an Access application (HTTP 201).
    pub async fn create_access_app(&self, app: &AccessAppRequest) -> Result<AccessApp, CfError> {
        let path = format!("/accounts/{}/access/apps", self.settings.account_id);
        let (result, _) = self.call::<AccessApp>(Method::POST, &path, &[], Some(app), Idempotence::Unsafe).await?;
        result.ok_or_else(|| CfError::Decode { status: 201, detail: "no application in the create answer".into() })
    }

    /// Replaces an Access application (what `app` omits takes its default).
    pub async fn update_access_app(&self, id: &str, app: &AccessAppRequest) -> Result<AccessApp, CfError> {
        let path = format!("/accounts/{}/access/apps/{id}", self.settings.account_id);
        let (result, _) = self.call::<AccessApp>(Method::PUT, &path, &[], Some(app), Idempotence::Safe).await?;
        result.ok_or_else(|| CfError::Decode { status: 200, detail: "no application in the update answer".into() })
    }

    /// Deletes an Access application (HTTP 202); one already gone (404) is not an error.
    pub async fn delete_access_app(&self, id: &str) -> Result<(), CfError> {
        let path = format!("/accounts/{}/access/apps/{id}", self.settings.account_id);
        self.delete_gone_is_ok(&path).await
    }

    /// Every reusable Access policy of the account.
    pub async fn list_access_policies(&self) -> Result<Vec<AccessPolicy>, CfError> {
        let path = format!("/accounts/{}/access/policies", self.settings.account_id);
        self.list(&path, &[], 100).await
    }

    /// Creates a reusable Access policy (HTTP 201).
    pub async fn create_access_policy(&self, policy: &AccessPolicyRequest) -> Result<AccessPolicy, CfError> {
        let path = format!("/accounts/{}/access/policies", self.settings.account_id);
        let (result, _) =
            self.call::<AccessPolicy>(Method::POST, &path, &[], Some(policy), Idempotence::Unsafe).await?;
        result.ok_or_else(|| CfError::Decode { status: 201, detail: "no policy in the create answer".into() })
    }

    /// Replaces a reusable Access policy.
    pub async fn update_access_policy(&self, id: &str, policy: &AccessPolicyRequest) -> Result<AccessPolicy, CfError> {
        let path = format!("/accounts/{}/access/policies/{id}", self.settings.account_id);
        let (result, _) = self.call::<AccessPolicy>(Method::PUT, &path, &[], Some(policy), Idempotence::Safe).await?;
        result.ok_or_else(|| CfError::Decode { status: 200, detail: "no policy in the update answer".into() })
    }

    /// Deletes a reusable Access policy (HTTP 202); one already gone (404) is not an error.
    /// Cloudflare refuses while applications link it.
    pub async fn delete_access_policy(&self, id: &str) -> Result<(), CfError> {
        let path = format!("/accounts/{}/access/policies/{id}", self.settings.account_id);
        self.delete_gone_is_ok(&path).await
    }

    /// The login methods configured for the account.
    pub async fn list_identity_providers(&self) -> Result<Vec<IdentityProvider>, CfError> {
        let path = format!("/accounts/{}/access/identity_providers", self.settings.account_id);
        self.list(&path, &[], 100).await
    }

    /// The account's Zero Trust organization (team domain); `None` when Zero Trust is not set
    /// up (404, or no result).
    pub async fn access_organization(&self) -> Result<Option<AccessOrganization>, CfError> {
        let path = format!("/accounts/{}/access/organizations", self.settings.account_id);
        match self.call::<AccessOrganization>(Method::GET, &path, &[], None, Idempotence::Safe).await {
            Ok((result, _)) => Ok(result),
            Err(error) if error.status() == Some(404) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Every member of the account.
    pub async fn list_account_members(&self) -> Result<Vec<AccountMember>, CfError> {
        let path = format!("/accounts/{}/members", self.settings.account_id);
        self.list(&path, &[], 50).await
    }

    /// Every Access tag of the account.
    pub async fn list_access_tags(&self) -> Result<Vec<AccessTag>, CfError> {
        let path = format!("/accounts/{}/access/tags", self.settings.account_id);
        self.list(&path, &[], 100).await
    }

    /// Creates an Access tag (applications may then name it).
    pub async fn create_access_tag(&self, name: &str) -> Result<AccessTag, CfError> {
        let path = format!("/accounts/{}/access/tags", self.settings.account_id);
        let body = AccessTag { name: name.to_string() };
        let (result, _) = self.call::<AccessTag>(Method::POST, &path, &[], Some(&body), Idempotence::Unsafe).await?;
        result.ok_or_else(|| CfError::Decode { status: 201, detail: "no tag in the create answer".into() })
    }

    /// A DELETE whose target may be gone already (404 is success).
    async fn delete_gone_is_ok(&self, path: &str) -> Result<(), CfError> {
        match self.call::<serde_json::Value>(Method::DELETE, path, &[], None, Idempotence::Safe).await {
            Ok(_) => Ok(()),
            Err(error) if error.status() == Some(404) => Ok(()),
            Err(error) => Err(error),
        }
    }
}

/// Parses an answer: the envelope, `success`, errors.
fn parse<T: DeserializeOwned>(status: StatusCode, bytes: &[u8]) -> Result<(Option<T>, Option<ResultInfo>), CfError> {
    let envelope: Envelope<T> = serde_json::from_slice(bytes).map_err(|error| CfError::Decode {
        status: status.as_u16(),
        detail: format!("{error}; body starts {:?}", String::from_utf8_lossy(&bytes[..bytes.len().min(200)])),
    })?;
    if !status.is_success() || !envelope.success {
        return Err(CfError::Api { status: status.as_u16(), errors: envelope.errors });
    }
    Ok((envelope.result, envelope.result_info))
}

/// `Retry-After` in seconds (or an HTTP date, which we treat as "a while").
/// A call's low-cardinality name: the method and the path with every id replaced by `:id`
/// (`PUT /accounts/:id/cfd_tunnel/:id/configurations`).
fn operation(method: &Method, path: &str) -> String {
    const WORDS: &[&str] = &[
        "accounts",
        "cfd_tunnel",
        "configurations",
        "token",
        "connections",
        "zones",
        "dns_records",
        "user",
        "tokens",
        "verify",
        "access",
        "apps",
        "policies",
        "identity_providers",
        "organizations",
        "members",
        "tags",
    ];
    let template: Vec<&str> = path
        .split('/')
        .map(|segment| if segment.is_empty() || WORDS.contains(&segment) { segment } else { ":id" })
        .collect();
    format!("{method} {}", template.join("/"))
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    match value.trim().parse::<u64>() {
        Ok(seconds) => Some(Duration::from_secs(seconds)),
        Err(_) => Some(Duration::from_secs(5)),
    }
}

/// Request bodies behind one object-safe trait.
mod erased {
    pub trait Body: Send + Sync {
        fn to_json(&self) -> Vec<u8>;
    }

    impl<T: serde::Serialize + Send + Sync> Body for T {
        fn to_json(&self) -> Vec<u8> {
            serde_json::to_vec(self).unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_name_the_call_without_its_ids() {
        assert_eq!(
            operation(&Method::PUT, "/accounts/0123abcd/cfd_tunnel/5f3c-11/configurations"),
            "PUT /accounts/:id/cfd_tunnel/:id/configurations"
        );
        assert_eq!(operation(&Method::GET, "/user/tokens/verify"), "GET /user/tokens/verify");
        assert_eq!(operation(&Method::DELETE, "/zones/z1/dns_records/r9"), "DELETE /zones/:id/dns_records/:id");
        assert_eq!(operation(&Method::GET, "/accounts/a1/access/apps"), "GET /accounts/:id/access/apps");
        assert_eq!(operation(&Method::PUT, "/accounts/a1/access/apps/5f3c-11"), "PUT /accounts/:id/access/apps/:id");
        assert_eq!(
            operation(&Method::DELETE, "/accounts/a1/access/policies/9e1d"),
            "DELETE /accounts/:id/access/policies/:id"
        );
        assert_eq!(
            operation(&Method::GET, "/accounts/a1/access/identity_providers"),
            "GET /accounts/:id/access/identity_providers"
        );
        assert_eq!(
            operation(&Method::GET, "/accounts/a1/access/organizations"),
            "GET /accounts/:id/access/organizations"
        );
        assert_eq!(operation(&Method::GET, "/accounts/a1/members"), "GET /accounts/:id/members");
        assert_eq!(operation(&Method::POST, "/accounts/a1/access/tags"), "POST /accounts/:id/access/tags");
    }

    #[test]
    fn permission_refusals_are_recognized() {
        let api = |status: u16, code: i64| CfError::Api { status, errors: vec![ApiMessage::new(code, "x")] };
        assert!(api(403, 10000).is_permission_denied());
        assert!(api(403, 9109).is_permission_denied());
        assert!(api(400, 10000).is_permission_denied());
        assert!(api(200, 9109).is_permission_denied());
        assert!(!api(400, 1001).is_permission_denied());
        assert!(!api(404, 1003).is_permission_denied());
        assert!(!CfError::Transport("down".into()).is_permission_denied());
    }

    #[test]
    fn envelopes_are_parsed_tolerantly() {
        let ok = br#"{"success":true,"errors":[],"messages":[],"result":{"id":"x","status":"active"},"extra":1}"#;
        let parsed = parse::<TokenVerification>(StatusCode::OK, ok).map(|(r, _)| r.map(|v| v.id));
        assert_eq!(parsed.ok().flatten(), Some("x".to_string()));

        let false_on_200 = br#"{"success":false,"errors":[{"code":81053,"message":"An A, AAAA, or CNAME record with that host already exists."}],"messages":[],"result":null}"#;
        let error = parse::<serde_json::Value>(StatusCode::OK, false_on_200).err();
        assert!(error.as_ref().is_some_and(|e| e.has_code(81053)), "{error:?}");
        assert_eq!(
            error.map(|e| e.to_string()),
            Some("Cloudflare error 81053 An A, AAAA, or CNAME record with that host already exists. (HTTP 200)".into())
        );

        let html = b"<html>502 Bad Gateway</html>";
        let error = parse::<serde_json::Value>(StatusCode::BAD_GATEWAY, html).err();
        assert!(error.as_ref().is_some_and(|e| e.is_transient()), "{error:?}");
    }
}
