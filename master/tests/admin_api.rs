//! The admin API's answers, seen from outside (the real master binary over mutual TLS, fake
//! agents speaking the real protocol, the Cloudflare emulator over HTTP): AddManualRoute holds
//! its fields to the rules agents are held to, refuses routes nothing would serve, and answers
//! the route ListRoutes shows; origin timeouts are whole seconds; every List call pages alike.

use anyhow::{bail, Context, Result};
use dockflare::v1::admin_service_client::AdminServiceClient;
use dockflare::v1::{
    AddManualRouteRequest, ListRoutesRequest, ListTunnelsRequest, OriginRequest, ReconcileRequest, RemoveAgentRequest,
    RevokeAgentRequest, Route, RouteSource, RouteStatus,
};
use dockflare_emulator::{Emulator, EmulatorConfig, Snapshot};
use dockflare_testsupport::fake_agent::{labelled, route_labels, FakeAgent};
use dockflare_testsupport::{eventually, Master};
use std::net::SocketAddr;
use std::time::Duration;
use tonic::transport::Channel;
use tonic::Code;

const WAIT: Duration = Duration::from_secs(60);

/// The emulated Cloudflare account: zones example.com and other.org.
async fn cloud() -> Result<(Emulator, SocketAddr)> {
    let config = EmulatorConfig { zones: vec!["example.com".into(), "other.org".into()], ..EmulatorConfig::default() };
    Ok(Emulator::start(config, SocketAddr::from(([127, 0, 0, 1], 0))).await?)
}

async fn master(cloud: &(Emulator, SocketAddr)) -> Result<Master> {
    let (emulator, addr) = cloud;
    let url = emulator.base_url(*addr);
    Master::start_with_env(
        None,
        &["--cf-requests-per-5min", "100000"],
        &[
            ("CF_API_TOKEN", emulator.api_token()),
            ("CF_ACCOUNT_ID", emulator.account_id()),
            ("CF_API_URL", &url),
            ("GRACE_PERIOD_SECONDS", "60"),
        ],
    )
    .await
}

/// A manual route for `hostname` to http://origin:80 on the tunnel of group `group`.
fn for_group(hostname: &str, group: &str) -> AddManualRouteRequest {
    AddManualRouteRequest {
        hostname: hostname.into(),
        service: "http://origin:80".into(),
        tunnel_group: group.into(),
        ..Default::default()
    }
}

/// A manual route for `hostname` on the tunnel of agent `agent_id`.
fn for_agent(hostname: &str, agent_id: &str) -> AddManualRouteRequest {
    AddManualRouteRequest {
        hostname: hostname.into(),
        service: "http://origin:80".into(),
        agent_id: agent_id.into(),
        ..Default::default()
    }
}

/// The status AddManualRoute refuses `request` with.
async fn refusal(admin: &mut AdminServiceClient<Channel>, request: AddManualRouteRequest) -> Result<tonic::Status> {
    match admin.add_manual_route(request.clone()).await {
        Ok(answer) => bail!("AddManualRoute {request:?} was accepted: {:?}", answer.into_inner().route),
        Err(status) => Ok(status),
    }
}

async fn routes(master: &Master) -> Result<Vec<Route>> {
    let request = ListRoutesRequest { page_size: 1000, ..Default::default() };
    Ok(master.admin().await?.list_routes(request).await?.into_inner().routes)
}

async fn route(master: &Master, hostname: &str) -> Result<Option<Route>> {
    Ok(routes(master).await?.into_iter().find(|r| r.hostname == hostname))
}

