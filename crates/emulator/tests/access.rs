//! Access over real HTTP: the emulator in-process, the real `CloudflareClient` (and raw
//! requests where the client has no call): 201/202, pages past 100, duplicate domains, policy
//! links, inline app-scoped policies and expanded answers, precedence, unknown policies, tags
//! and identity providers, linked reusable policies, the organization and members, restricted
//! tokens, faults and persistence.

use dockflare_cloudflare::client::{CfError, CloudflareClient, CloudflareSettings};
use dockflare_cloudflare::types::{AccessAppRequest, AccessPolicyLink, AccessPolicyRequest};
use dockflare_emulator::{Emulator, EmulatorConfig, FaultSpec, Permission, RestrictedToken};
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{json, Value};
use std::net::SocketAddr;

struct Fixture {
    emulator: Emulator,
    addr: SocketAddr,
    http: reqwest::Client,
}

impl Fixture {
    async fn start() -> Fixture {
        Fixture::start_with(EmulatorConfig::default()).await
    }

    async fn start_with(config: EmulatorConfig) -> Fixture {
        let (emulator, addr) = Emulator::start(config, SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap_or_else(|e| panic!("start: {e}"));
        Fixture { emulator, addr, http: reqwest::Client::new() }
    }

    fn client_with(&self, token: &str) -> CloudflareClient {
        CloudflareClient::new(CloudflareSettings {
            api_url: self.emulator.base_url(self.addr),
            token: SecretString::from(token.to_string()),
            account_id: self.emulator.account_id().to_string(),
            requests_per_5_minutes: 1_000_000,
        })
        .unwrap_or_else(|e| panic!("client: {e}"))
    }

    fn client(&self) -> CloudflareClient {
        self.client_with(self.emulator.api_token())
    }

    /// `/accounts/{a}` + `path`.
    fn account_path(&self, path: &str) -> String {
        format!("/accounts/{}{path}", self.emulator.account_id())
    }

    /// A raw API call with the full token: status and JSON body.
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{}", self.emulator.base_url(self.addr), self.account_path(path));
        let mut request = self.http.request(method, url).bearer_auth(self.emulator.api_token());
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("send: {e}"));
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The statuses the emulator answered `method` on `route` with, oldest first.
    fn statuses(&self, method: &str, route: &str) -> Vec<u16> {
        let log = self.emulator.requests().log;
        log.iter().filter(|e| e.method == method && e.route == route).map(|e| e.status).collect()
    }
}

fn app(name: &str, domain: &str) -> AccessAppRequest {
    AccessAppRequest { app_type: "self_hosted".into(), domain: domain.into(), name: name.into(), ..Default::default() }
}

fn staff_policy(name: &str) -> AccessPolicyRequest {
    AccessPolicyRequest {
        name: name.into(),
        decision: "allow".into(),
        include: vec![json!({"email_domain": {"domain": "example.test"}})],
        ..Default::default()
    }
}

fn first_error(body: &Value) -> (i64, String) {
    let error = &body["errors"][0];
    (error["code"].as_i64().unwrap_or(0), error["message"].as_str().unwrap_or("").to_string())
}

fn api_error(error: &CfError) -> (u16, i64, String) {
    match error {
        CfError::Api { status, errors } => (
            *status,
            errors.first().map_or(0, |e| e.code),
            errors.first().map(|e| e.message.clone()).unwrap_or_default(),
        ),
        other => panic!("not an API error: {other}"),
    }
}

const APPS: &str = "/accounts/{account_id}/access/apps";
const APP: &str = "/accounts/{account_id}/access/apps/{app_id}";

