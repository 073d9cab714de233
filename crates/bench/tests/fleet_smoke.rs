//! The fleet benchmark runs (a short smoke run, so that it cannot rot): 200 agents against the
//! floor and the real master side by side, its table printed, its results written as JSON and
//! drawn as a PNG.

use anyhow::{ensure, Context, Result};

#[test]
fn the_fleet_benchmark_runs_side_by_side_and_writes_json_and_a_plot() -> Result<()> {
    let binary = dockflare_testsupport::workspace_binary("fleet_bench")?;
    let dir = tempfile::tempdir()?;
    let (json, png) = (dir.path().join("fleet.json"), dir.path().join("fleet.png"));
    let output = std::process::Command::new(&binary)
        .args([
            "--agents",
            "200",
            "--events-per-agent",
            "20",
            "--commands",
            "100",
            "--load-rate",
            "2000",
            "--phase-timeout",
            "120s",
        ])
        .arg("--json")
        .arg(&json)
        .arg("--plot")
        .arg(&png)
        .output()
        .with_context(|| format!("running {}", binary.display()))?;
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    ensure!(output.status.success(), "fleet_bench failed:\n{stdout}\n{stderr}");
    for line in ["| 200 | floor |", "| 200 | DockFlare, sqlite |", "RSS per connected agent", "in flight"] {
        ensure!(stdout.contains(line), "no {line:?} in:\n{stdout}");
    }
    let results: serde_json::Value = serde_json::from_slice(&std::fs::read(&json)?)?;
    let runs = results["runs"].as_array().context("no runs in the results")?;
    ensure!(runs.len() == 2, "two runs (floor, DockFlare) expected: {results}");
    for run in runs {
        ensure!(run["agents"] == 200, "{run}");
        ensure!(run["rss_connected_kib"].as_u64().is_some_and(|kib| kib > 0), "{run}");
        ensure!(run["commands_sequential"]["count"] == 100, "{run}");
        ensure!(run["commands_concurrent"]["p99_ms"].as_f64().is_some_and(|ms| ms > 0.0), "{run}");
    }
    let picture = std::fs::read(&png)?;
    ensure!(picture.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG: {}", png.display());
    Ok(())
}
