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
//! Run (build the master first: the example does not build it):
//!
//! ```sh
//! cargo build --release -p dockflare-master
//! cargo run --release -p dockflare-master --example fleet_bench -- \
//!     --agents 1000 --events-per-agent 200 --commands 2000 [--database-url postgres://…]
//! ```
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

use anyhow::{anyhow, bail, ensure, Context, Result};
use clap::Parser;
use dockflare::v1::admin_service_client::AdminServiceClient;
use dockflare::v1::agent_event::Event;
use dockflare::v1::agent_service_client::AgentServiceClient;
use dockflare::v1::watch_commands_response::Message as Incoming;
use dockflare::v1::{
    send_command_request, AgentEvent, CommandResult, ConnectorState, CreateJoinTokenRequest, DockerMode, EnrollRequest,
    GetAgentRequest, RegisterRequest, Resync, SendCommandRequest, StatusReport, TunnelStatus, WatchCommandsRequest,
};
use futures::{StreamExt, TryStreamExt};
use rand::{Rng, SeedableRng};
use secrecy::{ExposeSecret, SecretString};
use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};
use tempfile::TempDir;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// The name the master's certificate is checked against.
const SERVER_NAME: &str = "localhost";
/// How long the master may take to log "Master listening.".
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Events buffered per agent between the generator and its ReportEvents stream.
const EVENT_BUFFER: usize = 256;
/// How often the waits re-check progress.
const POLL: Duration = Duration::from_millis(5);
/// How often long waits print progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// Warning and error lines of the master kept for the report.
const KEPT_PROBLEMS: usize = 8;
/// Characters shown of each.
const PROBLEM_CHARS: usize = 400;
/// How long an agent's acks may take to catch up with the commands it received.
const ACKS_SETTLE: Duration = Duration::from_secs(10);
/// Clock ticks per second in /proc/<pid>/stat (USER_HZ: 100 on Linux).
const USER_HZ: f64 = 100.0;

