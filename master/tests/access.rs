//! Cloudflare Access from labels, against the emulator over HTTP, with real master processes and
//! fake agents speaking the real protocol: every label form makes the application and policies a
//! DockFlare user expects; mistakes never publish a route unprotected (and keep the last good
//! state); what is not ours survives; a restart writes nothing; faults converge without
//! duplicates; a token without Access keeps routes without Access working; a dry run shows what
//! the pass then does.

mod support;

use anyhow::{bail, Context, Result};
use dockflare::v1::{ListRoutesRequest, PlanChangesRequest, ProposedContainer, Route, RouteStatus};
use dockflare_cloudflare::client::{CloudflareClient, CloudflareSettings};
use dockflare_cloudflare::types::{AccessApp, AccessAppRequest, AccessPolicyLink, AccessPolicyRequest};
use dockflare_emulator::{Emulator, EmulatorConfig, FaultSpec, Permission, RestrictedToken};
use dockflare_testsupport::fake_agent::{labelled, route_labels, FakeAgent};
use dockflare_testsupport::{eventually, Master};
use serde_json::json;
use std::net::SocketAddr;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);
/// A token that may do everything but Access.
const NO_ACCESS_TOKEN: &str = "token-without-access";

struct Cloud {
    emulator: Emulator,
    addr: SocketAddr,
}

async fn cloud() -> Result<Cloud> {
    let config = EmulatorConfig {
        zones: vec!["example.com".into()],
        restricted_tokens: vec![RestrictedToken::new(
            NO_ACCESS_TOKEN,
            &[Permission::TunnelEdit, Permission::ZoneRead, Permission::DnsEdit],
        )],
        ..EmulatorConfig::default()
    };
    let (emulator, addr) = Emulator::start(config, SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    Ok(Cloud { emulator, addr })
}

async fn master(cloud: &Cloud, token: &str) -> Result<Master> {
    Master::start_with_env(
        None,
        &["--cf-requests-per-5min", "100000"],
        &[
            ("CF_API_TOKEN", token),
            ("CF_ACCOUNT_ID", cloud.emulator.account_id()),
            ("CF_API_URL", &cloud.emulator.base_url(cloud.addr)),
            ("GRACE_PERIOD_SECONDS", "2"),
        ],
    )
    .await
}

/// The real client, as a person with a full token would use it (seeding hand-made objects).
fn client(cloud: &Cloud) -> Result<CloudflareClient> {
    Ok(CloudflareClient::new(CloudflareSettings {
        api_url: cloud.emulator.base_url(cloud.addr),
        token: cloud.emulator.api_token().to_string().into(),
        account_id: cloud.emulator.account_id().to_string(),
        requests_per_5_minutes: 100_000,
    })?)
}

async fn routes(master: &Master) -> Result<Vec<Route>> {
    let request = ListRoutesRequest { page_size: 1000, ..Default::default() };
    Ok(master.admin().await?.list_routes(request).await?.into_inner().routes)
}

async fn wait_route(master: &Master, hostname: &str, path: &str, status: RouteStatus) -> Result<Route> {
    eventually(&format!("{hostname}{path} {status:?}"), WAIT, || async {
        let routes = routes(master).await?;
        Ok(routes.into_iter().find(|r| r.hostname == hostname && r.path == path && r.status == status as i32))
    })
    .await
}

fn app<'a>(apps: &'a [AccessApp], domain: &str) -> Option<&'a AccessApp> {
    apps.iter().find(|a| a.domain == domain)
}

/// Access writes (POST, PUT, DELETE under /access/) the emulator has answered so far.
fn access_writes(cloud: &Cloud) -> Vec<String> {
    cloud
        .emulator
        .requests()
        .log
        .iter()
        .filter(|e| e.method != "GET" && e.path.contains("/access/") && e.status < 300)
        .map(|e| format!("{} {}", e.method, e.path))
        .collect()
}

