//! The fleet benchmark's results as JSON: one [`Results`] per file, holding a [`Run`]
//! per (server, database, agents) measured, so that a sweep can be written run by run,
//! merged with an earlier file, and drawn later by `fleet_plot`.
//!
//! ```json
//! { "commit": "3e1f77f", "date": "2025-06-01T12:00:00Z", "machine": "2 cores, 24 GiB",
//!   "runs": [ { "server": "dockflare", "database": "sqlite", "agents": 1000,
//!               "connect_seconds": 1.9, "rss_idle_kib": 31000, "rss_connected_kib": 95000,
//!               "events_per_second": 42000.0,
//!               "commands_sequential": { "count": 200, "p50_ms": 0.8, "p95_ms": 1.2, "p99_ms": 1.9, "max_ms": 3.1 },
//!               "commands_concurrent": null, "command_concurrency": 64, "commands_under_load": false } ] }
//! ```
//!
//! Nothing here is specific to one binary: `fleet_bench` writes these files and
//! `fleet_plot` reads them; both include this module.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// One benchmark sweep (or several merged): where it ran, and a [`Run`] per measurement.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Results {
    /// The commit measured, e.g. `git rev-parse --short HEAD`.
    pub commit: String,
    /// When the results were taken, RFC 3339 in UTC (`2025-06-01T12:00:00Z`).
    pub date: String,
    /// The machine, e.g. `"2 cores, 24 GiB"` (see [`describe_machine`]).
    pub machine: String,
    pub runs: Vec<Run>,
}

/// Which server the simulated agents connected to.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Server {
    /// The real master.
    Dockflare,
    /// A bare tonic server speaking the same streams and nothing else: the floor
    /// that the master's own costs are measured against.
    Floor,
}

/// One server at one fleet size.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Run {
    pub server: Server,
    /// `"sqlite"` or `"postgres"` for the master; `None` for the floor.
    pub database: Option<String>,
    pub agents: usize,
    /// From the first connection attempt until every agent's streams were up.
    pub connect_seconds: f64,
    /// The server's resident set before any agent connected.
    pub rss_idle_kib: u64,
    /// The server's resident set with every agent connected and idle.
    pub rss_connected_kib: u64,
    /// Durable event ingest; `None` when not measured.
    pub events_per_second: Option<f64>,
    /// Command delivery, one command in flight at a time.
    pub commands_sequential: Option<Percentiles>,
    /// Command delivery with [`Run::command_concurrency`] commands in flight.
    pub commands_concurrent: Option<Percentiles>,
    pub command_concurrency: usize,
    /// Whether events were flowing while the commands were timed.
    pub commands_under_load: bool,
}

/// Latency percentiles of `count` samples, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Percentiles {
    pub count: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Run {
    /// What each connected agent costs the server: (connected − idle) / agents, in KiB.
    /// Negative if the resident set shrank; NaN for a run of no agents.
    pub fn rss_per_agent_kib(&self) -> f64 {
        if self.agents == 0 {
            return f64::NAN;
        }
        (self.rss_connected_kib as f64 - self.rss_idle_kib as f64) / self.agents as f64
    }

    /// Whether `other` measures the same thing, so that the later of the two replaces
    /// the earlier in [`Results::merge`].
    pub fn same_measurement(&self, other: &Run) -> bool {
        self.server == other.server && self.database == other.database && self.agents == other.agents
    }
}

impl Results {
    /// Empty results dated now.
    pub fn new(commit: impl Into<String>, machine: impl Into<String>) -> Results {
        Results {
            commit: commit.into(),
            date: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            machine: machine.into(),
            runs: Vec::new(),
        }
    }

    /// Reads results written by [`Results::write`].
    pub fn read(path: impl AsRef<Path>) -> Result<Results> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {} as fleet benchmark results", path.display()))
    }

    /// Writes pretty JSON atomically: into a temporary file beside `path`, then renamed
    /// over it, so a reader never sees half a file and a failed write keeps the old one.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let mut json = serde_json::to_string_pretty(self).context("encoding the results as JSON")?;
        json.push('\n');
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let mut temp = tempfile::Builder::new()
            .prefix(".results-")
            .suffix(".json.tmp")
            .tempfile_in(dir)
            .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
        temp.write_all(json.as_bytes())
            .and_then(|()| temp.as_file().sync_all())
            .with_context(|| format!("writing {}", temp.path().display()))?;
        temp.persist(path).with_context(|| format!("renaming the results into {}", path.display()))?;
        Ok(())
    }

    /// Adds `other`'s runs to these. A run of `other` replaces one here with the same
    /// (server, database, agents) in its place; the rest are appended in `other`'s
    /// order. The commit, date and machine become `other`'s, the later results'.
    pub fn merge(&mut self, other: Results) {
        let Results { commit, date, machine, runs } = other;
        for run in runs {
            match self.runs.iter_mut().find(|earlier| earlier.same_measurement(&run)) {
                Some(earlier) => *earlier = run,
                None => self.runs.push(run),
            }
        }
        self.commit = commit;
        self.date = date;
        self.machine = machine;
    }
}

