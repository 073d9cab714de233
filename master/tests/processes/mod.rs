//! Real DockFlare processes for fleet tests: a master that can be killed
//! with SIGKILL and restarted on the same port and data directory, and
//! agent processes (the real `dockflare-agent` binary, found next to the
//! test's own build output). Logs are JSON lines, drained continuously and
//! searchable; every wait has a deadline.
#![allow(dead_code)]

use anyhow::{anyhow, bail, Context, Result};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Lines a process wrote to stderr, shared with the draining thread.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<String>>>);

impl Logs {
    fn drain(&self, child: &mut Child) -> Result<()> {
        let stderr = child.stderr.take().ok_or_else(|| anyhow!("no stderr pipe"))?;
        let sink = self.0.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        Ok(())
    }

    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Parsed JSON log records whose message is `message`.
    pub fn records(&self, message: &str) -> Vec<serde_json::Value> {
        self.lines()
            .iter()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|record| record.get("message").and_then(|m| m.as_str()) == Some(message))
            .collect()
    }

    pub fn count(&self, message: &str) -> usize {
        self.records(message).len()
    }

    pub fn text(&self) -> String {
        self.lines().join("\n")
    }

    /// Waits until a record with `message` appears.
    pub async fn wait_for(&self, message: &str, timeout: Duration) -> Result<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(record) = self.records(message).into_iter().next_back() {
                return Ok(record);
            }
            if Instant::now() > deadline {
                bail!("no log record {message:?} within {timeout:?}; log:\n{}", tail(&self.text(), 40));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn strip_dockflare_env(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        let name_text = name.to_string_lossy();
        if name_text.starts_with("DOCKFLARE_") || name_text.starts_with("AGENT_") {
            command.env_remove(&name);
        }
    }
}

/// A binary of the workspace, next to this test's build output.
pub fn workspace_binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().and_then(Path::parent).ok_or_else(|| anyhow!("unexpected test path {}", exe.display()))?;
    let path = dir.join(name);
    if !path.exists() {
        bail!(
            "{} is missing: build the workspace first (cargo build --workspace, or run deploy/test.sh)",
            path.display()
        );
    }
    Ok(path)
}

/// A master process that survives restarts: same data dir, same port.
pub struct Master {
    pub data_dir: tempfile::TempDir,
    pub addr: SocketAddr,
    database_url: Option<String>,
    extra_args: Vec<String>,
    env: Vec<(String, String)>,
    child: Option<Child>,
    pub logs: Logs,
}