fn with(labels: &[(&str, &str)], hostname: &str) -> Vec<(String, String)> {
    let mut all = route_labels(hostname, "http://web:80");
    all.extend(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    all
}

/// Every label form: keywords, a reusable policy by name and by id, groups, custom rules, the
/// settings, indexed routes and path routes. Then a restart writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_label_form_makes_the_application_and_policies_expected_and_a_restart_writes_nothing() -> Result<()> {
    let cloud = cloud().await?;
    let cf = client(&cloud)?;
    let team = cf
        .create_access_policy(&AccessPolicyRequest {
            name: "Team".into(),
            decision: "allow".into(),
            include: vec![json!({"email_domain": {"domain": "example.com"}})],
            ..Default::default()
        })
        .await?;
    let mut master = master(&cloud, cloud.emulator.api_token()).await?;
    let agent = FakeAgent::join(&master, &master.join_token(1).await?, "a1", "").await?;
    let mut indexed = vec![
        ("dockflare.enable".to_string(), "true".to_string()),
        ("dockflare.service".into(), "http://web:80".into()),
        ("dockflare.0.hostname".into(), "idx0.example.com".into()),
        ("dockflare.0.access.policy".into(), "bypass".into()),
        ("dockflare.1.hostname".into(), "idx1.example.com".into()),
    ];
    indexed.push(("dockflare.0.access.session_duration".into(), "30m".into()));
    let containers = vec![
        labelled("auth", &with(&[("dockflare.access.policy", "authenticate")], "auth.example.com")),
        labelled(
            "open",
            &with(
                &[
                    ("dockflare.access.policy", "bypass"),
                    ("dockflare.access.session_duration", "2h"),
                    ("dockflare.access.app_launcher_visible", "true"),
                    ("dockflare.access.name", "Open house"),
                ],
                "open.example.com",
            ),
        ),
        labelled("team", &with(&[("dockflare.access.groups", &format!("Team, {}", team.id))], "team.example.com")),
        labelled("idx", &indexed),
        labelled(
            "admin",
            &with(
                &[
                    ("dockflare.path", "/admin"),
                    ("dockflare.access.policy", "custom"),
                    (
                        "dockflare.access.custom_rules",
                        r#"[{"decision":"allow","include":[{"email":{"email":"ops@example.com"}}]}]"#,
                    ),
                ],
                "p.example.com",
            ),
        ),
    ];
    agent.report(containers.clone()).await?;
    for (host, path) in [
        ("auth.example.com", ""),
        ("open.example.com", ""),
        ("team.example.com", ""),
        ("idx0.example.com", ""),
        ("idx1.example.com", ""),
        ("p.example.com", "/admin"),
    ] {
        wait_route(&master, host, path, RouteStatus::Active).await?;
    }
    let apps = cf.list_access_apps().await?;
    let policies = cf.list_access_policies().await?;
    let policy_name = |id: &str| policies.iter().find(|p| p.id == id).map(|p| p.name.clone()).unwrap_or_default();
    let linked = |domain: &str| -> Vec<String> {
        app(&apps, domain).map(|a| a.policies.iter().map(|p| p.id.clone()).collect()).unwrap_or_default()
    };

    let auth = app(&apps, "auth.example.com").context("no application for auth.example.com")?;
    assert_eq!(auth.name, "DockFlare-auth.example.com");
    assert_eq!(auth.session_duration.as_deref(), Some("24h"));
    let members = policies.iter().find(|p| p.id == linked("auth.example.com")[0]).context("authenticate policy")?;
    assert_eq!(members.decision, "allow");
    assert_eq!(members.include, vec![json!({"email": {"email": "owner@example.com"}})]);

    let open = app(&apps, "open.example.com").context("no application for open.example.com")?;
    assert_eq!((open.name.as_str(), open.session_duration.as_deref()), ("Open house", Some("2h")));
    assert_eq!(open.app_launcher_visible, Some(true));
    assert!(policy_name(&linked("open.example.com")[0]).ends_with("-bypass"));

    assert_eq!(linked("team.example.com"), vec![team.id.clone()], "name and id are the same policy, linked once");
    assert!(app(&apps, "idx0.example.com").is_some_and(|a| a.session_duration.as_deref() == Some("30m")));
    assert!(app(&apps, "idx1.example.com").is_none(), "an indexed route without Access labels is public");
    let admin = app(&apps, "p.example.com/admin").context("a path route's application covers hostname/path")?;
    let rules = policies.iter().find(|p| p.id == admin.policies[0].id).context("custom rules policy")?;
    assert_eq!(rules.include, vec![json!({"email": {"email": "ops@example.com"}})]);
    assert_eq!(apps.len(), 5, "{apps:#?}");
    for app in &apps {
        assert!(app.tags.iter().any(|t| t.starts_with("dockflare-")), "ownership tag missing: {app:?}");
    }
    let routes = routes(&master).await?;
    let auth_route = routes.iter().find(|r| r.hostname == "auth.example.com").context("auth route")?;
    assert_eq!(auth_route.access, "access.policy=authenticate");

    // A restart with nothing changed: no Access write.
    let before = access_writes(&cloud);
    master.restart().await?;
    let agent = {
        let mut agent = agent;
        agent.connect(&master).await?;
        agent
    };
    agent.report(containers).await?;
    let report = master.admin().await?.reconcile(dockflare::v1::ReconcileRequest::default()).await?.into_inner();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    wait_route(&master, "auth.example.com", "", RouteStatus::Active).await?;
    assert_eq!(access_writes(&cloud), before, "a restart with nothing changed wrote to Access");
    Ok(())
}

