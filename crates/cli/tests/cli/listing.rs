//! Reading and writing the fleet: agents and routes as tables and JSON, manual routes added and
//! removed, join tokens (the secret on stdout only, once), completion and help.

use crate::support::Cli;
use anyhow::{ensure, Context, Result};
use dockflare_testsupport::{eventually, labelled, route_labels, FakeAgent, Master};
use serde_json::Value;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

fn find<'a>(list: &'a Value, field: &str, value: &str) -> Option<&'a Value> {
    list.as_array()?.iter().find(|item| item[field] == value)
}

#[tokio::test]
async fn agents_and_routes_are_listed_as_tables_and_json() -> Result<()> {
    let master = Master::sqlite().await?;
    let cli = Cli::new()?;
    let token = master.join_token(1).await?;
    let agent = FakeAgent::join(&master, &token, "web", "").await?;
    let mut typo = labelled("typo", &[("dockflare.enable".into(), "true".into())]);
    typo.diagnostics = vec![dockflare::v1::LabelDiagnostic {
        label: "dockflare.hostnme".into(),
        value: "x.example.test".into(),
        reason: "unknown key 'hostnme' (did you mean 'hostname'?)".into(),
    }];
    agent.report(vec![labelled("web", &route_labels("app.example.test", "http://web:80")), typo]).await?;

    let agents = eventually("the agent listed online", WAIT, || async {
        let run = cli.as_admin(&master, &["agents", "-o", "json"]).await?;
        let json = run.json()?;
        Ok(find(&json["agents"], "id", &agent.id).filter(|a| a["status"] == "AGENT_STATUS_ONLINE").cloned())
    })
    .await?;
    assert_eq!(agents["connected"], true, "{agents}");
    let table = cli.as_admin(&master, &["agents"]).await?.ok()?.to_string();
    let header = table.lines().next().context("no header")?;
    assert!(header.starts_with("ID") && header.contains("STATUS") && header.contains("LAST SEEN"), "{table}");
    let row = table.lines().find(|line| line.starts_with(&agent.id)).with_context(|| format!("no row:\n{table}"))?;
    assert!(row.contains("online") && row.contains("yes") && row.contains("standalone"), "{row}");
    assert!(!table.contains('\x1b'), "no colour when stdout is not a terminal: {table:?}");

    let route = eventually("the labelled route listed active", WAIT, || async {
        let json = cli.as_admin(&master, &["routes", "-o", "json"]).await?.json()?;
        Ok(find(&json["routes"], "hostname", "app.example.test")
            .filter(|r| r["status"] == "ROUTE_STATUS_ACTIVE")
            .cloned())
    })
    .await?;
    assert_eq!(route["source"], "ROUTE_SOURCE_LABELS", "{route}");
    assert_eq!(route["agent_id"], agent.id.as_str(), "{route}");
    let table = cli.as_admin(&master, &["routes"]).await?.ok()?.to_string();
    let row = table.lines().find(|line| line.starts_with("app.example.test")).with_context(|| table.clone())?;
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[..5], ["app.example.test", "-", "http://web:80", "active", "labels"], "{table}");
    assert!(row.contains(&agent.id) && row.contains("web"), "{row}");

    // Colour on a terminal only, and not with NO_COLOR.
    let mut args = crate::support::identity_flags(&master, &master.admin_cert_path(), &master.admin_key_path());
    args.push("agents".into());
    let coloured = cli.run_on_terminal(&args, &[]).await?;
    assert!(coloured.ok()?.contains("\x1b[32monline\x1b[0m"), "{:?}", coloured.stdout);
    let plain = cli.run_on_terminal(&args, &[("NO_COLOR", "1")]).await?;
    assert!(plain.ok()?.contains("online") && !plain.stdout.contains('\x1b'), "{:?}", plain.stdout);

    // What the agent reports: its containers, and the label problems in them.
    let containers = cli.as_admin(&master, &["containers", "--agent", &agent.id, "-o", "json"]).await?.json()?;
    let names: Vec<&str> = containers["containers"]
        .as_array()
        .context("containers")?
        .iter()
        .filter_map(|c| c["container"]["name"].as_str())
        .collect();
    assert_eq!(names.len(), 2, "{containers}");
    assert!(names.contains(&"web") && names.contains(&"typo"), "{containers}");
    let problems = eventually("the label problem listed", WAIT, || async {
        let table = cli.as_admin(&master, &["diagnostics"]).await?.ok()?.to_string();
        Ok(table.contains("dockflare.hostnme").then_some(table))
    })
    .await?;
    let row = problems.lines().find(|l| l.contains("dockflare.hostnme")).context("row")?;
    assert!(row.starts_with(&agent.id) && row.contains("typo") && row.contains("did you mean 'hostname'"), "{row}");

    // One agent's routes, and `agents get` of it.
    let mine = cli.as_admin(&master, &["routes", "--agent", &agent.id, "-o", "json"]).await?.json()?;
    assert_eq!(mine["routes"].as_array().map(Vec::len), Some(1), "{mine}");
    let details = cli.as_admin(&master, &["agents", "get", &agent.id]).await?.ok()?.to_string();
    assert!(details.contains("status") && details.contains("online") && details.contains("fake-host"), "{details}");
    Ok(())
}

