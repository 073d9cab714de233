//! AdminService.WatchChanges over real mutual TLS: a snapshot, then the changes a container's
//! start and stop make; a resume from a revision after a reconnect (and the refusal of one the
//! master cannot serve); a watcher that does not read is cut off while another keeps
//! receiving; and a change through one master seen by a watcher on another (PostgreSQL).

use anyhow::{bail, Context, Result};
use dockflare::v1::{self, watch_changes_response::Object, ChangeType, ResourceKind, RouteStatus};
use dockflare_testsupport::{enroll_agent, labelled, route_labels, slow_reader_channel, Master, TestDatabase};
use std::time::Duration;
use tokio_stream::StreamExt;
use tonic::{Code, Streaming};

const WAIT: Duration = Duration::from_secs(30);

async fn watch(
    master: &Master,
    kinds: &[ResourceKind],
    resume_revision: u64,
) -> Result<Streaming<v1::WatchChangesResponse>> {
    let request = v1::WatchChangesRequest {
        kinds: kinds.iter().map(|k| *k as i32).collect(),
        agent_id: String::new(),
        resume_revision,
    };
    Ok(master.admin().await?.watch_changes(request).await.context("WatchChanges")?.into_inner())
}

async fn next(stream: &mut Streaming<v1::WatchChangesResponse>) -> Result<v1::WatchChangesResponse> {
    match tokio::time::timeout(WAIT, stream.next()).await {
        Err(_) => bail!("no message within {WAIT:?}"),
        Ok(None) => bail!("the watch ended"),
        Ok(Some(message)) => Ok(message.context("the watch failed")?),
    }
}

/// Reads until SYNCED: the snapshot (or what was missed), and the revision it is at.
async fn until_synced(
    stream: &mut Streaming<v1::WatchChangesResponse>,
) -> Result<(Vec<v1::WatchChangesResponse>, u64)> {
    let mut before = Vec::new();
    loop {
        let message = next(stream).await?;
        if message.r#type == ChangeType::Synced as i32 {
            return Ok((before, message.revision));
        }
        before.push(message);
    }
}

fn route_of(message: &v1::WatchChangesResponse) -> Option<&v1::Route> {
    match &message.object {
        Some(Object::Route(route)) => Some(route),
        _ => None,
    }
}

/// Reads until a message satisfies `wanted`; checks revisions only grow.
async fn until(
    stream: &mut Streaming<v1::WatchChangesResponse>,
    what: &str,
    mut wanted: impl FnMut(&v1::WatchChangesResponse) -> bool,
) -> Result<v1::WatchChangesResponse> {
    let mut last = 0;
    loop {
        let message = next(stream).await.with_context(|| format!("waiting for {what}"))?;
        // A snapshot comes in key order, each entry with the revision it last changed at, and
        // SYNCED carries the snapshot's revision (its newest entry's, say); changes after it only
        // grow.
        if message.r#type == ChangeType::Synced as i32 {
            assert!(message.revision >= last, "SYNCED at {} after {last}", message.revision);
            last = message.revision;
        } else if message.r#type != ChangeType::Snapshot as i32 {
            assert!(message.revision > last, "revisions only grow: {} after {last}", message.revision);
            last = message.revision;
        }
        if wanted(&message) {
            return Ok(message);
        }
    }
}

