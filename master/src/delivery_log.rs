//! Records that commands reached their agents' streams, off the streams' path: the pumps hand
//! (agent, first..=last) runs to one task, which stores whatever has accumulated in one
//! transaction. A pump no longer waits for the database (on SQLite: for the one writer,
//! behind event batches) between a command and the next one. The queue is bounded: when it is
//! full a pump waits, as it did when it wrote the row itself.

use crate::clock::now_millis;
use crate::store::{DeliveredRun, Store};
use tokio::sync::mpsc;

/// Runs waiting to be recorded.
const QUEUE: usize = 4096;
/// Most runs in one transaction.
const BATCH: usize = 1024;

/// Hands delivered runs to the recorder. Cheap to clone.
#[derive(Clone)]
pub struct DeliveryLog {
    queue: mpsc::Sender<DeliveredRun>,
}

impl DeliveryLog {
    /// Starts the recorder task.
    pub fn spawn(store: Store) -> DeliveryLog {
        let (queue, incoming) = mpsc::channel(QUEUE);
        tokio::spawn(record(store, incoming));
        DeliveryLog { queue }
    }

    /// Queues the record of commands `first..=last` of `agent_id`, delivered now.
    pub async fn delivered(&self, agent_id: &str, first: u64, last: u64) {
        let run = DeliveredRun { agent_id: agent_id.to_string(), first, last, at: now_millis() };
        if self.queue.send(run).await.is_err() {
            tracing::warn!(message = "Command deliveries are no longer recorded (shutting down).", agent = %agent_id);
        }
    }

    /// [`DeliveryLog::delivered`] where waiting is not possible (a stream being dropped): when
    /// the queue is full the record is skipped, and the agent's acknowledgement counts the
    /// delivery instead.
    pub fn delivered_without_waiting(&self, agent_id: &str, first: u64, last: u64) {
        let run = DeliveredRun { agent_id: agent_id.to_string(), first, last, at: now_millis() };
        if let Err(error) = self.queue.try_send(run) {
            tracing::debug!(message = "A delivery record was skipped.", agent = %agent_id, first, last, %error);
        }
    }
}

async fn record(store: Store, mut incoming: mpsc::Receiver<DeliveredRun>) {
    let mut runs = Vec::with_capacity(BATCH);
    while incoming.recv_many(&mut runs, BATCH).await > 0 {
        if let Err(error) = store.mark_commands_delivered(&runs).await {
            tracing::warn!(message = "Could not record command deliveries.", runs = runs.len(), %error);
        }
        runs.clear();
    }
}
