//! The Cloudflare API emulator over real HTTP: envelopes and pagination,
//! tunnels (409, soft delete, token format), configurations (1055, version,
//! cloudflared's 1056 messages), DNS (filters, 81053/81054/81058/81044),
//! authentication, fault injection, and the `/__emulator/` inspection API.

use anyhow::{bail, Context, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use dockflare_cloudflare::types::{
    decode_tunnel_token, DnsRecord, DnsRecordRequest, Envelope, ResultInfo, Tunnel, TunnelClient, TunnelConfiguration,
    TunnelWithToken,
};
use dockflare_emulator::{Emulator, EmulatorConfig, EmulatorInfo, FaultSpec, RequestReport, Snapshot};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// One answer: status, headers, JSON body (`null` when empty).
struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Reply {
    fn error_codes(&self) -> Vec<i64> {
        self.body["errors"]
            .as_array()
            .map(|e| e.iter().filter_map(|m| m["code"].as_i64()).collect())
            .unwrap_or_default()
    }

    fn first_error(&self) -> (i64, String) {
        let error = &self.body["errors"][0];
        (error["code"].as_i64().unwrap_or(0), error["message"].as_str().unwrap_or("").to_string())
    }

    fn result<T: DeserializeOwned>(&self) -> Result<T> {
        let envelope: Envelope<T> = serde_json::from_value(self.body.clone()).context("not an envelope")?;
        if self.status != 200 || !envelope.success {
            bail!("HTTP {}: {}", self.status, self.body);
        }
        envelope.result.context("no result")
    }

    fn page<T: DeserializeOwned>(&self) -> Result<(Vec<T>, ResultInfo)> {
        let envelope: Envelope<Vec<T>> = serde_json::from_value(self.body.clone()).context("not an envelope")?;
        if self.status != 200 || !envelope.success {
            bail!("HTTP {}: {}", self.status, self.body);
        }
        Ok((envelope.result.unwrap_or_default(), envelope.result_info.context("no result_info")?))
    }

    fn plain<T: DeserializeOwned>(&self) -> Result<T> {
        if self.status != 200 {
            bail!("HTTP {}: {}", self.status, self.body);
        }
        serde_json::from_value(self.body.clone()).context("unexpected inspection answer")
    }
}

struct Api {
    emulator: Emulator,
    http: reqwest::Client,
    /// `http://127.0.0.1:port`
    root: String,
    /// `root` + base path
    base: String,
    token: String,
}

impl Api {
    async fn start() -> Result<Api> {
        Api::start_with(EmulatorConfig::default()).await
    }

    async fn start_with(config: EmulatorConfig) -> Result<Api> {
        let (emulator, addr) = Emulator::start(config, "127.0.0.1:0".parse()?).await?;
        Ok(Api {
            base: emulator.base_url(addr),
            root: format!("http://{addr}"),
            token: emulator.api_token().to_string(),
            http: reqwest::Client::new(),
            emulator,
        })
    }

    fn account(&self) -> String {
        self.emulator.account_id().to_string()
    }

    fn zone(&self) -> String {
        self.emulator.zone_id("example.test").unwrap_or_default()
    }

    async fn send(&self, method: Method, url: String, token: Option<&str>, body: Option<Value>) -> Result<Reply> {
        let mut request = self.http.request(method, url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await?;
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).context("not JSON")? };
        Ok(Reply { status, headers, body })
    }

    /// An API call under the base path, with the token.
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Reply> {
        self.send(method, format!("{}{path}", self.base), Some(&self.token), body).await
    }

    async fn get(&self, path: &str) -> Result<Reply> {
        self.call(Method::GET, path, None).await
    }

    /// An inspection call (`/__emulator/...`), no token.
    async fn inspect(&self, method: Method, path: &str, body: Option<Value>) -> Result<Reply> {
        self.send(method, format!("{}/__emulator{path}", self.root), None, body).await
    }

    async fn create_tunnel(&self, name: &str) -> Result<TunnelWithToken> {
        let path = format!("/accounts/{}/cfd_tunnel", self.account());
        self.call(Method::POST, &path, Some(json!({"name": name, "config_src": "cloudflare"}))).await?.result()
    }

    fn tunnel_path(&self, tunnel_id: &str) -> String {
        format!("/accounts/{}/cfd_tunnel/{tunnel_id}", self.account())
    }

    async fn create_record(&self, body: Value) -> Result<Reply> {
        self.call(Method::POST, &format!("/zones/{}/dns_records", self.zone()), Some(body)).await
    }
}

fn cname(name: &str, target: &str) -> Value {
    json!({"type": "CNAME", "name": name, "content": target, "proxied": true, "ttl": 1})
}

