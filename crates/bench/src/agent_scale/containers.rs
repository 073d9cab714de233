//! The benchmark's labelled origin containers on the real engine, through the Docker CLI: started
//! many at a time (a bounded pool while setting up, all at once for a burst), each timed from the
//! moment its `docker run` was issued, and every container of the run removed at the end.

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tokio::process::Command;
use tokio::sync::Semaphore;

/// The origin image (`deploy/images.sh` builds it).
pub const ORIGIN_IMAGE: &str = "dockflare-test/origin:latest";

/// One run's containers: a scope label only they carry, and their names and hostnames.
#[derive(Clone, Debug)]
pub struct Fleet {
    /// `KEY=VALUE` the agent is scoped to.
    pub scope: String,
    /// Names and hostnames start with this.
    pub unique: String,
}

/// A container as started: its name, hostname, and when its `docker run` was issued and returned.
#[derive(Clone, Debug)]
pub struct Started {
    pub name: String,
    pub hostname: String,
    pub issued: Instant,
    pub returned: Instant,
}

impl Fleet {
    pub fn new(unique: &str) -> Fleet {
        Fleet { scope: format!("bench.scope={unique}"), unique: unique.to_string() }
    }

    pub fn name(&self, index: usize) -> String {
        format!("{}-{index}", self.unique)
    }

    pub fn hostname(&self, index: usize) -> String {
        format!("c{index}.{}.example.test", self.unique)
    }

    /// `docker run -d` of container `index`: labelled for the agent, answering at `http://NAME:80`.
    pub async fn run(&self, index: usize) -> Result<Started> {
        let (name, hostname) = (self.name(index), self.hostname(index));
        let issued = Instant::now();
        let output = Command::new("docker")
            .args(["run", "-d", "-q", "--name", &name, "--env", &format!("ORIGIN_NAME={name}")])
            .args(["--label", &self.scope, "--label", "dockflare.enable=true"])
            .args(["--label", &format!("dockflare.hostname={hostname}")])
            .args(["--label", &format!("dockflare.service=http://{name}:80")])
            .arg(ORIGIN_IMAGE)
            .kill_on_drop(true)
            .output()
            .await
            .context("running the docker CLI")?;
        if !output.status.success() {
            bail!("docker run {name}: {}", String::from_utf8_lossy(&output.stderr).trim());
        }
        Ok(Started { name, hostname, issued, returned: Instant::now() })
    }

    /// Starts containers `range`, at most `parallel` `docker run`s at a time (`None`: all at once).
    pub async fn run_many(&self, range: std::ops::Range<usize>, parallel: Option<usize>) -> Result<Vec<Started>> {
        let permits = Arc::new(Semaphore::new(parallel.unwrap_or(range.len()).max(1)));
        let mut runs = tokio::task::JoinSet::new();
        for index in range {
            let (fleet, permits) = (self.clone(), permits.clone());
            runs.spawn(async move {
                let _permit = permits.acquire_owned().await?;
                fleet.run(index).await
            });
        }
        let mut started = Vec::new();
        while let Some(run) = runs.join_next().await {
            started.push(run.context("a docker run task")??);
        }
        Ok(started)
    }

    /// The engine's `State.StartedAt` of each named container.
    pub async fn started_at(&self, names: &[String]) -> Result<BTreeMap<String, SystemTime>> {
        let output = Command::new("docker")
            .args(["inspect", "--format", "{{.Name}} {{.State.StartedAt}}"])
            .args(names)
            .output()
            .await
            .context("running the docker CLI")?;
        if !output.status.success() {
            bail!("docker inspect: {}", String::from_utf8_lossy(&output.stderr).trim());
        }
        let mut started = BTreeMap::new();
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let Some((name, at)) = line.split_once(' ') else { continue };
            let at = humantime::parse_rfc3339_weak(at).with_context(|| format!("StartedAt of {name}: {at:?}"))?;
            started.insert(name.trim_start_matches('/').to_string(), at);
        }
        Ok(started)
    }

    /// Removes containers `range` (`docker rm -f`).
    pub async fn remove(&self, range: std::ops::Range<usize>) -> Result<()> {
        let names: Vec<String> = range.map(|index| self.name(index)).collect();
        for chunk in names.chunks(100) {
            let output = Command::new("docker").args(["rm", "-f"]).args(chunk).output().await?;
            if !output.status.success() {
                bail!("docker rm: {}", String::from_utf8_lossy(&output.stderr).trim());
            }
        }
        Ok(())
    }

    /// Removes every container of this run (best effort: the end of a benchmark).
    pub fn remove_all(&self) {
        let Ok(output) = std::process::Command::new("docker")
            .args(["ps", "-aq", "--filter", &format!("label={}", self.scope)])
            .output()
        else {
            return;
        };
        let ids: Vec<String> = String::from_utf8_lossy(&output.stdout).split_whitespace().map(str::to_string).collect();
        for chunk in ids.chunks(200) {
            let _ = std::process::Command::new("docker").args(["rm", "-f"]).args(chunk).output();
        }
    }
}
