//! The restart-convergence benchmark runs (a short smoke run, so that it cannot rot): 3 agents
//! with 20 labelled containers each converge against the emulator, the master is killed and
//! restarted, it converges again and writes nothing to Cloudflare.

use anyhow::{Context, Result};

#[test]
fn a_restart_with_nothing_changed_converges_and_writes_nothing() -> Result<()> {
    let binary = dockflare_testsupport::workspace_binary("converge_bench")?;
    let json = tempfile::NamedTempFile::new()?;
    let output = std::process::Command::new(&binary)
        .args(["--agents", "3", "--containers", "20", "--target", "60s", "--json"])
        .arg(json.path())
        .output()
        .with_context(|| format!("running {}", binary.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "converge_bench failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    for line in ["first convergence", "restart: start", "converged (reports stored", "writes after the restart"] {
        assert!(stdout.contains(line), "no {line:?} in:\n{stdout}");
    }
    let figures: serde_json::Value = serde_json::from_slice(&std::fs::read(json.path())?)?;
    let figures = &figures["figures"];
    let first = &figures["  writes it took: ingress PUTs / DNS / other"];
    assert_eq!(first["dns"], 60, "one record per route at first: {figures}");
    let after = &figures["writes after the restart (and a full pass): ingress PUTs / DNS / other"];
    assert_eq!(after, &serde_json::json!({ "ingress_puts": 0, "tunnels_put": 0, "dns": 0, "other": 0 }), "{figures}");
    assert_eq!(figures["target: converged within 60.0 s of listening"], true, "{figures}");
    Ok(())
}
