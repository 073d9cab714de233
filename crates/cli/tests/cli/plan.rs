//! `dockflare plan`: a dry run against a real master — a proposed container's changes and
//! routes as a table and as JSON, nothing stored; `--remove` as if it stopped; a viewer may
//! plan; usage errors (exit 2) before connecting; an unknown agent is exit 7; a master that
//! cannot reach Cloudflare answers a plan with errors, printed on stderr, and exit 1.

use crate::support::{flags, Cli};
use anyhow::{Context, Result};
use dockflare_testsupport::{eventually, labelled, route_labels, FakeAgent, Master};
use serde_json::Value;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// Whether `list` has an item with these string fields.
fn has(list: &Value, pairs: &[(&str, &str)]) -> bool {
    list.as_array().is_some_and(|items| items.iter().any(|item| pairs.iter().all(|(k, v)| item[*k] == *v)))
}

#[tokio::test]
async fn a_plan_shows_a_proposed_container_and_stores_nothing() -> Result<()> {
    let master = Master::sqlite().await?;
    let cli = Cli::new()?;
    let agent = FakeAgent::join(&master, &master.join_token(1).await?, "planner", "").await?;
    let id = agent.id.as_str();
    agent.report(vec![labelled("web", &route_labels("app.example.test", "http://web:80"))]).await?;
    eventually("the reported state planned with no changes", WAIT, || async {
        cli.as_admin(&master, &["reconcile"]).await?;
        let plan = cli.as_admin(&master, &["plan", "-o", "json"]).await?.json()?;
        let settled = plan["changes"] == serde_json::json!([]) && plan["routes"] == serde_json::json!([]);
        Ok(settled.then_some(()))
    })
    .await?;
    let settled = cli.as_admin(&master, &["plan"]).await?;
    assert_eq!(settled.ok()?, "", "nothing to show");
    assert_eq!(settled.stderr, "No changes.\n");

    // A container about to run: labels from flags and a file, the flags winning.
    let file = cli.home.path().join("grafana.labels");
    std::fs::write(&file, "# grafana\ndockflare.enable=true\n\ndockflare.service=http://old:80\n")?;
    let labels_file = file.to_str().context("path")?;
    let proposal = [
        "plan",
        "--agent",
        id,
        "--name",
        "grafana",
        "--labels-file",
        labels_file,
        "--label",
        "dockflare.hostname=grafana.example.test",
        "--label",
        "dockflare.service=http://grafana:3000",
    ];
    let table = cli.as_admin(&master, &proposal).await?.ok()?.to_string();
    let mut lines = table.lines();
    let header = lines.next().context("no header")?;
    assert_eq!(header.split_whitespace().collect::<Vec<_>>(), ["RESOURCE", "ACTION", "TARGET", "DETAIL"], "{table}");
    assert!(table.lines().any(|l| l.starts_with("dns") && l.contains("create  grafana.example.test")), "{table}");
    assert!(table.lines().any(|l| l.starts_with("ingress") && l.contains("update")), "{table}");
    let routes = table.split_once("\nRoutes after the pass:\n").with_context(|| table.clone())?.1;
    assert!(routes.lines().next().is_some_and(|h| h.starts_with("ROUTE") && h.contains("STATUS")), "{table}");
    let row = routes.lines().find(|l| l.starts_with("grafana.example.test")).with_context(|| table.clone())?;
    assert_eq!(row.split_whitespace().nth(1), Some("active"), "{table}");

    let json = cli.as_admin(&master, &[&proposal[..], &["-o", "json"]].concat()).await?.json()?;
    assert!(has(&json["changes"], &[("resource", "dns"), ("action", "create"), ("target", "grafana.example.test")]));
    let route = &json["routes"][0];
    assert_eq!(route["hostname"], "grafana.example.test", "{json}");
    assert_eq!(route["service"], "http://grafana:3000", "the flag wins over the file: {json}");
    assert_eq!(route["status"], "ROUTE_STATUS_ACTIVE", "{json}");
    assert_eq!(json["errors"], serde_json::json!([]), "{json}");
    let stored = cli.as_admin(&master, &["routes", "-o", "json"]).await?.json()?;
    assert!(!has(&stored["routes"], &[("hostname", "grafana.example.test")]), "the plan stored a route: {stored}");

    // As if the reported container stopped.
    let json =
        cli.as_admin(&master, &["plan", "--agent", id, "--name", "web", "--remove", "-o", "json"]).await?.json()?;
    let pending = [("hostname", "app.example.test"), ("status", "ROUTE_STATUS_PENDING_DELETION")];
    assert!(has(&json["routes"], &pending), "{json}");
    let stored = cli.as_admin(&master, &["routes", "-o", "json"]).await?.json()?;
    assert!(has(&stored["routes"], &[("hostname", "app.example.test"), ("status", "ROUTE_STATUS_ACTIVE")]));

    // A viewer may plan.
    let out_dir = cli.home.path().join("ids");
    let issue =
        ["identities", "issue", "--name", "ro", "--role", "viewer", "--out-dir", out_dir.to_str().context("path")?];
    cli.as_admin(&master, &issue).await?.ok()?;
    let (cert, key) = (out_dir.join("ro.crt"), out_dir.join("ro.key"));
    cli.as_identity(&master, &cert, &key, &[&proposal[..], &["-o", "json"]].concat()).await?.json()?;

    // An unknown agent is exit 7, in the master's words.
    let unknown = cli.as_admin(&master, &["plan", "--agent", "no-such-agent", "--name", "grafana"]).await?;
    let stderr = unknown.failed_with(7)?;
    assert!(stderr.contains("PlanChanges: not found: containers[0].agent_id: no agent \"no-such-agent\""), "{stderr}");
    Ok(())
}

