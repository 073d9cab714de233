//! Reconnect-storm benchmark: one real `dockflare-master` and N simulated agents on 127.0.0.1;
//! the master is killed with SIGKILL under the connected fleet and started again on the same
//! port and data dir, and every agent comes back the way the real agent does.
//!
//! 1. **Baseline.** Enrolls N agents (one join token) and connects them `--connect-concurrency`
//!    at a time, each on its own TCP + TLS connection with its own certificate: Register, both
//!    streams, a status report and its receipt. Its time is the figure to compare with.
//! 2. **Storm.** `kill -9` of the master, then a restart. From the kill on, every agent runs a
//!    reconnect loop like the real agent's (agent/src/session.rs): a jittered exponential backoff
//!    (`--backoff-min` .. `--backoff-max`, the agent's defaults), a new channel per attempt, each
//!    failure classified (connection refused, TLS handshake, UNAVAILABLE, RESOURCE_EXHAUSTED, …)
//!    and counted; a retry hint (`grpc-retry-pushback-ms`) replaces the next backoff step. An
//!    agent is back when its status report's receipt comes; one not back `--give-up-after` the
//!    master listens again gives up.
//!
//! Figures (stdout; `--json FILE` too): restart → "Master listening.", then from listening the
//! time until 50, 90, 99 and 100 % of the agents are back, attempts per agent, failures by
//! class, hints received and honoured, what the master counted (refused registrations, failed
//! TLS handshakes), its memory. The run fails when an agent gave up, and with `--enforce` also
//! when the last agent was back later than `--target`.
//!
//! ```sh
//! cargo build --release -p dockflare-master -p dockflare-bench --bin storm_bench
//! target/release/storm_bench --agents 10000 [--database-url postgres://…] [--master-arg=--flag …]
//! ```
//!
//! With `--masters 2` (PostgreSQL) it measures two masters sharing the fleet instead
//! ([`cluster`]): the agents spread over both, commands through either reaching any agent, and
//! the loss of one master (`kill -9`, no restart) moving its agents to the other, timed from the
//! kill (`deploy/bench-cluster.sh`).
//!
//! (`deploy/bench-storm.sh` does both.) The harness and the master share the machine's cores: on
//! a small machine the agents' own TLS handshakes are part of what the figures measure.

mod backoff;
mod classify;
mod cluster;
mod master;
mod reconnect;
mod rows;
mod setup;

use anyhow::{bail, ensure, Context, Result};
use clap::Parser;
use dockflare_bench::figures::{mib, secs, Figures};
use dockflare_testsupport::{FakeAgent, Master};
use futures::StreamExt;
use reconnect::{all_back, come_back, Clock, Outcome, Policy, Stats, Target};
use rows::{failed, report_master_counters, report_storm};
use setup::{enroll_all, settle};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the storm prints progress.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(2);

