//! The master's Cloudflare side against the emulator over HTTP, with real
//! master processes and fake agents speaking the real protocol: tunnels,
//! ingress and DNS for reported containers; ownership (hand-made rules and
//! records survive, foreign records make conflicts); the grace period across
//! restarts; faults and restarts without duplicates; bursts coalesced; drift
//! repaired; offline mode.

mod support;

use anyhow::{bail, Context, Result};
use dockflare::v1::agent_service_client::AgentServiceClient;
use dockflare::v1::{
    Container, DockerMode, ListRoutesRequest, ListTunnelsRequest, NodeRole, ReconcileRequest, RegisterRequest, Route,
    RouteStatus,
};
use dockflare_cloudflare::types::{DnsRecordRequest, IngressRule, TunnelConfig};
use dockflare_emulator::{Emulator, EmulatorConfig, FaultSpec, Snapshot};
use dockflare_testsupport::fake_agent::{labelled, route_labels, FakeAgent};
use dockflare_testsupport::{eventually, Master};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);

struct Cloud {
    emulator: Emulator,
    addr: SocketAddr,
}

async fn cloud() -> Result<Cloud> {
    let config = EmulatorConfig {
        zones: vec!["example.com".into(), "dev.example.com".into(), "other.org".into()],
        ..EmulatorConfig::default()
    };
    let (emulator, addr) = Emulator::start(config, SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    Ok(Cloud { emulator, addr })
}

async fn master(cloud: &Cloud, grace: &str, extra: &[&str]) -> Result<Master> {
    master_on(None, cloud, grace, extra).await
}

/// [`master`] on `database_url` (`None`: SQLite in its data dir).
async fn master_on(database_url: Option<&str>, cloud: &Cloud, grace: &str, extra: &[&str]) -> Result<Master> {
    let url = cloud.emulator.base_url(cloud.addr);
    let mut args = vec!["--cf-requests-per-5min", "100000"];
    args.extend_from_slice(extra);
    Master::start_with_env(
        database_url,
        &args,
        &[
            ("CF_API_TOKEN", cloud.emulator.api_token()),
            ("CF_ACCOUNT_ID", cloud.emulator.account_id()),
            ("CF_API_URL", &url),
            ("GRACE_PERIOD_SECONDS", grace),
        ],
    )
    .await
}

async fn routes(master: &Master) -> Result<Vec<Route>> {
    // Every page (a page holds 100 routes unless asked for more).
    let mut admin = master.admin().await?;
    let (mut routes, mut page_token) = (Vec::new(), String::new());
    loop {
        let page = admin.list_routes(ListRoutesRequest { page_size: 1000, page_token, ..Default::default() }).await?;
        let page = page.into_inner();
        routes.extend(page.routes);
        if page.next_page_token.is_empty() {
            return Ok(routes);
        }
        page_token = page.next_page_token;
    }
}

async fn route(master: &Master, hostname: &str) -> Result<Option<Route>> {
    Ok(routes(master).await?.into_iter().find(|r| r.hostname == hostname))
}

async fn wait_status(master: &Master, hostname: &str, status: RouteStatus) -> Result<Route> {
    eventually(&format!("{hostname} {status:?}"), WAIT, || async {
        Ok(route(master, hostname).await?.filter(|r| r.status == status as i32))
    })
    .await
}

fn live_tunnels(snapshot: &Snapshot) -> Vec<&dockflare_cloudflare::types::Tunnel> {
    snapshot.tunnels.iter().filter(|t| t.deleted_at.is_none()).collect()
}

fn ingress(snapshot: &Snapshot, tunnel_id: &str) -> Vec<(String, String, String)> {
    snapshot
        .configuration(tunnel_id)
        .map(|c| {
            c.config
                .ingress
                .iter()
                .map(|r| {
                    (r.hostname.clone().unwrap_or_default(), r.path.clone().unwrap_or_default(), r.service.clone())
                })
                .collect()
        })
        .unwrap_or_default()
}

fn rule(host: &str, service: &str) -> (String, String, String) {
    (host.to_string(), String::new(), service.to_string())
}

fn catch_all() -> (String, String, String) {
    (String::new(), String::new(), "http_status:404".to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reported_container_gets_one_tunnel_its_rule_and_a_cname_in_the_right_zone() -> Result<()> {
    let cloud = cloud().await?;
    let master = master(&cloud, "60", &[]).await?;
    let agent = FakeAgent::join(&master, &master.join_token(1).await?, "a1", "").await?;
    agent.report(vec![labelled("c1", &route_labels("app.dev.example.com", "http://web:80"))]).await?;
    let active = wait_status(&master, "app.dev.example.com", RouteStatus::Active).await?;

    let snapshot = cloud.emulator.snapshot();
    let tunnels = live_tunnels(&snapshot);
    assert_eq!(tunnels.len(), 1, "{tunnels:?}");
    let tunnel = tunnels[0];
    assert_eq!(tunnel.name, format!("dockflare-agent-{}", agent.id));
    assert_eq!(tunnel.config_src.as_deref(), Some("cloudflare"));
    assert_eq!(active.tunnel_id, tunnel.id);
    assert_eq!(ingress(&snapshot, &tunnel.id), vec![rule("app.dev.example.com", "http://web:80"), catch_all()]);
    let records = snapshot.dns_records.iter().filter(|r| r.record.name == "app.dev.example.com").collect::<Vec<_>>();
    assert_eq!(records.len(), 1, "{records:?}");
    let record = &records[0];
    assert_eq!(Some(record.zone_id.clone()), cloud.emulator.zone_id("dev.example.com"), "the longest matching zone");
    assert_eq!(record.record.record_type, "CNAME");
    assert_eq!(record.record.content, format!("{}.cfargotunnel.com", tunnel.id));
    assert!(record.record.proxied);
    assert!(record.record.comment.as_deref().unwrap_or("").contains("dockflare:"), "{:?}", record.record.comment);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_made_rules_and_records_survive_and_a_foreign_record_is_a_conflict() -> Result<()> {
    let cloud = cloud().await?;
    let foreign = DnsRecordRequest {
        record_type: "CNAME".into(),
        name: "taken.example.com".into(),
        content: "elsewhere.example.net".into(),
        proxied: Some(false),
        ttl: Some(300),
        comment: Some("made by hand".into()),
        tags: Vec::new(),
    };
    let foreign = cloud.emulator.seed_dns_record("example.com", &foreign)?;
    let hand = DnsRecordRequest {
        name: "hand.example.com".into(),
        content: "192.0.2.1".into(),
        record_type: "A".into(),
        ..foreign_request()
    };
    let hand = cloud.emulator.seed_dns_record("example.com", &hand)?;

    let master = master(&cloud, "2", &[]).await?;
    let agent = FakeAgent::join(&master, &master.join_token(1).await?, "a1", "").await?;
    let tunnel_id = eventually("the agent's tunnel", WAIT, || async {
        Ok(live_tunnels(&cloud.emulator.snapshot()).first().map(|t| t.id.clone()))
    })
    .await?;
    let hand_rule = IngressRule {
        hostname: Some("manual.example.com".into()),
        service: "http://hand:1".into(),
        ..Default::default()
    };
    let teapot = IngressRule { service: "http_status:418".into(), ..Default::default() };
    cloud
        .emulator
        .seed_configuration(&tunnel_id, TunnelConfig { ingress: vec![hand_rule, teapot], ..Default::default() })?;

    let app = labelled("c1", &route_labels("app.example.com", "http://web:80"));
    let taken = labelled("c2", &route_labels("taken.example.com", "http://other:80"));
    agent.report(vec![app.clone(), taken.clone()]).await?;
    wait_status(&master, "app.example.com", RouteStatus::Active).await?;
    let conflict = wait_status(&master, "taken.example.com", RouteStatus::Conflict).await?;
    assert!(conflict.reason.contains("did not create"), "{}", conflict.reason);

    let check_untouched = |snapshot: &Snapshot| -> Result<()> {
        let now =
            snapshot.dns_records.iter().find(|r| r.record.id == foreign.id).context("the foreign record is gone")?;
        assert_eq!(
            (now.record.content.as_str(), now.record.comment.as_deref()),
            ("elsewhere.example.net", Some("made by hand"))
        );
        let now =
            snapshot.dns_records.iter().find(|r| r.record.id == hand.id).context("the hand-made record is gone")?;
        assert_eq!(now.record.content, "192.0.2.1");
        Ok(())
    };
    let snapshot = cloud.emulator.snapshot();
    check_untouched(&snapshot)?;
    assert_eq!(
        ingress(&snapshot, &tunnel_id),
        vec![
            rule("manual.example.com", "http://hand:1"),
            rule("app.example.com", "http://web:80"),
            (String::new(), String::new(), "http_status:418".into())
        ],
        "the hand-made rule and catch-all stay, in place"
    );
    assert!(snapshot.dns_records_named("taken.example.com").len() == 1);

    // A hostname whose rule someone else wrote is a conflict, and stays one on later passes that
    // find the desired ingress unchanged: no record is made for it, its rule is not ours.
    let claims_hand_rule = labelled("c3", &route_labels("manual.example.com", "http://mine:80"));
    agent.report(vec![app.clone(), taken.clone(), claims_hand_rule]).await?;
    let held = wait_status(&master, "manual.example.com", RouteStatus::Conflict).await?;
    assert!(held.reason.contains("did not write"), "{}", held.reason);
    for _ in 0..2 {
        master.admin().await?.reconcile(ReconcileRequest {}).await?;
    }
    let still = route(&master, "manual.example.com").await?.context("the conflicting route is listed")?;
    assert_eq!(still.status, RouteStatus::Conflict as i32, "later passes keep the conflict: {still:?}");
    let snapshot = cloud.emulator.snapshot();
    assert!(snapshot.dns_records_named("manual.example.com").is_empty(), "no record for a foreign rule's hostname");
    assert_eq!(ingress(&snapshot, &tunnel_id)[0], rule("manual.example.com", "http://hand:1"), "the hand rule stays");

    // The app stops: after the grace period its rule and record go, the hand-made ones stay.
    agent.report(vec![]).await?;
    eventually("app.example.com removed", WAIT, || async {
        Ok(route(&master, "app.example.com").await?.is_none().then_some(()))
    })
    .await?;
    eventually("its rule and record removed", WAIT, || async {
        let snapshot = cloud.emulator.snapshot();
        let gone = snapshot.dns_records_named("app.example.com").is_empty()
            && ingress(&snapshot, &tunnel_id)
                == vec![
                    rule("manual.example.com", "http://hand:1"),
                    (String::new(), String::new(), "http_status:418".into()),
                ];
        Ok(gone.then_some(()))
    })
    .await?;
    check_untouched(&cloud.emulator.snapshot())?;
    Ok(())
}

fn foreign_request() -> DnsRecordRequest {
    DnsRecordRequest {
        record_type: "CNAME".into(),
        name: String::new(),
        content: String::new(),
        proxied: Some(false),
        ttl: Some(300),
        comment: None,
        tags: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grace_period_holds_across_restarts_and_a_returning_container_keeps_its_route() -> Result<()> {
    let cloud = cloud().await?;
    let mut master = master(&cloud, "6", &[]).await?;
    let mut agent = FakeAgent::join(&master, &master.join_token(1).await?, "a1", "").await?;
    let app = labelled("c1", &route_labels("app.example.com", "http://web:80"));
    agent.report(vec![app.clone()]).await?;
    wait_status(&master, "app.example.com", RouteStatus::Active).await?;

    // Stopped, then back within the grace period: kept.
    agent.stop(app.clone()).await?;
    wait_status(&master, "app.example.com", RouteStatus::PendingDeletion).await?;
    agent.start(app.clone()).await?;
    wait_status(&master, "app.example.com", RouteStatus::Active).await?;
    assert_eq!(cloud.emulator.snapshot().dns_records_named("app.example.com").len(), 1);

    // Stopped again; the master restarts; the deadline is the same.
    agent.stop(app.clone()).await?;
    let pending = wait_status(&master, "app.example.com", RouteStatus::PendingDeletion).await?;
    let deadline = pending.delete_at.context("no deadline")?;
    master.restart().await?;
    agent.connect(&master).await?;
    agent.report(vec![]).await?;
    let after = wait_status(&master, "app.example.com", RouteStatus::PendingDeletion).await?;
    assert_eq!(after.delete_at, Some(deadline), "the restart moved the deadline");
    assert_eq!(cloud.emulator.snapshot().dns_records_named("app.example.com").len(), 1, "removed before the deadline");

    // At the deadline, rule and record go.
    eventually("the route removed at its deadline", WAIT, || async {
        let snapshot = cloud.emulator.snapshot();
        let tunnel = live_tunnels(&snapshot).first().map(|t| t.id.clone()).unwrap_or_default();
        let done = route(&master, "app.example.com").await?.is_none()
            && snapshot.dns_records_named("app.example.com").is_empty()
            && ingress(&snapshot, &tunnel) == vec![catch_all()];
        Ok(done.then_some(()))
    })
    .await?;
    Ok(())
}

/// The route of `hostname` that `agent_id` claims, once it has `status`.
async fn wait_claim(master: &Master, hostname: &str, agent_id: &str, status: RouteStatus) -> Result<Route> {
    eventually(&format!("{hostname} of {agent_id} {status:?}"), WAIT, || async {
        Ok(routes(master)
            .await?
            .into_iter()
            .find(|r| r.hostname == hostname && r.agent_id == agent_id && r.status == status as i32))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_agent_cannot_take_a_hostname_while_its_owner_restarts() -> Result<()> {
    let cloud = cloud().await?;
    let master = master(&cloud, "600", &[]).await?;
    let token = master.join_token(2).await?;
    let owner = FakeAgent::join(&master, &token, "owner", "").await?;
    let other = FakeAgent::join(&master, &token, "other", "").await?;
    let host = "shared.example.com";
    owner.report(vec![labelled("web-1", &route_labels(host, "http://web:80"))]).await?;
    let active = wait_claim(&master, host, &owner.id, RouteStatus::Active).await?;
    let owners_tunnel = active.tunnel_id.clone();

    // The owner's container stops for a moment (a restart, `compose up`); another agent asks.
    owner.report(vec![]).await?;
    wait_claim(&master, host, &owner.id, RouteStatus::PendingDeletion).await?;
    other.report(vec![labelled("evil", &route_labels(host, "http://evil:80"))]).await?;
    let refused = wait_claim(&master, host, &other.id, RouteStatus::Conflict).await?;
    assert!(refused.reason.contains("already routed to web-1"), "reason: {}", refused.reason);

    // The owner comes back under a new container id: the hostname is still its own.
    owner.report(vec![labelled("web-2", &route_labels(host, "http://web:80"))]).await?;
    let back = wait_claim(&master, host, &owner.id, RouteStatus::Active).await?;
    assert_eq!(back.container_id, "web-2");
    wait_claim(&master, host, &other.id, RouteStatus::Conflict).await?;
    eventually("the owner's tunnel still carries the hostname", WAIT, || async {
        let snapshot = cloud.emulator.snapshot();
        let served = ingress(&snapshot, &owners_tunnel).contains(&rule(host, "http://web:80"));
        let records = snapshot.dns_records_named(host);
        let pointed = records.len() == 1 && records[0].content == format!("{owners_tunnel}.cfargotunnel.com");
        Ok((served && pointed).then_some(()))
    })
    .await?;
    Ok(())
}

/// A Swarm node's registration: its node id, role, and the swarm ids it sees.
fn swarm_node(node: &str, manager: bool, cluster: &str, managers: &[&str]) -> RegisterRequest {
    RegisterRequest {
        display_name: node.into(),
        version: "test".into(),
        docker_mode: DockerMode::Swarm as i32,
        node_id: node.into(),
        node_role: if manager { NodeRole::Manager } else { NodeRole::Worker } as i32,
        swarm_cluster_id: cluster.into(),
        swarm_manager_node_ids: managers.iter().map(|m| m.to_string()).collect(),
        ..Default::default()
    }
}

/// A Swarm service as a manager reports it (or, with a task id, one of its tasks).
fn service(id: &str, service_id: &str, hostname: &str, origin: &str) -> Container {
    Container {
        service_id: service_id.into(),
        service_name: "web".into(),
        ..labelled(id, &route_labels(hostname, origin))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_service_id_from_another_swarm_is_a_conflict_not_a_takeover() -> Result<()> {
    let cloud = cloud().await?;
    let master = master(&cloud, "600", &[]).await?;
    let token = master.join_token(3).await?;
    let host = "svc.example.com";
    let manager = FakeAgent::join_as(&master, &token, "m1", swarm_node("n1", true, "c1", &["n1"])).await?;
    manager.report(vec![service("s1", "s1", host, "http://web:80")]).await?;
    let active = wait_claim(&master, host, &manager.id, RouteStatus::Active).await?;
    // A worker of the same swarm reports a task of the service: the same claim, no conflict.
    let worker = FakeAgent::join_as(&master, &token, "w1", swarm_node("n3", false, "", &["n1"])).await?;
    worker.report(vec![Container { task_id: "t1".into(), ..service("task-1", "s1", host, "http://web:80") }]).await?;
    // An agent of another swarm reports a container carrying the same service id.
    let intruder = FakeAgent::join_as(&master, &token, "x1", swarm_node("n9", true, "c9", &["n9"])).await?;
    intruder.report(vec![service("s1", "s1", host, "http://evil:80")]).await?;
    let refused = wait_claim(&master, host, &intruder.id, RouteStatus::Conflict).await?;
    assert!(refused.reason.contains("already routed to web"), "reason: {}", refused.reason);
    let rows: Vec<Route> = routes(&master).await?.into_iter().filter(|r| r.hostname == host).collect();
    assert_eq!(rows.len(), 2, "the worker's task merged into the service's claim: {rows:?}");
    let kept = wait_claim(&master, host, &manager.id, RouteStatus::Active).await?;
    assert_eq!((kept.service.as_str(), kept.tunnel_id.as_str()), ("http://web:80", active.tunnel_id.as_str()));
    let snapshot = cloud.emulator.snapshot();
    assert!(ingress(&snapshot, &active.tunnel_id).contains(&rule(host, "http://web:80")));
    let records = snapshot.dns_records_named(host);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].content, format!("{}.cfargotunnel.com", active.tunnel_id));
    Ok(())
}

/// Labels of several routes on one container (`dockflare.N.hostname`), all to one service.
fn routes_labels(hostnames: &[&str]) -> Vec<(String, String)> {
    let mut labels = vec![("dockflare.enable".to_string(), "true".to_string())];
    for (n, hostname) in hostnames.iter().enumerate() {
        labels.push((format!("dockflare.{n}.hostname"), hostname.to_string()));
        labels.push((format!("dockflare.{n}.service"), "http://web:80".to_string()));
    }
    labels
}

async fn diagnostics(master: &Master, agent_id: &str) -> Result<Vec<(String, String)>> {
    let request = dockflare::v1::ListDiagnosticsRequest { agent_id: agent_id.into(), ..Default::default() };
    let records = master.admin().await?.list_diagnostics(request).await?.into_inner().diagnostics;
    Ok(records.into_iter().filter_map(|r| r.diagnostic).map(|d| (d.value, d.reason)).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostname_policies_refuse_foreign_names_wildcards_the_apex_and_routes_over_the_quota() -> Result<()> {
    let cloud = cloud().await?;
    let master = master(&cloud, "60", &["--max-routes-per-agent", "3"]).await?;
    // Admitted for *.apps.example.com only.
    let policy =
        dockflare::v1::HostnamePolicy { allowed_hostnames: vec!["*.apps.example.com".into()], ..Default::default() };
    let token = master
        .admin()
        .await?
        .create_join_token(dockflare::v1::CreateJoinTokenRequest {
            ttl_seconds: 600,
            max_uses: 1,
            description: "apps".into(),
            tunnel_group: String::new(),
            policy: Some(policy),
        })
        .await?
        .into_inner()
        .token;
    let narrow = FakeAgent::join(&master, &token, "narrow", "").await?;
    let asked = ["web.apps.example.com", "bank.example.com", "*.apps.example.com", "mail.other.org"];
    narrow.report(vec![labelled("c1", &routes_labels(&asked))]).await?;
    wait_claim(&master, "web.apps.example.com", &narrow.id, RouteStatus::Active).await?;
    let refused = diagnostics(&master, &narrow.id).await?;
    let reason =
        |host: &str| refused.iter().find(|(value, _)| value == host).map(|(_, r)| r.clone()).unwrap_or_default();
    assert!(reason("bank.example.com").contains("outside its allowed hostnames"), "{refused:?}");
    assert!(reason("mail.other.org").contains("outside its allowed hostnames"), "{refused:?}");
    assert!(reason("*.apps.example.com").contains("wildcard"), "{refused:?}");

    // Default policy: any name, but no wildcard, no apex, and at most 3 routes.
    let open = FakeAgent::join(&master, &master.join_token(1).await?, "open", "").await?;
    let asked = ["a.example.com", "example.com", "*.example.com", "x.example.com", "y.example.com"];
    open.report(vec![labelled("c2", &routes_labels(&asked))]).await?;
    let apex = wait_claim(&master, "example.com", &open.id, RouteStatus::Invalid).await?;
    assert!(apex.reason.contains("apex of zone example.com"), "{}", apex.reason);
    let refused = diagnostics(&master, &open.id).await?;
    assert!(refused.iter().any(|(v, r)| v == "*.example.com" && r.contains("wildcard")), "{refused:?}");
    assert!(refused.iter().any(|(v, r)| v == "example.com" && r.contains("apex")), "the apex too: {refused:?}");
    let over: Vec<&str> = refused.iter().filter(|(_, r)| r.contains("quota of 3")).map(|(v, _)| v.as_str()).collect();
    assert_eq!(over, vec!["y.example.com"], "the last in hostname order: {refused:?}");
    for host in ["a.example.com", "x.example.com"] {
        wait_claim(&master, host, &open.id, RouteStatus::Active).await?;
    }
    // Nothing refused reached Cloudflare, and no refused claim holds a hostname.
    let snapshot = cloud.emulator.snapshot();
    for host in
        ["bank.example.com", "*.apps.example.com", "mail.other.org", "example.com", "*.example.com", "y.example.com"]
    {
        assert!(snapshot.dns_records_named(host).is_empty(), "{host} has a DNS record");
        assert!(route(&master, host).await?.filter(|r| r.status == RouteStatus::Active as i32).is_none(), "{host}");
    }
    // Each refusal is logged once, not every pass.
    master.admin().await?.reconcile(ReconcileRequest {}).await?;
    assert_eq!(master.logs.count("Route refused by the agent's hostname policy."), 5, "{}", master.logs.text());

    // The operator widens the narrow agent's policy: its wildcard is published on the next pass.
    let wider = dockflare::v1::HostnamePolicy {
        allowed_hostnames: vec!["*.apps.example.com".into()],
        allow_wildcards: true,
        ..Default::default()
    };
    master
        .admin()
        .await?
        .set_agent_policy(dockflare::v1::SetAgentPolicyRequest { id: narrow.id.clone(), policy: Some(wider) })
        .await?;
    wait_claim(&master, "*.apps.example.com", &narrow.id, RouteStatus::Active).await?;
    let bad = master
        .admin()
        .await?
        .set_agent_policy(dockflare::v1::SetAgentPolicyRequest {
            id: narrow.id.clone(),
            policy: Some(dockflare::v1::HostnamePolicy {
                allowed_hostnames: vec!["no spaces".into()],
                ..Default::default()
            }),
        })
        .await
        .expect_err("an invalid pattern was accepted");
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(bad.message().starts_with("policy.allowed_hostnames[0]"), "{}", bad.message());
    Ok(())
}

/// One agent floods the master with 2 MiB status reports and 100 new routes, at Cloudflare's real
/// request budget; another agent's command still arrives within 100 ms, and its new route is live
/// long before the flood's routes are all written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_agents_floods_do_not_delay_another_agent() -> Result<()> {
    let cloud = cloud().await?;
    let url = cloud.emulator.base_url(cloud.addr);
    let master = Master::start_with_env(
        None,
        &["--cf-requests-per-5min", "1100"],
        &[
            ("CF_API_TOKEN", cloud.emulator.api_token()),
            ("CF_ACCOUNT_ID", cloud.emulator.account_id()),
            ("CF_API_URL", &url),
            ("GRACE_PERIOD_SECONDS", "60"),
        ],
    )
    .await?;
    let token = master.join_token(2).await?;
    let flood = FakeAgent::join(&master, &token, "flood", "").await?;
    let quiet = FakeAgent::join(&master, &token, "quiet", "").await?;
    master.wait_reconciler_start_tunnel(&quiet.id, WAIT).await?;
    let baseline = master.rss_mib()?;

    // The route flood: 100 routes at once (within the default quota).
    let hostnames: Vec<String> = (0..100).map(|n| format!("f{n:03}.example.com")).collect();
    let names: Vec<&str> = hostnames.iter().map(String::as_str).collect();
    flood.report(vec![labelled("big", &routes_labels(&names))]).await?;
    eventually("the flood's first records", WAIT, || async {
        Ok((!cloud.emulator.snapshot().dns_records_named("f000.example.com").is_empty()).then_some(()))
    })
    .await?;
    // The event flood: 2 MiB status reports, as fast as the agent can send them.
    let payload = "x".repeat(2 << 20);
    let flooding = tokio::spawn({
        let flood_labels = {
            let mut labels = routes_labels(&names);
            labels.push(("padding".to_string(), payload));
            labels
        };
        async move {
            for _ in 0..40 {
                if flood.report(vec![labelled("big", &flood_labels)]).await.is_err() {
                    break;
                }
            }
            flood
        }
    });

    // The quiet agent's new route: its record exists while the flood's are still being written.
    let started = Instant::now();
    quiet.report(vec![labelled("q1", &route_labels("quiet.example.com", "http://q:80"))]).await?;
    eventually("the quiet agent's record", WAIT, || async {
        Ok((!cloud.emulator.snapshot().dns_records_named("quiet.example.com").is_empty()).then_some(()))
    })
    .await?;
    let live_after = started.elapsed();
    let flood_written = hostnames.iter().filter(|h| !cloud.emulator.snapshot().dns_records_named(h).is_empty()).count();
    println!("the quiet agent's route was live {live_after:?} after its report; the flood had {flood_written}/100 records then");
    assert!(flood_written < 100, "the flood was written before: nothing was measured");
    assert!(live_after < Duration::from_secs(15), "the quiet agent waited {live_after:?} behind the flood");

    // Its commands arrive within 100 ms, under the event flood.
    let mut commands = AgentServiceClient::new(quiet.channel(&master).await?)
        .watch_commands(dockflare::v1::WatchCommandsRequest {})
        .await?
        .into_inner();
    let mut worst = Duration::ZERO;
    for n in 0..10 {
        let sent = Instant::now();
        let request = dockflare::v1::SendCommandRequest {
            agent_id: quiet.id.clone(),
            kind: Some(dockflare::v1::send_command_request::Kind::Resync(dockflare::v1::Resync {
                reason: format!("probe {n}"),
            })),
        };
        let id = master.admin().await?.send_command(request).await?.into_inner().command_id;
        loop {
            let message = tokio::time::timeout(WAIT, commands.message()).await??.context("stream ended")?;
            if let Some(dockflare::v1::watch_commands_response::Message::Command(command)) = message.message {
                if command.id == id {
                    break;
                }
            }
        }
        worst = worst.max(sent.elapsed());
    }
    let under_flood = master.rss_mib()?;
    println!("commands to the quiet agent arrived within {worst:?} (SendCommand to receipt, worst of 10); master RSS {baseline} → {under_flood} MiB");
    assert!(worst < Duration::from_millis(100), "a command took {worst:?}");
    assert!(under_flood < baseline + 256, "master memory grew from {baseline} MiB to {under_flood} MiB");
    let flood = flooding.await?;
    assert!(
        master.logs.count("Agent's events are throttled (over --agent-event-rate).") >= 1,
        "the flood was not throttled"
    );
    drop(flood);
    Ok(())
}

/// A stored route this master cannot read (an unknown status: a corrupt row, or a newer
/// master's) is left alone — not routed, not deleted, not overwritten — while the rest reconcile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_row_with_an_unknown_status_is_left_alone_and_the_rest_reconcile_on_sqlite() -> Result<()> {
    unknown_status_is_left_alone(None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_row_with_an_unknown_status_is_left_alone_and_the_rest_reconcile_on_postgres() -> Result<()> {
    let database = support::TestDatabase::postgres().await?;
    unknown_status_is_left_alone(Some(&database.url)).await
}

async fn unknown_status_is_left_alone(database_url: Option<&str>) -> Result<()> {
    let cloud = cloud().await?;
    let master = master_on(database_url, &cloud, "600", &[]).await?;
    let agent = FakeAgent::join(&master, &master.join_token(1).await?, "a1", "").await?;
    let a = labelled("ca", &route_labels("a.example.com", "http://a:80"));
    let b = labelled("cb", &route_labels("b.example.com", "http://b:80"));
    agent.report(vec![a.clone(), b.clone()]).await?;
    wait_status(&master, "a.example.com", RouteStatus::Active).await?;
    wait_status(&master, "b.example.com", RouteStatus::Active).await?;

    // Someone (or a newer master) writes a status this master does not know.
    let url = match database_url {
        Some(url) => url.to_string(),
        None => dockflare_master::store::default_sqlite_url(master.data_dir.path()),
    };
    let _drivers = dockflare_master::store::Store::connect(&url).await?; // installs sqlx's Any drivers
    let pool = sqlx::AnyPool::connect(&url).await?;
    sqlx::query("UPDATE routes SET status = 'frozen' WHERE hostname = 'a.example.com'").execute(&pool).await?;
    // Both containers stop: b goes pending as usual; a is neither deleted nor rewritten.
    agent.report(vec![]).await?;
    wait_status(&master, "b.example.com", RouteStatus::PendingDeletion).await?;
    master.admin().await?.reconcile(ReconcileRequest {}).await?;
    let status: String =
        sqlx::query_scalar("SELECT status FROM routes WHERE hostname = 'a.example.com'").fetch_one(&pool).await?;
    assert_eq!(status, "frozen", "the row was rewritten");
    let listed = route(&master, "a.example.com").await?.context("the corrupt row is not listed")?;
    assert_eq!(listed.status, RouteStatus::Unspecified as i32);
    assert!(listed.reason.contains("unknown status \"frozen\""), "{}", listed.reason);
    let logged = master
        .logs
        .wait_for("A stored route cannot be read; it is left alone (not routed, not deleted).", WAIT)
        .await?;
    assert_eq!(logged["hostname"], "a.example.com", "{logged}");
    // And it comes back asking: still left alone (no new row over it).
    agent.report(vec![a]).await?;
    master.admin().await?.reconcile(ReconcileRequest {}).await?;
    let rows: Vec<String> =
        sqlx::query_scalar("SELECT status FROM routes WHERE hostname = 'a.example.com'").fetch_all(&pool).await?;
    assert_eq!(rows, vec!["frozen".to_string()]);
    assert_eq!(
        master.logs.count("A stored route cannot be read; it is left alone (not routed, not deleted)."),
        1,
        "logged once, not every pass"
    );
    Ok(())
}

/// Two masters on one PostgreSQL: the agent is on the standby, and a start_tunnel that cannot be
/// opened there clears its tunnel assignment. The leader hears of it at once (the fan-out tells the
/// other masters) and sends a fresh one — not at its next drift pass, minutes later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cleared_assignment_on_the_standby_reaches_the_leader_at_once() -> Result<()> {
    let cloud = cloud().await?;
    let database = support::TestDatabase::postgres().await?;
    let url = cloud.emulator.base_url(cloud.addr);
    let env = [
        ("CF_API_TOKEN", cloud.emulator.api_token()),
        ("CF_ACCOUNT_ID", cloud.emulator.account_id()),
        ("CF_API_URL", url.as_str()),
    ];
    let args = ["--cf-requests-per-5min", "100000", "--reconcile-interval", "10m"];
    let first = Master::start_with_env(Some(&database.url), &args, &env).await?;
    let pki = first.data_dir.path().join("pki");
    let (ca_cert, ca_key) =
        (pki.join("ca.crt").to_string_lossy().to_string(), pki.join("ca.key").to_string_lossy().to_string());
    let mut second_args = args.to_vec();
    second_args.extend(["--ca-cert", ca_cert.as_str(), "--ca-key", ca_key.as_str()]);
    let second = Master::start_with_env(Some(&database.url), &second_args, &env).await?;
    const LEADER: &str = "This master now reconciles Cloudflare (leader).";
    let masters = [&first, &second];
    let leader =
        eventually("a leader", WAIT, || async { Ok(masters.iter().position(|m| m.logs.count(LEADER) > 0)) }).await?;
    let standby = masters[1 - leader];

    let agent = FakeAgent::join(standby, &standby.join_token(1).await?, "a1", "").await?;
    standby.wait_reconciler_start_tunnel(&agent.id, WAIT).await?;
    // A start_tunnel that does not open lands in the log (as a damaged row would), and a valid
    // command after it wakes the agent's stream on the standby: no Register, no other trigger.
    let _drivers = dockflare_master::store::Store::connect(&database.url).await?; // installs sqlx's Any drivers
    let pool = sqlx::AnyPool::connect(&database.url).await?;
    let damaged: i64 = sqlx::query_scalar(
        "UPDATE agents SET last_command_seq = last_command_seq + 1 WHERE id = $1 RETURNING last_command_seq",
    )
    .bind(&agent.id)
    .fetch_one(&pool)
    .await?;
    sqlx::query(
        "INSERT INTO agent_commands (agent_id, sequence, id, kind, payload, state, created_at) \
         VALUES ($1, $2, $3, 'start_tunnel', $4, 'queued', 0)",
    )
    .bind(&agent.id)
    .bind(damaged)
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(b"DFS1 not a sealed command".to_vec())
    .execute(&pool)
    .await?;
    let started = Instant::now();
    let resync = dockflare::v1::send_command_request::Kind::Resync(dockflare::v1::Resync { reason: "wake".into() });
    standby
        .admin()
        .await?
        .send_command(dockflare::v1::SendCommandRequest { agent_id: agent.id.clone(), kind: Some(resync) })
        .await?;
    let damaged = damaged as u64;
    eventually("a fresh start_tunnel from the leader", Duration::from_secs(30), || async {
        let commands = standby.commands(&agent.id).await?;
        Ok(commands
            .iter()
            .any(|c| {
                c.kind == "start_tunnel" && c.sequence > damaged && c.state == dockflare::v1::CommandState::Acked as i32
            })
            .then_some(()))
    })
    .await?;
    println!("the leader renewed the standby's agent {:?} after its assignment was cleared", started.elapsed());
    Ok(())
}

async fn report_all(agents: &[FakeAgent]) -> Result<()> {
    for (a, agent) in agents.iter().enumerate() {
        let containers = (0..5)
            .map(|n| {
                labelled(
                    &format!("c{a}-{n}"),
                    &route_labels(&format!("app{n}.agent{a}.example.com"), &format!("http://web{n}:80")),
                )
            })
            .collect();
        agent.report(containers).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_and_a_restart_converge_without_duplicates() -> Result<()> {
    let cloud = cloud().await?;
    for status in [429, 500] {
        cloud.emulator.inject_faults(FaultSpec {
            status,
            probability: 0.15,
            seed: Some(u64::from(status)),
            ..FaultSpec::always(status)
        })?;
    }
    let mut master = master(&cloud, "60", &[]).await?;
    let token = master.join_token(2).await?;
    let edge_token = master.join_token_in_group(1, "edge").await?;
    let mut agents = Vec::new();
    for (index, group) in ["", "", "edge"].iter().enumerate() {
        let token = if group.is_empty() { &token } else { &edge_token };
        agents.push(FakeAgent::join(&master, token, &format!("a{index}"), group).await?);
    }
    let hostname = |agent: usize, n: usize| format!("app{n}.agent{agent}.example.com");
    report_all(&agents).await?;
    // Mid-way: kill -9 and restart.
    eventually("some routes applied", WAIT, || async {
        Ok((cloud.emulator.snapshot().dns_records.len() >= 3).then_some(()))
    })
    .await?;
    master.restart().await?;
    for agent in agents.iter_mut() {
        agent.connect(&master).await?;
    }
    report_all(&agents).await?;

    eventually("all 15 routes active with their records, despite faults", Duration::from_secs(120), || async {
        let routes = routes(&master).await?;
        let active = routes.iter().filter(|r| r.status == RouteStatus::Active as i32).count();
        let records = cloud.emulator.snapshot().dns_records.len();
        Ok((active == 15 && records == 15).then_some(()))
    })
    .await?;
    let snapshot = cloud.emulator.snapshot();
    let mut names: Vec<&str> = live_tunnels(&snapshot).iter().map(|t| t.name.as_str()).collect();
    names.sort();
    let unique: std::collections::BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(names.len(), unique.len(), "duplicate tunnels: {names:?}");
    assert_eq!(names.len(), 3, "two agents' tunnels and one group's: {names:?}");
    for a in 0..3 {
        for n in 0..5 {
            assert_eq!(snapshot.dns_records_named(&hostname(a, n)).len(), 1, "{}", hostname(a, n));
        }
    }
    let faults = cloud.emulator.requests();
    if faults.log.iter().filter(|e| e.status == 429 || e.status == 500).count() == 0 {
        bail!("no fault was injected; the test proves nothing");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_200_containers_makes_few_puts_and_a_quiet_restart_writes_nothing() -> Result<()> {
    let cloud = cloud().await?;
    let mut master = master(&cloud, "60", &[]).await?;
    let mut agent = FakeAgent::join(&master, &master.join_token(1).await?, "a1", "").await?;
    eventually("the agent's tunnel", WAIT, || async {
        Ok(live_tunnels(&cloud.emulator.snapshot()).first().map(|_| ()))
    })
    .await?;
    cloud.emulator.reset_requests();
    let containers: Vec<_> = (0..200)
        .map(|n| labelled(&format!("c{n}"), &route_labels(&format!("app{n}.example.com"), "http://web:80")))
        .collect();
    for container in &containers {
        agent.start(container.clone()).await?;
    }
    eventually("200 routes active", WAIT, || async {
        let active = routes(&master).await?.iter().filter(|r| r.status == RouteStatus::Active as i32).count();
        Ok((active == 200 && cloud.emulator.snapshot().dns_records.len() == 200).then_some(()))
    })
    .await?;
    let puts = cloud.emulator.request_count("PUT", "/accounts/{account_id}/cfd_tunnel/{tunnel_id}/configurations");
    assert!((1..=3).contains(&puts), "{puts} ingress PUTs for a burst of 200 containers");

    master.restart().await?;
    cloud.emulator.reset_requests();
    agent.connect(&master).await?;
    agent.report(containers).await?;
    master.admin().await?.reconcile(ReconcileRequest {}).await?;
    master.admin().await?.reconcile(ReconcileRequest {}).await?;
    let writes: Vec<_> = cloud.emulator.requests().log.into_iter().filter(|e| e.method != "GET").collect();
    assert!(writes.is_empty(), "a restart with nothing changed wrote: {writes:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drift_pass_recreates_a_deleted_record_and_leaves_foreign_rules() -> Result<()> {
    let cloud = cloud().await?;
    let master = master(&cloud, "60", &["--reconcile-interval", "1s"]).await?;
    let agent = FakeAgent::join(&master, &master.join_token(1).await?, "a1", "").await?;
    agent.report(vec![labelled("c1", &route_labels("app.example.com", "http://web:80"))]).await?;
    wait_status(&master, "app.example.com", RouteStatus::Active).await?;
    let snapshot = cloud.emulator.snapshot();
    let record = snapshot.dns_records_named("app.example.com")[0].clone();
    let tunnel = live_tunnels(&snapshot)[0].id.clone();

    // In the dashboard: the managed record is deleted and a rule is added.
    cloud.emulator.delete_dns_record(&record.id)?;
    let mut config = snapshot.configuration(&tunnel).context("no configuration")?.config.clone();
    config.ingress.insert(
        0,
        IngressRule {
            hostname: Some("dash.example.com".into()),
            service: "http://dash:1".into(),
            ..Default::default()
        },
    );
    cloud.emulator.seed_configuration(&tunnel, config)?;

    let recreated = eventually("the managed record recreated", WAIT, || async {
        Ok(cloud.emulator.snapshot().dns_records_named("app.example.com").first().map(|r| r.id.clone()))
    })
    .await?;
    assert_ne!(recreated, record.id);
    let rules = ingress(&cloud.emulator.snapshot(), &tunnel);
    assert_eq!(
        rules,
        vec![rule("dash.example.com", "http://dash:1"), rule("app.example.com", "http://web:80"), catch_all()]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_of_ours_changed_behind_the_masters_back_is_repaired_by_a_reconcile() -> Result<()> {
    let cloud = cloud().await?;
    let master = master(&cloud, "60", &[]).await?;
    let agent = FakeAgent::join(&master, &master.join_token(1).await?, "a1", "").await?;
    agent.report(vec![labelled("c1", &route_labels("app.example.com", "http://web:80"))]).await?;
    wait_status(&master, "app.example.com", RouteStatus::Active).await?;
    let snapshot = cloud.emulator.snapshot();
    let tunnel = live_tunnels(&snapshot)[0].id.clone();
    // Someone repoints our rule (and only that) at another origin.
    let mut config = snapshot.configuration(&tunnel).context("no configuration")?.config.clone();
    for rule in &mut config.ingress {
        if rule.hostname.as_deref() == Some("app.example.com") {
            rule.service = "http://evil:666".into();
        }
    }
    cloud.emulator.seed_configuration(&tunnel, config)?;
    master.admin().await?.reconcile(ReconcileRequest {}).await?;
    assert_eq!(
        ingress(&cloud.emulator.snapshot(), &tunnel),
        vec![rule("app.example.com", "http://web:80"), catch_all()]
    );
    // A rule of ours removed outright comes back too.
    let mut config = cloud.emulator.snapshot().configuration(&tunnel).context("no configuration")?.config.clone();
    config.ingress.retain(|rule| rule.hostname.as_deref() != Some("app.example.com"));
    cloud.emulator.seed_configuration(&tunnel, config)?;
    master.admin().await?.reconcile(ReconcileRequest {}).await?;
    assert_eq!(
        ingress(&cloud.emulator.snapshot(), &tunnel),
        vec![rule("app.example.com", "http://web:80"), catch_all()]
    );
    Ok(())
}

/// The base URL (without `/client/v4`) of an offline master's built-in emulator, from its log.
fn offline_emulator_base(master: &Master) -> Result<String> {
    let url = master
        .logs
        .records("No CF_API_TOKEN: running OFFLINE. Tunnels, ingress and DNS go to the built-in Cloudflare emulator; nothing reaches Cloudflare.")
        .first()
        .and_then(|r| r.get("emulator").and_then(|e| e.as_str()).map(str::to_string))
        .context("the master did not say it runs offline")?;
    Ok(url.trim_end_matches("/client/v4").to_string())
}

/// The offline master's emulator token, from the data dir (0600).
fn offline_emulator_token(master: &Master) -> Result<String> {
    let path = master.data_dir.path().join("offline-emulator.token");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path)?.permissions());
    anyhow::ensure!(mode & 0o777 == 0o600, "{} is mode {:o}", path.display(), mode & 0o777);
    Ok(std::fs::read_to_string(&path)?.trim().to_string())
}

/// The offline master's emulator state, read with its token.
async fn offline_state(master: &Master) -> Result<Snapshot> {
    let base = offline_emulator_base(master)?;
    let response = reqwest::Client::new()
        .get(format!("{base}/__emulator/state"))
        .bearer_auth(offline_emulator_token(master)?)
        .send()
        .await?
        .error_for_status()?;
    Ok(response.json().await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_mode_routes_in_the_built_in_emulator() -> Result<()> {
    let master = Master::start(None, &[]).await?;
    let base = offline_emulator_base(&master)?;
    let agent = FakeAgent::join(&master, &master.join_token(1).await?, "a1", "").await?;
    agent.report(vec![labelled("c1", &route_labels("app.example.test", "http://web:80"))]).await?;
    let active = wait_status(&master, "app.example.test", RouteStatus::Active).await?;
    let tunnels = master.admin().await?.list_tunnels(ListTunnelsRequest::default()).await?.into_inner().tunnels;
    assert_eq!(tunnels.iter().map(|t| t.id.clone()).collect::<Vec<_>>(), vec![active.tunnel_id.clone()]);

    let state = offline_state(&master).await?;
    let text = serde_json::to_string(&state)?;
    assert!(
        text.contains("app.example.test") && text.contains(&format!("{}.cfargotunnel.com", active.tunnel_id)),
        "{text}"
    );
    // Its ingress rewritten behind the master's back (with the token, as the dashboard would):
    // a Reconcile puts the route's rule back.
    let mut config = state.configuration(&active.tunnel_id).context("no configuration")?.config.clone();
    for rule in &mut config.ingress {
        if rule.hostname.as_deref() == Some("app.example.test") {
            rule.service = "http://evil:666".into();
        }
    }
    reqwest::Client::new()
        .put(format!("{base}/__emulator/tunnels/{}/configuration", active.tunnel_id))
        .bearer_auth(offline_emulator_token(&master)?)
        .json(&serde_json::json!({ "config": config }))
        .send()
        .await?
        .error_for_status()?;
    master.admin().await?.reconcile(ReconcileRequest {}).await?;
    let repaired = offline_state(&master).await?;
    assert_eq!(ingress(&repaired, &active.tunnel_id), vec![rule("app.example.test", "http://web:80"), catch_all()]);

    // It listens on loopback and the Docker bridge's gateway, not on every interface (without a
    // Docker bridge: every interface, and the master says so).
    let port = emulator_port(&master)?;
    let listing = std::process::Command::new("ss").args(["-ltnH", &format!("sport = :{port}")]).output()?;
    let mut locals: Vec<String> = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().nth(3).map(str::to_string))
        .collect();
    locals.sort();
    let docker0 = std::process::Command::new("ip").args(["-4", "-o", "addr", "show", "docker0"]).output()?;
    let bridge = String::from_utf8_lossy(&docker0.stdout)
        .split_whitespace()
        .skip_while(|word| *word != "inet")
        .nth(1)
        .and_then(|cidr| cidr.split('/').next().map(str::to_string));
    match bridge {
        Some(ip) => {
            let mut expected = vec![format!("127.0.0.1:{port}"), format!("{ip}:{port}")];
            expected.sort();
            assert_eq!(locals, expected, "the emulator's listening sockets");
        }
        None => {
            assert_eq!(locals, vec![format!("0.0.0.0:{port}")], "the emulator's listening sockets");
            assert_eq!(master.logs.count("No Docker bridge (docker0) on this host: the emulator listens on every interface (its pages need its API token; the connector endpoint a tunnel token). Set --offline-emulator-listen to choose."), 1);
        }
    }
    // Without the token, the emulator's own pages are closed: they hold the master's account.
    let client = reqwest::Client::new();
    for (method, path) in [
        (reqwest::Method::GET, "/__emulator/info".to_string()),
        (reqwest::Method::GET, "/__emulator/state".to_string()),
        (reqwest::Method::PUT, format!("/__emulator/tunnels/{}/configuration", active.tunnel_id)),
        (reqwest::Method::POST, "/__emulator/faults".to_string()),
    ] {
        let answer = client.request(method.clone(), format!("{base}{path}")).body("{}").send().await?;
        assert_eq!(answer.status(), reqwest::StatusCode::FORBIDDEN, "{method} {path} without the token");
        let body: serde_json::Value = answer.json().await?;
        assert_eq!(body["errors"][0]["code"], 10000, "{method} {path}: {body}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_master_keeps_its_emulated_account_across_restarts() -> Result<()> {
    // A port of our own, the same after the restart (tokens carry it).
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let listen = format!("127.0.0.1:{port}");
    let mut master = Master::start(None, &["--offline-emulator-listen", &listen]).await?;
    let mut agent = FakeAgent::join(&master, &master.join_token(1).await?, "a1", "").await?;
    let app = labelled("c1", &route_labels("app.example.test", "http://web:80"));
    agent.report(vec![app.clone()]).await?;
    let active = wait_status(&master, "app.example.test", RouteStatus::Active).await?;
    let tunnel = active.tunnel_id.clone();
    let before = offline_state(&master).await?;
    assert_eq!(live_tunnels(&before).iter().map(|t| t.id.clone()).collect::<Vec<_>>(), vec![tunnel.clone()]);
    let record = before.dns_records_named("app.example.test").first().map(|r| r.id.clone()).context("no record")?;
    assert!(master.data_dir.path().join("offline-cloudflare.json").exists());

    master.restart().await?;
    let restored = master.logs.wait_for("Restored the offline Cloudflare account.", WAIT).await?;
    assert_eq!(restored.get("tunnels").and_then(|v| v.as_u64()), Some(1), "{restored}");
    assert_eq!(restored.get("records").and_then(|v| v.as_u64()), Some(1), "{restored}");
    agent.connect(&master).await?;
    agent.report(vec![app]).await?;
    master.admin().await?.reconcile(ReconcileRequest {}).await?;
    master.admin().await?.reconcile(ReconcileRequest {}).await?;

    let active = wait_status(&master, "app.example.test", RouteStatus::Active).await?;
    assert_eq!(active.tunnel_id, tunnel, "the route moved to another tunnel");
    let tunnels = master.admin().await?.list_tunnels(ListTunnelsRequest::default()).await?.into_inner().tunnels;
    assert_eq!(tunnels.iter().map(|t| t.id.clone()).collect::<Vec<_>>(), vec![tunnel.clone()]);
    let after = offline_state(&master).await?;
    assert_eq!(after.tunnels.len(), 1, "a second tunnel was created: {:?}", after.tunnels);
    assert_eq!(live_tunnels(&after)[0].id, tunnel);
    assert_eq!(after.zones, before.zones, "zone ids changed");
    let records: Vec<String> = after.dns_records_named("app.example.test").iter().map(|r| r.id.clone()).collect();
    assert_eq!(records, vec![record], "the DNS record was recreated");
    assert_eq!(ingress(&after, &tunnel), ingress(&before, &tunnel));
    assert_eq!(master.logs.count("Tunnel created."), 0, "a tunnel was created after the restart");
    let commands = master
        .admin()
        .await?
        .list_commands(dockflare::v1::ListCommandsRequest {
            agent_id: agent.id.clone(),
            page_size: 1000,
            ..Default::default()
        })
        .await?
        .into_inner()
        .commands;
    let starts = commands.iter().filter(|c| c.kind == "start_tunnel").count();
    assert_eq!(starts, 1, "the agent was told to start a tunnel again: {commands:?}");
    Ok(())
}

/// A Cloudflare that does not answer and one that refuses the token are told apart, in the
/// reconcile answer and the log, instead of both reading "the token is not valid".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_and_refused_cloudflare_are_told_apart() -> Result<()> {
    // Nothing listens on a port just released: no answer at all.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let cloud = cloud().await?;
    let unreachable = Master::start_with_env(
        None,
        &[],
        &[
            ("CF_API_TOKEN", "some-token"),
            ("CF_ACCOUNT_ID", cloud.emulator.account_id()),
            ("CF_API_URL", &format!("http://{closed}/client/v4")),
        ],
    )
    .await?;
    let refused = Master::start_with_env(
        None,
        &[],
        &[
            ("CF_API_TOKEN", "not-the-emulators-token"),
            ("CF_ACCOUNT_ID", cloud.emulator.account_id()),
            ("CF_API_URL", &cloud.emulator.base_url(cloud.addr)),
        ],
    )
    .await?;
    for (master, cause) in [(&unreachable, "unreachable (DNS/network)"), (&refused, "refused (token/permission)")] {
        let errors = master.admin().await?.reconcile(ReconcileRequest {}).await?.into_inner().errors;
        assert!(errors.iter().any(|e| e.starts_with(&format!("Cloudflare {cause}: "))), "{cause}: {errors:?}");
        let logged = master.logs.wait_for("Cloudflare work is waiting.", WAIT).await?;
        let reason = logged.get("reason").and_then(|r| r.as_str()).unwrap_or_default().to_string();
        assert!(reason.contains(cause), "{cause}: {logged}");
        assert!(!reason.contains("some-token") && !reason.contains("not-the-emulators-token"), "{reason}");
    }
    Ok(())
}

/// The emulator's public URL ("e") inside a tunnel token.
fn token_url(token: &str) -> Result<String> {
    use base64::Engine as _;
    let json: serde_json::Value =
        serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(token.trim())?)?;
    json.get("e").and_then(|e| e.as_str()).map(str::to_string).context("the token carries no \"e\"")
}

/// The port the offline master's emulator listens on, from its log.
fn emulator_port(master: &Master) -> Result<u16> {
    let base = offline_emulator_base(master)?;
    base.rsplit(':').next().and_then(|p| p.parse().ok()).with_context(|| format!("no port in {base}"))
}

/// A full reconcile pass, then the first tunnel's health.
async fn tunnel_health(master: &Master) -> Result<String> {
    let mut admin = master.admin().await?;
    admin.reconcile(ReconcileRequest {}).await?;
    let tunnels = admin.list_tunnels(ListTunnelsRequest::default()).await?.into_inner().tunnels;
    Ok(tunnels.first().map(|t| t.health.clone()).unwrap_or_default())
}

/// Offline mode: the emulator's address does not drift between starts of one data dir, and
/// when it must (its port is taken), the connectors are renewed with tokens that reach it; the
/// tunnel's health says whether its connector follows the configuration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_emulator_keeps_its_address_and_renews_tokens_when_it_moves() -> Result<()> {
    let mut master = Master::start(None, &[]).await?;
    let first_port = emulator_port(&master)?;
    let agent = FakeAgent::join(&master, &master.join_token(1).await?, "a1", "").await?;
    agent.report(vec![labelled("c1", &route_labels("app.example.test", "http://web:80"))]).await?;
    wait_status(&master, "app.example.test", RouteStatus::Active).await?;
    let tokens =
        eventually("a start_tunnel", WAIT, || async { Ok(Some(agent.tunnel_tokens()).filter(|t| !t.is_empty())) })
            .await?;
    assert_eq!(token_url(&tokens[0])?, format!("http://host.docker.internal:{first_port}/client/v4"));

    // The tunnel's health: no connector yet; then a connector (the local edge's call, with the
    // token) that follows; then one that stops following.
    assert!(tunnel_health(&master).await?.starts_with("no connector connected"));
    let base = offline_emulator_base(&master)?;
    let poll = |base: String, token: String| async move {
        let answer = reqwest::Client::new()
            .get(format!("{base}/__emulator/connector/configuration"))
            .query(&[("connector_id", "0b0c5f3e-4f7b-4a53-9a39-2c4f0f3c9e11")])
            .bearer_auth(token)
            .send()
            .await?;
        anyhow::ensure!(answer.status().is_success(), "connector call: {}", answer.status());
        Ok::<_, anyhow::Error>(())
    };
    poll(base.clone(), tokens[0].clone()).await?;
    let health = tunnel_health(&master).await?;
    assert!(health.starts_with("serving: 1 connector on configuration v"), "{health}");
    agent
        .report(vec![
            labelled("c1", &route_labels("app.example.test", "http://web:80")),
            labelled("c2", &route_labels("two.example.test", "http://two:80")),
        ])
        .await?;
    wait_status(&master, "two.example.test", RouteStatus::Active).await?;
    let health = tunnel_health(&master).await?;
    assert!(health.starts_with("connectors behind"), "a connector that did not fetch the new version: {health}");

    // Restart with the port free: the same address (even when it is not the default).
    master.restart().await?;
    assert_eq!(emulator_port(&master)?, first_port, "the emulator's address drifted");
    assert_eq!(master.logs.count("Connectors get new tunnel tokens (the emulator's address changed)."), 0);

    // Restart with the port taken: another address, and every agent gets a fresh token for it.
    master.kill9()?;
    let _taken = std::net::TcpListener::bind(("0.0.0.0", first_port))?;
    master.restart().await?;
    let second_port = emulator_port(&master)?;
    assert_ne!(second_port, first_port);
    master.logs.wait_for("Connectors get new tunnel tokens (the emulator's address changed).", WAIT).await?;
    let mut agent = agent;
    agent.connect(&master).await?;
    let renewed =
        eventually("a renewed start_tunnel", WAIT, || async { Ok(agent.tunnel_tokens().get(1).cloned()) }).await?;
    assert_eq!(token_url(&renewed)?, format!("http://host.docker.internal:{second_port}/client/v4"));
    let base = offline_emulator_base(&master)?;
    poll(base, renewed).await?;
    let health = tunnel_health(&master).await?;
    assert!(health.starts_with("serving: 1 connector on configuration v"), "{health}");

    // And the new address is the one kept from now on.
    drop(_taken);
    master.restart().await?;
    assert_eq!(emulator_port(&master)?, second_port, "the emulator's address drifted after moving");
    Ok(())
}