#[derive(Parser, Debug)]
#[command(about = "Benchmarks a real dockflare-master with simulated agents on 127.0.0.1.")]
struct Args {
    /// Number of simulated agents.
    #[arg(long, default_value_t = 100)]
    agents: usize,
    /// Events (tunnel statuses: each is a stored row) each agent sends in the events phase.
    #[arg(long, default_value_t = 200)]
    events_per_agent: u64,
    /// Commands sent in each commands round (sequential, then concurrent).
    #[arg(long, default_value_t = 2000)]
    commands: usize,
    /// Commands in flight in the concurrent round.
    #[arg(long, default_value_t = 16)]
    command_concurrency: usize,
    /// Enrollments and connections in progress at once.
    #[arg(long, default_value_t = 64)]
    connect_concurrency: usize,
    /// Database of the master (default: SQLite in its temporary data dir).
    #[arg(long)]
    database_url: Option<String>,
    /// The master binary. Default: `dockflare-master` in the target profile
    /// directory this example was built into.
    #[arg(long)]
    master_bin: Option<PathBuf>,
    /// The master's RLIMIT_NOFILE soft limit. Default: the hard limit, raised
    /// to fit the agents when possible.
    #[arg(long)]
    master_nofile: Option<u64>,
    /// Longest any one phase may take.
    #[arg(long, default_value = "240s", value_parser = humantime::parse_duration)]
    phase_timeout: Duration,
    /// Seed of the random choice of command targets.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also write every log line of the master to this file.
    #[arg(long)]
    master_log: Option<PathBuf>,
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
    let nofile = raise_nofile_limit(args)?;
    let bin = master_binary(args)?;
    let backend = if args.database_url.is_some() { "PostgreSQL" } else { "SQLite" };
    eprintln!("Starting {} ({backend}).", bin.display());
    let mut master = Master::start(&bin, args, nofile.master)?;
    eprintln!("Master {} listening on {}.", master.pid, master.addr);
    let mut report = Report::new(args, backend, &nofile);
    let measured = measure(args, &mut master, &mut report).await;
    let logs = master.log_summary();
    master.stop();
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
async fn measure(args: &Args, master: &mut Master, report: &mut Report) -> Result<()> {
    let fleet = Fleet::new(master.addr, &master.data_dir.path().join("pki"))?;

    let admin = fleet.admin_client().await?;
    // The idle reading once the master has settled: two readings 100 ms apart within 64 KiB, or
    // whatever it is after 5 s.
    let settle_by = Instant::now() + Duration::from_secs(5);
    let mut idle = master.sample()?;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let next = master.sample()?;
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
    let after_enroll = master.sample()?;
    let connect_started = Instant::now();
    let agents = phase("connect", args.phase_timeout, fleet.connect_all(enrolled, args)).await?;
    let connect_time = connect_started.elapsed();
    let connected = master.sample()?;
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

    // Phase 2: events.
    let total_events = args.events_per_agent * args.agents as u64;
    let before_events = master.sample()?;
    let events_time = phase("events", args.phase_timeout, fleet.send_events(&agents, args.events_per_agent)).await?;
    let after_events = master.sample()?;
    report.row(
        &format!("events stored ({} x {})", args.agents, args.events_per_agent),
        format!(
            "{total_events} in {} = {:.0} events/s",
            secs(events_time),
            total_events as f64 / events_time.as_secs_f64()
        ),
    );
    report.row("CPU during events", before_events.cpu(&after_events));
    report.row("master RSS after events", kib(after_events.rss_kib));

    // Phase 3: commands.
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    let mut sent_per_agent = vec![0u64; agents.len()];
    for concurrency in [1, args.command_concurrency] {
        let targets: Vec<usize> = (0..args.commands).map(|_| rng.random_range(0..agents.len())).collect();
        for &target in &targets {
            sent_per_agent[target] += 1;
        }
        let before = master.sample()?;
        let label = if concurrency == 1 {
            "commands, sequential".to_string()
        } else {
            format!("commands, {concurrency} in flight")
        };
        let round =
            phase(&label, args.phase_timeout, fleet.command_round(&admin, &agents, &targets, concurrency)).await?;
        let after = master.sample()?;
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
    let last = master.sample()?;
    report.row("master RSS at the end (peak)", format!("{} ({})", kib(last.rss_kib), kib(last.hwm_kib)));

    fleet.stopping.store(true, Ordering::SeqCst);
    Ok(())
}

/// Runs one phase under the deadline; a miss is an error that names the phase.
async fn phase<T>(name: &str, limit: Duration, work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    eprintln!("Phase: {name} ({}).", humantime::format_rfc3339_millis(SystemTime::now()));
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| anyhow!("phase {name:?} did not finish within {limit:?} (--phase-timeout)"))?
        .with_context(|| format!("phase {name:?} failed"))
}

// ---------------------------------------------------------------------------
// The master process.

/// File descriptor limits in force.
struct NofileLimits {
    harness: u64,
    master: u64,
}

/// Raises this process's RLIMIT_NOFILE so it holds every agent's connection,
/// and picks the limit the master will inherit.
fn raise_nofile_limit(args: &Args) -> Result<NofileLimits> {
    use rlimit::Resource;
    let wanted = args.agents as u64 + 1024;
    let (soft, hard) = Resource::NOFILE.get().context("reading RLIMIT_NOFILE")?;
    let limit = if wanted > hard && Resource::NOFILE.set(wanted, wanted).is_ok() {
        wanted
    } else {
        Resource::NOFILE.set(hard, hard).with_context(|| format!("raising RLIMIT_NOFILE from {soft} to {hard}"))?;
        hard
    };
    if limit < wanted {
        bail!(
            "RLIMIT_NOFILE hard limit is {limit}, but {} agents need about {wanted} descriptors (in the harness and \
             in the master): raise it (ulimit -Hn, limits.conf, LimitNOFILE=) or run fewer agents",
            args.agents
        );
    }
    Ok(NofileLimits { harness: limit, master: args.master_nofile.unwrap_or(limit) })
}

fn master_binary(args: &Args) -> Result<PathBuf> {
    let bin = match &args.master_bin {
        Some(path) => path.clone(),
        None => {
            let exe = std::env::current_exe().context("locating this example's executable")?;
            // target/<profile>/examples/fleet_bench -> target/<profile>/dockflare-master
            let profile_dir =
                exe.parent().and_then(Path::parent).ok_or_else(|| anyhow!("odd path {}", exe.display()))?;
            profile_dir.join("dockflare-master")
        }
    };
    if !bin.is_file() {
        bail!(
            "{} does not exist: build it first with `cargo build --release -p dockflare-master`, or pass --master-bin",
            bin.display()
        );
    }
    Ok(bin)
}

/// What the master's stderr said, beyond "Master listening.".
#[derive(Default)]
struct LogSummary {
    warnings: u64,
    errors: u64,
    problems: Vec<String>,
    /// The last lines, for when the master dies.
    tail: VecDeque<String>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The master as a child process, killed when dropped (before its data dir
/// is removed).
struct Master {
    child: Child,
    pid: u32,
    addr: SocketAddr,
    logs: Arc<Mutex<LogSummary>>,
    data_dir: TempDir,
}

/// A reading of the master's /proc entries (and this process's CPU time).
struct Sample {
    at: Instant,
    rss_kib: u64,
    hwm_kib: u64,
    fds: usize,
    /// User + system CPU time of the master, in clock ticks.
    master_ticks: u64,
    /// The same for this harness.
    harness_ticks: u64,
    /// Busy and total clock ticks of the whole machine (all cores).
    machine_ticks: (u64, u64),
}

impl Sample {
    /// CPU used between two samples: the master's and the harness's in
    /// percent of one core, the machine's in percent of all cores (it
    /// includes a PostgreSQL server, and anything else running).
    fn cpu(&self, later: &Sample) -> String {
        let seconds = later.at.duration_since(self.at).as_secs_f64();
        if seconds <= 0.0 {
            return "-".into();
        }
        let percent = |before: u64, after: u64| 100.0 * after.saturating_sub(before) as f64 / USER_HZ / seconds;
        let busy = later.machine_ticks.0.saturating_sub(self.machine_ticks.0) as f64;
        let total = later.machine_ticks.1.saturating_sub(self.machine_ticks.1).max(1) as f64;
        format!(
            "master {:.0} %, harness {:.0} %, machine {:.0} % of {} cores",
            percent(self.master_ticks, later.master_ticks),
            percent(self.harness_ticks, later.harness_ticks),
            100.0 * busy / total,
            cores()
        )
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Busy and total clock ticks of all cores, from the first line of /proc/stat
/// (idle and iowait count as not busy).
fn machine_ticks() -> Result<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let line = stat.lines().next().ok_or_else(|| anyhow!("empty /proc/stat"))?;
    let ticks: Vec<u64> = line.split_whitespace().skip(1).map(|t| t.parse().unwrap_or(0)).collect();
    let total: u64 = ticks.iter().take(8).sum(); // user nice system idle iowait irq softirq steal
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    Ok((total.saturating_sub(idle), total))
}

/// User + system CPU time of a process (all its threads), in clock ticks.
fn cpu_ticks(proc_dir: &Path) -> Result<u64> {
    let stat = std::fs::read_to_string(proc_dir.join("stat")).context("reading /proc/<pid>/stat")?;
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).ok_or_else(|| anyhow!("odd /proc/<pid>/stat"))?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let tick = |index: usize| -> Result<u64> {
        fields.get(index - 3).ok_or_else(|| anyhow!("short /proc/<pid>/stat"))?.parse().context("parsing stat")
    };
    Ok(tick(14)? + tick(15)?)
}

impl Master {
    fn start(bin: &Path, args: &Args, nofile: u64) -> Result<Master> {
        let data_dir = tempfile::tempdir().context("creating the master's data dir")?;
        let mut command = Command::new(bin);
        command.args(["--listen", "127.0.0.1:0", "--log-format", "json"]);
        command.arg("--data-dir").arg(data_dir.path());
        command.args(["--heartbeat-interval", "1h", "--heartbeat-timeout", "2h"]);
        // Every simulated agent comes from 127.0.0.1: lift the per-source limits a real fleet,
        // spread over many addresses, never meets.
        command.args(["--max-connections-per-source", "1000000", "--max-unauthenticated-calls", "65536"]);
        command.args(["--max-unauthenticated-calls-per-source", "65536"]);
        if let Some(url) = &args.database_url {
            command.arg("--database-url").arg(url);
        }
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("DOCKFLARE_") {
                command.env_remove(&name);
            }
        }
        command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());

        // The child inherits the limit in force when it is spawned.
        let (harness_soft, harness_hard) = rlimit::Resource::NOFILE.get()?;
        rlimit::Resource::NOFILE
            .set(nofile.min(harness_hard), harness_hard)
            .context("setting the master's RLIMIT_NOFILE")?;
        let spawned = command.spawn();
        rlimit::Resource::NOFILE.set(harness_soft, harness_hard)?;
        let mut child = spawned.with_context(|| format!("starting {}", bin.display()))?;
        let pid = child.id();
        let stderr = child.stderr.take().ok_or_else(|| anyhow!("no stderr pipe"))?;

        let logs = Arc::new(Mutex::new(LogSummary::default()));
        let (listening_tx, listening_rx) = std::sync::mpsc::channel();
        let copy = match &args.master_log {
            Some(path) => Some(std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?),
            None => None,
        };
        let sink = logs.clone();
        std::thread::spawn(move || drain_stderr(stderr, &sink, copy, listening_tx));

        let mut master = Master { child, pid, addr: SocketAddr::from(([127, 0, 0, 1], 0)), logs, data_dir };
        match listening_rx.recv_timeout(START_TIMEOUT) {
            Ok(addr) => master.addr = addr,
            Err(_) => {
                let status = master.child.try_wait().ok().flatten();
                let tail = lock(&master.logs).tail.iter().cloned().collect::<Vec<_>>().join("\n");
                match status {
                    Some(status) => bail!("the master exited ({status}) before listening; its stderr:\n{tail}"),
                    None => bail!("the master did not log \"Master listening.\" within {START_TIMEOUT:?}:\n{tail}"),
                }
            }
        }
        Ok(master)
    }

