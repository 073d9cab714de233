//! `dockflare.v1.AgentService`: enrollment, registration, certificate
//! renewal, and the two long-lived streams. Identity always comes from the
//! caller's certificate ([`crate::auth`]); validation lives in [`validate`],
//! the command stream pump in [`commands`].

mod commands;
pub mod validate;

use crate::clock::now_millis;
use crate::event_writer::PendingEvent;
use crate::grpc_status::store_status;
use crate::register_gate::Busy;
use crate::registration_writer::RegisterError;
use crate::sessions::{EndReason, StreamKind};
use crate::state::SharedState;
use crate::store::{AgentRecord, CommandAck, NewAgent, Registration, StoredEvent, TokenRejection};
use dockflare::v1::agent_service_server::AgentService;
use dockflare::v1::{
    AgentEvent, EnrollRequest, EnrollResponse, RegisterRequest, RegisterResponse, RenewCertificateRequest,
    RenewCertificateResponse, ReportEventsResponse, WatchCommandsRequest,
};
use dockflare_common::identity::{AgentId, Identity};
use dockflare_common::join_token::{certificate_digest, JoinToken};
use dockflare_common::retry_pushback;
use prost::Message;
use std::time::Duration;
use tonic::{Request, Response, Status, Streaming};

/// Features this master offers agents (RegisterResponse.master_capabilities).
pub const MASTER_CAPABILITIES: &[&str] = &["events.receipts", "commands.replay", "certificates.renew"];
/// Longest a finished event stream waits for its last events to be stored.
const FINAL_RECEIPT_TIMEOUT: Duration = Duration::from_secs(30);

/// The AgentService implementation.
pub struct AgentApi {
    state: SharedState,
}

impl AgentApi {
    pub fn new(state: SharedState) -> AgentApi {
        AgentApi { state }
    }

    /// The caller's agent record, refusing unknown, revoked and removed agents.
    async fn active_agent(&self, agent_id: &AgentId) -> Result<AgentRecord, Status> {
        let record = self
            .state
            .store
            .get_agent(agent_id.as_str())
            .await
            .map_err(|e| store_status("looking up the agent", e))?
            .ok_or_else(|| unknown_agent(agent_id))?;
        if record.removed_at.is_some() {
            return Err(removed(agent_id));
        }
        if record.is_revoked() {
            return Err(revoked(agent_id));
        }
        Ok(record)
    }

    /// [`AgentApi::active_agent`] for a stream open: the record the agent just registered with,
    /// when it did so lately and was not revoked since ([`crate::sessions`]), else the store's.
    async fn streaming_agent(&self, agent_id: &AgentId) -> Result<AgentRecord, Status> {
        match self.state.sessions.recently_registered(agent_id.as_str()) {
            Some(record) => Ok(record),
            None => self.active_agent(agent_id).await,
        }
    }

    fn lifetime(&self) -> time::Duration {
        time::Duration::try_from(self.state.settings.agent_certificate_lifetime).unwrap_or(time::Duration::days(7))
    }
}

fn unknown_agent(agent_id: &AgentId) -> Status {
    Status::unauthenticated(format!("agent {agent_id} is not known to this master; enroll again with a join token"))
}

fn revoked(agent_id: &AgentId) -> Status {
    Status::permission_denied(format!("agent {agent_id} has been revoked"))
}

fn removed(agent_id: &AgentId) -> Status {
    Status::permission_denied(format!("agent {agent_id} was removed by an operator"))
}

fn describe_group(group: &str) -> String {
    if group.is_empty() {
        "a tunnel of its own (no group)".to_string()
    } else {
        format!("group {group:?}")
    }
}

/// A Register refused for lack of a slot: `UNAVAILABLE` (retriable) with the retry hint in the
/// trailing metadata (`grpc-retry-pushback-ms`).
fn busy(busy: Busy) -> Status {
    let millis = retry_pushback::encode(busy.retry_in);
    let mut status = Status::unavailable(format!("the master is busy registering other agents; retry in {millis} ms"));
    if let Ok(value) = tonic::metadata::MetadataValue::try_from(millis.as_str()) {
        status.metadata_mut().insert(retry_pushback::RETRY_PUSHBACK_KEY, value);
    }
    status
}

