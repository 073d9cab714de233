//! Queueing commands for agents: seal, store (under the agent's next
//! sequence), then wake the agent's command stream — on this master, and on
//! the others through the cluster channel. Used by the admin API and the
//! reconciler; the command pump reads the log back through [`CommandQueue::open`].

use crate::command_seal::{CommandSeal, SealError};
use crate::sessions::Sessions;
use crate::state::{now_millis, store_status};
use crate::store::{CommandRow, Enqueued, Store};
use dockflare::v1::{command, Command};
use prost::Message;
use std::sync::Arc;
use tonic::Status;

/// The command log as the rest of the master uses it.
#[derive(Clone)]
pub struct CommandQueue {
    store: Store,
    sessions: Sessions,
    seal: Arc<CommandSeal>,
}

/// Why a stored command cannot be delivered.
#[derive(Debug, thiserror::Error)]
pub enum UnreadableCommand {
    #[error("{0}")]
    Sealing(#[from] SealError),
    #[error("the payload is not a Command: {0}")]
    Decode(#[from] prost::DecodeError),
}

impl CommandQueue {
    pub fn new(store: Store, sessions: Sessions, seal: CommandSeal) -> CommandQueue {
        CommandQueue { store, sessions, seal: Arc::new(seal) }
    }

    /// Stores a command for `agent_id` and wakes its stream. Returns the
    /// command's id and sequence.
    pub async fn enqueue(&self, agent_id: &str, kind: command::Kind) -> Result<(String, u64), Status> {
        let command_id = uuid::Uuid::now_v7().to_string();
        let created_at = now_millis();
        let kind_name = crate::convert::command_kind_name(&kind);
        let command = Command {
            id: command_id.clone(),
            sequence: 0,
            created_at: Some(crate::convert::timestamp(created_at)),
            kind: Some(kind),
        };
        let payload = self.seal.seal(agent_id, &command.encode_to_vec()).map_err(|error| {
            tracing::error!(message = "Cannot seal a command.", agent = %agent_id, %error);
            Status::internal(format!("sealing the command: {error}"))
        })?;
        let outcome = self
            .store
            .enqueue_command(agent_id, &command_id, kind_name, created_at, &payload)
            .await
            .map_err(|e| store_status("queueing the command", e))?;
        match outcome {
            Enqueued::Queued(sequence) => {
                self.sessions.notify_commands(agent_id);
                crate::cluster::notify(&self.store, crate::cluster::COMMANDS, agent_id).await;
                tracing::info!(message = "Command queued.", agent = %agent_id, command = %command_id, sequence, kind = kind_name);
                Ok((command_id, sequence))
            }
            Enqueued::UnknownAgent => Err(Status::not_found(format!("agent {agent_id:?} does not exist"))),
            Enqueued::RevokedAgent => Err(Status::failed_precondition(format!("agent {agent_id} is revoked"))),
        }
    }

    /// The command a log row holds, with the row's sequence.
    pub fn open(&self, row: &CommandRow) -> Result<Command, UnreadableCommand> {
        let payload = self.seal.open(&row.agent_id, &row.payload)?;
        let mut command = Command::decode(payload.as_slice())?;
        command.sequence = row.sequence;
        Ok(command)
    }
}