/// A policy the operator defines (admin API) is synced to the account as ours, linked by name
/// from labels, and updated when its definition changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_policies_are_synced_and_named_by_labels() -> Result<()> {
    let cloud = cloud().await?;
    let master = master(&cloud, cloud.emulator.api_token()).await?;
    let put = |domain: &str| dockflare::v1::PutAccessPolicyRequest {
        name: "team".into(),
        decision: "allow".into(),
        include: vec![support::rule(json!({"email_domain": {"domain": domain}}))],
        ..Default::default()
    };
    master.admin().await?.put_access_policy(put("example.com")).await?;
    let agent = FakeAgent::join(&master, &master.join_token(1).await?, "a1", "").await?;
    agent.report(vec![labelled("t", &with(&[("dockflare.access.group", "team")], "t.example.com"))]).await?;
    wait_route(&master, "t.example.com", "", RouteStatus::Active).await?;
    let cf = client(&cloud)?;
    let app = app(&cf.list_access_apps().await?, "t.example.com").cloned().context("no application")?;
    let policies = cf.list_access_policies().await?;
    let team = policies.iter().find(|p| p.id == app.policies[0].id).context("the linked policy")?;
    assert!(team.name.ends_with("-team"), "{}", team.name);
    assert_eq!(team.include, vec![json!({"email_domain": {"domain": "example.com"}})]);

    master.admin().await?.put_access_policy(put("example.org")).await?;
    eventually("the synced policy follows its definition", WAIT, || async {
        let policies = cf.list_access_policies().await?;
        let now = policies.iter().find(|p| p.id == team.id).map(|p| p.include.clone());
        Ok((now == Some(vec![json!({"email_domain": {"domain": "example.org"}})])).then_some(()))
    })
    .await?;
    Ok(())
}

