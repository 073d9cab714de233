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
//! Every figure is measured twice in one run, side by side: against the real master and
//! against the *floor* (`floor_server`: a bare tonic server with the same mutual TLS and the same
//! two streams per agent, heartbeats and receipts, no storage), driven by the same simulated
//! agents. Commands are timed while every agent keeps sending events (full event load).
//! `--agents 100,1000,5000,10000` sweeps; `--json FILE` merges the runs into a results file and
//! `--plot FILE` draws it (PNG).
//!
//! Run (build the master first: the benchmark does not build it):
//!
//! ```sh
//! cargo build --release -p dockflare-master -p dockflare-bench
//! target/release/fleet_bench --agents 1000 --events-per-agent 200 --commands 2000 \
//!     [--database-url postgres://…] [--server both|dockflare|floor] [--json r.json --plot r.png]
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
mod floor_process;
mod load;
mod measure;
mod plot;
mod process;
mod report;
mod results;
mod sample;
mod server;

use anyhow::{ensure, Context, Result};
use clap::{Parser, ValueEnum};
use process::{LogSummary, NofileLimits};
use report::Report;
use results::{Results, Run, Server};
use server::ServerUnderTest;
use std::path::PathBuf;
use std::time::Duration;

/// Which servers a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ServerChoice {
    /// The floor, then the real master, at each size.
    Both,
    Dockflare,
    Floor,
}

