//! One agent's way back, as the real agent's session loop does it (agent/src/session.rs): after a
//! lost connection it waits a backoff step, then opens a new channel (own TCP + TLS connection,
//! its client certificate, the agent's 5 s connect timeout), registers, opens both streams and
//! sends a status report; it is back when that report's receipt comes. Every failure is
//! classified and counted; a retry hint from the master replaces the next backoff step. With
//! several masters an attempt tries them in the agent's order from the one it used last, as the
//! agent walks its `--master` list (agent/src/connection.rs, `connect_any`).

use crate::backoff::Backoff;
use crate::classify::{classify, Class, StreamEnded};
use anyhow::{Context, Result};
use dockflare::v1::agent_event::Event;
use dockflare::v1::StatusReport;
use dockflare_testsupport::FakeAgent;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// The real agent's connect timeout (agent/src/connection.rs).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the agents connect, and how: the masters' addresses (the agents' URL list) and CA.
pub struct Target {
    pub addrs: Vec<SocketAddr>,
    pub ca_pem: String,
}

impl Target {
    /// A new channel authenticated with `identity` (certificate PEM, key PEM) to the first
    /// master that answers, trying them in order from `preferred`; with the index it reached.
    /// When none answers, the error is the preferred one's (what the class counts).
    pub async fn channel(&self, (cert, key): (&str, &str), preferred: usize) -> Result<(Channel, usize)> {
        let mut first_error = None;
        for offset in 0..self.addrs.len() {
            let index = (preferred + offset) % self.addrs.len();
            match self.channel_to(index, (cert, key)).await {
                Ok(channel) => return Ok((channel, index)),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        Err(first_error.unwrap_or_else(|| anyhow::anyhow!("no master address")))
    }

    async fn channel_to(&self, index: usize, (cert, key): (&str, &str)) -> Result<Channel> {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .identity(Identity::from_pem(cert, key))
            .domain_name("localhost");
        let endpoint = Endpoint::from_shared(format!("https://{}", self.addrs[index]))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .tls_config(tls)?;
        Ok(endpoint.connect().await?)
    }
}

/// The reconnect policy (the real agent's defaults unless told otherwise).
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

/// When the master listens again (`None` while it is down), shared by every agent.
#[derive(Clone)]
pub struct Clock {
    listening: watch::Receiver<Option<Instant>>,
    give_up_after: Duration,
}

impl Clock {
    pub fn new(give_up_after: Duration) -> (watch::Sender<Option<Instant>>, Clock) {
        let (tx, listening) = watch::channel(None);
        (tx, Clock { listening, give_up_after })
    }

    /// Resolves when an agent still out should give up.
    async fn give_up(&self) {
        let mut listening = self.listening.clone();
        let at = match listening.wait_for(Option::is_some).await {
            Ok(at) => *at,
            Err(_) => None,
        };
        match at {
            Some(at) => tokio::time::sleep_until((at + self.give_up_after).into()).await,
            None => std::future::pending().await,
        }
    }
}

/// What every agent's loop counts.
#[derive(Default)]
pub struct Stats {
    pub attempts: AtomicU64,
    pub back: AtomicU64,
    failures: [AtomicU64; Class::ALL.len()],
    /// The first failure of each class, in words.
    examples: Mutex<[Option<String>; Class::ALL.len()]>,
    pub hints: AtomicU64,
    /// Hints after which the next attempt came no sooner than asked.
    pub hints_honoured: AtomicU64,
    /// The steps of every successful attempt.
    steps: Mutex<Vec<Steps>>,
}

impl Stats {
    fn failed(&self, class: Class, error: &anyhow::Error) {
        self.failures[class.index()].fetch_add(1, Ordering::Relaxed);
        let mut examples = self.examples.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        examples[class.index()].get_or_insert_with(|| format!("{error:#}"));
    }

    /// The steps of every successful attempt.
    pub fn steps(&self) -> Vec<Steps> {
        self.steps.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Failures by class, with the first of each in words.
    pub fn failures(&self) -> Vec<(Class, u64, Option<String>)> {
        let examples = self.examples.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        Class::ALL
            .iter()
            .zip(examples)
            .map(|(class, example)| (*class, self.failures[class.index()].load(Ordering::Relaxed), example))
            .collect()
    }
}

/// How one agent's way back went.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub attempts: u32,
    /// When it was back (both streams, first receipt); `None`: it gave up.
    pub back_at: Option<Instant>,
    /// The master it is connected to (an index into [`Target::addrs`]), or last tried.
    pub master: usize,
}

/// The registration fields of bench agent `index`.
pub fn registration(index: usize) -> dockflare::v1::RegisterRequest {
    dockflare::v1::RegisterRequest {
        display_name: format!("storm-{index:05}"),
        version: "storm-bench".into(),
        docker_mode: dockflare::v1::DockerMode::Standalone as i32,
        node_id: format!("storm-node-{index:05}"),
        hostname: format!("storm-{index:05}"),
        ..Default::default()
    }
}

/// How long the steps of a successful attempt took.
#[derive(Debug, Clone, Copy, Default)]
pub struct Steps {
    /// TCP connect and the TLS and HTTP/2 handshakes.
    pub channel: Duration,
    /// Register, then WatchCommands opened.
    pub register: Duration,
    /// The status report sent on ReportEvents until its receipt.
    pub receipt: Duration,
}

/// One attempt: a new channel, Register and both streams, a status report and its receipt.
async fn attempt(agent: &mut FakeAgent, target: &Target, master: &mut usize) -> Result<Steps> {
    let started = Instant::now();
    let (channel, reached) = target.channel(agent.identity(), *master).await.context("connecting")?;
    *master = reached;
    let channel_done = Instant::now();
    agent.connect_over(channel).await?;
    let registered = Instant::now();
    let event_id = agent.send(Event::StatusReport(StatusReport { containers: Vec::new() })).await?;
    agent.stored(event_id).await.map_err(StreamEnded)?;
    Ok(Steps { channel: channel_done - started, register: registered - channel_done, receipt: registered.elapsed() })
}

/// Brings `agent` back: attempts until one succeeds or the clock says give up, starting with
/// master `preferred` (the one it used last). With `lost_connection` the first attempt waits a
/// backoff step, as the real agent does after its session ended.
pub async fn come_back(
    agent: &mut FakeAgent,
    target: &Target,
    preferred: usize,
    policy: &Policy,
    clock: &Clock,
    stats: &Stats,
    lost_connection: bool,
) -> Outcome {
    let mut master = preferred;
    let mut backoff = Backoff::new(policy.backoff_min, policy.backoff_max);
    let mut wait = lost_connection.then(|| backoff.next_delay(rand::random()));
    let mut hinted_until: Option<Instant> = None;
    let mut attempts = 0u32;
    let gave_up = Outcome { attempts: 0, back_at: None, master };
    loop {
        if let Some(delay) = wait.take() {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = clock.give_up() => return Outcome { attempts, master, ..gave_up },
            }
        }
        if let Some(until) = hinted_until.take() {
            if Instant::now() >= until {
                stats.hints_honoured.fetch_add(1, Ordering::Relaxed);
            }
        }
        attempts += 1;
        stats.attempts.fetch_add(1, Ordering::Relaxed);
        let result = tokio::select! {
            result = attempt(agent, target, &mut master) => result,
            _ = clock.give_up() => return Outcome { attempts, master, ..gave_up },
        };
        let error = match result {
            Ok(steps) => {
                stats.steps.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(steps);
                stats.back.fetch_add(1, Ordering::Relaxed);
                return Outcome { attempts, back_at: Some(Instant::now()), master };
            }
            Err(error) => error,
        };
        let failure = classify(&error);
        stats.failed(failure.class, &error);
        wait = Some(match failure.hint {
            Some(hint) => {
                stats.hints.fetch_add(1, Ordering::Relaxed);
                hinted_until = Some(Instant::now() + hint);
                dockflare_common::retry_pushback::jittered(hint, rand::random())
            }
            None => backoff.next_delay(rand::random()),
        });
    }
}

/// Waits for every agent's way back (`tasks`, each from [`come_back`]), printing every
/// [`crate::PROGRESS_EVERY`] from `since` how many are `back` (the word says where); the agents
/// with their outcomes, in the tasks' order.
pub async fn all_back(
    tasks: Vec<tokio::task::JoinHandle<(FakeAgent, Outcome)>>,
    stats: &Stats,
    since: Instant,
    back: &str,
) -> Result<Vec<(FakeAgent, Outcome)>> {
    let total = tasks.len();
    let joined = futures::future::join_all(tasks);
    tokio::pin!(joined);
    let every = crate::PROGRESS_EVERY;
    let mut progress = tokio::time::interval_at((since + every).into(), every);
    let results = loop {
        tokio::select! {
            results = &mut joined => break results,
            _ = progress.tick() => eprintln!(
                "  {} s: {} of {total} {back}, {} attempts",
                since.elapsed().as_secs(),
                stats.back.load(Ordering::Relaxed),
                stats.attempts.load(Ordering::Relaxed),
            ),
        }
    };
    results.into_iter().map(|result| result.context("an agent's task panicked")).collect()
}
