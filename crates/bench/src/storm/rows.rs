//! The storm's rows of the figures: shares of the fleet back over time, attempts, failures by
//! class, hints, the steps of the last attempts, and what the restarted master counted.

use crate::reconnect::{Outcome, Stats, Steps};
use crate::Args;
use dockflare_bench::figures::{attempts_summary, metric_samples, metric_sum, secs, time_until_share, Figures};
use dockflare_testsupport::Master;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The storm's rows: shares back over time (from `since`, named by `since_name`), attempts,
/// failures, hints.
pub fn report_storm(
    figures: &mut Figures,
    outcomes: &[Outcome],
    stats: &Stats,
    (since, since_name): (Instant, &str),
    args: &Args,
) {
    let n = outcomes.len();
    let mut back: Vec<Duration> =
        outcomes.iter().filter_map(|o| o.back_at).map(|at| at.saturating_duration_since(since)).collect();
    back.sort();
    for share in [50, 90, 99, 100] {
        let name = format!("back {share:>3} % (from {since_name}: Register + 2 streams + 1st receipt)");
        figures.duration(&name, time_until_share(&back, n, f64::from(share) / 100.0));
    }
    let gave_up = n - back.len();
    figures.row(
        "agents back / gave up",
        format!("{} / {gave_up}", back.len()),
        serde_json::json!({ "back": back.len(), "gave_up": gave_up }),
    );
    let last = back.last().copied();
    let met = last.is_some_and(|last| last <= args.target) && gave_up == 0;
    figures.row(&format!("target: all back within {}", secs(args.target)), if met { "met" } else { "MISSED" }, met);
    let attempts: Vec<u32> = outcomes.iter().map(|o| o.attempts).collect();
    let (mean, max) = attempts_summary(&attempts);
    figures.row(
        "attempts per agent, from the kill (mean / max)",
        format!("{mean:.2} / {max}"),
        serde_json::json!({ "mean": mean, "max": max }),
    );
    for (class, count, example) in stats.failures() {
        let text = match (count, example) {
            (0, _) | (_, None) => count.to_string(),
            (_, Some(example)) => format!("{count}  (first: {})", shorten(&example, 160)),
        };
        figures.row(&format!("failures: {}", class.name()), text, count);
    }
    let steps = stats.steps();
    for (name, step) in [
        ("  step: channel (TCP + TLS + HTTP/2)", (|s: &Steps| s.channel) as fn(&Steps) -> Duration),
        ("  step: Register + WatchCommands", |s| s.register),
        ("  step: status report -> receipt", |s| s.receipt),
    ] {
        let mut times: Vec<Duration> = steps.iter().map(step).collect();
        times.sort();
        let at = |share: f64| time_until_share(&times, times.len(), share).unwrap_or_default();
        figures.row(
            &format!("{name} of the last attempt (p50 / p90 / max)"),
            format!("{} / {} / {}", ms(at(0.5)), ms(at(0.9)), ms(at(1.0))),
            serde_json::json!({ "p50_s": at(0.5).as_secs_f64(), "p90_s": at(0.9).as_secs_f64(), "max_s": at(1.0).as_secs_f64() }),
        );
    }
    let (hints, honoured) = (stats.hints.load(Ordering::Relaxed), stats.hints_honoured.load(Ordering::Relaxed));
    figures.row(
        "retry hints received / honoured",
        format!("{hints} / {honoured}"),
        serde_json::json!({ "received": hints, "honoured": honoured }),
    );
}

/// What the restarted master counted: refused registrations, failed TLS handshakes, log problems.
pub async fn report_master_counters(figures: &mut Figures, master: &Master, args: &Args) {
    match master.metrics_text().await {
        Ok(text) => {
            if let Some(path) = &args.master_metrics {
                if let Err(error) = std::fs::write(path, &text) {
                    eprintln!("Cannot write {}: {error}", path.display());
                }
            }
            let refused = metric_sum(&text, "dockflare_registrations_refused_total");
            figures.row("master: registrations refused (busy)", format!("{refused:.0}"), refused);
            let tls = metric_sum(&text, "dockflare_tls_handshake_failures_total");
            let by_reason: Vec<String> = metric_samples(&text, "dockflare_tls_handshake_failures_total")
                .into_iter()
                .map(|(labels, n)| format!("{labels}: {n:.0}"))
                .collect();
            figures.row("master: TLS handshake failures", format!("{tls:.0} {by_reason:?}"), tls);
        }
        Err(error) => figures.row("master: /metrics", format!("unreadable: {error:#}"), serde_json::Value::Null),
    }
    let (mut warnings, mut errors) = (0u64, 0u64);
    for line in master.logs() {
        let level = serde_json::from_str::<serde_json::Value>(&line)
            .ok()
            .and_then(|record| record.get("level")?.as_str().map(str::to_string));
        match level.as_deref() {
            Some("WARN") => warnings += 1,
            Some("ERROR") => errors += 1,
            _ => {}
        }
    }
    figures.row(
        "master log after the restart: warnings / errors",
        format!("{warnings} / {errors}"),
        serde_json::json!({ "warnings": warnings, "errors": errors }),
    );
}

fn ms(duration: Duration) -> String {
    format!("{:.0} ms", duration.as_secs_f64() * 1000.0)
}

/// Failed attempts in all, and by class with the first of each.
pub fn failed(stats: &Stats) -> String {
    let failures = stats.failures();
    let total: u64 = failures.iter().map(|(_, count, _)| count).sum();
    let classes: Vec<String> = failures
        .into_iter()
        .filter(|(_, count, _)| *count > 0)
        .map(|(class, count, example)| {
            format!("{}={count} (first: {})", class.name(), shorten(&example.unwrap_or_default(), 120))
        })
        .collect();
    if classes.is_empty() {
        total.to_string()
    } else {
        format!("{total}: {}", classes.join(", "))
    }
}

pub fn shorten(text: &str, chars: usize) -> String {
    match text.char_indices().nth(chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}
