//! The WatchCommands pump: the response stream of one connected agent. It
//! replays every command after the agent's last acknowledged one, then waits
//! until a command is queued, an event receipt is due, or the master ends the
//! stream.
//!
//! The connection pulls it (it is the response body itself: no task and no
//! channel per agent, the cost a bare stream has). A stuck agent therefore
//! only ever stalls its own stream: the connection stops polling it once the
//! agent's flow-control window is full, nothing more is read or buffered for
//! it, and the session's watchdog ([`crate::sessions::Sessions::end_unread_command_streams`])
//! ends it once commands have waited longer than the send timeout. The agent,
//! when it reconnects, gets everything unacknowledged again.

use super::end_status;
use crate::clock::now_millis;
use crate::sessions::{Attached, EndReason};
use crate::state::SharedState;
use crate::store::CommandRow;
use dockflare::v1::{watch_commands_response::Message as Outgoing, EventsReceipt, WatchCommandsResponse};
use dockflare_common::identity::AgentId;
use futures::stream::BoxStream;
use tonic::Status;

/// Commands read from the store per round.
const PAGE: u32 = 64;

/// The stream an agent's WatchCommands call answers with.
pub type CommandStream = BoxStream<'static, Result<WatchCommandsResponse, Status>>;

/// The agent's command stream, starting after command `acked`.
pub fn stream(state: SharedState, agent_id: AgentId, acked: u64, attached: Attached) -> CommandStream {
    let pump = Pump {
        state,
        agent_id,
        attached,
        cursor: acked,
        receipt_sent: 0,
        read_log: true,
        page: Vec::new().into_iter(),
        page_was_full: false,
        run: None,
        ended: false,
    };
    Box::pin(futures::stream::unfold(pump, |mut pump| async move {
        let message = pump.next().await?;
        Some((message, pump))
    }))
}

/// One agent's pump: where it is in the command log and what it still has to send.
struct Pump {
    state: SharedState,
    agent_id: AgentId,
    attached: Attached,
    /// The last command read from the log.
    cursor: u64,
    /// The last event receipt sent.
    receipt_sent: u64,
    /// Read the log at start and when a command is queued, not on every event receipt.
    read_log: bool,
    /// Rows read and not yet sent (at most [`PAGE`]; empty, with no allocation, when idle).
    page: std::vec::IntoIter<CommandRow>,
    /// The last read filled a page: there may be more.
    page_was_full: bool,
    /// Rows written to the stream and not yet recorded as delivered, as a run of sequences
    /// (an unreadable row ends a run).
    run: Option<(u64, u64)>,
    /// The stream has ended (its last message, if any, was sent).
    ended: bool,
}

impl Pump {
    /// The next message for the agent; `None` ends the stream.
    async fn next(&mut self) -> Option<Result<WatchCommandsResponse, Status>> {
        if self.ended {
            return None;
        }
        let wake = self.attached.commands_queued.clone();
        wake.polled();
        loop {
            let ended = *self.attached.end.borrow();
            if let Some(reason) = ended {
                return self.end(reason).await;
            }
            while let Some(row) = self.page.next() {
                self.cursor = row.sequence;
                match self.state.commands.open(&row) {
                    Ok(command) => {
                        metrics::counter!("dockflare_commands_delivered_total").increment(1);
                        let waited = (now_millis() - row.created_at).max(0) as f64 / 1000.0;
                        metrics::histogram!("dockflare_command_delivery_seconds").record(waited);
                        self.run = Some((self.run.map_or(row.sequence, |(first, _)| first), row.sequence));
                        return Some(Ok(response(Outgoing::Command(command))));
                    }
                    Err(error) => {
                        // Only this command is lost, loudly: the ones after it still go out.
                        Box::pin(settle_unreadable(&self.state, &self.agent_id, &row, &error.to_string())).await;
                        self.record_delivered().await;
                    }
                }
            }
            // Every row read so far is written to the stream.
            self.record_delivered().await;
            self.page = Vec::new().into_iter();
            if std::mem::take(&mut self.page_was_full) {
                self.read_log = true;
            }
            if std::mem::take(&mut self.read_log) {
                wake.busy();
                let started = std::time::Instant::now();
                let read = Box::pin(self.state.store.commands_after(self.agent_id.as_str(), self.cursor, PAGE)).await;
                metrics::histogram!("dockflare_command_log_read_seconds").record(started.elapsed().as_secs_f64());
                match read {
                    Ok(rows) => {
                        self.page_was_full = rows.len() == PAGE as usize;
                        self.page = rows.into_iter();
                    }
                    Err(error) => {
                        self.ended = true;
                        return Some(Err(crate::grpc_status::store_status("reading the command log", error)));
                    }
                }
                continue;
            }

            let stored = *self.attached.receipts.borrow_and_update();
            if stored > self.receipt_sent {
                self.receipt_sent = stored;
                return Some(Ok(response(Outgoing::EventsReceipt(EventsReceipt { through_event_id: stored }))));
            }

            // Everything is sent: wait.
            wake.idle();
            let woken = tokio::select! {
                _ = wake.queued() => Woken::Queued,
                changed = self.attached.receipts.changed() => Woken::Receipt { session_gone: changed.is_err() },
                changed = self.attached.end.changed() => Woken::End { session_gone: changed.is_err() },
            };
            wake.polled();
            match woken {
                Woken::Queued => self.read_log = true,
                Woken::Receipt { session_gone: false } | Woken::End { session_gone: false } => {}
                Woken::Receipt { session_gone: true } | Woken::End { session_gone: true } => {
                    return self.end(EndReason::Superseded).await;
                }
            }
        }
    }

    /// Ends the stream with the reason's status.
    async fn end(&mut self, reason: EndReason) -> Option<Result<WatchCommandsResponse, Status>> {
        self.ended = true;
        self.record_delivered().await;
        tracing::debug!(message = "Command stream closed.", agent = %self.agent_id);
        Some(Err(end_status(self.agent_id.as_str(), reason)))
    }

    /// Records that the commands of the current run were written to the agent's stream.
    async fn record_delivered(&mut self) {
        let Some((first, last)) = self.run.take() else { return };
        self.state.commands.deliveries.delivered(self.agent_id.as_str(), first, last).await;
    }
}

/// What ended a pump's wait.
enum Woken {
    Queued,
    /// Events were stored (or, with `session_gone`, the session is no longer there).
    Receipt {
        session_gone: bool,
    },
    /// The master ended the stream (read the reason from the session).
    End {
        session_gone: bool,
    },
}

fn response(message: Outgoing) -> WatchCommandsResponse {
    WatchCommandsResponse { message: Some(message) }
}

impl Drop for Pump {
    fn drop(&mut self) {
        // The agent went away with commands written to its stream and not yet recorded: they
        // were sent, and an acknowledgement will count them in any case (crate::delivery_log).
        if let Some((first, last)) = self.run.take() {
            self.state.commands.deliveries.delivered_without_waiting(self.agent_id.as_str(), first, last);
        }
        tracing::debug!(message = "Command stream dropped.", agent = %self.agent_id);
    }
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