/// Nearest-rank percentiles of `samples` (sorted in place); `None` when there are none.
pub fn percentiles(samples: &mut [Duration]) -> Option<Percentiles> {
    samples.sort_unstable();
    let max = *samples.last()?;
    let count = samples.len();
    let at = |percent: usize| {
        // The nearest rank: the smallest sample with at least `percent`% of the samples
        // at or below it, i.e. rank ⌈percent × count / 100⌉, counted from 1.
        let rank = (percent * count).div_ceil(100).max(1);
        ms(samples[rank - 1])
    };
    Some(Percentiles { count, p50_ms: at(50), p95_ms: at(95), p99_ms: at(99), max_ms: ms(max) })
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The machine in a few words, `"2 cores, 24 GiB"`: the cores this process may use and
/// the memory in /proc/meminfo (left out where there is none).
pub fn describe_machine() -> String {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let cores = format!("{cores} {}", if cores == 1 { "core" } else { "cores" });
    let memory_kib = std::fs::read_to_string("/proc/meminfo").ok().and_then(|meminfo| {
        meminfo
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    });
    match memory_kib {
        Some(kib) => format!("{cores}, {} GiB", (kib as f64 / (1024.0 * 1024.0)).round()),
        None => cores,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(server: Server, database: Option<&str>, agents: usize) -> Run {
        Run {
            server,
            database: database.map(str::to_owned),
            agents,
            connect_seconds: agents as f64 / 500.0,
            rss_idle_kib: 30_000,
            rss_connected_kib: 30_000 + 64 * agents as u64,
            events_per_second: Some(40_000.0),
            commands_sequential: Some(Percentiles { count: 100, p50_ms: 0.7, p95_ms: 1.1, p99_ms: 1.6, max_ms: 2.5 }),
            commands_concurrent: None,
            command_concurrency: 64,
            commands_under_load: false,
        }
    }

    #[test]
    fn results_survive_a_round_trip_through_a_file() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("results.json");
        let mut results = Results::new("3e1f77f", "2 cores, 24 GiB");
        results.runs = vec![run(Server::Dockflare, Some("sqlite"), 100), run(Server::Floor, None, 100)];
        results.write(&path)?;
        let text = std::fs::read_to_string(&path)?;
        assert!(text.contains("\"server\": \"dockflare\"") && text.contains("\"server\": \"floor\""), "{text}");
        assert!(text.contains("\"database\": null"), "{text}");
        assert_eq!(Results::read(&path)?, results);
        // Only the file itself is left behind.
        assert_eq!(std::fs::read_dir(dir.path())?.count(), 1);
        // Rewriting replaces it.
        results.commit = "0123abc".into();
        results.write(&path)?;
        assert_eq!(Results::read(&path)?.commit, "0123abc");
        Ok(())
    }

    #[test]
    fn a_later_run_replaces_an_earlier_one_of_the_same_server_database_and_size() {
        let mut earlier = Results::new("aaaaaaa", "2 cores, 24 GiB");
        earlier.runs = vec![
            run(Server::Dockflare, Some("sqlite"), 100),
            run(Server::Dockflare, Some("sqlite"), 1000),
            run(Server::Floor, None, 100),
        ];
        let mut later = Results::new("bbbbbbb", "4 cores, 8 GiB");
        let mut replacement = run(Server::Dockflare, Some("sqlite"), 1000);
        replacement.connect_seconds = 99.0;
        later.runs = vec![replacement.clone(), run(Server::Dockflare, Some("postgres"), 1000)];
        earlier.merge(later);
        assert_eq!(earlier.commit, "bbbbbbb");
        assert_eq!(earlier.machine, "4 cores, 8 GiB");
        let keys: Vec<_> = earlier.runs.iter().map(|run| (run.server, run.database.as_deref(), run.agents)).collect();
        assert_eq!(
            keys,
            [
                (Server::Dockflare, Some("sqlite"), 100),
                (Server::Dockflare, Some("sqlite"), 1000),
                (Server::Floor, None, 100),
                (Server::Dockflare, Some("postgres"), 1000),
            ]
        );
        assert_eq!(earlier.runs[1], replacement);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut samples: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let p = percentiles(&mut samples);
        assert_eq!(p, Some(Percentiles { count: 100, p50_ms: 50.0, p95_ms: 95.0, p99_ms: 99.0, max_ms: 100.0 }));
        let mut one = [Duration::from_micros(1500)];
        assert_eq!(
            percentiles(&mut one),
            Some(Percentiles { count: 1, p50_ms: 1.5, p95_ms: 1.5, p99_ms: 1.5, max_ms: 1.5 })
        );
        let mut ten: Vec<Duration> = (1..=10).map(Duration::from_millis).collect();
        let p = percentiles(&mut ten);
        assert_eq!(p.map(|p| (p.p50_ms, p.p95_ms, p.p99_ms)), Some((5.0, 10.0, 10.0)));
        assert_eq!(percentiles(&mut []), None);
    }

    #[test]
    fn rss_per_agent_is_the_growth_from_idle_shared_out() {
        let mut r = run(Server::Floor, None, 1000);
        r.rss_idle_kib = 10_000;
        r.rss_connected_kib = 60_000;
        assert_eq!(r.rss_per_agent_kib(), 50.0);
        r.rss_connected_kib = 9_000;
        assert_eq!(r.rss_per_agent_kib(), -1.0);
        r.agents = 0;
        assert!(r.rss_per_agent_kib().is_nan());
    }

    #[test]
    fn the_machine_is_described_in_cores_and_memory() {
        let machine = describe_machine();
        assert!(machine.contains("core"), "{machine}");
    }
}
