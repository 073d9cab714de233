//! The command log as the rest of the master uses it: queue a command
//! (seal it for its place, store it under the agent's next sequence, wake the
//! agent's stream — here, and on the other masters through the cluster
//! channel) and read one back for the pump. At start, [`CommandQueue::prepare`]
//! makes sure this master holds the key the database's log is sealed with and
//! seals rows stored before sealing existed. Used by the admin API, the
//! reconciler and the WatchCommands pump.

use crate::clock::now_millis;
use crate::command_seal::{is_sealed, CommandSeal, LogPlace, SealError};
use crate::fanout::Fanout;
use crate::store::{CommandRow, CommandWrite, Enqueued, Store, StoreError};
use dockflare::v1::{command, Command};
use prost::Message;
use std::sync::Arc;

/// The setting holding the check value of the log's sealing key (hex).
const SEAL_CHECK_SETTING: &str = "command_seal_check";
/// Set once every row stored before sealing has been sealed.
const LEGACY_SEALED_SETTING: &str = "command_log_sealed";
/// Rows read per round of the one-off sealing pass.
const LEGACY_PAGE: u32 = 256;

/// Who waits for a command to be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Urgency {
    /// An operator's call (AdminService): event batches give way to it.
    Operator,
    /// The reconciler's own commands: they wait their turn.
    Background,
}

/// The command log as the rest of the master uses it.
#[derive(Clone)]
pub struct CommandQueue {
    store: Store,
    fanout: Fanout,
    seal: Arc<CommandSeal>,
    /// Where the pumps record deliveries.
    pub deliveries: crate::delivery_log::DeliveryLog,
}

