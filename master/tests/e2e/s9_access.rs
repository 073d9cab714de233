//! Scenario 9: Cloudflare Access from labels, end to end. A plan made before `docker run` shows
//! the writes the pass then makes; `docker run` with `dockflare.access.policy=authenticate`
//! gives the hostname an Access application before its route goes live, and the local edge
//! refuses an anonymous request (the login redirect), refuses an identity the policy does not
//! allow (403) and serves the account's member; `docker stop`: after the grace period the route
//! goes, then the application.

use crate::harness::*;
use anyhow::{bail, Context, Result};
use dockflare::v1::{PlanChangesRequest, ProposedContainer, RouteStatus};
use dockflare_testsupport::{docker, eventually, unique};
use std::collections::BTreeMap;
use std::time::Duration;

const GRACE_SECONDS: u64 = 8;
/// The emulator's test identity header (the local edge's stand-in for a signed-in browser).
const IDENTITY: &str = "Cf-Access-Test-Identity";

/// The writes the emulator answered since `from` (its request log), as (resource, action).
fn writes_since(cloud: &Cloud, from: usize) -> Vec<(String, String)> {
    let log = cloud.emulator.requests().log;
    log.get(from..)
        .unwrap_or_default()
        .iter()
        .filter(|e| e.method != "GET" && e.status < 300)
        .filter_map(|e| {
            let resource = if e.route.contains("/access/tags") {
                "access_tag"
            } else if e.route.contains("/access/policies") {
                "access_policy"
            } else if e.route.contains("/access/apps") {
                "access_application"
            } else if e.route.ends_with("/configurations") {
                "ingress"
            } else if e.route.contains("/dns_records") {
                "dns"
            } else {
                return None;
            };
            let action = match e.method.as_str() {
                "POST" => "create",
                "PUT" | "PATCH" => "update",
                "DELETE" => "delete",
                _ => return None,
            };
            Some((resource.to_string(), action.to_string()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protected_container_is_refused_anonymously_served_identified_and_removed_route_first() -> Result<()> {
    require_rig();
    let cloud = Cloud::start().await?;
    let master = cloud.master(None, GRACE_SECONDS, &[]).await?;
    let mut agent = EdgeAgent::start(&[master.url()], &master.join_token(1).await?, AgentOptions::default()).await?;
    agent.edge.wait_up(WAIT).await.map_err(|e| e.context(agent.diagnostics()))?;
    let origin = unique("secret");
    let hostname = format!("{origin}.{ZONE}");

    // The plan of the container about to run, before it runs.
    let labels: BTreeMap<String, String> = [
        (agent.scope_label.split_once('=').map(|(k, v)| (k.to_string(), v.to_string()))),
        Some(("dockflare.enable".into(), "true".into())),
        Some(("dockflare.hostname".into(), hostname.clone())),
        Some(("dockflare.service".into(), format!("http://{origin}:80"))),
        Some(("dockflare.access.policy".into(), "authenticate".into())),
    ]
    .into_iter()
    .flatten()
    .collect();
    let plan = master
        .admin()
        .await?
        .plan_changes(PlanChangesRequest {
            containers: vec![ProposedContainer {
                agent_id: agent.id.clone(),
                name: origin.clone(),
                labels: labels.into_iter().collect(),
                remove: false,
            }],
        })
        .await?
        .into_inner();
    if !plan.errors.is_empty() {
        bail!("the plan has errors: {:?}", plan.errors);
    }
    let mut planned: Vec<(String, String)> =
        plan.changes.iter().map(|c| (c.resource.clone(), c.action.clone())).collect();
    assert!(planned.contains(&("access_application".into(), "create".into())), "{planned:?}");
    let log_start = cloud.emulator.requests().log.len();

    agent.run_origin(&origin, &hostname, &["--label", "dockflare.access.policy=authenticate"])?;
    let active = eventually(&format!("{hostname} active"), WAIT, || async {
        Ok(route(&master, &hostname).await?.filter(|r| r.status == RouteStatus::Active as i32))
    })
    .await
    .map_err(|e| e.context(agent.diagnostics()))?;
    assert_eq!(active.access, "access.policy=authenticate");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .build()
        .context("HTTP client")?;
    let get = |identity: Option<&'static str>| {
        let request = client.get(format!("{}/", agent.edge.url)).header(reqwest::header::HOST, hostname.clone());
        let request = match identity {
            Some(email) => request.header(IDENTITY, email),
            None => request,
        };
        async move {
            let response = request.send().await?;
            let status = response.status().as_u16();
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            Ok::<_, anyhow::Error>((status, location, response.text().await.unwrap_or_default()))
        }
    };
    // The edge follows Access changes by long-poll: the first protected answer may take a moment.
    let (_, location, _) = eventually("an anonymous request gets the login redirect", WAIT, || async {
        let answer = get(None).await?;
        Ok((answer.0 == 302).then_some(answer))
    })
    .await
    .map_err(|e| e.context(agent.diagnostics()))?;
    assert!(location.contains("cloudflareaccess.com/cdn-cgi/access/login/"), "{location}");
    let (status, _, _) = get(Some("stranger@example.org")).await?;
    assert_eq!(status, 403, "an identity the policy does not allow");
    let (status, _, body) = get(Some("owner@example.com")).await?;
    assert_eq!(status, 200, "the account's member: {body}");
    assert!(body.contains(&origin), "the origin answered: {body}");

    // The pass made what the plan showed (one write each, nothing else).
    let mut made = writes_since(&cloud, log_start);
    planned.retain(|(resource, _)| resource != "connector");
    planned.sort();
    made.sort();
    assert_eq!(made, planned, "the pass's writes against the plan");

    // Stopped: the route stays for the grace period (still protected), then the route goes and
    // the application after it.
    docker(&["stop", "--time", "1", &origin])?;
    let gone_from = cloud.emulator.requests().log.len();
    let within = Duration::from_secs(GRACE_SECONDS) + WAIT;
    eventually("the route and then its application gone", within, || async {
        let routed = route(&master, &hostname).await?.is_some();
        let apps = cloud.snapshot().access_apps;
        let app_left = apps.iter().any(|a| a.get("domain").and_then(|d| d.as_str()) == Some(hostname.as_str()));
        Ok((!routed && !app_left).then_some(()))
    })
    .await
    .map_err(|e| e.context(agent.diagnostics()))?;
    let removal = writes_since(&cloud, gone_from);
    let ingress = removal.iter().position(|w| w.0 == "ingress");
    let app = removal.iter().position(|w| w == &("access_application".to_string(), "delete".to_string()));
    match (ingress, app) {
        (Some(ingress), Some(app)) => assert!(ingress < app, "the application went before the route: {removal:?}"),
        _ => bail!("expected the ingress update, then the application's delete: {removal:?}"),
    }
    expect_gone(&cloud, &master, &agent.edge, &hostname, WAIT).await?;
    assert_no_duplicates(&cloud.snapshot())?;
    Ok(())
}
