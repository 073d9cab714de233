//! The local edge in one process: a fake emulator (the connector endpoint, answering what the
//! test sets), a real HTTP origin, and the edge between them on loopback ports. Covers what the
//! Docker end-to-end test does not: 503 before the first configuration, routing by host, wildcard
//! and path, `httpHostHeader`, statuses answered at the edge, 502 for a dead origin, streamed
//! request bodies, configuration updates (and a broken one skipped), `/ready`, and shutdown.

use anyhow::{anyhow, bail, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use dockflare_agent::edge::origin::{HttpClient, ProxyBody, Tls};
use dockflare_agent::edge::token::TunnelToken;
use dockflare_agent::edge::{self, EdgeSettings, RunningEdge};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use secrecy::SecretString;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

const TUNNEL: &str = "c1744f8b-faa1-48a4-9e5c-02ac921467fa";
const WAIT: Duration = Duration::from_secs(10);

fn body(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

/// Serves `handler` on a loopback port until the test ends.
async fn serve<F, Fut>(handler: F) -> Result<SocketAddr>
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handler = handler.clone();
            let service = service_fn(move |request| {
                let answer = handler(request);
                async move { Ok::<_, Infallible>(answer.await) }
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    Ok(addr)
}

/// An origin answering `{"host", "path", "method", "bytes"}`.
async fn origin() -> Result<SocketAddr> {
    serve(|request: Request<Incoming>| async move {
        let host = request.headers().get("host").and_then(|h| h.to_str().ok()).unwrap_or("").to_string();
        let path = request.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
        let method = request.method().to_string();
        let bytes = request.into_body().collect().await.map(|b| b.to_bytes().len()).unwrap_or(0);
        Response::new(body(json!({"host": host, "path": path, "method": method, "bytes": bytes}).to_string()))
    })
    .await
}

/// The same origin over TLS, with a self-signed certificate for `localhost`.
async fn tls_origin() -> Result<SocketAddr> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(generated.signing_key.serialize_der()));
    let chain = vec![CertificateDer::from(generated.cert.der().to_vec())];
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake: nothing to serve.
                let Ok(stream) = acceptor.accept(stream).await else { return };
                let service = service_fn(|request: Request<Incoming>| async move {
                    let host = request.headers().get("host").and_then(|h| h.to_str().ok()).unwrap_or("").to_string();
                    Ok::<_, Infallible>(Response::new(body(json!({"host": host, "tls": true}).to_string())))
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    Ok(addr)
}

/// What the fake emulator answers, and what it saw.
#[derive(Default)]
struct Emulator {
    /// `None`: 404 (no configuration yet).
    configuration: Option<Value>,
    authorizations: Vec<String>,
    queries: Vec<String>,
    deletes: usize,
    /// Answers with the current configuration since it was last set.
    served_since_change: usize,
}

async fn emulator(state: Arc<Mutex<Emulator>>) -> Result<SocketAddr> {
    serve(move |request: Request<Incoming>| {
        let state = state.clone();
        async move {
            let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
            if request.uri().path() != "/__emulator/connector/configuration" {
                let mut response = Response::new(body("wrong path"));
                *response.status_mut() = StatusCode::IM_A_TEAPOT;
                return response;
            }
            let authorization = request.headers().get("authorization").and_then(|h| h.to_str().ok()).unwrap_or("");
            state.authorizations.push(authorization.to_string());
            state.queries.push(request.uri().query().unwrap_or("").to_string());
            if request.method() == http::Method::DELETE {
                state.deletes += 1;
                return Response::new(body("{}"));
            }
            match state.configuration.clone() {
                Some(configuration) => {
                    state.served_since_change += 1;
                    Response::new(body(configuration.to_string()))
                }
                None => {
                    let mut response = Response::new(body(r#"{"success":false}"#));
                    *response.status_mut() = StatusCode::NOT_FOUND;
                    response
                }
            }
        }
    })
    .await
}

fn token(endpoint: &str) -> String {
    let json = json!({"a": "acc", "s": STANDARD.encode([7u8; 32]), "t": TUNNEL, "e": endpoint});
    STANDARD.encode(json.to_string())
}

struct Fixture {
    edge: RunningEdge,
    state: Arc<Mutex<Emulator>>,
    client: HttpClient,
    origin: SocketAddr,
    token: String,
}

impl Fixture {
    async fn start() -> Result<Fixture> {
        let state = Arc::new(Mutex::new(Emulator::default()));
        let emulator = emulator(state.clone()).await?;
        let origin = origin().await?;
        let token = token(&format!("http://{emulator}/client/v4"));
        let settings = EdgeSettings {
            token: TunnelToken::decode(&SecretString::from(token.clone()))?,
            endpoint: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            metrics: SocketAddr::from(([127, 0, 0, 1], 0)),
            grace: Duration::from_secs(1),
        };
        let edge = edge::start(settings).await?;
        let client = Tls::new()?.client(true, Duration::from_secs(5));
        Ok(Fixture { edge, state, client, origin, token })
    }

    fn configure(&self, version: i64, ingress: Value) {
        let configuration = json!({"version": version, "config": {"ingress": ingress}, "tunnel_id": TUNNEL});
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.configuration = Some(configuration);
        state.served_since_change = 0;
    }

    /// Waits until the edge fetched the current configuration and came back
    /// for more: it has processed it (applied or refused).
    async fn wait_processed(&self) -> Result<()> {
        let deadline = Instant::now() + WAIT;
        loop {
            if self.state.lock().unwrap_or_else(|p| p.into_inner()).served_since_change >= 2 {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the edge did not fetch the configuration twice within {WAIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn send(
        &self,
        method: &str,
        addr: SocketAddr,
        host: &str,
        path: &str,
        payload: Bytes,
    ) -> Result<(u16, String)> {
        let request = Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"))
            .header("host", host)
            .body(body(payload))?;
        let response = self.client.request(request).await?;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    }

    async fn get(&self, host: &str, path: &str) -> Result<(u16, String)> {
        self.send("GET", self.edge.listen, host, path, Bytes::new()).await
    }

    async fn ready(&self) -> Result<(u16, String)> {
        self.send("GET", self.edge.metrics, "metrics", "/ready", Bytes::new()).await
    }

    /// Waits until the edge runs configuration `version`.
    async fn wait_for_version(&self, version: i64) -> Result<()> {
        let deadline = Instant::now() + WAIT;
        let mut routes = self.edge.routes.clone();
        loop {
            if routes.borrow().as_ref().is_some_and(|r| r.version == version) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the edge did not apply version {version} within {WAIT:?}");
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), routes.changed()).await;
        }
    }
}

fn json_of(text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| anyhow!("not JSON ({e}): {text}"))
}

#[tokio::test]
async fn the_edge_routes_like_cloudflared() -> Result<()> {
    let fixture = Fixture::start().await?;
    let origin = format!("http://{}", fixture.origin);
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.local_addr()?
    };

    // Before the first configuration: 503, not ready.
    assert_eq!(fixture.get("app.test", "/").await?, (503, "no ingress configuration yet\n".into()));
    let (status, ready) = fixture.ready().await?;
    assert_eq!((status, json_of(&ready)?["readyConnections"].as_i64()), (503, Some(0)));

    fixture.configure(
        1,
        json!([
            {"hostname": "app.test", "service": origin},
            {"hostname": "*.wild.test", "path": "^/api/", "service": origin, "originRequest": {"httpHostHeader": "internal.test"}},
            {"hostname": "teapot.test", "service": "http_status:418"},
            {"hostname": "down.test", "service": format!("http://{dead}")},
            {"service": "http_status:404"}
        ]),
    );
    fixture.wait_for_version(1).await?;
    let (status, ready) = fixture.ready().await?;
    let ready = json_of(&ready)?;
    assert_eq!((status, ready["status"].as_i64(), ready["readyConnections"].as_i64()), (200, Some(200), Some(1)));
    assert_eq!(ready["connectorId"], fixture.edge.connector_id.as_str());

    // The Host header is kept; the request target too.
    let (status, answer) = fixture.get("app.test:8080", "/x/y?z=1").await?;
    let answer = json_of(&answer)?;
    assert_eq!(status, 200);
    assert_eq!((answer["host"].as_str(), answer["path"].as_str()), (Some("app.test:8080"), Some("/x/y?z=1")));
    // A large body streams through.
    let payload = Bytes::from(vec![b'x'; 3 * 1024 * 1024]);
    let (status, answer) = fixture.send("POST", fixture.edge.listen, "app.test", "/upload", payload).await?;
    let answer = json_of(&answer)?;
    assert_eq!(
        (status, answer["method"].as_str(), answer["bytes"].as_u64()),
        (200, Some("POST"), Some(3 * 1024 * 1024))
    );
    // Wildcard host and path, with httpHostHeader.
    let (status, answer) = fixture.get("a.b.wild.test", "/api/v1").await?;
    assert_eq!((status, json_of(&answer)?["host"].as_str().map(str::to_string)), (200, Some("internal.test".into())));
    assert_eq!(fixture.get("a.wild.test", "/other/api/").await?.0, 404, "the path is a regex: ^/api/ is anchored");
    assert_eq!(fixture.get("wild.test", "/api/").await?.0, 404, "*.wild.test does not match wild.test");
    assert_eq!(fixture.get("teapot.test", "/").await?.0, 418);
    assert_eq!(fixture.get("unknown.test", "/").await?.0, 404);
    let (status, text) = fixture.get("down.test", "/").await?;
    assert_eq!(status, 502);
    assert!(text.contains("unreachable"), "{text}");

    // Newer versions apply; a broken one is skipped, the running one stays.
    fixture
        .configure(2, json!([{"hostname": "app.test", "service": "http_status:410"}, {"service": "http_status:404"}]));
    fixture.wait_for_version(2).await?;
    assert_eq!(fixture.get("app.test", "/").await?.0, 410);
    fixture.configure(
        3,
        json!([{"hostname": "app.test", "path": "(", "service": "http_status:200"}, {"service": "http_status:404"}]),
    );
    fixture.wait_processed().await?;
    assert_eq!(fixture.get("app.test", "/").await?.0, 410, "version 3 does not compile");
    fixture.configure(1, json!([{"service": "http_status:200"}]));
    fixture.wait_processed().await?;
    assert_eq!(fixture.get("app.test", "/").await?.0, 410, "an older version is never applied");

    // The emulator saw the tunnel token as a bearer, the connector id, and the long-poll.
    let (authorizations, queries) = {
        let state = fixture.state.lock().unwrap_or_else(|p| p.into_inner());
        (state.authorizations.clone(), state.queries.clone())
    };
    assert!(authorizations.iter().all(|a| a == &format!("Bearer {}", fixture.token)));
    let connector = format!("connector_id={}", fixture.edge.connector_id);
    assert!(queries.iter().all(|q| q.starts_with(&connector)), "{queries:?}");
    assert!(queries.iter().any(|q| q.ends_with("wait_for_version=3")), "{queries:?}");

    // Shutdown is prompt and says goodbye.
    let state = fixture.state.clone();
    let started = Instant::now();
    fixture.edge.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(3), "shutdown took {:?}", started.elapsed());
    assert_eq!(state.lock().unwrap_or_else(|p| p.into_inner()).deletes, 1);
    Ok(())
}

#[tokio::test]
async fn https_origins_are_verified_unless_no_tls_verify() -> Result<()> {
    let fixture = Fixture::start().await?;
    let origin = format!("https://localhost:{}", tls_origin().await?.port());
    fixture.configure(
        1,
        json!([
            {"hostname": "checked.test", "service": origin},
            {"hostname": "trusting.test", "service": origin, "originRequest": {"noTLSVerify": true}},
            {"service": "http_status:404"}
        ]),
    );
    fixture.wait_for_version(1).await?;
    let (status, text) = fixture.get("checked.test", "/").await?;
    assert_eq!(status, 502, "a self-signed certificate is refused: {text}");
    assert!(text.contains("unreachable"), "{text}");
    let (status, text) = fixture.get("trusting.test", "/").await?;
    assert_eq!(status, 200, "{text}");
    let answer = json_of(&text)?;
    assert_eq!((answer["host"].as_str(), answer["tls"].as_bool()), (Some("trusting.test"), Some(true)));
    fixture.edge.shutdown().await;
    Ok(())
}