#[tokio::test]
async fn dns_records_are_paged_with_result_info() -> Result<()> {
    let api = Api::start().await?;
    for i in 0..250 {
        let reply = api.create_record(json!({"type": "A", "name": format!("host{i}"), "content": "192.0.2.1"})).await?;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let path = format!("/zones/{}/dns_records", api.zone());
    let mut ids = BTreeSet::new();
    for (page, count) in [(1, 100), (2, 100), (3, 50)] {
        let reply = api.get(&format!("{path}?per_page=100&page={page}")).await?;
        assert_eq!((reply.body["success"].clone(), reply.body["errors"].clone()), (json!(true), json!([])));
        assert_eq!(reply.body["messages"], json!([]));
        let (records, info) = reply.page::<DnsRecord>()?;
        assert_eq!(info, ResultInfo { page, per_page: 100, count, total_count: 250, total_pages: Some(3) });
        assert_eq!(records.len() as u64, count);
        ids.extend(records.into_iter().map(|r| r.id));
    }
    assert_eq!(ids.len(), 250, "every record exactly once across the pages");
    let (records, info) = api.get(&format!("{path}?per_page=100&page=4")).await?.page::<DnsRecord>()?;
    assert!(records.is_empty());
    assert_eq!((info.page, info.count, info.total_count), (4, 0, 250));
    let (records, info) = api.get(&path).await?.page::<DnsRecord>()?;
    assert_eq!((records.len(), info.per_page, info.total_pages), (100, 100, Some(3)));
    // The raw JSON carries all five result_info fields.
    let raw = api.get(&format!("{path}?per_page=7")).await?.body;
    assert_eq!(
        raw["result_info"],
        json!({"page": 1, "per_page": 7, "count": 7, "total_count": 250, "total_pages": 36})
    );
    Ok(())
}

#[tokio::test]
async fn tunnels_are_created_listed_conflict_and_soft_deleted() -> Result<()> {
    let api = Api::start().await?;
    let created = api.create_tunnel("dockflare-a").await?;
    let tunnel = &created.tunnel;
    assert_eq!(tunnel.name, "dockflare-a");
    assert_eq!(tunnel.account_tag, api.account());
    assert_eq!((tunnel.status.as_str(), tunnel.tun_type.as_str()), ("inactive", "cfd_tunnel"));
    assert_eq!(tunnel.config_src.as_deref(), Some("cloudflare"));
    assert!(tunnel.remote_config);
    assert_eq!((tunnel.deleted_at.as_deref(), tunnel.conns_active_at.as_deref()), (None, None));
    assert_eq!(tunnel.conns_inactive_at.as_deref(), Some(tunnel.created_at.as_str()));
    assert!(tunnel.connections.is_empty());
    assert!(uuid::Uuid::parse_str(&tunnel.id).is_ok(), "{}", tunnel.id);

    let local = api
        .call(Method::POST, &format!("/accounts/{}/cfd_tunnel", api.account()), Some(json!({"name": "other"})))
        .await?;
    assert_eq!(local.result::<Tunnel>()?.config_src.as_deref(), Some("local"), "config_src defaults to local");

    let duplicate = api
        .call(Method::POST, &format!("/accounts/{}/cfd_tunnel", api.account()), Some(json!({"name": "dockflare-a"})))
        .await?;
    assert_eq!(duplicate.status, 409);
    assert_eq!(
        duplicate.first_error(),
        (1013, "You already have a tunnel with this name. Delete the existing tunnel, or choose a different name for your new tunnel".into())
    );
    assert_eq!(duplicate.body["success"], json!(false));
    assert_eq!(duplicate.body["result"], Value::Null);

    let list = format!("/accounts/{}/cfd_tunnel", api.account());
    let (found, info) = api.get(&format!("{list}?name=dockflare-a&is_deleted=false")).await?.page::<Tunnel>()?;
    assert_eq!(found.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), [tunnel.id.as_str()]);
    assert_eq!(info, ResultInfo { page: 1, per_page: 1000, count: 1, total_count: 1, total_pages: Some(1) });
    let (found, _) = api.get(&format!("{list}?uuid={}", tunnel.id)).await?.page::<Tunnel>()?;
    assert_eq!(found.len(), 1);
    let (found, _) = api.get(&format!("{list}?include_prefix=dockflare-")).await?.page::<Tunnel>()?;
    assert_eq!(found.len(), 1);
    let (found, _) = api.get(&format!("{list}?exclude_prefix=dockflare-")).await?.page::<Tunnel>()?;
    assert_eq!(found.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["other"]);

    let deleted: Tunnel = api.call(Method::DELETE, &api.tunnel_path(&tunnel.id), None).await?.result()?;
    assert!(deleted.deleted_at.is_some());
    let (live, _) = api.get(&format!("{list}?name=dockflare-a&is_deleted=false")).await?.page::<Tunnel>()?;
    assert!(live.is_empty(), "{live:?}");
    let (gone, _) = api.get(&format!("{list}?is_deleted=true")).await?.page::<Tunnel>()?;
    assert_eq!(gone.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), [tunnel.id.as_str()]);
    let (all, info) = api.get(&list).await?.page::<Tunnel>()?;
    assert_eq!((all.len(), info.total_count), (2, 2));
    let still: Tunnel = api.get(&api.tunnel_path(&tunnel.id)).await?.result()?;
    assert_eq!(still.deleted_at, deleted.deleted_at, "a deleted tunnel is still readable");

    // A deleted tunnel's name can be used again.
    let again = api.create_tunnel("dockflare-a").await?;
    assert_ne!(again.tunnel.id, tunnel.id);
    let unknown = api.get(&api.tunnel_path(&uuid::Uuid::new_v4().to_string())).await?;
    assert_eq!((unknown.status, unknown.first_error().0), (404, 1003));
    let bad_filter = api.get(&format!("{list}?is_deleted=maybe")).await?;
    assert_eq!(bad_filter.status, 400);
    Ok(())
}

