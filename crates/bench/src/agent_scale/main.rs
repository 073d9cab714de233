//! The agent at scale, on the real Docker engine with the real master (offline: its built-in
//! Cloudflare emulator, the local edge as the tunnel connector) and the real agent:
//!
//! 1. **Baseline size.** `--baseline-containers` labelled origin containers, then the agent: its
//!    first listing and `--relists` periodic full relists, each timed by the agent itself (its
//!    log records "Docker inventory listed." and "Docker inventory relisted.", `took_ms`), and its
//!    memory.
//! 2. **Full size.** More containers up to `--containers`, then `--relists` relists of all of
//!    them, and the agent's memory.
//! 3. Every route live: each hostname answers 200 through the local edge.
//! 4. `--singles` + `--burst` containers removed (a Linux bridge has at most 1,024 ports: the
//!    starts replace them), and a relist that saw it.
//! 5. **Baseline start.** `--singles` containers started one after the other: `docker run` → the
//!    first HTTP 200 for its hostname through the local edge (as `deploy/bench-first-request.sh`).
//! 6. **Burst.** `--burst` containers started at once, each timed the same way from the moment
//!    its own `docker run` was issued: p50 / p90 / p99 / max.
//! 7. **Where the burst's time went.** Each start's way split into steps from what each part
//!    logged ([`timeline`]): the engine (docker run → running), the agent (running → seen →
//!    attached to the connector network), the master (→ the reconcile pass that routes it
//!    begins), the pass and the edge (→ the edge loads the route), and the edge (→ first 200).
//!
//! ```sh
//! cargo build --release -p dockflare-master -p dockflare-agent -p dockflare-bench --bin agent_bench
//! deploy/images.sh
//! target/release/agent_bench --containers 1000 --burst 100 [--json r.json]
//! ```

mod containers;
mod edge;
mod timeline;

use anyhow::{bail, ensure, Context, Result};
use clap::Parser;
use containers::{Fleet, Started};
use dockflare_bench::figures::{mib, time_until_share, Figures};
use dockflare_testsupport::{docker, require_docker, unique, Agent, Master, MasterOptions};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};
use timeline::{Marks, WallClock};

/// The connector the agent runs for an offline master.
const EDGE_IMAGE: &str = "dockflare/local-edge:latest";

#[derive(Parser, Debug)]
#[command(about = "Times the real agent's full relist and docker run → route live under a burst of starts.")]
struct Args {
    /// Labelled containers at full size.
    #[arg(long, default_value_t = 1000)]
    containers: usize,
    /// Labelled containers at the baseline size (measured first, in the same run).
    #[arg(long, default_value_t = 100)]
    baseline_containers: usize,
    /// Containers started at once in the burst.
    #[arg(long, default_value_t = 100)]
    burst: usize,
    /// Containers started one at a time before the burst (its baseline).
    #[arg(long, default_value_t = 5)]
    singles: usize,
    /// Periodic relists timed at each size.
    #[arg(long, default_value_t = 3)]
    relists: usize,
    /// The agent's --relist-interval.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    relist_interval: Duration,
    /// `docker run`s at a time while setting up.
    #[arg(long, default_value_t = 8)]
    parallel: usize,
    /// Longest any phase may take.
    #[arg(long, default_value = "600s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// The full relist should take at most this long.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    relist_target: Duration,
    /// Also write the figures to this file as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    match run(&Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("agent_bench FAILED: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Removes the run's containers and network however the run ends.
struct Cleanup {
    fleet: Fleet,
    network: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.fleet.remove_all();
        let _ = docker(&["network", "rm", &self.network]);
    }
}

async fn run(args: &Args) -> Result<()> {
    ensure!(
        args.baseline_containers > 0 && args.containers > args.baseline_containers,
        "--containers must be more than --baseline-containers (at least 1)"
    );
    ensure!(args.burst > 0 && args.relists > 0, "--burst and --relists must be at least 1");
    require_docker();
    if docker(&["image", "inspect", "--format", "{{.Id}}", EDGE_IMAGE]).is_err() {
        bail!("image {EDGE_IMAGE} is missing: run deploy/images.sh");
    }
    let title = format!(
        "DockFlare agent at scale: {} then {} labelled containers, a burst of {} starts (real engine, offline master, local edge)",
        args.baseline_containers, args.containers, args.burst
    );
    let mut figures = Figures::new(title);
    let outcome = measure(args, &mut figures).await;
    println!("{}", figures.render());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&figures.json())?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    outcome
}

