//! The floor baseline (`floor_server`, `src/floor/`) as a child process, and a FloorControl
//! client for it: what `fleet_bench` runs beside the real master to report "DockFlare vs floor".
//!
//! Self-contained (its own copy of the generated FloorControl client), so that a binary or test
//! of this crate takes it in with `mod floor_process;`.

use anyhow::{anyhow, bail, Context, Result};
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tonic::transport::Channel;

/// The generated FloorControl service (`proto/floor.proto`).
pub mod proto {
    #![allow(clippy::doc_lazy_continuation)]
    tonic::include_proto!("dockflare.bench.v1");
}

pub use proto::floor_control_client::FloorControlClient;

/// How long the floor may take to print "Floor listening.".
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// The message of the floor's one stdout line.
const LISTENING: &str = "Floor listening.";
/// Bytes of the floor's stderr kept for error messages (the last ones).
const STDERR_KEPT: usize = 16 * 1024;

/// A running `floor_server`; killed when dropped.
pub struct FloorProcess {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its `--data-dir`: ca.crt, admin.crt, admin.key.
    data_dir: tempfile::TempDir,
    child: Child,
    /// The end of its stderr, drained by a thread.
    stderr: Arc<Mutex<String>>,
}

impl FloorProcess {
    /// Starts `binary` (default: `floor_server` beside the running executable) on a free loopback
    /// port, with RLIMIT_NOFILE's soft limit at `nofile` if given, and waits (at most 30 s) for
    /// its "Floor listening." line; an error with its stderr if it exits first.
    pub async fn start(binary: Option<&Path>, nofile: Option<u64>) -> Result<FloorProcess> {
        let binary: PathBuf = match binary {
            Some(path) => path.to_path_buf(),
            None => dockflare_testsupport::workspace_binary("floor_server")
                .context("build it with `cargo build --release -p dockflare-bench --bin floor_server`")?,
        };
        let data_dir = tempfile::tempdir()?;
        let mut command = Command::new(&binary);
        command
            .arg("--data-dir")
            .arg(data_dir.path())
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child =
            spawn_with_nofile(&mut command, nofile).with_context(|| format!("starting {}", binary.display()))?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout pipe"))?;
        let stderr_pipe = child.stderr.take().ok_or_else(|| anyhow!("no stderr pipe"))?;
        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_drain = drain_stderr(stderr_pipe, stderr.clone());
        let (listening_tx, listening_rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next();
            let _ = listening_tx.send(listening_addr(first));
            lines.for_each(drop); // nothing more is expected; keep the pipe open while it runs
        });

        let mut floor = FloorProcess { addr: SocketAddr::from(([127, 0, 0, 1], 0)), data_dir, child, stderr };
        let failure = match tokio::time::timeout(START_TIMEOUT, listening_rx).await {
            Ok(Ok(Ok(addr))) => {
                floor.addr = addr;
                return Ok(floor);
            }
            Ok(Ok(Err(error))) => error,
            Ok(Err(_)) => anyhow!("its stdout reader ended without an answer"),
            Err(_) => anyhow!("no {LISTENING:?} line within {START_TIMEOUT:?}"),
        };
        let _ = floor.child.kill();
        let status = floor.child.wait().map(|status| status.to_string()).unwrap_or_else(|e| e.to_string());
        let _ = stderr_drain.join();
        bail!("{} did not start ({failure:#}; exit: {status}); stderr:\n{}", binary.display(), floor.stderr_text())
    }

    /// The floor's CA certificate (PEM): what agents and the control client trust.
    pub fn ca_pem(&self) -> Result<String> {
        self.read("ca.crt")
    }

    /// The admin identity FloorControl accepts: (certificate PEM, key PEM).
    pub fn admin_identity(&self) -> Result<(String, String)> {
        Ok((self.read("admin.crt")?, self.read("admin.key")?))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory (VmRSS of /proc/<pid>/status), in KiB.
    #[allow(dead_code)] // floor_smoke reads it; fleet_bench samples /proc/<pid> with the master's reader
    pub fn rss_kib(&self) -> Result<u64> {
        let path = format!("/proc/{}/status", self.pid());
        let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| anyhow!("no VmRSS in {path}"))
    }

    fn read(&self, file: &str) -> Result<String> {
        let path = self.data_dir.path().join(file);
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    }

    fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl Drop for FloorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A FloorControl client over its own mutual-TLS channel, authenticated with `admin`
/// (certificate PEM, key PEM; [`FloorProcess::admin_identity`]).
pub async fn floor_control_client(
    addr: SocketAddr,
    ca_pem: &str,
    admin: (&str, &str),
) -> Result<FloorControlClient<Channel>> {
    let channel = dockflare_testsupport::mtls_channel(addr, ca_pem, Some(admin)).await?;
    Ok(FloorControlClient::new(channel))
}

/// The address in the floor's first stdout line.
fn listening_addr(line: Option<std::io::Result<String>>) -> Result<SocketAddr> {
    let line = match line {
        Some(line) => line.context("reading its stdout")?,
        None => bail!("it closed stdout without a {LISTENING:?} line"),
    };
    let record: serde_json::Value =
        serde_json::from_str(&line).with_context(|| format!("its first stdout line is not JSON: {line:?}"))?;
    if record.get("message").and_then(|m| m.as_str()) != Some(LISTENING) {
        bail!("its first stdout line is not {LISTENING:?}: {line:?}");
    }
    let addr = record.get("addr").and_then(|a| a.as_str()).ok_or_else(|| anyhow!("no addr in {line:?}"))?;
    addr.parse().with_context(|| format!("addr in {line:?}"))
}

/// Drains `pipe` into `kept` (its last [`STDERR_KEPT`] bytes) until the child closes it.
fn drain_stderr(mut pipe: impl Read + Send + 'static, kept: Arc<Mutex<String>>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(read) = pipe.read(&mut buffer) {
            if read == 0 {
                break;
            }
            let mut text = kept.lock().unwrap_or_else(PoisonError::into_inner);
            text.push_str(&String::from_utf8_lossy(&buffer[..read]));
            if text.len() > STDERR_KEPT {
                let mut cut = text.len() - STDERR_KEPT;
                while !text.is_char_boundary(cut) {
                    cut += 1;
                }
                text.drain(..cut);
            }
        }
    })
}

/// Spawns `command` with RLIMIT_NOFILE's soft limit at `nofile` (the child inherits the limit in
/// force when it is spawned; this process's is restored after). The same as the master's
/// launcher in `dockflare_testsupport`, which keeps its copy private.
fn spawn_with_nofile(command: &mut Command, nofile: Option<u64>) -> Result<Child> {
    let Some(nofile) = nofile else { return Ok(command.spawn()?) };
    let (soft, hard) = rlimit::Resource::NOFILE.get()?;
    rlimit::Resource::NOFILE.set(nofile.min(hard), hard).context("setting the child's RLIMIT_NOFILE")?;
    let spawned = command.spawn();
    rlimit::Resource::NOFILE.set(soft, hard)?;
    Ok(spawned?)
}