#[tokio::test]
async fn tunnel_tokens_decode_to_the_tunnel() -> Result<()> {
    let api = Api::start().await?;
    let secret: Vec<u8> = (100u8..140).collect();
    let body = json!({"name": "with-secret", "config_src": "cloudflare", "tunnel_secret": STANDARD.encode(&secret)});
    let created: TunnelWithToken =
        api.call(Method::POST, &format!("/accounts/{}/cfd_tunnel", api.account()), Some(body)).await?.result()?;
    let token = created.token.clone().context("the create answer carries the token")?;
    assert!(token.starts_with("eyJhIjoi"), "{token}");
    let decoded = decode_tunnel_token(&token)?;
    assert_eq!(
        (decoded.account_tag.as_str(), decoded.tunnel_id.as_str()),
        (api.account().as_str(), created.tunnel.id.as_str())
    );
    assert_eq!(decoded.secret, secret);
    let fetched: String = api.get(&format!("{}/token", api.tunnel_path(&created.tunnel.id))).await?.result()?;
    assert_eq!(fetched, token, "GET .../token is a bare string equal to the create answer's token");
    let credentials = created.credentials_file.context("credentials_file")?;
    assert_eq!(credentials.tunnel_secret, STANDARD.encode(&secret));
    assert_eq!((credentials.tunnel_id, credentials.account_tag), (created.tunnel.id.clone(), api.account()));

    let generated = api.create_tunnel("generated").await?;
    let decoded = decode_tunnel_token(generated.token.as_deref().unwrap_or(""))?;
    assert_eq!((decoded.tunnel_id, decoded.secret.len()), (generated.tunnel.id, 32));

    let short = json!({"name": "short", "tunnel_secret": STANDARD.encode([1u8; 8])});
    let refused = api.call(Method::POST, &format!("/accounts/{}/cfd_tunnel", api.account()), Some(short)).await?;
    assert_eq!(refused.status, 400);
    Ok(())
}

#[tokio::test]
async fn configurations_are_missing_until_put_then_versioned() -> Result<()> {
    let api = Api::start().await?;
    let tunnel = api.create_tunnel("configured").await?.tunnel;
    let path = format!("{}/configurations", api.tunnel_path(&tunnel.id));
    let missing = api.get(&path).await?;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.first_error(), (1055, "Configuration for tunnel not found".into()));

    let config = json!({
        "ingress": [
            {"hostname": "app.example.test", "path": "^/api/", "service": "http://app:8080",
             "originRequest": {"noTLSVerify": true, "connectTimeout": 30, "httpHostHeader": "app.internal"},
             "somethingNew": {"kept": true}},
            {"service": "http_status:404"}
        ],
        "originRequest": {"http2Origin": true},
        "warp-routing": {"enabled": false}
    });
    let first: TunnelConfiguration = api.call(Method::PUT, &path, Some(json!({"config": config}))).await?.result()?;
    assert_eq!((first.version, first.source.as_str()), (1, "cloudflare"));
    assert_eq!((first.tunnel_id.as_str(), first.account_id.as_str()), (tunnel.id.as_str(), api.account().as_str()));
    let read = api.get(&path).await?;
    assert_eq!(read.body["result"]["config"], config, "stored verbatim");
    assert_eq!(read.result::<TunnelConfiguration>()?, first);

    let second_config = json!({"ingress": [{"service": "http_status:503"}]});
    let second: TunnelConfiguration =
        api.call(Method::PUT, &path, Some(json!({"config": second_config}))).await?.result()?;
    assert_eq!(second.version, 2);
    assert_eq!(api.get(&path).await?.body["result"]["config"], second_config, "a PUT replaces the whole document");

    let unknown = api
        .call(
            Method::PUT,
            &format!("{}/configurations", api.tunnel_path(&uuid::Uuid::new_v4().to_string())),
            Some(json!({"config": second_config})),
        )
        .await?;
    assert_eq!((unknown.status, unknown.first_error().0), (404, 1003));

    api.call(Method::DELETE, &api.tunnel_path(&tunnel.id), None).await?.result::<Tunnel>()?;
    let after_delete = api.get(&path).await?;
    assert_eq!((after_delete.status, after_delete.first_error().0), (404, 1055));
    Ok(())
}

