//! The single writer of registrations. Register calls hand it what their agent says about
//! itself; it reads and writes whatever has accumulated in one transaction (group commit: on
//! SQLite one write lock and one fsync for many agents instead of one each, which a
//! reconnecting fleet would otherwise queue behind, every waiting writer holding a pool
//! connection) and answers each call with its agent's record before and after. A Register
//! takes no pool connection of its own, so the registrations in progress are those queued here.
//!
//! Only an agent that may register ([`may_register`]: not removed or revoked, and in the tunnel
//! group it names, if it names one) is written. A batch that fails is written again one
//! registration at a time, so that one bad row fails only its own call. The queue is bounded
//! ([`QUEUE_CAPACITY`]); Register admission ([`crate::register_gate`]) keeps it below that.

use crate::model::AgentRecord;
use crate::store::{AgentRegistration, Registration, Store, StoreError};
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

/// Whether an agent as stored may register with `registration`: not removed, not revoked, and
/// not naming a tunnel group other than its own (an operator moves agents between groups).
pub fn may_register(agent: &AgentRecord, registration: &AgentRegistration) -> bool {
    agent.removed_at.is_none()
        && !agent.is_revoked()
        && (registration.tunnel_group.is_empty() || registration.tunnel_group == agent.tunnel_group)
}

/// One registration for the writer, and where its answer goes.
struct Pending {
    agent_id: AgentId,
    registration: AgentRegistration,
    at: i64,
    reply: oneshot::Sender<Result<Registration, StoreError>>,
}

/// Handle to queue registrations. Cheap to clone.
#[derive(Clone)]
pub struct RegistrationWriter {
    queue: mpsc::Sender<Pending>,
}

impl RegistrationWriter {
    /// Starts the writer task.
    pub fn spawn(store: Store, supervisor: &Supervisor) -> RegistrationWriter {
        let (queue, incoming) = mpsc::channel(QUEUE_CAPACITY);
        supervisor.spawn("registration writer", run(store, incoming));
        RegistrationWriter { queue }
    }

    /// Records a Register call with the others in flight ([`Store::register_agents`]).
    pub async fn register(
        &self,
        agent_id: &AgentId,
        registration: AgentRegistration,
        at: i64,
    ) -> Result<Registration, RegisterError> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending { agent_id: agent_id.clone(), registration, at, reply };
        self.queue.send(pending).await.map_err(|_| RegisterError::Stopped)?;
        Ok(answer.await.map_err(|_| RegisterError::Stopped)??)
    }
}

async fn run(store: Store, mut incoming: mpsc::Receiver<Pending>) {
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
            store.register_agents(&rows, may_register).await
        };
        match written {
            Ok(outcomes) => {
                for (pending, outcome) in buffer.drain(..).zip(outcomes) {
                    let _ = pending.reply.send(Ok(outcome));
                }
            }
            Err(error) => {
                tracing::debug!(message = "A batch of registrations failed; writing them one by one.", registrations = count, %error);
                for pending in buffer.drain(..) {
                    let row = [(&pending.agent_id, &pending.registration, pending.at)];
                    let outcome = store
                        .register_agents(&row, may_register)
                        .await
                        .map(|mut outcomes| outcomes.pop().unwrap_or(Registration::Unknown));
                    let _ = pending.reply.send(outcome);
                }
            }
        }
        commit_seconds.record(started.elapsed().as_secs_f64());
        batch_size.record(count as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::swarms::tests::agent;

    #[test]
    fn only_active_agents_in_their_own_group_may_register() {
        let mut grouped = agent("a1", "standalone", "", "n1", "", &[]);
        grouped.tunnel_group = "edge".into();
        let asks = |group: &str| AgentRegistration { tunnel_group: group.into(), ..Default::default() };
        assert!(may_register(&grouped, &asks("")), "naming no group is fine");
        assert!(may_register(&grouped, &asks("edge")));
        assert!(!may_register(&grouped, &asks("other")), "another group is the operator's to give");
        let mut removed = grouped.clone();
        removed.removed_at = Some(1);
        assert!(!may_register(&removed, &asks("")));
        let mut revoked = grouped.clone();
        revoked.status = crate::model::STATUS_REVOKED.into();
        assert!(!may_register(&revoked, &asks("")));
    }
}