#[tokio::test]
async fn a_manual_route_is_added_then_removed() -> Result<()> {
    let master = Master::sqlite().await?;
    let cli = Cli::new()?;
    let _edge = crate::support::edge_member(&master).await?;
    let added = cli
        .as_admin(
            &master,
            &[
                "routes",
                "add",
                "manual.example.test",
                "--service",
                "http://origin:8080",
                "--path",
                "/api",
                "--group",
                "edge",
                "-o",
                "json",
            ],
        )
        .await?
        .json()?;
    let route = &added["route"];
    assert_eq!(route["hostname"], "manual.example.test", "{added}");
    assert_eq!(route["path"], "/api", "{added}");
    assert_eq!(route["source"], "ROUTE_SOURCE_MANUAL", "{added}");

    let listed = cli.as_admin(&master, &["routes", "-o", "json"]).await?.json()?;
    let route = find(&listed["routes"], "hostname", "manual.example.test").with_context(|| listed.to_string())?;
    assert_eq!(route["service"], "http://origin:8080");
    let table = cli.as_admin(&master, &["routes"]).await?.ok()?.to_string();
    assert!(
        table.lines().any(|l| l.starts_with("manual.example.test") && l.contains("/api") && l.contains("manual")),
        "{table}"
    );

    // The master's own words for an invalid field, with exit code 6.
    let invalid = cli
        .as_admin(&master, &["routes", "add", "bad.example.test", "--service", "nonsense", "--group", "edge"])
        .await?;
    let stderr = invalid.failed_with(6)?;
    assert!(stderr.contains("AddManualRoute: invalid argument: service"), "{stderr}");

    let removed = cli.as_admin(&master, &["routes", "rm", "manual.example.test", "--path", "/api"]).await?;
    assert_eq!(removed.ok()?, "deleted manual route manual.example.test/api\n");
    let listed = cli.as_admin(&master, &["routes", "-o", "json"]).await?.json()?;
    ensure!(find(&listed["routes"], "hostname", "manual.example.test").is_none(), "still listed: {listed}");
    let again = cli.as_admin(&master, &["routes", "rm", "manual.example.test", "--path", "/api"]).await?;
    let stderr = again.failed_with(7)?;
    assert!(stderr.contains("not found") && stderr.contains("manual.example.test"), "{stderr}");
    Ok(())
}

#[tokio::test]
async fn a_join_token_is_printed_once_and_alone() -> Result<()> {
    let master = Master::sqlite().await?;
    let cli = Cli::new()?;
    let created = cli
        .as_admin(&master, &["tokens", "create", "--ttl", "1h", "--max-uses", "3", "--description", "cli test"])
        .await?;
    let stdout = created.ok()?;
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "only the token on stdout: {stdout:?}");
    let token = lines[0];
    assert!(token.starts_with("DFJT-"), "{token}");
    assert!(!created.stderr.contains(token), "the token is not repeated on stderr: {}", created.stderr);
    assert!(created.stderr.contains("shown only now"), "{}", created.stderr);

    let listed = cli.as_admin(&master, &["tokens", "-o", "json"]).await?;
    let json = listed.json()?;
    let info = find(&json["tokens"], "description", "cli test").with_context(|| json.to_string())?;
    assert_eq!(info["max_uses"], 3);
    assert!(!listed.stdout.contains(token), "the list holds no secret");
    let id = info["id"].as_str().context("no id")?;
    assert!(token.contains(id), "the token carries its public id");
    let table = cli.as_admin(&master, &["tokens"]).await?.ok()?.to_string();
    assert!(table.lines().any(|l| l.starts_with(id) && l.contains("active") && l.contains("0/3")), "{table}");
    // An agent can enroll with the printed token; once revoked, it enrolls no more.
    FakeAgent::enroll(&master, token, "from-cli").await?;
    let revoked = cli.as_admin(&master, &["tokens", "revoke", id]).await?.ok()?.to_string();
    assert!(revoked.contains("revoked") && revoked.contains("1/3"), "{revoked}");
    ensure!(FakeAgent::enroll(&master, token, "too-late").await.is_err(), "a revoked token still enrolls");
    Ok(())
}

#[tokio::test]
async fn completion_help_and_usage_errors() -> Result<()> {
    let cli = Cli::new()?;
    let bash = cli.run(["completion", "bash"]).await?;
    let script = bash.ok()?;
    assert!(script.contains("_dockflare()") && script.contains("complete -F _dockflare"), "{script}");
    for noun in ["agents", "routes", "identities", "watch", "login"] {
        assert!(script.contains(noun), "{noun} in the completion script");
    }
    let zsh = cli.run(["completion", "zsh"]).await?;
    assert!(zsh.ok()?.contains("#compdef dockflare"), "{}", zsh.stdout);

    let help = cli.run(["--help"]).await?;
    let text = help.ok()?;
    for line in [
        "Exit codes:",
        "  3  the master is unreachable",
        "  4  not authenticated",
        "  5  permission denied",
        "DOCKFLARE_MASTER",
    ] {
        assert!(text.contains(line), "{line:?} in:\n{text}");
    }
    let usage = cli.run(["routes", "add", "x.example.test"]).await?;
    let stderr = usage.failed_with(2)?;
    assert!(stderr.contains("--service"), "{stderr}");
    Ok(())
}
