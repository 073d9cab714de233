//! A benchmark's figures: a two-column table (as fleet_bench prints) and the same rows as JSON,
//! and the pure arithmetic behind them (time until a share of the fleet is back, attempts,
//! percentiles, counters read from a /metrics text).

use serde_json::{Map, Value};
use std::time::Duration;

/// Rows in order, each with its text and, for the JSON, its value.
pub struct Figures {
    title: String,
    rows: Vec<(String, String, Value)>,
}

impl Figures {
    pub fn new(title: String) -> Figures {
        Figures { title, rows: Vec::new() }
    }

    /// A row: `name` (also the JSON key), its text, and its JSON value.
    pub fn row(&mut self, name: &str, text: impl Into<String>, value: impl Into<Value>) {
        self.rows.push((name.to_string(), text.into(), value.into()));
    }

    /// A duration row (text in seconds, JSON in seconds).
    pub fn duration(&mut self, name: &str, duration: Option<Duration>) {
        match duration {
            Some(duration) => self.row(name, secs(duration), duration.as_secs_f64()),
            None => self.row(name, "not reached", Value::Null),
        }
    }

    pub fn render(&self) -> String {
        let width = self.rows.iter().map(|(name, _, _)| name.chars().count()).max().unwrap_or(0);
        let mut text = format!("\n{}\n{}\n", self.title, "=".repeat(self.title.chars().count()));
        for (name, value, _) in &self.rows {
            text.push_str(&format!("{name:<width$}  {value}\n"));
        }
        text
    }

    /// A row of p50 / p99 / max of `latencies`, in milliseconds.
    pub fn latencies(&mut self, name: &str, latencies: Vec<Duration>) {
        let samples = latencies.len();
        let [p50, p99, max] = percentiles(latencies);
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        self.row(
            name,
            format!("{:.1} / {:.1} / {:.1} ms ({samples} commands)", ms(p50), ms(p99), ms(max)),
            serde_json::json!({ "p50_ms": ms(p50), "p99_ms": ms(p99), "max_ms": ms(max), "samples": samples }),
        );
    }

    pub fn json(&self) -> Value {
        let mut figures = Map::new();
        for (name, _, value) in &self.rows {
            figures.insert(name.clone(), value.clone());
        }
        serde_json::json!({ "title": self.title, "figures": figures })
    }
}

/// The time until `share` (0..=1) of `total` agents were back, from the sorted times of those
/// that came back; `None` when fewer came back.
pub fn time_until_share(sorted_back: &[Duration], total: usize, share: f64) -> Option<Duration> {
    if total == 0 {
        return Some(Duration::ZERO);
    }
    let needed = ((share * total as f64).ceil() as usize).clamp(1, total);
    sorted_back.get(needed - 1).copied()
}

/// p50, p99 and max of `latencies` (zero when empty).
pub fn percentiles(mut latencies: Vec<Duration>) -> [Duration; 3] {
    latencies.sort();
    let at = |share| time_until_share(&latencies, latencies.len(), share).unwrap_or_default();
    [at(0.5), at(0.99), at(1.0)]
}

/// Mean and maximum of the attempts per agent.
pub fn attempts_summary(attempts: &[u32]) -> (f64, u32) {
    let max = attempts.iter().copied().max().unwrap_or(0);
    let mean = if attempts.is_empty() {
        0.0
    } else {
        attempts.iter().map(|a| f64::from(*a)).sum::<f64>() / attempts.len() as f64
    };
    (mean, max)
}

/// The sum of a Prometheus counter's samples (every label set) in a /metrics text.
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| line.strip_prefix(name).is_some_and(|rest| rest.starts_with(['{', ' '])))
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .fold(0.0, |sum, value| sum + value)
}

/// The labelled samples of a counter: ("label=value,…", n).
pub fn metric_samples(text: &str, name: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix('{')?;
            let (labels, value) = rest.rsplit_once(' ')?;
            let labels = labels.trim().trim_end_matches('}').replace('"', "");
            Some((labels, value.parse().ok()?))
        })
        .collect()
}

pub fn secs(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}

pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_nearest_rank_of_the_whole_fleet() {
        let ms = Duration::from_millis;
        let back = [ms(10), ms(20), ms(30), ms(40)];
        assert_eq!(time_until_share(&back, 4, 0.5), Some(ms(20)));
        assert_eq!(time_until_share(&back, 4, 0.99), Some(ms(40)));
        assert_eq!(time_until_share(&back, 4, 1.0), Some(ms(40)));
        assert_eq!(time_until_share(&back, 5, 1.0), None, "one never came back");
        assert_eq!(time_until_share(&back, 5, 0.5), Some(ms(30)));
        assert_eq!(time_until_share(&[], 0, 1.0), Some(Duration::ZERO));
    }

    #[test]
    fn percentiles_of_a_hundred() {
        let latencies: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let [p50, p99, max] = percentiles(latencies);
        assert_eq!((p50, p99, max), (Duration::from_millis(50), Duration::from_millis(99), Duration::from_millis(100)));
        assert_eq!(percentiles(Vec::new()), [Duration::ZERO; 3]);
    }

    #[test]
    fn attempts_are_summarised() {
        assert_eq!(attempts_summary(&[1, 2, 3, 6]), (3.0, 6));
        assert_eq!(attempts_summary(&[]), (0.0, 0));
    }

    #[test]
    fn counters_are_read_from_the_metrics_text() {
        let text = "# TYPE dockflare_x_total counter\n\
                    dockflare_x_total{reason=\"eof\"} 3\n\
                    dockflare_x_total{reason=\"timeout\"} 2\n\
                    dockflare_x_total_other 9\n\
                    dockflare_y_total 4\n";
        assert_eq!(metric_sum(text, "dockflare_x_total"), 5.0);
        assert_eq!(metric_sum(text, "dockflare_y_total"), 4.0);
        assert_eq!(metric_sum(text, "dockflare_z_total"), 0.0);
        assert_eq!(metric_samples(text, "dockflare_x_total")[0], ("reason=eof".to_string(), 3.0));
    }

    #[test]
    fn rows_render_as_a_table_and_as_json() {
        let mut figures = Figures::new("Storm".into());
        figures.row("agents", "10", 10);
        figures.duration("100 % back", None);
        assert!(figures.render().contains("agents      10\n"), "{}", figures.render());
        assert_eq!(figures.json()["figures"]["agents"], 10);
        assert!(figures.json()["figures"]["100 % back"].is_null());
    }
}