#[tokio::test]
async fn invalid_configurations_get_cloudflared_messages() -> Result<()> {
    let api = Api::start().await?;
    let tunnel = api.create_tunnel("validated").await?.tunnel;
    let path = format!("{}/configurations", api.tunnel_path(&tunnel.id));
    let catch_all = json!({"service": "http_status:404"});
    let cases = [
        (json!([]), "The config file doesn't contain any ingress rules"),
        (
            json!([{"hostname": "a.example.test", "service": "http://a:80"}]),
            "The last ingress rule must match all URLs (i.e. it should not have a hostname or path filter)",
        ),
        (
            json!([{"service": "http://a:80"}, {"hostname": "b.example.test", "service": "http://b:80"}, catch_all]),
            "Rule #1 is matching the hostname '', but this will match every hostname, meaning the rules which follow it will never be triggered.",
        ),
        (
            json!([{"hostname": "a.*.example.test", "service": "http://a:80"}, catch_all]),
            "Hostname patterns can have at most one wildcard character (\"*\") and it can only be used for subdomains, e.g. \"*.example.com\"",
        ),
        (json!([{"hostname": "a.example.test:443", "service": "http://a:80"}, catch_all]), "Hostname cannot contain a port"),
        (
            json!([{"hostname": "a.example.test", "service": "app:80"}, catch_all]),
            "app:80 is an invalid address, please make sure it has a scheme and a hostname",
        ),
        (
            json!([{"hostname": "a.example.test", "service": "http://app:80/sub"}, catch_all]),
            "http://app:80/sub is an invalid address, ingress rules don't support proxying to a different path on the origin service. The path will be the same as the eyeball request's path",
        ),
        (json!([{"service": "http_status:1000"}]), "invalid HTTP status code: 1000"),
        (
            json!([{"hostname": "a.example.test", "service": "http://127.0.0.1:2333 "}, catch_all]),
            "parse \"http://127.0.0.1:2333 \": invalid port \":2333 \" after host",
        ),
    ];
    for (ingress, message) in cases {
        let reply = api.call(Method::PUT, &path, Some(json!({"config": {"ingress": ingress}}))).await?;
        assert_eq!(reply.status, 400, "{ingress}: {}", reply.body);
        assert_eq!(
            reply.first_error(),
            (1056, format!("Bad Configuration: Validation failed: {message}\n")),
            "{ingress}"
        );
    }
    let regex = json!([{"hostname": "a.example.test", "path": "*", "service": "http://a:80"}, catch_all]);
    let reply = api.call(Method::PUT, &path, Some(json!({"config": {"ingress": regex}}))).await?;
    let (code, message) = reply.first_error();
    assert_eq!((reply.status, code), (400, 1056));
    assert!(message.starts_with("Bad Configuration: Validation failed: Rule #1 has an invalid regex: "), "{message}");
    assert_eq!(api.get(&path).await?.first_error().0, 1055, "no refused PUT was stored");
    assert!(api.emulator.snapshot().configurations.is_empty());
    Ok(())
}