/// Why a Register was not written ([`crate::registration_writer::may_register`]).
fn not_admitted(agent_id: &AgentId, record: &AgentRecord, requested_group: &str) -> Status {
    if record.removed_at.is_some() {
        return removed(agent_id);
    }
    if record.is_revoked() {
        return revoked(agent_id);
    }
    tracing::warn!(
        message = "Register refused: the agent names a tunnel group it was not admitted to.",
        agent = %agent_id,
        name = %record.display_name,
        requested = %requested_group,
        admitted = %record.tunnel_group,
    );
    Status::permission_denied(format!(
        "tunnel_group: this agent was admitted to {}, not to group {requested_group:?}; an operator moves agents \
         between groups (AdminService.SetAgentTunnelGroup), or drop --tunnel-group",
        describe_group(&record.tunnel_group),
    ))
}

/// Whether a Register changed nothing but the time the agent was last seen (a reconnect).
fn same_but_last_seen(before: &AgentRecord, after: &AgentRecord) -> bool {
    AgentRecord { last_seen_at: after.last_seen_at, ..before.clone() } == *after
}

fn register_status(error: RegisterError) -> Status {
    match error {
        RegisterError::Store(error) => store_status("registering the agent", error),
        RegisterError::Stopped => Status::unavailable("the master is shutting down; reconnect"),
    }
}

fn end_status(agent_id: &str, reason: EndReason) -> Status {
    match reason {
        EndReason::Revoked => Status::permission_denied(format!("agent {agent_id} has been revoked")),
        EndReason::Superseded => Status::aborted("a newer stream of this agent replaced this one"),
        EndReason::ShuttingDown => Status::unavailable("the master is shutting down; reconnect"),
        EndReason::NotReading => {
            Status::unavailable("commands waited longer than the send timeout for this stream to be read; reconnect")
        }
    }
}

#[tonic::async_trait]
impl AgentService for AgentApi {
    async fn enroll(&self, request: Request<EnrollRequest>) -> Result<Response<EnrollResponse>, Status> {
        // Cheap checks first, and the token before any work: a guess costs one read.
        let source = request.remote_addr().map(|addr| addr.ip());
        let guard = &self.state.enroll_guard;
        guard.admit(source).map_err(|retry_in| {
            Status::resource_exhausted(format!(
                "too many failed enrollments from this address; retry in {} s",
                retry_in.as_secs().max(1)
            ))
        })?;
        let request = request.into_inner();
        let token = JoinToken::parse(&request.join_token).map_err(|e| {
            guard.failed(source, "malformed_token");
            Status::unauthenticated(format!("join_token: {e}"))
        })?;
        let ca = &self.state.ca;
        if token.ca_digest != certificate_digest(ca.certificate_der()) {
            guard.failed(source, "other_ca");
            return Err(Status::unauthenticated("join_token: it was issued by a master with a different CA"));
        }
        if request.display_name.chars().count() > 128 || request.display_name.chars().any(char::is_control) {
            return Err(Status::invalid_argument("display_name: at most 128 printable characters"));
        }
        let secret_hash = token.secret_hash();
        let refused = |rejection: TokenRejection| {
            guard.failed(source, rejection.code());
            tracing::debug!(message = "Enrollment refused.", token_id = %token.id, reason = %rejection);
            Status::unauthenticated(format!("join_token: {rejection}"))
        };
        match self.state.store.check_join_token(&token.id, &secret_hash, now_millis()).await {
            Err(e) => return Err(store_status("checking the join token", e)),
            Ok(Err(rejection)) => return Err(refused(rejection)),
            Ok(Ok(())) => {}
        }
        let agent_id = AgentId::generate();
        let now = time::OffsetDateTime::now_utc();
        let issued = ca
            .sign_csr(&request.csr_der, &Identity::Agent(agent_id.clone()), self.lifetime(), now)
            .map_err(|e| Status::invalid_argument(format!("csr_der: {e}")))?;
        let display_name = if request.display_name.trim().is_empty() {
            format!("agent-{}", &agent_id.as_str()[..8])
        } else {
            request.display_name.clone()
        };
        let new_agent = NewAgent {
            id: agent_id.clone(),
            display_name,
            cert_serial: issued.serial_hex.clone(),
            cert_not_after: crate::store::unix_millis(issued.not_after),
        };
        let tunnel_group = match self.state.store.enroll_agent(&token.id, &secret_hash, now_millis(), &new_agent).await
        {
            Err(e) => return Err(store_status("enrolling the agent", e)),
            Ok(Err(rejection)) => return Err(refused(rejection)),
            Ok(Ok(group)) => group,
        };
        tracing::info!(message = "Agent enrolled.", agent = %agent_id, name = %new_agent.display_name, token_id = %token.id, %tunnel_group);
        Ok(Response::new(EnrollResponse {
            agent_id: agent_id.to_string(),
            certificate_pem: issued.certificate_pem,
            ca_certificates_pem: ca.certificate_pem().to_string(),
            not_after: Some(crate::convert::timestamp(new_agent.cert_not_after)),
        }))
    }

