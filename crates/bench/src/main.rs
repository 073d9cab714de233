//! Fleet benchmark: one real `dockflare-master` process and thousands of
//! simulated agents, all on 127.0.0.1.
//!
//! What it measures:
//!
//! 1. **Enroll + connect.** Creates one join token (AdminService, admin
//!    certificate from the master's data dir), enrolls every agent
//!    (AgentService.Enroll over TLS, a fresh connection each, no client
//!    certificate, N at a time; unlike the real agent it trusts ca.crt
//!    directly instead of checking the token's CA pin), then connects every agent with its *own*
//!    channel (own TCP + TLS connection, its client certificate): Register,
//!    WatchCommands, ReportEvents, and a first status_report event whose
//!    receipt proves both streams work. Reports the time, and the master's
//!    resident memory (VmRSS) before and after, per connected agent.
//! 2. **Events.** Every agent sends `--events-per-agent` heartbeats as fast as
//!    it can; the phase ends when every agent's EventsReceipt reaches its last
//!    event id. Receipts come only after the transaction commits, so the rate
//!    is of *durable* events.
//! 3. **Commands.** `--commands` resync commands to random agents through
//!    AdminService.SendCommand, first one at a time, then
//!    `--command-concurrency` in flight. Latency runs from just before
//!    SendCommand to the command's arrival on the agent's WatchCommands
//!    stream. Every agent acknowledges with a command_result event; at the end
//!    the harness waits until those are stored and checks with GetAgent that
//!    every command is acknowledged.
//!
//! Run (build the master first: the benchmark does not build it):
//!
//! ```sh
//! cargo build --release -p dockflare-master
//! cargo run --release -p dockflare-bench --bin fleet_bench -- \
//!     --agents 1000 --events-per-agent 200 --commands 2000 [--database-url postgres://…]
//! ```
//!
//! The master is started by the launcher every test uses, and the agents are the tests' fake
//! agent ([`dockflare_testsupport`]).
//!
//! Each agent costs the harness and the master one file descriptor: the
//! harness raises its RLIMIT_NOFILE soft limit to the hard limit (and the
//! hard limit too when it can, as root) *before* starting the master, which
//! inherits it. `--master-nofile N` starts the master with a soft limit of N
//! instead, to see how it behaves when it runs out. Outside the harness, raise
//! the master's limit with `ulimit -n`, systemd's `LimitNOFILE=` or Docker's
//! `--ulimit nofile=`.
//!
//! Progress goes to stderr, the figures table to stdout; `--master-log FILE`
//! keeps every log line of the master. With PostgreSQL, point
//! `--database-url` at an empty database: every run enrolls new agents.
//! Any failure, or a phase that misses `--phase-timeout`, ends the run with a
//! message and a non-zero exit status. The master is killed on exit.

mod fleet;
mod process;
mod report;
mod sample;

use anyhow::{anyhow, ensure, Context, Result};
use clap::Parser;
use fleet::Fleet;
use process::{LogSummary, NofileLimits};
use rand::{Rng, SeedableRng};
use report::{kib, secs, Report};
use sample::sample;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

