//! The writers of agent events. Event streams hand them validated events through
//! bounded queues; each stores whatever has accumulated in one transaction
//! (group commit: one fsync for many events), then publishes per-agent
//! receipts. On SQLite there is one writer (the database has one writer
//! connection); on PostgreSQL [`POSTGRES_WRITERS`], each owning a fixed share
//! of the agents ([`writer_of`]), so that two transactions commit at once and
//! an agent's events stay in order, in one writer, touching rows no other
//! writer touches (no lock waits between them, receipts never ahead of what
//! is stored). The batch is written in chunks of [`CHUNK`] events; on
//! SQLite, whose one writer connection this transaction holds, a command queued
//! meanwhile is written in it after the chunk in progress and an operator's
//! ends the transaction there (the rest follows in the next one): a command
//! waits for a chunk and shares the commit, not for a whole batch and a commit
//! of its own (see the store's `write_event_chunks`). While the database is down it retries the same batch
//! with backoff and the full queue pushes back on the agents' streams:
//! nothing is acknowledged before it is stored, nothing stored is dropped.
//! The queue is bounded in events and in bytes ([`QUEUE_BYTES`]).

use crate::fanout::Fanout;
use crate::sessions::Sessions;
use crate::store::{
    CommandAck, ConnectorReport, ContainerChange, ContainerChangeEntry, EventBatch, Store, StoredEvent,
};
use crate::supervisor::Supervisor;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// Events waiting to be written, across all agents (shared out among the writers).
pub const QUEUE_CAPACITY: usize = 65_536;
/// Event writers on PostgreSQL: one backend's CPU bounded one writer's throughput, and each
/// writer is a connection of the pool and a thread.
pub const POSTGRES_WRITERS: usize = 2;
/// Their threads' names.
const WRITER_NAMES: [&str; POSTGRES_WRITERS] = ["event writer 1", "event writer 2"];
/// Bytes of events waiting to be written, across all agents (a full queue pushes back on the
/// streams: memory stays bounded however large the events).
pub const QUEUE_BYTES: usize = 64 * 1024 * 1024;
/// Most events in one transaction.
pub const MAX_BATCH: usize = 8_192;
/// Events written between two looks for a waiting command: on SQLite a transaction ends early
/// after the chunk in progress when a command waits for the one writer connection (PostgreSQL
/// writes a batch as one chunk).
pub const CHUNK: usize = 256;
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// One event for the writer, with the command acknowledgement it carries.
#[derive(Debug)]
pub struct PendingEvent {
    pub event: StoredEvent,
    pub ack: Option<CommandAck>,
    /// How the event changes the agent's reported containers.
    pub container_change: Option<ContainerChange>,
    /// The connector state it reports, as the store keeps it ([`crate::projection::connector_state`]).
    pub connector_state: Option<Vec<u8>>,
}

/// Handle to queue events. Cheap to clone.
#[derive(Clone)]
pub struct EventWriter {
    /// One queue per writer; an agent's events go to [`writer_of`] it.
    queues: Arc<[mpsc::Sender<(PendingEvent, OwnedSemaphorePermit)>]>,
    bytes: Arc<Semaphore>,
    /// Cancelled at shutdown: the writers store what is queued, then stop.
    stop: CancellationToken,
    /// Counts the writers that have stopped (everything queued stored).
    stopped: watch::Receiver<usize>,
}

/// The writer (of `writers`) that stores `agent_id`'s events: always the same one.
pub fn writer_of(agent_id: &str, writers: usize) -> usize {
    if writers <= 1 {
        return 0;
    }
    // FNV-1a: stable across runs and platforms, and cheap.
    let hash = agent_id
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3));
    (hash % writers as u64) as usize
}

/// The writer task stopped (the master is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("the event writer has stopped")]
pub struct WriterStopped;

