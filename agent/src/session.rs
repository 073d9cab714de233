//! The agent's connection to the master: register, then hold both streams
//! (events out, commands in) and heartbeat, until anything fails; then back
//! off (jittered, exponential, capped) and start over. After every
//! (re)connect the agent sends its unconfirmed events again and a full
//! status_report, so the master never has to guess what it missed.
//!
//! A busy master refuses with a retry hint (`grpc-retry-pushback-ms`,
//! [`retry_hint`]): the next attempt then comes after the hinted wait, plus
//! up to a tenth of it as jitter, instead of the next backoff step — even
//! when the hint is longer than `--reconnect-max` (coming back sooner would
//! only be refused again; hints are capped at a minute) — and the backoff
//! does not grow: the master answered, it is not failing.

use crate::connection::connect_any;
use crate::docker::engine::HostMode;
use crate::identity::AgentIdentity;
use crate::inventory::Inventory;
use crate::outbox::Outbox;
use backon::BackoffBuilder;
use dockflare::v1::agent_event::Event;
use dockflare::v1::agent_service_client::AgentServiceClient;
use dockflare::v1::watch_commands_response::Message as Incoming;
use dockflare::v1::{AgentEvent, Command, DockerMode, Heartbeat, NodeRole, RegisterRequest, WatchCommandsRequest};
use dockflare_common::retry_pushback;
use futures::Stream;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tonic::Code;

/// Largest message the agent accepts from the master.
const MAX_MESSAGE: usize = 16 * 1024 * 1024;
/// A session that lasted this long resets the reconnect backoff.
const STABLE_AFTER: Duration = Duration::from_secs(30);
/// Wait before trying again after the master refused this agent (revoked,
/// unknown): only an operator can change that, so there is no hurry.
const REFUSED_RETRY: Duration = Duration::from_secs(30);
/// Events sent per read of the outbox.
const SEND_BATCH: usize = 256;

/// What the session loop needs.
#[derive(Clone)]
pub struct SessionContext {
    pub master_urls: Vec<String>,
    /// Register fields that do not depend on the Docker host.
    pub registration: RegisterRequest,
    /// The Docker host's mode, once detected; a change re-registers.
    pub host_mode: watch::Receiver<Option<HostMode>>,
    pub identity: watch::Receiver<AgentIdentity>,
    pub outbox: Outbox,
    pub inventory: Inventory,
    pub commands: mpsc::Sender<Command>,
    /// Whether a master holds the streams, for /readyz.
    pub status: crate::status::AgentStatus,
    /// Shortest and longest wait between reconnects.
    pub backoff: (Duration, Duration),
}

/// Reconnect delays: doubling from the shortest to the longest wait, each
/// drawn from the upper half of its step ("equal jitter"), so a fleet that
/// lost its master does not come back in lockstep and no wait exceeds the
/// longest. (backon's own jitter adds up to 100 % on top of the cap.)
fn reconnect_delays((shortest, longest): (Duration, Duration)) -> impl Iterator<Item = Duration> {
    backon::ExponentialBuilder::default()
        .with_min_delay(shortest.min(longest))
        .with_max_delay(longest)
        .without_max_times()
        .build()
        .map(|step| equal_jitter(step, rand::random::<f64>()))
}

/// `step` scaled into `[step / 2, step]` by `unit` (a number in `[0, 1]`).
fn equal_jitter(step: Duration, unit: f64) -> Duration {
    step / 2 + step.mul_f64(unit.clamp(0.0, 1.0) / 2.0)
}

/// The wait a master's refusal asks for: its `grpc-retry-pushback-ms` trailing metadata, when
/// that is a whole number of milliseconds (at most a minute); `None` without one.
pub fn retry_hint(status: &tonic::Status) -> Option<Duration> {
    let value = status.metadata().get(retry_pushback::RETRY_PUSHBACK_KEY)?.to_str().ok()?;
    retry_pushback::parse(value)
}

