//! The edge's HTTP side: one request in, the matching ingress rule ([`super::ingress`]) decides —
//! an origin (the request is forwarded, both bodies streamed), a status answered here, or the
//! catch-all. Like cloudflared: 503 before the first configuration, 502 when the origin cannot be
//! reached, the `Host` header kept unless the rule sets `httpHostHeader`. Before the ingress, like
//! Cloudflare's edge, Access ([`super::access`]): a covered request is redirected to the login
//! page, refused (403), or served — with `Cf-Access-Authenticated-User-Email` when an identity
//! passed. The client's own `Cf-Access-Authenticated-User-Email` and the test device's header are
//! never forwarded.

use super::access::{
    AccessView, Verdict, Visitor, AUTHENTICATED_EMAIL_HEADER, CLIENT_ID_HEADER, CLIENT_SECRET_HEADER,
    TEST_IDENTITY_HEADER,
};
use super::ingress::{Ingress, IngressError, Service};
use super::origin::{HttpClient, ProxyBody, Tls, DEFAULT_CONNECT_TIMEOUT};
use bytes::Bytes;
use dockflare_cloudflare::types::TunnelConfig;
use dockflare_common::error_text::error_chain;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;

/// A configuration ready to serve: the ingress and a client per origin rule.
pub struct Routes {
    pub version: i64,
    /// The configuration as the emulator sent it (`/config` on the metrics port shows it).
    pub config: TunnelConfig,
    pub ingress: Ingress,
    /// Same length as `ingress.rules`; `Some` for origin rules.
    clients: Vec<Option<HttpClient>>,
    /// The Access applications enforced in front of the ingress.
    pub access: Arc<AccessView>,
}

impl Routes {
    /// Compiles `config` and makes the origin clients.
    pub fn build(version: i64, config: TunnelConfig, tls: &Tls) -> Result<Routes, IngressError> {
        let ingress = Ingress::from_config(&config)?;
        let clients = ingress
            .rules
            .iter()
            .map(|rule| match rule.service {
                Service::Origin { .. } => Some(tls.client(
                    !rule.origin.no_tls_verify,
                    rule.origin.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
                )),
                _ => None,
            })
            .collect();
        Ok(Routes { version, config, ingress, clients, access: Arc::new(AccessView::default()) })
    }

    /// These routes behind another Access view.
    pub fn with_access(&self, access: Arc<AccessView>) -> Routes {
        Routes {
            version: self.version,
            config: self.config.clone(),
            ingress: self.ingress.clone(),
            clients: self.clients.clone(),
            access,
        }
    }
}

/// What the proxy reads: the current routes, `None` until the first configuration.
pub type Current = watch::Receiver<Option<Arc<Routes>>>;

/// Headers that concern one connection only (RFC 9110 §7.6.1); never forwarded.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn text(status: StatusCode, body: impl Into<String>) -> Response<ProxyBody> {
    let mut response = Response::new(Full::new(Bytes::from(body.into())).map_err(|never| match never {}).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

fn empty(status: StatusCode) -> Response<ProxyBody> {
    let mut response = Response::new(Full::new(Bytes::new()).map_err(|never| match never {}).boxed());
    *response.status_mut() = status;
    response
}

/// The host a request is for: the `Host` header, else the authority of an absolute-form target.
fn request_host(request: &Request<Incoming>) -> String {
    request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| request.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default()
}

/// Removes hop-by-hop headers, including those the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Answers one request.
pub async fn handle(current: Current, client_addr: SocketAddr, request: Request<Incoming>) -> Response<ProxyBody> {
    let Some(routes) = current.borrow().clone() else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "no ingress configuration yet\n");
    };
    let host = request_host(&request);
    let path = request.uri().path().to_string();
    let mut request = request;
    let email = match access(&routes.access, &host, client_addr, &request) {
        Ok(email) => email,
        Err(refusal) => return *refusal,
    };
    let headers = request.headers_mut();
    for name in [AUTHENTICATED_EMAIL_HEADER, TEST_IDENTITY_HEADER, "cf-access-jwt-assertion"] {
        headers.remove(name);
    }
    if let Some(value) = email.as_deref().and_then(|e| HeaderValue::from_str(e).ok()) {
        headers.insert(AUTHENTICATED_EMAIL_HEADER, value);
    }
    let Some((index, rule)) = routes.ingress.find(&host, &path) else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "no ingress configuration yet\n");
    };
    tracing::debug!(message = "Request matched.", %host, %path, rule = index + 1);
    match &rule.service {
        Service::Status(code) => empty(StatusCode::from_u16(*code).unwrap_or(StatusCode::NOT_FOUND)),
        Service::HelloWorld => text(StatusCode::OK, "Hello from the DockFlare local edge.\n"),
        Service::Unsupported(service) => {
            text(StatusCode::BAD_GATEWAY, format!("the local edge does not proxy to {service}\n"))
        }
        Service::Origin { https, authority } => {
            let Some(Some(client)) = routes.clients.get(index) else {
                return text(StatusCode::BAD_GATEWAY, "no client for this origin\n");
            };
            let host_header = rule.origin.http_host_header.clone();
            forward(client, *https, authority, host_header.as_deref(), client_addr, request).await
        }
    }
}

