//! The one place where the master's typed errors become gRPC statuses (the
//! services use it; nothing below them knows `tonic::Status`).

use crate::commands::EnqueueError;
use crate::store::StoreError;
use tonic::Status;

/// Maps a store failure to a gRPC status, logging it once here.
pub fn store_status(context: &str, error: StoreError) -> Status {
    if error.is_unavailable() {
        tracing::warn!(message = "Database unavailable.", context, %error);
        Status::unavailable(format!("{context}: database unavailable, retry later"))
    } else {
        tracing::error!(message = "Database error.", context, %error);
        Status::internal(format!("{context}: database error"))
    }
}

/// Maps a failure to queue a command.
pub fn enqueue_status(error: EnqueueError) -> Status {
    match error {
        EnqueueError::UnknownAgent(agent_id) => Status::not_found(format!("agent {agent_id:?} does not exist")),
        EnqueueError::RevokedAgent(agent_id) => Status::failed_precondition(format!("agent {agent_id} is revoked")),
        EnqueueError::Store(error) => store_status("queueing the command", error),
    }
}
