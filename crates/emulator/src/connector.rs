//! What a tunnel connector calls: the emulator's stand-in for the edge connection that gives
//! cloudflared its remote configuration. DockFlare's local edge (`dockflare-local-edge`) uses it.
//! Authenticated by the tunnel token itself (`Authorization: Bearer <token>`): its account, tunnel
//! and secret must be the emulator's, and the tunnel live; otherwise 401/10000.
//!
//! | method | path | query | answer |
//! |---|---|---|---|
//! | GET | `/__emulator/connector/configuration` | `connector_id` (UUID), `wait_for_version`, `access_fingerprint`, `timeout` (s) | 200 `TunnelConfiguration` (plain JSON) with `"access"`, 404/1055 before the first configuration |
//! | DELETE | `/__emulator/connector/configuration` | `connector_id` | 200 `{"id"}`: that connector has gone |
//!
//! Every GET registers the caller as one of the tunnel's connectors (4 connections, so the tunnel
//! is `healthy`; the id is `connector_id`, else one made up) and refreshes it. With
//! `wait_for_version=N` the answer waits until the configuration's version is at least N, or
//! `timeout` seconds pass (default 25, at most 60) — a long-poll; the current state is answered
//! either way. The answer also carries `"access"`: the Access applications the edge must enforce
//! (see `access_edge`), with a `fingerprint`; given `access_fingerprint=F`, the long-poll also
//! answers once the Access view's fingerprint is no longer F (every successful API write wakes the
//! long-polls: [`wake_after_change`]). A connector not heard from for [`STALE_AFTER`] is dropped (it was killed without
//! saying goodbye), and a tunnel left without connectors is `down`.

use super::access_edge::fingerprint_of;
use super::http::{json_response, ApiError, ApiResult, Query};
use super::state::{uuid, Data};
use super::tunnels::{connect, disconnect};
use super::{lock, Emulator};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::routing::get;
use axum::Router;
use dockflare_cloudflare::codes;
use dockflare_cloudflare::types::{decode_tunnel_token, DeletedId, TunnelConfiguration};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The connector endpoint's path.
pub const CONNECTOR_PATH: &str = "/__emulator/connector/configuration";
/// How long a long-poll waits by default…
const DEFAULT_WAIT: Duration = Duration::from_secs(25);
/// …and at most.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// A connector that has not called for this long is gone.
pub const STALE_AFTER: Duration = Duration::from_secs(45);
/// How often stale connectors are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// The `version` the emulator lists for connectors that registered here. Their `config_version`
/// is the version they were last answered (what they follow), not the newest one.
pub(super) const CONNECTOR_VERSION: &str = "dockflare-local-edge";

fn unauthorized(reason: &str) -> ApiError {
    ApiError::new(401, 10000, format!("Authentication error: {reason}"))
}

/// The tunnel id the presented token is valid for.
fn authenticate(data: &Data, headers: &HeaderMap) -> Result<String, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| unauthorized("no Authorization: Bearer <tunnel token> header"))?;
    let token = match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => return Err(unauthorized("the Authorization header is not Bearer <tunnel token>")),
    };
    let token = decode_tunnel_token(token).map_err(|_| unauthorized("not a tunnel token"))?;
    if !token.account_tag.eq_ignore_ascii_case(&data.account_id) {
        return Err(unauthorized("the token is for another account"));
    }
    let entry = data
        .tunnels
        .iter()
        .find(|t| t.id == token.tunnel_id && t.is_live())
        .ok_or_else(|| unauthorized("no such tunnel (or it was deleted)"))?;
    if entry.secret != token.secret {
        return Err(unauthorized("the tunnel secret does not match"));
    }
    Ok(entry.id.clone())
}

