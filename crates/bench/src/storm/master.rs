//! The master under the storm: the shared launcher ([`dockflare_testsupport::Master`]) with
//! fleet_bench's flags (crates/bench/src/process.rs; copied, not shared, so that benchmark can
//! change on its own), the descriptor limit both sides need, and what the master says about
//! itself (/proc) after the storm.

use crate::Args;
use anyhow::{bail, Context, Result};
use dockflare_testsupport::{Master, MasterOptions};
use std::path::PathBuf;
use std::time::Duration;

/// Raises this process's RLIMIT_NOFILE so it holds every agent's connection; the master
/// inherits it. Returns the limit.
pub fn raise_nofile_limit(agents: usize) -> Result<u64> {
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
            "RLIMIT_NOFILE hard limit is {limit}, but {agents} agents need about {wanted} descriptors: raise it \
             (ulimit -Hn, limits.conf, LimitNOFILE=) or run fewer agents"
        );
    }
    Ok(limit)
}

/// The master binary: `--master-bin`, or `dockflare-master` beside this program.
pub fn binary(args: &Args) -> Result<PathBuf> {
    match &args.master_bin {
        Some(path) if path.is_file() => Ok(path.clone()),
        Some(path) => bail!("--master-bin {} does not exist", path.display()),
        None => dockflare_testsupport::workspace_binary("dockflare-master")
            .context("build it first with `cargo build --release -p dockflare-master`, or pass --master-bin"),
    }
}

/// Starts a master with the benchmark's settings, `extra` flags and `--master-arg`s after them;
/// its log copied to `--master-log` with `log_suffix` appended to the name.
pub async fn start(args: &Args, nofile: u64, extra: &[String], log_suffix: &str) -> Result<Master> {
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
    let mut master_args: Vec<String> = flags.iter().map(|flag| flag.to_string()).collect();
    master_args.extend(extra.iter().cloned());
    master_args.extend(args.master_arg.iter().cloned());
    Master::start_with(MasterOptions {
        binary: Some(binary(args)?),
        database_url: args.database_url.clone(),
        args: master_args,
        env: Vec::new(),
        nofile: Some(nofile),
        log_copy: args.master_log.as_ref().map(|path| {
            let mut name = path.clone().into_os_string();
            name.push(log_suffix);
            PathBuf::from(name)
        }),
    })
    .await
}

/// The master's resident memory, in KiB.
pub fn rss_kib(master: &Master) -> Result<u64> {
    let pid = master.pid().context("the master is not running")?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("reading /proc/<pid>/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/<pid>/status")
}

/// User + system CPU time of a process (all its threads), from /proc/<pid>/stat.
pub fn cpu_time(pid: &str) -> Result<Duration> {
    /// Clock ticks per second in /proc/<pid>/stat (USER_HZ: 100 on Linux).
    const USER_HZ: u64 = 100;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).context("reading /proc/<pid>/stat")?;
    // Fields after the command name (which may hold spaces): utime is field 14, stime 15.
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("").split_whitespace().collect();
    let tick = |index: usize| -> Result<u64> {
        fields.get(index - 3).context("short /proc/<pid>/stat")?.parse().context("parsing /proc/<pid>/stat")
    };
    Ok(Duration::from_millis((tick(14)? + tick(15)?) * 1000 / USER_HZ))
}
