//! The simulated fleet: [`FakeAgent`]s (the same fake every test uses), each on its own TCP +
//! TLS connection with its own certificate, enrolled and connected N at a time; their events,
//! the commands sent to them, and when those arrived.

use crate::report::{secs, Latencies, Round};
use crate::server::{Control, ServerUnderTest};
use crate::Args;
use anyhow::{anyhow, bail, ensure, Context, Result};
use dockflare::v1::admin_service_client::AdminServiceClient;
use dockflare::v1::agent_event::Event;
use dockflare::v1::{
    send_command_request, ConnectorState, DockerMode, GetAgentRequest, RegisterRequest, Resync, SendCommandRequest,
    StatusReport, TunnelStatus,
};
use dockflare_testsupport::{mtls_channel, Arrivals, FakeAgent};
use futures::{StreamExt, TryStreamExt};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// How often the waits re-check progress.
const POLL: Duration = Duration::from_millis(5);
/// How often long waits print progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// How long an agent's acks may take to catch up with the commands it received.
const ACKS_SETTLE: Duration = Duration::from_secs(10);

/// The reason the harness's resync commands carry.
const RESYNC_REASON: &str = "fleet_bench";

/// Whether the harness sent this command (rather than the master on its own).
fn is_ours(command: &dockflare::v1::Command) -> bool {
    matches!(&command.kind, Some(dockflare::v1::command::Kind::Resync(resync)) if resync.reason == RESYNC_REASON)
}

pub struct Fleet {
    addr: SocketAddr,
    ca_pem: String,
    arrivals: Arc<Arrivals>,
    /// Commands the master sent on its own (its reconciler), not the harness.
    unsolicited: Arc<AtomicU64>,
}

/// The first stream failure of any agent, as an error.
fn check_failures(agents: &[Arc<FakeAgent>]) -> Result<()> {
    match agents.iter().find_map(|agent| agent.ended().map(|why| (agent.id.clone(), why))) {
        Some((id, why)) => bail!("agent {id} failed: {why}"),
        None => Ok(()),
    }
}

