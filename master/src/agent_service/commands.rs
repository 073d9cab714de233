//! The WatchCommands pump: one task per connected agent. It replays every
//! command after the agent's last acknowledged one, then sleeps until a
//! command is queued, an event receipt is due, or the master ends the
//! stream. A stuck agent only ever blocks its own task: each send has a
//! deadline, after which the stream is closed and the agent, when it
//! reconnects, gets everything unacknowledged again.

use super::end_status;
use crate::clock::now_millis;
use crate::sessions::{Attached, EndReason};
use crate::state::SharedState;
use crate::store::CommandRow;
use dockflare::v1::{watch_commands_response::Message as Outgoing, EventsReceipt, WatchCommandsResponse};
use dockflare_common::identity::AgentId;
use tokio::sync::mpsc;
use tonic::Status;

/// Messages buffered per command stream before sends wait for the agent.
pub const STREAM_BUFFER: usize = 16;
/// Commands read from the store per round.
const PAGE: u32 = 64;

type Sink = mpsc::Sender<Result<WatchCommandsResponse, Status>>;

/// Why the pump stops.
enum Stop {
    /// The agent went away (or never reads): nothing more to send.
    Gone,
    /// The master ends the stream with this status.
    End(Status),
}

pub async fn pump(state: SharedState, agent_id: AgentId, acked: u64, mut attached: Attached, sink: Sink) {
    let stop = run(&state, &agent_id, acked, &mut attached, &sink).await;
    if let Stop::End(status) = stop {
        let _ = sink.try_send(Err(status));
    }
    tracing::debug!(message = "Command stream closed.", agent = %agent_id);
}

async fn run(state: &SharedState, agent_id: &AgentId, acked: u64, attached: &mut Attached, sink: &Sink) -> Stop {
    let mut cursor = acked;
    let mut receipt_sent = 0u64;
    // Read the command log at start and when a command is queued, not on
    // every event receipt.
    let mut read_log = true;
    loop {
        if read_log {
            read_log = false;
            let rows = match state.store.commands_after(agent_id.as_str(), cursor, PAGE).await {
                Ok(rows) => rows,
                Err(error) => return Stop::End(crate::grpc_status::store_status("reading the command log", error)),
            };
            // Rows written to the stream, as runs of sequences (an unreadable row ends a run).
            let mut sent: Option<(u64, u64)> = None;
            for row in &rows {
                cursor = row.sequence;
                let command = match state.commands.open(row) {
                    Ok(command) => command,
                    Err(error) => {
                        // Only this command is lost, loudly: the ones after it still go out.
                        settle_unreadable(state, agent_id, row, &error.to_string()).await;
                        record_delivered(state, agent_id, sent.take()).await;
                        continue;
                    }
                };
                if let Err(stop) = send(state, agent_id, attached, sink, Outgoing::Command(command)).await {
                    return stop;
                }
                metrics::counter!("dockflare_commands_delivered_total").increment(1);
                let waited = (crate::clock::now_millis() - row.created_at).max(0) as f64 / 1000.0;
                metrics::histogram!("dockflare_command_delivery_seconds").record(waited);
                sent = Some((sent.map_or(row.sequence, |(first, _)| first), row.sequence));
            }
            record_delivered(state, agent_id, sent).await;
            if rows.len() == PAGE as usize {
                read_log = true;
                continue;
            }
        }

        let stored = *attached.receipts.borrow_and_update();
        if stored > receipt_sent {
            receipt_sent = stored;
            let receipt = Outgoing::EventsReceipt(EventsReceipt { through_event_id: stored });
            if let Err(stop) = send(state, agent_id, attached, sink, receipt).await {
                return stop;
            }
        }

        let commands_queued = attached.commands_queued.clone();
        tokio::select! {
            _ = commands_queued.notified() => read_log = true,
            changed = attached.receipts.changed() => {
                if changed.is_err() {
                    return Stop::Gone;
                }
            }
            reason = attached.end.wait_for(Option::is_some) => {
                let reason = reason.ok().and_then(|r| *r).unwrap_or(EndReason::Superseded);
                return Stop::End(end_status(agent_id.as_str(), reason));
            }
            _ = sink.closed() => return Stop::Gone,
        }
    }
}

/// Records that the commands of a run were written to the agent's stream.
async fn record_delivered(state: &SharedState, agent_id: &AgentId, run: Option<(u64, u64)>) {
    let Some((first, last)) = run else { return };
    state.commands.deliveries.delivered(agent_id.as_str(), first, last).await;
}

/// Marks a stored command that cannot be read as failed, with the reason
/// where an operator looks (the log and ListCommands). An undeliverable
/// start_tunnel leaves the agent without a tunnel assignment, so the
/// reconciler sends a fresh one.
async fn settle_unreadable(state: &SharedState, agent_id: &AgentId, row: &CommandRow, reason: &str) {
    let error = format!("undeliverable: {reason}");
    match state.store.fail_undeliverable_command(agent_id.as_str(), row.sequence, &error, now_millis()).await {
        Ok(true) => {
            tracing::error!(message = "Stored command cannot be delivered; marked failed.", agent = %agent_id, sequence = row.sequence, command = %row.id, kind = %row.kind, reason);
            if row.kind == "start_tunnel" {
                match state.store.set_assigned_tunnel(agent_id.as_str(), "").await {
                    Ok(()) => state.fanout.reconcile().await,
                    Err(error) => {
                        tracing::warn!(message = "Could not clear the tunnel assignment.", agent = %agent_id, %error)
                    }
                }
            }
        }
        Ok(false) => {}
        Err(error) => {
            tracing::warn!(message = "Could not mark the command failed.", agent = %agent_id, sequence = row.sequence, %error)
        }
    }
}

async fn send(
    state: &SharedState,
    agent_id: &AgentId,
    attached: &mut Attached,
    sink: &Sink,
    message: Outgoing,
) -> Result<(), Stop> {
    let response = WatchCommandsResponse { message: Some(message) };
    tokio::select! {
        sent = tokio::time::timeout(state.settings.command_send_timeout, sink.send(Ok(response))) => match sent {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Stop::Gone),
            Err(_) => {
                tracing::warn!(message = "Agent is not reading its command stream; closing it.", agent = %agent_id);
                Err(Stop::Gone)
            }
        },
        reason = attached.end.wait_for(Option::is_some) => {
            let reason = reason.ok().and_then(|r| *r).unwrap_or(EndReason::Superseded);
            Err(Stop::End(end_status(agent_id.as_str(), reason)))
        }
    }
}