/// Why a stored command cannot be delivered.
#[derive(Debug, thiserror::Error)]
pub enum UnreadableCommand {
    #[error("{0}")]
    Sealing(#[from] SealError),
    #[error("the payload is not a Command: {0}")]
    Decode(#[from] prost::DecodeError),
}

/// Why a command could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    #[error("agent {0:?} does not exist")]
    UnknownAgent(String),
    #[error("agent {0} is revoked")]
    RevokedAgent(String),
    #[error("queueing the command: {0}")]
    Store(StoreError),
}

/// Why the command log cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(
        "this master's CA key is not the one the command log in this database is sealed with: \
         start every master that shares a database with the same --ca-cert and --ca-key"
    )]
    WrongKey,
    #[error("the stored seal check value is not hex: {0}")]
    CheckValue(String),
    #[error("sealing: {0}")]
    Seal(#[from] SealError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CommandQueue {
    /// The queue for `store`'s log, once `seal` is known to be the log's key
    /// and rows stored before sealing are sealed.
    pub async fn prepare(store: Store, fanout: Fanout, seal: CommandSeal) -> Result<CommandQueue, PrepareError> {
        let ours = hex::encode(seal.check_value()?);
        let recorded = store.setting_or_init(SEAL_CHECK_SETTING, &ours).await?;
        let recorded = hex::decode(&recorded).map_err(|e| PrepareError::CheckValue(e.to_string()))?;
        if !seal.opens_check_value(&recorded) {
            return Err(PrepareError::WrongKey);
        }
        let deliveries = crate::delivery_log::DeliveryLog::spawn(store.clone());
        let queue = CommandQueue { store, fanout, seal: Arc::new(seal), deliveries };
        if queue.store.setting_or_init(LEGACY_SEALED_SETTING, "no").await? != "yes" {
            let sealed = queue.seal_legacy_rows().await?;
            if sealed > 0 {
                tracing::info!(message = "Sealed commands stored before sealing.", commands = sealed);
            }
            queue.store.set_setting(LEGACY_SEALED_SETTING, "yes").await?;
        }
        Ok(queue)
    }

    /// Seals every row still in the clear; returns how many it sealed. A row
    /// that is not a Command is left for the pump to fail with the reason.
    async fn seal_legacy_rows(&self) -> Result<usize, PrepareError> {
        let mut sealed = 0;
        let mut after = (String::new(), 0u64);
        loop {
            let rows = self.store.command_rows_after((&after.0, after.1), LEGACY_PAGE).await?;
            for row in &rows {
                if is_sealed(&row.payload) {
                    continue;
                }
                let Ok(mut command) = Command::decode(row.payload.as_slice()) else { continue };
                command.sequence = row.sequence;
                let place = LogPlace { agent_id: &row.agent_id, command_id: &row.id, sequence: row.sequence };
                let payload = self.seal.seal(&place, &command.encode_to_vec())?;
                if self.store.replace_command_payload(&row.agent_id, row.sequence, &row.payload, &payload).await? {
                    sealed += 1;
                }
            }
            match rows.last() {
                Some(last) if rows.len() == LEGACY_PAGE as usize => after = (last.agent_id.clone(), last.sequence),
                _ => return Ok(sealed),
            }
        }
    }

    /// Stores an operator's command for `agent_id` and wakes its stream. Returns the command's
    /// id and sequence. An operator waits for it: on SQLite an event batch in progress gives way
    /// to it ([`Store::waiting_for_writer`]).
    pub async fn enqueue(&self, agent_id: &str, kind: command::Kind) -> Result<(String, u64), EnqueueError> {
        self.enqueue_with(agent_id, kind, Urgency::Operator).await
    }

    async fn enqueue_with(
        &self,
        agent_id: &str,
        kind: command::Kind,
        urgency: Urgency,
    ) -> Result<(String, u64), EnqueueError> {
        let command_id = uuid::Uuid::now_v7().to_string();
        let created_at = now_millis();
        let kind_name = crate::convert::command_kind_name(&kind);
        let seal = self.seal.clone();
        let (id, agent) = (command_id.clone(), agent_id.to_string());
        let encode = move |sequence: u64| {
            let command = Command {
                id: id.clone(),
                sequence,
                created_at: Some(crate::convert::timestamp(created_at)),
                kind: Some(kind.clone()),
            };
            let place = LogPlace { agent_id: &agent, command_id: &id, sequence };
            seal.seal(&place, &command.encode_to_vec()).map_err(|e| e.to_string())
        };
        let write = CommandWrite {
            agent_id: agent_id.to_string(),
            command_id: command_id.clone(),
            kind: kind_name.to_string(),
            created_at,
            encode: Arc::new(encode),
        };
        let outcome =
            self.store.enqueue_command(write, urgency == Urgency::Operator).await.map_err(EnqueueError::Store)?;
        metrics::counter!("dockflare_commands_queued_total", "kind" => kind_name).increment(1);
        match outcome {
            Enqueued::Queued(sequence) => {
                self.fanout.commands_for(agent_id);
                tracing::info!(message = "Command queued.", agent = %agent_id, command = %command_id, sequence, kind = kind_name);
                Ok((command_id, sequence))
            }
            Enqueued::UnknownAgent => Err(EnqueueError::UnknownAgent(agent_id.to_string())),
            Enqueued::RevokedAgent => Err(EnqueueError::RevokedAgent(agent_id.to_string())),
        }
    }

    /// The command a log row holds.
    pub fn open(&self, row: &CommandRow) -> Result<Command, UnreadableCommand> {
        let place = LogPlace { agent_id: &row.agent_id, command_id: &row.id, sequence: row.sequence };
        let payload = self.seal.open(&place, &row.payload)?;
        Ok(Command::decode(payload.as_slice())?)
    }
}

/// The reconciler's port: its start_tunnel commands go through the queue like any other.
impl crate::reconcile::AgentCommands for CommandQueue {
    fn start_tunnel<'a>(
        &'a self,
        agent_id: &'a str,
        start: dockflare::v1::StartTunnel,
    ) -> futures::future::BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            // Background work: it waits its turn behind event batches rather than cut them short.
            self.enqueue_with(agent_id, command::Kind::StartTunnel(start), Urgency::Background)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        })
    }
}