#[tokio::test]
async fn dns_records_filter_conflict_and_delete() -> Result<()> {
    let api = Api::start().await?;
    let path = format!("/zones/{}/dns_records", api.zone());
    let target = "6f4c3a1e-2b1d-4a55-9a0e-1f0a1b2c3d4e.cfargotunnel.com";
    let mut body = cname("app", target);
    body["comment"] = json!("managed-by=dockflare");
    body["tags"] = json!(["managed-by:dockflare", "team:web"]);
    let app: DnsRecord = api.create_record(body).await?.result()?;
    assert_eq!(
        (app.name.as_str(), app.record_type.as_str(), app.content.as_str()),
        ("app.example.test", "CNAME", target)
    );
    assert_eq!((app.proxied, app.ttl, app.comment.as_deref()), (true, 1, Some("managed-by=dockflare")));
    assert_eq!(app.id.len(), 32);
    assert_eq!(app.extra.get("proxiable"), Some(&json!(true)));
    api.create_record(json!({"type": "A", "name": "db.example.test", "content": "192.0.2.7", "ttl": 300}))
        .await?
        .result::<DnsRecord>()?;
    api.create_record(
        json!({"type": "TXT", "name": "_owner.app", "content": "heritage=dockflare", "comment": "Other tool"}),
    )
    .await?
    .result::<DnsRecord>()?;

    let names = |reply: &Reply| -> Result<Vec<String>> {
        Ok(reply.page::<DnsRecord>()?.0.into_iter().map(|r| r.name).collect())
    };
    let filters = [
        ("name=app.example.test", vec!["app.example.test"]),
        ("name.exact=APP.example.test", vec!["app.example.test"]),
        ("name.endswith=.app.example.test", vec!["_owner.app.example.test"]),
        ("type=A", vec!["db.example.test"]),
        ("type=cname&name=app.example.test", vec!["app.example.test"]),
        (&*format!("content={target}"), vec!["app.example.test"]),
        ("comment=managed-by=dockflare", vec!["app.example.test"]),
        ("comment.contains=dockflare", vec!["app.example.test"]),
        ("comment.absent=", vec!["db.example.test"]),
        ("comment.present=&order=name", vec!["_owner.app.example.test", "app.example.test"]),
        ("tag=managed-by:dockflare", vec!["app.example.test"]),
        ("tag.present=team", vec!["app.example.test"]),
        ("tag.absent=team&order=name", vec!["_owner.app.example.test", "db.example.test"]),
        ("type=A&name=app.example.test&match=any&order=name", vec!["app.example.test", "db.example.test"]),
        ("proxied=false&order=name", vec!["_owner.app.example.test", "db.example.test"]),
        ("name=nothing.example.test", vec![]),
    ];
    for (query, expected) in filters {
        let reply = api.get(&format!("{path}?{query}")).await?;
        assert_eq!(names(&reply)?, expected, "{query}");
    }

    let identical = api.create_record(cname("app.example.test", target)).await?;
    assert_eq!(
        (identical.status, identical.first_error()),
        (400, (81058, "An identical record already exists.".into()))
    );
    let other_cname = api.create_record(cname("app.example.test", "elsewhere.example.net")).await?;
    assert_eq!(
        (other_cname.status, other_cname.first_error()),
        (400, (81053, "An A, AAAA, or CNAME record with that host already exists.".into()))
    );
    let cname_over_a = api.create_record(cname("db", target)).await?;
    assert_eq!(cname_over_a.first_error().0, 81053);
    let a_over_cname = api.create_record(json!({"type": "A", "name": "app", "content": "192.0.2.9"})).await?;
    assert_eq!(
        (a_over_cname.status, a_over_cname.first_error()),
        (400, (81054, "A CNAME record with that host already exists.".into()))
    );
    let bad_a = api.create_record(json!({"type": "A", "name": "x", "content": "not-an-ip"})).await?;
    assert_eq!((bad_a.status, bad_a.first_error().0), (400, 1004));
    assert_eq!(bad_a.body["errors"][0]["error_chain"][0]["code"], json!(9005));

    // PUT overwrites, PATCH changes what it names.
    let record_path = format!("{path}/{}", app.id);
    let patched: DnsRecord =
        api.call(Method::PATCH, &record_path, Some(json!({"comment": "changed"}))).await?.result()?;
    assert_eq!(
        (patched.comment.as_deref(), patched.tags.len(), patched.content.as_str()),
        (Some("changed"), 2, target)
    );
    let put: DnsRecord =
        api.call(Method::PUT, &record_path, Some(cname("app", "new-target.example.net"))).await?.result()?;
    assert_eq!((put.comment, put.tags.len(), put.content.as_str()), (None, 0, "new-target.example.net"));
    assert_eq!(put.created_on, app.created_on);

    let deleted = api.call(Method::DELETE, &record_path, None).await?;
    assert_eq!(deleted.body["result"], json!({"id": app.id}));
    for reply in [api.get(&record_path).await?, api.call(Method::DELETE, &record_path, None).await?] {
        assert_eq!((reply.status, reply.first_error()), (404, (81044, "Record does not exist.".into())));
    }
    let patch_missing = api.call(Method::PATCH, &record_path, Some(json!({"comment": "x"}))).await?;
    assert_eq!((patch_missing.status, patch_missing.first_error().0), (404, 81044));

    let unknown_zone = api.get(&format!("/zones/{}/dns_records", "f".repeat(32))).await?;
    assert_eq!((unknown_zone.status, unknown_zone.error_codes()), (400, vec![7003, 7000]));
    Ok(())
}

