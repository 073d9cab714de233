//! List calls are followed page after page (the master answers at most 1000 a page), and the
//! master's filters are flags.

use crate::support::Cli;
use anyhow::{Context, Result};
use dockflare_testsupport::{eventually, labelled, route_labels, FakeAgent, Master};
use std::time::Duration;

#[tokio::test]
async fn every_page_is_listed_and_filters_are_the_masters() -> Result<()> {
    let master = Master::sqlite().await?;
    let cli = Cli::new()?;
    let mut admin = master.admin().await?;
    for n in 0..1005 {
        let request = dockflare::v1::CreateJoinTokenRequest { description: format!("bulk {n}"), ..Default::default() };
        admin.create_join_token(request).await.with_context(|| format!("token {n}"))?;
    }
    let tokens = cli.as_admin(&master, &["tokens", "-o", "json"]).await?.json()?;
    let listed = tokens["tokens"].as_array().context("tokens")?;
    assert_eq!(listed.len(), 1005, "more than one page (1000) of tokens");
    assert_eq!(tokens["next_page_token"], "", "the pages were followed to the last");
    let table = cli.as_admin(&master, &["tokens"]).await?.ok()?.to_string();
    assert_eq!(table.lines().count(), 1 + 1005, "a header and a row per token");

    let _edge = crate::support::edge_member(&master).await?;
    let agent = FakeAgent::join(&master, &master.join_token(1).await?, "labels", "").await?;
    agent.report(vec![labelled("web", &route_labels("labels.example.test", "http://web:80"))]).await?;
    cli.as_admin(&master, &["routes", "add", "manual.example.test", "--service", "http://m:80", "--group", "edge"])
        .await?
        .ok()?;
    let hostnames = |json: &serde_json::Value| -> Vec<String> {
        json["routes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["hostname"].as_str().map(str::to_string))
            .collect()
    };
    eventually("the labelled route listed by source", Duration::from_secs(20), || async {
        let json = cli.as_admin(&master, &["routes", "--source", "labels", "-o", "json"]).await?.json()?;
        Ok((hostnames(&json) == ["labels.example.test"]).then_some(()))
    })
    .await?;
    let manual = cli.as_admin(&master, &["routes", "--source", "manual", "-o", "json"]).await?.json()?;
    assert_eq!(hostnames(&manual), ["manual.example.test"], "{manual}");
    let one =
        cli.as_admin(&master, &["routes", "list", "--hostname", "MANUAL.example.test", "-o", "json"]).await?.json()?;
    assert_eq!(hostnames(&one), ["manual.example.test"], "{one}");

    let revoked = cli.as_admin(&master, &["agents", "--status", "revoked", "-o", "json"]).await?.json()?;
    assert_eq!(revoked["agents"].as_array().map(Vec::len), Some(0), "{revoked}");
    let grouped = cli.as_admin(&master, &["agents", "--group", "edge", "-o", "json"]).await?.json()?;
    let ids: Vec<&str> = grouped["agents"].as_array().into_iter().flatten().filter_map(|a| a["id"].as_str()).collect();
    assert_eq!(ids, [_edge.id.as_str()], "{grouped}");
    let usage = cli.as_admin(&master, &["routes", "--status", "sleeping"]).await?;
    usage.failed_with(2)?;
    Ok(())
}
