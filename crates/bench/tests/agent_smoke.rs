//! The agent-at-scale benchmark runs (a short smoke run, so that it cannot rot): 2 then 5
//! labelled containers on the real engine, relists timed by the agent, a single start and a burst
//! of 3 served through the local edge, and the burst's time split into steps from every part's
//! records (each step found for every start; no route served before its container was attached). Needs Docker and the test images (fails loudly without).

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
    for step in [
        "engine: docker run → running (StartedAt)",
        "agent: running → seen (\"Container started.\")",
        "agent: seen → attached to the connector network",
        "master: attached → its reconcile pass begins",
        "pass begins → the edge loads the route",
        "edge loaded → first 200",
    ] {
        let row = &figures[format!("burst of 3, step {step}")];
        assert_eq!(row["samples"], 3, "step {step:?} not found for every start: {figures}");
    }
    // A start is reported once its container is attached, never routed before the edge can reach it.
    let attached_first = &figures["burst of 3, step master: attached → its reconcile pass begins"];
    assert!(attached_first["min_ms"].as_i64().is_some_and(|ms| ms >= 0), "routed before attached: {figures}");
    let passes = &figures["burst of 3: reconcile passes that routed it, each pass's time"];
    assert!(passes["passes"].as_u64().is_some_and(|n| n >= 1), "{figures}");
    Ok(())
}
