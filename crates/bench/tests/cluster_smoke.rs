//! The two-master benchmark runs (a short smoke run, so that it cannot rot): 200 agents spread
//! over two masters on one PostgreSQL database, commands through either master reach agents on
//! the other, master A is killed and every one of its agents is back on master B.

use anyhow::{Context, Result};
use dockflare_testsupport::TestDatabase;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_masters_share_the_fleet_and_the_survivor_takes_the_lost_ones_agents() -> Result<()> {
    let database = TestDatabase::postgres().await?;
    let binary = dockflare_testsupport::workspace_binary("storm_bench")?;
    let json = tempfile::NamedTempFile::new()?;
    let output = tokio::process::Command::new(&binary)
        .args(["--masters", "2", "--agents", "200", "--connect-concurrency", "32", "--commands", "20"])
        .args(["--give-up-after", "120s", "--database-url", &database.url, "--json"])
        .arg(json.path())
        .output()
        .await
        .with_context(|| format!("running {}", binary.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "storm_bench failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    for line in [
        "agents held by master A / B",
        "command through the other master",
        "back 100 % (from the kill of master A",
        "command through master B to a moved agent",
        "master B's own agents that lost a stream meanwhile",
    ] {
        assert!(stdout.contains(line), "no {line:?} in:\n{stdout}");
    }
    let figures: serde_json::Value = serde_json::from_slice(&std::fs::read(json.path())?)?;
    let figures = &figures["figures"];
    assert_eq!(figures["agents held by master A / B"], serde_json::json!([100, 100]), "{figures}");
    assert_eq!(figures["agents back / gave up"]["back"], 100, "{figures}");
    assert_eq!(figures["agents back / gave up"]["gave_up"], 0, "{figures}");
    assert_eq!(figures["master B's own agents that lost a stream meanwhile"], 0, "{figures}");
    assert_eq!(
        figures["command through the other master: SendCommand -> agent's stream (p50 / p99 / max)"]["samples"],
        20
    );
    assert_eq!(figures["command through master B to a moved agent (p50 / p99 / max)"]["samples"], 20);
    Ok(())
}
