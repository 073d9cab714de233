//! A fake agent speaking the real gRPC protocol — the one fake of every test and the fleet
//! benchmark: enrolls (a new key and CSR, AgentService.Enroll without a client certificate),
//! registers, holds both streams on its own mTLS connection, sends numbered events in order
//! (containers as a Docker watcher would report them, heartbeats, …), records receipts and
//! acknowledges every command. Fast and deterministic where Docker is not the subject.

use crate::master::Master;
use anyhow::{anyhow, bail, ensure, Context, Result};
use dockflare::v1::agent_event::Event;
use dockflare::v1::agent_service_client::AgentServiceClient;
use dockflare::v1::watch_commands_response::Message as Incoming;
use dockflare::v1::{
    AgentEvent, Command, CommandResult, Container, DockerMode, EnrollRequest, RegisterRequest, StatusReport,
    WatchCommandsRequest,
};
use secrecy::ExposeSecret;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Instant, SystemTime};
use tokio::sync::mpsc;
use tonic::transport::Channel;

/// Called with every command that arrives, and when it arrived (before it is acknowledged).
pub type CommandHook = Arc<dyn Fn(&Command, Instant) + Send + Sync>;

/// Events buffered between the senders and the ReportEvents stream.
const EVENT_BUFFER: usize = 256;

/// The numbered event stream: ids are handed out and sent under one lock, so they arrive in order.
struct Feed {
    next_id: u64,
    tx: Option<mpsc::Sender<AgentEvent>>,
}

/// What the agent's tasks and its owner share.
struct Shared {
    feed: tokio::sync::Mutex<Feed>,
    /// The highest event id handed to the stream.
    sent: AtomicU64,
    /// The highest EventsReceipt.through_event_id received.
    receipt: AtomicU64,
    commands_received: AtomicU64,
    /// The tunnel tokens of the start_tunnel commands received, in order.
    tokens: Mutex<Vec<String>>,
    /// Why a stream ended, once one has.
    ended: Mutex<Option<String>>,
    /// Woken when a receipt comes or a stream ends.
    changed: tokio::sync::Notify,
}

impl Shared {
    async fn send(&self, event: Event) -> Result<u64> {
        let mut feed = self.feed.lock().await;
        let event_id = feed.next_id;
        let event = AgentEvent { event_id, occurred_at: Some(SystemTime::now().into()), event: Some(event) };
        let tx = feed.tx.as_ref().ok_or_else(|| anyhow!("not connected"))?;
        tx.send(event).await.map_err(|_| anyhow!("the event stream has ended"))?;
        feed.next_id += 1;
        self.sent.fetch_max(event_id, Ordering::AcqRel);
        Ok(event_id)
    }

    fn end(&self, why: String) {
        self.ended.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert(why);
        self.changed.notify_waiters();
    }
}

