//! Where a started container's time goes on its way to a live route: the moments it passed each
//! step, read from what each part records on its own (the engine's `State.StartedAt`; the
//! agent's "Container started." and "Container attached to the connector network."; the
//! master's "Route." and "Reconcile pass." with its `took_ms`; the local edge's "Updated to new
//! configuration" under `docker logs --timestamps`), and the durations of the steps between
//! them. Every part runs on this machine, so their wall clocks are one clock. Reading the
//! records is at the edges; matching and measuring are plain functions.

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

/// The moments one start passed, each `None` when its record was not found.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Marks {
    /// The bench issued `docker run`.
    pub issued: Option<SystemTime>,
    /// The engine's `State.StartedAt`.
    pub running: Option<SystemTime>,
    /// The agent logged "Container started." (from an engine event or a relist).
    pub seen: Option<SystemTime>,
    /// The agent logged "Container attached to the connector network." (the edge can reach it).
    pub attached: Option<SystemTime>,
    /// The reconcile pass whose route table first held the route as active began.
    pub pass_began: Option<SystemTime>,
    /// That pass ended (its route table stored).
    pub pass_ended: Option<SystemTime>,
    /// The local edge loaded a configuration naming the hostname.
    pub edge_loaded: Option<SystemTime>,
    /// The hostname first answered 200 through the edge.
    pub answered: Option<SystemTime>,
}

/// Reads one of a start's marks.
pub type Mark = fn(&Marks) -> Option<SystemTime>;

/// The steps, in order: name and the two marks it lies between.
/// A negative step is one whose marks came in the other order (say, a route served before its
/// origin was attached).
pub const STEPS: [(&str, Mark, Mark); 6] = [
    ("engine: docker run → running (StartedAt)", |m| m.issued, |m| m.running),
    ("agent: running → seen (\"Container started.\")", |m| m.running, |m| m.seen),
    ("agent: seen → attached to the connector network", |m| m.seen, |m| m.attached),
    ("master: attached → its reconcile pass begins", |m| m.attached, |m| m.pass_began),
    ("pass begins → the edge loads the route", |m| m.pass_began, |m| m.edge_loaded),
    ("edge loaded → first 200", |m| m.edge_loaded, |m| m.answered),
];

/// This process's monotonic clock read as wall time (the other parts log wall time).
#[derive(Clone, Copy, Debug)]
pub struct WallClock {
    instant: Instant,
    wall: SystemTime,
}

impl WallClock {
    pub fn now() -> WallClock {
        WallClock { instant: Instant::now(), wall: SystemTime::now() }
    }

    /// `at` as wall time.
    pub fn wall(&self, at: Instant) -> SystemTime {
        match at.checked_duration_since(self.instant) {
            Some(after) => self.wall + after,
            None => self.wall - self.instant.duration_since(at),
        }
    }
}

/// Signed milliseconds from `from` to `to` (negative when `to` came first).
pub fn millis_between(from: SystemTime, to: SystemTime) -> i64 {
    match to.duration_since(from) {
        Ok(forward) => forward.as_millis() as i64,
        Err(backward) => -(backward.duration().as_millis() as i64),
    }
}

/// Each step's durations over `marks` (starts missing either mark of a step are left out of it),
/// in milliseconds, sorted.
pub fn step_durations(marks: &[Marks]) -> Vec<(&'static str, Vec<i64>)> {
    STEPS
        .iter()
        .map(|(name, from, to)| {
            let mut took: Vec<i64> = marks.iter().filter_map(|m| Some(millis_between(from(m)?, to(m)?))).collect();
            took.sort_unstable();
            (*name, took)
        })
        .collect()
}

