//! The web dashboard, served by the master on its own address (`--web-listen`; loopback by
//! default, `off` to disable; over TLS with the master's certificate when bound beyond
//! loopback). Signing in is required for every page and API call; sessions come from
//! `dockflare-master ui set-password` users with the admin API's roles. Pages are one embedded
//! shell and script (no CDN, works offline) fed live by the watch feed over Server-Sent Events.
//!
//! Modules: [`sign_in`] (passwords, tokens, the failed sign-in limit — pure), [`session`]
//! (cookie, session lookup, roles, CSRF), [`pages`] (HTML and assets), [`live`] (the SSE feed),
//! [`tls`] (the TLS listener).

pub mod api;
pub mod live;
pub mod pages;
pub mod session;
pub mod sign_in;
pub mod tls;

use crate::clock::now_millis;
use crate::state::SharedState;
use crate::store::UiSession;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use session::Signed;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What the dashboard says about how this master runs.
#[derive(Clone, Debug, Default)]
pub struct MasterFacts {
    /// No Cloudflare credentials: the built-in emulator stands in for Cloudflare.
    pub offline: bool,
    /// Where the offline emulator answers.
    pub emulator: Option<SocketAddr>,
    /// Whether this master reconciles (true on SQLite).
    pub leader: Option<tokio::sync::watch::Receiver<bool>>,
}

/// What every handler shares.
#[derive(Clone)]
pub struct WebState {
    pub master: SharedState,
    pub facts: MasterFacts,
    /// Whether the dashboard is served over TLS (cookies are then Secure).
    pub tls: bool,
    pub limiter: Arc<Mutex<sign_in::SignInLimiter>>,
}

/// Why the dashboard could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("cannot listen on {addr} for the dashboard: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("dashboard TLS: {0}")]
    Tls(String),
}

/// Whether an address is loopback only (served without TLS).
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

/// The router (also used by tests without a listener).
pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/login", get(pages::login_page).post(sign_in_submit))
        .route("/logout", post(sign_out))
        .route("/assets/{name}", get(pages::asset))
        .route("/api/live", get(live::events))
        .route("/api/session", get(session_info))
        .route("/api/overview", get(api::overview))
        .route("/api/agents/{id}/activity", get(api::agent_activity))
        .route("/", get(pages::app_page))
        .route("/routes", get(pages::app_page))
        .route("/agents", get(pages::app_page))
        .route("/agents/{id}", get(pages::app_page))
        .route("/diagnostics", get(pages::app_page))
        .fallback(not_found)
        .layer(axum::middleware::map_response(pages::security_headers))
        .with_state(state)
}

async fn not_found(_signed: Signed) -> Response {
    (StatusCode::NOT_FOUND, "no such page").into_response()
}

/// Starts the dashboard on `addr`; returns the address it listens on.
pub async fn start(
    master: SharedState,
    facts: MasterFacts,
    addr: SocketAddr,
    server_cert_pem: &str,
    server_key_pem: &str,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) -> Result<SocketAddr, WebError> {
    let tls = !is_loopback(&addr);
    let state = WebState { master, facts, tls, limiter: Arc::default() };
    let app = router(state).into_make_service_with_connect_info::<tls::Peer>();
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| WebError::Listen { addr, source })?;
    let local = listener.local_addr().map_err(|source| WebError::Listen { addr, source })?;
    let shutdown = async move {
        let _ = stopping.wait_for(|stopping| *stopping).await;
    };
    if tls {
        let listener = tls::TlsListener::new(listener, server_cert_pem, server_key_pem).map_err(WebError::Tls)?;
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
                tracing::warn!(message = "The dashboard stopped.", %error);
            }
        });
    } else {
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
                tracing::warn!(message = "The dashboard stopped.", %error);
            }
        });
    }
    tracing::info!(message = "Dashboard listening.", addr = %local, url = %format!("{}://{local}/", if tls { "https" } else { "http" }));
    Ok(local)
}

#[derive(serde::Deserialize)]
struct SignInForm {
    user: String,
    password: String,
}

