//! One run of the fleet benchmark against one server: enroll and connect the agents, the memory
//! they cost, durable event ingest, then commands timed while every agent keeps sending events.

use crate::fleet::Fleet;
use crate::load::EventLoad;
use crate::report::{kib, secs, Report};
use crate::results::{percentiles, Run, Server};
use crate::sample::{sample, Sample};
use crate::server::ServerUnderTest;
use crate::Args;
use anyhow::{anyhow, Context, Result};
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant, SystemTime};

/// Two memory readings this close (KiB), 100 ms apart, mean the server has settled.
const SETTLED_KIB: u64 = 64;
/// Longest wait for the server to settle before a memory reading.
const SETTLE_LIMIT: Duration = Duration::from_secs(5);

/// A memory reading once the server has settled: two readings 100 ms apart within 64 KiB, or
/// whatever it is after [`SETTLE_LIMIT`].
async fn settled(server: &mut ServerUnderTest) -> Result<Sample> {
    let settle_by = Instant::now() + SETTLE_LIMIT;
    let mut reading = sample(server)?;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let next = sample(server)?;
        let done = next.rss_kib.abs_diff(reading.rss_kib) <= SETTLED_KIB;
        reading = next;
        if done || Instant::now() > settle_by {
            return Ok(reading);
        }
    }
}

/// Measures `agents` simulated agents against `server`; figures go into `report` as well.
pub async fn run(
    server: &mut ServerUnderTest,
    database: Option<&str>,
    agents: usize,
    args: &Args,
    report: &mut Report,
) -> Result<Run> {
    let fleet = Fleet::new(server)?;
    let control = server.control().await?;
    let idle = settled(server).await?;
    report.row("RSS, idle", kib(idle.rss_kib));

    // Enroll and connect.
    let started = Instant::now();
    let enrolled = phase("enroll", args.phase_timeout, fleet.enroll_all(&control, agents, args)).await?;
    let enroll_time = started.elapsed();
    let after_enroll = sample(server)?;
    let connect_started = Instant::now();
    let fleet_agents = phase("connect", args.phase_timeout, fleet.connect_all(enrolled, args)).await?;
    let connect_time = connect_started.elapsed();
    let connected_now = sample(server)?;
    let connected = settled(server).await?;
    let n = agents as f64;
    report.row(
        &format!("enroll {agents} agents ({} at a time)", args.connect_concurrency),
        format!("{} ({:.0} agents/s)", secs(enroll_time), n / enroll_time.as_secs_f64()),
    );
    report.row(
        "connect (Register + 2 streams + 1st event stored)",
        format!("{} ({:.0} agents/s)", secs(connect_time), n / connect_time.as_secs_f64()),
    );
    report.row("CPU during enroll", idle.cpu(&after_enroll));
    report.row("CPU during connect", after_enroll.cpu(&connected_now));
    report.row(&format!("RSS, {agents} agents connected and idle"), kib(connected.rss_kib));
    let per_agent = connected.rss_kib.saturating_sub(idle.rss_kib) as f64 / n;
    report.row("RSS per connected agent", format!("{per_agent:.1} KiB"));
    report.row("open file descriptors", connected.fds.to_string());

    // Durable ingest: every agent sends its events at once.
    let per_agent = args.events_per_agent_for(agents);
    let total_events = per_agent * agents as u64;
    let before_events = sample(server)?;
    let events_time = phase("events", args.phase_timeout, fleet.send_events(&fleet_agents, per_agent)).await?;
    let after_events = sample(server)?;
    let events_per_second = total_events as f64 / events_time.as_secs_f64();
    report.row(
        &format!("events stored ({agents} x {per_agent})"),
        format!("{total_events} in {} = {events_per_second:.0} events/s", secs(events_time)),
    );
    report.row("CPU during events", before_events.cpu(&after_events));
    report.row("RSS after events", kib(after_events.rss_kib));

    // Commands, timed while the agents send `--load-rate` events per second in all.
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    let mut sent_per_agent = vec![0u64; agents];
    let load = EventLoad::start(&fleet_agents, args.load_rate);
    let mut latencies = Vec::new();
    for concurrency in [1, args.command_concurrency] {
        let targets: Vec<usize> = (0..args.commands).map(|_| rng.random_range(0..agents)).collect();
        for &target in &targets {
            sent_per_agent[target] += 1;
        }
        let before = sample(server)?;
        let label = if concurrency == 1 {
            "commands under event load, sequential".to_string()
        } else {
            format!("commands under event load, {concurrency} in flight")
        };
        let round =
            phase(&label, args.phase_timeout, fleet.command_round(&control, &fleet_agents, &targets, concurrency))
                .await?;
        let after = sample(server)?;
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
        latencies.push(round.arrival.0);
    }
    let load = phase("stop the event load", args.phase_timeout, load.stop()).await?;
    report.row(
        &format!("event load during the commands ({:.0}/s offered)", args.load_rate),
        format!(
            "{} sent = {:.0}/s; {:.0} events/s confirmed",
            load.events_sent, load.sent_per_second, load.confirmed_per_second
        ),
    );
    if let Some(admin) = control.admin() {
        let acks_started = Instant::now();
        let (received, unsolicited) =
            phase("acks", args.phase_timeout, fleet.verify_acks(admin, &fleet_agents, &sent_per_agent)).await?;
        report.row(
            "command acks stored + checked (GetAgent)",
            format!(
                "{received} acked ({unsolicited} sent by the master on its own); {} after the last command",
                secs(acks_started.elapsed())
            ),
        );
    } else {
        phase("receipts", args.phase_timeout, fleet.wait_until_stored(&fleet_agents, "receipts")).await?;
    }
    let last = sample(server)?;
    report.row("RSS at the end (peak)", format!("{} ({})", kib(last.rss_kib), kib(last.hwm_kib)));

    let mut latencies = latencies.into_iter();
    let mut sequential = latencies.next().ok_or_else(|| anyhow!("no sequential round"))?;
    let mut concurrent = latencies.next().ok_or_else(|| anyhow!("no concurrent round"))?;
    Ok(Run {
        server: server.kind(),
        database: (server.kind() == Server::Dockflare).then(|| database.unwrap_or("sqlite").to_string()),
        agents,
        connect_seconds: (enroll_time + connect_time).as_secs_f64(),
        rss_idle_kib: idle.rss_kib,
        rss_connected_kib: connected.rss_kib,
        events_per_second: Some(events_per_second),
        commands_sequential: percentiles(&mut sequential),
        commands_concurrent: percentiles(&mut concurrent),
        command_concurrency: args.command_concurrency,
        commands_under_load: args.load_rate > 0.0,
    })
}

/// Runs one phase under the deadline; a miss is an error that names the phase.
pub async fn phase<T>(name: &str, limit: Duration, work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    eprintln!("Phase: {name} ({}).", humantime::format_rfc3339_millis(SystemTime::now()));
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| anyhow!("phase {name:?} did not finish within {limit:?} (--phase-timeout)"))?
        .with_context(|| format!("phase {name:?} failed"))
}