impl EventWriter {
    /// Starts the writer task, on a thread of its own: each of a batch's statements is a round
    /// trip to the database's thread, and on the main runtime every return of one queued behind
    /// the fleet's ready stream tasks (a saturated machine made a batch take hundreds of
    /// milliseconds of waiting, not of work, while receipts and commands waited for it).
    /// `fanout` asks for a reconcile pass when reported containers change.
    pub fn spawn(
        store: Store,
        sessions: Sessions,
        fanout: Fanout,
        supervisor: &Supervisor,
    ) -> std::io::Result<EventWriter> {
        let names: &[&'static str] = match store.backend() {
            crate::store::Backend::Sqlite => &["event writer"],
            crate::store::Backend::Postgres => &WRITER_NAMES,
        };
        let writers = names.len();
        let stop = CancellationToken::new();
        let (stopped_tx, stopped) = watch::channel(0usize);
        let stopped_tx = Arc::new(stopped_tx);
        let mut queues = Vec::with_capacity(writers);
        for &name in names {
            let (queue, incoming) = mpsc::channel(QUEUE_CAPACITY / writers);
            queues.push(queue);
            let writer = run(store.clone(), sessions.clone(), fanout.clone(), incoming, stop.clone());
            let stopped_tx = stopped_tx.clone();
            supervisor.spawn_on_own_thread(name, async move {
                writer.await;
                stopped_tx.send_modify(|stopped| *stopped += 1);
            })?;
        }
        Ok(EventWriter { queues: queues.into(), bytes: Arc::new(Semaphore::new(QUEUE_BYTES)), stop, stopped })
    }

    /// At shutdown: takes no more events, stores those queued, and returns once they are stored
    /// (`false` if that took longer than `timeout`).
    pub async fn drain(&self, timeout: Duration) -> bool {
        self.stop.cancel();
        let mut stopped = self.stopped.clone();
        let writers = self.queues.len();
        tokio::time::timeout(timeout, stopped.wait_for(|done| *done >= writers)).await.is_ok_and(|r| r.is_ok())
    }

    /// Events queued and not yet stored (metrics).
    pub fn depth(&self) -> usize {
        self.queues.iter().map(|queue| queue.max_capacity() - queue.capacity()).sum()
    }

    /// Queues an event, waiting while the queue is full (in events or in bytes).
    pub async fn submit(&self, pending: PendingEvent) -> Result<(), WriterStopped> {
        let size = (pending.event.payload.len() + 256).min(QUEUE_BYTES);
        let permit = self
            .bytes
            .clone()
            .acquire_many_owned(u32::try_from(size).unwrap_or(u32::MAX))
            .await
            .map_err(|_| WriterStopped)?;
        let queue = &self.queues[writer_of(&pending.event.agent_id, self.queues.len())];
        queue.send((pending, permit)).await.map_err(|_| WriterStopped)
    }
}

async fn run(
    store: Store,
    sessions: Sessions,
    fanout: Fanout,
    mut incoming: mpsc::Receiver<(PendingEvent, OwnedSemaphorePermit)>,
    stop: CancellationToken,
) {
    let mut buffer = Vec::with_capacity(MAX_BATCH);
    let mut permits = Vec::with_capacity(MAX_BATCH);
    let stored_total = metrics::counter!("dockflare_events_stored_total");
    let batch_size = metrics::histogram!("dockflare_event_batch_size");
    let commit_seconds = metrics::histogram!("dockflare_event_commit_seconds");
    loop {
        let received = tokio::select! {
            received = incoming.recv_many(&mut buffer, MAX_BATCH) => received,
            _ = stop.cancelled(), if !incoming.is_closed() => {
                // Shutdown: nothing new comes in; what is queued is still stored.
                incoming.close();
                continue;
            }
        };
        if received == 0 {
            return;
        }
        // Only SQLite's transactions give way to commands: PostgreSQL's chunks would be round
        // trips for nothing.
        let chunk_size = if store.backend() == crate::store::Backend::Sqlite { CHUNK } else { MAX_BATCH };
        let mut chunks: Vec<EventBatch> = Vec::with_capacity(received.div_ceil(chunk_size));
        for (pending, permit) in buffer.drain(..) {
            permits.push(permit);
            add_to_chunks(&mut chunks, pending, chunk_size);
        }
        let mut containers_changed = false;
        while !chunks.is_empty() {
            let started = std::time::Instant::now();
            let (stored, changed) = write_until_stored(&store, &chunks).await;
            commit_seconds.record(started.elapsed().as_secs_f64());
            containers_changed |= changed;
            let events: usize = chunks[..stored].iter().map(|chunk| chunk.events.len()).sum();
            batch_size.record(events as f64);
            stored_total.increment(events as u64);
            for ack in chunks[..stored].iter().flat_map(|chunk| &chunk.acks) {
                let outcome = if ack.success { "success" } else { "failure" };
                metrics::counter!("dockflare_commands_acknowledged_total", "outcome" => outcome).increment(1);
            }
            publish_receipts(&sessions, &chunks[..stored]);
            chunks.drain(..stored);
        }
        // Stored: the bytes are free for others.
        permits.clear();
        // A reconnecting agent's full report usually repeats what is stored: no pass for that.
        if containers_changed {
            fanout.reconcile().await;
        }
    }
}