#[tokio::test]
async fn usage_errors_are_exit_2_before_connecting() -> Result<()> {
    let master = Master::sqlite().await?;
    let cli = Cli::new()?;
    // Nothing listens there: a command that connected would end with exit 3.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let url = format!("https://{closed}");
    let run = |args: &'static [&'static str]| {
        let mut all = flags(&url, &master.ca_cert_path(), &master.admin_cert_path(), &master.admin_key_path());
        all.extend(args.iter().map(Into::into));
        let cli = &cli;
        async move { cli.run(&all).await }
    };
    let stderr =
        run(&["plan", "--agent", "a1", "--name", "g", "--label", "grafana"]).await?.failed_with(2)?.to_string();
    assert!(stderr.contains("'grafana'") && stderr.contains("--label"), "{stderr}");
    let stderr = run(&["plan", "--name", "g", "--remove"]).await?.failed_with(2)?.to_string();
    assert!(stderr.contains("--agent"), "{stderr}");
    let stderr = run(&["plan", "--label", "a=b"]).await?.failed_with(2)?.to_string();
    assert!(stderr.contains("--agent"), "{stderr}");
    let stderr = run(&["plan", "--agent", "a1"]).await?.failed_with(2)?.to_string();
    assert!(stderr.contains("--name"), "{stderr}");
    let stderr =
        run(&["plan", "--agent", "a1", "--name", "g", "--labels-file", "nowhere"]).await?.failed_with(2)?.to_string();
    assert!(stderr.contains("--labels-file: cannot read nowhere"), "{stderr}");
    std::fs::write(cli.home.path().join("bad.labels"), "dockflare.enable=true\ngrafana\n")?;
    let stderr = run(&["plan", "--agent", "a1", "--name", "g", "--labels-file", "bad.labels"])
        .await?
        .failed_with(2)?
        .to_string();
    assert!(stderr.contains("--labels-file bad.labels:2: \"grafana\" is not KEY=VALUE"), "{stderr}");
    // The same flags, well formed, do try the master.
    run(&["plan", "--agent", "a1", "--name", "g"]).await?.failed_with(3)?;
    Ok(())
}

#[tokio::test]
async fn a_plan_that_cannot_reach_cloudflare_prints_its_errors_and_ends_with_exit_1() -> Result<()> {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let api = format!("http://{closed}/client/v4");
    let env = [("CF_API_TOKEN", "some-token"), ("CF_ACCOUNT_ID", "account-1"), ("CF_API_URL", api.as_str())];
    let master = Master::start_with_env(None, &[], &env).await?;
    let cli = Cli::new()?;
    let run = cli.as_admin(&master, &["plan"]).await?;
    let stderr = run.failed_with(1)?;
    assert!(stderr.contains("error: Cloudflare unreachable (DNS/network): "), "{stderr}");
    assert!(stderr.contains("dockflare: the plan is incomplete: it met 1 error(s)"), "{stderr}");
    let run = cli.as_admin(&master, &["plan", "-o", "json"]).await?;
    run.failed_with(1)?;
    let json: Value = serde_json::from_str(&run.stdout).with_context(|| run.stdout.clone())?;
    let errors = json["errors"].as_array().context("errors")?;
    assert!(errors.iter().any(|e| e.as_str().is_some_and(|e| e.starts_with("Cloudflare unreachable"))), "{json}");
    Ok(())
}
