//! What the reconciler needs from the pipelines above it, as a port they implement: telling an
//! agent to run its tunnel's connector. So the reconciler depends on no pipeline (the command
//! queue implements [`AgentCommands`]; tests may give a fake).

use dockflare::v1::StartTunnel;
use futures::future::BoxFuture;

/// Sends commands to agents (durably: they arrive when the agent next connects).
pub trait AgentCommands: Send + Sync {
    /// Queues a start_tunnel for `agent_id`; the error says why it could not be queued.
    fn start_tunnel<'a>(&'a self, agent_id: &'a str, start: StartTunnel) -> BoxFuture<'a, Result<(), String>>;
}