impl Master {
    /// Starts a master with extra environment variables (CF_API_TOKEN, …).
    pub async fn start_with_env(
        database_url: Option<&str>,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Master> {
        let mut master = Master {
            data_dir: tempfile::tempdir()?,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: database_url.map(str::to_string),
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            child: None,
            logs: Logs::default(),
        };
        master.spawn().await?;
        Ok(master)
    }

    /// Starts a master on a free port. `database_url` `None` means SQLite.
    pub async fn start(database_url: Option<&str>, extra_args: &[&str]) -> Result<Master> {
        let mut master = Master {
            data_dir: tempfile::tempdir()?,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: database_url.map(str::to_string),
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
            env: Vec::new(),
            child: None,
            logs: Logs::default(),
        };
        master.spawn().await?;
        Ok(master)
    }

    async fn spawn(&mut self) -> Result<()> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_dockflare-master"));
        strip_dockflare_env(&mut command);
        command.arg("--listen").arg(self.addr.to_string()).arg("--data-dir").arg(self.data_dir.path());
        command.args(["--log-format", "json"]).args(&self.extra_args);
        if let Some(url) = &self.database_url {
            command.arg("--database-url").arg(url);
        }
        command.env("RUST_LOG", "info,h2=warn,hyper=warn,tower=warn,sqlx=warn");
        for name in
            ["CF_API_TOKEN", "CF_ACCOUNT_ID", "CF_ZONE_ID", "CF_API_URL", "GRACE_PERIOD_SECONDS", "LABEL_PREFIX"]
        {
            command.env_remove(name);
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = command.spawn().context("starting dockflare-master")?;
        let logs = Logs::default();
        logs.drain(&mut child)?;
        let deadline = Instant::now() + START_TIMEOUT;
        let addr = loop {
            if let Some(addr) = logs
                .records("Master listening.")
                .first()
                .and_then(|r| r.get("addr")?.as_str()?.parse::<SocketAddr>().ok())
            {
                break addr;
            }
            if let Some(status) = child.try_wait()? {
                bail!("dockflare-master exited with {status}; log:\n{}", logs.text());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("dockflare-master did not start within {START_TIMEOUT:?}; log:\n{}", logs.text());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        self.addr = addr;
        self.child = Some(child);
        self.logs = logs;
        Ok(())
    }

    /// The master's resident memory, in MiB.
    pub fn rss_mib(&self) -> Result<u64> {
        let pid = self.pid().context("the master is not running")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| kib / 1024)
            .context("no VmRSS")
    }

    /// The process id of the running master.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGTERM, and the exit status once the master has stopped (within `timeout`).
    pub fn terminate(&mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        let mut child = self.child.take().context("the master is not running")?;
        let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status()?;
        anyhow::ensure!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("the master did not stop within {timeout:?} of SIGTERM; log:\n{}", self.logs.text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill9(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Starts the master again on the same port and data dir.
    pub async fn restart(&mut self) -> Result<()> {
        self.kill9()?;
        self.spawn().await
    }

    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    pub fn pki(&self, file: &str) -> Result<String> {
        let path = self.data_dir.path().join("pki").join(file);
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    }

    /// A channel with the admin identity.
    pub async fn admin(
        &self,
    ) -> Result<dockflare::v1::admin_service_client::AdminServiceClient<tonic::transport::Channel>> {
        let channel = crate::support::mtls_channel(
            self.addr,
            &self.pki("ca.crt")?,
            Some((&self.pki("admin.crt")?, &self.pki("admin.key")?)),
        )
        .await?;
        Ok(dockflare::v1::admin_service_client::AdminServiceClient::new(channel))
    }

    /// A join token for `uses` agents (each gets a tunnel of its own).
    pub async fn join_token(&self, uses: u32) -> Result<String> {
        self.join_token_in_group(uses, "").await
    }

    /// A join token for `uses` agents admitted to tunnel group `group`.
    pub async fn join_token_in_group(&self, uses: u32, group: &str) -> Result<String> {
        let response = self
            .admin()
            .await?
            .create_join_token(dockflare::v1::CreateJoinTokenRequest {
                ttl_seconds: 600,
                max_uses: uses,
                description: "test".into(),
                tunnel_group: group.into(),
                policy: None,
            })
            .await?;
        Ok(response.into_inner().token)
    }

    /// The agent's commands, oldest first (the first 1000).
    pub async fn commands(&self, agent_id: &str) -> Result<Vec<dockflare::v1::CommandRecord>> {
        let request = dockflare::v1::ListCommandsRequest { agent_id: agent_id.into(), after_sequence: 0, limit: 1000 };
        Ok(self.admin().await?.list_commands(request).await?.into_inner().commands)
    }

    /// Waits until the reconciler's start_tunnel reached the agent (offline,
    /// the master gives every agent the emulator's tunnel first), so that the
    /// commands a test sends come after it.
    pub async fn wait_reconciler_start_tunnel(&self, agent_id: &str, timeout: Duration) -> Result<()> {
        let acked = dockflare::v1::CommandState::Acked as i32;
        eventually("the reconciler's start_tunnel acked", timeout, || async {
            let commands = self.commands(agent_id).await?;
            Ok(commands.iter().any(|c| c.kind == "start_tunnel" && c.state == acked).then_some(()))
        })
        .await
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        let _ = self.kill9();
    }
}

/// A real `dockflare-agent` process.
pub struct Agent {
    pub data_dir: tempfile::TempDir,
    masters: Vec<String>,
    token: String,
    extra_args: Vec<String>,
    /// Reconnect within 1 s (tests) rather than with the agent's default backoff.
    fast_reconnect: bool,
    child: Option<Child>,
    /// Logs of every run of this agent, in order.
    pub logs: Logs,
}

impl Agent {
    /// Starts an agent that enrolls with `token` on first start.
    pub fn start(masters: &[String], token: &str) -> Result<Agent> {
        Agent::start_with(masters, token, &[])
    }

    /// Starts an agent with extra command-line arguments.
    pub fn start_with(masters: &[String], token: &str, extra_args: &[&str]) -> Result<Agent> {
        Agent::start_configured(masters, token, extra_args, true)
    }

    /// Starts an agent; `fast_reconnect` false keeps the agent's default
    /// (production) reconnect backoff instead of the tests' 1 s cap.
    pub fn start_configured(
        masters: &[String],
        token: &str,
        extra_args: &[&str],
        fast_reconnect: bool,
    ) -> Result<Agent> {
        let mut agent = Agent {
            data_dir: tempfile::tempdir()?,
            masters: masters.to_vec(),
            token: token.to_string(),
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
            fast_reconnect,
            child: None,
            logs: Logs::default(),
        };
        agent.spawn()?;
        Ok(agent)
    }

    fn spawn(&mut self) -> Result<()> {
        let mut command = Command::new(workspace_binary("dockflare-agent")?);
        strip_dockflare_env(&mut command);
        command.arg("--master").arg(self.masters.join(",")).arg("--data-dir").arg(self.data_dir.path());
        command.args(["--log-format", "json"]);
        if self.fast_reconnect {
            command.args(["--reconnect-max", "1s"]);
        }
        command.args(&self.extra_args);
        // Unless a test chooses the connector, use the stub: no published ports, nothing pulled.
        if !self.extra_args.iter().any(|a| a == "--cloudflared-image") {
            command.args(["--cloudflared-image", "dockflare-test/connector:latest"]);
        }
        command.env("DOCKFLARE_JOIN_TOKEN", &self.token);
        command.env("RUST_LOG", "info,dockflare_agent=debug,h2=warn,hyper=warn,tower=warn");
        command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = command.spawn().context("starting dockflare-agent")?;
        self.logs.drain(&mut child)?;
        self.child = Some(child);
        Ok(())
    }

    pub fn kill9(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    pub fn restart(&mut self) -> Result<()> {
        self.kill9()?;
        self.spawn()
    }

    /// The agent id, once enrolled.
    pub async fn id(&self, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        let path = self.data_dir.path().join("agent_id");
        loop {
            if let Ok(id) = std::fs::read_to_string(&path) {
                if !id.trim().is_empty() {
                    return Ok(id.trim().to_string());
                }
            }
            if Instant::now() > deadline {
                bail!("agent did not enroll within {timeout:?}; log:\n{}", tail(&self.logs.text(), 40));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.kill9();
        // The connector outlives the agent by design; tests clean theirs up.
        if let Ok(id) = std::fs::read_to_string(self.data_dir.path().join("agent_id")) {
            let short: String = id.trim().chars().take(8).collect();
            if !short.is_empty() {
                let name = format!("dockflare-tunnel-{short}");
                let _ = Command::new("docker").args(["rm", "-f", &name]).output();
                let _ = Command::new("docker").args(["service", "rm", &name]).output();
            }
        }
    }
}

/// Polls `check` until it returns `Some`, failing after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(error) => last_error = Some(error),
        }
        if Instant::now() > deadline {
            bail!("{what}: not reached within {timeout:?} (last error: {last_error:?})");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Runs the docker CLI against the real engine; stdout on success.
pub fn docker(args: &[&str]) -> Result<String> {
    let output = Command::new("docker").args(args).output().context("running the docker CLI")?;
    if !output.status.success() {
        bail!("docker {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Fails loudly when no Docker engine answers, or the test images are missing.
pub fn require_docker() {
    if let Err(error) = docker(&["info", "--format", "{{.ServerVersion}}"]) {
        panic!("these tests need a Docker engine: {error}. Run deploy/test.sh, which starts dockerd and builds the test images.");
    }
    for image in ["dockflare-test/origin:latest", "dockflare-test/connector:latest"] {
        if docker(&["image", "inspect", "--format", "{{.Id}}", image]).is_err() {
            panic!("test image {image} is missing: run deploy/images.sh (deploy/test.sh does).");
        }
    }
}

/// A unique suffix for names in one test run.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

/// Removes containers, services and networks whose names are given, on drop.
#[derive(Default)]
pub struct DockerCleanup {
    pub containers: Vec<String>,
    pub services: Vec<String>,
    pub networks: Vec<String>,
}

impl Drop for DockerCleanup {
    fn drop(&mut self) {
        for service in &self.services {
            let _ = docker(&["service", "rm", service]);
        }
        for container in &self.containers {
            let _ = docker(&["rm", "-f", container]);
        }
        for network in &self.networks {
            let _ = docker(&["network", "rm", network]);
        }
    }
}
