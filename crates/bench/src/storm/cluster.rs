//! Two masters on one PostgreSQL database holding one fleet (`--masters 2`):
//!
//! 1. The agents are enrolled through the first master and spread by their URL list: agent `i`
//!    lists master `i mod 2` first, as an operator spreads `--master a,b` and `--master b,a`.
//! 2. A command sent through either master reaches an agent held by the other (the command is
//!    stored by one and delivered by the other), timed SendCommand → the agent's stream.
//! 3. One master is lost (`kill -9`, no restart): its agents walk their URL list to the other,
//!    the real agent's way (backoff, hints), timed from the kill; the other master's agents keep
//!    their streams; commands through the survivor reach the agents that moved.

use crate::reconnect::{all_back, come_back, Clock, Outcome, Policy, Stats, Target};
use crate::rows::{failed, report_storm};
use crate::setup::{enroll_all, settle};
use crate::{master, phase, Args};
use anyhow::{bail, ensure, Context, Result};
use dockflare::v1::admin_service_client::AdminServiceClient;
use dockflare::v1::{command, send_command_request, Resync, SendCommandRequest};
use dockflare_bench::figures::{mib, secs, Figures};
use dockflare_testsupport::{Arrivals, FakeAgent, Master};
use futures::StreamExt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// The reason the benchmark's resync commands carry (the agents' hook records only these).
const RESYNC_REASON: &str = "storm_bench cluster";
/// Longest a command may take to reach its agent before the run fails.
const COMMAND_DEADLINE: Duration = Duration::from_secs(30);

/// Runs the two-master benchmark on `masters` (started on one database, sharing the CA).
pub async fn run(args: &Args, masters: &mut [Master], figures: &mut Figures) -> Result<()> {
    ensure!(masters.len() >= 2, "the cluster benchmark needs at least two masters");
    let target = Arc::new(Target { addrs: masters.iter().map(|m| m.addr).collect(), ca_pem: masters[0].ca_pem()? });
    let policy = Policy { backoff_min: args.backoff_min, backoff_max: args.backoff_max };
    let (n, count) = (args.agents, masters.len());
    let arrivals = Arc::new(Arrivals::default());

    let started = Instant::now();
    let enrolled = phase("enroll", args.phase_timeout, enroll_all(&masters[0], &target, args)).await?;
    figures.duration(&format!("enroll {n} agents through master A"), Some(started.elapsed()));

    // Connected, each to the first master of its list.
    let stats = Stats::default();
    let (listening, clock) = Clock::new(args.phase_timeout);
    listening.send_replace(Some(Instant::now()));
    let started = Instant::now();
    let connected: Vec<(FakeAgent, Outcome)> = phase("connect", args.phase_timeout, async {
        Ok(futures::stream::iter(enrolled.into_iter().enumerate())
            .map(|(index, agent)| {
                let (target, clock, stats) = (&target, &clock, &stats);
                let mut agent = agent.on_command(recorder(arrivals.clone()));
                async move {
                    let outcome = come_back(&mut agent, target, index % count, &policy, clock, stats, false).await;
                    (agent, outcome)
                }
            })
            .buffer_unordered(args.connect_concurrency)
            .collect()
            .await)
    })
    .await?;
    let not_connected = connected.iter().filter(|(_, outcome)| outcome.back_at.is_none()).count();
    ensure!(not_connected == 0, "{not_connected} agents did not connect");
    figures.row(
        "connect: Register + 2 streams + 1st receipt",
        format!("{} ({} failed attempts)", secs(started.elapsed()), failed(&stats)),
        started.elapsed().as_secs_f64(),
    );
    let held: Vec<usize> = (0..count).map(|m| connected.iter().filter(|(_, o)| o.master == m).count()).collect();
    figures.row("agents held by master A / B", join(&held), serde_json::json!(held));
    let started = Instant::now();
    phase("settle", args.phase_timeout, settle(&connected)).await?;
    figures.duration("settle: every agent has its tunnel (start_tunnel acked)", Some(started.elapsed()));
    let rss: Vec<u64> = masters.iter().map(master::rss_kib).collect::<Result<_>>()?;
    let per_agent = rss.iter().sum::<u64>() as f64 / n as f64;
    figures.row(
        "master RSS, A / B (both, per agent)",
        format!("{} / {} ({:.1} KiB)", mib(rss[0]), mib(rss[1]), per_agent),
        serde_json::json!({ "kib": rss, "kib_per_agent": per_agent }),
    );

    // A command through either master reaches an agent on the other, and on its own.
    let mut admins = Vec::with_capacity(count);
    for master in masters.iter() {
        admins.push(master.admin().await?);
    }
    let sample = spread(n, args.commands);
    for (name, through_other) in [("through the agent's own master", false), ("through the other master", true)] {
        let mut latencies = Vec::with_capacity(sample.len());
        for &index in &sample {
            let (agent, outcome) = &connected[index];
            let via = if through_other { (outcome.master + 1) % count } else { outcome.master };
            latencies.push(send_command(&mut admins[via], agent, &arrivals).await?);
        }
        figures.latencies(&format!("command {name}: SendCommand -> agent's stream (p50 / p99 / max)"), latencies);
    }

    // The loss of master A: its agents move to B.
    let (moving, staying): (Vec<_>, Vec<_>) = connected.into_iter().partition(|(_, outcome)| outcome.master == 0);
    masters[0].kill9()?;
    let killed_at = Instant::now();
    eprintln!("Master A killed (SIGKILL); {} agents move to master B.", moving.len());
    let stats = Arc::new(Stats::default());
    let (listening, clock) = Clock::new(args.give_up_after);
    listening.send_replace(Some(killed_at));
    let tasks: Vec<_> = moving
        .into_iter()
        .map(|(mut agent, _)| {
            let (target, clock, stats) = (target.clone(), clock.clone(), stats.clone());
            tokio::spawn(async move {
                let outcome = come_back(&mut agent, &target, 0, &policy, &clock, &stats, true).await;
                (agent, outcome)
            })
        })
        .collect();
    let moved_count = tasks.len();
    let moved = all_back(tasks, &stats, killed_at, "on master B").await?;
    let outcomes: Vec<Outcome> = moved.iter().map(|(_, outcome)| *outcome).collect();
    report_storm(figures, &outcomes, &stats, (killed_at, "the kill of master A"), args);
    let elsewhere = outcomes.iter().filter(|o| o.back_at.is_some() && o.master != 1).count();
    let dropped = staying.iter().filter(|(agent, _)| agent.ended().is_some()).count();
    figures.row(
        "master B's own agents that lost a stream meanwhile",
        format!("{dropped} of {}", staying.len()),
        dropped,
    );
    let rss = master::rss_kib(&masters[1])?;
    figures.row(&format!("master B RSS, {n} agents"), mib(rss), rss);

    // Commands through the survivor reach the agents that moved.
    let survivor = &mut admins[1];
    let mut latencies = Vec::with_capacity(args.commands);
    for index in spread(moved.len(), args.commands) {
        let (agent, outcome) = &moved[index];
        if outcome.back_at.is_some() {
            latencies.push(send_command(survivor, agent, &arrivals).await?);
        }
    }
    figures.latencies("command through master B to a moved agent (p50 / p99 / max)", latencies);

    let gave_up = outcomes.iter().filter(|outcome| outcome.back_at.is_none()).count();
    if gave_up > 0 || elsewhere > 0 || dropped > 0 {
        bail!(
            "{gave_up} of {moved_count} agents gave up, {elsewhere} came back elsewhere than master B, and {dropped} of \
             master B's own agents lost a stream"
        );
    }
    let last = outcomes.iter().filter_map(|o| o.back_at).max().map(|at| at.saturating_duration_since(killed_at));
    if args.enforce && last.is_none_or(|last| last > args.target) {
        bail!("the last agent was on master B {last:?} after the kill, over --target {:?}", args.target);
    }
    Ok(())
}

