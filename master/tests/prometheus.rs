//! A real Prometheus server (Debian's `prometheus`) scrapes a running master and a running
//! agent every second, with deploy/prometheus/alerts.yml loaded: through Prometheus's own query
//! API, the series exist, and they move when the fleet does (a container starts: the master's
//! stored events and the agent's Docker events go up).

use anyhow::{bail, ensure, Context, Result};
use dockflare_testsupport::{docker, eventually, require_docker, unique, Agent, DockerCleanup, Master};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn repo_file(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

impl Prometheus {
    /// Starts Prometheus scraping `master` and `agent` every second.
    fn start(master: SocketAddr, agent: SocketAddr) -> Result<Prometheus> {
        let binary = which("prometheus").context("prometheus is not installed (deploy/test.sh installs it)")?;
        let dir = tempfile::tempdir()?;
        std::fs::copy(repo_file("deploy/prometheus/alerts.yml"), dir.path().join("alerts.yml"))?;
        let config = format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             rule_files: [alerts.yml]\n\
             scrape_configs:\n\
             - {{job_name: dockflare-master, static_configs: [{{targets: ['{master}']}}]}}\n\
             - {{job_name: dockflare-agent, static_configs: [{{targets: ['{agent}']}}]}}\n"
        );
        std::fs::write(dir.path().join("prometheus.yml"), config)?;
        let port = dockflare_testsupport::free_port()?;
        let child = Command::new(binary)
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting prometheus")?;
        Ok(Prometheus { child, url: format!("http://127.0.0.1:{port}"), _dir: dir })
    }

    /// An instant query's result vector.
    async fn query(&self, expr: &str) -> Result<Vec<serde_json::Value>> {
        let answer: serde_json::Value = reqwest::Client::new()
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", expr)])
            .timeout(Duration::from_secs(5))
            .send()
            .await?
            .json()
            .await?;
        ensure!(answer["status"] == "success", "query {expr}: {answer}");
        Ok(answer["data"]["result"].as_array().cloned().unwrap_or_default())
    }

    /// The single value of `expr`, once it has one.
    async fn value(&self, expr: &str) -> Result<f64> {
        eventually(&format!("Prometheus has {expr}"), WAIT, || async {
            let result = self.query(expr).await.unwrap_or_default();
            Ok(result.first().and_then(|r| r["value"][1].as_str()?.parse::<f64>().ok()))
        })
        .await
    }
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|dir| PathBuf::from(dir).join(name)).find(|p| p.is_file())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_master_and_agent_and_the_series_move() -> Result<()> {
    require_docker();
    let master = Master::start(None, &[]).await?;
    let agent = Agent::start(&[master.url()], &master.join_token(1).await?)?;
    let agent_id = agent.id(WAIT).await?;
    let prometheus = Prometheus::start(master.metrics_addr()?, agent.metrics_addr(WAIT).await?)?;

    for job in ["dockflare-master", "dockflare-agent"] {
        let up = prometheus.value(&format!("up{{job=\"{job}\"}} == 1")).await?;
        ensure!(up == 1.0, "{job} is not up");
    }
    // The rules load (Prometheus evaluates them).
    let rules: serde_json::Value = reqwest::get(format!("{}/api/v1/rules", prometheus.url)).await?.json().await?;
    let names: Vec<&str> = rules["data"]["groups"][0]["rules"]
        .as_array()
        .map(|rules| rules.iter().filter_map(|r| r["name"].as_str()).collect())
        .unwrap_or_default();
    ensure!(names.contains(&"DockFlareAgentOffline") && names.contains(&"DockFlareConnectorDown"), "{rules}");

    for series in [
        "dockflare_build_info{binary=\"master\"}",
        "dockflare_build_info{binary=\"agent\"}",
        "dockflare_agents{status=\"online\"}",
        "dockflare_agent_streams",
        "dockflare_agent_master_connected",
        "dockflare_reconcile_passes_total",
        "dockflare_event_commit_seconds_bucket",
    ] {
        prometheus.value(&format!("sum({series})")).await.with_context(|| format!("series {series}"))?;
    }

    // The fleet moves, the series move.
    let stored = prometheus.value("dockflare_events_stored_total").await?;
    let seen = prometheus.value("dockflare_agent_docker_events_total").await.unwrap_or(0.0);
    let mut cleanup = DockerCleanup::default();
    let name = unique("moving");
    cleanup.containers.push(name.clone());
    docker(&["run", "-d", "--name", &name, "dockflare-test/origin:latest"])?;
    eventually("stored events and Docker events go up in Prometheus", WAIT, || async {
        let now_stored = prometheus.value("dockflare_events_stored_total").await?;
        let now_seen = prometheus.value("dockflare_agent_docker_events_total").await?;
        Ok((now_stored > stored && now_seen > seen).then_some(()))
    })
    .await
    .with_context(|| format!("agent {agent_id}"))?;
    if prometheus.query("dockflare_agents{status=\"online\"} == 1").await?.is_empty() {
        bail!("the master does not count its agent online");
    }
    Ok(())
}