/// Runs sessions forever.
pub async fn run(context: SessionContext) {
    let mut delays = reconnect_delays(context.backoff);
    let mut preferred = 0usize;
    loop {
        let started = Instant::now();
        let error = run_once(&context, &mut preferred).await;
        metrics::counter!("dockflare_agent_master_reconnects_total").increment(1);
        context.status.master_lost(match &error {
            SessionEnd::Refused(reason)
            | SessionEnd::Failed(reason)
            | SessionEnd::Reregister(reason)
            | SessionEnd::Busy { reason, .. } => reason,
        });
        if started.elapsed() >= STABLE_AFTER {
            delays = reconnect_delays(context.backoff);
        }
        let delay = match &error {
            SessionEnd::Reregister(reason) => {
                tracing::info!(message = "Registering again.", %reason);
                continue;
            }
            SessionEnd::Busy { reason, retry_in } => {
                // The master answered and asked for a wait: not a failure, the backoff stays.
                let delay = retry_pushback::jittered(*retry_in, rand::random::<f64>());
                tracing::info!(message = "The master is busy; retrying when it asked.", %reason, retry_in_ms = delay.as_millis() as u64);
                delay
            }
            SessionEnd::Refused(reason) => {
                let delay = delays.next().unwrap_or(context.backoff.1).max(REFUSED_RETRY);
                tracing::error!(message = "The master refuses this agent.", %reason, retry_in_ms = delay.as_millis() as u64);
                delay
            }
            SessionEnd::Failed(reason) => {
                let delay = delays.next().unwrap_or(context.backoff.1);
                tracing::warn!(message = "Connection to the master lost.", %reason, retry_in_ms = delay.as_millis() as u64);
                delay
            }
        };
        tokio::time::sleep(delay).await;
    }
}

/// How a session ended.
enum SessionEnd {
    /// The master refuses us (revoked, unknown): retrying will not help until
    /// an operator acts, but we keep trying slowly.
    Refused(String),
    Failed(String),
    /// What the agent registered changed: register again at once.
    Reregister(String),
    /// The master is busy and said when to come back.
    Busy {
        reason: String,
        retry_in: Duration,
    },
}

fn status_end(call: &str, status: &tonic::Status) -> SessionEnd {
    let reason = format!("{call}: {:?}: {}", status.code(), status.message());
    match (status.code(), retry_hint(status)) {
        (Code::PermissionDenied | Code::Unauthenticated, _) => SessionEnd::Refused(reason),
        (_, Some(retry_in)) => SessionEnd::Busy { reason, retry_in },
        (_, None) => SessionEnd::Failed(reason),
    }
}

/// The Register request for the host as currently known.
pub fn registration(template: &RegisterRequest, mode: Option<&HostMode>) -> RegisterRequest {
    let mut request = template.clone();
    match mode {
        Some(HostMode::Swarm { node_id, manager, cluster_id, managers }) => {
            request.docker_mode = DockerMode::Swarm as i32;
            request.node_id = node_id.clone();
            request.swarm_cluster_id = cluster_id.clone();
            request.swarm_manager_node_ids = managers.clone();
            request.node_role = if *manager { NodeRole::Manager } else { NodeRole::Worker } as i32;
        }
        Some(HostMode::Standalone { engine_id }) => {
            request.docker_mode = DockerMode::Standalone as i32;
            request.node_id = engine_id.clone();
            request.node_role = NodeRole::Unspecified as i32;
        }
        None => {
            request.docker_mode = DockerMode::Standalone as i32;
        }
    }
    request
}

async fn run_once(context: &SessionContext, preferred: &mut usize) -> SessionEnd {
    let identity = context.identity.borrow().clone();
    let mut host_mode = context.host_mode.clone();
    let request = registration(&context.registration, host_mode.borrow_and_update().as_ref());
    let (channel, index) = match connect_any(&context.master_urls, *preferred, &identity).await {
        Ok(pair) => pair,
        Err(reason) => return SessionEnd::Failed(reason),
    };
    *preferred = index;
    let url = &context.master_urls[index];
    let mut client = AgentServiceClient::new(channel).max_decoding_message_size(MAX_MESSAGE);
    let registered = match client.register(request).await {
        Ok(response) => response.into_inner(),
        Err(status) => return status_end("Register", &status),
    };
    context.outbox.resume_after(registered.last_event_id);
    context.status.master_connected(url);
    let dropped = context.outbox.take_dropped();
    if dropped > 0 {
        tracing::warn!(
            message = "Events were dropped while the master was unreachable; a full status report follows.",
            dropped
        );
    }
    context.outbox.push_status_report();
    let heartbeat_every = registered
        .heartbeat_interval
        .and_then(|d| Duration::try_from(d).ok())
        .filter(|d| !d.is_zero())
        .unwrap_or(Duration::from_secs(10))
        .max(Duration::from_millis(50));

    let mut commands = match client.watch_commands(WatchCommandsRequest {}).await {
        Ok(response) => response.into_inner(),
        Err(status) => return status_end("WatchCommands", &status),
    };
    let mut events_client = client.clone();
    let report = events_client.report_events(outbox_stream(context.outbox.clone()));
    tokio::pin!(report);
    tracing::info!(
        message = "Connected to the master.",
        master = %url,
        agent = %registered.agent_id,
        last_event_id = registered.last_event_id,
        last_acked_command = registered.last_acked_command_sequence,
        heartbeat_ms = heartbeat_every.as_millis() as u64,
    );
    let mut heartbeat = tokio::time::interval(heartbeat_every);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            result = &mut report => {
                return match result {
                    Ok(response) => SessionEnd::Failed(format!("event stream closed (stored through {})", response.get_ref().through_event_id)),
                    Err(status) => status_end("ReportEvents", &status),
                };
            }
            message = commands.message() => match message {
                Ok(Some(message)) => match message.message {
                    Some(Incoming::Command(command)) => {
                        if context.commands.send(command).await.is_err() {
                            return SessionEnd::Failed("the command applier stopped".into());
                        }
                    }
                    Some(Incoming::EventsReceipt(receipt)) => {
                        context.outbox.confirm(receipt.through_event_id);
                        tracing::debug!(message = "Events confirmed.", through = receipt.through_event_id);
                    }
                    None => tracing::debug!(message = "Ignoring an empty or unknown message from the master."),
                },
                Ok(None) => return SessionEnd::Failed("the master closed the command stream".into()),
                Err(status) => return status_end("WatchCommands", &status),
            },
            _ = host_mode.changed() => {
                return SessionEnd::Reregister("the Docker host's mode changed".into());
            }
            _ = heartbeat.tick() => {
                context.outbox.push(Event::Heartbeat(Heartbeat { container_count: context.inventory.len() as u32 }));
            }
        }
    }
}

