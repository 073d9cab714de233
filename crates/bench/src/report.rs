//! The figures: a two-column table, latency percentiles, and units.

use crate::Args;
use std::time::Duration;

pub struct Report {
    title: String,
    rows: Vec<(String, String)>,
}

impl Report {
    pub fn new(args: &Args, backend: &str, nofile: &crate::process::NofileLimits) -> Report {
        Report {
            title: format!(
                "DockFlare fleet benchmark: {} agents, {} events/agent, {} commands/round, {backend}, {} cores, \
                 RLIMIT_NOFILE harness {} master {}",
                args.agents,
                args.events_per_agent,
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
