//! Cloudflare Access at the local edge, end to end in one process: the real emulator (in-process,
//! its HTTP API), a tunnel configured to a small origin, the edge following it, and Access
//! applications and policies written through the emulator's API — a reusable policy linked by
//! `{id, precedence}` and inline policy objects. Checks what a user sees: a redirect to the login
//! page when anonymous, 200 (the origin told the email) for an allowed test identity, 403 for
//! another, a bypass path served anonymously, a wildcard application, no spoofed identity header,
//! the view on `/config`, and a deleted application lifting the protection.

use anyhow::{anyhow, bail, Result};
use bytes::Bytes;
use dockflare_agent::edge::origin::{HttpClient, ProxyBody, Tls};
use dockflare_agent::edge::token::TunnelToken;
use dockflare_agent::edge::{self, EdgeSettings, RunningEdge};
use dockflare_emulator::{Emulator, EmulatorConfig};
use dockflare_testsupport::eventually;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use secrecy::SecretString;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;

const WAIT: Duration = Duration::from_secs(10);
const LOGIN: &str = "https://dockflare-emulator.cloudflareaccess.com/cdn-cgi/access/login";

fn body(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

/// An origin answering the path and the Access headers it received.
async fn origin() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = service_fn(|request: Request<Incoming>| async move {
                let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
                let answer = json!({
                    "path": request.uri().path(),
                    "email": header("cf-access-authenticated-user-email"),
                    "test_identity": header("cf-access-test-identity"),
                });
                Ok::<_, Infallible>(Response::new(body(answer.to_string())))
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    Ok(addr)
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Result<Value> {
        serde_json::from_str(&self.text).map_err(|e| anyhow!("not JSON ({e}): {}", self.text))
    }

    fn location(&self) -> &str {
        self.headers.get("location").and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

/// An HTTP client, and the emulator's account API.
struct Api {
    client: HttpClient,
    /// `http://…/client/v4/accounts/{account}`.
    base: String,
    token: String,
}

impl Api {
    async fn send(&self, method: &str, url: &str, headers: &[(&str, &str)], payload: Option<Value>) -> Result<Answer> {
        let mut request = Request::builder().method(method).uri(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let payload = payload.map(|p| Bytes::from(p.to_string())).unwrap_or_default();
        let response = self.client.request(request.body(body(payload))?).await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok(Answer { status, headers, text: String::from_utf8_lossy(&bytes).into_owned() })
    }

    /// An API call with the emulator's token; the envelope's `result`.
    async fn call(&self, method: &str, path: &str, payload: Option<Value>) -> Result<Value> {
        let bearer = format!("Bearer {}", self.token);
        let headers = [("authorization", bearer.as_str()), ("content-type", "application/json")];
        let answer = self.send(method, &format!("{}{path}", self.base), &headers, payload).await?;
        let envelope = answer.json()?;
        if !(200..300).contains(&answer.status) || envelope["success"] != true {
            bail!("{method} {path}: {} {}", answer.status, answer.text);
        }
        Ok(envelope["result"].clone())
    }
}

struct Fixture {
    _emulator: Emulator,
    api: Api,
    edge: RunningEdge,
}

impl Fixture {
    async fn start() -> Result<Fixture> {
        let config = EmulatorConfig { zones: vec!["example.test".into()], ..Default::default() };
        let (emulator, addr) = Emulator::start(config, SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let api = Api {
            client: Tls::new()?.client(true, Duration::from_secs(5)),
            base: format!("http://{addr}/client/v4/accounts/{}", emulator.account_id()),
            token: emulator.api_token().to_string(),
        };
        let origin = format!("http://{}", origin().await?);
        let tunnel = api.call("POST", "/cfd_tunnel", Some(json!({"name": "edge", "config_src": "cloudflare"}))).await?;
        let (tunnel_id, token) = (text(&tunnel, "id")?, text(&tunnel, "token")?);
        let ingress = json!({"config": {"ingress": [
            {"hostname": "app.example.test", "service": origin},
            {"hostname": "open.example.test", "service": origin},
            {"hostname": "*.wild.example.test", "service": origin},
            {"service": "http_status:404"}
        ]}});
        api.call("PUT", &format!("/cfd_tunnel/{tunnel_id}/configurations"), Some(ingress)).await?;
        let edge = edge::start(EdgeSettings {
            token: TunnelToken::decode(&SecretString::from(token))?,
            endpoint: Some(format!("http://{addr}/client/v4")),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            metrics: SocketAddr::from(([127, 0, 0, 1], 0)),
            grace: Duration::from_secs(1),
        })
        .await?;
        Ok(Fixture { _emulator: emulator, api, edge })
    }

    /// A request through the edge for `host` and `path`, with `headers`.
    async fn get(&self, host: &str, path: &str, headers: &[(&str, &str)]) -> Result<Answer> {
        let mut all = vec![("host", host)];
        all.extend_from_slice(headers);
        self.api.send("GET", &format!("http://{}{path}", self.edge.listen), &all, None).await
    }

    /// Waits until the edge's answer for `host`/`path` (anonymous) satisfies `wanted`.
    async fn wait_until(&self, host: &str, path: &str, what: &str, wanted: impl Fn(&Answer) -> bool) -> Result<Answer> {
        eventually(&format!("{host}{path} {what}"), WAIT, || async {
            let answer = self.get(host, path, &[]).await?;
            Ok(wanted(&answer).then_some(answer))
        })
        .await
    }
}

fn text(value: &Value, key: &str) -> Result<String> {
    value[key].as_str().map(str::to_string).ok_or_else(|| anyhow!("no {key} in {value}"))
}

#[tokio::test]
async fn access_applications_are_enforced_at_the_local_edge() -> Result<()> {
    let fixture = Fixture::start().await?;
    let served = fixture.wait_until("app.example.test", "/x", "served", |a| a.status == 200).await?;
    assert_eq!(served.json()?["email"], Value::Null, "no Access yet: no identity");

    // A reusable policy, linked from an application by {id, precedence}.
    let policy = fixture
        .api
        .call(
            "POST",
            "/access/policies",
            Some(json!({"name": "a only", "decision": "allow", "include": [{"email": {"email": "a@example.com"}}]})),
        )
        .await?;
    let app = fixture
        .api
        .call(
            "POST",
            "/access/apps",
            Some(json!({"type": "self_hosted", "name": "App", "domain": "app.example.test",
                   "policies": [{"id": text(&policy, "id")?, "precedence": 1}]})),
        )
        .await?;
    let (app_id, aud) = (text(&app, "id")?, text(&app, "aud")?);

    // Anonymous: to the login page, as Cloudflare does.
    let login = fixture.wait_until("app.example.test", "/x?y=1", "redirected", |a| a.status == 302).await?;
    assert_eq!(login.location(), format!("{LOGIN}/app.example.test?kid={aud}&redirect_url=/x%3Fy%3D1"));
    // A client cannot claim an identity by sending the origin's header itself.
    let spoofed =
        fixture.get("app.example.test", "/", &[("cf-access-authenticated-user-email", "a@example.com")]).await?;
    assert_eq!(spoofed.status, 302);

    // The test identity: allowed, the origin is told who; the test header is not forwarded.
    let allowed = fixture
        .get(
            "app.example.test",
            "/x",
            &[("cf-access-test-identity", "A@example.com"), ("cf-access-authenticated-user-email", "boss@example.com")],
        )
        .await?;
    assert_eq!(allowed.status, 200, "{}", allowed.text);
    let seen = allowed.json()?;
    assert_eq!((seen["email"].as_str(), &seen["test_identity"]), (Some("A@example.com"), &Value::Null));
    // Another identity: refused.
    let refused = fixture.get("app.example.test", "/x", &[("cf-access-test-identity", "b@example.com")]).await?;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.text, "Forbidden: b@example.com is not allowed by the Access policies of App\n");

    // A host no application covers: served, and a spoofed identity header is dropped.
    let open =
        fixture.get("open.example.test", "/", &[("cf-access-authenticated-user-email", "a@example.com")]).await?;
    assert_eq!((open.status, &open.json()?["email"]), (200, &Value::Null));

    // Inline policies: a bypass path inside the protected host, and a wildcard application.
    fixture
        .api
        .call(
            "POST",
            "/access/apps",
            Some(json!({"type": "self_hosted", "name": "Public", "domain": "app.example.test/public",
                   "policies": [{"name": "all", "decision": "bypass", "include": [{"everyone": {}}], "precedence": 1}]})),
        )
        .await?;
    fixture
        .api
        .call(
            "POST",
            "/access/apps",
            Some(json!({"type": "self_hosted", "name": "Wild", "domain": "*.wild.example.test",
                   "policies": [{"name": "staff", "decision": "allow", "precedence": 1,
                                 "include": [{"email_domain": {"domain": "example.com"}}]}]})),
        )
        .await?;
    let public = fixture.wait_until("app.example.test", "/public/page", "served", |a| a.status == 200).await?;
    assert_eq!(public.json()?["path"], "/public/page");
    assert_eq!(fixture.get("app.example.test", "/publicity", &[]).await?.status, 302, "segment-wise paths");
    let wild = fixture.wait_until("a.wild.example.test", "/", "redirected", |a| a.status == 302).await?;
    assert!(wild.location().starts_with(&format!("{LOGIN}/a.wild.example.test?kid=")), "{}", wild.location());
    let staff = fixture.get("a.wild.example.test", "/", &[("cf-access-test-identity", "c@example.com")]).await?;
    assert_eq!((staff.status, staff.json()?["email"].as_str()), (200, Some("c@example.com")));
    let outsider = fixture.get("a.wild.example.test", "/", &[("cf-access-test-identity", "c@other.test")]).await?;
    assert_eq!(outsider.status, 403);

    // The view on /config.
    let config = fixture.api.send("GET", &format!("http://{}/config", fixture.edge.metrics), &[], None).await?;
    let config = config.json()?;
    let mut names: Vec<&str> =
        config["access"]["apps"].as_array().into_iter().flatten().filter_map(|a| a["name"].as_str()).collect();
    names.sort();
    assert_eq!(names, ["App", "Public", "Wild"]);
    assert_eq!(config["access"]["auth_domain"], "dockflare-emulator.cloudflareaccess.com");

    // Deleting the application lifts the protection.
    fixture.api.call("DELETE", &format!("/access/apps/{app_id}"), None).await?;
    let lifted = fixture.wait_until("app.example.test", "/x", "served", |a| a.status == 200).await?;
    assert_eq!(lifted.json()?["email"], Value::Null);
    fixture.edge.shutdown().await;
    Ok(())
}