/// Mistakes never publish a route: an unknown policy, malformed custom rules and an unknown IdP
/// each withhold the route with a reason naming the label; a published route whose labels turn
/// bad keeps its last good Access state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mistakes_withhold_the_route_name_the_label_and_keep_the_last_good_state() -> Result<()> {
    let cloud = cloud().await?;
    let master = master(&cloud, cloud.emulator.api_token()).await?;
    let agent = FakeAgent::join(&master, &master.join_token(1).await?, "a1", "").await?;
    let good = labelled("good", &with(&[("dockflare.access.policy", "bypass")], "good.example.com"));
    let cases = [
        ("typo", vec![("dockflare.access.policy", "tem")], "dockflare.access.policy", "names no policy"),
        (
            "rules",
            vec![("dockflare.access.custom_rules", "[{\"decision\":")],
            "dockflare.access.custom_rules",
            "not valid JSON",
        ),
        (
            "idp",
            vec![("dockflare.access.policy", "bypass"), ("dockflare.access.allowed_idps", "okta")],
            "dockflare.access.allowed_idps",
            "One-time PIN",
        ),
        ("misspelt", vec![("dockflare.access.polcy", "bypass")], "dockflare.access.polcy", "did you mean"),
    ];
    let mut containers = vec![good.clone()];
    for (name, labels, _, _) in &cases {
        containers.push(labelled(name, &with(labels, &format!("{name}.example.com"))));
    }
    agent.report(containers).await?;
    wait_route(&master, "good.example.com", "", RouteStatus::Active).await?;
    for (name, _, label, words) in &cases {
        let route = wait_route(&master, &format!("{name}.example.com"), "", RouteStatus::Invalid).await?;
        assert!(route.reason.contains(label) && route.reason.contains(words), "{name}: {}", route.reason);
    }
    // What only the account can tell (the fake agent reports no label diagnostics of its own;
    // the real agent's are the labels' unit tests) is a diagnostic on its label, once.
    let request = dockflare::v1::ListDiagnosticsRequest { agent_id: agent.id.clone(), ..Default::default() };
    let listed = master.admin().await?.list_diagnostics(request).await?.into_inner().diagnostics;
    for (name, _, label, words) in cases.iter().filter(|c| c.0 == "typo" || c.0 == "idp") {
        let on_label: Vec<_> = listed
            .iter()
            .filter(|d| d.container_name == *name)
            .filter_map(|d| d.diagnostic.as_ref())
            .filter(|d| d.label == *label && d.reason.contains(words))
            .collect();
        assert_eq!(on_label.len(), 1, "{name}: {listed:#?}");
    }
    let snapshot = cloud.emulator.snapshot();
    for (name, _, _, _) in &cases {
        let host = format!("{name}.example.com");
        assert!(snapshot.dns_records_named(&host).is_empty(), "{host} got a DNS record");
    }
    let apps = client(&cloud)?.list_access_apps().await?;
    assert_eq!(apps.iter().map(|a| a.domain.as_str()).collect::<Vec<_>>(), vec!["good.example.com"]);
    let good_app = apps[0].clone();

    // The published route's labels turn bad (same container): it stays published, protected
    // as before, and says why.
    let bad = labelled("good", &with(&[("dockflare.access.policy", "nonexistent")], "good.example.com"));
    agent.report(vec![bad]).await?;
    let kept = eventually("the last good state is kept", WAIT, || async {
        let routes = routes(&master).await?;
        Ok(routes.into_iter().find(|r| r.hostname == "good.example.com" && r.reason.contains("last good")))
    })
    .await?;
    assert_eq!(kept.status, RouteStatus::Active as i32, "{kept:?}");
    assert!(kept.reason.contains("dockflare.access.policy"), "{}", kept.reason);
    assert_eq!(kept.access, "access.policy=bypass");
    let apps = client(&cloud)?.list_access_apps().await?;
    assert_eq!(apps, vec![good_app], "the application changed");
    assert_eq!(cloud.emulator.snapshot().dns_records_named("good.example.com").len(), 1);
    Ok(())
}

