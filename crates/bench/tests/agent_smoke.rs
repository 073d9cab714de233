//! The agent-at-scale benchmark runs (a short smoke run, so that it cannot rot): 2 then 5
//! labelled containers on the real engine, relists timed by the agent, a single start and a burst
//! of 3 served through the local edge. Needs Docker and the test images (fails loudly without).

use anyhow::{Context, Result};

#[test]
fn the_agent_benchmark_times_relists_and_a_burst_of_starts() -> Result<()> {
    dockflare_testsupport::require_docker();
    let binary = dockflare_testsupport::workspace_binary("agent_bench")?;
    let json = tempfile::NamedTempFile::new()?;
    let output = std::process::Command::new(&binary)
        .args(["--containers", "5", "--baseline-containers", "2", "--burst", "3", "--singles", "1"])
        .args(["--relists", "1", "--relist-interval", "1s", "--timeout", "60s", "--json"])
        .arg(json.path())
        .output()
        .with_context(|| format!("running {}", binary.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "agent_bench failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let figures: serde_json::Value = serde_json::from_slice(&std::fs::read(json.path())?)?;
    let figures = &figures["figures"];
    let relist = &figures["full relist of 5 containers, median / max (agent's took_ms)"];
    assert!(relist["max_ms"].as_u64().is_some(), "no relist time: {figures}");
    let burst = &figures["burst of 3: docker run → first 200"];
    assert_eq!(burst["samples"], 3, "{figures}");
    assert!(burst["p99_ms"].as_u64().is_some_and(|ms| ms > 0), "{figures}");
    let single = &figures["baseline: 1 single starts, docker run → first 200"];
    assert_eq!(single["samples"], 1, "{figures}");
    Ok(())
}
