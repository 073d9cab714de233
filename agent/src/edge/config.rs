//! Following the tunnel's remote configuration, as cloudflared's orchestrator does: fetch it from
//! the emulator's connector endpoint at start, then long-poll for the next version and apply only
//! versions newer than the one running (a configuration that does not compile is logged and
//! skipped; the previous one keeps serving).
//!
//! The endpoint is `GET {origin of the token's "e"}/__emulator/connector/configuration`, with the
//! tunnel token as `Authorization: Bearer`, `connector_id` (this edge's id, which the emulator
//! lists as the tunnel's connector) and `wait_for_version=N` (answer once version N exists, or
//! after the emulator's long-poll timeout). 200 carries `{"version", "config", …}`; 404 means no
//! configuration yet; 401 a token the emulator does not know. The long-poll follows the first
//! answer, and each new version, at once; otherwise the next request starts at least
//! [`POLL_INTERVAL`] after the previous one, so an emulator that ignores `wait_for_version` is
//! polled once a second. Failures back off up to 10 s.
//!
//! The answer's `"access"` part is the account's Access view ([`super::access`]) with a
//! `fingerprint`; the edge sends the fingerprint it last processed back as `access_fingerprint=`,
//! so the long-poll also answers when Access changes. A new view applies to the running routes at
//! once; a part that cannot be read at all is logged (once per fingerprint) and the previous view
//! stays; an answer without the part (an emulator that knows no Access) keeps the current view.

use super::access::{percent_encode, AccessView};
use super::origin::{HttpClient, ProxyBody, Tls};
use super::proxy::Routes;
use super::token::TunnelToken;
use bytes::Bytes;
use dockflare_cloudflare::types::TunnelConfig;
use dockflare_common::error_text::error_chain;
use http::{header, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The emulator's connector endpoint, relative to its origin.
pub const CONNECTOR_PATH: &str = "/__emulator/connector/configuration";
/// The shortest time between two requests.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How long the emulator may hold a long-poll (it answers after 25 s by default).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(40);
/// Backoff after failures.
const RETRY_MAX: Duration = Duration::from_secs(10);
/// Largest configuration answer read.
const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// Why the token's endpoint cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("the endpoint {0:?} is not an http:// or https:// URL with a host")]
    NotHttp(String),
}

/// The connector endpoint for `endpoint` (the token's `e`, e.g.
/// `http://host.docker.internal:8788/client/v4`): its scheme and authority with [`CONNECTOR_PATH`].
pub fn connector_url(endpoint: &str) -> Result<String, EndpointError> {
    let invalid = || EndpointError::NotHttp(endpoint.to_string());
    let uri: Uri = endpoint.trim().parse().map_err(|_| invalid())?;
    let scheme = uri.scheme_str().filter(|s| *s == "http" || *s == "https").ok_or_else(invalid)?;
    let authority = uri.authority().filter(|a| !a.host().is_empty()).ok_or_else(invalid)?;
    Ok(format!("{scheme}://{authority}{CONNECTOR_PATH}"))
}

/// One answer of the connector endpoint.
#[derive(Debug, Clone, PartialEq)]
enum Answer {
    Configuration { version: i64, config: TunnelConfig, access: Option<serde_json::Value> },
    NotYet,
    Refused { status: u16, body: String },
}

/// Fetches and applies configurations until cancelled.
pub struct Follower {
    /// [`connector_url`] of the token's endpoint.
    pub url: String,
    pub token: Arc<TunnelToken>,
    pub connector_id: String,
    pub client: HttpClient,
    pub tls: Tls,
    pub routes: watch::Sender<Option<Arc<Routes>>>,
}

