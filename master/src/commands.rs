//! Queueing commands for agents: store first (with the agent's next
//! sequence), then wake the agent's command stream. Used by the admin API
//! now and by the reconciler later.

use crate::sessions::Sessions;
use crate::state::{now_millis, store_status};
use crate::store::{Enqueued, Store};
use dockflare::v1::{command, Command};
use prost::Message;
use tonic::Status;

/// Stores a command for `agent_id` and wakes its stream. Returns the
/// command's id and sequence.
pub async fn enqueue(
    store: &Store,
    sessions: &Sessions,
    agent_id: &str,
    kind: command::Kind,
) -> Result<(String, u64), Status> {
    let command_id = uuid::Uuid::now_v7().to_string();
    let created_at = now_millis();
    let kind_name = crate::convert::command_kind_name(&kind);
    let encode = |sequence: u64| {
        Command {
            id: command_id.clone(),
            sequence,
            created_at: Some(crate::convert::timestamp(created_at)),
            kind: Some(kind.clone()),
        }
        .encode_to_vec()
    };
    let outcome = store
        .enqueue_command(agent_id, &command_id, kind_name, created_at, encode)
        .await
        .map_err(|e| store_status("queueing the command", e))?;
    match outcome {
        Enqueued::Queued(sequence) => {
            sessions.notify_commands(agent_id);
            crate::cluster::notify(store, crate::cluster::COMMANDS, agent_id).await;
            tracing::info!(message = "Command queued.", agent = %agent_id, command = %command_id, sequence, kind = kind_name);
            Ok((command_id, sequence))
        }
        Enqueued::UnknownAgent => Err(Status::not_found(format!("agent {agent_id:?} does not exist"))),
        Enqueued::RevokedAgent => Err(Status::failed_precondition(format!("agent {agent_id} is revoked"))),
    }
}