/// Adds an event to the last chunk, or to a new one when that holds `chunk_size` events.
fn add_to_chunks(chunks: &mut Vec<EventBatch>, pending: PendingEvent, chunk_size: usize) {
    let chunk = match chunks.last_mut() {
        Some(chunk) if chunk.events.len() < chunk_size => chunk,
        _ => {
            chunks.push(EventBatch::default());
            let Some(chunk) = chunks.last_mut() else { return };
            chunk
        }
    };
    chunk.acks.extend(pending.ack);
    if let Some(change) = pending.container_change {
        chunk.container_changes.push(ContainerChangeEntry {
            agent_id: pending.event.agent_id.clone(),
            event_id: pending.event.event_id,
            change,
        });
    }
    if let Some(state) = pending.connector_state {
        chunk.connector_reports.push(ConnectorReport {
            agent_id: pending.event.agent_id.clone(),
            event_id: pending.event.event_id,
            received_at: pending.event.received_at,
            state,
        });
    }
    chunk.events.push(pending.event);
}

/// Tells each agent's streams how far its events are stored.
fn publish_receipts(sessions: &Sessions, stored: &[EventBatch]) {
    let mut through: HashMap<&str, u64> = HashMap::new();
    for event in stored.iter().flat_map(|chunk| &chunk.events) {
        let entry = through.entry(event.agent_id.as_str()).or_default();
        *entry = (*entry).max(event.event_id);
    }
    for (agent_id, event_id) in through {
        sessions.publish_receipt(agent_id, event_id);
    }
}

/// Writes the chunks, retrying until some are stored: how many (a prefix, see
/// [`Store::write_event_chunks`]) and whether the reported containers changed.
async fn write_until_stored(store: &Store, chunks: &[EventBatch]) -> (usize, bool) {
    let mut delay = RETRY_MIN;
    let mut failures = 0u32;
    loop {
        match store.write_event_chunks(chunks, crate::store::YIELD_AFTER).await {
            Ok(outcome) => {
                if failures > 0 {
                    tracing::info!(message = "Event writes recovered.", failed_attempts = failures);
                }
                return outcome;
            }
            Err(error) => {
                if failures == 0 {
                    let events: usize = chunks.iter().map(|chunk| chunk.events.len()).sum();
                    tracing::error!(message = "Storing agent events failed; retrying.", events, %error);
                }
                failures += 1;
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(RETRY_MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_always_has_the_same_writer_and_the_agents_are_shared_out() {
        assert_eq!(writer_of("any", 1), 0);
        let ids: Vec<String> = (0..1000).map(|n| format!("agent-{n:04}")).collect();
        let mut counts = [0usize; 2];
        for id in &ids {
            let writer = writer_of(id, 2);
            assert_eq!(writer, writer_of(id, 2));
            counts[writer] += 1;
        }
        assert!(counts.iter().all(|&count| count > 400), "{counts:?}");
    }
}