#[derive(Parser, Debug)]
#[command(about = "Kills a real dockflare-master under N connected agents and times their way back.")]
pub struct Args {
    /// Number of simulated agents.
    #[arg(long, default_value_t = 10_000)]
    pub agents: usize,
    /// Enrollments and initial connections in progress at once (the baseline).
    #[arg(long, default_value_t = 64)]
    pub connect_concurrency: usize,
    /// Database of the master (default: SQLite in its data dir).
    #[arg(long)]
    pub database_url: Option<String>,
    /// Masters sharing the fleet: 1 (the restart storm) or 2 (two masters on one PostgreSQL
    /// database, the loss of one; needs `--database-url postgres://…`).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub masters: u8,
    /// Commands per round in the two-master run (sequential, spread over the fleet).
    #[arg(long, default_value_t = 200)]
    pub commands: usize,
    /// The master binary (default: `dockflare-master` beside this program).
    #[arg(long)]
    pub master_bin: Option<PathBuf>,
    /// An extra flag for the master, after the benchmark's (repeat; `--master-arg=--flag`).
    #[arg(long, allow_hyphen_values = true)]
    pub master_arg: Vec<String>,
    /// Also write every log line of the master to this file (both runs).
    #[arg(long)]
    pub master_log: Option<PathBuf>,
    /// Shortest reconnect wait (the real agent's).
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    pub backoff_min: Duration,
    /// Longest reconnect wait (the real agent's `--reconnect-max` default).
    #[arg(long, default_value = "4s", value_parser = humantime::parse_duration)]
    pub backoff_max: Duration,
    /// An agent not back this long after the master listens again gives up.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub give_up_after: Duration,
    /// Every agent should be back within this long after the master listens again.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub target: Duration,
    /// Fail (exit non-zero) when the last agent came back later than `--target`.
    #[arg(long)]
    pub enforce: bool,
    /// Also write the restarted master's /metrics, read after the storm, to this file.
    #[arg(long)]
    pub master_metrics: Option<PathBuf>,
    /// Also write the figures to this file as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Longest the enrollment or the baseline may take.
    #[arg(long, default_value = "600s", value_parser = humantime::parse_duration)]
    pub phase_timeout: Duration,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    match run(&args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("storm_bench FAILED: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> Result<()> {
    ensure!(args.agents > 0 && args.connect_concurrency > 0, "--agents and --connect-concurrency must be at least 1");
    ensure!(
        args.masters == 1 || args.database_url.as_deref().is_some_and(|url| url.starts_with("postgres")),
        "--masters 2 needs --database-url postgres://… (masters share a fleet through PostgreSQL)"
    );
    let nofile = master::raise_nofile_limit(args.agents)?;
    let backend = if args.database_url.is_some() { "PostgreSQL" } else { "SQLite" };
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut figures = Figures::new(format!(
        "DockFlare {}: {} agents, {backend}, {cores} cores, RLIMIT_NOFILE {nofile}",
        if args.masters == 1 { "reconnect storm" } else { "two masters, one fleet" },
        args.agents
    ));
    let started = Instant::now();
    let mut masters = vec![master::start(args, nofile, &[], "").await?];
    figures.duration("master start -> listening (first start)", Some(started.elapsed()));
    eprintln!("Master {} listening on {} ({backend}).", masters[0].pid().unwrap_or_default(), masters[0].addr);
    let outcome = if args.masters == 1 {
        storm(args, &mut masters[0], &mut figures).await
    } else {
        // The second master shares the database and the first one's CA.
        let pki = masters[0].pki_dir();
        let ca = ["--ca-cert".into(), path(&pki.join("ca.crt")), "--ca-key".into(), path(&pki.join("ca.key"))];
        match master::start(args, nofile, &ca, ".b").await {
            Ok(second) => {
                eprintln!("Master B {} listening on {}.", second.pid().unwrap_or_default(), second.addr);
                masters.push(second);
                cluster::run(args, &mut masters, &mut figures).await
            }
            Err(error) => Err(error.context("starting master B")),
        }
    };
    for master in &mut masters {
        let _ = master.kill9();
    }
    match &outcome {
        Ok(()) => println!("{}", figures.render()),
        Err(_) => eprintln!("Figures so far:{}", figures.render()),
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&figures.json())?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    outcome
}

/// Enrolls and connects the fleet, kills and restarts the master, and times the way back.
async fn storm(args: &Args, master: &mut Master, figures: &mut Figures) -> Result<()> {
    let target = Arc::new(Target { addrs: vec![master.addr], ca_pem: master.ca_pem()? });
    let policy = Policy { backoff_min: args.backoff_min, backoff_max: args.backoff_max };
    let n = args.agents;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);

    let started = Instant::now();
    let enrolled = phase("enroll", args.phase_timeout, enroll_all(master, &target, args)).await?;
    figures.duration(&format!("enroll {n} agents ({} at a time)", args.connect_concurrency), Some(started.elapsed()));

    // The baseline: the same agents' first connection, a few at a time.
    let baseline_stats = Stats::default();
    let (listening, clock) = Clock::new(args.phase_timeout);
    listening.send_replace(Some(Instant::now()));
    let started = Instant::now();
    let connected: Vec<(FakeAgent, Outcome)> = phase("baseline connect", args.phase_timeout, async {
        Ok(futures::stream::iter(enrolled)
            .map(|mut agent| {
                let (target, clock, stats) = (&target, &clock, &baseline_stats);
                async move {
                    let outcome = come_back(&mut agent, target, 0, &policy, clock, stats, false).await;
                    (agent, outcome)
                }
            })
            .buffer_unordered(args.connect_concurrency)
            .collect()
            .await)
    })
    .await?;
    let baseline = started.elapsed();
    let not_connected = connected.iter().filter(|(_, outcome)| outcome.back_at.is_none()).count();
    ensure!(not_connected == 0, "{not_connected} agents did not connect in the baseline");
    figures.row(
        "baseline: connect (Register + 2 streams + 1st receipt)",
        format!(
            "{} ({:.0} agents/s, {} failed attempts)",
            secs(baseline),
            n as f64 / baseline.as_secs_f64(),
            failed(&baseline_stats)
        ),
        baseline.as_secs_f64(),
    );
    // A fleet at rest: every agent has its tunnel (the reconciler's start_tunnel, acknowledged).
    let started = Instant::now();
    phase("settle", args.phase_timeout, settle(&connected)).await?;
    figures.duration("settle: every agent has its tunnel (start_tunnel acked)", Some(started.elapsed()));
    let rss = master::rss_kib(master)?;
    figures.row(&format!("master RSS, {n} agents connected"), mib(rss), rss);

    // The storm.
    let harness_cpu = master::cpu_time("self")?;
    master.kill9()?;
    eprintln!("Master killed (SIGKILL); restarting it.");
    let stats = Arc::new(Stats::default());
    let (listening, clock) = Clock::new(args.give_up_after);
    let agents: Vec<_> = connected
        .into_iter()
        .map(|(mut agent, _)| {
            let (target, clock, stats) = (target.clone(), clock.clone(), stats.clone());
            tokio::spawn(async move {
                let outcome = come_back(&mut agent, &target, 0, &policy, &clock, &stats, true).await;
                (agent, outcome)
            })
        })
        .collect();
    let restart = Instant::now();
    if let Err(error) = master.restart().await {
        agents.iter().for_each(|task| task.abort());
        return Err(error.context("restarting the master"));
    }
    let listening_at = Instant::now();
    listening.send_replace(Some(listening_at));
    figures.duration("restart: start -> \"Master listening.\"", Some(listening_at - restart));
    eprintln!("Master {} listening again.", master.pid().unwrap_or_default());

    // The fleet is held (connected) until the figures are read.
    let (fleet, outcomes): (Vec<FakeAgent>, Vec<Outcome>) =
        all_back(agents, &stats, listening_at, "back").await?.into_iter().unzip();
    let storm_wall = restart.elapsed();
    report_storm(figures, &outcomes, &stats, (listening_at, "listening"), args);
    let master_cpu = master::cpu_time(&master.pid().unwrap_or_default().to_string())?;
    let harness_cpu = master::cpu_time("self")?.saturating_sub(harness_cpu);
    figures.row(
        "CPU during the storm: master / harness",
        format!("{} / {} over {} ({cores} cores)", secs(master_cpu), secs(harness_cpu), secs(storm_wall)),
        serde_json::json!({ "master_s": master_cpu.as_secs_f64(), "harness_s": harness_cpu.as_secs_f64(), "wall_s": storm_wall.as_secs_f64() }),
    );
    let rss = master::rss_kib(master)?;
    figures.row("master RSS after the storm", mib(rss), rss);
    report_master_counters(figures, master, args).await;
    drop(fleet);

    let gave_up = outcomes.iter().filter(|outcome| outcome.back_at.is_none()).count();
    if gave_up > 0 {
        bail!("{gave_up} of {n} agents gave up (not back {:?} after the master listened)", args.give_up_after);
    }
    let last = outcomes.iter().filter_map(|o| o.back_at).max().map(|at| at.saturating_duration_since(listening_at));
    if args.enforce && last.is_none_or(|last| last > args.target) {
        bail!("the last agent was back {last:?} after the master listened, over --target {:?}", args.target);
    }
    Ok(())
}

fn path(path: &std::path::Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Runs one phase under the deadline; a miss is an error that names the phase.
async fn phase<T>(name: &str, limit: Duration, work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    eprintln!("Phase: {name}.");
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| anyhow::anyhow!("phase {name:?} did not finish within {limit:?} (--phase-timeout)"))?
        .with_context(|| format!("phase {name:?} failed"))
}
