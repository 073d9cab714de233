//! Every List call of the admin API pages alike, seen through the real master binary over
//! mutual TLS: `page_size` (default 100, at most 1000), an opaque `page_token` from the previous
//! page's `next_page_token` (empty on the last page), INVALID_ARGUMENT naming `page_token` for a
//! token the call did not issue; the filters; and the deprecated `limit` / `after_*` fields of
//! ListCommands and ListEvents still working.

use anyhow::{ensure, Context, Result};
use dockflare::v1::{
    self, AddManualRouteRequest, AdminRole, AgentStatus, Container, CreateJoinTokenRequest, LabelDiagnostic,
    ListAdminIdentitiesRequest, ListAgentsRequest, ListCommandsRequest, ListContainersRequest, ListDiagnosticsRequest,
    ListEventsRequest, ListJoinTokensRequest, ListRoutesRequest, ListTunnelsRequest, ReconcileRequest, Resync,
    RouteSource, RouteStatus, SendCommandRequest,
};
use dockflare_testsupport::fake_agent::{labelled, route_labels, FakeAgent};
use dockflare_testsupport::{eventually, Master};
use std::future::Future;
use std::time::Duration;
use tonic::Code;

const WAIT: Duration = Duration::from_secs(60);

/// Reads every page of a List call with `page_size` `size` through `call(size, token)` (items as
/// their keys, and the next token), checking each page's size; returns the keys in order.
async fn every_page<F, Fut>(what: &str, size: u32, mut call: F) -> Result<Vec<String>>
where
    F: FnMut(u32, String) -> Fut,
    Fut: Future<Output = Result<(Vec<String>, String), tonic::Status>>,
{
    let mut all = Vec::new();
    let mut token = String::new();
    for _ in 0..1000 {
        let (items, next) = call(size, token.clone()).await.with_context(|| format!("{what} page"))?;
        ensure!(items.len() <= size as usize, "{what}: {} items on a page of {size}", items.len());
        all.extend(items.iter().cloned());
        if next.is_empty() {
            return Ok(all);
        }
        ensure!(items.len() == size as usize, "{what}: a short page ({}) before the last", items.len());
        ensure!(next != token, "{what}: the same token twice");
        token = next;
    }
    anyhow::bail!("{what}: more than 1000 pages")
}

/// Checks the paging of one List call: the pages of 2 hold what one page of 1000 holds, in order
/// and once each (at least `at_least` items); a garbage token and `foreign` (a token of another
/// call) are refused naming page_token.
async fn pages_alike<F, Fut>(what: &str, at_least: usize, foreign: &str, mut call: F) -> Result<()>
where
    F: FnMut(u32, String) -> Fut,
    Fut: Future<Output = Result<(Vec<String>, String), tonic::Status>>,
{
    let (whole, next) = call(1000, String::new()).await.with_context(|| format!("{what} in one page"))?;
    ensure!(next.is_empty(), "{what}: a next_page_token after everything fit in one page");
    ensure!(whole.len() >= at_least, "{what}: {} items, expected at least {at_least}: {whole:?}", whole.len());
    let paged = every_page(what, 2, &mut call).await?;
    ensure!(paged == whole, "{what}: pages of 2 differ from one page:\n{paged:?}\n{whole:?}");
    for token in ["garbage", foreign] {
        match call(2, token.to_string()).await {
            Err(status) if status.code() == Code::InvalidArgument && status.message().starts_with("page_token: ") => {}
            other => anyhow::bail!("{what} with page_token {token:?}: {other:?}"),
        }
    }
    Ok(())
}

