//! Aggregate logging for things refused at a high rate (connections over a
//! limit, failed enrollments): each refusal is counted, and one line per
//! interval says how many there were, of which kind, from which sources.
//! An attack then costs a few log lines a minute, not one per attempt.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the counts are logged (when there are any).
pub const INTERVAL: Duration = Duration::from_secs(10);
/// Sources named in one line, busiest first.
const SOURCES_NAMED: usize = 5;

/// Counts per reason and per source since the last line.
#[derive(Debug, Default)]
struct Counts {
    by_reason: BTreeMap<&'static str, u64>,
    by_source: BTreeMap<IpAddr, u64>,
}

/// A shared tally; cloning shares it. Logging runs in a task started by [`Tally::spawn`].
#[derive(Clone, Debug)]
pub struct Tally {
    what: &'static str,
    counts: Arc<Mutex<Counts>>,
}

impl Tally {
    /// A tally whose lines say `what` ("Refused connections.", say), logged every [`INTERVAL`].
    pub fn spawn(what: &'static str) -> Tally {
        let tally = Tally { what, counts: Arc::default() };
        let ticker = tally.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(INTERVAL);
            interval.tick().await;
            loop {
                interval.tick().await;
                if Arc::strong_count(&ticker.counts) == 1 {
                    ticker.flush();
                    return;
                }
                ticker.flush();
            }
        });
        tally
    }

    /// Counts one refusal.
    pub fn record(&self, reason: &'static str, source: IpAddr) {
        let mut counts = self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *counts.by_reason.entry(reason).or_default() += 1;
        // Bounded: under a spread-out attack only the count grows, not the map.
        if counts.by_source.len() < 4096 || counts.by_source.contains_key(&source) {
            *counts.by_source.entry(source).or_default() += 1;
        }
    }

    /// Logs and resets the counts (nothing when there are none).
    pub fn flush(&self) {
        let counts = std::mem::take(&mut *self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        if let Some(line) = summary(&counts) {
            tracing::warn!(message = self.what, total = line.total, reasons = %line.reasons, sources = %line.sources, interval_s = INTERVAL.as_secs());
        }
    }
}

struct Summary {
    total: u64,
    reasons: String,
    sources: String,
}

fn summary(counts: &Counts) -> Option<Summary> {
    let total: u64 = counts.by_reason.values().sum();
    if total == 0 {
        return None;
    }
    let reasons = counts.by_reason.iter().map(|(reason, n)| format!("{reason}={n}")).collect::<Vec<_>>().join(" ");
    let mut sources: Vec<(&IpAddr, &u64)> = counts.by_source.iter().collect();
    sources.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let mut named = sources.iter().take(SOURCES_NAMED).map(|(ip, n)| format!("{ip}={n}")).collect::<Vec<_>>();
    if sources.len() > SOURCES_NAMED {
        named.push(format!("and {} more", sources.len() - SOURCES_NAMED));
    }
    Some(Summary { total, reasons, sources: named.join(" ") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_names_the_reasons_and_the_busiest_sources() {
        let mut counts = Counts::default();
        assert!(summary(&counts).is_none());
        counts.by_reason.insert("per_source_limit", 7);
        counts.by_reason.insert("total_limit", 1);
        for (i, n) in [3u64, 1, 1, 1, 1, 1].iter().enumerate() {
            counts.by_source.insert(IpAddr::from([127, 0, 0, i as u8 + 1]), *n);
        }
        let line = summary(&counts).expect("counts");
        assert_eq!(line.total, 8);
        assert_eq!(line.reasons, "per_source_limit=7 total_limit=1");
        assert_eq!(line.sources, "127.0.0.1=3 127.0.0.2=1 127.0.0.3=1 127.0.0.4=1 127.0.0.5=1 and 1 more");
    }
}
