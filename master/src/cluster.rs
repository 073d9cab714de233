//! Several masters on one PostgreSQL database: what one master does, the
//! others hear through LISTEN/NOTIFY (a command queued for an agent whose
//! streams are on another master, a revocation, a change that needs a
//! reconcile), and exactly one master — the holder of a session advisory
//! lock — reconciles Cloudflare; a standby takes over when it dies. Command
//! wake-ups go out from one task ([`CommandAnnouncer`]), off the callers' path.
//!
//! With SQLite there is one master: notifications are local only and this
//! master always leads.

use crate::reconcile::ReconcilerHandle;
use crate::sessions::Sessions;
use crate::store::{Backend, Store};
use crate::supervisor::Supervisor;
use sqlx::postgres::PgListener;
use sqlx::{Connection, PgConnection};
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{watch, Notify};

pub const COMMANDS: &str = "dockflare_commands";
pub const REVOCATIONS: &str = "dockflare_revocations";
pub const RECONCILE: &str = "dockflare_reconcile";
/// The advisory lock key of the reconciling master ("dockflar" in ASCII).
const LEADER_LOCK: i64 = 0x646F_636B_666C_6172;
const RETRY: Duration = Duration::from_secs(1);
/// How often the leader checks that its lock connection is alive.
const LEADER_HEARTBEAT: Duration = Duration::from_secs(2);

/// Tells the other masters (PostgreSQL only; a no-op on SQLite).
pub async fn notify(store: &Store, channel: &str, payload: &str) {
    if store.backend() != Backend::Postgres {
        return;
    }
    let started = std::time::Instant::now();
    if let Err(error) = store.pg_notify(channel, payload).await {
        tracing::warn!(message = "Could not notify the other masters.", channel, %error);
    }
    metrics::histogram!("dockflare_cluster_notify_seconds").record(started.elapsed().as_secs_f64());
}

/// Tells the other masters which agents have new commands, from one task, off the callers' path:
/// a SendCommand answers once its command is stored and this master's stream is woken, not one
/// PostgreSQL round trip later. An agent already waiting to be announced is not queued twice, so
/// the queue holds at most one entry per agent. Does nothing on SQLite. Cheap to clone.
#[derive(Clone, Default)]
pub struct CommandAnnouncer {
    queue: Option<Arc<AnnounceQueue>>,
}

#[derive(Default)]
struct AnnounceQueue {
    pending: Mutex<Pending>,
    wake: Notify,
}

#[derive(Default)]
struct Pending {
    order: VecDeque<String>,
    queued: HashSet<String>,
}

impl CommandAnnouncer {
    /// Starts the announcing task (supervised) on PostgreSQL; a no-op announcer on SQLite.
    pub fn spawn(store: &Store, supervisor: &Supervisor) -> CommandAnnouncer {
        if store.backend() != Backend::Postgres {
            return CommandAnnouncer::default();
        }
        let queue = Arc::new(AnnounceQueue::default());
        let (store, task_queue) = (store.clone(), queue.clone());
        supervisor.spawn("command announcements", async move {
            loop {
                task_queue.wake.notified().await;
                while let Some(agent_id) = task_queue.next() {
                    notify(&store, COMMANDS, &agent_id).await;
                }
            }
        });
        CommandAnnouncer { queue: Some(queue) }
    }

    /// Queues an announcement that `agent_id` has new commands.
    pub fn announce(&self, agent_id: &str) {
        let Some(queue) = &self.queue else { return };
        let mut pending = queue.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if pending.queued.insert(agent_id.to_string()) {
            pending.order.push_back(agent_id.to_string());
        }
        drop(pending);
        queue.wake.notify_one();
    }

    /// Announcements waiting now (tests).
    #[cfg(test)]
    fn waiting(&self) -> Vec<String> {
        self.queue.as_ref().map_or_else(Vec::new, |queue| {
            queue.pending.lock().unwrap_or_else(PoisonError::into_inner).order.iter().cloned().collect()
        })
    }
}

impl AnnounceQueue {
    /// The oldest agent waiting to be announced; it may be queued again from now on.
    fn next(&self) -> Option<String> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let agent_id = pending.order.pop_front()?;
        pending.queued.remove(&agent_id);
        Some(agent_id)
    }
}

/// Listens for the other masters' notifications and acts on them here.
pub fn spawn_listener(database_url: String, sessions: Sessions, reconciler: ReconcilerHandle, supervisor: &Supervisor) {
    supervisor.spawn("cluster notifications", async move {
        loop {
            match listen(&database_url, &sessions, &reconciler).await {
                Ok(()) => return,
                Err(error) => {
                    tracing::warn!(message = "Lost the PostgreSQL notification channel; reconnecting.", %error);
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    });
}

async fn listen(url: &str, sessions: &Sessions, reconciler: &ReconcilerHandle) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen_all([COMMANDS, REVOCATIONS, RECONCILE]).await?;
    // Whatever was said while we were not listening: look again.
    sessions.notify_all_commands();
    reconciler.trigger();
    loop {
        let notification = listener.recv().await?;
        match notification.channel() {
            COMMANDS => sessions.notify_commands(notification.payload()),
            REVOCATIONS => sessions.revoke(notification.payload()),
            RECONCILE => reconciler.trigger(),
            _ => {}
        }
    }
}

/// Whether this master leads (reconciles Cloudflare). Always true on SQLite.
pub fn leadership(store: &Store, database_url: &str, supervisor: &Supervisor) -> watch::Receiver<bool> {
    if store.backend() != Backend::Postgres {
        return watch::channel(true).1;
    }
    let (tx, rx) = watch::channel(false);
    let url = database_url.to_string();
    supervisor.spawn("reconciler lock", async move {
        loop {
            if let Err(error) = lead(&url, &tx).await {
                if *tx.borrow() {
                    tracing::warn!(message = "Lost the reconciler lock; standing by.", %error);
                }
            }
            tx.send_replace(false);
            tokio::time::sleep(RETRY).await;
        }
    });
    rx
}

/// Tries to take the lock; holds it (and its connection) as long as it can.
async fn lead(url: &str, leader: &watch::Sender<bool>) -> Result<(), sqlx::Error> {
    let mut connection = PgConnection::connect(url).await?;
    loop {
        let acquired: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(LEADER_LOCK).fetch_one(&mut connection).await?;
        if acquired {
            break;
        }
        tokio::time::sleep(RETRY).await;
    }
    tracing::info!(message = "This master now reconciles Cloudflare (leader).");
    leader.send_replace(true);
    loop {
        tokio::time::sleep(LEADER_HEARTBEAT).await;
        sqlx::query("SELECT 1").execute(&mut connection).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_waiting_to_be_announced_is_queued_once_and_again_once_taken() {
        let queue = Arc::new(AnnounceQueue::default());
        let announcer = CommandAnnouncer { queue: Some(queue.clone()) };
        announcer.announce("a");
        announcer.announce("b");
        announcer.announce("a");
        assert_eq!(announcer.waiting(), ["a", "b"]);
        assert_eq!(queue.next().as_deref(), Some("a"));
        announcer.announce("a");
        assert_eq!(announcer.waiting(), ["b", "a"]);
        assert_eq!((queue.next().as_deref(), queue.next().as_deref(), queue.next()), (Some("b"), Some("a"), None));
    }

    #[test]
    fn without_postgresql_nothing_is_queued() {
        let announcer = CommandAnnouncer::default();
        announcer.announce("a");
        assert!(announcer.waiting().is_empty());
    }
}