#[derive(Parser, Debug)]
#[command(about = "Benchmarks a real dockflare-master, beside a bare-tonic floor, with simulated agents on 127.0.0.1.")]
pub struct Args {
    /// Numbers of simulated agents, comma separated: one run per number (and server).
    #[arg(long, value_delimiter = ',', default_value = "100")]
    pub agents: Vec<usize>,
    /// Events (tunnel statuses: each is a stored row) each agent sends in the events phase.
    #[arg(long, default_value_t = 200)]
    pub events_per_agent: u64,
    /// Events in all in the events phase, spread over the agents (overrides
    /// `--events-per-agent`; keeps a sweep's ingest runs the same size).
    #[arg(long)]
    pub events_total: Option<u64>,
    /// Commands sent in each commands round (sequential, then concurrent).
    #[arg(long, default_value_t = 2000)]
    pub commands: usize,
    /// Commands in flight in the concurrent round.
    #[arg(long, default_value_t = 16)]
    pub command_concurrency: usize,
    /// Events per second, in all, the agents send while commands are timed (each agent its
    /// share, at most 256 unconfirmed). The default is a load the floor sustains on two cores
    /// beside the harness (at 60 000 the harness saturated them, the floor's own p99 rose to
    /// a quarter of a second, and the comparison measured the machine).
    #[arg(long, default_value_t = 20_000.0)]
    pub load_rate: f64,
    /// Enrollments and connections in progress at once.
    #[arg(long, default_value_t = 64)]
    pub connect_concurrency: usize,
    /// Database of the master (default: SQLite in its temporary data dir).
    #[arg(long)]
    pub database_url: Option<String>,
    /// The servers measured.
    #[arg(long, value_enum, default_value_t = ServerChoice::Both)]
    pub server: ServerChoice,
    /// The master binary. Default: `dockflare-master` in the target profile directory this
    /// program was built into.
    #[arg(long)]
    pub master_bin: Option<PathBuf>,
    /// The floor binary. Default: `floor_server` beside this program.
    #[arg(long)]
    pub floor_bin: Option<PathBuf>,
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
    /// Also write every log line of the master to this file.
    #[arg(long)]
    pub master_log: Option<PathBuf>,
    /// Write the master's /metrics, as it stands after the measured phases, to this file (the
    /// run's size is added to its name: `FILE.N`). Its histograms say where the time went
    /// (`dockflare_command_store_seconds`, `dockflare_event_commit_seconds`, …).
    #[arg(long)]
    pub master_metrics: Option<PathBuf>,
    /// Merge the runs into this results file (JSON; a run replaces one of the same server,
    /// database and size).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Draw the results (of `--json` when given) into this PNG.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

impl Args {
    /// Events each of `agents` agents sends in the events phase.
    pub fn events_per_agent_for(&self, agents: usize) -> u64 {
        match self.events_total {
            Some(total) => total.div_ceil(agents.max(1) as u64).max(1),
            None => self.events_per_agent,
        }
    }
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
    ensure!(!args.agents.is_empty() && args.agents.iter().all(|&n| n > 0), "--agents must be at least 1");
    ensure!(args.connect_concurrency > 0 && args.command_concurrency > 0, "concurrency must be at least 1");
    ensure!(args.commands > 0, "--commands must be at least 1");
    ensure!(args.load_rate >= 0.0 && args.load_rate.is_finite(), "--load-rate must be a number of events per second");
    let largest = args.agents.iter().copied().max().unwrap_or(1);
    let nofile: NofileLimits = process::raise_nofile_limit(largest, args.master_nofile)?;
    let servers: &[Server] = match args.server {
        ServerChoice::Both => &[Server::Floor, Server::Dockflare],
        ServerChoice::Dockflare => &[Server::Dockflare],
        ServerChoice::Floor => &[Server::Floor],
    };
    let database = args.database_url.as_ref().map(|_| "postgres");
    let mut runs = Vec::new();
    for &agents in &args.agents {
        for &kind in servers {
            let run = one_run(kind, agents, database, args, &nofile).await?;
            // Each run is saved as soon as it is measured: a later failure loses nothing.
            if let Some(path) = &args.json {
                save(path, run.clone())?;
            }
            runs.push(run);
        }
    }
    println!("{}", report::side_by_side(&runs));
    let results = match &args.json {
        Some(path) => {
            println!("Results: {}", path.display());
            Results::read(path)?
        }
        None => {
            let mut results = Results::new(commit(), results::describe_machine());
            results.runs = runs;
            results
        }
    };
    if let Some(path) = &args.plot {
        plot::draw(&results, path)?;
        println!("Plot: {}", path.display());
    }
    Ok(())
}

/// Merges one run into the results file at `path` (created when missing).
fn save(path: &std::path::Path, run: Run) -> Result<()> {
    let mut latest = Results::new(commit(), results::describe_machine());
    latest.runs.push(run);
    let results = if path.exists() {
        let mut earlier = Results::read(path)?;
        earlier.merge(latest);
        earlier
    } else {
        latest
    };
    results.write(path)
}

/// Starts `kind`, measures `agents` agents against it, prints its report and stops it.
async fn one_run(
    kind: Server,
    agents: usize,
    database: Option<&str>,
    args: &Args,
    nofile: &NofileLimits,
) -> Result<Run> {
    let mut server = match kind {
        Server::Dockflare => {
            let bin = process::master_binary(args)?;
            eprintln!("Starting {} ({}).", bin.display(), database.unwrap_or("sqlite"));
            ServerUnderTest::DockFlare(process::start_master(bin, args, nofile.master).await?)
        }
        Server::Floor => ServerUnderTest::Floor(
            floor_process::FloorProcess::start(args.floor_bin.as_deref(), Some(nofile.master)).await?,
        ),
    };
    eprintln!("{kind:?} {} listening on {}.", server.pid()?, server.addr());
    let mut report = Report::new(args, kind, agents, database, nofile);
    let measured = measure::run(&mut server, database, agents, args, &mut report).await;
    if let ServerUnderTest::DockFlare(master) = &mut server {
        if let Some(path) = &args.master_metrics {
            let path = std::path::PathBuf::from(format!("{}.{agents}", path.display()));
            match master.metrics_text().await {
                Ok(text) => std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?,
                Err(error) => eprintln!("The master's /metrics could not be read: {error:#}"),
            }
        }
        let logs = LogSummary::of(master);
        report.row("master log: warnings / errors", format!("{} / {}", logs.warnings, logs.errors));
        if !logs.problems.is_empty() {
            report.row("first warnings/errors", logs.problems.join("\n    "));
        }
        let _ = master.kill9();
    }
    if measured.is_ok() {
        println!("{}", report.render());
    } else {
        eprintln!("Figures so far:{}", report.render());
    }
    measured
}

/// The commit measured: `DOCKFLARE_COMMIT`, else `git rev-parse --short HEAD` (with `-dirty`
/// when the work tree has changes), else "unknown".
fn commit() -> String {
    if let Ok(commit) = std::env::var("DOCKFLARE_COMMIT") {
        return commit;
    }
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(head) if git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty()) => {
            format!("{head}-dirty")
        }
        Some(head) => head,
        None => "unknown".into(),
    }
}
