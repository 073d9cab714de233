//! The master under test: the shared launcher ([`dockflare_testsupport::Master`]) with the
//! benchmark's flags, the descriptor limits both sides need, and what its log said.

use crate::Args;
use anyhow::{bail, Context, Result};
use dockflare_testsupport::{Master, MasterOptions};
use std::path::PathBuf;

/// Warning and error lines of the master kept for the report.
const KEPT_PROBLEMS: usize = 8;
/// Characters shown of each.
const PROBLEM_CHARS: usize = 400;

/// File descriptor limits in force.
pub struct NofileLimits {
    pub harness: u64,
    pub master: u64,
}

/// Raises this process's RLIMIT_NOFILE so it holds every agent's connection, and picks the
/// limit the master will start with.
pub fn raise_nofile_limit(agents: usize, master_nofile: Option<u64>) -> Result<NofileLimits> {
    use rlimit::Resource;
    let wanted = agents as u64 + 1024;
    let (soft, hard) = Resource::NOFILE.get().context("reading RLIMIT_NOFILE")?;
    let limit = if wanted > hard && Resource::NOFILE.set(wanted, wanted).is_ok() {
        wanted
    } else {
        Resource::NOFILE.set(hard, hard).with_context(|| format!("raising RLIMIT_NOFILE from {soft} to {hard}"))?;
        hard
    };
    if limit < wanted {
        bail!(
            "RLIMIT_NOFILE hard limit is {limit}, but {} agents need about {wanted} descriptors (in the harness and \
             in the master): raise it (ulimit -Hn, limits.conf, LimitNOFILE=) or run fewer agents",
            agents
        );
    }
    Ok(NofileLimits { harness: limit, master: master_nofile.unwrap_or(limit) })
}

/// The master binary: `--master-bin`, or `dockflare-master` beside this program.
pub fn master_binary(args: &Args) -> Result<PathBuf> {
    match &args.master_bin {
        Some(path) if path.is_file() => Ok(path.clone()),
        Some(path) => bail!("--master-bin {} does not exist", path.display()),
        None => dockflare_testsupport::workspace_binary("dockflare-master")
            .context("build it first with `cargo build --release -p dockflare-master`, or pass --master-bin"),
    }
}

/// Starts the master with the benchmark's settings.
pub async fn start_master(binary: PathBuf, args: &Args, nofile: u64) -> Result<Master> {
    let flags = [
        // Idle agents: heartbeats would only add noise to the figures.
        "--heartbeat-interval",
        "1h",
        "--heartbeat-timeout",
        "2h",
        // Every simulated agent comes from 127.0.0.1: lift the per-source limits a real fleet,
        // spread over many addresses, never meets.
        "--max-connections-per-source",
        "1000000",
        "--max-unauthenticated-calls",
        "65536",
        "--max-unauthenticated-calls-per-source",
        "65536",
    ];
    Master::start_with(MasterOptions {
        binary: Some(binary),
        database_url: args.database_url.clone(),
        args: flags.iter().map(|flag| flag.to_string()).collect(),
        env: Vec::new(),
        nofile: Some(nofile),
        log_copy: args.master_log.clone(),
    })
    .await
}

/// What the master's log said beyond "Master listening.".
#[derive(Default)]
pub struct LogSummary {
    pub warnings: u64,
    pub errors: u64,
    /// The first warning and error lines, shortened.
    pub problems: Vec<String>,
}

impl LogSummary {
    pub fn of(master: &Master) -> LogSummary {
        let mut summary = LogSummary::default();
        for line in master.logs.lines() {
            let level = serde_json::from_str::<serde_json::Value>(&line)
                .ok()
                .and_then(|record| record.get("level")?.as_str().map(str::to_string));
            match level.as_deref() {
                Some("WARN") => summary.warnings += 1,
                Some("ERROR") => summary.errors += 1,
                _ => continue,
            }
            if summary.problems.len() < KEPT_PROBLEMS {
                let mut problem = line.clone();
                if let Some((cut, _)) = problem.char_indices().nth(PROBLEM_CHARS) {
                    problem.truncate(cut);
                    problem.push('…');
                }
                summary.problems.push(problem);
            }
        }
        summary
    }
}