impl Follower {
    pub async fn run(&self, cancel: CancellationToken) {
        let mut running: Option<i64> = None;
        // The newest version seen, applied or not (a broken one is not fetched again).
        let mut seen: Option<i64> = None;
        // The Access view enforced, and the fingerprint of the last one processed (read or not).
        let mut access = Arc::new(AccessView::default());
        let mut access_seen: Option<String> = None;
        let mut delay = POLL_INTERVAL;
        let mut failures = 0u32;
        let mut first = true;
        loop {
            let started = Instant::now();
            let wait_for = if first { None } else { Some(seen.map_or(1, |v| v + 1)) };
            first = false;
            let answer = tokio::select! {
                answer = self.fetch(wait_for, access_seen.as_deref()) => answer,
                _ = cancel.cancelled() => return,
            };
            // After the first (immediate) answer, the long-poll starts at once; a long-poll that
            // came back early with nothing new waits out the interval (an emulator that does not
            // hold requests is polled, not hammered).
            let mut pause = if wait_for.is_none() { Duration::ZERO } else { POLL_INTERVAL };
            match answer {
                Ok(Answer::Configuration { version, config, access: part }) => {
                    failures = 0;
                    delay = POLL_INTERVAL;
                    let access_changed = match part {
                        Some(part) => self.read_access(&part, &mut access, &mut access_seen),
                        None => false,
                    };
                    if access_changed {
                        pause = Duration::ZERO;
                    }
                    if seen.is_none_or(|s| version > s) {
                        seen = Some(version);
                        // Something changed: ask for the next version at once.
                        pause = Duration::ZERO;
                        match Routes::build(version, config.clone(), &self.tls) {
                            Ok(routes) => {
                                running = Some(version);
                                self.routes.send_replace(Some(Arc::new(routes.with_access(access.clone()))));
                                tracing::info!(message = "Updated to new configuration", version, config = %serde_json::to_string(&config).unwrap_or_default());
                            }
                            Err(error) => {
                                tracing::error!(message = "Invalid configuration; keeping the previous one.", version, %error, running = ?running);
                            }
                        }
                    }
                    if access_changed {
                        let current = self.routes.borrow().clone();
                        if let Some(routes) = current.filter(|r| !Arc::ptr_eq(&r.access, &access)) {
                            self.routes.send_replace(Some(Arc::new(routes.with_access(access.clone()))));
                        }
                    }
                }
                Ok(Answer::NotYet) => {
                    failures = 0;
                    delay = POLL_INTERVAL;
                    tracing::debug!(message = "No ingress configuration yet.");
                }
                Ok(Answer::Refused { status, body }) => {
                    failures += 1;
                    tracing::warn!(message = "The emulator refused the tunnel token; retrying.", status, answer = %body.trim(), retry_in_ms = delay.as_millis() as u64);
                    pause = delay;
                    delay = (delay * 2).min(RETRY_MAX);
                }
                Err(error) => {
                    failures += 1;
                    if failures == 1 || failures % 10 == 0 {
                        tracing::warn!(message = "Cannot fetch the configuration; retrying.", url = %self.url, %error, failures, retry_in_ms = delay.as_millis() as u64);
                    }
                    pause = delay;
                    delay = (delay * 2).min(RETRY_MAX);
                }
            }
            let next = started + pause;
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = cancel.cancelled() => return,
            }
        }
    }

    /// Reads an `"access"` part whose fingerprint differs from `seen`; `true` when `access` is
    /// now another view. An unreadable part leaves `access` as it was (never open).
    fn read_access(&self, part: &serde_json::Value, access: &mut Arc<AccessView>, seen: &mut Option<String>) -> bool {
        let fingerprint = part.get("fingerprint").and_then(serde_json::Value::as_str).map(str::to_string);
        if fingerprint.is_some() && fingerprint == *seen {
            return false;
        }
        *seen = fingerprint.clone();
        match AccessView::parse(part) {
            Ok((view, problems)) => {
                for problem in &problems {
                    tracing::warn!(message = "Access application not fully understood; failing closed.", problem = %problem);
                }
                if view == **access {
                    return false;
                }
                tracing::info!(
                    message = "Access view updated",
                    apps = view.apps.len(),
                    previous_apps = access.apps.len(),
                    fingerprint = fingerprint.as_deref().unwrap_or("-"),
                );
                *access = Arc::new(view);
                true
            }
            Err(error) => {
                tracing::error!(message = "Unreadable Access view; keeping the previous one.", %error, apps = access.apps.len());
                false
            }
        }
    }

    fn request(&self, method: Method, query: &str) -> Result<Request<ProxyBody>, http::Error> {
        Request::builder()
            .method(method)
            .uri(format!("{}?{query}", self.url))
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token.expose()))
            .header(header::USER_AGENT, concat!("dockflare-local-edge/", env!("CARGO_PKG_VERSION")))
            .body(Full::new(Bytes::new()).map_err(|never| match never {}).boxed())
    }

    async fn fetch(&self, wait_for: Option<i64>, access_fingerprint: Option<&str>) -> Result<Answer, String> {
        let mut query = format!("connector_id={}", self.connector_id);
        if let Some(version) = wait_for {
            query.push_str(&format!("&wait_for_version={version}"));
            if let Some(fingerprint) = access_fingerprint {
                query.push_str(&format!("&access_fingerprint={}", percent_encode(fingerprint)));
            }
        }
        let request = self.request(Method::GET, &query).map_err(|e| e.to_string())?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| error_chain(&e))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| format!("reading the answer: {e}"))?
                .to_bytes();
            Ok::<_, String>((status, body))
        };
        let (status, body) =
            tokio::time::timeout(REQUEST_TIMEOUT, exchange).await.map_err(|_| "no answer in time".to_string())??;
        parse_answer(status, &body)
    }

    /// Tells the emulator this connector is gone (best effort, on shutdown).
    pub async fn disconnect(&self) {
        let Ok(request) = self.request(Method::DELETE, &format!("connector_id={}", self.connector_id)) else { return };
        match tokio::time::timeout(Duration::from_secs(2), self.client.request(request)).await {
            Ok(Ok(response)) => {
                tracing::info!(message = "Unregistered from the emulator.", status = response.status().as_u16())
            }
            Ok(Err(error)) => tracing::debug!(message = "Could not unregister.", error = %error_chain(&error)),
            Err(_) => tracing::debug!(message = "Could not unregister in time."),
        }
    }
}