    async fn register(&self, request: Request<RegisterRequest>) -> Result<Response<RegisterResponse>, Status> {
        let agent_id = self.state.auth.agent(&request)?;
        // Before any work: over the limit, the agent is told when to come back.
        let _slot = self.state.registrations.admit(request.remote_addr().map(|addr| addr.ip())).map_err(busy)?;
        let registration =
            validate::registration(request.get_ref()).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let requested_group = registration.tunnel_group.clone();
        let mark = self.state.sessions.revocation_mark();
        // Read and written with the other registrations in flight, in one transaction.
        let (before, record) = match self
            .state
            .registration_writer
            .register(&agent_id, registration, now_millis())
            .await
            .map_err(register_status)?
        {
            Registration::Registered { before, after } => (*before, *after),
            Registration::Unknown => return Err(unknown_agent(&agent_id)),
            Registration::NotAdmitted(record) => return Err(not_admitted(&agent_id, &record, &requested_group)),
        };
        if record.is_revoked() {
            return Err(revoked(&agent_id));
        }
        self.state.sessions.remember_registered(&record, mark); // for its two stream opens
        if crate::reconcile::inputs::registration_needs_pass(&before, &record) {
            self.state.fanout.reconcile().await;
        } else if !same_but_last_seen(&before, &record) {
            self.state.fanout.watchers(); // watchers see the change; nothing a pass reads changed
        }
        tracing::info!(
            message = "Agent registered.",
            agent = %agent_id,
            name = %record.display_name,
            mode = %record.docker_mode,
            version = %record.version,
            tunnel_group = %record.tunnel_group,
            last_acked_command = record.last_acked_command_seq,
            last_event = record.last_event_id,
        );
        let interval = self.state.settings.heartbeat_interval;
        Ok(Response::new(RegisterResponse {
            agent_id: agent_id.to_string(),
            status: crate::convert::agent_status(&record.status) as i32,
            heartbeat_interval: Some(prost_types::Duration {
                seconds: interval.as_secs() as i64,
                nanos: interval.subsec_nanos() as i32,
            }),
            last_acked_command_sequence: record.last_acked_command_seq,
            last_event_id: record.last_event_id,
            master_capabilities: MASTER_CAPABILITIES.iter().map(|c| c.to_string()).collect(),
            master_version: env!("CARGO_PKG_VERSION").to_string(),
        }))
    }

