//! A fake agent speaking the real gRPC protocol: enrolls, registers, holds
//! both streams, reports containers (as a Docker watcher would) and
//! acknowledges every command. Fast and deterministic where Docker is not
//! the subject of the test.
#![allow(dead_code)]

use crate::processes::Master;
use anyhow::{Context, Result};
use dockflare::v1::agent_event::Event;
use dockflare::v1::agent_service_client::AgentServiceClient;
use dockflare::v1::watch_commands_response::Message as Incoming;
use dockflare::v1::{
    AgentEvent, CommandResult, Container, DockerMode, EnrollRequest, RegisterRequest, StatusReport,
    WatchCommandsRequest,
};
use secrecy::ExposeSecret;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

pub struct FakeAgent {
    pub id: String,
    cert_pem: String,
    key_pem: String,
    /// What it says at Register (docker_mode, tunnel group, swarm ids …).
    registration: RegisterRequest,
    events: Option<mpsc::Sender<AgentEvent>>,
    next_event: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The tunnel tokens of the start_tunnel commands received, in order.
    tokens: Arc<std::sync::Mutex<Vec<String>>>,
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

pub fn labelled(id: &str, labels: &[(String, String)]) -> Container {
    let pairs: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    container(id, id, &pairs)
}

impl FakeAgent {
    /// Enrolls with `token` and connects.
    pub async fn join(master: &Master, token: &str, name: &str, tunnel_group: &str) -> Result<FakeAgent> {
        let registration = RegisterRequest {
            display_name: "fake".into(),
            version: "test".into(),
            docker_mode: DockerMode::Standalone as i32,
            hostname: "fake-host".into(),
            tunnel_group: tunnel_group.into(),
            ..Default::default()
        };
        FakeAgent::join_as(master, token, name, registration).await
    }

    /// Enrolls with `token` and connects, registering with `registration`.
    pub async fn join_as(master: &Master, token: &str, name: &str, registration: RegisterRequest) -> Result<FakeAgent> {
        let (key, csr_der) = dockflare_common::pki::new_key_and_csr(name)?;
        let anonymous = crate::support::mtls_channel(master.addr, &master.pki("ca.crt")?, None).await?;
        let enrolled = AgentServiceClient::new(anonymous)
            .enroll(EnrollRequest { join_token: token.into(), csr_der, display_name: name.into() })
            .await
            .context("Enroll")?
            .into_inner();
        let mut agent = FakeAgent {
            id: enrolled.agent_id,
            cert_pem: enrolled.certificate_pem,
            key_pem: key.expose_secret().to_string(),
            registration,
            events: None,
            next_event: Arc::new(AtomicU64::new(1)),
            tasks: Vec::new(),
            tokens: Arc::default(),
        };
        agent.connect(master).await?;
        Ok(agent)
    }

    /// A channel authenticated with this agent's certificate.
    pub async fn channel(&self, master: &Master) -> Result<tonic::transport::Channel> {
        crate::support::mtls_channel(master.addr, &master.pki("ca.crt")?, Some((&self.cert_pem, &self.key_pem))).await
    }

    /// (Re)connects: Register, both streams, commands acknowledged.
    pub async fn connect(&mut self, master: &Master) -> Result<()> {
        for task in self.tasks.drain(..) {
            task.abort();
        }
        let channel =
            crate::support::mtls_channel(master.addr, &master.pki("ca.crt")?, Some((&self.cert_pem, &self.key_pem)))
                .await?;
        let mut client = AgentServiceClient::new(channel);
        let registered = client.register(self.registration.clone()).await.context("Register")?.into_inner();
        self.next_event.fetch_max(registered.last_event_id + 1, Ordering::SeqCst);
        let (tx, rx) = mpsc::channel::<AgentEvent>(1024);
        let mut reporter = client.clone();
        self.tasks.push(tokio::spawn(async move {
            let _ = reporter.report_events(tokio_stream::wrappers::ReceiverStream::new(rx)).await;
        }));
        let mut commands = client.watch_commands(WatchCommandsRequest {}).await?.into_inner();
        let acks = tx.clone();
        let next = self.next_event.clone();
        let tokens = self.tokens.clone();
        self.tasks.push(tokio::spawn(async move {
            while let Ok(Some(message)) = commands.message().await {
                if let Some(Incoming::Command(command)) = message.message {
                    if let Some(dockflare::v1::command::Kind::StartTunnel(start)) = &command.kind {
                        tokens.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(start.token.clone());
                    }
                    let result = Event::CommandResult(CommandResult {
                        command_id: command.id,
                        sequence: command.sequence,
                        success: true,
                        error: String::new(),
                    });
                    let event = AgentEvent {
                        event_id: next.fetch_add(1, Ordering::SeqCst),
                        occurred_at: Some(now()),
                        event: Some(result),
                    };
                    if acks.send(event).await.is_err() {
                        return;
                    }
                }
            }
        }));
        self.events = Some(tx);
        Ok(())
    }

    async fn send(&self, event: Event) -> Result<()> {
        let event = AgentEvent {
            event_id: self.next_event.fetch_add(1, Ordering::SeqCst),
            occurred_at: Some(now()),
            event: Some(event),
        };
        self.events.as_ref().context("not connected")?.send(event).await.context("event stream closed")
    }

    /// The tunnel tokens of the start_tunnel commands received so far, in order.
    pub fn tunnel_tokens(&self) -> Vec<String> {
        self.tokens.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// A full snapshot: exactly these containers run.
    pub async fn report(&self, containers: Vec<Container>) -> Result<()> {
        self.send(Event::StatusReport(StatusReport { containers })).await
    }

    pub async fn start(&self, container: Container) -> Result<()> {
        self.send(Event::ContainerStart(container)).await
    }

    pub async fn stop(&self, container: Container) -> Result<()> {
        self.send(Event::ContainerStop(container)).await
    }
}

impl Drop for FakeAgent {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn now() -> prost_types::Timestamp {
    let now = time::OffsetDateTime::now_utc();
    prost_types::Timestamp { seconds: now.unix_timestamp(), nanos: now.nanosecond() as i32 }
}
