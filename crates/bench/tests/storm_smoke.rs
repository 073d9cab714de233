//! The reconnect-storm benchmark runs (a short smoke run, so that it cannot rot): 200 agents
//! connect, the master is killed and restarted, every agent comes back, and the figures print.

use anyhow::{Context, Result};

#[test]
fn the_storm_benchmark_brings_every_agent_back_and_prints_its_figures() -> Result<()> {
    let binary = dockflare_testsupport::workspace_binary("storm_bench")?;
    let json = tempfile::NamedTempFile::new()?;
    let output = std::process::Command::new(&binary)
        .args(["--agents", "200", "--connect-concurrency", "32", "--give-up-after", "120s", "--json"])
        .arg(json.path())
        .output()
        .with_context(|| format!("running {}", binary.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "storm_bench failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    for line in [
        "restart: start -> \"Master listening.\"",
        "baseline: connect",
        "back  50 %",
        "back 100 %",
        "attempts per agent",
        "failures: connection_refused",
        "failures: tls_handshake",
        "retry hints received / honoured",
        "master: TLS handshake failures",
        "master RSS after the storm",
    ] {
        assert!(stdout.contains(line), "no {line:?} in:\n{stdout}");
    }
    assert!(stdout.contains("agents back / gave up") && stdout.contains("200 / 0"), "an agent gave up:\n{stdout}");
    let figures: serde_json::Value = serde_json::from_slice(&std::fs::read(json.path())?)?;
    assert_eq!(figures["figures"]["agents back / gave up"]["gave_up"], 0, "{figures}");
    assert!(figures["figures"]["back 100 % (from listening: Register + 2 streams + 1st receipt)"].is_number());
    Ok(())
}