    async fn report_events(
        &self,
        request: Request<Streaming<AgentEvent>>,
    ) -> Result<Response<ReportEventsResponse>, Status> {
        let agent_id = self.state.auth.agent(&request)?;
        let record = self.streaming_agent(&agent_id).await?;
        let mut attached = self.state.sessions.attach(agent_id.as_str(), StreamKind::Events, record.last_event_id);
        let mut stream = request.into_inner();
        let mut last_accepted = record.last_event_id.max(*attached.receipts.borrow());
        let received = metrics::counter!("dockflare_events_received_total");
        loop {
            let message = tokio::select! {
                biased;
                reason = attached.end.wait_for(Option::is_some) => {
                    let reason = reason.ok().and_then(|r| *r).unwrap_or(EndReason::Superseded);
                    return Err(end_status(agent_id.as_str(), reason));
                }
                message = stream.message() => message,
            };
            let event = match message {
                Ok(Some(event)) => event,
                Ok(None) => break,
                Err(status) if status.code() == tonic::Code::OutOfRange => {
                    // Larger than --max-agent-message: refused before it was read.
                    metrics::counter!("dockflare_events_rejected_total", "reason" => "too_large").increment(1);
                    tracing::warn!(
                        message = "Refused an event larger than --max-agent-message.",
                        agent = %agent_id,
                        detail = %status.message(),
                    );
                    return Err(status);
                }
                Err(status) => {
                    tracing::debug!(message = "Event stream ended by the agent.", agent = %agent_id, %status);
                    return Err(status);
                }
            };
            let valid = match validate::event(&event) {
                Ok(valid) => valid,
                Err(error) => {
                    metrics::counter!("dockflare_events_rejected_total", "reason" => "invalid").increment(1);
                    tracing::warn!(message = "Rejected an invalid event.", agent = %agent_id, event_id = event.event_id, %error);
                    return Err(Status::invalid_argument(format!("event {}: {error}", event.event_id)));
                }
            };
            if event.event_id <= last_accepted {
                continue; // seen before: agents resend after reconnects
            }
            received.increment(1);
            // Its own budget: a flooding agent waits here, the others do not.
            self.state.agent_budget.spend(agent_id.as_str(), event.encoded_len()).await;
            last_accepted = event.event_id;
            let received_at = now_millis();
            let ack = valid.ack.map(|ack| CommandAck {
                agent_id: agent_id.to_string(),
                sequence: ack.sequence,
                command_id: ack.command_id,
                success: ack.success,
                error: ack.error,
                at: received_at,
            });
            let container_change = crate::projection::container_change(agent_id.as_str(), &event, received_at);
            let pending = PendingEvent {
                event: StoredEvent {
                    agent_id: agent_id.to_string(),
                    event_id: event.event_id,
                    kind: valid.kind.to_string(),
                    occurred_at: valid.occurred_at,
                    received_at,
                    payload: event.encode_to_vec(),
                },
                ack,
                container_change,
                connector_state: crate::projection::connector_state(&event),
            };
            self.state.events.submit(pending).await.map_err(|_| Status::unavailable("the master is shutting down"))?;
        }
        let stored =
            tokio::time::timeout(FINAL_RECEIPT_TIMEOUT, attached.receipts.wait_for(|id| *id >= last_accepted)).await;
        match stored {
            Ok(Ok(_)) => Ok(Response::new(ReportEventsResponse { through_event_id: last_accepted })),
            _ => Err(Status::unavailable("events were received but are not stored yet; resend them")),
        }
    }

    type WatchCommandsStream = commands::CommandStream;

    async fn watch_commands(
        &self,
        request: Request<WatchCommandsRequest>,
    ) -> Result<Response<Self::WatchCommandsStream>, Status> {
        let agent_id = self.state.auth.agent(&request)?;
        let record = self.streaming_agent(&agent_id).await?;
        let attached = self.state.sessions.attach(agent_id.as_str(), StreamKind::Commands, record.last_event_id);
        Ok(Response::new(commands::stream(self.state.clone(), agent_id, record.last_acked_command_seq, attached)))
    }

    async fn renew_certificate(
        &self,
        request: Request<RenewCertificateRequest>,
    ) -> Result<Response<RenewCertificateResponse>, Status> {
        let agent_id = self.state.auth.agent(&request)?;
        self.active_agent(&agent_id).await?;
        let now = time::OffsetDateTime::now_utc();
        let issued = self
            .state
            .ca
            .sign_csr(&request.get_ref().csr_der, &Identity::Agent(agent_id.clone()), self.lifetime(), now)
            .map_err(|e| Status::invalid_argument(format!("csr_der: {e}")))?;
        let not_after = crate::store::unix_millis(issued.not_after);
        self.state
            .store
            .update_agent_certificate(&agent_id, &issued.serial_hex, not_after)
            .await
            .map_err(|e| store_status("recording the renewed certificate", e))?;
        tracing::info!(message = "Agent certificate renewed.", agent = %agent_id, serial = %issued.serial_hex);
        Ok(Response::new(RenewCertificateResponse {
            certificate_pem: issued.certificate_pem,
            ca_certificates_pem: self.state.ca.certificate_pem().to_string(),
            not_after: Some(crate::convert::timestamp(not_after)),
        }))
    }
}