#[tokio::test]
async fn requests_must_carry_a_configured_token() -> Result<()> {
    let api =
        Api::start_with(EmulatorConfig { api_tokens: vec!["first".into(), "second".into()], ..Default::default() })
            .await?;
    let tunnels = format!("{}/accounts/{}/cfd_tunnel", api.base, api.account());
    let no_token = api.send(Method::GET, tunnels.clone(), None, None).await?;
    assert_eq!((no_token.status, no_token.first_error()), (403, (10000, "Authentication error".into())));
    let wrong = api.send(Method::GET, tunnels.clone(), Some("wrong"), None).await?;
    assert_eq!((wrong.status, wrong.first_error().0), (403, 10000));
    let second = api.send(Method::GET, tunnels.clone(), Some("second"), None).await?;
    assert_eq!(second.status, 200, "{}", second.body);
    let malformed = api.http.get(&tunnels).header("authorization", "Basic Zm9vOmJhcg==").send().await?;
    assert_eq!(malformed.status().as_u16(), 400);
    let malformed: Value = malformed.json().await?;
    assert_eq!(malformed["errors"][0]["code"], json!(6003));
    assert_eq!(malformed["errors"][0]["error_chain"][0]["code"], json!(6111));

    for path in ["/user/tokens/verify".to_string(), format!("/accounts/{}/tokens/verify", api.account())] {
        let verified = api.get(&path).await?;
        let result: dockflare_cloudflare::types::TokenVerification = verified.result()?;
        assert_eq!((result.status.as_str(), result.id.len()), ("active", 32), "{path}");
        assert_eq!(verified.body["messages"][0]["code"], json!(10000));
        assert_eq!(verified.body["messages"][0]["message"], json!("This API Token is valid and active"));
        let refused = api.send(Method::GET, format!("{}{path}", api.base), Some("wrong"), None).await?;
        assert_eq!((refused.status, refused.first_error()), (403, (1000, "Invalid API Token".into())), "{path}");
    }
    let other_account = api.get(&format!("/accounts/{}/cfd_tunnel", "e".repeat(32))).await?;
    assert_eq!((other_account.status, other_account.first_error().0), (403, 9109));
    Ok(())
}

#[tokio::test]
async fn injected_faults_answer_429_and_5xx_until_cleared() -> Result<()> {
    let api = Api::start().await?;
    let zones = "/zones";
    let fault = json!({"status": 429, "retry_after_seconds": 7, "count": 1});
    assert_eq!(api.inspect(Method::POST, "/faults", Some(fault)).await?.status, 204);
    let limited = api.get(zones).await?;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.headers.get("retry-after").and_then(|v| v.to_str().ok()), Some("7"));
    assert_eq!(limited.first_error(), (971, "Please wait and consider throttling your request speed".into()));
    assert_eq!(limited.body["success"], json!(false));
    assert_eq!(api.get(zones).await?.status, 200, "a counted fault expires");

    let always = json!({"status": 503, "probability": 1.0, "methods": ["GET"], "path_contains": "/zones"});
    assert_eq!(api.inspect(Method::POST, "/faults", Some(always)).await?.status, 204);
    for _ in 0..3 {
        let down = api.get(zones).await?;
        assert_eq!((down.status, down.body["success"].clone()), (503, json!(false)));
        assert!(!down.error_codes().is_empty());
    }
    let verify = api.get("/user/tokens/verify").await?;
    assert_eq!(verify.status, 200, "the path filter spares other paths");
    let active: Vec<FaultSpec> = api.inspect(Method::GET, "/faults", None).await?.plain()?;
    assert_eq!(active.len(), 1);
    assert_eq!(api.inspect(Method::DELETE, "/faults", None).await?.status, 204);
    assert_eq!(api.get(zones).await?.status, 200);

    let report: RequestReport = api.inspect(Method::GET, "/requests", None).await?.plain()?;
    let faulted: Vec<u16> = report.log.iter().filter(|e| e.faulted).map(|e| e.status).collect();
    assert_eq!(faulted, [429, 503, 503, 503]);

    let invalid = api.inspect(Method::POST, "/faults", Some(json!({"status": 404}))).await?;
    assert_eq!(invalid.status, 400);
    Ok(())
}

#[tokio::test]
async fn seeded_faults_repeat_exactly() -> Result<()> {
    async fn pattern() -> Result<Vec<u16>> {
        let api = Api::start().await?;
        api.emulator.inject_faults(FaultSpec {
            status: 500,
            probability: 0.5,
            seed: Some(42),
            ..FaultSpec::default()
        })?;
        let mut statuses = Vec::new();
        for _ in 0..24 {
            statuses.push(api.get("/zones").await?.status);
        }
        Ok(statuses)
    }
    let first = pattern().await?;
    assert_eq!(first, pattern().await?);
    assert!(first.contains(&500) && first.contains(&200), "{first:?}");
    Ok(())
}