/// A command hook recording when the benchmark's commands arrive.
fn recorder(arrivals: Arc<Arrivals>) -> dockflare_testsupport::fake_agent::CommandHook {
    Arc::new(move |command, at| {
        if matches!(&command.kind, Some(command::Kind::Resync(resync)) if resync.reason == RESYNC_REASON) {
            arrivals.arrived(&command.id, at);
        }
    })
}

/// Sends one resync to `agent` through `admin`; the time until it was on the agent's stream.
async fn send_command(
    admin: &mut AdminServiceClient<Channel>,
    agent: &FakeAgent,
    arrivals: &Arrivals,
) -> Result<Duration> {
    let request = SendCommandRequest {
        agent_id: agent.id.clone(),
        kind: Some(send_command_request::Kind::Resync(Resync { reason: RESYNC_REASON.into() })),
    };
    let started = Instant::now();
    let command_id = admin.send_command(request).await?.into_inner().command_id;
    let arrived = tokio::time::timeout(COMMAND_DEADLINE, arrivals.wait(&command_id)).await.with_context(|| {
        format!("command {command_id} did not reach agent {} within {COMMAND_DEADLINE:?}", agent.id)
    })??;
    Ok(arrived.saturating_duration_since(started))
}

/// `count` indexes spread evenly over `0..n` (every one when `count >= n`).
fn spread(n: usize, count: usize) -> Vec<usize> {
    let count = count.min(n);
    (0..count).map(|i| i * n / count).collect()
}

fn join(values: &[usize]) -> String {
    values.iter().map(usize::to_string).collect::<Vec<_>>().join(" / ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_is_spread_and_never_past_the_end() {
        assert_eq!(spread(10, 5), vec![0, 2, 4, 6, 8]);
        assert_eq!(spread(3, 10), vec![0, 1, 2]);
        assert!(spread(0, 10).is_empty());
    }
}