/// What is not ours survives every step: a hand-made application elsewhere, a policy attached
/// by hand to one of ours; a hand-made application on a routed hostname is a conflict.
/// Removing the container: after the grace, the route goes, then the application.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_made_applications_and_policies_survive_and_a_conflict_is_reported() -> Result<()> {
    let cloud = cloud().await?;
    let cf = client(&cloud)?;
    let hand = |domain: &str| AccessAppRequest {
        app_type: "self_hosted".into(),
        domain: domain.into(),
        name: format!("hand {domain}"),
        ..Default::default()
    };
    let elsewhere = cf.create_access_app(&hand("elsewhere.example.com")).await?;
    let taken = cf.create_access_app(&hand("taken.example.com")).await?;
    let break_glass = cf
        .create_access_policy(&AccessPolicyRequest {
            name: "Break glass".into(),
            decision: "allow".into(),
            include: vec![json!({"email": {"email": "root@example.com"}})],
            ..Default::default()
        })
        .await?;
    let master = master(&cloud, cloud.emulator.api_token()).await?;
    let agent = FakeAgent::join(&master, &master.join_token(1).await?, "a1", "").await?;
    let ours = labelled("ours", &with(&[("dockflare.access.policy", "bypass")], "ours.example.com"));
    let conflict = labelled("taken", &with(&[("dockflare.access.policy", "bypass")], "taken.example.com"));
    agent.report(vec![ours.clone(), conflict.clone()]).await?;
    wait_route(&master, "ours.example.com", "", RouteStatus::Active).await?;
    let conflicted = wait_route(&master, "taken.example.com", "", RouteStatus::Conflict).await?;
    assert!(
        conflicted.reason.contains("did not make it") && conflicted.reason.contains(&taken.id),
        "{}",
        conflicted.reason
    );
    assert!(cloud.emulator.snapshot().dns_records_named("taken.example.com").is_empty());

    // Attach a policy by hand to our application, then change our labels: it stays attached.
    let our_app = app(&cf.list_access_apps().await?, "ours.example.com").cloned().context("our application")?;
    let mut links: Vec<AccessPolicyLink> = our_app
        .policies
        .iter()
        .enumerate()
        .map(|(n, p)| AccessPolicyLink { id: p.id.clone(), precedence: n as i64 + 1 })
        .collect();
    links.push(AccessPolicyLink { id: break_glass.id.clone(), precedence: links.len() as i64 + 1 });
    let request = AccessAppRequest {
        app_type: "self_hosted".into(),
        domain: our_app.domain.clone(),
        name: our_app.name.clone(),
        tags: our_app.tags.clone(),
        policies: links,
        ..Default::default()
    };
    cf.update_access_app(&our_app.id, &request).await?;
    let renamed = labelled(
        "ours",
        &with(&[("dockflare.access.policy", "bypass"), ("dockflare.access.name", "Renamed")], "ours.example.com"),
    );
    agent.report(vec![renamed, conflict.clone()]).await?;
    let updated = eventually("our application renamed", WAIT, || async {
        Ok(app(&cf.list_access_apps().await?, "ours.example.com").filter(|a| a.name == "Renamed").cloned())
    })
    .await?;
    assert!(
        updated.policies.iter().any(|p| p.id == break_glass.id),
        "the hand-attached policy was dropped: {updated:?}"
    );

    // The container goes: after the grace period, the route, then our application.
    agent.report(vec![conflict]).await?;
    eventually("our route and application gone after the grace period", WAIT, || async {
        let routed = routes(&master).await?.iter().any(|r| r.hostname == "ours.example.com");
        let app_left = app(&cf.list_access_apps().await?, "ours.example.com").is_some();
        Ok((!routed && !app_left).then_some(()))
    })
    .await?;
    let log = cloud.emulator.requests().log;
    let last_config_put = log.iter().rposition(|e| e.method == "PUT" && e.path.ends_with("/configurations"));
    let app_delete = log.iter().rposition(|e| e.method == "DELETE" && e.path.contains("/access/apps/"));
    match (last_config_put, app_delete) {
        (Some(put), Some(delete)) => assert!(put < delete, "the application went before the route"),
        other => bail!("expected an ingress PUT then an application DELETE: {other:?}"),
    }
    let apps = cf.list_access_apps().await?;
    assert!(app(&apps, "elsewhere.example.com").is_some_and(|a| a.id == elsewhere.id));
    assert!(app(&apps, "taken.example.com").is_some_and(|a| a.id == taken.id && a.name == "hand taken.example.com"));
    assert!(cf.list_access_policies().await?.iter().any(|p| p.id == break_glass.id), "a hand-made policy was deleted");
    Ok(())
}

/// Removing every Access label from a running route makes it public, and its application stays
/// for the grace period before it is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_the_access_labels_keeps_the_application_for_the_grace_period() -> Result<()> {
    let cloud = cloud().await?;
    let master = master(&cloud, cloud.emulator.api_token()).await?;
    let agent = FakeAgent::join(&master, &master.join_token(1).await?, "a1", "").await?;
    agent.report(vec![labelled("web", &with(&[("dockflare.access.policy", "bypass")], "web.example.com"))]).await?;
    wait_route(&master, "web.example.com", "", RouteStatus::Active).await?;
    let cf = client(&cloud)?;
    let protected_app = app(&cf.list_access_apps().await?, "web.example.com").cloned().context("no application")?;

    // The same container, its Access labels gone (a Swarm service updated with --label-rm).
    let released_at = std::time::Instant::now();
    agent.report(vec![labelled("web", &route_labels("web.example.com", "http://web:80"))]).await?;
    eventually("the route public", WAIT, || async {
        let routes = routes(&master).await?;
        Ok(routes.into_iter().find(|r| r.hostname == "web.example.com" && r.access.is_empty()))
    })
    .await?;
    let still = app(&cf.list_access_apps().await?, "web.example.com").map(|a| a.id.clone());
    if released_at.elapsed() < Duration::from_secs(2) {
        assert_eq!(still, Some(protected_app.id.clone()), "the application went before the grace period");
    }
    eventually("the application deleted after the grace period", WAIT, || async {
        Ok(app(&cf.list_access_apps().await?, "web.example.com").is_none().then_some(()))
    })
    .await?;
    assert!(released_at.elapsed() >= Duration::from_secs(2), "deleted before the 2 s grace");
    assert_eq!(routes(&master).await?.iter().filter(|r| r.status == RouteStatus::Active as i32).count(), 1);
    Ok(())
}