async fn measure(args: &Args, figures: &mut Figures) -> Result<()> {
    let clock = WallClock::now();
    let fleet = Fleet::new(&unique("ab"));
    let network = format!("{}-net", fleet.unique);
    let _cleanup = Cleanup { fleet: fleet.clone(), network: network.clone() };
    let emulator_port = free_port()?;
    let edge_port = free_port()?;
    let master = Master::start_with(MasterOptions {
        // The emulator has no rate limit to protect: the request budget is not what is measured;
        // nor is the per-agent route quota (200 by default), which a host of 1,000 exceeds.
        args: vec![
            "--offline-emulator-listen".into(),
            format!("0.0.0.0:{emulator_port}"),
            "--cf-requests-per-5min".into(),
            "100000".into(),
            "--max-routes-per-agent".into(),
            (args.containers + 64).to_string(),
        ],
        ..MasterOptions::default()
    })
    .await?;
    let token = master.join_token(1).await?;

    eprintln!("==> starting {} labelled containers", args.baseline_containers);
    fleet.run_many(0..args.baseline_containers, Some(args.parallel)).await?;
    let relist_every = humantime::format_duration(args.relist_interval).to_string();
    let publish = format!("{edge_port}:8080");
    let agent = Agent::start_with(
        &[master.url()],
        &token,
        &[
            "--mode",
            "standalone",
            "--scope",
            &fleet.scope,
            "--network",
            &network,
            "--cloudflared-image",
            EDGE_IMAGE,
            "--connector-publish",
            &publish,
            "--relist-interval",
            &relist_every,
        ],
    )?;
    let listed = wait_listing(&agent, "Docker inventory listed.", args.baseline_containers, 1, args.timeout).await?;
    figures.row(
        &format!("first listing of {} containers (agent's took_ms)", args.baseline_containers),
        format!("{} ms", listed[0]),
        listed[0],
    );
    let small = wait_listing(&agent, RELISTED, args.baseline_containers, args.relists, args.timeout).await?;
    relist_rows(figures, args.baseline_containers, &small);
    memory_row(figures, &agent, args.baseline_containers)?;

    eprintln!("==> starting {} more labelled containers", args.containers - args.baseline_containers);
    fleet.run_many(args.baseline_containers..args.containers, Some(args.parallel)).await?;
    let large = wait_listing(&agent, RELISTED, args.containers, args.relists, args.timeout).await?;
    relist_rows(figures, args.containers, &large);
    let worst = large.iter().copied().max().unwrap_or(0);
    figures.row(
        &format!("target: every relist of {} ≤ {:?}", args.containers, args.relist_target),
        (u128::from(worst) <= args.relist_target.as_millis()).to_string(),
        u128::from(worst) <= args.relist_target.as_millis(),
    );
    memory_row(figures, &agent, args.containers)?;

    let edge = SocketAddr::from(([127, 0, 0, 1], edge_port));
    eprintln!("==> waiting for every route to answer 200 through the local edge on {edge}");
    edge::wait_answering(edge, args.timeout).await?;
    let all: Vec<String> = (0..args.containers).map(|i| fleet.hostname(i)).collect();
    let since = Instant::now();
    edge::first_200(edge, &all, args.timeout).await?;
    figures.duration(&format!("all {} routes answering (from the edge up)", args.containers), Some(since.elapsed()));

    // A Linux bridge takes at most 1,024 ports: the starts below replace containers, so that the
    // host stays at --containers (the agent attaches each to the connector network).
    let replaced = args.singles + args.burst;
    ensure!(replaced <= args.containers, "--singles + --burst must not exceed --containers");
    eprintln!("==> removing {replaced} containers to make room for the starts");
    fleet.remove(0..replaced).await?;
    wait_listing(&agent, RELISTED, args.containers - replaced, 1, args.timeout).await?;

    eprintln!("==> {} single starts", args.singles);
    let mut singles = Vec::new();
    for index in args.containers..args.containers + args.singles {
        let host = [fleet.hostname(index)];
        let (started, live) = tokio::join!(fleet.run(index), edge::first_200(edge, &host, args.timeout));
        let (started, live) = (started?, live?);
        let at = live.get(&started.hostname).context("a single start was not timed")?;
        singles.push(at.duration_since(started.issued));
    }
    latency_rows(figures, &format!("baseline: {} single starts, docker run → first 200", args.singles), singles);

    eprintln!("==> a burst of {} starts", args.burst);
    let first = args.containers + args.singles;
    let hosts: Vec<String> = (first..first + args.burst).map(|i| fleet.hostname(i)).collect();
    let burst_began = Instant::now();
    let (started, live) =
        tokio::join!(fleet.run_many(first..first + args.burst, None), edge::first_200(edge, &hosts, args.timeout));
    let (started, live) = (started?, live?);
    let mut latencies = Vec::new();
    let mut runs = Vec::new();
    for run in &started {
        let at = live.get(&run.hostname).with_context(|| format!("{} was not timed", run.hostname))?;
        latencies.push(at.duration_since(run.issued));
        runs.push(run.returned.duration_since(run.issued));
    }
    let all_live = live.values().max().map(|at| at.duration_since(burst_began));
    latency_rows(figures, &format!("burst of {}: docker run → first 200", args.burst), latencies);
    latency_rows(figures, &format!("burst of {}: docker run itself", args.burst), runs);
    figures.duration(&format!("burst of {}: all live (from the first docker run)", args.burst), all_live);
    memory_row(figures, &agent, args.containers)?;

    eprintln!("==> where the burst's time went");
    let marks = burst_marks(&fleet, &network, &master, &agent, &started, &live, &clock).await?;
    breakdown_rows(figures, args.burst, &marks);
    Ok(())
}

