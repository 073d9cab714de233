//! "Wake this master, then tell the others": the one way the master asks for
//! a reconcile pass, wakes an agent's command stream, or ends a revoked
//! agent's streams — here at once, and on every master sharing the database
//! (PostgreSQL NOTIFY, which [`crate::cluster`] turns back into the same
//! local calls on the others; nothing more on SQLite).

use crate::cluster::{self, CommandAnnouncer, RECONCILE, REVOCATIONS};
use crate::reconcile::{PassReport, ReconcilerHandle};
use crate::sessions::Sessions;
use crate::store::Store;
use crate::watch::WatchHub;

/// Cheap to clone.
#[derive(Clone)]
pub struct Fanout {
    store: Store,
    sessions: Sessions,
    reconciler: ReconcilerHandle,
    watch: WatchHub,
    announcer: CommandAnnouncer,
}

impl Fanout {
    pub fn new(
        store: Store,
        sessions: Sessions,
        reconciler: ReconcilerHandle,
        watch: WatchHub,
        announcer: CommandAnnouncer,
    ) -> Fanout {
        Fanout { store, sessions, reconciler, watch, announcer }
    }

    /// A pass soon, on whichever master reconciles (and a look for changes to tell watchers).
    pub async fn reconcile(&self) {
        self.reconciler.trigger();
        self.watch.wake();
        cluster::notify(&self.store, RECONCILE, "").await;
    }

    /// Something watchers see changed, nothing a pass reads (an agent registered again as it
    /// was): a look for changes to tell watchers, no pass.
    pub fn watchers(&self) {
        self.watch.wake();
    }

    /// `agent_id` has new commands: its stream, wherever it is open, reads them (here at once;
    /// the other masters are told off the caller's path, [`CommandAnnouncer`]).
    pub fn commands_for(&self, agent_id: &str) {
        self.sessions.notify_commands(agent_id);
        self.announcer.announce(agent_id);
    }

    /// `agent_id` is revoked (or removed): its streams end, wherever they are open.
    pub async fn revoked(&self, agent_id: &str) {
        self.sessions.revoke(agent_id);
        cluster::notify(&self.store, REVOCATIONS, agent_id).await;
    }

    /// A dry run on this master's reconciler (`None` when it has stopped).
    pub async fn plan(
        &self,
        proposals: Vec<crate::reconcile::dry_run::ProposedContainer>,
    ) -> Option<crate::reconcile::dry_run::Plan> {
        self.reconciler.plan(proposals).await
    }

    /// A pass now on this master (its report, `None` when the reconciler has stopped), and soon
    /// on whichever master reconciles.
    pub async fn reconcile_now(&self) -> Option<PassReport> {
        let report = self.reconciler.run_now().await;
        cluster::notify(&self.store, RECONCILE, "").await;
        report
    }
}