    /// Memory, descriptors and CPU time of the master; an error if it died.
    fn sample(&mut self) -> Result<Sample> {
        if let Some(status) = self.child.try_wait()? {
            let tail = lock(&self.logs).tail.iter().cloned().collect::<Vec<_>>().join("\n");
            bail!("the master exited ({status}); its last log lines:\n{tail}");
        }
        let proc_dir = PathBuf::from(format!("/proc/{}", self.pid));
        let status = std::fs::read_to_string(proc_dir.join("status")).context("reading /proc/<pid>/status")?;
        let field = |name: &str| -> Result<u64> {
            let line = status.lines().find(|l| l.starts_with(name)).ok_or_else(|| anyhow!("no {name} in status"))?;
            line[name.len()..].trim().trim_end_matches("kB").trim().parse().with_context(|| format!("parsing {name}"))
        };
        Ok(Sample {
            at: Instant::now(),
            rss_kib: field("VmRSS:")?,
            hwm_kib: field("VmHWM:")?,
            fds: std::fs::read_dir(proc_dir.join("fd")).map(|dir| dir.count()).unwrap_or(0),
            master_ticks: cpu_ticks(&proc_dir)?,
            harness_ticks: cpu_ticks(Path::new("/proc/self"))?,
            machine_ticks: machine_ticks()?,
        })
    }