#[derive(Parser, Debug)]
#[command(about = "Benchmarks a real dockflare-master with simulated agents on 127.0.0.1.")]
pub struct Args {
    /// Number of simulated agents.
    #[arg(long, default_value_t = 100)]
    pub agents: usize,
    /// Events (tunnel statuses: each is a stored row) each agent sends in the events phase.
    #[arg(long, default_value_t = 200)]
    pub events_per_agent: u64,
    /// Commands sent in each commands round (sequential, then concurrent).
    #[arg(long, default_value_t = 2000)]
    pub commands: usize,
    /// Commands in flight in the concurrent round.
    #[arg(long, default_value_t = 16)]
    pub command_concurrency: usize,
    /// Enrollments and connections in progress at once.
    #[arg(long, default_value_t = 64)]
    pub connect_concurrency: usize,
    /// Database of the master (default: SQLite in its temporary data dir).
    #[arg(long)]
    pub database_url: Option<String>,
    /// The master binary. Default: `dockflare-master` in the target profile
    /// directory this example was built into.
    #[arg(long)]
    pub master_bin: Option<PathBuf>,
    /// The master's RLIMIT_NOFILE soft limit. Default: the hard limit, raised
    /// to fit the agents when possible.
    #[arg(long)]
    pub master_nofile: Option<u64>,
    /// Longest any one phase may take.
    #[arg(long, default_value = "240s", value_parser = humantime::parse_duration)]
    pub phase_timeout: Duration,
    /// Seed of the random choice of command targets.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Run the events and commands phases twice: without, then with /metrics scraped every second.
    #[arg(long)]
    pub compare_scrape: bool,
    /// Also write every log line of the master to this file.
    #[arg(long)]
    pub master_log: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    match run(&args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("fleet_bench FAILED: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> Result<()> {
    ensure!(args.agents > 0, "--agents must be at least 1");
    ensure!(args.connect_concurrency > 0 && args.command_concurrency > 0, "concurrency must be at least 1");
    let nofile: NofileLimits = process::raise_nofile_limit(args)?;
    let bin = process::master_binary(args)?;
    let backend = if args.database_url.is_some() { "PostgreSQL" } else { "SQLite" };
    eprintln!("Starting {} ({backend}).", bin.display());
    let mut master = process::start_master(bin, args, nofile.master).await?;
    eprintln!("Master {} listening on {}.", master.pid().unwrap_or_default(), master.addr);
    let mut report = Report::new(args, backend, &nofile);
    let measured = measure(args, &mut master, &mut report).await;
    let logs = LogSummary::of(&master);
    let _ = master.kill9();
    if measured.is_ok() {
        report.row("master log: warnings / errors", format!("{} / {}", logs.warnings, logs.errors));
        println!("{}", report.render());
    } else {
        eprintln!("Figures so far:{}", report.render());
    }
    if !logs.problems.is_empty() {
        println!("First warnings/errors of the master ({} / {} in all):", logs.warnings, logs.errors);
        for line in &logs.problems {
            println!("  {line}");
        }
    }
    measured
}

/// The three phases; figures go into `report`.
async fn measure(args: &Args, master: &mut dockflare_testsupport::Master, report: &mut Report) -> Result<()> {
    let fleet = Fleet::new(master)?;

    let admin = fleet.admin_client().await?;
    // The idle reading once the master has settled: two readings 100 ms apart within 64 KiB, or
    // whatever it is after 5 s.
    let settle_by = Instant::now() + Duration::from_secs(5);
    let mut idle = sample(master)?;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let next = sample(master)?;
        let settled = next.rss_kib.abs_diff(idle.rss_kib) <= 64;
        idle = next;
        if settled || Instant::now() > settle_by {
            break;
        }
    }
    report.row("master RSS, idle", kib(idle.rss_kib));

    // Phase 1: enroll and connect.
    let started = Instant::now();
    let enrolled = phase("enroll", args.phase_timeout, fleet.enroll_all(&admin, args)).await?;
    let enroll_time = started.elapsed();
    let after_enroll = sample(master)?;
    let connect_started = Instant::now();
    let agents = phase("connect", args.phase_timeout, fleet.connect_all(enrolled, args)).await?;
    let connect_time = connect_started.elapsed();
    let connected = sample(master)?;
    let n = args.agents as f64;
    report.row(
        &format!("enroll {} agents ({} at a time)", args.agents, args.connect_concurrency),
        format!("{} ({:.0} agents/s)", secs(enroll_time), n / enroll_time.as_secs_f64()),
    );
    report.row(
        "connect (Register + 2 streams + 1st event stored)",
        format!("{} ({:.0} agents/s)", secs(connect_time), n / connect_time.as_secs_f64()),
    );
    report.row("enroll + connect, total", secs(started.elapsed()));
    report.row("CPU during enroll", idle.cpu(&after_enroll));
    report.row("CPU during connect", after_enroll.cpu(&connected));
    report.row(&format!("master RSS, {} agents connected", args.agents), kib(connected.rss_kib));
    report.row(
        "master RSS per connected agent",
        format!("{:.1} KiB", connected.rss_kib.saturating_sub(idle.rss_kib) as f64 / n),
    );
    report.row("master open file descriptors", connected.fds.to_string());

    // Phases 2 and 3: events, then commands; with --compare-scrape a second time while
    // /metrics is scraped every second (the cost of being watched, in the same run).
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    let mut sent_per_agent = vec![0u64; agents.len()];
    let rounds: &[bool] = if args.compare_scrape { &[false, true] } else { &[false] };
    for &scraped in rounds {
        let suffix = if scraped { ", /metrics scraped every 1 s" } else { "" };
        let scraper = if scraped { Some(Scraper::start(master.metrics_addr()?)) } else { None };
        let total_events = args.events_per_agent * args.agents as u64;
        let before_events = sample(master)?;
        let events_time =
            phase("events", args.phase_timeout, fleet.send_events(&agents, args.events_per_agent)).await?;
        let after_events = sample(master)?;
        report.row(
            &format!("events stored ({} x {}){suffix}", args.agents, args.events_per_agent),
            format!(
                "{total_events} in {} = {:.0} events/s",
                secs(events_time),
                total_events as f64 / events_time.as_secs_f64()
            ),
        );
        report.row("CPU during events", before_events.cpu(&after_events));
        report.row("master RSS after events", kib(after_events.rss_kib));

        for concurrency in [1, args.command_concurrency] {
            let targets: Vec<usize> = (0..args.commands).map(|_| rng.random_range(0..agents.len())).collect();
            for &target in &targets {
                sent_per_agent[target] += 1;
            }
            let before = sample(master)?;
            let label = if concurrency == 1 {
                format!("commands, sequential{suffix}")
            } else {
                format!("commands, {concurrency} in flight{suffix}")
            };
            let round =
                phase(&label, args.phase_timeout, fleet.command_round(&admin, &agents, &targets, concurrency)).await?;
            let after = sample(master)?;
            report.row(
                &label,
                format!(
                    "{} in {} = {:.0} commands/s ({})",
                    args.commands,
                    secs(round.elapsed),
                    args.commands as f64 / round.elapsed.as_secs_f64(),
                    before.cpu(&after)
                ),
            );
            report.row("  SendCommand call (ms)", round.call.summary());
            report.row("  SendCommand -> on agent stream (ms)", round.arrival.summary());
        }
        if let Some(scraper) = scraper {
            let (scrapes, failures) = scraper.stop().await;
            report.row("  /metrics scrapes (failed)", format!("{scrapes} ({failures})"));
        }
    }
    let acks_started = Instant::now();
    let (received, unsolicited) =
        phase("acks", args.phase_timeout, fleet.verify_acks(&admin, &agents, &sent_per_agent)).await?;
    report.row(
        "command acks stored + checked (GetAgent)",
        format!(
            "{received} acked ({unsolicited} sent by the master on its own); {} after the last command",
            secs(acks_started.elapsed())
        ),
    );
    let last = sample(master)?;
    report.row("master RSS at the end (peak)", format!("{} ({})", kib(last.rss_kib), kib(last.hwm_kib)));

    Ok(())
}

/// Scrapes the master's /metrics every second until stopped, as Prometheus would.
struct Scraper {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<(u64, u64)>,
}

impl Scraper {
    fn start(addr: std::net::SocketAddr) -> Scraper {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::task::spawn_blocking(move || {
            let (mut scrapes, mut failures) = (0u64, 0u64);
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                scrapes += 1;
                if dockflare_observe::probe::get(addr, "/metrics", Duration::from_secs(5)).is_err() {
                    failures += 1;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            (scrapes, failures)
        });
        Scraper { stop, task }
    }

    async fn stop(self) -> (u64, u64) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task.await.unwrap_or((0, 0))
    }
}

/// Runs one phase under the deadline; a miss is an error that names the phase.
async fn phase<T>(name: &str, limit: Duration, work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    eprintln!("Phase: {name} ({}).", humantime::format_rfc3339_millis(SystemTime::now()));
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| anyhow!("phase {name:?} did not finish within {limit:?} (--phase-timeout)"))?
        .with_context(|| format!("phase {name:?} failed"))
}