/// Each burst start's marks, from the engine, the agent's and the master's logs, the edge's log
/// and the bench's own clock.
async fn burst_marks(
    fleet: &Fleet,
    network: &str,
    master: &Master,
    agent: &Agent,
    started: &[Started],
    live: &BTreeMap<String, Instant>,
    clock: &WallClock,
) -> Result<Vec<Marks>> {
    let names: Vec<String> = started.iter().map(|run| run.name.clone()).collect();
    let hosts: Vec<String> = started.iter().map(|run| run.hostname.clone()).collect();
    let running = fleet.started_at(&names).await?;
    let seen = timeline::first_records_by(&agent.logs.records("Container started."), "container")?;
    let attached =
        timeline::first_records_by(&agent.logs.records("Container attached to the connector network."), "container")?;
    let active: Vec<serde_json::Value> = master
        .logs
        .records("Route.")
        .into_iter()
        .filter(|record| record.get("status").and_then(|s| s.as_str()) == Some("active"))
        .collect();
    let routed = timeline::first_records_by(&active, "hostname")?;
    let passes = timeline::passes(&master.logs.records("Reconcile pass."))?;
    let loaded = timeline::first_mention(&edge_configurations(network).await?, &hosts);
    Ok(started
        .iter()
        .map(|run| {
            let pass = routed.get(&run.hostname).and_then(|at| timeline::pass_of(*at, &passes));
            Marks {
                issued: Some(clock.wall(run.issued)),
                running: running.get(&run.name).copied(),
                seen: seen.get(&run.name).copied(),
                attached: attached.get(&run.name).copied(),
                pass_began: pass.map(|p| p.ended - p.took),
                pass_ended: pass.map(|p| p.ended),
                edge_loaded: loaded.get(&run.hostname).copied(),
                answered: live.get(&run.hostname).map(|at| clock.wall(*at)),
            }
        })
        .collect())
}

/// The local edge's "Updated to new configuration" lines with their times (`docker logs
/// --timestamps` of the connector the agent runs on `network`).
async fn edge_configurations(network: &str) -> Result<Vec<(SystemTime, String)>> {
    let ids = docker(&["ps", "-q", "--filter", &format!("network={network}"), "--filter", "label=dockflare.managed"])?;
    let id = ids.split_whitespace().next().with_context(|| format!("no connector container on {network}"))?;
    let output = tokio::process::Command::new("docker")
        .args(["logs", "--timestamps", id])
        .output()
        .await
        .context("running the docker CLI")?;
    ensure!(output.status.success(), "docker logs {id}: {}", String::from_utf8_lossy(&output.stderr).trim());
    let text = [String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)].concat();
    Ok(text
        .lines()
        .filter(|line| line.contains("Updated to new configuration"))
        .filter_map(timeline::timestamped)
        .collect())
}

