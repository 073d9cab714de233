//! The local edge: a stand-in for the tunnel connector (cloudflared) for hosts that cannot reach
//! Cloudflare. It runs, like cloudflared, from a tunnel token (`TUNNEL_TOKEN`, args
//! `tunnel --no-autoupdate run`); instead of dialling Cloudflare's edge it fetches the tunnel's
//! remote configuration from DockFlare's Cloudflare emulator (the token's `e` field says where) and
//! follows its updates, and it *is* the edge: it serves the ingress on a local HTTP port, matching
//! hostname and path like cloudflared and proxying to the origins.
//!
//! The binary is `dockflare-local-edge` (`src/bin/local_edge.rs`, image `dockflare/local-edge`);
//! the agent launches it through the same connector lifecycle as cloudflared.
//!
//! Like Cloudflare's edge it also enforces the account's Access applications, which the emulator
//! sends with the configuration (offline identity: the `Cf-Access-Test-Identity` test header).
//!
//! Layout: [`token`] (the tunnel token, `e` included), [`ingress`] (pure: compiling rules and
//! matching requests, table-tested), [`access`] (pure: Access coverage and policy evaluation,
//! table-tested), [`config`] (following the emulator), [`origin`] (HTTP(S) clients), [`proxy`]
//! (the request path), [`metrics`] (`/ready`, `/healthcheck`, `/config`), and here the servers and
//! their shutdown.
//!
//! **Invariants:** the token is never logged (only account and tunnel ids); a request never
//! panics the edge — every failure is an HTTP answer (502, 503) or a log line; Access never fails
//! open (what cannot be read or evaluated refuses).

pub mod access;
pub mod config;
pub mod ingress;
pub mod metrics;
pub mod origin;
pub mod proxy;
pub mod token;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use origin::ProxyBody;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use token::TunnelToken;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a client may take to send a request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// What the edge needs.
pub struct EdgeSettings {
    pub token: TunnelToken,
    /// Where the emulator is, overriding the token's `e`.
    pub endpoint: Option<String>,
    /// The HTTP port that serves the ingress.
    pub listen: SocketAddr,
    /// The metrics port (`TUNNEL_METRICS`).
    pub metrics: SocketAddr,
    /// How long in-flight requests may finish after a shutdown signal.
    pub grace: Duration,
}

/// Why the edge could not start.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error("the tunnel token has no endpoint (\"e\"): give one with --endpoint or DOCKFLARE_EDGE_ENDPOINT, or use a token issued by a DockFlare emulator with a public URL")]
    NoEndpoint,
    #[error(transparent)]
    Endpoint(#[from] config::EndpointError),
    #[error(transparent)]
    Tls(#[from] origin::TlsSetupError),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
}

/// A started edge.
pub struct RunningEdge {
    /// The bound ingress address.
    pub listen: SocketAddr,
    /// The bound metrics address.
    pub metrics: SocketAddr,
    /// This connector's id (`/ready`, and the emulator's connector list).
    pub connector_id: String,
    /// The running configuration.
    pub routes: proxy::Current,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    follower: Arc<config::Follower>,
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), EdgeError> {
    let listener = TcpListener::bind(addr).await.map_err(|source| EdgeError::Listen { addr, source })?;
    let bound = listener.local_addr().map_err(|source| EdgeError::Listen { addr, source })?;
    Ok((listener, bound))
}

/// Binds both ports and starts following the configuration.
pub async fn start(settings: EdgeSettings) -> Result<RunningEdge, EdgeError> {
    let endpoint =
        settings.endpoint.clone().or_else(|| settings.token.endpoint.clone()).ok_or(EdgeError::NoEndpoint)?;
    let url = config::connector_url(&endpoint)?;
    let tls = origin::Tls::new()?;
    let (listener, listen) = bind(settings.listen).await?;
    let (metrics_listener, metrics) = bind(settings.metrics).await?;
    let connector_id = uuid::Uuid::new_v4().hyphenated().to_string();
    let (routes_tx, routes) = watch::channel(None);
    let cancel = CancellationToken::new();
    let follower = Arc::new(config::Follower {
        url,
        token: Arc::new(settings.token),
        connector_id: connector_id.clone(),
        client: tls.client(true, Duration::from_secs(10)),
        tls,
        routes: routes_tx,
    });
    tracing::info!(
        message = "Starting tunnel",
        tunnelID = %follower.token.tunnel_id,
        account = %follower.token.account_tag,
        connectorID = %connector_id,
        configuration = %follower.url,
    );
    let mut tasks = Vec::new();
    {
        let follower = follower.clone();
        let cancel = cancel.clone();
        tasks.push(tokio::spawn(async move { follower.run(cancel).await }));
    }
    let current = routes.clone();
    tasks.push(tokio::spawn(serve(listener, cancel.clone(), settings.grace, move |peer, request| {
        proxy::handle(current.clone(), peer, request)
    })));
    let current = routes.clone();
    let id = connector_id.clone();
    tasks.push(tokio::spawn(serve(metrics_listener, cancel.clone(), settings.grace, move |_, request| {
        let response = metrics::handle(&current, &id, &request);
        async move { response }
    })));
    tracing::info!(message = "Serving the ingress", addr = %listen);
    tracing::info!(message = format!("Starting metrics server on {metrics}/metrics"));
    Ok(RunningEdge { listen, metrics, connector_id, routes, cancel, tasks, follower })
}

impl RunningEdge {
    /// Stops accepting, lets in-flight requests finish (up to the grace period), and tells the
    /// emulator this connector is gone.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
        self.follower.disconnect().await;
    }
}

/// Serves HTTP/1.1 on `listener` with `handler` until `cancel`, then drains connections for at
/// most `grace`.
async fn serve<F, Fut>(listener: TcpListener, cancel: CancellationToken, grace: Duration, handler: F)
where
    F: Fn(SocketAddr, Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let handler = handler.clone();
                    let service = service_fn(move |request| {
                        let answer = handler(peer, request);
                        async move { Ok::<_, Infallible>(answer.await) }
                    });
                    let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
                    tokio::spawn(async move {
                        if let Err(error) = connection.await {
                            tracing::debug!(message = "Connection ended with an error.", %peer, %error);
                        }
                    });
                }
                Err(error) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(message = "Accept failed.", %error);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = cancel.cancelled() => break,
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(grace) => tracing::info!(message = "Grace period over; closing the remaining connections."),
    }
}