    fn log_summary(&self) -> LogSummary {
        let logs = lock(&self.logs);
        LogSummary {
            warnings: logs.warnings,
            errors: logs.errors,
            problems: logs.problems.clone(),
            tail: VecDeque::new(),
        }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Reads the master's JSON log lines until it exits: reports the listening
/// address once, counts warnings and errors, keeps the last lines.
fn drain_stderr(
    stderr: impl std::io::Read,
    logs: &Mutex<LogSummary>,
    mut copy: Option<std::fs::File>,
    listening: std::sync::mpsc::Sender<SocketAddr>,
) {
    use std::io::Write;
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        if let Some(file) = &mut copy {
            if writeln!(file, "{line}").is_err() {
                copy = None;
            }
        }
        let value: Option<serde_json::Value> = serde_json::from_str(&line).ok();
        let text = |key: &str| value.as_ref().and_then(|v| v.get(key)).and_then(|v| v.as_str()).map(str::to_string);
        if text("message").as_deref() == Some("Master listening.") {
            if let Some(addr) = text("addr").and_then(|a| a.parse().ok()) {
                let _ = listening.send(addr);
            }
        }
        let mut logs = lock(logs);
        match text("level").as_deref() {
            Some("WARN") => logs.warnings += 1,
            Some("ERROR") => logs.errors += 1,
            _ => {}
        }
        if matches!(text("level").as_deref(), Some("WARN" | "ERROR")) && logs.problems.len() < KEPT_PROBLEMS {
            let mut problem = line.clone();
            if let Some((cut, _)) = problem.char_indices().nth(PROBLEM_CHARS) {
                problem.truncate(cut);
                problem.push('…');
            }
            logs.problems.push(problem);
        }
        if logs.tail.len() == 40 {
            logs.tail.pop_front();
        }
        logs.tail.push_back(line);
    }
}

// ---------------------------------------------------------------------------
// The simulated fleet.

/// An enrolled agent: its id and identity.
struct Enrolled {
    index: usize,
    id: String,
    certificate_pem: String,
    key_pem: SecretString,
}

/// The numbered event stream of one agent. Shared by the events generator
/// and the command stream task (which sends acknowledgements).
struct EventFeed {
    next_id: u64,
    tx: mpsc::Sender<AgentEvent>,
}

/// A connected agent.
struct Agent {
    id: String,
    feed: tokio::sync::Mutex<EventFeed>,
    /// Highest event id handed to the stream.
    sent: AtomicU64,
    /// Highest EventsReceipt.through_event_id received.
    receipt: AtomicU64,
    /// Commands that arrived on WatchCommands (all are acknowledged).
    commands_received: AtomicU64,
    /// Of those, commands the master sent on its own (its reconciler).
    unsolicited_commands: AtomicU64,
}

impl Agent {
    /// Sends one event with the next id; returns the id.
    async fn send(&self, event: Event) -> Result<u64> {
        let mut feed = self.feed.lock().await;
        let event_id = feed.next_id;
        let event = AgentEvent { event_id, occurred_at: Some(SystemTime::now().into()), event: Some(event) };
        feed.tx.send(event).await.map_err(|_| anyhow!("agent {}: its event stream has ended", self.id))?;
        feed.next_id += 1;
        self.sent.store(event_id, Ordering::Release);
        Ok(event_id)
    }