/// The connector endpoint's answer: a version and a configuration, both required.
#[derive(serde::Deserialize)]
struct Versioned {
    version: i64,
    config: TunnelConfig,
    #[serde(default)]
    access: Option<serde_json::Value>,
}

fn parse_answer(status: StatusCode, body: &[u8]) -> Result<Answer, String> {
    match status {
        StatusCode::OK => {
            let answer: Versioned =
                serde_json::from_slice(body).map_err(|e| format!("not a tunnel configuration: {e}"))?;
            Ok(Answer::Configuration { version: answer.version, config: answer.config, access: answer.access })
        }
        StatusCode::NOT_FOUND => Ok(Answer::NotYet),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Ok(Answer::Refused {
            status: status.as_u16(),
            body: String::from_utf8_lossy(body).chars().take(300).collect(),
        }),
        other => Err(format!("HTTP {other}: {}", String::from_utf8_lossy(body).chars().take(300).collect::<String>())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn connector_urls() {
        // (endpoint, expected)
        let cases = [
            (
                "http://host.docker.internal:8788/client/v4",
                Ok("http://host.docker.internal:8788/__emulator/connector/configuration".to_string()),
            ),
            ("https://emu.test", Ok("https://emu.test/__emulator/connector/configuration".to_string())),
            ("http://10.0.0.1:80/", Ok("http://10.0.0.1:80/__emulator/connector/configuration".to_string())),
            ("ftp://emu.test", Err(EndpointError::NotHttp("ftp://emu.test".into()))),
            ("emu.test:8788", Err(EndpointError::NotHttp("emu.test:8788".into()))),
            ("us", Err(EndpointError::NotHttp("us".into()))),
        ];
        for (endpoint, expected) in cases {
            assert_eq!(connector_url(endpoint), expected, "{endpoint}");
        }
    }

    #[test]
    fn answers_parse() {
        let config = json!({"ingress": [{"service": "http_status:404"}]});
        let body = json!({"version": 3, "config": config, "tunnel_id": "t"}).to_string();
        let config: TunnelConfig = serde_json::from_value(config).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            parse_answer(StatusCode::OK, body.as_bytes()),
            Ok(Answer::Configuration { version: 3, config: config.clone(), access: None })
        );
        let body =
            json!({"version": 3, "config": {"ingress": [{"service": "http_status:404"}]}, "access": {"apps": []}});
        assert_eq!(
            parse_answer(StatusCode::OK, body.to_string().as_bytes()),
            Ok(Answer::Configuration { version: 3, config, access: Some(json!({"apps": []})) })
        );
        assert_eq!(parse_answer(StatusCode::NOT_FOUND, b"{}"), Ok(Answer::NotYet));
        assert_eq!(
            parse_answer(StatusCode::UNAUTHORIZED, b"nope"),
            Ok(Answer::Refused { status: 401, body: "nope".into() })
        );
        assert!(parse_answer(StatusCode::OK, b"{\"config\": {}}").is_err());
        assert!(parse_answer(StatusCode::INTERNAL_SERVER_ERROR, b"boom").is_err());
    }
}
