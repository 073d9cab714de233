//! An agent's life through the CLI: commands sent and acknowledged, its events, its group and
//! policy changed, its tunnel listed, a reconcile pass, then revoked; unknown ids are exit 7.

use crate::support::Cli;
use anyhow::{Context, Result};
use dockflare_testsupport::{eventually, FakeAgent, Master};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn an_agents_commands_events_group_policy_and_revocation() -> Result<()> {
    let master = Master::sqlite().await?;
    let cli = Cli::new()?;
    let agent = FakeAgent::join(&master, &master.join_token(1).await?, "lifecycle", "").await?;
    let id = agent.id.as_str();

    let sent = cli
        .as_admin(&master, &["commands", "send", id, "resync", "--reason", "from the cli", "-o", "json"])
        .await?
        .json()?;
    let sequence = sent["sequence"].as_str().context("sequence")?.to_string();
    eventually("the resync acknowledged", WAIT, || async {
        let json = cli.as_admin(&master, &["commands", id, "-o", "json"]).await?.json()?;
        let commands = json["commands"].as_array().cloned().unwrap_or_default();
        Ok(commands
            .iter()
            .any(|c| c["sequence"] == sequence.as_str() && c["kind"] == "resync" && c["state"] == "COMMAND_STATE_ACKED")
            .then_some(()))
    })
    .await?;
    let table = cli.as_admin(&master, &["commands", id]).await?.ok()?.to_string();
    assert!(table.lines().any(|l| l.starts_with(&sequence) && l.contains("resync") && l.contains("acked")), "{table}");
    let events = cli.as_admin(&master, &["events", id]).await?.ok()?.to_string();
    assert!(events.contains("command_result") && events.contains(&format!("command {sequence} applied")), "{events}");

    let grouped = cli.as_admin(&master, &["agents", "set-group", id, "edge", "-o", "json"]).await?.json()?;
    assert_eq!(grouped["agent"]["tunnel_group"], "edge", "{grouped}");
    let policy = cli
        .as_admin(
            &master,
            &["agents", "set-policy", id, "--allow-hostname", "*.apps.example.test", "--max-routes", "5", "-o", "json"],
        )
        .await?
        .json()?;
    assert_eq!(policy["agent"]["policy"]["allowed_hostnames"][0], "*.apps.example.test", "{policy}");
    assert_eq!(policy["agent"]["policy"]["max_routes"], 5, "{policy}");
    let details = cli.as_admin(&master, &["agents", "get", id]).await?.ok()?.to_string();
    assert!(details.contains("*.apps.example.test") && details.contains("max routes 5"), "{details}");

    cli.as_admin(&master, &["reconcile", "-o", "json"]).await?.json()?;
    let tunnels = eventually("the group's tunnel listed", WAIT, || async {
        let table = cli.as_admin(&master, &["tunnels"]).await?.ok()?.to_string();
        Ok(table.contains("group:edge").then_some(table))
    })
    .await?;
    assert!(tunnels.lines().next().is_some_and(|h| h.starts_with("NAME") && h.contains("HEALTH")), "{tunnels}");

    let revoked = cli.as_admin(&master, &["agents", "revoke", id, "-o", "json"]).await?.json()?;
    assert_eq!(revoked["agent"]["status"], "AGENT_STATUS_REVOKED", "{revoked}");
    let unknown = cli.as_admin(&master, &["agents", "get", "no-such-agent"]).await?;
    assert!(unknown.failed_with(7)?.contains("GetAgent: not found"), "{}", unknown.stderr);
    Ok(())
}