/// The origin options of `hostname`'s ingress rule in the emulated account.
fn ingress_origin(snapshot: &Snapshot, hostname: &str) -> Option<serde_json::Value> {
    snapshot.configurations.iter().find_map(|c| {
        c.config
            .ingress
            .iter()
            .find(|r| r.hostname.as_deref() == Some(hostname))
            .map(|r| r.origin_request.clone().unwrap_or_else(|| serde_json::json!({})))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_manual_route_holds_tunnel_group_to_the_rules_of_an_agents_group() -> Result<()> {
    let cloud = cloud().await?;
    let master = master(&cloud).await?;
    let mut admin = master.admin().await?;
    let too_long = "g".repeat(64);
    for group in ["my group", "edge/1", "édge", too_long.as_str()] {
        let status = refusal(&mut admin, for_group("app.example.com", group)).await?;
        assert_eq!(status.code(), Code::InvalidArgument, "{group:?}: {status:?}");
        assert!(
            status.message().starts_with("tunnel_group: ")
                && status.message().contains("at most 63 characters of a-z, A-Z, 0-9, '-' and '_'"),
            "{group:?}: the message names the field and the rule: {}",
            status.message()
        );
    }
    admin.reconcile(ReconcileRequest {}).await?;
    assert!(routes(&master).await?.is_empty(), "a refused route was stored");
    let tunnels = admin.list_tunnels(ListTunnelsRequest::default()).await?.into_inner().tunnels;
    assert!(tunnels.is_empty(), "a tunnel was made for a refused group: {tunnels:?}");
    assert!(cloud.0.snapshot().tunnels.is_empty(), "Cloudflare got a tunnel for a refused group");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_manual_route_refuses_tunnels_that_nothing_serves() -> Result<()> {
    let cloud = cloud().await?;
    let master = master(&cloud).await?;
    let mut admin = master.admin().await?;
    let edge = FakeAgent::join(&master, &master.join_token_in_group(1, "edge").await?, "edge-1", "edge").await?;
    let revoked = FakeAgent::join(&master, &master.join_token(1).await?, "revoked", "").await?;
    let removed = FakeAgent::join(&master, &master.join_token(1).await?, "removed", "").await?;
    admin.revoke_agent(RevokeAgentRequest { id: revoked.id.clone() }).await?;
    admin.remove_agent(RemoveAgentRequest { id: removed.id.clone() }).await?;

    let status = refusal(&mut admin, for_group("app.example.com", "nobody")).await?;
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    for expected in ["tunnel_group: no enrolled agent serves tunnel group nobody", "token create --tunnel-group nobody"]
    {
        assert!(status.message().contains(expected), "lacks {expected:?}: {}", status.message());
    }
    for (agent, why) in
        [("no-such-agent", "is not enrolled"), (revoked.id.as_str(), "revoked"), (removed.id.as_str(), "removed")]
    {
        let status = refusal(&mut admin, for_agent("app.example.com", agent)).await?;
        assert_eq!(status.code(), Code::FailedPrecondition, "{agent}: {status:?}");
        assert!(
            status.message().starts_with(&format!("agent_id: agent {agent:?}")) && status.message().contains(why),
            "{agent}: {}",
            status.message()
        );
    }
    assert!(routes(&master).await?.is_empty(), "a refused route was stored");

    // A group an agent serves is accepted; when its last agent is removed, the route is no longer
    // published (status invalid, with why and how to fix it), and comes back with a new member.
    let added = admin.add_manual_route(for_group("app.example.com", "edge")).await?.into_inner().route;
    assert_eq!(added.map(|r| r.status), Some(RouteStatus::Active as i32));
    assert_eq!(cloud.0.snapshot().dns_records_named("app.example.com").len(), 1);
    admin.remove_agent(RemoveAgentRequest { id: edge.id.clone() }).await?;
    let unserved = eventually("the manual route is invalid", WAIT, || async {
        Ok(route(&master, "app.example.com").await?.filter(|r| r.status == RouteStatus::Invalid as i32))
    })
    .await?;
    for expected in ["no enrolled agent serves tunnel group edge", "token create --tunnel-group edge"] {
        assert!(unserved.reason.contains(expected), "the reason lacks {expected:?}: {}", unserved.reason);
    }
    assert_eq!(unserved.tunnel_group, "edge");
    eventually("the record of the unserved route is gone", WAIT, || async {
        Ok(cloud.0.snapshot().dns_records_named("app.example.com").is_empty().then_some(()))
    })
    .await?;
    let _again = FakeAgent::join(&master, &master.join_token_in_group(1, "edge").await?, "edge-2", "edge").await?;
    eventually("the manual route is active again", WAIT, || async {
        Ok(route(&master, "app.example.com")
            .await?
            .filter(|r| r.status == RouteStatus::Active as i32 && r.reason.is_empty()))
    })
    .await?;
    eventually("its record is back", WAIT, || async {
        Ok((cloud.0.snapshot().dns_records_named("app.example.com").len() == 1).then_some(()))
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_manual_route_answers_the_route_that_list_routes_shows() -> Result<()> {
    let cloud = cloud().await?;
    let master = master(&cloud).await?;
    let mut admin = master.admin().await?;
    let edge = FakeAgent::join(&master, &master.join_token_in_group(1, "edge").await?, "edge-1", "edge").await?;
    let solo = FakeAgent::join(&master, &master.join_token(1).await?, "solo", "").await?;
    for (request, group) in
        [(for_group("group.example.com", "edge"), "edge"), (for_agent("solo.example.com", &solo.id), "")]
    {
        let answer = admin.add_manual_route(request.clone()).await?.into_inner().route.context("no route answered")?;
        let listed = route(&master, &request.hostname).await?.context("the route is not listed")?;
        // The watch feed may record the change under a revision just after the answer.
        let unrevised = |route: &Route| Route { revision: 0, updated_at: None, ..route.clone() };
        assert_eq!(unrevised(&answer), unrevised(&listed), "AddManualRoute's answer differs from ListRoutes'");
        assert!(answer.revision <= listed.revision, "the answer's revision is ahead of the list's");
        assert!(!answer.tunnel_id.is_empty(), "{}: no tunnel_id", request.hostname);
        let snapshot = cloud.0.snapshot();
        let tunnel = snapshot.tunnels.iter().find(|t| t.id == answer.tunnel_id).context("no such tunnel")?;
        let owner = if group.is_empty() { format!("agent-{}", solo.id) } else { format!("group-{group}") };
        assert_eq!(tunnel.name, format!("dockflare-{owner}"));
        assert_eq!(answer.tunnel_group, group, "{}", request.hostname);
        assert_eq!(answer.source, RouteSource::Manual as i32);
        assert_eq!(answer.status, RouteStatus::Active as i32);
    }
    drop(edge);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_timeouts_are_whole_seconds_in_labels_and_manual_routes() -> Result<()> {
    let cloud = cloud().await?;
    let master = master(&cloud).await?;
    let mut admin = master.admin().await?;
    let agent = FakeAgent::join(&master, &master.join_token(1).await?, "a1", "").await?;
    for (field, value) in [("connect_timeout", "500ms"), ("tls_timeout", "1.5s"), ("keep_alive_timeout", "0s")] {
        let mut origin = OriginRequest::default();
        match field {
            "connect_timeout" => origin.connect_timeout = Some(value.into()),
            "tls_timeout" => origin.tls_timeout = Some(value.into()),
            _ => origin.keep_alive_timeout = Some(value.into()),
        }
        let request = AddManualRouteRequest { origin_request: Some(origin), ..for_agent("app.example.com", &agent.id) };
        let status = refusal(&mut admin, request).await?;
        assert_eq!(status.code(), Code::InvalidArgument, "{field}={value}: {status:?}");
        let message = status.message();
        assert!(message.starts_with(&format!("origin_request.{field}: ")), "{message}");
        assert!(message.contains("whole seconds") && message.contains("1m30s"), "says what is allowed: {message}");
        assert!(!message.contains("500ms or") && !message.contains(", 500ms"), "offers 500ms as an example: {message}");
    }
    // Whole seconds reach Cloudflare exactly.
    let origin = OriginRequest { connect_timeout: Some("1m30s".into()), ..Default::default() };
    let request = AddManualRouteRequest { origin_request: Some(origin), ..for_agent("app.example.com", &agent.id) };
    let answer = admin.add_manual_route(request).await?.into_inner().route.context("no route")?;
    assert_eq!(answer.origin_request.and_then(|o| o.connect_timeout).as_deref(), Some("90s"));
    eventually("the manual route's connectTimeout is 90 s", WAIT, || async {
        Ok(ingress_origin(&cloud.0.snapshot(), "app.example.com")
            .filter(|o| o.get("connectTimeout") == Some(&serde_json::json!(90))))
    })
    .await?;

    // A label under a second is a diagnostic and the option is left out; it is never rounded up.
    let mut labels = route_labels("label.example.com", "http://web:80");
    labels.push(("dockflare.connect_timeout".into(), "500ms".into()));
    agent.report(vec![labelled("c1", &labels)]).await?;
    let origin = eventually("the labelled route's rule", WAIT, || async {
        Ok(ingress_origin(&cloud.0.snapshot(), "label.example.com"))
    })
    .await?;
    assert_eq!(origin.get("connectTimeout"), None, "500ms was rounded to {origin}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_route_outside_the_accounts_zones_is_refused_naming_zone_name() -> Result<()> {
    let cloud = cloud().await?;
    let master = master(&cloud).await?;
    let mut admin = master.admin().await?;
    let agent = FakeAgent::join(&master, &master.join_token(1).await?, "a1", "").await?;
    master.admin().await?.reconcile(ReconcileRequest {}).await?;

    let status = refusal(&mut admin, for_agent("app.unknown.net", &agent.id)).await?;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let message = status.message();
    assert!(message.starts_with("hostname: no zone of the Cloudflare account contains app.unknown.net"), "{message}");
    assert!(message.contains("zone_name") && !message.contains("zonename label"), "{message}");
    assert!(message.contains("example.com") && message.contains("other.org"), "names the account's zones: {message}");

    let named = AddManualRouteRequest { zone_name: "unknown.net".into(), ..for_agent("app.unknown.net", &agent.id) };
    let status = refusal(&mut admin, named).await?;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status
            .message()
            .starts_with("zone_name: zone unknown.net (from the route's zone_name) is not in the Cloudflare account"),
        "{}",
        status.message()
    );
    assert!(routes(&master).await?.is_empty(), "a refused route was stored");

    // A zone the account has is accepted.
    let named = AddManualRouteRequest { zone_name: "example.com".into(), ..for_agent("a.b.example.com", &agent.id) };
    let answer = admin.add_manual_route(named).await?.into_inner().route.context("no route")?;
    assert_eq!(answer.status, RouteStatus::Active as i32, "{answer:?}");
    Ok(())
}
