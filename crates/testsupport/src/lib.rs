//! What DockFlare's tests and benchmarks share, in one place: the real master and agent
//! binaries as child processes ([`Master`], [`Agent`]), one fake agent speaking the real
//! protocol ([`FakeAgent`]), fresh databases on both backends ([`TestDatabase`]), mTLS channels,
//! the Docker CLI, grpcurl, and waiting with deadlines.
//!
//! Must not know the master's internals: it drives the binaries through their flags, logs and
//! gRPC API, as an operator or an agent would (so it cannot pass where they would fail).

pub mod agent;
pub mod arrivals;
pub mod browser;
pub mod databases;
pub mod docker;
pub mod fake_agent;
pub mod grpcurl;
pub mod logs;
pub mod master;
pub mod proxy;
pub mod tls;
pub mod wait;

pub use agent::Agent;
pub use arrivals::Arrivals;
pub use databases::{postgres_admin_url, test_databases, TestDatabase, POSTGRES_URL_VAR};
pub use docker::{docker, require_docker, unique, DockerCleanup};
pub use fake_agent::{container, enroll_agent, labelled, route_labels, FakeAgent};
pub use logs::Logs;
pub use master::{Master, MasterOptions};
pub use proxy::TcpProxy;
pub use tls::{mtls_channel, mtls_channel_from, slow_reader_channel};
pub use wait::eventually;

use anyhow::{anyhow, bail, Result};
use std::path::{Path, PathBuf};

/// A loopback port free right now (for a process the test starts next).
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A binary of the workspace, beside the running test's or benchmark's own executable
/// (`target/<profile>/deps/<test>` or `target/<profile>/<bench>` → `target/<profile>/<name>`).
pub fn workspace_binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().ok_or_else(|| anyhow!("unexpected executable path {}", exe.display()))?;
    let candidates = [Some(dir), dir.parent()];
    for candidate in candidates.into_iter().flatten().map(|dir: &Path| dir.join(name)) {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!(
        "{name} is missing beside {}: build the workspace first (cargo build --workspace, or run deploy/test.sh)",
        exe.display()
    )
}