/// An enrolled agent; connected after [`FakeAgent::connect`].
pub struct FakeAgent {
    pub id: String,
    pub cert_pem: String,
    pub key_pem: String,
    /// What it says at Register (docker_mode, tunnel group, swarm ids …).
    registration: RegisterRequest,
    on_command: Option<CommandHook>,
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// What a fake agent says at Register unless told otherwise.
pub fn registration(name: &str, tunnel_group: &str) -> RegisterRequest {
    RegisterRequest {
        display_name: name.into(),
        version: "test".into(),
        docker_mode: DockerMode::Standalone as i32,
        hostname: format!("{name}-host"),
        node_id: format!("{name}-node"),
        tunnel_group: tunnel_group.into(),
        ..Default::default()
    }
}

/// A running container with these labels.
pub fn container(id: &str, name: &str, labels: &[(&str, &str)]) -> Container {
    Container {
        id: id.into(),
        name: name.into(),
        status: "running".into(),
        image: "origin:latest".into(),
        labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        ..Default::default()
    }
}

/// The labels of a simple route.
pub fn route_labels(hostname: &str, service: &str) -> Vec<(String, String)> {
    vec![
        ("dockflare.enable".into(), "true".into()),
        ("dockflare.hostname".into(), hostname.into()),
        ("dockflare.service".into(), service.into()),
    ]
}

/// A running container named `id` with these labels.
pub fn labelled(id: &str, labels: &[(String, String)]) -> Container {
    let pairs: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    container(id, id, &pairs)
}

/// Enrolls a new agent with a join token of its own (AdminService.CreateJoinToken with the admin
/// certificate); not connected.
pub async fn enroll_agent(master: &Master, name: &str) -> Result<FakeAgent> {
    let token = master.join_token(1).await?;
    FakeAgent::enroll(master, &token, name).await
}

impl FakeAgent {
    /// Enrolls with `token` over `channel` (no client certificate); not connected.
    pub async fn enroll_over(channel: Channel, token: &str, name: &str) -> Result<FakeAgent> {
        let (key, csr_der) = dockflare_common::pki::new_key_and_csr(name)?;
        let enrolled = AgentServiceClient::new(channel)
            .enroll(EnrollRequest { join_token: token.into(), csr_der, display_name: name.into() })
            .await
            .with_context(|| format!("Enroll of {name}"))?
            .into_inner();
        if enrolled.agent_id.is_empty() || !enrolled.certificate_pem.contains("BEGIN CERTIFICATE") {
            bail!("Enroll of {name} returned no agent id or certificate");
        }
        Ok(FakeAgent {
            id: enrolled.agent_id,
            cert_pem: enrolled.certificate_pem,
            key_pem: key.expose_secret().to_string(),
            registration: registration(name, ""),
            on_command: None,
            shared: Arc::new(Shared {
                feed: tokio::sync::Mutex::new(Feed { next_id: 1, tx: None }),
                sent: AtomicU64::new(0),
                receipt: AtomicU64::new(0),
                commands_received: AtomicU64::new(0),
                tokens: Mutex::default(),
                ended: Mutex::default(),
                changed: tokio::sync::Notify::new(),
            }),
            tasks: Vec::new(),
        })
    }

    /// Enrolls with `token`; not connected.
    pub async fn enroll(master: &Master, token: &str, name: &str) -> Result<FakeAgent> {
        FakeAgent::enroll_over(master.anonymous_channel().await?, token, name).await
    }

    /// Enrolls with `token` and connects, in tunnel group `tunnel_group` ("" for its own tunnel).
    pub async fn join(master: &Master, token: &str, name: &str, tunnel_group: &str) -> Result<FakeAgent> {
        FakeAgent::join_as(master, token, name, registration("fake", tunnel_group)).await
    }

    /// Enrolls with `token` and connects, registering with `registration`.
    pub async fn join_as(master: &Master, token: &str, name: &str, registration: RegisterRequest) -> Result<FakeAgent> {
        let mut agent = FakeAgent::enroll(master, token, name).await?.registering(registration);
        agent.connect(master).await?;
        Ok(agent)
    }

    /// Registers with `registration` from the next connect on.
    pub fn registering(mut self, registration: RegisterRequest) -> FakeAgent {
        self.registration = registration;
        self
    }

    /// Calls `hook` with every command that arrives, from the next connect on.
    pub fn on_command(mut self, hook: CommandHook) -> FakeAgent {
        self.on_command = Some(hook);
        self
    }

    /// The certificate and key, for channels of its own.
    pub fn identity(&self) -> (&str, &str) {
        (&self.cert_pem, &self.key_pem)
    }

    /// A channel authenticated with this agent's certificate.
    pub async fn channel(&self, master: &Master) -> Result<Channel> {
        master.channel_as(Some(self.identity())).await
    }

    /// (Re)connects to `master`: Register, both streams, commands acknowledged.
    pub async fn connect(&mut self, master: &Master) -> Result<()> {
        let channel = self.channel(master).await?;
        self.connect_over(channel).await
    }