fn header<'a, B>(request: &'a Request<B>, name: &str) -> Option<&'a str> {
    request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

/// What Access says: `Ok(email)` to serve (with the identity the origin is told, if any), or the
/// answer (a redirect to the login page, a 403).
fn access<B>(
    view: &AccessView,
    host: &str,
    client_addr: SocketAddr,
    request: &Request<B>,
) -> Result<Option<String>, Box<Response<ProxyBody>>> {
    if view.apps.is_empty() {
        return Ok(None);
    }
    let target = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let service_token = header(request, CLIENT_ID_HEADER).zip(header(request, CLIENT_SECRET_HEADER));
    let visitor = Visitor { identity: header(request, TEST_IDENTITY_HEADER), service_token, ip: client_addr.ip() };
    match view.evaluate(host, target, &visitor) {
        Verdict::Uncovered => Ok(None),
        Verdict::Serve { app, email } => {
            tracing::debug!(message = "Access passed.", %host, app = %app, identified = email.is_some());
            Ok(email)
        }
        Verdict::Login { location } => {
            tracing::debug!(message = "Access: no identity; redirected to the login page.", %host);
            let mut response = text(StatusCode::FOUND, format!("Access: sign in at {location}\n"));
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            Err(Box::new(response))
        }
        Verdict::Forbidden { reason } => {
            tracing::debug!(message = "Access refused the request.", %host, %reason);
            Err(Box::new(text(StatusCode::FORBIDDEN, format!("{reason}\n"))))
        }
    }
}

/// Sends the request to the origin and streams its answer back.
async fn forward(
    client: &HttpClient,
    https: bool,
    authority: &str,
    host_header: Option<&str>,
    client_addr: SocketAddr,
    request: Request<Incoming>,
) -> Response<ProxyBody> {
    let scheme = if https { "https" } else { "http" };
    let target = request.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let origin = format!("{scheme}://{authority}");
    let uri: Uri = match format!("{origin}{target}").parse() {
        Ok(uri) => uri,
        Err(error) => return text(StatusCode::BAD_REQUEST, format!("bad request target: {error}\n")),
    };
    let (mut parts, body) = request.into_parts();
    let original_host = parts.headers.get(header::HOST).cloned();
    strip_hop_by_hop(&mut parts.headers);
    parts.uri = uri;
    parts.version = Version::HTTP_11;
    match host_header.map(HeaderValue::from_str) {
        Some(Ok(value)) => {
            parts.headers.insert(header::HOST, value);
        }
        Some(Err(_)) | None => {
            if let Some(host) = original_host {
                parts.headers.insert(header::HOST, host);
            }
        }
    }
    let forwarded_for = match parts.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(previous) => format!("{previous}, {}", client_addr.ip()),
        None => client_addr.ip().to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&forwarded_for) {
        parts.headers.insert("x-forwarded-for", value);
    }
    parts.headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    let outgoing = Request::from_parts(parts, body.boxed());
    match client.request(outgoing).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, body.boxed())
        }
        Err(error) => {
            let reason = error_chain(&error);
            tracing::warn!(message = "Origin unreachable.", %origin, error = %reason);
            text(StatusCode::BAD_GATEWAY, format!("Bad gateway: the origin {origin} is unreachable: {reason}\n"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_dropped() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, x-private"),
            ("keep-alive", "timeout=5"),
            ("x-private", "1"),
            ("upgrade", "h2c"),
            ("accept", "*/*"),
            ("host", "app.example.test"),
        ] {
            headers.append(HeaderName::from_static(name), HeaderValue::from_static(value));
        }
        strip_hop_by_hop(&mut headers);
        let mut left: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, ["accept", "host"]);
    }
}