/// The value below which `share` of `sorted` lies (nearest rank; 0 when empty).
pub fn at_share(sorted: &[i64], share: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((share * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The whole way of a start, `docker run` issued → first 200, in milliseconds.
pub fn total(marks: &Marks) -> Option<i64> {
    Some(millis_between(marks.issued?, marks.answered?))
}

/// A reconcile pass as the master logged it: when it ended and how long it took.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pass {
    pub ended: SystemTime,
    pub took: Duration,
}

/// The pass that stored a route logged at `routed`: the first to end at or after it (the master
/// logs each changed route while storing the table, then the pass).
pub fn pass_of(routed: SystemTime, passes: &[Pass]) -> Option<Pass> {
    passes.iter().filter(|pass| pass.ended >= routed).min_by_key(|pass| pass.ended).copied()
}

/// When each of `hosts` first appears in a timestamped line containing `"host"` (quoted, so that
/// `c1.x` does not match `c10.x`; plain in the edge's text log, escaped in a JSON one).
pub fn first_mention(lines: &[(SystemTime, String)], hosts: &[String]) -> BTreeMap<String, SystemTime> {
    let mut first = BTreeMap::new();
    for (at, line) in lines {
        for host in hosts {
            let named = line.contains(&format!("\"{host}\"")) || line.contains(&format!("\\\"{host}\\\""));
            if !first.contains_key(host) && named {
                first.insert(host.clone(), *at);
            }
        }
    }
    first
}

/// A line of `docker logs --timestamps`: its RFC 3339 time and the rest.
pub fn timestamped(line: &str) -> Option<(SystemTime, String)> {
    let (time, rest) = line.split_once(' ')?;
    Some((humantime::parse_rfc3339_weak(time).ok()?, rest.to_string()))
}

/// The `timestamp` of a JSON log record (tracing-subscriber's RFC 3339).
pub fn record_time(record: &serde_json::Value) -> Result<SystemTime> {
    let text = record.get("timestamp").and_then(|t| t.as_str()).context("a log record without a timestamp")?;
    humantime::parse_rfc3339_weak(text).with_context(|| format!("log record timestamp {text:?}"))
}

/// Per log record with `message`: the value of `key` (a string) and the record's time, the
/// first record of each value kept.
pub fn first_records_by(records: &[serde_json::Value], key: &str) -> Result<BTreeMap<String, SystemTime>> {
    let mut first = BTreeMap::new();
    for record in records {
        let Some(value) = record.get(key).and_then(|v| v.as_str()) else { continue };
        if !first.contains_key(value) {
            first.insert(value.to_string(), record_time(record)?);
        }
    }
    Ok(first)
}

/// The master's passes from its "Reconcile pass." records.
pub fn passes(records: &[serde_json::Value]) -> Result<Vec<Pass>> {
    records
        .iter()
        .map(|record| {
            let took = record.get("took_ms").and_then(|t| t.as_u64());
            let Some(took) = took else { bail!("a \"Reconcile pass.\" record without took_ms: {record}") };
            Ok(Pass { ended: record_time(record)?, took: Duration::from_millis(took) })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64, millis: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds) + Duration::from_millis(millis)
    }

    #[test]
    fn monotonic_moments_read_as_wall_time() {
        let clock = WallClock::now();
        let later = clock.instant + Duration::from_millis(1500);
        assert_eq!(millis_between(clock.wall, clock.wall(later)), 1500);
        if let Some(earlier) = clock.instant.checked_sub(Duration::from_millis(20)) {
            assert_eq!(millis_between(clock.wall, clock.wall(earlier)), -20);
        }
    }

    #[test]
    fn the_pass_of_a_route_is_the_first_to_end_at_or_after_it() {
        let passes = [
            Pass { ended: at(10, 0), took: Duration::from_millis(300) },
            Pass { ended: at(12, 0), took: Duration::from_millis(900) },
            Pass { ended: at(11, 500), took: Duration::from_millis(100) },
        ];
        assert_eq!(pass_of(at(11, 0), &passes), Some(passes[2]));
        assert_eq!(pass_of(at(12, 0), &passes), Some(passes[1]));
        assert_eq!(pass_of(at(12, 1), &passes), None);
    }

    #[test]
    fn steps_measure_between_their_marks_and_skip_missing_ones() {
        let whole = Marks {
            issued: Some(at(0, 0)),
            running: Some(at(2, 0)),
            seen: Some(at(2, 50)),
            attached: Some(at(2, 80)),
            pass_began: Some(at(3, 0)),
            pass_ended: Some(at(4, 0)),
            edge_loaded: Some(at(3, 400)),
            answered: Some(at(3, 420)),
        };
        let partial = Marks { issued: Some(at(0, 0)), running: Some(at(5, 0)), ..Marks::default() };
        let steps = step_durations(&[whole, partial]);
        assert_eq!(steps[0].1, vec![2000, 5000]);
        assert_eq!(steps[1].1, vec![50]);
        assert_eq!(steps[2].1, vec![30]);
        assert_eq!(steps[3].1, vec![920]);
        assert_eq!(steps[4].1, vec![400]);
        assert_eq!(steps[5].1, vec![20]);
        assert_eq!(millis_between(at(3, 0), at(2, 500)), -500);
        assert_eq!(total(&whole), Some(3420));
        assert_eq!(total(&partial), None);
    }

    #[test]
    fn shares_are_nearest_rank() {
        let sorted: Vec<i64> = (1..=100).collect();
        assert_eq!(at_share(&sorted, 0.5), 50);
        assert_eq!(at_share(&sorted, 0.99), 99);
        assert_eq!(at_share(&sorted, 1.0), 100);
        assert_eq!(at_share(&[-5, 7], 0.5), -5);
        assert_eq!(at_share(&[], 0.5), 0);
    }

    #[test]
    fn a_hostname_is_matched_whole_in_the_first_line_naming_it() {
        let lines = vec![
            (at(1, 0), r#"Updated to new configuration version=3 config={"hostname":"c10.x"}"#.to_string()),
            (
                at(2, 0),
                r#"Updated to new configuration version=4 config={"hostname":"c1.x"},{"hostname":"c10.x"}"#.to_string(),
            ),
        ];
        let lines = [lines, vec![(at(3, 0), r#"{"config":"{\"hostname\":\"c2.x\"}"}"#.to_string())]].concat();
        let hosts = vec!["c1.x".to_string(), "c10.x".to_string(), "c2.x".to_string()];
        let first = first_mention(&lines, &hosts);
        assert_eq!(first.get("c10.x"), Some(&at(1, 0)));
        assert_eq!(first.get("c1.x"), Some(&at(2, 0)));
        assert_eq!(first.get("c2.x"), Some(&at(3, 0)));
        assert_eq!(first_mention(&lines, &["c3.x".to_string()]).get("c3.x"), None);
    }

    #[test]
    fn docker_log_lines_and_log_records_carry_their_time() {
        let (time, rest) = timestamped("2026-12-07T08:11:26.123456789Z  INFO Updated").expect("a timestamped line");
        assert_eq!(time, humantime::parse_rfc3339("2026-12-07T08:11:26.123456789Z").expect("rfc 3339"));
        assert_eq!(rest, " INFO Updated");
        assert_eq!(timestamped("no time here"), None);
        let record =
            serde_json::json!({"timestamp": "2026-12-07T08:11:26.5Z", "message": "Reconcile pass.", "took_ms": 250});
        let passes = passes(&[record]).expect("a pass");
        assert_eq!(passes[0].took, Duration::from_millis(250));
        assert!(super::passes(&[serde_json::json!({"timestamp": "2026-12-07T08:11:26.5Z"})]).is_err());
    }
}
