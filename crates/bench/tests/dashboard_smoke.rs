//! The dashboard benchmark runs (a short smoke run, so that it cannot rot): it starts a master,
//! draws 200 routes in headless Chromium beside the static baseline, and prints its figures.

use anyhow::{Context, Result};

#[test]
fn the_dashboard_benchmark_runs_and_prints_its_figures() -> Result<()> {
    let binary = dockflare_testsupport::workspace_binary("dashboard_bench")?;
    let output = std::process::Command::new(&binary)
        .args(["--routes", "200", "--runs", "1"])
        .output()
        .with_context(|| format!("running {}", binary.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "dashboard_bench failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    for line in ["first contentful paint", "every route there", "search to result drawn", "dashboard transfer"] {
        assert!(stdout.contains(line), "no {line:?} in:\n{stdout}");
    }
    Ok(())
}