impl Data {
    /// Registers (or refreshes) connector `connector_id` of `tunnel_id`; returns the tunnel's
    /// configuration.
    fn connector_call(
        &mut self,
        tunnel_id: &str,
        connector_id: Option<&str>,
        now: Instant,
    ) -> Result<Option<TunnelConfiguration>, ApiError> {
        let index = self.tunnel_index(tunnel_id).ok_or_else(|| unauthorized("no such tunnel"))?;
        let Some(entry) = self.tunnels.get_mut(index) else { return Err(unauthorized("no such tunnel")) };
        let known: Vec<String> = match connector_id {
            Some(id) => vec![id.to_string()],
            // Anonymous: every connector registered here for this tunnel counts as this one.
            None => self.connector_seen.iter().filter(|(_, (t, _))| t == tunnel_id).map(|(id, _)| id.clone()).collect(),
        };
        let mut registered: Vec<String> =
            known.into_iter().filter(|id| entry.clients.iter().any(|c| &c.id == id)).collect();
        if registered.is_empty() && (connector_id.is_some() || !entry.has_active_connections()) {
            let id = connector_id.map_or_else(uuid, str::to_string);
            connect(entry, id.clone(), CONNECTOR_VERSION);
            tracing::debug!(message = "Connector registered.", tunnel = %tunnel_id, connector = %id);
            registered.push(id);
        }
        let configuration = entry.configuration.clone();
        let answered = configuration.as_ref().map_or(0, |c| c.version);
        for client in entry.clients.iter_mut().filter(|c| registered.contains(&c.id)) {
            client.config_version = answered;
        }
        for id in registered {
            self.connector_seen.insert(id, (tunnel_id.to_string(), now));
        }
        Ok(configuration)
    }

    /// Drops connector `connector_id` of `tunnel_id`.
    fn connector_gone(&mut self, tunnel_id: &str, connector_id: &str) {
        self.connector_seen.remove(connector_id);
        if let Some(entry) = self.tunnel_index(tunnel_id).and_then(|i| self.tunnels.get_mut(i)) {
            disconnect(entry, Some(connector_id));
        }
    }

    /// Drops the connectors registered here that have not called since `now - STALE_AFTER`.
    pub(super) fn sweep_connectors(&mut self, now: Instant) {
        let stale: Vec<(String, String)> = self
            .connector_seen
            .iter()
            .filter(|(_, (_, seen))| now.saturating_duration_since(*seen) > STALE_AFTER)
            .map(|(id, (tunnel, _))| (id.clone(), tunnel.clone()))
            .collect();
        for (id, tunnel) in stale {
            tracing::debug!(message = "Connector gone silent; dropped.", tunnel = %tunnel, connector = %id);
            self.connector_gone(&tunnel, &id);
        }
    }
}

/// `connector_id`, canonicalized; 400 when it is not a UUID.
fn connector_id(query: &Query) -> Result<Option<String>, ApiError> {
    match query.get("connector_id").map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(id) => uuid::Uuid::parse_str(id)
            .map(|u| Some(u.hyphenated().to_string()))
            .map_err(|_| ApiError::bad_request(1001, "Invalid request: connector_id must be a UUID")),
    }
}

fn number<T: std::str::FromStr>(query: &Query, key: &str) -> Result<Option<T>, ApiError> {
    match query.get(key).map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(text) => text
            .parse::<T>()
            .map(Some)
            .map_err(|_| ApiError::bad_request(1001, format!("Invalid request: {key} must be an integer"))),
    }
}

/// The answer: the configuration as the API shows it, plus the Access view.
fn answer(configuration: &TunnelConfiguration, access: serde_json::Value) -> serde_json::Value {
    let mut body = serde_json::to_value(configuration).unwrap_or_default();
    if let Some(object) = body.as_object_mut() {
        object.insert("access".into(), access);
    }
    body
}

