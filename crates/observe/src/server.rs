//! The health and metrics server: `/healthz`, `/readyz` (200 or 503, the checks in the body)
//! and `/metrics`. It answers from what the binary reports; a slow readiness check has its own
//! deadline, and nothing here takes a lock the fleet's paths need.

use crate::{render, Observed};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use std::future::Future;
use std::sync::Arc;

#[derive(Clone)]
struct Shared {
    observed: Arc<dyn Observed>,
    metrics: Option<PrometheusHandle>,
}

/// The routes, for [`serve`] (or a test).
pub fn router(observed: Arc<dyn Observed>, metrics: Option<PrometheusHandle>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_page))
        .with_state(Shared { observed, metrics })
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    observed: Arc<dyn Observed>,
    metrics: Option<PrometheusHandle>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(observed, metrics)).with_graceful_shutdown(shutdown).await
}

fn text(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

async fn healthz(State(shared): State<Shared>) -> Response {
    let (ok, body) = render(&shared.observed.live(), "healthz");
    text(if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, body)
}

async fn readyz(State(shared): State<Shared>) -> Response {
    let (ok, body) = render(&shared.observed.ready().await, "readyz");
    text(if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, body)
}

async fn metrics_page(State(shared): State<Shared>) -> Response {
    let Some(handle) = shared.metrics.as_ref() else {
        return text(StatusCode::NOT_FOUND, "metrics are not recorded in this process\n".into());
    };
    shared.observed.refresh().await;
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], handle.render())
        .into_response()
}