    /// (Re)connects over `channel` (authenticated with this agent's certificate).
    pub async fn connect_over(&mut self, channel: Channel) -> Result<()> {
        for task in self.tasks.drain(..) {
            task.abort();
        }
        let mut client = AgentServiceClient::new(channel);
        let registered = client.register(self.registration.clone()).await.context("Register")?.into_inner();
        ensure!(registered.agent_id == self.id, "Register answered for {} instead of {}", registered.agent_id, self.id);
        let mut commands = client.watch_commands(WatchCommandsRequest {}).await.context("WatchCommands")?.into_inner();
        let (tx, rx) = mpsc::channel::<AgentEvent>(EVENT_BUFFER);
        {
            let mut feed = self.shared.feed.lock().await;
            feed.next_id = feed.next_id.max(registered.last_event_id + 1);
            feed.tx = Some(tx);
        }
        self.shared.sent.fetch_max(registered.last_event_id, Ordering::AcqRel);
        self.shared.receipt.fetch_max(registered.last_event_id, Ordering::AcqRel);
        *self.shared.ended.lock().unwrap_or_else(PoisonError::into_inner) = None;

        let shared = self.shared.clone();
        self.tasks.push(tokio::spawn(async move {
            let outcome = client.report_events(tokio_stream::wrappers::ReceiverStream::new(rx)).await;
            shared.end(match outcome {
                Ok(_) => "ReportEvents ended".to_string(),
                Err(status) => format!("ReportEvents: {:?}: {}", status.code(), status.message()),
            });
        }));
        let (shared, hook) = (self.shared.clone(), self.on_command.clone());
        self.tasks.push(tokio::spawn(async move {
            let ended = loop {
                match commands.message().await {
                    Ok(Some(message)) => match message.message {
                        Some(Incoming::Command(command)) => {
                            if let Some(hook) = &hook {
                                hook(&command, Instant::now());
                            }
                            shared.commands_received.fetch_add(1, Ordering::AcqRel);
                            if let Some(dockflare::v1::command::Kind::StartTunnel(start)) = &command.kind {
                                shared.tokens.lock().unwrap_or_else(PoisonError::into_inner).push(start.token.clone());
                            }
                            let ack = CommandResult {
                                command_id: command.id,
                                sequence: command.sequence,
                                success: true,
                                error: String::new(),
                            };
                            if let Err(error) = shared.send(Event::CommandResult(ack)).await {
                                break error.to_string();
                            }
                        }
                        Some(Incoming::EventsReceipt(receipt)) => {
                            shared.receipt.fetch_max(receipt.through_event_id, Ordering::AcqRel);
                            shared.changed.notify_waiters();
                        }
                        None => {}
                    },
                    Ok(None) => break "the master closed WatchCommands".to_string(),
                    Err(status) => break format!("WatchCommands: {:?}: {}", status.code(), status.message()),
                }
            };
            shared.end(ended);
        }));
        Ok(())
    }

    /// Sends one event with the next id; returns the id.
    pub async fn send(&self, event: Event) -> Result<u64> {
        self.shared.send(event).await.with_context(|| format!("agent {}", self.id))
    }

    /// A full snapshot: exactly these containers run.
    pub async fn report(&self, containers: Vec<Container>) -> Result<()> {
        self.send(Event::StatusReport(StatusReport { containers })).await.map(drop)
    }

    pub async fn start(&self, container: Container) -> Result<()> {
        self.send(Event::ContainerStart(container)).await.map(drop)
    }

    pub async fn stop(&self, container: Container) -> Result<()> {
        self.send(Event::ContainerStop(container)).await.map(drop)
    }

    /// The highest event id sent.
    pub fn sent(&self) -> u64 {
        self.shared.sent.load(Ordering::Acquire)
    }

    /// The highest event id the master confirmed stored.
    pub fn receipt(&self) -> u64 {
        self.shared.receipt.load(Ordering::Acquire)
    }

    /// Waits until the master confirmed `event_id` stored; an error (why) when a stream of the
    /// current connection ended first.
    pub async fn stored(&self, event_id: u64) -> Result<(), String> {
        loop {
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.receipt() >= event_id {
                return Ok(());
            }
            if let Some(why) = self.ended() {
                return Err(why);
            }
            changed.await;
        }
    }

    /// Whether the master confirmed every event sent.
    pub fn stored_everything_sent(&self) -> bool {
        self.receipt() >= self.sent()
    }

    /// Commands that arrived (all acknowledged).
    pub fn commands_received(&self) -> u64 {
        self.shared.commands_received.load(Ordering::Acquire)
    }

    /// Why a stream of the current connection ended, if one has.
    pub fn ended(&self) -> Option<String> {
        self.shared.ended.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The tunnel tokens of the start_tunnel commands received so far, in order.
    pub fn tunnel_tokens(&self) -> Vec<String> {
        self.shared.tokens.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl Drop for FakeAgent {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
