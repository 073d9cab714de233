//! The real `dockflare-master` binary as a child process — the one launcher of every test and
//! the fleet benchmark: SQLite in a temporary data dir or a given database, JSON logs drained
//! and searchable, restartable on the same port and data dir, stoppable with SIGTERM or SIGKILL,
//! and mTLS channels to it (admin, anonymous, any identity).

use crate::logs::{strip_dockflare_env, tail, Logs};
use crate::tls::mtls_channel;
use crate::wait::eventually;
use crate::workspace_binary;
use anyhow::{bail, Context, Result};
use dockflare::v1::admin_service_client::AdminServiceClient;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// How long the master may take to log "Master listening.".
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How to start a master.
#[derive(Debug, Clone, Default)]
pub struct MasterOptions {
    /// The binary; default: `dockflare-master` beside the running test or benchmark.
    pub binary: Option<PathBuf>,
    /// `None`: SQLite in the data dir.
    pub database_url: Option<String>,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// The RLIMIT_NOFILE soft limit the master starts with (default: this process's).
    pub nofile: Option<u64>,
    /// Also append every log line to this file.
    pub log_copy: Option<PathBuf>,
}

/// A master process that survives restarts: same data dir, same port.
pub struct Master {
    pub data_dir: tempfile::TempDir,
    pub addr: SocketAddr,
    options: MasterOptions,
    binary: PathBuf,
    child: Option<Child>,
    /// The log of the current run.
    pub logs: Logs,
}

impl Master {
    /// Starts a master on a free loopback port.
    pub async fn start_with(options: MasterOptions) -> Result<Master> {
        let binary = match &options.binary {
            Some(path) => path.clone(),
            None => workspace_binary("dockflare-master")?,
        };
        let mut master = Master {
            data_dir: tempfile::tempdir()?,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            options,
            binary,
            child: None,
            logs: Logs::default(),
        };
        master.spawn().await?;
        Ok(master)
    }

    /// Starts a master; `database_url` `None` means SQLite.
    pub async fn start(database_url: Option<&str>, extra_args: &[&str]) -> Result<Master> {
        Master::start_with_env(database_url, extra_args, &[]).await
    }