fn is_route(message: &v1::WatchChangesResponse, hostname: &str, status: RouteStatus) -> bool {
    message.r#type == ChangeType::Upsert as i32
        && route_of(message).is_some_and(|r| r.hostname == hostname && r.status == status as i32)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_then_the_changes_of_a_container_start_and_stop_then_a_resume() -> Result<()> {
    let master = Master::start(None, &["--grace-period-seconds", "600"]).await?;
    let mut agent = enroll_agent(&master, "watched").await?;
    agent.connect(&master).await?;
    let early = labelled("early", &route_labels("early.example.test", "http://early:80"));
    agent.start(early).await?;

    let mut stream = watch(&master, &[ResourceKind::Route, ResourceKind::Diagnostic], 0).await?;
    // The snapshot holds the route there already (once the reconciler saw it).
    let (snapshot, synced_at) = until_synced(&mut stream).await?;
    assert!(snapshot.iter().all(|m| m.r#type == ChangeType::Snapshot as i32 && m.revision <= synced_at));
    if !snapshot.iter().any(|m| route_of(m).is_some_and(|r| r.hostname == "early.example.test")) {
        until(&mut stream, "the early route", |m| is_route(m, "early.example.test", RouteStatus::Active)).await?;
    }

    // docker run: the route appears, with its revision and time; the typo is a diagnostic.
    let mut labels = route_labels("app.example.test", "http://app:80");
    labels.push(("dockflare.hostnme".into(), "typo.example.test".into()));
    let mut app = labelled("app", &labels);
    app.diagnostics.push(v1::LabelDiagnostic {
        label: "dockflare.hostnme".into(),
        value: "typo.example.test".into(),
        reason: "unknown key 'hostnme' (did you mean 'hostname'?)".into(),
    });
    agent.start(app.clone()).await?;
    let (mut active, mut diagnosed) = (None, false);
    while active.is_none() || !diagnosed {
        let message = until(&mut stream, "app ACTIVE and its diagnostic", |_| true).await?;
        diagnosed |= matches!(&message.object, Some(Object::Diagnostic(d)) if d.diagnostic.as_ref().is_some_and(|l| l.label == "dockflare.hostnme" && l.reason.contains("did you mean")));
        if is_route(&message, "app.example.test", RouteStatus::Active) {
            active = Some(message);
        }
    }
    let active = active.context("app ACTIVE")?;
    let route = route_of(&active).context("route")?;
    assert_eq!((route.revision, route.updated_at.is_some()), (active.revision, true), "{route:?}");
    assert_eq!(route.agent_id, agent.id);
    assert!(!active.key.is_empty() && active.kind == ResourceKind::Route as i32);

    // ListRoutes says the same revision.
    let listed = master.admin().await?.list_routes(v1::ListRoutesRequest::default()).await?.into_inner().routes;
    let listed = listed.iter().find(|r| r.hostname == "app.example.test").context("app in ListRoutes")?;
    assert!(listed.revision > 0 && listed.updated_at.is_some(), "{listed:?}");

    // docker stop: pending deletion, with its deadline.
    agent.stop(app).await?;
    let pending =
        until(&mut stream, "app PENDING_DELETION", |m| is_route(m, "app.example.test", RouteStatus::PendingDeletion))
            .await?;
    assert!(route_of(&pending).is_some_and(|r| r.delete_at.is_some()));
    let seen = pending.revision;

    // Disconnected, the client misses a change; resuming from its revision it gets it, then SYNCED.
    drop(stream);
    agent.start(labelled("late", &route_labels("late.example.test", "http://late:80"))).await?;
    let mut watched = watch(&master, &[ResourceKind::Route], 0).await?;
    until(&mut watched, "late ACTIVE", |m| {
        route_of(m).is_some_and(|r| r.hostname == "late.example.test" && r.status == RouteStatus::Active as i32)
    })
    .await?;
    drop(watched);
    let mut resumed = watch(&master, &[ResourceKind::Route], seen).await?;
    let (missed, _) = until_synced(&mut resumed).await?;
    assert!(missed.iter().all(|m| m.revision > seen), "only what came after {seen}");
    assert!(
        missed
            .iter()
            .any(|m| m.r#type == ChangeType::Upsert as i32
                && route_of(m).is_some_and(|r| r.hostname == "late.example.test")),
        "the resumed watch brings the missed route: {missed:?}"
    );

    // A revision the master cannot serve is refused with what to do.
    match watch(&master, &[], u64::MAX / 2).await {
        Err(error) => {
            let status = error.downcast_ref::<tonic::Status>().context("a gRPC status")?;
            assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
            assert!(status.message().contains("take a new snapshot"), "{status:?}");
        }
        Ok(_) => bail!("a resume from the future was accepted"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_that_does_not_read_is_cut_off_while_another_keeps_receiving() -> Result<()> {
    let master = Master::start(None, &["--watch-backlog", "2", "--max-routes-per-agent", "10000"]).await?;
    let mut agent = enroll_agent(&master, "busy").await?;
    agent.connect(&master).await?;
    // Enough objects that a snapshot alone fills a non-reading watcher's buffers.
    let containers: Vec<v1::Container> = (0..1000)
        .map(|i| labelled(&format!("c{i}"), &route_labels(&format!("r{i}.example.test"), "http://origin:80")))
        .collect();
    agent.report(containers).await?;
    let mut fast = watch(&master, &[ResourceKind::Route], 0).await?;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (snapshot, _) = until_synced(&mut fast).await?;
        if snapshot.len() >= 1000 {
            break;
        }
        drop(fast);
        if tokio::time::Instant::now() > deadline {
            bail!("the routes did not reach the feed ({} in the snapshot)", snapshot.len());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        fast = watch(&master, &[ResourceKind::Route], 0).await?;
    }
    let (cert, key) = (master.pki("admin.crt")?, master.pki("admin.key")?);
    let channel = slow_reader_channel(master.addr, &master.ca_pem()?, Some((&cert, &key))).await?;
    let mut slow = v1::admin_service_client::AdminServiceClient::new(channel)
        .watch_changes(v1::WatchChangesRequest { kinds: vec![ResourceKind::Route as i32], ..Default::default() })
        .await?
        .into_inner();
    // Changes, one feed batch each: the fast watcher sees every one.
    for i in 0..6 {
        let hostname = format!("new{i}.example.test");
        agent.start(labelled(&format!("new{i}"), &route_labels(&hostname, "http://origin:80"))).await?;
        until(&mut fast, &hostname, |m| route_of(m).is_some_and(|r| r.hostname == hostname)).await?;
    }
    // The slow one, reading at last, finds it was cut off, and why.
    let status = tokio::time::timeout(WAIT, async {
        loop {
            match slow.next().await {
                Some(Ok(_)) => continue,
                Some(Err(status)) => return Ok(status),
                None => bail!("the slow watch ended without a status"),
            }
        }
    })
    .await
    .context("the slow watcher was not cut off")??;
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("resume_revision"), "{status:?}");
    // … and the fast one still receives.
    agent.start(labelled("after", &route_labels("after.example.test", "http://origin:80"))).await?;
    until(&mut fast, "after", |m| route_of(m).is_some_and(|r| r.hostname == "after.example.test")).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_through_one_master_reaches_a_watcher_on_another() -> Result<()> {
    let database = TestDatabase::postgres().await?;
    let first = Master::start(Some(&database.url), &[]).await?;
    let pki = first.pki_dir();
    let (ca_cert, ca_key) = (pki.join("ca.crt"), pki.join("ca.key"));
    let second = Master::start(
        Some(&database.url),
        &["--ca-cert", ca_cert.to_str().context("path")?, "--ca-key", ca_key.to_str().context("path")?],
    )
    .await?;
    let mut on_second = watch(&second, &[ResourceKind::Route, ResourceKind::Agent], 0).await?;
    until_synced(&mut on_second).await?;
    let mut agent = enroll_agent(&first, "on-first").await?;
    agent.connect(&first).await?;
    agent.start(labelled("shared", &route_labels("shared.example.test", "http://shared:80"))).await?;
    let seen = until(&mut on_second, "the route made through the first master", |m| {
        route_of(m).is_some_and(|r| r.hostname == "shared.example.test" && r.agent_id == agent.id)
    })
    .await?;
    assert_eq!(seen.r#type, ChangeType::Upsert as i32);
    Ok(())
}
