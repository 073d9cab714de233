//! The figures: a two-column table, latency percentiles, and units.

use crate::results::{Percentiles, Run, Server};
use crate::Args;
use std::time::Duration;

pub struct Report {
    title: String,
    rows: Vec<(String, String)>,
}

impl Report {
    pub fn new(
        args: &Args,
        server: Server,
        agents: usize,
        database: Option<&str>,
        nofile: &crate::process::NofileLimits,
    ) -> Report {
        let server = match server {
            Server::Dockflare => format!("DockFlare ({})", database.unwrap_or("sqlite")),
            Server::Floor => "the floor (bare tonic)".to_string(),
        };
        Report {
            title: format!(
                "Fleet benchmark, {server}: {agents} agents, {} events/agent, {} commands/round, {} cores, \
                 RLIMIT_NOFILE harness {} server {}",
                args.events_per_agent_for(agents),
                args.commands,
                crate::sample::cores(),
                nofile.harness,
                nofile.master,
            ),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, name: &str, value: impl Into<String>) {
        self.rows.push((name.to_string(), value.into()));
    }

    pub fn render(&self) -> String {
        let width = self.rows.iter().map(|(name, _)| name.chars().count()).max().unwrap_or(0);
        let mut text = format!("\n{}\n{}\n", self.title, "=".repeat(self.title.chars().count()));
        for (name, value) in &self.rows {
            text.push_str(&format!("{name:<width$}  {value}\n"));
        }
        text
    }
}

/// Latencies of one commands round.
pub struct Round {
    pub elapsed: Duration,
    pub call: Latencies,
    pub arrival: Latencies,
}

pub struct Latencies(pub Vec<Duration>);

impl Latencies {
    /// p50 / p95 / p99 / max in milliseconds (nearest rank).
    pub fn summary(&self) -> String {
        let mut sorted = self.0.clone();
        sorted.sort();
        if sorted.is_empty() {
            return "-".into();
        }
        let rank = |p: f64| sorted[((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
        let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1000.0);
        format!(
            "p50 {}  p95 {}  p99 {}  max {}",
            ms(rank(0.50)),
            ms(rank(0.95)),
            ms(rank(0.99)),
            ms(sorted[sorted.len() - 1])
        )
    }
}

pub fn secs(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}

pub fn kib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// The runs as one table: each size's DockFlare figures beside the floor's, and their ratio.
pub fn side_by_side(runs: &[Run]) -> String {
    let p99 = |p: &Option<Percentiles>| p.as_ref().map_or("-".to_string(), |p| format!("{:.1}", p.p99_ms));
    let mut text = String::from(
        "\n| agents | server | RSS per agent (KiB) | × floor | events/s | commands p99 sequential (ms) | \
         commands p99 16 in flight (ms) |\n|---:|---|---:|---:|---:|---:|---:|\n",
    );
    for run in runs {
        let floor = runs.iter().find(|other| other.server == Server::Floor && other.agents == run.agents);
        let ratio = match floor {
            Some(floor) if run.server != Server::Floor && floor.rss_per_agent_kib() > 0.0 => {
                format!("{:.2}", run.rss_per_agent_kib() / floor.rss_per_agent_kib())
            }
            _ => "-".to_string(),
        };
        let server = match (&run.server, &run.database) {
            (Server::Floor, _) => "floor".to_string(),
            (Server::Dockflare, database) => format!("DockFlare, {}", database.as_deref().unwrap_or("sqlite")),
        };
        text.push_str(&format!(
            "| {} | {server} | {:.1} | {ratio} | {} | {} | {} |\n",
            run.agents,
            run.rss_per_agent_kib(),
            run.events_per_second.map_or("-".to_string(), |rate| format!("{rate:.0}")),
            p99(&run.commands_sequential),
            p99(&run.commands_concurrent),
        ));
    }
    text
}