/// Every pending event of the outbox, then each new one as it is pushed.
fn outbox_stream(outbox: Outbox) -> impl Stream<Item = AgentEvent> + Send + 'static {
    futures::stream::unfold((outbox, 0u64, VecDeque::<AgentEvent>::new()), |(outbox, cursor, mut buffer)| async move {
        loop {
            if let Some(event) = buffer.pop_front() {
                let id = event.event_id;
                return Some((event, (outbox, id, buffer)));
            }
            let added = outbox.added();
            let notified = added.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let batch = outbox.pending_after(cursor, SEND_BATCH);
            if batch.is_empty() {
                notified.await;
                continue;
            }
            buffer.extend(batch);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_delays_double_up_to_the_longest_and_never_exceed_it() {
        let (shortest, longest) = (Duration::from_millis(200), Duration::from_secs(4));
        let delays: Vec<Duration> = reconnect_delays((shortest, longest)).take(40).collect();
        assert!(delays.iter().all(|d| *d >= shortest / 2 && *d <= longest), "{delays:?}");
        assert!(delays[0] <= shortest, "the first retry comes quickly: {delays:?}");
        assert!(delays[20..].iter().all(|d| *d >= longest / 2), "later retries sit near the cap: {delays:?}");
    }

    fn with_hint(value: &str) -> tonic::Status {
        let mut status = tonic::Status::unavailable("the master is busy");
        let value = tonic::metadata::MetadataValue::try_from(value).unwrap();
        status.metadata_mut().insert(retry_pushback::RETRY_PUSHBACK_KEY, value);
        status
    }

    #[test]
    fn retry_hints_are_read_from_the_status() {
        assert_eq!(retry_hint(&tonic::Status::unavailable("no hint")), None, "absent");
        assert_eq!(retry_hint(&with_hint("1500")), Some(Duration::from_millis(1500)));
        assert_eq!(retry_hint(&with_hint("0")), Some(Duration::ZERO));
        for malformed in ["", "soon", "1.5", "-200", "+3", "12ms"] {
            assert_eq!(retry_hint(&with_hint(malformed)), None, "{malformed:?}");
        }
        assert_eq!(retry_hint(&with_hint("86400000")), Some(retry_pushback::MAX_RETRY_PUSHBACK), "a day is capped");
        assert_eq!(retry_hint(&with_hint(&"9".repeat(100))), Some(retry_pushback::MAX_RETRY_PUSHBACK));
    }

    #[test]
    fn a_hint_makes_a_busy_end_and_refusals_stay_refusals() {
        assert!(matches!(
            status_end("Register", &with_hint("700")),
            SessionEnd::Busy { retry_in, .. } if retry_in == Duration::from_millis(700)
        ));
        assert!(matches!(status_end("Register", &tonic::Status::unavailable("x")), SessionEnd::Failed(_)));
        let mut revoked = tonic::Status::permission_denied("revoked");
        revoked.metadata_mut().insert(retry_pushback::RETRY_PUSHBACK_KEY, "10".parse().unwrap());
        assert!(matches!(status_end("Register", &revoked), SessionEnd::Refused(_)));
    }

    #[test]
    fn equal_jitter_spans_the_upper_half_of_a_step() {
        let step = Duration::from_secs(4);
        assert_eq!(equal_jitter(step, 0.0), Duration::from_secs(2));
        assert_eq!(equal_jitter(step, 1.0), step);
        assert_eq!(equal_jitter(step, 7.0), step, "out-of-range draws are clamped");
    }
}