/// A row per step (min / p50 / p90 / p99 / max / mean), the passes that routed the burst, and the
/// slowest start's own steps.
fn breakdown_rows(figures: &mut Figures, burst: usize, marks: &[Marks]) {
    for (step, took) in timeline::step_durations(marks) {
        let at = |share| timeline::at_share(&took, share);
        let mean = if took.is_empty() { 0 } else { took.iter().sum::<i64>() / took.len() as i64 };
        let (min, p50, p90, p99, max) = (took.first().copied().unwrap_or(0), at(0.5), at(0.9), at(0.99), at(1.0));
        figures.row(
            &format!("burst of {burst}, step {step}"),
            format!(
                "min {min} / p50 {p50} / p90 {p90} / p99 {p99} / max {max} / mean {mean} ms ({} of {burst} starts)",
                took.len()
            ),
            serde_json::json!({
                "min_ms": min, "p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "max_ms": max, "mean_ms": mean,
                "samples": took.len(),
            }),
        );
    }
    let mut passes: Vec<(SystemTime, SystemTime)> =
        marks.iter().filter_map(|m| Some((m.pass_began?, m.pass_ended?))).collect();
    passes.sort();
    passes.dedup();
    let took: Vec<i64> = passes.iter().map(|(began, ended)| timeline::millis_between(*began, *ended)).collect();
    figures.row(
        &format!("burst of {burst}: reconcile passes that routed it, each pass's time"),
        format!("{} passes: {took:?} ms", passes.len()),
        serde_json::json!({ "passes": passes.len(), "took_ms": took }),
    );
    if let Some(slowest) = marks.iter().max_by_key(|m| timeline::total(m).unwrap_or(i64::MIN)) {
        let steps: Vec<String> = timeline::STEPS
            .iter()
            .map(|(step, from, to)| match (from(slowest), to(slowest)) {
                (Some(from), Some(to)) => format!("{step}: {} ms", timeline::millis_between(from, to)),
                _ => format!("{step}: not logged"),
            })
            .collect();
        figures.row(
            &format!(
                "burst of {burst}: the slowest start ({} ms), step by step",
                timeline::total(slowest).unwrap_or(-1)
            ),
            steps.join("; "),
            serde_json::json!(steps),
        );
    }
}

const RELISTED: &str = "Docker inventory relisted.";

/// The `took_ms` of the first `count` agent log records `message` that listed exactly
/// `containers` containers, waiting (at most `timeout`) until there are that many.
async fn wait_listing(
    agent: &Agent,
    message: &str,
    containers: usize,
    count: usize,
    timeout: Duration,
) -> Result<Vec<u64>> {
    let what = format!("{count} agent log records {message:?} with {containers} containers");
    dockflare_testsupport::eventually(&what, timeout, || async {
        let took: Vec<u64> = agent
            .logs
            .records(message)
            .iter()
            .filter(|record| record.get("containers").and_then(|c| c.as_u64()) == Some(containers as u64))
            .filter_map(|record| record.get("took_ms").and_then(|t| t.as_u64()))
            .take(count)
            .collect();
        if took.len() == count {
            return Ok(Some(took));
        }
        let seen: Vec<String> =
            agent.logs.records(message).iter().filter_map(|r| r.get("containers").map(|c| c.to_string())).collect();
        bail!("{} of {count} so far (containers seen: {seen:?})", took.len())
    })
    .await
}

fn relist_rows(figures: &mut Figures, containers: usize, took: &[u64]) {
    let mut sorted = took.to_vec();
    sorted.sort_unstable();
    let median = sorted[sorted.len() / 2];
    let max = sorted.last().copied().unwrap_or(0);
    figures.row(
        &format!("full relist of {containers} containers, median / max (agent's took_ms)"),
        format!("{median} / {max} ms ({} relists: {took:?})", took.len()),
        serde_json::json!({ "median_ms": median, "max_ms": max, "samples_ms": took }),
    );
}

/// A row of p50 / p90 / p99 / max of `latencies`, in milliseconds.
fn latency_rows(figures: &mut Figures, name: &str, mut latencies: Vec<Duration>) {
    latencies.sort();
    let at = |share| time_until_share(&latencies, latencies.len(), share).unwrap_or_default().as_millis() as u64;
    let (p50, p90, p99, max) = (at(0.5), at(0.9), at(0.99), at(1.0));
    figures.row(
        name,
        format!("p50 {p50} / p90 {p90} / p99 {p99} / max {max} ms ({} starts)", latencies.len()),
        serde_json::json!({ "p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "max_ms": max, "samples": latencies.len() }),
    );
}

fn memory_row(figures: &mut Figures, agent: &Agent, containers: usize) -> Result<()> {
    let pid = agent.pid().context("the agent is not running")?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("reading the agent's /proc status")?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let (rss, hwm) = (field("VmRSS:"), field("VmHWM:"));
    figures.row(
        &format!("agent memory with {containers} containers: VmRSS / VmHWM"),
        format!("{} / {}", mib(rss), mib(hwm)),
        serde_json::json!({ "rss_kib": rss, "hwm_kib": hwm }),
    );
    Ok(())
}

/// A port free on every interface right now (the emulator must be reachable from containers).
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind(("0.0.0.0", 0))?.local_addr()?.port())
}