async fn configuration(State(emulator): State<Emulator>, headers: HeaderMap, uri: Uri) -> ApiResult {
    let query = Query::from_uri(&uri);
    let connector_id = connector_id(&query)?;
    let wait_for: Option<i64> = number(&query, "wait_for_version")?;
    let known_access = query.get("access_fingerprint").map(str::trim).map(str::to_string);
    let wait = number::<u64>(&query, "timeout")?.map_or(DEFAULT_WAIT, Duration::from_secs).min(MAX_WAIT);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let changed: Arc<tokio::sync::Notify> = emulator.data().changed.clone();
        let notified = changed.notified();
        tokio::pin!(notified);
        // Registered before the state is read: a change after the read wakes this waiter.
        notified.as_mut().enable();
        let (current, closing, access) = {
            let mut data = emulator.data();
            let tunnel_id = authenticate(&data, &headers)?;
            let current = data.connector_call(&tunnel_id, connector_id.as_deref(), Instant::now())?;
            let auth_domain = crate::access_edge::auth_domain(emulator.inner.access_team.as_deref());
            (current, data.closing, data.access_view(&auth_domain))
        };
        let access_changed =
            known_access.as_deref().is_some_and(|known| current.is_some() && known != fingerprint_of(&access));
        let ready = closing
            || access_changed
            || match (&current, wait_for) {
                (_, None) => true,
                (Some(configuration), Some(wanted)) => configuration.version >= wanted,
                (None, Some(_)) => false,
            };
        if ready || tokio::time::Instant::now() >= deadline {
            return match current {
                Some(configuration) => Ok(json_response(StatusCode::OK, &answer(&configuration, access))),
                None => {
                    Err(ApiError::new(404, codes::TUNNEL_CONFIGURATION_NOT_FOUND, "Configuration for tunnel not found"))
                }
            };
        }
        // Every write that can change the answer (an Access write included) wakes `changed`.
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

async fn gone(State(emulator): State<Emulator>, headers: HeaderMap, uri: Uri) -> ApiResult {
    let query = Query::from_uri(&uri);
    let Some(connector_id) = connector_id(&query)? else {
        return Err(ApiError::bad_request(1001, "Invalid request: connector_id is required"));
    };
    let mut data = emulator.data();
    let tunnel_id = authenticate(&data, &headers)?;
    data.connector_gone(&tunnel_id, &connector_id);
    tracing::debug!(message = "Connector unregistered.", tunnel = %tunnel_id, connector = %connector_id);
    Ok(json_response(StatusCode::OK, &DeletedId { id: connector_id }))
}

/// Middleware: after a successful state-changing request, wakes the long-polls — the Access view
/// they follow may have changed (configuration writes and tunnel deletions wake them themselves).
pub(super) async fn wake_after_change(
    State(emulator): State<Emulator>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let changes = super::persist::changes_account(request.method(), request.uri().path());
    let response = next.run(request).await;
    if changes && response.status().is_success() {
        emulator.data().changed.notify_waiters();
    }
    response
}

pub(super) fn router(emulator: Emulator) -> Router {
    Router::new().route(CONNECTOR_PATH, get(configuration).delete(gone)).with_state(emulator)
}

impl Emulator {
    /// Answers every waiting long-poll now, and later ones at once (the emulator is stopping).
    pub fn end_long_polls(&self) {
        let mut data = self.data();
        data.closing = true;
        data.changed.notify_waiters();
    }

    /// Drops silent connectors every few seconds, for as long as the emulator exists.
    pub(super) fn spawn_connector_sweeper(&self) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                lock(&inner.data).sweep_connectors(Instant::now());
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EmulatorConfig;
    use base64::Engine as _;
    use dockflare_cloudflare::types::{CreateTunnelRequest, Tunnel, TunnelConfig};
    use std::net::SocketAddr;

    const CONNECTOR: &str = "6f1d3a52-8a4b-4c5e-9f00-0123456789ab";

    struct Fixture {
        emulator: Emulator,
        addr: SocketAddr,
        http: reqwest::Client,
        tunnel_id: String,
        token: String,
    }

    async fn fixture() -> Fixture {
        let config = EmulatorConfig { public_url: Some("http://emu.test:8788/client/v4".into()), ..Default::default() };
        let (emulator, addr) = match Emulator::start(config, SocketAddr::from(([127, 0, 0, 1], 0))).await {
            Ok(started) => started,
            Err(error) => panic!("{error}"),
        };
        let request =
            CreateTunnelRequest { name: "edge".into(), config_src: Some("cloudflare".into()), tunnel_secret: None };
        let created = emulator.data().create_tunnel(request);
        let created = match created {
            Ok(created) => created,
            Err(error) => panic!("{error}"),
        };
        let token = created.token.unwrap_or_default();
        Fixture { emulator, addr, http: reqwest::Client::new(), tunnel_id: created.tunnel.id, token }
    }

    impl Fixture {
        async fn call(&self, method: reqwest::Method, query: &str, token: Option<&str>) -> (u16, serde_json::Value) {
            let mut request = self.http.request(method, format!("http://{}{CONNECTOR_PATH}?{query}", self.addr));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    (status, response.json().await.unwrap_or_default())
                }
                Err(error) => panic!("{error}"),
            }
        }

        fn tunnel(&self) -> Tunnel {
            let data = self.emulator.data();
            data.tunnels
                .iter()
                .find(|t| t.id == self.tunnel_id)
                .map(|t| t.to_tunnel(&data.account_id))
                .unwrap_or_else(|| panic!("tunnel {} is missing", self.tunnel_id))
        }

        fn seed(&self) -> i64 {
            let config: TunnelConfig = serde_json::from_value(serde_json::json!({
                "ingress": [{"hostname": "app.example.test", "service": "http://web:80"}, {"service": "http_status:404"}]
            }))
            .unwrap_or_else(|e| panic!("{e}"));
            self.emulator
                .seed_configuration(&self.tunnel_id, config)
                .map(|c| c.version)
                .unwrap_or_else(|e| panic!("{e}"))
        }
    }

    #[tokio::test]
    async fn tokens_carry_the_public_url() {
        let fixture = fixture().await;
        let json = base64::engine::general_purpose::STANDARD.decode(&fixture.token).unwrap_or_default();
        let json: serde_json::Value = serde_json::from_slice(&json).unwrap_or_default();
        assert_eq!(json["e"], "http://emu.test:8788/client/v4");
        assert_eq!(json["t"], fixture.tunnel_id.as_str());
        let data = fixture.emulator.data();
        let fetched = data.tunnels.first().map(|t| t.token(&data.account_id, data.public_url.as_deref()));
        assert_eq!(fetched.as_deref(), Some(fixture.token.as_str()), "GET .../token answers the same token");
    }

    #[tokio::test]
    async fn only_the_tunnel_token_is_accepted() {
        let fixture = fixture().await;
        let query = format!("connector_id={CONNECTOR}");
        assert_eq!(fixture.call(reqwest::Method::GET, &query, None).await.0, 401);
        assert_eq!(fixture.call(reqwest::Method::GET, &query, Some("emulator-token")).await.0, 401);
        // Right tunnel, wrong secret.
        let forged = dockflare_cloudflare::types::encode_tunnel_token(
            fixture.emulator.account_id(),
            &fixture.tunnel_id,
            &[7u8; 32],
        );
        let (status, body) = fixture.call(reqwest::Method::GET, &query, Some(&forged)).await;
        assert_eq!((status, body["errors"][0]["code"].as_i64()), (401, Some(10000)));
        assert_eq!(fixture.tunnel().status, "inactive", "a refused call connects nothing");
        assert_eq!(fixture.call(reqwest::Method::GET, "connector_id=nope", Some(&fixture.token)).await.0, 400);
    }

    #[tokio::test]
    async fn a_call_connects_and_the_configuration_follows() {
        let fixture = fixture().await;
        let query = format!("connector_id={CONNECTOR}");
        let (status, body) = fixture.call(reqwest::Method::GET, &query, Some(&fixture.token)).await;
        assert_eq!((status, body["errors"][0]["code"].as_i64()), (404, Some(1055)), "no configuration yet");
        let tunnel = fixture.tunnel();
        assert_eq!(tunnel.status, "healthy");
        assert!(tunnel.connections.iter().all(|c| c.client_id == CONNECTOR) && tunnel.connections.len() == 4);

        let version = fixture.seed();
        let (status, body) = fixture.call(reqwest::Method::GET, &query, Some(&fixture.token)).await;
        assert_eq!((status, body["version"].as_i64()), (200, Some(version)));
        assert_eq!(body["config"]["ingress"][0]["service"], "http://web:80");
        assert_eq!(fixture.tunnel().connections.len(), 4, "calling again does not add a connector");

        let (status, _) = fixture.call(reqwest::Method::DELETE, &query, Some(&fixture.token)).await;
        assert_eq!(status, 200);
        assert_eq!(fixture.tunnel().status, "down");
    }

    #[tokio::test]
    async fn a_long_poll_answers_the_next_version_at_once() {
        let fixture = fixture().await;
        let first = fixture.seed();
        let started = Instant::now();
        let query = format!("connector_id={CONNECTOR}&wait_for_version={}&timeout=20", first + 1);
        let (waiting, seeded) = tokio::join!(fixture.call(reqwest::Method::GET, &query, Some(&fixture.token)), async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            fixture.seed()
        });
        assert_eq!((waiting.0, waiting.1["version"].as_i64()), (200, Some(seeded)));
        assert!(started.elapsed() < Duration::from_secs(5), "answered on the change, not the timeout");

        // Nothing new: the current version once the timeout passes.
        let query = format!("connector_id={CONNECTOR}&wait_for_version={}&timeout=1", seeded + 1);
        let (status, body) = fixture.call(reqwest::Method::GET, &query, Some(&fixture.token)).await;
        assert_eq!((status, body["version"].as_i64()), (200, Some(seeded)));

        // Stopping ends the wait.
        let started = Instant::now();
        let query = format!("connector_id={CONNECTOR}&wait_for_version={}&timeout=30", seeded + 1);
        let (waiting, ()) = tokio::join!(fixture.call(reqwest::Method::GET, &query, Some(&fixture.token)), async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            fixture.emulator.end_long_polls();
        });
        assert_eq!((waiting.0, waiting.1["version"].as_i64()), (200, Some(seeded)));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn the_answer_carries_access_and_a_long_poll_follows_it() {
        let fixture = fixture().await;
        let version = fixture.seed();
        let query = format!("connector_id={CONNECTOR}");
        let (status, body) = fixture.call(reqwest::Method::GET, &query, Some(&fixture.token)).await;
        assert_eq!(status, 200);
        assert_eq!(body["access"]["auth_domain"], crate::access_edge::DEFAULT_AUTH_DOMAIN);
        assert_eq!(body["access"]["apps"], serde_json::json!([]));
        let first = body["access"]["fingerprint"].as_str().unwrap_or("").to_string();
        assert_eq!(first.len(), 16);

        // Waiting for the next version, knowing this Access view: an Access write answers at once.
        let started = Instant::now();
        let query =
            format!("connector_id={CONNECTOR}&wait_for_version={}&access_fingerprint={first}&timeout=20", version + 1);
        // Written through the API, which wakes waiting long-polls (if the write comes first, the
        // poll sees another fingerprint at once): either way, no wait for the timeout.
        let app = serde_json::json!({"type": "self_hosted", "name": "App", "domain": "app.example.test"});
        let create = async {
            let url = format!(
                "http://{}{}/accounts/{}/access/apps",
                fixture.addr,
                fixture.emulator.base_path(),
                fixture.emulator.account_id()
            );
            let sent = fixture.http.post(url).bearer_auth(fixture.emulator.api_token()).json(&app).send().await;
            assert_eq!(sent.map(|r| r.status().as_u16()).unwrap_or_default(), 201);
        };
        let (waiting, ()) = tokio::join!(fixture.call(reqwest::Method::GET, &query, Some(&fixture.token)), create);
        assert_eq!((waiting.0, waiting.1["version"].as_i64()), (200, Some(version)));
        assert_eq!(waiting.1["access"]["apps"][0]["domain"], "app.example.test");
        assert_ne!(waiting.1["access"]["fingerprint"].as_str(), Some(first.as_str()));
        assert!(started.elapsed() < Duration::from_secs(5), "answered on the Access change, not the timeout");

        // The current fingerprint: nothing to answer until the timeout.
        let current = waiting.1["access"]["fingerprint"].as_str().unwrap_or("").to_string();
        let started = Instant::now();
        let query =
            format!("connector_id={CONNECTOR}&wait_for_version={}&access_fingerprint={current}&timeout=1", version + 1);
        let (status, _) = fixture.call(reqwest::Method::GET, &query, Some(&fixture.token)).await;
        assert_eq!(status, 200);
        assert!(started.elapsed() >= Duration::from_millis(900), "held until the timeout");
    }

    #[tokio::test]
    async fn silent_connectors_are_dropped() {
        let fixture = fixture().await;
        let query = format!("connector_id={CONNECTOR}");
        fixture.call(reqwest::Method::GET, &query, Some(&fixture.token)).await;
        assert_eq!(fixture.tunnel().status, "healthy");
        fixture.emulator.data().sweep_connectors(Instant::now());
        assert_eq!(fixture.tunnel().status, "healthy", "recently heard from");
        fixture.emulator.data().sweep_connectors(Instant::now() + STALE_AFTER + Duration::from_secs(1));
        assert_eq!(fixture.tunnel().status, "down");
        assert!(fixture.emulator.data().connector_seen.is_empty());
    }
}