async fn sign_in_submit(
    State(state): State<WebState>,
    ConnectInfo(tls::Peer(peer)): ConnectInfo<tls::Peer>,
    Form(form): Form<SignInForm>,
) -> Response {
    let source = peer.ip();
    let started = Instant::now();
    if let Err(wait) = state.limiter.lock().unwrap_or_else(|p| p.into_inner()).check(source, started) {
        tracing::warn!(message = "Dashboard sign-in refused: too many failures from this source.", %source, retry_in_s = wait.as_secs());
        let page = pages::login_html(Some(&format!(
            "Too many failed sign-ins from {source}: try again in {} s.",
            wait.as_secs()
        )));
        return (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, wait.as_secs().to_string())], page)
            .into_response();
    }
    let user = form.user.trim().chars().take(64).collect::<String>();
    let stored = match state.master.store.get_ui_user(&user).await {
        Ok(stored) => stored,
        Err(error) => {
            tracing::warn!(message = "Cannot read dashboard users.", %error);
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                pages::login_html(Some("The database is unavailable; retry shortly.")),
            )
                .into_response();
        }
    };
    let password = form.password;
    let hash = stored.as_ref().map(|u| u.password_hash.clone()).unwrap_or_else(|| sign_in::decoy_hash().to_string());
    let matches =
        tokio::task::spawn_blocking(move || sign_in::verify_password(&hash, &password)).await.unwrap_or(false);
    let user_record = match stored {
        Some(record) if matches => record,
        _ => {
            state.limiter.lock().unwrap_or_else(|p| p.into_inner()).failed(source, Instant::now());
            metrics::counter!("dockflare_dashboard_sign_in_failures_total").increment(1);
            tracing::warn!(message = "Dashboard sign-in failed.", %source, user = %user);
            return (StatusCode::UNAUTHORIZED, pages::login_html(Some("Wrong user name or password."))).into_response();
        }
    };
    state.limiter.lock().unwrap_or_else(|p| p.into_inner()).succeeded(source);
    let token = sign_in::new_token();
    let now = now_millis();
    let session = UiSession {
        id_hash: sign_in::token_hash(&token),
        user_name: user_record.name.clone(),
        role: user_record.role.clone(),
        csrf_token: sign_in::new_token(),
        created_at: now,
        expires_at: now + session::SESSION_LIFETIME_MS,
    };
    if let Err(error) = state.master.store.insert_ui_session(&session).await {
        tracing::warn!(message = "Cannot store a dashboard session.", %error);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            pages::login_html(Some("The database is unavailable; retry shortly.")),
        )
            .into_response();
    }
    tracing::info!(message = "Signed in to the dashboard.", user = %user_record.name, role = %user_record.role, %source);
    let cookie = session::session_cookie(&token, state.tls, session::SESSION_LIFETIME_MS / 1000);
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

#[derive(serde::Deserialize)]
struct SignOutForm {
    csrf: Option<String>,
}

async fn sign_out(
    State(state): State<WebState>,
    signed: Signed,
    headers: HeaderMap,
    Form(form): Form<SignOutForm>,
) -> Response {
    let presented = form.csrf.as_deref().or_else(|| session::csrf_header(&headers));
    if let Err(refused) = signed.check_csrf(presented) {
        return refused.into_response();
    }
    if let Err(error) = state.master.store.delete_ui_session(&signed.id_hash).await {
        tracing::warn!(message = "Cannot end a dashboard session.", %error);
        return (StatusCode::SERVICE_UNAVAILABLE, "the database is unavailable; retry shortly").into_response();
    }
    tracing::info!(message = "Signed out of the dashboard.", user = %signed.user);
    ([(header::SET_COOKIE, session::cleared_cookie(state.tls))], Redirect::to("/login")).into_response()
}

/// The signed-in user, role and CSRF token, for the page's script.
async fn session_info(signed: Signed) -> Response {
    axum::Json(serde_json::json!({
        "user": signed.user,
        "role": signed.role.as_str(),
        "csrf_token": signed.csrf_token,
        "expires_at_ms": signed.expires_at,
    }))
    .into_response()
}
