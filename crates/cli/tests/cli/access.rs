//! `dockflare access`: a policy put from flags and from a JSON file, listed as a table and as
//! JSON, got, refused with the field path (exit 6) and removed.

use crate::support::Cli;
use anyhow::{Context, Result};
use dockflare_testsupport::Master;
use serde_json::json;

#[tokio::test]
async fn policies_are_put_listed_and_removed() -> Result<()> {
    let master = Master::sqlite().await?;
    let cli = Cli::new()?;
    let put = [
        "access",
        "policy",
        "put",
        "team",
        "--decision",
        "allow",
        "--include",
        r#"{"email_domain":{"domain":"example.com"}}"#,
        "--include",
        r#"{"email":{"email":"a@b.example"}}"#,
        "--session-duration",
        "12h",
    ];
    let shown = cli.as_admin(&master, &put).await?.ok()?.to_string();
    assert!(shown.contains("allow") && shown.contains(r#"{"email_domain":{"domain":"example.com"}}"#), "{shown}");

    let dir = tempfile::tempdir()?;
    let file = dir.path().join("ops.json");
    std::fs::write(&file, r#"{"decision":"deny","include":[{"geo":{"country_code":"KP"}}]}"#)?;
    let path = file.display().to_string();
    let json = cli.as_admin(&master, &["access", "policy", "put", "ops", "-f", &path, "-o", "json"]).await?.json()?;
    assert_eq!(json["created"], true, "{json}");
    assert_eq!(json["policy"]["include"], json!([{"geo": {"country_code": "KP"}}]), "{json}");

    let table = cli.as_admin(&master, &["access", "policies"]).await?.ok()?.to_string();
    let header = table.lines().next().context("no header")?;
    assert!(header.starts_with("NAME") && header.contains("DECISION") && header.contains("SOURCE"), "{table}");
    let row = table.lines().find(|line| line.starts_with("team")).with_context(|| table.clone())?;
    assert!(row.contains("allow") && row.contains("12h") && row.contains("api"), "{row}");
    let listed = cli.as_admin(&master, &["access", "policies", "-o", "json"]).await?.json()?;
    let names: Vec<&str> =
        listed["policies"].as_array().context("policies")?.iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["ops", "team"], "{listed}");

    let got = cli.as_admin(&master, &["access", "policy", "get", "team", "-o", "json"]).await?.json()?;
    assert_eq!(got["policy"]["session_duration"], "12h", "{got}");
    let bad = ["access", "policy", "put", "team", "--decision", "allow", "--include", r#"{"email":{"email":"bob"}}"#];
    let refused = cli.as_admin(&master, &bad).await?;
    let stderr = refused.failed_with(6)?;
    assert!(stderr.contains("include[0].email.email: \"bob\" is not an email address"), "{stderr}");
    let not_json =
        cli.as_admin(&master, &["access", "policy", "put", "x", "--decision", "allow", "--include", "{"]).await?;
    assert!(not_json.failed_with(2)?.contains("--include #1: not JSON"));

    cli.as_admin(&master, &["access", "policy", "rm", "ops"]).await?.ok()?;
    cli.as_admin(&master, &["access", "policy", "get", "ops"]).await?.failed_with(7)?;
    Ok(())
}