#[tokio::test]
async fn inspection_api_shows_state_and_seeds_dashboard_edits() -> Result<()> {
    let api = Api::start().await?;
    let info: EmulatorInfo = api.inspect(Method::GET, "/info", None).await?.plain()?;
    assert_eq!((info.account_id.as_str(), info.base_path.as_str()), (api.account().as_str(), "/client/v4"));
    assert_eq!(info.api_tokens, ["emulator-token"]);
    assert_eq!(info.zones.iter().map(|z| (z.id.len(), z.name.as_str())).collect::<Vec<_>>(), [(32, "example.test")]);

    // A record made "in the dashboard" is seen by the API.
    let seeded =
        api.inspect(Method::POST, "/zones/example.test/dns_records", Some(cname("legacy", "x.example.net"))).await?;
    let seeded: DnsRecord = seeded.plain()?;
    let listed = api.get(&format!("/zones/{}/dns_records?name=legacy.example.test", api.zone())).await?;
    assert_eq!(listed.page::<DnsRecord>()?.0, std::slice::from_ref(&seeded));
    let conflict = api
        .inspect(Method::POST, &format!("/zones/{}/dns_records", api.zone()), Some(cname("legacy", "y.example.net")))
        .await?;
    assert_eq!((conflict.status, conflict.first_error().0), (400, 81053));
    // … and deleted behind DockFlare's back.
    assert_eq!(api.inspect(Method::DELETE, &format!("/dns_records/{}", seeded.id), None).await?.status, 200);
    let gone = api.get(&format!("/zones/{}/dns_records/{}", api.zone(), seeded.id)).await?;
    assert_eq!((gone.status, gone.first_error().0), (404, 81044));
    assert_eq!(api.inspect(Method::DELETE, &format!("/dns_records/{}", seeded.id), None).await?.status, 404);

    // The same through the Rust API.
    let request = DnsRecordRequest {
        record_type: "TXT".into(),
        name: "_seed".into(),
        content: "hello".into(),
        comment: Some("by hand".into()),
        ..Default::default()
    };
    let txt = api.emulator.seed_dns_record("example.test", &request)?;
    assert_eq!((txt.name.as_str(), txt.ttl, txt.proxied), ("_seed.example.test", 1, false));
    let twice = api.emulator.seed_dns_record(&api.zone(), &request);
    assert!(twice.as_ref().is_err_and(|e| e.status == 400 && e.has_code(81058)), "{twice:?}");

    // A configuration edited in the dashboard.
    let tunnel = api.create_tunnel("seeded").await?.tunnel;
    let foreign = json!({"ingress": [{"hostname": "hand.example.test", "service": "http://hand:80", "originRequest": {"noTLSVerify": true}}, {"service": "http_status:404"}]});
    let seeded: TunnelConfiguration = api
        .inspect(Method::PUT, &format!("/tunnels/{}/configuration", tunnel.id), Some(json!({"config": foreign})))
        .await?
        .plain()?;
    assert_eq!(seeded.version, 1);
    let read = api.get(&format!("{}/configurations", api.tunnel_path(&tunnel.id))).await?;
    assert_eq!((read.body["result"]["version"].clone(), read.body["result"]["config"].clone()), (json!(1), foreign));
    let invalid = api
        .inspect(
            Method::PUT,
            &format!("/tunnels/{}/configuration", tunnel.id),
            Some(json!({"config": {"ingress": []}})),
        )
        .await?;
    assert_eq!((invalid.status, invalid.first_error().0), (400, 1056));

    // Connectors: healthy with 4 connections; DELETE refused until cascade.
    let connected: Tunnel = api
        .inspect(Method::PUT, &format!("/tunnels/{}/connectors", tunnel.id), Some(json!({"connected": true})))
        .await?
        .plain()?;
    assert_eq!((connected.status.as_str(), connected.connections.len()), ("healthy", 4));
    assert!(connected.conns_active_at.is_some() && connected.conns_inactive_at.is_none());
    let clients: Vec<TunnelClient> =
        api.get(&format!("{}/connections", api.tunnel_path(&tunnel.id))).await?.result()?;
    assert_eq!((clients.len(), clients[0].conns.len(), clients[0].config_version), (1, 4, 1));
    let connector: TunnelClient =
        api.get(&format!("{}/connectors/{}", api.tunnel_path(&tunnel.id), clients[0].id)).await?.result()?;
    assert_eq!(connector, clients[0]);
    let refused = api.call(Method::DELETE, &api.tunnel_path(&tunnel.id), None).await?;
    assert_eq!(refused.status, 400);
    assert_eq!(
        refused.first_error(),
        (1022, "This tunnel has active connections. Please stop all cloudflared replicas, or wait a few minutes for connections to close, then try again.".into())
    );
    let disconnected = api.emulator.set_connectors(&tunnel.id, false)?;
    assert_eq!((disconnected.status.as_str(), disconnected.connections.len()), ("down", 0));
    api.emulator.set_connectors(&tunnel.id, true)?;
    let cascaded: Tunnel =
        api.call(Method::DELETE, &format!("{}?cascade=true", api.tunnel_path(&tunnel.id)), None).await?.result()?;
    assert!(cascaded.deleted_at.is_some());
    assert_eq!(cascaded.status, "down");

    // The snapshot holds the deleted tunnel and its configuration.
    let snapshot: Snapshot = api.inspect(Method::GET, "/state", None).await?.plain()?;
    assert_eq!(snapshot, api.emulator.snapshot());
    assert!(snapshot.live_tunnel("seeded").is_none());
    let kept = snapshot.tunnels.iter().find(|t| t.id == tunnel.id).context("deleted tunnels stay in the snapshot")?;
    assert!(kept.deleted_at.is_some());
    assert_eq!(snapshot.configuration(&tunnel.id).map(|c| c.version), Some(1));
    assert_eq!(snapshot.zones.len(), 1);
    assert_eq!(snapshot.dns_records.len(), 1);
    assert_eq!(snapshot.dns_records_named("_seed.example.test"), [&txt]);
    assert_eq!(snapshot.dns_records[0].zone_name, "example.test");

    // Counters per (method, route template), the log, and a reset.
    let configurations = "/accounts/{account_id}/cfd_tunnel/{tunnel_id}/configurations";
    assert_eq!(api.emulator.request_count("GET", configurations), 1);
    assert_eq!(api.emulator.request_count("POST", "/accounts/{account_id}/cfd_tunnel"), 1);
    let report: RequestReport = api.inspect(Method::GET, "/requests", None).await?.plain()?;
    assert_eq!(report.count("DELETE", "/accounts/{account_id}/cfd_tunnel/{tunnel_id}"), 2);
    assert_eq!(report.count("GET", "/zones/{zone_id}/dns_records/{dns_record_id}"), 0);
    assert_eq!(report.count("GET", "/zones/{zone_id}/dns_records/{record_id}"), 1);
    let last = report.log.last().context("log")?;
    assert_eq!((last.method.as_str(), last.status, last.query.as_deref()), ("DELETE", 200, Some("cascade=true")));
    assert_eq!(last.path, api.tunnel_path(&tunnel.id));
    assert!(report.log.iter().all(|e| !e.path.starts_with("/__emulator")), "inspection calls are not logged");
    assert_eq!(api.inspect(Method::DELETE, "/requests", None).await?.status, 204);
    assert_eq!(api.emulator.requests(), RequestReport::default());
    Ok(())
}

