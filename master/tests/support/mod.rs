//! Shared helpers of the master's integration tests: fresh databases on both
//! backends, the real `dockflare-master` binary as a child process, mutual
//! TLS channels to it, and a fake agent's enrollment.
//!
//! Every test file includes this module and uses a different part of it.
#![allow(dead_code)]

use anyhow::{anyhow, bail, Context, Result};
use dockflare::v1::admin_service_client::AdminServiceClient;
use dockflare::v1::agent_service_client::AgentServiceClient;
use dockflare::v1::{CreateJoinTokenRequest, EnrollRequest};
use dockflare_master::store::Store;
use secrecy::ExposeSecret;
use sqlx::Connection;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity as TlsIdentity};

/// The environment variable naming the PostgreSQL server the tests may use.
pub const POSTGRES_URL_VAR: &str = "DOCKFLARE_TEST_POSTGRES_URL";

/// How long the master may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The PostgreSQL admin URL (a role that may CREATE DATABASE). Panics when
/// it is unset: PostgreSQL tests never skip silently.
pub fn postgres_admin_url() -> String {
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "{POSTGRES_URL_VAR} is not set: these tests need PostgreSQL. Run deploy/test.sh (it starts PostgreSQL, \
             creates the test role and exports {POSTGRES_URL_VAR}), or export it yourself, e.g. \
             {POSTGRES_URL_VAR}=postgres://dockflare:dockflare-test@127.0.0.1:5432/postgres"
        ),
    }
}

/// `url` with its database name (the path) replaced by `database`.
fn with_database(url: &str, database: &str) -> Result<String> {
    let scheme_end = url.find("://").ok_or_else(|| anyhow!("{POSTGRES_URL_VAR} is not a URL"))? + 3;
    let (base, query) = match url.find('?') {
        Some(q) => (&url[..q], &url[q..]),
        None => (url, ""),
    };
    let host_part = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    Ok(format!("{host_part}/{database}{query}"))
}

/// A database that exists for one test only: a SQLite file in a temporary
/// directory, or a PostgreSQL database that is dropped at the end.
pub struct TestDatabase {
    /// "sqlite" or "postgres", for messages.
    pub name: &'static str,
    pub url: String,
    _dir: Option<TempDir>,
    postgres: Option<(String, String)>,
}

impl TestDatabase {
    /// A fresh SQLite database in a new temporary directory.
    pub fn sqlite() -> Result<TestDatabase> {
        let dir = tempfile::tempdir()?;
        let url = dockflare_master::store::default_sqlite_url(dir.path());
        Ok(TestDatabase { name: "sqlite", url, _dir: Some(dir), postgres: None })
    }

    /// A fresh PostgreSQL database `dockflare_test_<random>` on the server of
    /// `DOCKFLARE_TEST_POSTGRES_URL`.
    pub async fn postgres() -> Result<TestDatabase> {
        let admin_url = postgres_admin_url();
        let database = format!("dockflare_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&admin_url).await.with_context(|| {
            format!(
                "connecting to {} ({POSTGRES_URL_VAR}); is PostgreSQL running? deploy/test.sh starts it",
                dockflare_master::store::redact_url(&admin_url)
            )
        })?;
        sqlx::query(&format!("CREATE DATABASE {database}"))
            .execute(&mut admin)
            .await
            .with_context(|| format!("creating database {database}"))?;
        let _ = admin.close().await;
        let url = with_database(&admin_url, &database)?;
        Ok(TestDatabase { name: "postgres", url, _dir: None, postgres: Some((admin_url, database)) })
    }

    /// Opens the store (running the migrations).
    pub async fn connect(&self) -> Result<Store> {
        Store::connect(&self.url).await.with_context(|| format!("opening the {} store", self.name))
    }
}

impl Drop for TestDatabase {
    /// Drops the PostgreSQL database, best effort (its connections are
    /// ended by `WITH (FORCE)`). Runs on its own thread so that it works
    /// inside and outside a tokio runtime.
    fn drop(&mut self) {
        let Some((admin_url, database)) = self.postgres.take() else { return };
        let dropped = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            runtime.block_on(async move {
                if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await;
                    let _ = admin.close().await;
                }
            });
        });
        let _ = dropped.join();
    }
}

/// A fresh database on each backend: SQLite, then PostgreSQL.
pub async fn test_databases() -> Result<Vec<TestDatabase>> {
    Ok(vec![TestDatabase::sqlite()?, TestDatabase::postgres().await?])
}

/// The real `dockflare-master` binary, started on a free port with its own
/// data directory and JSON logs. Killed when dropped.
pub struct MasterProcess {
    pub addr: SocketAddr,
    pub data_dir: TempDir,
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
}

impl MasterProcess {
    /// Starts a master on SQLite in its data directory.
    pub async fn start() -> Result<MasterProcess> {
        MasterProcess::start_with_database(None).await
    }