    /// Starts a master with extra environment variables (CF_API_TOKEN, …).
    pub async fn start_with_env(
        database_url: Option<&str>,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Master> {
        Master::start_with(MasterOptions {
            database_url: database_url.map(str::to_string),
            args: extra_args.iter().map(|a| a.to_string()).collect(),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..MasterOptions::default()
        })
        .await
    }

    /// Starts a master on SQLite, offline, with its defaults.
    pub async fn sqlite() -> Result<Master> {
        Master::start(None, &[]).await
    }

    /// Starts a master on `database_url` (`None`: SQLite), with its defaults.
    pub async fn start_with_database(database_url: Option<&str>) -> Result<Master> {
        Master::start(database_url, &[]).await
    }

    async fn spawn(&mut self) -> Result<()> {
        let mut command = Command::new(&self.binary);
        strip_dockflare_env(&mut command);
        command.arg("--listen").arg(self.addr.to_string()).arg("--data-dir").arg(self.data_dir.path());
        command.args(["--log-format", "json"]).args(&self.options.args);
        // Many masters run side by side: each gets a free health port unless the test picks one.
        if !self.options.args.iter().any(|arg| arg == "--metrics-listen") {
            command.args(["--metrics-listen", "127.0.0.1:0"]);
        }
        if !self.options.args.iter().any(|arg| arg == "--web-listen") {
            command.args(["--web-listen", "127.0.0.1:0"]);
        }
        if let Some(url) = &self.options.database_url {
            command.arg("--database-url").arg(url);
        }
        command.env("RUST_LOG", "info,h2=warn,hyper=warn,tower=warn,sqlx=warn");
        for name in
            ["CF_API_TOKEN", "CF_ACCOUNT_ID", "CF_ZONE_ID", "CF_API_URL", "GRACE_PERIOD_SECONDS", "LABEL_PREFIX"]
        {
            command.env_remove(name);
        }
        command.envs(self.options.env.iter().map(|(k, v)| (k, v)));
        command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = spawn_with_nofile(&mut command, self.options.nofile)
            .with_context(|| format!("starting {}", self.binary.display()))?;
        let logs = Logs::default();
        logs.drain_copying(&mut child, self.options.log_copy.as_deref())?;
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
                logs.wait_closed(Duration::from_secs(5)).await;
                bail!("dockflare-master exited with {status} before listening; log:\n{}", logs.text());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!(
                    "dockflare-master did not log \"Master listening.\" within {START_TIMEOUT:?}; log:\n{}",
                    logs.text()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        self.addr = addr;
        self.child = Some(child);
        self.logs = logs;
        Ok(())
    }

    /// Where the master serves /healthz, /readyz and /metrics (from its log).
    pub fn metrics_addr(&self) -> Result<SocketAddr> {
        self.logged_addr("Health and metrics listening.")
            .context("the master did not log where its health and metrics listen")
    }

    /// The master's whole /metrics text (a plain HTTP/1.0 GET, read to the end; at most 10 s).
    pub async fn metrics_text(&self) -> Result<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = self.metrics_addr()?;
        let read = async {
            let mut stream = tokio::net::TcpStream::connect(addr).await?;
            stream.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes()).await?;
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).await?;
            anyhow::Ok(String::from_utf8_lossy(&answer).into_owned())
        };
        let answer = tokio::time::timeout(Duration::from_secs(10), read).await.context("/metrics took over 10 s")??;
        match answer.split_once("\r\n\r\n") {
            Some((head, body)) if head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200") => {
                Ok(body.to_string())
            }
            _ => bail!("/metrics answered: {}", answer.lines().next().unwrap_or_default()),
        }
    }

    /// The `addr` of the master's last log record with `message`.
    fn logged_addr(&self, message: &str) -> Option<SocketAddr> {
        self.logs.records(message).last().and_then(|record| record.get("addr")?.as_str()?.parse().ok())
    }

    /// Where the web dashboard listens (from the master's log).
    pub fn web_addr(&self) -> Result<SocketAddr> {
        self.logged_addr("Dashboard listening.").context("the master did not log where its dashboard listens")
    }

    /// Runs `dockflare-master ui set-password` on this master's data dir (password on stdin).
    pub fn set_ui_password(&self, user: &str, role: &str, password: &str) -> Result<()> {
        use std::io::Write;
        let mut command = std::process::Command::new(&self.binary);
        strip_dockflare_env(&mut command);
        command
            .args(["ui", "set-password", "--user", user, "--role", role])
            .arg("--data-dir")
            .arg(self.data_dir.path());
        if let Some(url) = &self.options.database_url {
            command.arg("--database-url").arg(url);
        }
        let mut child = command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .context("running dockflare-master ui set-password")?;
        child.stdin.take().context("stdin")?.write_all(password.as_bytes())?;
        let output = child.wait_with_output()?;
        anyhow::ensure!(output.status.success(), "ui set-password failed: {}", String::from_utf8_lossy(&output.stderr));
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

    /// An error, with the last log lines, when the master has exited.
    pub fn check_running(&mut self) -> Result<()> {
        let Some(child) = self.child.as_mut() else { bail!("the master is not running") };
        if let Some(status) = child.try_wait()? {
            self.logs.wait_closed_blocking(Duration::from_secs(5));
            bail!("the master exited ({status}); its last log lines:\n{}", tail(&self.logs.text(), 40));
        }
        Ok(())
    }

    /// Waits (at most `timeout`) for the master to exit on its own; its exit status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        let child = self.child.as_mut().context("the master is not running")?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait()? {
                self.child = None;
                self.logs.wait_closed_blocking(Duration::from_secs(5));
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!("the master did not exit within {timeout:?}; log:\n{}", tail(&self.logs.text(), 40));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, and the exit status once the master has stopped (within `timeout`).
    pub fn terminate(&mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        let pid = self.pid().context("the master is not running")?;
        let status = Command::new("kill").args(["-TERM", &pid.to_string()]).status()?;
        anyhow::ensure!(status.success(), "kill -TERM failed");
        match self.wait_exit(timeout) {
            Ok(status) => Ok(status),
            Err(error) => {
                let _ = self.kill9();
                Err(error.context("after SIGTERM"))
            }
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

    /// Every log line of the current run.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lines()
    }

    /// Every log line of the current run, as one text.
    pub fn logs_text(&self) -> String {
        self.logs.text()
    }

    /// The first log line `find` maps to a value.
    pub fn find_log<T>(&self, find: impl FnMut(&str) -> Option<T>) -> Option<T> {
        self.logs.find_map(find)
    }

    /// Waits until a log line contains `needle`; that line.
    pub async fn wait_for_log(&self, needle: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.find_log(|line| line.contains(needle).then(|| line.to_string())) {
                return Ok(line);
            }
            if Instant::now() > deadline {
                bail!("no log line containing {needle:?} within {timeout:?}; log:\n{}", tail(&self.logs_text(), 60));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn pki_dir(&self) -> PathBuf {
        self.data_dir.path().join("pki")
    }

    pub fn ca_cert_path(&self) -> PathBuf {
        self.pki_dir().join("ca.crt")
    }

    pub fn admin_cert_path(&self) -> PathBuf {
        self.pki_dir().join("admin.crt")
    }

    pub fn admin_key_path(&self) -> PathBuf {
        self.pki_dir().join("admin.key")
    }

    /// A file of the master's PKI directory.
    pub fn pki(&self, file: &str) -> Result<String> {
        read(&self.pki_dir().join(file))
    }

    pub fn ca_pem(&self) -> Result<String> {
        self.pki("ca.crt")
    }

    /// A channel authenticated with `identity` (certificate PEM, key PEM), or none.
    pub async fn channel_as(&self, identity: Option<(&str, &str)>) -> Result<Channel> {
        mtls_channel(self.addr, &self.ca_pem()?, identity).await
    }

    /// A channel authenticated with the admin certificate.
    pub async fn admin_channel(&self) -> Result<Channel> {
        let (cert, key) = (self.pki("admin.crt")?, self.pki("admin.key")?);
        self.channel_as(Some((&cert, &key))).await
    }

    /// A channel that trusts the master's CA and shows no client certificate.
    pub async fn anonymous_channel(&self) -> Result<Channel> {
        self.channel_as(None).await
    }

    /// An AdminService client with the admin identity.
    pub async fn admin(&self) -> Result<AdminServiceClient<Channel>> {
        Ok(AdminServiceClient::new(self.admin_channel().await?))
    }

    /// A new admin identity with `role` (IssueAdminIdentity with the admin certificate; the key
    /// is made here): (id, certificate PEM, key PEM).
    pub async fn issue_identity(&self, name: &str, role: dockflare::v1::AdminRole) -> Result<(String, String, String)> {
        use secrecy::ExposeSecret;
        let (key, csr) = dockflare_common::pki::new_key_and_csr(name)?;
        let response = self
            .admin()
            .await?
            .issue_admin_identity(dockflare::v1::IssueAdminIdentityRequest {
                name: name.into(),
                role: role as i32,
                ttl_seconds: 3600,
                csr_pem: pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", csr)),
            })
            .await
            .context("IssueAdminIdentity")?
            .into_inner();
        let id = response.identity.map(|i| i.id).unwrap_or_default();
        Ok((id, response.certificate_pem, key.expose_secret().to_string()))
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
                ttl_seconds: 3600,
                max_uses: uses,
                description: "test".into(),
                tunnel_group: group.into(),
                policy: None,
            })
            .await
            .context("CreateJoinToken")?;
        Ok(response.into_inner().token)
    }

    /// The agent's commands, oldest first (the first 1000).
    pub async fn commands(&self, agent_id: &str) -> Result<Vec<dockflare::v1::CommandRecord>> {
        let request =
            dockflare::v1::ListCommandsRequest { agent_id: agent_id.into(), page_size: 1000, ..Default::default() };
        Ok(self.admin().await?.list_commands(request).await?.into_inner().commands)
    }

    /// Waits until the reconciler's start_tunnel reached the agent (offline, the master gives
    /// every agent the emulator's tunnel first), so that the commands a test sends come after it.
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

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Spawns `command` with RLIMIT_NOFILE's soft limit at `nofile` (the child inherits the limit in
/// force when it is spawned; this process's is restored after).
fn spawn_with_nofile(command: &mut Command, nofile: Option<u64>) -> Result<Child> {
    let Some(nofile) = nofile else { return Ok(command.spawn()?) };
    let (soft, hard) = rlimit::Resource::NOFILE.get()?;
    rlimit::Resource::NOFILE.set(nofile.min(hard), hard).context("setting the child's RLIMIT_NOFILE")?;
    let spawned = command.spawn();
    rlimit::Resource::NOFILE.set(soft, hard)?;
    Ok(spawned?)
}
