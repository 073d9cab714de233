//! `dockflare.v1.AgentService` without storage. The caller's agent id comes from its client
//! certificate, verified against the CA on every call as the master does
//! ([`Authenticator`]); Enroll takes any join token. ReportEvents remembers the highest event id;
//! WatchCommands streams the agent's commands and, coalesced, a receipt for that id.

use crate::agents::{Agents, Progress};
use crate::auth::Authenticator;
use dockflare::v1::agent_event::Event;
use dockflare::v1::agent_service_server::AgentService;
use dockflare::v1::watch_commands_response::Message as Outgoing;
use dockflare::v1::{
    AgentEvent, AgentStatus, Command, EnrollRequest, EnrollResponse, EventsReceipt, RegisterRequest, RegisterResponse,
    RenewCertificateRequest, RenewCertificateResponse, ReportEventsResponse, WatchCommandsRequest,
    WatchCommandsResponse,
};
use dockflare_common::identity::{AgentId, Identity};
use dockflare_common::pki::CertificateAuthority;
use futures::Stream;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::WatchStream;
use tonic::{Request, Response, Status, Streaming};

/// Lifetime of agent certificates (the master's default).
const AGENT_CERTIFICATE_LIFETIME: time::Duration = time::Duration::days(7);
/// What the floor offers agents: receipts; no command replay, no renewal.
const CAPABILITIES: &[&str] = &["events.receipts"];

/// The AgentService implementation.
pub struct AgentApi {
    ca: CertificateAuthority,
    auth: Authenticator,
    agents: Arc<Agents>,
    heartbeat_interval: Duration,
}

impl AgentApi {
    pub fn new(
        ca: CertificateAuthority,
        auth: Authenticator,
        agents: Arc<Agents>,
        heartbeat_interval: Duration,
    ) -> AgentApi {
        AgentApi { ca, auth, agents, heartbeat_interval }
    }
}

#[tonic::async_trait]
impl AgentService for AgentApi {
    async fn enroll(&self, request: Request<EnrollRequest>) -> Result<Response<EnrollResponse>, Status> {
        let agent_id = AgentId::parse(&uuid::Uuid::now_v7().hyphenated().to_string())
            .map_err(|e| Status::internal(e.to_string()))?;
        let issued = self
            .ca
            .sign_csr(
                &request.get_ref().csr_der,
                &Identity::Agent(agent_id.clone()),
                AGENT_CERTIFICATE_LIFETIME,
                time::OffsetDateTime::now_utc(),
            )
            .map_err(|e| Status::invalid_argument(format!("csr_der: {e}")))?;
        Ok(Response::new(EnrollResponse {
            agent_id: agent_id.to_string(),
            certificate_pem: issued.certificate_pem,
            ca_certificates_pem: self.ca.certificate_pem().to_string(),
            not_after: Some(prost_types::Timestamp { seconds: issued.not_after.unix_timestamp(), nanos: 0 }),
        }))
    }

    async fn register(&self, request: Request<RegisterRequest>) -> Result<Response<RegisterResponse>, Status> {
        let agent_id = self.auth.agent(&request)?;
        let progress = self.agents.progress(agent_id.as_str());
        let interval = self.heartbeat_interval;
        Ok(Response::new(RegisterResponse {
            agent_id: agent_id.to_string(),
            status: AgentStatus::Online as i32,
            heartbeat_interval: Some(prost_types::Duration {
                seconds: i64::try_from(interval.as_secs()).unwrap_or(i64::MAX),
                nanos: i32::try_from(interval.subsec_nanos()).unwrap_or(0),
            }),
            last_acked_command_sequence: progress.last_acked(),
            last_event_id: progress.last_event_id(),
            master_capabilities: CAPABILITIES.iter().map(|c| c.to_string()).collect(),
            master_version: env!("CARGO_PKG_VERSION").to_string(),
        }))
    }

    async fn report_events(
        &self,
        request: Request<Streaming<AgentEvent>>,
    ) -> Result<Response<ReportEventsResponse>, Status> {
        let agent_id = self.auth.agent(&request)?;
        let progress = self.agents.progress(agent_id.as_str());
        let mut events = request.into_inner();
        while let Some(event) = events.message().await? {
            if let Some(Event::CommandResult(result)) = &event.event {
                progress.acked(result.sequence);
            }
            progress.received(event.event_id);
        }
        Ok(Response::new(ReportEventsResponse { through_event_id: progress.last_event_id() }))
    }

    type WatchCommandsStream = CommandStream;

    async fn watch_commands(&self, request: Request<WatchCommandsRequest>) -> Result<Response<CommandStream>, Status> {
        let agent_id = self.auth.agent(&request)?;
        let (generation, commands, progress) = self.agents.open_stream(agent_id.as_str());
        Ok(Response::new(CommandStream::new(self.agents.clone(), agent_id, generation, commands, &progress)))
    }

    async fn renew_certificate(
        &self,
        _request: Request<RenewCertificateRequest>,
    ) -> Result<Response<RenewCertificateResponse>, Status> {
        Err(Status::unimplemented("the floor baseline does not renew certificates"))
    }
}

/// One agent's WatchCommands stream: its queued commands first, then a receipt for the highest
/// event id received whenever that grew. Receipts are coalesced: tonic polls for the next message
/// only once the last one is written, and then gets the latest id. The stream ends when a newer
/// stream of the agent replaces it; dropping it (the agent went away) unregisters it.
pub struct CommandStream {
    agents: Arc<Agents>,
    agent_id: AgentId,
    generation: u64,
    commands: mpsc::Receiver<Command>,
    received: WatchStream<u64>,
    receipt_sent: u64,
}

impl CommandStream {
    fn new(
        agents: Arc<Agents>,
        agent_id: AgentId,
        generation: u64,
        commands: mpsc::Receiver<Command>,
        progress: &Progress,
    ) -> CommandStream {
        let received = WatchStream::new(progress.subscribe());
        CommandStream { agents, agent_id, generation, commands, received, receipt_sent: 0 }
    }
}

impl Stream for CommandStream {
    type Item = Result<WatchCommandsResponse, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match this.commands.poll_recv(cx) {
            Poll::Ready(Some(command)) => return Poll::Ready(Some(Ok(outgoing(Outgoing::Command(command))))),
            Poll::Ready(None) => return Poll::Ready(None), // replaced by a newer stream
            Poll::Pending => {}
        }
        loop {
            match Pin::new(&mut this.received).poll_next(cx) {
                Poll::Ready(Some(through)) if through > this.receipt_sent => {
                    this.receipt_sent = through;
                    let receipt = EventsReceipt { through_event_id: through };
                    return Poll::Ready(Some(Ok(outgoing(Outgoing::EventsReceipt(receipt)))));
                }
                Poll::Ready(Some(_)) => continue,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Drop for CommandStream {
    fn drop(&mut self) {
        self.agents.close_stream(self.agent_id.as_str(), self.generation);
    }
}

fn outgoing(message: Outgoing) -> WatchCommandsResponse {
    WatchCommandsResponse { message: Some(message) }
}