    /// Starts a master; `database_url` `None` means SQLite in the data dir.
    pub async fn start_with_database(database_url: Option<&str>) -> Result<MasterProcess> {
        let data_dir = tempfile::tempdir()?;
        let mut command = Command::new(env!("CARGO_BIN_EXE_dockflare-master"));
        command.arg("--listen").arg("127.0.0.1:0").arg("--data-dir").arg(data_dir.path());
        command.arg("--log-format").arg("json");
        if let Some(url) = database_url {
            command.arg("--database-url").arg(url);
        }
        // Settings from the test runner's environment must not leak in.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("DOCKFLARE_") {
                command.env_remove(&name);
            }
        }
        command.env("RUST_LOG", "info,h2=warn,hyper=warn,tower=warn,sqlx=warn");
        command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = command.spawn().context("starting dockflare-master")?;
        let stderr = child.stderr.take().ok_or_else(|| anyhow!("no stderr pipe"))?;

        // Drain stderr for the child's whole life so the pipe never fills.
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });

        let mut master = MasterProcess { addr: SocketAddr::from(([0, 0, 0, 0], 0)), data_dir, child, logs };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(addr) = master.find_log(|line| {
                let value: serde_json::Value = serde_json::from_str(line).ok()?;
                if value.get("message")?.as_str()? != "Master listening." {
                    return None;
                }
                value.get("addr")?.as_str()?.parse::<SocketAddr>().ok()
            }) {
                master.addr = addr;
                return Ok(master);
            }
            if let Some(status) = master.child.try_wait()? {
                bail!("dockflare-master exited with {status} before listening; stderr:\n{}", master.logs_text());
            }
            if Instant::now() > deadline {
                bail!(
                    "dockflare-master did not log \"Master listening.\" within {START_TIMEOUT:?}; stderr:\n{}",
                    master.logs_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every stderr line so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Every stderr line so far, as one text.
    pub fn logs_text(&self) -> String {
        self.logs().join("\n")
    }

    /// The first stderr line `find` maps to a value.
    pub fn find_log<T>(&self, mut find: impl FnMut(&str) -> Option<T>) -> Option<T> {
        self.logs.lock().unwrap_or_else(|p| p.into_inner()).iter().find_map(|line| find(line))
    }

    /// Waits until a stderr line contains `needle`.
    pub async fn wait_for_log(&self, needle: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.find_log(|line| line.contains(needle).then(|| line.to_string())) {
                return Ok(line);
            }
            if Instant::now() > deadline {
                bail!("no log line containing {needle:?} within {timeout:?}; stderr:\n{}", self.logs_text());
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

    pub fn ca_pem(&self) -> Result<String> {
        read(&self.ca_cert_path())
    }

    /// A channel authenticated with the admin certificate.
    pub async fn admin_channel(&self) -> Result<Channel> {
        let (cert, key) = (read(&self.admin_cert_path())?, read(&self.admin_key_path())?);
        mtls_channel(self.addr, &self.ca_pem()?, Some((&cert, &key))).await
    }

    /// A channel that trusts the master's CA and shows no client certificate.
    pub async fn anonymous_channel(&self) -> Result<Channel> {
        mtls_channel(self.addr, &self.ca_pem()?, None).await
    }
}

impl Drop for MasterProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// A TLS channel to the master at `addr` that trusts `ca_pem` (server name
/// "localhost") and, when given, authenticates with `client` (certificate
/// PEM, key PEM).
pub async fn mtls_channel(addr: SocketAddr, ca_pem: &str, client: Option<(&str, &str)>) -> Result<Channel> {
    mtls_channel_from(addr, ca_pem, client, None).await
}

/// [`mtls_channel`] from a chosen local address (127.0.0.2 and so on: another source).
pub async fn mtls_channel_from(
    addr: SocketAddr,
    ca_pem: &str,
    client: Option<(&str, &str)>,
    local: Option<std::net::IpAddr>,
) -> Result<Channel> {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca_pem)).domain_name("localhost");
    if let Some((cert, key)) = client {
        tls = tls.identity(TlsIdentity::from_pem(cert, key));
    }
    let channel = Endpoint::from_shared(format!("https://{addr}"))?
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(10))
        .local_address(local)
        .connect()
        .await
        .with_context(|| format!("connecting to the master at {addr}"))?;
    Ok(channel)
}

/// An agent enrolled through the real gRPC API.
pub struct EnrolledAgent {
    pub id: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl EnrolledAgent {
    /// A channel authenticated with this agent's certificate.
    pub async fn channel(&self, master: &MasterProcess) -> Result<Channel> {
        mtls_channel(master.addr, &master.ca_pem()?, Some((&self.cert_pem, &self.key_pem))).await
    }
}

/// Enrolls a fake agent: a join token from AdminService.CreateJoinToken
/// (admin certificate), a new key and CSR, and AgentService.Enroll over TLS
/// without a client certificate.
pub async fn enroll_agent(master: &MasterProcess, display_name: &str) -> Result<EnrolledAgent> {
    let mut admin = AdminServiceClient::new(master.admin_channel().await?);
    let token = admin
        .create_join_token(CreateJoinTokenRequest {
            ttl_seconds: 600,
            max_uses: 1,
            description: "test".into(),
            tunnel_group: String::new(),
            policy: None,
        })
        .await
        .context("CreateJoinToken")?
        .into_inner()
        .token;
    let (key, csr_der) = dockflare_common::pki::new_key_and_csr(display_name)?;
    let mut agent = AgentServiceClient::new(master.anonymous_channel().await?);
    let enrolled = agent
        .enroll(EnrollRequest { join_token: token, csr_der, display_name: display_name.into() })
        .await
        .context("Enroll")?
        .into_inner();
    if enrolled.agent_id.is_empty() || !enrolled.certificate_pem.contains("BEGIN CERTIFICATE") {
        bail!("Enroll returned no agent id or certificate");
    }
    Ok(EnrolledAgent { id: enrolled.agent_id, cert_pem: enrolled.certificate_pem, key_pem: key.expose_secret().into() })
}
