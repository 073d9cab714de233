//! `dockflare watch -o json`: one JSON object per line, each flushed as it comes — a snapshot,
//! SYNCED, then an UPSERT for a manual route added after. Needs the master's WatchChanges.

use crate::support::Cli;
use anyhow::{bail, Context, Result};
use dockflare_testsupport::Master;
use serde_json::Value;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};

const WAIT: Duration = Duration::from_secs(20);

/// A running `dockflare watch`, read line by line.
struct Watch {
    child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Watch {
    async fn start(cli: &Cli, master: &Master, extra: &[&str]) -> Result<Watch> {
        let mut args = crate::support::identity_flags(master, &master.admin_cert_path(), &master.admin_key_path());
        args.push("watch".into());
        args.extend(extra.iter().map(Into::into));
        let mut child = cli.command(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
        let lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        Ok(Watch { child, lines })
    }

    /// The next line, or why there is none (with the watch's stderr when it ended).
    async fn next_line(&mut self, deadline: Instant, what: &str) -> Result<String> {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, self.lines.next_line()).await {
            Ok(Ok(Some(line))) => Ok(line),
            Ok(result) => {
                let mut stderr = String::new();
                if let Some(mut pipe) = self.child.stderr.take() {
                    tokio::io::AsyncReadExt::read_to_string(&mut pipe, &mut stderr).await?;
                }
                bail!("the watch ended before {what} ({result:?}); its stderr: {stderr}")
            }
            Err(_) => bail!("no {what} within {WAIT:?}"),
        }
    }
}

/// Adds a manual route and waits until the change feed has recorded it (a first watch sees it),
/// so that a watch started next has it in its snapshot.
async fn recorded_route(cli: &Cli, master: &Master, hostname: &str, service: &str) -> Result<()> {
    cli.as_admin(master, &["routes", "add", hostname, "--service", service, "--group", "edge"]).await?.ok()?;
    let mut first = Watch::start(cli, master, &["-o", "json", "--kind", "route"]).await?;
    until(&mut first, &mut Vec::new(), "the route in a first watch", |v| v["route"]["hostname"] == hostname).await?;
    first.child.kill().await?;
    Ok(())
}

/// Reads lines until one satisfies `wanted`; every line must be a JSON object.
async fn until(watch: &mut Watch, seen: &mut Vec<Value>, what: &str, wanted: impl Fn(&Value) -> bool) -> Result<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let line = watch.next_line(deadline, what).await.with_context(|| format!("saw {seen:#?}"))?;
        let value: Value = serde_json::from_str(&line).with_context(|| format!("not one JSON object: {line:?}"))?;
        anyhow::ensure!(value.is_object(), "not an object: {line}");
        seen.push(value.clone());
        if wanted(&value) {
            return Ok(value);
        }
    }
}

#[tokio::test]
async fn watch_prints_one_json_object_per_change() -> Result<()> {
    let mut master = Master::sqlite().await?;
    let cli = Cli::new()?;
    let _edge = crate::support::edge_member(&master).await?;
    recorded_route(&cli, &master, "before.example.test", "http://a:80").await?;

    let mut watch = Watch::start(&cli, &master, &["-o", "json", "--kind", "route"]).await?;
    let mut seen = Vec::new();

    let snapshot = until(&mut watch, &mut seen, "the snapshot of before.example.test", |v| {
        v["type"] == "CHANGE_TYPE_SNAPSHOT" && v["route"]["hostname"] == "before.example.test"
    })
    .await?;
    assert_eq!(snapshot["kind"], "RESOURCE_KIND_ROUTE", "{snapshot}");
    let synced = until(&mut watch, &mut seen, "SYNCED", |v| v["type"] == "CHANGE_TYPE_SYNCED").await?;
    assert!(synced["revision"].as_str().is_some_and(|r| r.parse::<u64>().is_ok()), "revisions are strings: {synced}");

    cli.as_admin(&master, &["routes", "add", "after.example.test", "--service", "http://b:80", "--group", "edge"])
        .await?
        .ok()?;
    let upsert = until(&mut watch, &mut seen, "the UPSERT of after.example.test", |v| {
        v["type"] == "CHANGE_TYPE_UPSERT" && v["route"]["hostname"] == "after.example.test"
    })
    .await?;
    assert_eq!(upsert["route"]["service"], "http://b:80", "{upsert}");
    assert!(watch.child.try_wait()?.is_none(), "the watch keeps running");

    // The master dies: the watch ends with exit code 3 and says where to resume.
    let last = upsert["revision"].as_str().context("revision")?.to_string();
    master.kill9()?;
    let status = tokio::time::timeout(WAIT, watch.child.wait()).await.context("the watch outlived its master")??;
    let mut stderr = String::new();
    if let Some(mut pipe) = watch.child.stderr.take() {
        tokio::io::AsyncReadExt::read_to_string(&mut pipe, &mut stderr).await?;
    }
    assert_eq!(status.code(), Some(3), "{stderr}");
    // The last revision it printed: that of the UPSERT, or of a later change to the route.
    let resume: u64 = stderr
        .split("dockflare watch --resume ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no resume hint: {stderr}"))?;
    assert!(resume >= last.parse::<u64>()?, "resume from {resume}, the UPSERT was at {last}: {stderr}");
    Ok(())
}

#[tokio::test]
async fn watch_for_people_prints_one_line_per_change() -> Result<()> {
    let master = Master::sqlite().await?;
    let cli = Cli::new()?;
    let _edge = crate::support::edge_member(&master).await?;
    recorded_route(&cli, &master, "people.example.test", "http://a:80").await?;
    let mut watch = Watch::start(&cli, &master, &["--kind", "route"]).await?;
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    while !seen.iter().any(|line: &String| line.contains("synced")) {
        let line = watch.next_line(deadline, "the synced line").await.with_context(|| format!("saw {seen:?}"))?;
        seen.push(line);
    }
    let snapshot = seen.iter().find(|l| l.contains("people.example.test")).with_context(|| format!("{seen:?}"))?;
    assert!(
        snapshot.contains("snapshot") && snapshot.contains("route") && snapshot.contains("http://a:80"),
        "{snapshot}"
    );
    watch.child.kill().await?;
    Ok(())
}
