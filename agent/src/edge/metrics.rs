//! cloudflared's metrics port, the parts DockFlare reads (`shared/reference/cloudflare-api.md` §8.3):
//! `GET /ready` — 200 `{"status":200,"readyConnections":1,"connectorId":"…"}` once a configuration
//! is loaded, else 503 with `readyConnections` 0; `GET /healthcheck` — 200 `OK`; `GET /config` —
//! the running configuration as `{"version", "config", "access"}` (404 before the first), `access`
//! being the Access applications the edge enforces (`{"auth_domain", "fingerprint", "apps":
//! [{"id", "aud", "name", "domains", "policies" | "error"}]}`).

use super::origin::ProxyBody;
use super::proxy::Current;
use bytes::Bytes;
use dockflare_cloudflare::types::TunnelConfig;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde::Serialize;

/// The `/ready` body, fields in cloudflared's order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Ready<'a> {
    status: u16,
    ready_connections: u32,
    connector_id: &'a str,
}

/// The `/config` body.
#[derive(Serialize)]
struct Running<'a> {
    version: i64,
    config: &'a TunnelConfig,
    access: serde_json::Value,
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn answer(status: StatusCode, content_type: &'static str, body: String) -> Response<ProxyBody> {
    let mut response = Response::new(Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Answers one request on the metrics port.
pub fn handle<B>(current: &Current, connector_id: &str, request: &Request<B>) -> Response<ProxyBody> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return answer(StatusCode::METHOD_NOT_ALLOWED, "text/plain; charset=utf-8", "method not allowed\n".into());
    }
    let routes = current.borrow().clone();
    match request.uri().path() {
        "/ready" => {
            let (status, connections) =
                if routes.is_some() { (StatusCode::OK, 1) } else { (StatusCode::SERVICE_UNAVAILABLE, 0) };
            let body = Ready { status: status.as_u16(), ready_connections: connections, connector_id };
            answer(status, "application/json", to_json(&body))
        }
        "/healthcheck" => answer(StatusCode::OK, "text/plain; charset=utf-8", "OK\n".into()),
        "/config" => match routes {
            Some(routes) => answer(
                StatusCode::OK,
                "application/json",
                to_json(&Running { version: routes.version, config: &routes.config, access: routes.access.summary() }),
            ),
            None => answer(StatusCode::NOT_FOUND, "text/plain; charset=utf-8", "no configuration yet\n".into()),
        },
        _ => answer(StatusCode::NOT_FOUND, "text/plain; charset=utf-8", "404 page not found\n".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edge::origin::Tls;
    use crate::edge::proxy::Routes;
    use serde_json::json;
    use std::sync::Arc;
    use tokio::sync::watch;

    async fn body(response: Response<ProxyBody>) -> (u16, String) {
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    fn get(path: &str) -> Request<()> {
        let mut request = Request::new(());
        *request.uri_mut() = path.parse().unwrap_or_default();
        request
    }

    #[tokio::test]
    async fn ready_once_a_configuration_is_loaded() {
        let (sender, current) = watch::channel(None);
        assert_eq!(
            body(handle(&current, "c-1", &get("/ready"))).await,
            (503, r#"{"status":503,"readyConnections":0,"connectorId":"c-1"}"#.into())
        );
        assert_eq!(body(handle(&current, "c-1", &get("/config"))).await.0, 404);
        let tls = match Tls::new() {
            Ok(tls) => tls,
            Err(error) => panic!("{error}"),
        };
        let config = json!({"ingress": [{"service": "http_status:404"}]});
        let config = serde_json::from_value(config).unwrap_or_else(|e| panic!("{e}"));
        let routes = match Routes::build(7, config, &tls) {
            Ok(routes) => routes,
            Err(error) => panic!("{error}"),
        };
        sender.send_replace(Some(Arc::new(routes)));
        assert_eq!(
            body(handle(&current, "c-1", &get("/ready"))).await,
            (200, r#"{"status":200,"readyConnections":1,"connectorId":"c-1"}"#.into())
        );
        assert_eq!(
            body(handle(&current, "c-1", &get("/config"))).await,
            (
                200,
                r#"{"version":7,"config":{"ingress":[{"service":"http_status:404"}]},"access":{"apps":[],"auth_domain":"","fingerprint":null}}"#
                    .into()
            )
        );
        assert_eq!(body(handle(&current, "c-1", &get("/healthcheck"))).await, (200, "OK\n".into()));
        assert_eq!(body(handle(&current, "c-1", &get("/nope"))).await.0, 404);
    }
}