#[tokio::test]
async fn applications_are_created_paged_past_100_updated_and_deleted() {
    let fixture = Fixture::start().await;
    let client = fixture.client();
    for n in 0..130 {
        client
            .create_access_app(&app(&format!("app{n}"), &format!("app{n}.example.test")))
            .await
            .unwrap_or_else(|e| panic!("create {n}: {e}"));
    }
    assert!(fixture.statuses("POST", APPS).iter().all(|s| *s == 201), "POST answers 201");

    fixture.emulator.reset_requests();
    let apps = client.list_access_apps().await.unwrap_or_else(|e| panic!("list: {e}"));
    assert_eq!(apps.len(), 130);
    assert_eq!(fixture.emulator.request_count("GET", APPS), 2, "two pages of 100");
    let (status, page) = fixture.call(Method::GET, "/access/apps?page=2&per_page=100", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        page["result_info"],
        json!({"page": 2, "per_page": 100, "count": 30, "total_count": 130, "total_pages": 2})
    );

    let first = &apps[0];
    assert_eq!(
        (first.name.as_str(), first.domain.as_str(), first.app_type.as_str()),
        ("app0", "app0.example.test", "self_hosted")
    );
    assert_eq!(first.aud.len(), 64);
    assert!(first.aud.chars().all(|c| c.is_ascii_hexdigit()), "{}", first.aud);
    assert_eq!(first.session_duration.as_deref(), Some("24h"), "the default session");
    assert!(first.created_at.is_some() && first.updated_at.is_some());

    let changed = AccessAppRequest { session_duration: Some("2h45m".into()), ..app("renamed", "app0.example.test") };
    let updated = client.update_access_app(&first.id, &changed).await.unwrap_or_else(|e| panic!("update: {e}"));
    assert_eq!((updated.id.as_str(), updated.aud.as_str()), (first.id.as_str(), first.aud.as_str()), "id and aud stay");
    assert_eq!((updated.name.as_str(), updated.session_duration.as_deref()), ("renamed", Some("2h45m")));
    assert_eq!(updated.created_at, first.created_at);

    client.delete_access_app(&first.id).await.unwrap_or_else(|e| panic!("delete: {e}"));
    client.delete_access_app(&first.id).await.unwrap_or_else(|e| panic!("a second delete is fine: {e}"));
    assert_eq!(fixture.statuses("DELETE", APP), [202, 404]);
    let (status, body) = fixture.call(Method::DELETE, &format!("/access/apps/{}", apps[1].id), None).await;
    assert_eq!((status, body["result"].clone()), (202, json!({"id": apps[1].id})));
    let (status, _) = fixture.call(Method::GET, &format!("/access/apps/{}", first.id), None).await;
    assert_eq!(status, 404);
    assert_eq!(client.list_access_apps().await.map(|a| a.len()).unwrap_or_default(), 128);
}

#[tokio::test]
async fn applications_need_a_type_a_domain_of_their_own_and_a_go_duration() {
    let fixture = Fixture::start().await;
    let client = fixture.client();
    let existing =
        client.create_access_app(&app("a", "a.example.test")).await.unwrap_or_else(|e| panic!("create: {e}"));

    let error =
        client.create_access_app(&app("again", "A.Example.Test")).await.err().unwrap_or_else(|| panic!("a duplicate"));
    let (status, code, message) = api_error(&error);
    assert_eq!((status, code), (400, 1004));
    assert!(message.contains("A.Example.Test") && message.contains(&existing.id), "{message}");
    assert!(!error.is_permission_denied());

    let with_path = client.create_access_app(&app("api", "a.example.test/api")).await;
    let with_path = with_path.unwrap_or_else(|e| panic!("a path is another domain: {e}"));
    let error = client.create_access_app(&app("api2", "a.example.test/API/")).await.err();
    assert_eq!(error.as_ref().map(|e| api_error(e).1), Some(1004));
    let error = client.update_access_app(&with_path.id, &app("api", "a.example.test")).await.err();
    assert_eq!(error.as_ref().map(|e| api_error(e).1), Some(1004), "nor through a PUT");
    client
        .update_access_app(&existing.id, &app("a2", "a.example.test"))
        .await
        .unwrap_or_else(|e| panic!("its own domain: {e}"));

    let (status, body) =
        fixture.call(Method::POST, "/access/apps", Some(json!({"name": "x", "domain": "x.example.test"}))).await;
    assert_eq!((status, first_error(&body).0), (400, 1001));
    assert!(first_error(&body).1.contains("type"), "{body}");
    let (status, body) =
        fixture.call(Method::POST, "/access/apps", Some(json!({"type": "self_hosted", "name": "x"}))).await;
    assert!(status == 400 && first_error(&body).1.contains("domain"), "{body}");
    for bad in ["1d", "24", "soon", "-1h"] {
        let request = AccessAppRequest { session_duration: Some(bad.into()), ..app("d", "d.example.test") };
        let error = client.create_access_app(&request).await.err();
        let message = error.as_ref().map(|e| api_error(e).2).unwrap_or_default();
        assert!(message.contains("session_duration") && message.contains(bad), "{bad}: {message}");
    }
    for good in ["30m", "300ms", "1h30m"] {
        let request =
            AccessAppRequest { session_duration: Some(good.into()), ..app(good, &format!("{good}.example.test")) };
        let created = client.create_access_app(&request).await.unwrap_or_else(|e| panic!("{good}: {e}"));
        assert_eq!(created.session_duration.as_deref(), Some(good));
    }
}