/// 429s and 5xx on every call: the protected routes converge, one application per domain, one
/// policy per name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_converge_without_duplicate_applications_or_policies() -> Result<()> {
    let cloud = cloud().await?;
    for status in [429, 500] {
        cloud.emulator.inject_faults(FaultSpec {
            status,
            probability: 0.2,
            seed: Some(u64::from(status) + 7),
            ..FaultSpec::always(status)
        })?;
    }
    let master = master(&cloud, cloud.emulator.api_token()).await?;
    let agent = FakeAgent::join(&master, &master.join_token(1).await?, "a1", "").await?;
    let containers: Vec<_> = (0..6)
        .map(|n| {
            let policy = if n % 2 == 0 { "bypass" } else { "authenticate" };
            labelled(&format!("c{n}"), &with(&[("dockflare.access.policy", policy)], &format!("app{n}.example.com")))
        })
        .collect();
    agent.report(containers).await?;
    eventually("every protected route active despite faults", Duration::from_secs(120), || async {
        let routes = routes(&master).await?;
        Ok((routes.iter().filter(|r| r.status == RouteStatus::Active as i32).count() == 6).then_some(()))
    })
    .await?;
    cloud.emulator.clear_faults();
    let cf = client(&cloud)?;
    let apps = cf.list_access_apps().await?;
    let mut domains: Vec<&str> = apps.iter().map(|a| a.domain.as_str()).collect();
    domains.sort();
    domains.dedup();
    assert_eq!((apps.len(), domains.len()), (6, 6), "{apps:#?}");
    let policies = cf.list_access_policies().await?;
    let mut names: Vec<&str> = policies.iter().map(|p| p.name.as_str()).collect();
    names.sort();
    let count = names.len();
    names.dedup();
    assert_eq!(names.len(), count, "duplicate policies: {names:?}");
    assert_eq!(count, 2, "one bypass and one authenticate policy: {names:?}");
    if !cloud.emulator.requests().log.iter().any(|e| e.faulted && e.path.contains("/access/")) {
        bail!("no fault hit an Access call; the test proves nothing");
    }
    Ok(())
}

/// A token without the Access permission: routes without Access labels work; a protected one is
/// withheld, and the missing permission is named in its reason and the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_without_access_keeps_public_routes_working_and_names_the_permission() -> Result<()> {
    let cloud = cloud().await?;
    let master = master(&cloud, NO_ACCESS_TOKEN).await?;
    let agent = FakeAgent::join(&master, &master.join_token(1).await?, "a1", "").await?;
    let public = labelled("public", &route_labels("public.example.com", "http://web:80"));
    let secret = labelled("secret", &with(&[("dockflare.access.policy", "bypass")], "secret.example.com"));
    agent.report(vec![public, secret]).await?;
    wait_route(&master, "public.example.com", "", RouteStatus::Active).await?;
    let withheld = wait_route(&master, "secret.example.com", "", RouteStatus::Invalid).await?;
    assert!(withheld.reason.contains("Access: Apps and Policies"), "{}", withheld.reason);
    let snapshot = cloud.emulator.snapshot();
    assert_eq!(snapshot.dns_records_named("public.example.com").len(), 1);
    assert!(snapshot.dns_records_named("secret.example.com").is_empty());
    eventually("the log names the permission", WAIT, || async {
        Ok(master.logs_text().contains("Access: Apps and Policies").then_some(()))
    })
    .await?;
    Ok(())
}