#[tokio::test]
async fn zones_access_and_unknown_routes() -> Result<()> {
    let api = Api::start_with(EmulatorConfig {
        zones: vec!["example.test".into(), "Other.Test".into()],
        base_path: "/api/v4/".into(),
        ..Default::default()
    })
    .await?;
    assert!(api.base.ends_with("/api/v4"), "{}", api.base);
    let (zones, info) = api.get("/zones?per_page=1000").await?.page::<dockflare_cloudflare::types::Zone>()?;
    assert_eq!(zones.iter().map(|z| z.name.as_str()).collect::<Vec<_>>(), ["example.test", "other.test"]);
    assert_eq!((info.per_page, info.total_count), (50, 2), "zones: per_page at most 50");
    let (zones, _) = api
        .get(&format!("/zones?name=other.test&status=active&account.id={}", api.account()))
        .await?
        .page::<dockflare_cloudflare::types::Zone>()?;
    assert_eq!(zones.len(), 1);
    assert_eq!((zones[0].account.id.as_str(), zones[0].status.as_str()), (api.account().as_str(), "active"));
    let (none, _) = api.get("/zones?name=example").await?.page::<Value>()?;
    assert!(none.is_empty());
    let zone: dockflare_cloudflare::types::Zone = api.get(&format!("/zones/{}", zones[0].id)).await?.result()?;
    assert_eq!(zone.name, "other.test");

    let apps = format!("/accounts/{}/access/apps", api.account());
    let created = api
        .call(Method::POST, &apps, Some(json!({"type": "self_hosted", "domain": "app.example.test", "name": "app"})))
        .await?;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["result"]["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(created.body["result"]["aud"].as_str().map(str::len), Some(64));
    let deleted = api.call(Method::DELETE, &format!("{apps}/{id}"), None).await?;
    assert_eq!((deleted.status, deleted.body["result"].clone()), (202, json!({"id": id})));
    assert_eq!(api.get(&format!("{apps}/{id}")).await?.status, 404);
    let policy = api
        .call(
            Method::POST,
            &format!("/accounts/{}/access/policies", api.account()),
            Some(json!({"name": "staff", "decision": "allow", "include": [{"email_domain": {"domain": "example.test"}}]})),
        )
        .await?;
    assert_eq!(policy.status, 201, "{}", policy.body);

    let nowhere = api.get("/nowhere").await?;
    assert_eq!((nowhere.status, nowhere.body["success"].clone()), (404, json!(false)));
    let not_allowed = api.call(Method::POST, "/zones", Some(json!({}))).await?;
    assert_eq!(not_allowed.status, 405);
    let report = api.emulator.requests();
    assert_eq!(report.count("GET", "<unmatched>"), 1);
    Ok(())
}
