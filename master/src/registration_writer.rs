//! The single writer of registrations. Register calls hand it what their agent says about
//! itself; it writes whatever has accumulated in one transaction (group commit: on SQLite one
//! write lock and one fsync for many agents instead of one each, which a reconnecting fleet
//! would otherwise queue behind, every waiting writer holding a pool connection) and answers
//! each call with its agent's record. One reconcile pass is asked for per batch.
//!
//! A batch that fails is written again one registration at a time, so that one bad row fails
//! only its own call. The queue is bounded ([`QUEUE_CAPACITY`]); Register admission
//! ([`crate::register_gate`]) keeps it well below that.

use crate::fanout::Fanout;
use crate::model::AgentRecord;
use crate::store::{AgentRegistration, Store, StoreError};
use crate::supervisor::Supervisor;
use dockflare_common::identity::AgentId;
use tokio::sync::{mpsc, oneshot};

/// Registrations waiting to be written.
pub const QUEUE_CAPACITY: usize = 4096;
/// Most registrations in one transaction.
pub const MAX_BATCH: usize = 512;

/// Why a registration was not written.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the registration writer has stopped")]
    Stopped,
}

/// One registration for the writer, and where its answer goes.
struct Pending {
    agent_id: AgentId,
    registration: AgentRegistration,
    at: i64,
    reply: oneshot::Sender<Result<Option<AgentRecord>, StoreError>>,
}

/// Handle to queue registrations. Cheap to clone.
#[derive(Clone)]
pub struct RegistrationWriter {
    queue: mpsc::Sender<Pending>,
}

impl RegistrationWriter {
    /// Starts the writer task; `fanout` asks for a reconcile pass after each batch.
    pub fn spawn(store: Store, fanout: Fanout, supervisor: &Supervisor) -> RegistrationWriter {
        let (queue, incoming) = mpsc::channel(QUEUE_CAPACITY);
        supervisor.spawn("registration writer", run(store, fanout, incoming));
        RegistrationWriter { queue }
    }

    /// Records a Register call ([`Store::register_agent`]) with the others in flight: the
    /// agent's record, `None` for an unknown agent.
    pub async fn register(
        &self,
        agent_id: &AgentId,
        registration: AgentRegistration,
        at: i64,
    ) -> Result<Option<AgentRecord>, RegisterError> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending { agent_id: agent_id.clone(), registration, at, reply };
        self.queue.send(pending).await.map_err(|_| RegisterError::Stopped)?;
        Ok(answer.await.map_err(|_| RegisterError::Stopped)??)
    }
}

async fn run(store: Store, fanout: Fanout, mut incoming: mpsc::Receiver<Pending>) {
    let mut buffer = Vec::with_capacity(MAX_BATCH);
    let batch_size = metrics::histogram!("dockflare_registration_batch_size");
    let commit_seconds = metrics::histogram!("dockflare_registration_commit_seconds");
    loop {
        if incoming.recv_many(&mut buffer, MAX_BATCH).await == 0 {
            return;
        }
        let started = std::time::Instant::now();
        let count = buffer.len();
        let written = {
            let rows: Vec<(&AgentId, &AgentRegistration, i64)> =
                buffer.iter().map(|pending| (&pending.agent_id, &pending.registration, pending.at)).collect();
            store.register_agents(&rows).await
        };
        match written {
            Ok(records) => {
                for (pending, record) in buffer.drain(..).zip(records) {
                    let _ = pending.reply.send(Ok(record));
                }
            }
            Err(error) => {
                tracing::debug!(message = "A batch of registrations failed; writing them one by one.", registrations = count, %error);
                for pending in buffer.drain(..) {
                    let result = store.register_agent(&pending.agent_id, &pending.registration, pending.at).await;
                    let _ = pending.reply.send(result);
                }
            }
        }
        commit_seconds.record(started.elapsed().as_secs_f64());
        batch_size.record(count as f64);
        fanout.reconcile().await;
    }
}