/// Resolves with the agent's stream failure.
async fn watch_failures(agent: &FakeAgent) -> anyhow::Error {
    loop {
        if let Some(why) = agent.ended() {
            return anyhow!("agent {} failed: {why}", agent.id);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Fleet {
    /// The fleet of `server` (its address and PKI; the process stays the caller's).
    pub fn new(server: &ServerUnderTest) -> Result<Fleet> {
        Ok(Fleet {
            addr: server.addr(),
            ca_pem: server.ca_pem()?,
            arrivals: Arc::default(),
            unsolicited: Arc::default(),
        })
    }

    /// A new channel (its own TCP and TLS connection).
    async fn channel(&self, identity: Option<(&str, &str)>) -> Result<Channel> {
        mtls_channel(self.addr, &self.ca_pem, identity).await
    }

    /// Enrolls every agent with one join token, `--connect-concurrency` at a time.
    pub async fn enroll_all(&self, control: &Control, agents: usize, args: &Args) -> Result<Vec<FakeAgent>> {
        let token = control.join_token(agents).await?;
        let mut enrolled: Vec<(usize, FakeAgent)> = futures::stream::iter(0..agents)
            .map(|index| {
                let token = token.clone();
                async move {
                    let name = format!("bench-{index:05}");
                    let agent = FakeAgent::enroll_over(self.channel(None).await?, &token, &name)
                        .await
                        .with_context(|| format!("enrolling agent {index}"))?;
                    anyhow::Ok((index, agent))
                }
            })
            .buffer_unordered(args.connect_concurrency)
            .try_collect()
            .await?;
        enrolled.sort_by_key(|(index, _)| *index);
        Ok(enrolled.into_iter().map(|(_, agent)| agent).collect())
    }

    /// Connects every agent (Register, both streams, a first status_report) and waits until
    /// the master stored every first event.
    pub async fn connect_all(&self, enrolled: Vec<FakeAgent>, args: &Args) -> Result<Vec<Arc<FakeAgent>>> {
        let agents: Vec<Arc<FakeAgent>> = futures::stream::iter(enrolled.into_iter().enumerate())
            .map(|(index, agent)| self.connect(index, agent))
            .buffered(args.connect_concurrency)
            .try_collect()
            .await?;
        self.wait_until_stored(&agents, "first events").await?;
        Ok(agents)
    }

    async fn connect(&self, index: usize, agent: FakeAgent) -> Result<Arc<FakeAgent>> {
        let registration = RegisterRequest {
            display_name: format!("bench-{index:05}"),
            version: "fleet-bench".into(),
            docker_mode: DockerMode::Standalone as i32,
            node_id: format!("bench-node-{index:05}"),
            hostname: format!("bench-{index:05}"),
            ..Default::default()
        };
        let (arrivals, unsolicited) = (self.arrivals.clone(), self.unsolicited.clone());
        let mut agent = agent.registering(registration).on_command(Arc::new(move |command, at| {
            if is_ours(command) {
                arrivals.arrived(&command.id, at);
            } else {
                unsolicited.fetch_add(1, Ordering::AcqRel);
            }
        }));
        let channel = self.channel(Some(agent.identity())).await?;
        agent.connect_over(channel).await.with_context(|| format!("connecting agent {index}"))?;
        agent.send(Event::StatusReport(StatusReport { containers: Vec::new() })).await?;
        Ok(Arc::new(agent))
    }

    /// Waits until every agent's receipt covers every event it sent.
    pub async fn wait_until_stored(&self, agents: &[Arc<FakeAgent>], what: &str) -> Result<()> {
        let confirmed = || agents.iter().map(|agent| agent.receipt()).sum::<u64>();
        let started = Instant::now();
        let mut next_progress = started + PROGRESS_EVERY;
        let mut confirmed_before = confirmed();
        loop {
            check_failures(agents)?;
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
    pub async fn send_events(&self, agents: &[Arc<FakeAgent>], count: u64) -> Result<Duration> {
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
                _ = tokio::time::sleep(Duration::from_millis(100)) => check_failures(agents)?,
            }
        }
        self.wait_until_stored(agents, "events").await?;
        Ok(started.elapsed())
    }

    /// Sends one resync command to each target, `concurrency` at a time.
    pub async fn command_round(
        &self,
        control: &Control,
        agents: &[Arc<FakeAgent>],
        targets: &[usize],
        concurrency: usize,
    ) -> Result<Round> {
        let started = Instant::now();
        let timings: Vec<(Duration, Duration)> = futures::stream::iter(targets)
            .map(|&target| self.send_command(control, &agents[target]))
            .buffer_unordered(concurrency)
            .try_collect()
            .await?;
        let elapsed = started.elapsed();
        let (call, arrival): (Vec<Duration>, Vec<Duration>) = timings.into_iter().unzip();
        Ok(Round { elapsed, call: Latencies(call), arrival: Latencies(arrival) })
    }

    /// Returns the SendCommand call's duration and the time until arrival.
    pub async fn send_command(&self, control: &Control, agent: &FakeAgent) -> Result<(Duration, Duration)> {
        let request = SendCommandRequest {
            agent_id: agent.id.clone(),
            kind: Some(send_command_request::Kind::Resync(Resync { reason: RESYNC_REASON.into() })),
        };
        let started = Instant::now();
        let command_id = control.send_command(request).await?;
        let call = started.elapsed();
        let arrived = tokio::select! {
            arrived = self.arrivals.wait(&command_id) => arrived?,
            failed = watch_failures(agent) => return Err(failed),
        };
        Ok((call, arrived.saturating_duration_since(started)))
    }

    /// Waits until every acknowledgement is stored, then checks with GetAgent
    /// that each agent that got a command has acknowledged all of them (the
    /// master may have sent some on its own). Returns the number of commands
    /// received and, of those, sent by the master on its own.
    pub async fn verify_acks(
        &self,
        admin: &AdminServiceClient<Channel>,
        agents: &[Arc<FakeAgent>],
        sent_per_agent: &[u64],
    ) -> Result<(u64, u64)> {
        self.wait_until_stored(agents, "command acks").await?;
        let received = |agent: &FakeAgent| agent.commands_received();
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
        let unsolicited = self.unsolicited.load(Ordering::Acquire);
        Ok((agents.iter().map(|agent| received(agent)).sum(), unsolicited))
    }
}