fn with_diagnostic(id: &str, hostname: &str) -> Container {
    let mut container = labelled(id, &route_labels(hostname, "http://web:80"));
    container.diagnostics.push(LabelDiagnostic {
        label: "dockflare.hostnme".into(),
        value: hostname.into(),
        reason: "unknown key 'hostnme' (did you mean 'hostname'?)".into(),
    });
    container
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_list_call_pages_alike_with_opaque_tokens() -> Result<()> {
    let master = Master::sqlite().await?;
    let admin = master.admin().await?;
    let a1 = FakeAgent::join(&master, &master.join_token_in_group(1, "edge").await?, "a1", "edge").await?;
    let a2 = FakeAgent::join(&master, &master.join_token_in_group(1, "edge").await?, "a2", "edge").await?;
    let a3 = FakeAgent::join(&master, &master.join_token(1).await?, "a3", "").await?;
    a1.report((1..=3).map(|i| with_diagnostic(&format!("c{i}"), &format!("r{i}.example.test"))).collect()).await?;
    a2.report(vec![with_diagnostic("c4", "r4.example.test")]).await?;
    a3.report(vec![labelled("c5", &route_labels("r5.example.test", "http://web:80"))]).await?;
    for i in 0..4 {
        let resync = v1::send_command_request::Kind::Resync(Resync { reason: format!("paging {i}") });
        admin.clone().send_command(SendCommandRequest { agent_id: a1.id.clone(), kind: Some(resync) }).await?;
    }
    for i in 0..3 {
        master.issue_identity(&format!("viewer-{i}"), AdminRole::Viewer).await?;
    }
    eventually("five label routes", WAIT, || async {
        let routes = admin.clone().list_routes(ListRoutesRequest { page_size: 1000, ..Default::default() }).await?;
        Ok((routes.into_inner().routes.len() == 5).then_some(()))
    })
    .await?;
    let manual = AddManualRouteRequest {
        hostname: "manual.example.test".into(),
        service: "http://origin:80".into(),
        tunnel_group: "edge".into(),
        ..Default::default()
    };
    admin.clone().add_manual_route(manual).await?;
    admin.clone().reconcile(ReconcileRequest {}).await?;
    eventually("a1's commands acknowledged (each an event)", WAIT, || async {
        let request = ListEventsRequest { agent_id: a1.id.clone(), page_size: 1000, ..Default::default() };
        Ok((master.admin().await?.list_events(request).await?.into_inner().events.len() >= 5).then_some(()))
    })
    .await?;
    // A token another call issued, to be refused by every other call.
    let agents_token = admin.clone().list_agents(ListAgentsRequest { page_size: 1, ..Default::default() }).await?;
    let foreign = agents_token.into_inner().next_page_token;
    ensure!(!foreign.is_empty(), "ListAgents of 3 agents by 1 gave no next_page_token");
    let routes_token = admin.clone().list_routes(ListRoutesRequest { page_size: 1, ..Default::default() }).await?;
    let routes_token = routes_token.into_inner().next_page_token;

    let c = admin.clone();
    pages_alike("ListJoinTokens", 3, &foreign, move |page_size, page_token| {
        let mut c = c.clone();
        async move {
            let page = c.list_join_tokens(ListJoinTokensRequest { page_size, page_token }).await?.into_inner();
            Ok((page.tokens.into_iter().map(|t| t.id).collect(), page.next_page_token))
        }
    })
    .await?;
    let c = admin.clone();
    pages_alike("ListAgents", 3, &routes_token, move |page_size, page_token| {
        let mut c = c.clone();
        async move {
            let request = ListAgentsRequest { page_size, page_token, ..Default::default() };
            let page = c.list_agents(request).await?.into_inner();
            Ok((page.agents.into_iter().map(|a| a.id).collect(), page.next_page_token))
        }
    })
    .await?;
    let (c, agent) = (admin.clone(), a1.id.clone());
    pages_alike("ListCommands", 5, &foreign, move |page_size, page_token| {
        let (mut c, agent_id) = (c.clone(), agent.clone());
        async move {
            let request = ListCommandsRequest { agent_id, page_size, page_token, ..Default::default() };
            let page = c.list_commands(request).await?.into_inner();
            Ok((page.commands.into_iter().map(|c| c.sequence.to_string()).collect(), page.next_page_token))
        }
    })
    .await?;
    let (c, agent) = (admin.clone(), a1.id.clone());
    pages_alike("ListEvents", 3, &foreign, move |page_size, page_token| {
        let (mut c, agent_id) = (c.clone(), agent.clone());
        async move {
            let request = ListEventsRequest { agent_id, page_size, page_token, ..Default::default() };
            let page = c.list_events(request).await?.into_inner();
            Ok((page.events.into_iter().map(|e| e.event_id.to_string()).collect(), page.next_page_token))
        }
    })
    .await?;
    let c = admin.clone();
    pages_alike("ListContainers", 5, &foreign, move |page_size, page_token| {
        let mut c = c.clone();
        async move {
            let request = ListContainersRequest { page_size, page_token, ..Default::default() };
            let page = c.list_containers(request).await?.into_inner();
            let key =
                |r: v1::ContainerRecord| format!("{}/{}", r.agent_id, r.container.map(|c| c.id).unwrap_or_default());
            Ok((page.containers.into_iter().map(key).collect(), page.next_page_token))
        }
    })
    .await?;
    let c = admin.clone();
    pages_alike("ListDiagnostics", 4, &foreign, move |page_size, page_token| {
        let mut c = c.clone();
        async move {
            let request = ListDiagnosticsRequest { page_size, page_token, ..Default::default() };
            let page = c.list_diagnostics(request).await?.into_inner();
            let key = |r: v1::DiagnosticRecord| format!("{}/{}", r.agent_id, r.container_id);
            Ok((page.diagnostics.into_iter().map(key).collect(), page.next_page_token))
        }
    })
    .await?;
    let c = admin.clone();
    pages_alike("ListRoutes", 6, &foreign, move |page_size, page_token| {
        let mut c = c.clone();
        async move {
            let request = ListRoutesRequest { page_size, page_token, ..Default::default() };
            let page = c.list_routes(request).await?.into_inner();
            Ok((page.routes.into_iter().map(|r| r.hostname).collect(), page.next_page_token))
        }
    })
    .await?;
    let c = admin.clone();
    pages_alike("ListTunnels", 2, &foreign, move |page_size, page_token| {
        let mut c = c.clone();
        async move {
            let request = ListTunnelsRequest { page_size, page_token, ..Default::default() };
            let page = c.list_tunnels(request).await?.into_inner();
            Ok((page.tunnels.into_iter().map(|t| t.key).collect(), page.next_page_token))
        }
    })
    .await?;
    let c = admin.clone();
    pages_alike("ListAdminIdentities", 3, &foreign, move |page_size, page_token| {
        let mut c = c.clone();
        async move {
            let request = ListAdminIdentitiesRequest { page_size, page_token, include_inactive: true };
            let page = c.list_admin_identities(request).await?.into_inner();
            Ok((page.identities.into_iter().map(|i| i.id).collect(), page.next_page_token))
        }
    })
    .await?;
    for name in ["team", "ops", "geo"] {
        let rule = prost_types::Struct {
            fields: [(
                "everyone".to_string(),
                prost_types::Value {
                    kind: Some(prost_types::value::Kind::StructValue(prost_types::Struct::default())),
                },
            )]
            .into(),
        };
        let put = v1::PutAccessPolicyRequest {
            name: name.into(),
            decision: "allow".into(),
            include: vec![rule],
            ..Default::default()
        };
        admin.clone().put_access_policy(put).await?;
    }
    let c = admin.clone();
    pages_alike("ListAccessPolicies", 3, &foreign, move |page_size, page_token| {
        let mut c = c.clone();
        async move {
            let page =
                c.list_access_policies(v1::ListAccessPoliciesRequest { page_size, page_token }).await?.into_inner();
            Ok((page.policies.into_iter().map(|p| p.name).collect(), page.next_page_token))
        }
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_hold_100_unless_asked_and_list_calls_filter() -> Result<()> {
    let master = Master::sqlite().await?;
    let mut admin = master.admin().await?;
    let a1 = FakeAgent::join(&master, &master.join_token_in_group(1, "edge").await?, "a1", "edge").await?;
    let a2 = FakeAgent::enroll(&master, &master.join_token_in_group(1, "edge").await?, "a2").await?;
    let a3 = FakeAgent::join(&master, &master.join_token(1).await?, "a3", "").await?;
    a1.report(vec![labelled("c1", &route_labels("one.example.test", "http://web:80"))]).await?;
    a3.report(vec![labelled("c3", &route_labels("three.example.test", "http://web:80"))]).await?;
    let manual = AddManualRouteRequest {
        hostname: "manual.example.test".into(),
        service: "http://origin:80".into(),
        tunnel_group: "edge".into(),
        ..Default::default()
    };
    admin.add_manual_route(manual).await?;
    eventually("three routes", WAIT, || async {
        let routes = master.admin().await?.list_routes(ListRoutesRequest::default()).await?.into_inner().routes;
        Ok((routes.len() == 3).then_some(()))
    })
    .await?;

    // 100 to a page unless asked; more on request (up to 1000).
    for _ in 0..98 {
        admin.create_join_token(CreateJoinTokenRequest { ttl_seconds: 600, ..Default::default() }).await?;
    }
    let first = admin.list_join_tokens(ListJoinTokensRequest::default()).await?.into_inner();
    assert_eq!(first.tokens.len(), 100, "the default page size");
    let rest = ListJoinTokensRequest { page_token: first.next_page_token, ..Default::default() };
    assert_eq!(admin.list_join_tokens(rest).await?.into_inner().tokens.len(), 1, "101 tokens in all");
    let big = admin.list_join_tokens(ListJoinTokensRequest { page_size: 5000, ..Default::default() }).await?;
    let big = big.into_inner();
    assert_eq!((big.tokens.len(), big.next_page_token.as_str()), (101, ""), "a page of up to 1000 on request");

    // ListRoutes: by agent, status, hostname (any case), source.
    let hostnames = |routes: Vec<v1::Route>| routes.into_iter().map(|r| r.hostname).collect::<Vec<_>>();
    let c = admin.clone();
    let listed = move |request: ListRoutesRequest| {
        let mut admin = c.clone();
        async move { Ok::<_, tonic::Status>(hostnames(admin.list_routes(request).await?.into_inner().routes)) }
    };
    let by_agent = ListRoutesRequest { agent_id: a3.id.clone(), ..Default::default() };
    assert_eq!(listed(by_agent).await?, ["three.example.test"]);
    let active = ListRoutesRequest { status: RouteStatus::Active as i32, ..Default::default() };
    assert_eq!(listed(active).await?, ["manual.example.test", "one.example.test", "three.example.test"]);
    let pending = ListRoutesRequest { status: RouteStatus::PendingDeletion as i32, ..Default::default() };
    assert!(listed(pending).await?.is_empty());
    let by_name = ListRoutesRequest { hostname: "One.Example.TEST".into(), ..Default::default() };
    assert_eq!(listed(by_name).await?, ["one.example.test"]);
    let manual_only = ListRoutesRequest { source: RouteSource::Manual as i32, ..Default::default() };
    assert_eq!(listed(manual_only).await?, ["manual.example.test"]);
    match admin.list_routes(ListRoutesRequest { status: 99, ..Default::default() }).await {
        Err(status) if status.code() == Code::InvalidArgument && status.message().starts_with("status: ") => {}
        other => anyhow::bail!("ListRoutes with status 99: {other:?}"),
    }

    // ListAgents: by tunnel group ("" for a tunnel of its own) and status; ListTunnels by agent.
    let c = admin.clone();
    let agent_ids = move |request: ListAgentsRequest| {
        let mut admin = c.clone();
        async move {
            let mut ids: Vec<String> =
                admin.list_agents(request).await?.into_inner().agents.into_iter().map(|a| a.id).collect();
            ids.sort();
            Ok::<_, tonic::Status>(ids)
        }
    };
    let mut edge = vec![a1.id.clone(), a2.id.clone()];
    edge.sort();
    assert_eq!(agent_ids(ListAgentsRequest { tunnel_group: Some("edge".into()), ..Default::default() }).await?, edge);
    assert_eq!(
        agent_ids(ListAgentsRequest { tunnel_group: Some(String::new()), ..Default::default() }).await?,
        vec![a3.id.clone()]
    );
    let offline = ListAgentsRequest { status: AgentStatus::Offline as i32, ..Default::default() };
    assert_eq!(agent_ids(offline).await?, vec![a2.id.clone()], "a2 enrolled but never registered");
    let tunnels = admin.list_tunnels(ListTunnelsRequest { agent_id: a3.id.clone(), ..Default::default() }).await?;
    let keys: Vec<String> = tunnels.into_inner().tunnels.into_iter().map(|t| t.key).collect();
    assert_eq!(keys, [format!("agent:{}", a3.id)]);

    // The deprecated fields still work; mixed with a page token they are refused.
    let c = admin.clone();
    let sequences = move |request: ListCommandsRequest| {
        let mut admin = c.clone();
        async move {
            let page = admin.list_commands(request).await?.into_inner();
            Ok::<_, tonic::Status>((
                page.commands.into_iter().map(|c| c.sequence).collect::<Vec<_>>(),
                page.next_page_token,
            ))
        }
    };
    for i in 0..3 {
        let resync = v1::send_command_request::Kind::Resync(Resync { reason: format!("filter {i}") });
        admin.send_command(SendCommandRequest { agent_id: a1.id.clone(), kind: Some(resync) }).await?;
    }
    #[allow(deprecated)]
    let old_style = ListCommandsRequest { agent_id: a1.id.clone(), after_sequence: 1, limit: 2, ..Default::default() };
    let (page, next) = sequences(old_style).await?;
    assert_eq!(page, [2, 3]);
    assert!(!next.is_empty(), "more commands follow");
    #[allow(deprecated)]
    let mixed =
        ListCommandsRequest { agent_id: a1.id.clone(), after_sequence: 1, page_token: next, ..Default::default() };
    match admin.list_commands(mixed).await {
        Err(status) if status.code() == Code::InvalidArgument && status.message().starts_with("page_token: ") => {}
        other => anyhow::bail!("ListCommands with after_sequence and page_token: {other:?}"),
    }
    eventually("a1's events", WAIT, || async {
        let request = ListEventsRequest { agent_id: a1.id.clone(), ..Default::default() };
        Ok((master.admin().await?.list_events(request).await?.into_inner().events.len() >= 3).then_some(()))
    })
    .await?;
    #[allow(deprecated)]
    let old_events = ListEventsRequest { agent_id: a1.id.clone(), after_event_id: 1, limit: 1, ..Default::default() };
    let events = admin.list_events(old_events).await?.into_inner();
    assert_eq!(events.events.iter().map(|e| e.event_id).collect::<Vec<_>>(), [2]);
    #[allow(deprecated)]
    let page_size_wins = ListEventsRequest { agent_id: a1.id.clone(), limit: 1, page_size: 2, ..Default::default() };
    assert_eq!(admin.list_events(page_size_wins).await?.into_inner().events.len(), 2);
    drop(a2);
    Ok(())
}
