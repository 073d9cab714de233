//! The real `dockflare-agent` binary as a child process: enrolls with a join token on its first
//! start, restartable with the same data dir, logs drained and searchable. Its connector
//! container (which outlives the agent by design) is removed on drop.

use crate::logs::{strip_dockflare_env, tail, Logs};
use crate::workspace_binary;
use anyhow::{bail, Context, Result};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
        // Many agents run side by side: each gets a free health port unless the test picks one.
        if !self.extra_args.iter().any(|arg| arg == "--metrics-listen") {
            command.args(["--metrics-listen", "127.0.0.1:0"]);
        }
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

    /// The process id of the running agent.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Where the agent serves /healthz, /readyz and /metrics (from its log).
    pub async fn metrics_addr(&self, timeout: Duration) -> Result<std::net::SocketAddr> {
        let record = self.logs.wait_for("Health and metrics listening.", timeout).await?;
        record
            .get("addr")
            .and_then(|addr| addr.as_str()?.parse().ok())
            .context("the agent logged no address for its health and metrics")
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