/// A dry run with a container about to run shows the Access application, its policy, the
/// ingress rule and the DNS record; writes nothing; and the pass then does exactly that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_shows_what_the_pass_then_does_and_writes_nothing() -> Result<()> {
    let cloud = cloud().await?;
    let master = master(&cloud, cloud.emulator.api_token()).await?;
    let agent = FakeAgent::join(&master, &master.join_token(1).await?, "a1", "").await?;
    agent.report(vec![labelled("web", &route_labels("web.example.com", "http://web:80"))]).await?;
    wait_route(&master, "web.example.com", "", RouteStatus::Active).await?;
    let labels = with(&[("dockflare.access.policy", "authenticate")], "new.example.com");
    let writes_before = cloud.emulator.requests().log.iter().filter(|e| e.method != "GET").count();
    let plan = master
        .admin()
        .await?
        .plan_changes(PlanChangesRequest {
            containers: vec![ProposedContainer {
                agent_id: agent.id.clone(),
                name: "new".into(),
                labels: labels.iter().cloned().collect(),
                remove: false,
            }],
        })
        .await?
        .into_inner();
    assert!(plan.errors.is_empty(), "{:?}", plan.errors);
    let planned: Vec<(String, String, String)> =
        plan.changes.iter().map(|c| (c.resource.clone(), c.action.clone(), c.target.clone())).collect();
    let expected =
        |resource: &str, action: &str, target: &str| (resource.to_string(), action.to_string(), target.to_string());
    assert!(
        planned.iter().any(|c| c.0 == "access_policy" && c.1 == "create" && c.2.ends_with("-authenticate")),
        "{planned:?}"
    );
    assert!(planned.contains(&expected("access_application", "create", "new.example.com")), "{planned:?}");
    assert!(planned.contains(&expected("dns", "create", "new.example.com")), "{planned:?}");
    assert!(planned.iter().any(|c| c.0 == "ingress" && c.1 == "update"), "{planned:?}");
    assert!(planned.iter().any(|c| c.0 == "access_tag" && c.1 == "create"), "{planned:?}");
    assert_eq!(planned.len(), 5, "{planned:?}");
    assert!(plan.routes.iter().any(|r| r.hostname == "new.example.com" && r.status == RouteStatus::Active as i32));
    let writes_after = cloud.emulator.requests().log.iter().filter(|e| e.method != "GET").count();
    assert_eq!(writes_after, writes_before, "the dry run wrote to Cloudflare");
    assert!(routes(&master).await?.iter().all(|r| r.hostname != "new.example.com"), "the dry run stored a route");

    // Now for real: the pass makes the same writes.
    let log_start = cloud.emulator.requests().log.len();
    agent
        .report(vec![labelled("web", &route_labels("web.example.com", "http://web:80")), labelled("new", &labels)])
        .await?;
    wait_route(&master, "new.example.com", "", RouteStatus::Active).await?;
    let writes: Vec<String> = cloud.emulator.requests().log[log_start..]
        .iter()
        .filter(|e| e.method != "GET" && e.status < 300)
        .map(|e| e.route.clone())
        .collect();
    let kinds = |needle: &str| writes.iter().filter(|w| w.contains(needle)).count();
    let first = |needle: &str| writes.iter().position(|w| w.contains(needle));
    let order = (first("/access/policies"), first("/access/apps"), first("/configurations"), first("/dns_records"));
    assert!(
        matches!(order, (Some(p), Some(a), Some(i), Some(d)) if p < a && a < i && a < d),
        "the policy, then the application, before the ingress rule and the DNS record: {writes:?}"
    );
    assert_eq!(kinds("/access/policies"), 1, "{writes:?}");
    assert_eq!(kinds("/access/apps"), 1, "{writes:?}");
    assert_eq!(kinds("/configurations"), 1, "{writes:?}");
    assert_eq!(kinds("/dns_records"), 1, "{writes:?}");
    assert_eq!(kinds("/access/tags"), 1, "{writes:?}");
    assert_eq!(writes.len(), planned.len(), "{writes:?} against the plan {planned:?}");
    Ok(())
}