#[tokio::test]
async fn policies_are_linked_inline_or_by_id_and_answered_whole_in_precedence_order() {
    let fixture = Fixture::start().await;
    let client = fixture.client();
    let staff = client.create_access_policy(&staff_policy("staff")).await.unwrap_or_else(|e| panic!("staff: {e}"));
    let admins = client.create_access_policy(&staff_policy("admins")).await.unwrap_or_else(|e| panic!("admins: {e}"));
    assert_eq!((staff.reusable, staff.app_count), (Some(true), Some(0)));
    assert_eq!((staff.exclude.len(), staff.require.len()), (0, 0));

    let linked = AccessAppRequest {
        policies: vec![
            AccessPolicyLink { id: staff.id.clone(), precedence: 2 },
            AccessPolicyLink { id: admins.id.clone(), precedence: 1 },
        ],
        ..app("linked", "linked.example.test")
    };
    let created = client.create_access_app(&linked).await.unwrap_or_else(|e| panic!("linked: {e}"));
    let order: Vec<(&str, Option<i64>)> = created.policies.iter().map(|p| (p.name.as_str(), p.precedence)).collect();
    assert_eq!(order, [("admins", Some(1)), ("staff", Some(2))], "precedence order");
    let expanded = &created.policies[1];
    assert_eq!(
        (expanded.id.as_str(), expanded.decision.as_str(), expanded.reusable),
        (staff.id.as_str(), "allow", Some(true))
    );
    assert_eq!(expanded.include, staff.include);
    let policies = client.list_access_policies().await.unwrap_or_else(|e| panic!("policies: {e}"));
    assert!(policies.iter().all(|p| p.app_count == Some(1)), "{policies:?}");

    // A bare id, an inline app-scoped policy and a link without precedence: list order.
    let body = json!({
        "type": "self_hosted", "name": "mixed", "domain": "mixed.example.test",
        "policies": [
            staff.id,
            {"name": "bypass health", "decision": "bypass", "include": [{"everyone": {}}]},
            {"id": admins.id},
        ],
    });
    let (status, answer) = fixture.call(Method::POST, "/access/apps", Some(body)).await;
    assert_eq!(status, 201, "{answer}");
    let policies = answer["result"]["policies"].as_array().cloned().unwrap_or_default();
    let summary: Vec<(Value, Value, Value)> =
        policies.iter().map(|p| (p["name"].clone(), p["precedence"].clone(), p["reusable"].clone())).collect();
    assert_eq!(
        summary,
        [
            (json!("staff"), json!(1), json!(true)),
            (json!("bypass health"), json!(2), json!(false)),
            (json!("admins"), json!(3), json!(true))
        ]
    );
    let inline = &policies[1];
    for key in [
        "id",
        "name",
        "decision",
        "include",
        "exclude",
        "require",
        "precedence",
        "reusable",
        "created_at",
        "updated_at",
    ] {
        assert!(!inline[key].is_null(), "{key} in {inline}");
    }
    assert!(inline.get("app_id").is_none(), "the owner is not answered: {inline}");
    let reusable = client.list_access_policies().await.unwrap_or_else(|e| panic!("policies: {e}"));
    assert_eq!(reusable.len(), 2, "the app-scoped policy is not a reusable one");
    assert!(reusable.iter().all(|p| p.app_count == Some(2)), "{reusable:?}");

    // Explicit precedence keeps its place; missing ones take the next free numbers.
    let body = json!({"type": "self_hosted", "name": "p", "domain": "p.example.test",
        "policies": [{"id": staff.id}, {"id": admins.id, "precedence": 1}]});
    let (status, answer) = fixture.call(Method::POST, "/access/apps", Some(body)).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["result"]["policies"][0]["id"], json!(admins.id));
    assert_eq!(answer["result"]["policies"][1]["precedence"], json!(2));

    let body = json!({"type": "self_hosted", "name": "dup", "domain": "dup.example.test",
        "policies": [{"id": staff.id, "precedence": 1}, {"id": admins.id, "precedence": 1}]});
    let (status, answer) = fixture.call(Method::POST, "/access/apps", Some(body)).await;
    assert_eq!(status, 400);
    assert!(first_error(&answer).1.contains("precedence 1"), "{answer}");

    let missing = AccessAppRequest {
        policies: vec![AccessPolicyLink { id: "00000000-0000-4000-8000-000000000000".into(), precedence: 1 }],
        ..app("missing", "missing.example.test")
    };
    let error = client.create_access_app(&missing).await.err();
    let (status, _, message) = error.as_ref().map(api_error).unwrap_or_default();
    assert_eq!(status, 400);
    assert!(message.contains("00000000-0000-4000-8000-000000000000"), "{message}");
    let (status, answer) = fixture
        .call(
            Method::POST,
            "/access/apps",
            Some(json!({"type": "self_hosted", "name": "m", "domain": "m.example.test", "policies": ["nope"]})),
        )
        .await;
    assert!(status == 400 && first_error(&answer).1.contains("nope"), "{answer}");
    let (status, answer) = fixture
        .call(
            Method::POST,
            "/access/apps",
            Some(json!({"type": "self_hosted", "name": "r", "domain": "r.example.test",
                "policies": [{"name": "bad", "decision": "allow", "include": [{"emails": {}}]}]})),
        )
        .await;
    assert!(status == 400 && first_error(&answer).1.contains("emails"), "an inline policy is checked: {answer}");

    // A PUT that no longer lists the inline policy deletes it; without `policies` it keeps them.
    let mixed_id = fixture.emulator.snapshot().access_apps[1]["id"].as_str().unwrap_or_default().to_string();
    let kept = client
        .update_access_app(
            &mixed_id,
            &AccessAppRequest {
                policies: vec![AccessPolicyLink { id: staff.id.clone(), precedence: 5 }],
                ..app("mixed", "mixed.example.test")
            },
        )
        .await;
    let kept = kept.unwrap_or_else(|e| panic!("put: {e}"));
    assert_eq!(
        kept.policies.iter().map(|p| (p.id.clone(), p.precedence)).collect::<Vec<_>>(),
        [(staff.id.clone(), Some(5))]
    );
    assert_eq!(fixture.emulator.snapshot().access_policies.len(), 2, "the inline policy went with its link");
    let (status, answer) = fixture
        .call(
            Method::PUT,
            &format!("/access/apps/{mixed_id}"),
            Some(json!({"type": "self_hosted", "name": "mixed", "domain": "mixed.example.test"})),
        )
        .await;
    assert_eq!((status, answer["result"]["policies"][0]["id"].clone()), (200, json!(staff.id)));
}