    fn stored_everything_sent(&self) -> bool {
        self.receipt.load(Ordering::Acquire) >= self.sent.load(Ordering::Acquire)
    }
}

/// The reason the harness's resync commands carry.
const RESYNC_REASON: &str = "fleet_bench";

/// Whether the harness sent this command (rather than the master on its own).
fn is_ours(command: &dockflare::v1::Command) -> bool {
    matches!(&command.kind, Some(dockflare::v1::command::Kind::Resync(resync)) if resync.reason == RESYNC_REASON)
}

/// When each command arrived, by command id, matched with whoever waits for it.
#[derive(Default)]
struct Arrivals {
    slots: Mutex<HashMap<String, Slot>>,
}

enum Slot {
    Arrived(Instant),
    Waiting(oneshot::Sender<Instant>),
}

impl Arrivals {
    fn arrived(&self, command_id: &str, at: Instant) {
        let mut slots = lock(&self.slots);
        match slots.remove(command_id) {
            Some(Slot::Waiting(waiter)) => {
                let _ = waiter.send(at);
            }
            _ => {
                slots.insert(command_id.to_string(), Slot::Arrived(at));
            }
        }
    }

    async fn wait(&self, command_id: &str) -> Result<Instant> {
        let receiver = {
            let mut slots = lock(&self.slots);
            if let Some(Slot::Arrived(at)) = slots.get(command_id) {
                let at = *at;
                slots.remove(command_id);
                return Ok(at);
            }
            let (waiter, receiver) = oneshot::channel();
            slots.insert(command_id.to_string(), Slot::Waiting(waiter));
            receiver
        };
        receiver.await.map_err(|_| anyhow!("command {command_id}: waiter dropped"))
    }
}

/// Latencies of one commands round.
struct Round {
    elapsed: Duration,
    call: Latencies,
    arrival: Latencies,
}

struct Latencies(Vec<Duration>);

impl Latencies {
    /// p50 / p95 / p99 / max in milliseconds (nearest rank).
    fn summary(&self) -> String {
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

struct Fleet {
    url: String,
    ca: Certificate,
    admin_identity: Identity,
    arrivals: Arc<Arrivals>,
    /// The first stream failure of any agent.
    failure: Arc<Mutex<Option<String>>>,
    /// Set before the master is killed: stream failures are expected then.
    stopping: Arc<AtomicBool>,
}

impl Fleet {
    fn new(addr: SocketAddr, pki: &Path) -> Result<Fleet> {
        let read = |name: &str| {
            let path = pki.join(name);
            std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
        };
        Ok(Fleet {
            url: format!("https://{addr}"),
            ca: Certificate::from_pem(read("ca.crt")?),
            admin_identity: Identity::from_pem(read("admin.crt")?, read("admin.key")?),
            arrivals: Arc::default(),
            failure: Arc::default(),
            stopping: Arc::default(),
        })
    }

    /// A new channel (its own TCP and TLS connection).
    async fn channel(&self, identity: Option<Identity>) -> Result<Channel> {
        let mut tls = ClientTlsConfig::new().domain_name(SERVER_NAME).ca_certificate(self.ca.clone());
        if let Some(identity) = identity {
            tls = tls.identity(identity);
        }
        let endpoint = Endpoint::from_shared(self.url.clone())?
            .connect_timeout(Duration::from_secs(10))
            .tcp_nodelay(true)
            .tls_config(tls)?;
        endpoint.connect().await.with_context(|| format!("connecting to {}", self.url))
    }

    async fn admin_client(&self) -> Result<AdminServiceClient<Channel>> {
        Ok(AdminServiceClient::new(self.channel(Some(self.admin_identity.clone())).await?))
    }

    fn check_failures(&self) -> Result<()> {
        match lock(&self.failure).as_ref() {
            Some(failure) => bail!("an agent failed: {failure}"),
            None => Ok(()),
        }
    }

    async fn enroll_all(&self, admin: &AdminServiceClient<Channel>, args: &Args) -> Result<Vec<Enrolled>> {
        let max_uses = u32::try_from(args.agents).context("--agents is too large for one join token")?;
        let token = admin
            .clone()
            .create_join_token(CreateJoinTokenRequest {
                ttl_seconds: 3600,
                max_uses,
                description: "fleet_bench".into(),
                tunnel_group: String::new(),
                policy: None,
            })
            .await
            .context("CreateJoinToken")?
            .into_inner()
            .token;
        let token = SecretString::from(token);
        let mut enrolled: Vec<Enrolled> = futures::stream::iter(0..args.agents)
            .map(|index| self.enroll(index, &token))
            .buffer_unordered(args.connect_concurrency)
            .try_collect()
            .await?;
        enrolled.sort_by_key(|agent| agent.index);
        Ok(enrolled)
    }

    async fn enroll(&self, index: usize, token: &SecretString) -> Result<Enrolled> {
        let name = format!("bench-{index:05}");
        let (key_pem, csr_der) = dockflare_common::pki::new_key_and_csr(&name)?;
        let channel = self.channel(None).await?;
        let request = EnrollRequest { join_token: token.expose_secret().to_string(), csr_der, display_name: name };
        let response = AgentServiceClient::new(channel)
            .enroll(request)
            .await
            .with_context(|| format!("Enroll of agent {index}"))?
            .into_inner();
        Ok(Enrolled { index, id: response.agent_id, certificate_pem: response.certificate_pem, key_pem })
    }

    async fn connect_all(&self, enrolled: Vec<Enrolled>, args: &Args) -> Result<Vec<Arc<Agent>>> {
        let agents: Vec<Arc<Agent>> = futures::stream::iter(enrolled)
            .map(|agent| self.connect(agent))
            .buffered(args.connect_concurrency)
            .try_collect()
            .await?;
        self.wait_until_stored(&agents, "first events").await?;
        Ok(agents)
    }

    /// Register, open both streams, send a first status_report.
    async fn connect(&self, enrolled: Enrolled) -> Result<Arc<Agent>> {
        let index = enrolled.index;
        let identity = Identity::from_pem(&enrolled.certificate_pem, enrolled.key_pem.expose_secret());
        let mut client = AgentServiceClient::new(self.channel(Some(identity)).await?);
        let registration = RegisterRequest {
            display_name: format!("bench-{index:05}"),
            version: "fleet-bench".into(),
            docker_mode: DockerMode::Standalone as i32,
            node_id: format!("bench-node-{index:05}"),
            hostname: format!("bench-{index:05}"),
            ..Default::default()
        };
        let registered =
            client.register(registration).await.with_context(|| format!("Register of agent {index}"))?.into_inner();
        ensure!(
            registered.agent_id == enrolled.id,
            "Register answered for {} instead of {}",
            registered.agent_id,
            enrolled.id
        );
        let mut commands = client
            .watch_commands(WatchCommandsRequest {})
            .await
            .with_context(|| format!("WatchCommands of agent {index}"))?
            .into_inner();
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        let agent = Arc::new(Agent {
            id: enrolled.id,
            feed: tokio::sync::Mutex::new(EventFeed { next_id: registered.last_event_id + 1, tx }),
            sent: AtomicU64::new(registered.last_event_id),
            receipt: AtomicU64::new(registered.last_event_id),
            commands_received: AtomicU64::new(0),
            unsolicited_commands: AtomicU64::new(0),
        });

        let (failure, stopping) = (self.failure.clone(), self.stopping.clone());
        let fail = move |what: String| {
            if !stopping.load(Ordering::SeqCst) {
                lock(&failure).get_or_insert(what);
            }
        };
        let report_fail = fail.clone();
        let agent_id = agent.id.clone();
        tokio::spawn(async move {
            let outcome = client.report_events(ReceiverStream::new(rx)).await;
            report_fail(match outcome {
                Ok(_) => format!("agent {agent_id}: ReportEvents ended"),
                Err(status) => format!("agent {agent_id}: ReportEvents: {:?}: {}", status.code(), status.message()),
            });
        });
        let (watcher, arrivals) = (agent.clone(), self.arrivals.clone());
        tokio::spawn(async move {
            let ended = loop {
                match commands.message().await {
                    Ok(Some(message)) => match message.message {
                        Some(Incoming::Command(command)) => {
                            arrivals.arrived(&command.id, Instant::now());
                            watcher.commands_received.fetch_add(1, Ordering::AcqRel);
                            if !is_ours(&command) {
                                watcher.unsolicited_commands.fetch_add(1, Ordering::AcqRel);
                            }
                            let ack = CommandResult {
                                command_id: command.id,
                                sequence: command.sequence,
                                success: true,
                                error: String::new(),
                            };
                            if let Err(error) = watcher.send(Event::CommandResult(ack)).await {
                                break error.to_string();
                            }
                        }
                        Some(Incoming::EventsReceipt(receipt)) => {
                            watcher.receipt.fetch_max(receipt.through_event_id, Ordering::AcqRel);
                        }
                        None => {}
                    },
                    Ok(None) => break "the master closed WatchCommands".to_string(),
                    Err(status) => break format!("WatchCommands: {:?}: {}", status.code(), status.message()),
                }
            };
            fail(format!("agent {}: {ended}", watcher.id));
        });

        agent.send(Event::StatusReport(StatusReport { containers: Vec::new() })).await?;
        Ok(agent)
    }

    /// Waits until every agent's receipt covers every event it sent.
    async fn wait_until_stored(&self, agents: &[Arc<Agent>], what: &str) -> Result<()> {
        let confirmed = || agents.iter().map(|agent| agent.receipt.load(Ordering::Acquire)).sum::<u64>();
        let started = Instant::now();
        let mut next_progress = started + PROGRESS_EVERY;
        let mut confirmed_before = confirmed();
        loop {
            self.check_failures()?;
            let behind = agents.iter().filter(|agent| !agent.stored_everything_sent()).count();
            if behind == 0 {
                return Ok(());
            }
            if Instant::now() >= next_progress {
                next_progress += PROGRESS_EVERY;
                let now_confirmed = confirmed();
                eprintln!(
                    "  {what}: {behind} of {} agents behind; {:.0} events/s confirmed in the last {PROGRESS_EVERY:?} ({})",
                    agents.len(),
                    now_confirmed.saturating_sub(confirmed_before) as f64 / PROGRESS_EVERY.as_secs_f64(),
                    secs(started.elapsed())
                );
                confirmed_before = now_confirmed;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Every agent sends `count` heartbeats at once; returns the time until all are stored.
    async fn send_events(&self, agents: &[Arc<Agent>], count: u64) -> Result<Duration> {
        let started = Instant::now();
        let senders: Vec<_> = agents
            .iter()
            .map(|agent| {
                let agent = agent.clone();
                tokio::spawn(async move {
                    for _ in 0..count {
                        // A tunnel status keeps a history row (heartbeats only move the cursor).
                        let status = TunnelStatus { state: ConnectorState::Running as i32, ..Default::default() };
                        agent.send(Event::TunnelStatus(status)).await?;
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        // Senders block on their bounded buffers; check for stream failures meanwhile.
        let all_sent = futures::future::try_join_all(senders);
        tokio::pin!(all_sent);
        loop {
            tokio::select! {
                joined = &mut all_sent => {
                    for sent in joined.context("an event sender panicked")? {
                        sent?;
                    }
                    break;
                }
                _ = tokio::time::sleep(Duration::from_millis(100)) => self.check_failures()?,
            }
        }
        self.wait_until_stored(agents, "events").await?;
        Ok(started.elapsed())
    }

    /// Sends one resync command to each target, `concurrency` at a time.
    async fn command_round(
        &self,
        admin: &AdminServiceClient<Channel>,
        agents: &[Arc<Agent>],
        targets: &[usize],
        concurrency: usize,
    ) -> Result<Round> {
        let started = Instant::now();
        let timings: Vec<(Duration, Duration)> = futures::stream::iter(targets)
            .map(|&target| self.send_command(admin.clone(), &agents[target]))
            .buffer_unordered(concurrency)
            .try_collect()
            .await?;
        let elapsed = started.elapsed();
        let (call, arrival): (Vec<Duration>, Vec<Duration>) = timings.into_iter().unzip();
        Ok(Round { elapsed, call: Latencies(call), arrival: Latencies(arrival) })
    }

    /// Returns the SendCommand call's duration and the time until arrival.
    async fn send_command(
        &self,
        mut admin: AdminServiceClient<Channel>,
        agent: &Agent,
    ) -> Result<(Duration, Duration)> {
        let request = SendCommandRequest {
            agent_id: agent.id.clone(),
            kind: Some(send_command_request::Kind::Resync(Resync { reason: RESYNC_REASON.into() })),
        };
        let started = Instant::now();
        let response = admin.send_command(request).await.with_context(|| format!("SendCommand to {}", agent.id))?;
        let call = started.elapsed();
        let command_id = response.into_inner().command_id;
        let arrived = tokio::select! {
            arrived = self.arrivals.wait(&command_id) => arrived?,
            failed = self.watch_failures() => return Err(failed),
        };
        Ok((call, arrived.saturating_duration_since(started)))
    }

    /// Resolves with the first agent failure.
    async fn watch_failures(&self) -> anyhow::Error {
        loop {
            if let Err(error) = self.check_failures() {
                return error;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until every acknowledgement is stored, then checks with GetAgent
    /// that each agent that got a command has acknowledged all of them (the
    /// master may have sent some on its own). Returns the number of commands
    /// received and, of those, sent by the master on its own.
    async fn verify_acks(
        &self,
        admin: &AdminServiceClient<Channel>,
        agents: &[Arc<Agent>],
        sent_per_agent: &[u64],
    ) -> Result<(u64, u64)> {
        self.wait_until_stored(agents, "command acks").await?;
        let received = |agent: &Agent| agent.commands_received.load(Ordering::Acquire);
        let checks =
            agents.iter().zip(sent_per_agent).filter(|(agent, _)| received(agent) > 0).map(|(agent, &sent)| {
                let mut admin = admin.clone();
                async move {
                    // The master may queue a command of its own (the reconciler's start_tunnel)
                    // at any time: poll until the agent's acks catch up, within a deadline.
                    let deadline = Instant::now() + ACKS_SETTLE;
                    loop {
                        let record = admin
                            .get_agent(GetAgentRequest { id: agent.id.clone() })
                            .await
                            .with_context(|| format!("GetAgent {}", agent.id))?
                            .into_inner()
                            .agent
                            .ok_or_else(|| anyhow!("GetAgent {}: no agent in the answer", agent.id))?;
                        let settled = received(agent) >= sent
                            && record.last_command_sequence >= sent
                            && record.last_acked_command_sequence == record.last_command_sequence;
                        if settled {
                            return anyhow::Ok(());
                        }
                        ensure!(
                            Instant::now() < deadline,
                            "agent {}: {sent} commands sent and {} received, but after {ACKS_SETTLE:?} the master \
                             has last_command_sequence {} and last_acked_command_sequence {}",
                            agent.id,
                            received(agent),
                            record.last_command_sequence,
                            record.last_acked_command_sequence
                        );
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            });
        futures::stream::iter(checks).buffer_unordered(16).try_collect::<Vec<()>>().await?;
        let unsolicited = agents.iter().map(|agent| agent.unsolicited_commands.load(Ordering::Acquire)).sum();
        Ok((agents.iter().map(|agent| received(agent)).sum(), unsolicited))
    }
}

// ---------------------------------------------------------------------------
// The figures table.

struct Report {
    title: String,
    rows: Vec<(String, String)>,
}

impl Report {
    fn new(args: &Args, backend: &str, nofile: &NofileLimits) -> Report {
        Report {
            title: format!(
                "DockFlare fleet benchmark: {} agents, {} events/agent, {} commands/round, {backend}, {} cores, \
                 RLIMIT_NOFILE harness {} master {}",
                args.agents,
                args.events_per_agent,
                args.commands,
                cores(),
                nofile.harness,
                nofile.master,
            ),
            rows: Vec::new(),
        }
    }

    fn row(&mut self, name: &str, value: impl Into<String>) {
        self.rows.push((name.to_string(), value.into()));
    }

    fn render(&self) -> String {
        let width = self.rows.iter().map(|(name, _)| name.chars().count()).max().unwrap_or(0);
        let mut text = format!("\n{}\n{}\n", self.title, "=".repeat(self.title.chars().count()));
        for (name, value) in &self.rows {
            text.push_str(&format!("{name:<width$}  {value}\n"));
        }
        text
    }
}

fn secs(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}

fn kib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}
