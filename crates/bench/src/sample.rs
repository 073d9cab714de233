//! Readings of the server's /proc entries — memory, descriptors, CPU time — and of this
//! harness's and the machine's CPU, so a figure comes with what it cost.

use crate::server::ServerUnderTest;
use anyhow::{anyhow, Context, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Clock ticks per second in /proc/<pid>/stat (USER_HZ: 100 on Linux).
const USER_HZ: f64 = 100.0;

/// A reading of the master's /proc entries (and this process's CPU time).
pub struct Sample {
    at: Instant,
    pub rss_kib: u64,
    pub hwm_kib: u64,
    pub fds: usize,
    /// User + system CPU time of the master, in clock ticks.
    master_ticks: u64,
    /// The same for this harness.
    harness_ticks: u64,
    /// Busy and total clock ticks of the whole machine (all cores).
    machine_ticks: (u64, u64),
}

impl Sample {
    /// CPU used between two samples: the master's and the harness's in
    /// percent of one core, the machine's in percent of all cores (it
    /// includes a PostgreSQL server, and anything else running).
    pub fn cpu(&self, later: &Sample) -> String {
        let seconds = later.at.duration_since(self.at).as_secs_f64();
        if seconds <= 0.0 {
            return "-".into();
        }
        let percent = |before: u64, after: u64| 100.0 * after.saturating_sub(before) as f64 / USER_HZ / seconds;
        let busy = later.machine_ticks.0.saturating_sub(self.machine_ticks.0) as f64;
        let total = later.machine_ticks.1.saturating_sub(self.machine_ticks.1).max(1) as f64;
        format!(
            "master {:.0} %, harness {:.0} %, machine {:.0} % of {} cores",
            percent(self.master_ticks, later.master_ticks),
            percent(self.harness_ticks, later.harness_ticks),
            100.0 * busy / total,
            cores()
        )
    }
}

pub fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Busy and total clock ticks of all cores, from the first line of /proc/stat
/// (idle and iowait count as not busy).
fn machine_ticks() -> Result<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let line = stat.lines().next().ok_or_else(|| anyhow!("empty /proc/stat"))?;
    let ticks: Vec<u64> = line.split_whitespace().skip(1).map(|t| t.parse().unwrap_or(0)).collect();
    let total: u64 = ticks.iter().take(8).sum(); // user nice system idle iowait irq softirq steal
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    Ok((total.saturating_sub(idle), total))
}

/// User + system CPU time of a process (all its threads), in clock ticks.
fn cpu_ticks(proc_dir: &Path) -> Result<u64> {
    let stat = std::fs::read_to_string(proc_dir.join("stat")).context("reading /proc/<pid>/stat")?;
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).ok_or_else(|| anyhow!("odd /proc/<pid>/stat"))?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let tick = |index: usize| -> Result<u64> {
        fields.get(index - 3).ok_or_else(|| anyhow!("short /proc/<pid>/stat"))?.parse().context("parsing stat")
    };
    Ok(tick(14)? + tick(15)?)
}

/// Memory, descriptors and CPU time of the server; an error (with the master's last log lines)
/// if it died.
pub fn sample(server: &mut ServerUnderTest) -> Result<Sample> {
    let pid = server.pid()?;
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let status = std::fs::read_to_string(proc_dir.join("status")).context("reading /proc/<pid>/status")?;
    let field = |name: &str| -> Result<u64> {
        let line = status.lines().find(|l| l.starts_with(name)).ok_or_else(|| anyhow!("no {name} in status"))?;
        line[name.len()..].trim().trim_end_matches("kB").trim().parse().with_context(|| format!("parsing {name}"))
    };
    Ok(Sample {
        at: Instant::now(),
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
        fds: std::fs::read_dir(proc_dir.join("fd")).map(|dir| dir.count()).unwrap_or(0),
        master_ticks: cpu_ticks(&proc_dir)?,
        harness_ticks: cpu_ticks(Path::new("/proc/self"))?,
        machine_ticks: machine_ticks()?,
    })
}