#[tokio::test]
async fn app_scoped_policies_have_their_own_calls() {
    let fixture = Fixture::start().await;
    let client = fixture.client();
    let staff = client.create_access_policy(&staff_policy("staff")).await.unwrap_or_else(|e| panic!("staff: {e}"));
    let request = AccessAppRequest {
        policies: vec![AccessPolicyLink { id: staff.id.clone(), precedence: 1 }],
        ..app("a", "a.example.test")
    };
    let created = client.create_access_app(&request).await.unwrap_or_else(|e| panic!("app: {e}"));
    let base = format!("/access/apps/{}/policies", created.id);

    let (status, answer) = fixture
        .call(
            Method::POST,
            &base,
            Some(json!({"name": "ops", "decision": "allow", "include": [{"email": {"email": "ops@example.test"}}]})),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    let own = answer["result"]["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(
        (answer["result"]["precedence"].clone(), answer["result"]["reusable"].clone()),
        (json!(2), json!(false))
    );
    let (status, answer) = fixture
        .call(
            Method::POST,
            &base,
            Some(json!({"name": "x", "decision": "deny", "include": [{"everyone": {}}], "precedence": 2})),
        )
        .await;
    assert!(status == 400 && first_error(&answer).1.contains("precedence 2"), "{answer}");

    let (status, answer) = fixture.call(Method::GET, &base, None).await;
    assert_eq!(status, 200);
    let names: Vec<Value> =
        answer["result"].as_array().cloned().unwrap_or_default().iter().map(|p| p["name"].clone()).collect();
    assert_eq!(names, [json!("staff"), json!("ops")]);
    assert_eq!(answer["result_info"]["total_count"], json!(2));

    let (status, answer) = fixture
        .call(
            Method::PUT,
            &format!("{base}/{own}"),
            Some(json!({"name": "ops2", "decision": "allow", "include": [{"everyone": {}}], "precedence": 0})),
        )
        .await;
    assert_eq!(
        (status, answer["result"]["name"].clone(), answer["result"]["precedence"].clone()),
        (200, json!("ops2"), json!(0)),
        "{answer}"
    );
    let app = client.list_access_apps().await.unwrap_or_default();
    assert_eq!(app[0].policies.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["ops2", "staff"]);
    let (status, answer) = fixture.call(Method::GET, &format!("{base}/{own}"), None).await;
    assert_eq!((status, answer["result"]["name"].clone()), (200, json!("ops2")));
    let (status, answer) = fixture
        .call(
            Method::PUT,
            &format!("{base}/{}", staff.id),
            Some(json!({"name": "s", "decision": "allow", "include": [{"everyone": {}}]})),
        )
        .await;
    assert!(status == 400 && first_error(&answer).1.contains("reusable"), "{answer}");

    let (status, answer) = fixture.call(Method::DELETE, &format!("{base}/{own}"), None).await;
    assert_eq!((status, answer["result"].clone()), (202, json!({"id": own})));
    let (status, _) = fixture.call(Method::GET, &format!("{base}/{own}"), None).await;
    assert_eq!(status, 404);
    assert_eq!(fixture.emulator.snapshot().access_policies.len(), 1, "the app-scoped policy is gone");
    let (status, _) = fixture.call(Method::DELETE, &format!("{base}/{}", staff.id), None).await;
    assert_eq!(status, 202, "unlinking a reusable policy");
    assert_eq!(client.list_access_policies().await.map(|p| (p.len(), p[0].app_count)).ok(), Some((1, Some(0))));
    let (status, _) = fixture.call(Method::GET, "/access/apps/nope/policies", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn reusable_policies_are_checked_and_not_deleted_while_linked() {
    let fixture = Fixture::start().await;
    let client = fixture.client();
    let bad = AccessPolicyRequest {
        include: vec![json!({"everyone": {}}), json!({"emial": {"email": "a@b.c"}})],
        ..staff_policy("bad")
    };
    let message = client.create_access_policy(&bad).await.err().map(|e| api_error(&e).2).unwrap_or_default();
    assert!(message.contains("emial") && message.contains("include[1]"), "{message}");
    let no_include = AccessPolicyRequest { include: Vec::new(), ..staff_policy("none") };
    assert_eq!(client.create_access_policy(&no_include).await.err().map(|e| api_error(&e).0), Some(400));
    let decision = AccessPolicyRequest { decision: "maybe".into(), ..staff_policy("d") };
    let message = client.create_access_policy(&decision).await.err().map(|e| api_error(&e).2).unwrap_or_default();
    assert!(message.contains("maybe"), "{message}");
    let two_keys = AccessPolicyRequest {
        require: vec![json!({"everyone": {}, "ip": {"ip": "192.0.2.0/24"}})],
        ..staff_policy("t")
    };
    assert_eq!(client.create_access_policy(&two_keys).await.err().map(|e| api_error(&e).0), Some(400));

    let policy = client.create_access_policy(&staff_policy("staff")).await.unwrap_or_else(|e| panic!("create: {e}"));
    let changed = AccessPolicyRequest { session_duration: Some("30m".into()), ..staff_policy("staff2") };
    let updated = client.update_access_policy(&policy.id, &changed).await.unwrap_or_else(|e| panic!("update: {e}"));
    assert_eq!(
        (updated.name.as_str(), updated.session_duration.as_deref(), updated.created_at.clone()),
        ("staff2", Some("30m"), policy.created_at.clone())
    );
    let request = AccessAppRequest {
        policies: vec![AccessPolicyLink { id: policy.id.clone(), precedence: 1 }],
        ..app("a", "a.example.test")
    };
    let first = client.create_access_app(&request).await.unwrap_or_else(|e| panic!("app: {e}"));
    client
        .create_access_app(&AccessAppRequest { domain: "b.example.test".into(), ..request.clone() })
        .await
        .unwrap_or_else(|e| panic!("app b: {e}"));

    let error = client.delete_access_policy(&policy.id).await.err();
    let (status, _, message) = error.as_ref().map(api_error).unwrap_or_default();
    assert_eq!(status, 400);
    assert!(message.contains("2 application"), "{message}");
    client.delete_access_app(&first.id).await.unwrap_or_else(|e| panic!("delete app: {e}"));
    let message = client.delete_access_policy(&policy.id).await.err().map(|e| api_error(&e).2).unwrap_or_default();
    assert!(message.contains("1 application"), "{message}");
    let apps = client.list_access_apps().await.unwrap_or_default();
    client
        .update_access_app(&apps[0].id, &AccessAppRequest { policies: Vec::new(), ..request.clone() })
        .await
        .unwrap_or_else(|e| panic!("unlink: {e}"));
    client.delete_access_policy(&policy.id).await.unwrap_or_else(|e| panic!("delete: {e}"));
    client.delete_access_policy(&policy.id).await.unwrap_or_else(|e| panic!("gone already: {e}"));
    assert_eq!(fixture.statuses("DELETE", "/accounts/{account_id}/access/policies/{policy_id}"), [400, 400, 202, 404]);
    assert_eq!(fixture.statuses("POST", "/accounts/{account_id}/access/policies").last(), Some(&201));
}

#[tokio::test]
async fn tags_and_identity_providers_must_exist() {
    let fixture = Fixture::start().await;
    let client = fixture.client();
    let tagged = AccessAppRequest { tags: vec!["dockflare".into()], ..app("t", "t.example.test") };
    let message = client.create_access_app(&tagged).await.err().map(|e| api_error(&e).2).unwrap_or_default();
    assert!(message.contains("\"dockflare\""), "{message}");
    let tag = client.create_access_tag("dockflare").await.unwrap_or_else(|e| panic!("tag: {e}"));
    assert_eq!(tag.name, "dockflare");
    assert_eq!(fixture.statuses("POST", "/accounts/{account_id}/access/tags"), [201]);
    let error = client.create_access_tag("dockflare").await.err();
    assert_eq!(error.as_ref().map(|e| api_error(e).0), Some(409), "{error:?}");
    let created = client.create_access_app(&tagged).await.unwrap_or_else(|e| panic!("tagged: {e}"));
    assert_eq!(created.tags, ["dockflare"]);
    assert_eq!(
        client.list_access_tags().await.map(|t| t.into_iter().map(|t| t.name).collect::<Vec<_>>()).ok(),
        Some(vec!["dockflare".to_string()])
    );
    let (status, answer) = fixture.call(Method::GET, "/access/tags/dockflare", None).await;
    assert_eq!((status, answer["result"]["app_count"].clone()), (200, json!(1)));
    let (status, answer) = fixture.call(Method::DELETE, "/access/tags/dockflare", None).await;
    assert!(status == 400 && first_error(&answer).1.contains("1 application"), "{answer}");
    let (status, answer) = fixture.call(Method::POST, "/access/tags", Some(json!({"name": "spare"}))).await;
    assert_eq!((status, answer["result"]["name"].clone()), (201, json!("spare")));
    let (status, _) = fixture.call(Method::DELETE, "/access/tags/spare", None).await;
    assert_eq!(status, 202);
    let (status, _) = fixture.call(Method::GET, "/access/tags/spare", None).await;
    assert_eq!(status, 404);

    let idps = client.list_identity_providers().await.unwrap_or_else(|e| panic!("idps: {e}"));
    assert_eq!(
        idps.iter().map(|i| (i.name.as_str(), i.kind.as_str())).collect::<Vec<_>>(),
        [("One-time PIN", "onetimepin")]
    );
    assert_eq!(idps[0].id.len(), 36, "a uuid: {}", idps[0].id);
    let unknown = AccessAppRequest { allowed_idps: vec!["no-such-idp".into()], ..app("i", "i.example.test") };
    let message = client.create_access_app(&unknown).await.err().map(|e| api_error(&e).2).unwrap_or_default();
    assert!(message.contains("no-such-idp"), "{message}");
    let github = fixture.emulator.seed_identity_provider("GitHub", "github").unwrap_or_else(|e| panic!("seed: {e}"));
    let seeded = fixture
        .http
        .post(format!("http://{}/__emulator/access/identity_providers", fixture.addr))
        .json(&json!({"name": "Okta", "type": "okta"}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("seed over HTTP: {e}"));
    assert_eq!(seeded.status().as_u16(), 200);
    let okta: Value = seeded.json().await.unwrap_or_default();
    let allowed = AccessAppRequest {
        allowed_idps: vec![github.id.clone(), okta["id"].as_str().unwrap_or_default().to_string()],
        ..app("i", "i.example.test")
    };
    let created = client.create_access_app(&allowed).await.unwrap_or_else(|e| panic!("allowed: {e}"));
    assert_eq!(created.allowed_idps.len(), 2);
    assert_eq!(client.list_identity_providers().await.map(|i| i.len()).ok(), Some(3));
}

#[tokio::test]
async fn the_organization_and_the_member_are_configurable() {
    let fixture = Fixture::start().await;
    let client = fixture.client();
    let organization = client.access_organization().await.unwrap_or_else(|e| panic!("org: {e}"));
    assert_eq!(organization.map(|o| o.auth_domain), Some("dockflare-emulator.cloudflareaccess.com".to_string()));
    let members = client.list_account_members().await.unwrap_or_else(|e| panic!("members: {e}"));
    assert_eq!(
        members.iter().map(|m| (m.user.email.as_str(), m.status.as_deref())).collect::<Vec<_>>(),
        [("owner@example.com", Some("accepted"))]
    );

    let configured = Fixture::start_with(EmulatorConfig {
        access_team: Some("acme".into()),
        member_email: "admin@acme.test".into(),
        ..Default::default()
    })
    .await;
    let organization = configured.client().access_organization().await.ok().flatten();
    assert_eq!(
        organization.map(|o| (o.name, o.auth_domain)),
        Some(("acme".into(), "acme.cloudflareaccess.com".into()))
    );
    let members = configured.client().list_account_members().await.unwrap_or_default();
    assert_eq!(members.first().map(|m| m.user.email.as_str()), Some("admin@acme.test"));

    let no_zero_trust = Fixture::start_with(EmulatorConfig { access_team: None, ..Default::default() }).await;
    assert_eq!(no_zero_trust.client().access_organization().await.ok(), Some(None));
}

#[tokio::test]
async fn restricted_tokens_are_refused_outside_their_permissions() {
    let fixture = Fixture::start_with(EmulatorConfig {
        restricted_tokens: vec![
            RestrictedToken::new("tunnel-dns", &[Permission::TunnelEdit, Permission::DnsEdit]),
            RestrictedToken::new("access-reader", &[Permission::AccessAppsRead]),
            RestrictedToken::new(
                "access-all",
                &[Permission::AccessAppsEdit, Permission::AccessOrganizationsRead, Permission::AccountMembersRead],
            ),
        ],
        inspect_token_required: true,
        ..Default::default()
    })
    .await;
    let tunnel_dns = fixture.client_with("tunnel-dns");
    assert_eq!(tunnel_dns.verify_token().await.map(|v| v.status).ok(), Some("active".to_string()));
    let tunnel = tunnel_dns.create_tunnel("t1").await.unwrap_or_else(|e| panic!("tunnels work: {e}"));
    assert_eq!(tunnel_dns.list_tunnels("t").await.map(|t| t.len()).ok(), Some(1));
    let zones = tunnel_dns.list_zones().await.unwrap_or_else(|e| panic!("a DNS token lists zones: {e}"));
    assert_eq!(tunnel_dns.dns_records(&zones[0].id).await.map(|r| r.len()).ok(), Some(0));
    for error in [
        tunnel_dns.list_access_apps().await.err(),
        tunnel_dns.create_access_app(&app("a", "a.example.test")).await.err(),
        tunnel_dns.list_access_policies().await.err(),
        tunnel_dns.list_access_tags().await.err(),
        tunnel_dns.list_identity_providers().await.err(),
        tunnel_dns.access_organization().await.err(),
        tunnel_dns.list_account_members().await.err(),
    ] {
        let error = error.unwrap_or_else(|| panic!("refused"));
        assert!(error.is_permission_denied(), "{error}");
        assert_eq!(api_error(&error), (403, 10000, "Authentication error".to_string()));
    }

    let reader = fixture.client_with("access-reader");
    assert_eq!(reader.list_access_apps().await.map(|a| a.len()).ok(), Some(0));
    assert!(reader.create_access_policy(&staff_policy("s")).await.err().is_some_and(|e| e.is_permission_denied()));
    assert!(reader.get_tunnel(&tunnel.id).await.err().is_some_and(|e| e.is_permission_denied()));
    assert!(reader.list_zones().await.err().is_some_and(|e| e.is_permission_denied()));

    let access = fixture.client_with("access-all");
    access.create_access_tag("x").await.unwrap_or_else(|e| panic!("access edit: {e}"));
    assert!(access.access_organization().await.ok().flatten().is_some());
    assert_eq!(access.list_account_members().await.map(|m| m.len()).ok(), Some(1));
    assert!(access.list_tunnels("").await.err().is_some_and(|e| e.is_permission_denied()));

    let inspect = |token: &str| {
        fixture.http.get(format!("http://{}/__emulator/state", fixture.addr)).bearer_auth(token.to_string()).send()
    };
    assert_eq!(
        inspect("access-all").await.map(|r| r.status().as_u16()).ok(),
        Some(403),
        "restricted tokens do not inspect"
    );
    assert_eq!(inspect(fixture.emulator.api_token()).await.map(|r| r.status().as_u16()).ok(), Some(200));
    assert!(!fixture.emulator.info().api_tokens.iter().any(|t| t == "tunnel-dns"));
}

#[tokio::test]
async fn faults_apply_to_the_access_endpoints() {
    let fixture = Fixture::start().await;
    let client = fixture.client();
    for route in [
        "/accounts/{account_id}/access/tags",
        "/accounts/{account_id}/access/identity_providers",
        "/accounts/{account_id}/members",
        APPS,
    ] {
        fixture
            .emulator
            .inject_faults(FaultSpec {
                status: 429,
                retry_after_seconds: Some(0),
                count: Some(1),
                route: Some(route.into()),
                ..FaultSpec::default()
            })
            .unwrap_or_else(|e| panic!("fault: {e}"));
    }
    client.create_access_tag("t").await.unwrap_or_else(|e| panic!("retried after 429: {e}"));
    assert_eq!(client.list_identity_providers().await.map(|i| i.len()).ok(), Some(1));
    assert_eq!(client.list_account_members().await.map(|m| m.len()).ok(), Some(1));
    client.create_access_app(&app("a", "a.example.test")).await.unwrap_or_else(|e| panic!("retried: {e}"));
    assert!(fixture.emulator.faults().is_empty(), "every fault fired");
    let faulted: Vec<(String, u16)> =
        fixture.emulator.requests().log.iter().filter(|e| e.faulted).map(|e| (e.route.clone(), e.status)).collect();
    assert_eq!(faulted.len(), 4, "{faulted:?}");
    assert!(faulted.iter().all(|(_, status)| *status == 429));
    assert_eq!(client.list_access_apps().await.map(|a| a.len()).ok(), Some(1), "the POST ran once");
}

#[tokio::test]
async fn access_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let config = EmulatorConfig { state_file: Some(dir.path().join("offline-cloudflare.json")), ..Default::default() };
    let emulator = Emulator::open(config.clone()).unwrap_or_else(|e| panic!("open: {e}"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("addr: {e}"));
    emulator.serve_in_background(listener);
    let fixture = Fixture { emulator, addr, http: reqwest::Client::new() };
    let client = fixture.client();
    client.create_access_tag("kept").await.unwrap_or_else(|e| panic!("tag: {e}"));
    let seeded = fixture
        .http
        .post(format!("http://{addr}/__emulator/access/identity_providers"))
        .json(&json!({"name": "GitHub", "type": "github"}))
        .send()
        .await
        .map(|r| r.status().as_u16());
    assert_eq!(seeded.ok(), Some(200));
    let staff = client.create_access_policy(&staff_policy("staff")).await.unwrap_or_else(|e| panic!("policy: {e}"));
    let (status, answer) = fixture
        .call(
            Method::POST,
            "/access/apps",
            Some(json!({"type": "self_hosted", "name": "a", "domain": "a.example.test", "tags": ["kept"],
                "policies": [staff.id, {"name": "own", "decision": "deny", "include": [{"everyone": {}}]}]})),
        )
        .await;
    assert_eq!(status, 201, "{answer}");

    let before = client.list_access_apps().await.unwrap_or_default();
    let reopened = Emulator::open(config).unwrap_or_else(|e| panic!("reopen: {e}"));
    assert!(reopened.restored());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("addr: {e}"));
    reopened.serve_in_background(listener);
    let again = Fixture { emulator: reopened, addr, http: reqwest::Client::new() };
    let client = again.client();
    assert_eq!(client.list_access_apps().await.unwrap_or_default(), before);
    assert_eq!(before[0].policies.len(), 2);
    assert_eq!(client.list_access_tags().await.map(|t| t.len()).ok(), Some(1));
    let idps = client.list_identity_providers().await.unwrap_or_default();
    assert_eq!(idps.iter().map(|i| i.kind.as_str()).collect::<Vec<_>>(), ["onetimepin", "github"]);
    assert_eq!(client.list_access_policies().await.map(|p| p.len()).ok(), Some(1));
}
