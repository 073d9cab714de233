//! The change feed behind AdminService.WatchChanges. Every master holds a [`View`]: the latest
//! state of every watched object (routes, agents, tunnels, diagnostics, connectors) with the
//! revision at which it last changed, followed from the database ([`follow`]). The reconciling
//! master also writes the feed ([`feed`]): it reads what the store says now ([`objects`]),
//! compares it with the view ([`diff`], pure) and records what changed under new revisions.
//! Watchers take a snapshot of the view and then receive each applied batch through a bounded
//! broadcast: a watcher that falls behind is told so and cut off, never waited for.

pub mod diff;
pub mod feed;
pub mod follow;
pub mod objects;

use dockflare::v1;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{broadcast, Notify};
use tokio_util::sync::CancellationToken;

/// Batches a watcher may fall behind by before it is cut off (default of `--watch-backlog`).
pub const BROADCAST_CAPACITY: usize = 1024;

/// Changes applied together, in revision order.
pub type Batch = Arc<Vec<Arc<Entry>>>;

/// One watched object as the view holds it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub kind: v1::ResourceKind,
    pub key: String,
    /// The agents it belongs to (a tunnel: all that run it).
    pub agents: Vec<String>,
    pub revision: u64,
    pub changed_at: i64,
    pub deleted: bool,
    /// The object (kind, key and object set; type, revision and time not).
    pub message: v1::WatchChangesResponse,
    /// What the differ compares ([`diff::material_hash`]).
    pub hash: u64,
}

impl Entry {
    /// Whether a watcher asking for `kinds` (empty: all) and `agent` ("" for all) wants it.
    pub fn wanted(&self, kinds: &[v1::ResourceKind], agent: &str) -> bool {
        (kinds.is_empty() || kinds.contains(&self.kind)) && (agent.is_empty() || self.agents.iter().any(|a| a == agent))
    }

    /// The message a watcher receives for it.
    pub fn to_response(&self, change: v1::ChangeType) -> v1::WatchChangesResponse {
        let mut message = self.message.clone();
        message.r#type = change as i32;
        message.revision = self.revision;
        message.changed_at = Some(crate::convert::timestamp(self.changed_at));
        stamp(&mut message, self.revision, self.changed_at);
        message
    }
}

/// Routes and tunnels say in themselves when they last changed.
fn stamp(message: &mut v1::WatchChangesResponse, revision: u64, changed_at: i64) {
    use v1::watch_changes_response::Object;
    match message.object.as_mut() {
        Some(Object::Route(route)) => {
            route.revision = revision;
            route.updated_at = Some(crate::convert::timestamp(changed_at));
        }
        Some(Object::Tunnel(tunnel)) => {
            tunnel.revision = revision;
            tunnel.updated_at = Some(crate::convert::timestamp(changed_at));
        }
        _ => {}
    }
}

/// The objects a master knows, at a revision.
#[derive(Debug, Default)]
pub struct View {
    pub revision: u64,
    pub compacted: u64,
    pub objects: HashMap<(v1::ResourceKind, String), Arc<Entry>>,
}

/// Where a watcher starts.
pub enum Start {
    /// The objects it wants now, then changes after `revision`.
    Snapshot { objects: Vec<Arc<Entry>>, revision: u64 },
    /// What changed after the revision it gave, in revision order, then changes after `revision`.
    Resume { missed: Vec<Arc<Entry>>, revision: u64 },
}

/// Why a watcher cannot resume.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error("revision {asked} is too old: changes up to {compacted} were compacted; take a new snapshot (resume_revision 0)")]
    TooOld { asked: u64, compacted: u64 },
    #[error("revision {asked} is ahead of this master ({current}): the feed was reset? take a new snapshot (resume_revision 0)")]
    Ahead { asked: u64, current: u64 },
}

/// The feed's shared state on this master. Cheap to clone.
#[derive(Clone)]
pub struct WatchHub {
    view: Arc<Mutex<View>>,
    changes: broadcast::Sender<Batch>,
    /// Something changed: the feed looks soon.
    wake: Arc<Notify>,
    /// The master is stopping: watchers end.
    closed: CancellationToken,
}

impl Default for WatchHub {
    fn default() -> Self {
        WatchHub::new(BROADCAST_CAPACITY)
    }
}

impl WatchHub {
    /// A hub whose watchers may fall `backlog` batches behind before they are cut off.
    pub fn new(backlog: usize) -> WatchHub {
        WatchHub {
            view: Arc::default(),
            changes: broadcast::channel(backlog.max(1)).0,
            wake: Arc::default(),
            closed: CancellationToken::new(),
        }
    }
}

impl WatchHub {
    fn view(&self) -> MutexGuard<'_, View> {
        self.view.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Asks the feed to look for changes soon.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Ends every watcher (the master is stopping).
    pub fn close(&self) {
        self.closed.cancel();
    }

    pub fn closed(&self) -> CancellationToken {
        self.closed.clone()
    }

    /// The revision and time of an object's last change, if the view has it.
    pub fn revision_of(&self, kind: v1::ResourceKind, key: &str) -> Option<(u64, i64)> {
        self.view().objects.get(&(kind, key.to_string())).map(|entry| (entry.revision, entry.changed_at))
    }

    /// Where a watcher starts, and its subscription to what follows (taken together, so that
    /// nothing falls between them).
    pub fn start(
        &self,
        kinds: &[v1::ResourceKind],
        agent: &str,
        resume_revision: u64,
    ) -> Result<(Start, broadcast::Receiver<Batch>), ResumeError> {
        let view = self.view();
        let subscription = self.changes.subscribe();
        let revision = view.revision;
        if resume_revision == 0 {
            let mut objects: Vec<Arc<Entry>> =
                view.objects.values().filter(|e| !e.deleted && e.wanted(kinds, agent)).cloned().collect();
            objects.sort_by_key(|e| e.revision);
            return Ok((Start::Snapshot { objects, revision }, subscription));
        }
        if resume_revision < view.compacted {
            return Err(ResumeError::TooOld { asked: resume_revision, compacted: view.compacted });
        }
        if resume_revision > revision {
            return Err(ResumeError::Ahead { asked: resume_revision, current: revision });
        }
        let mut missed: Vec<Arc<Entry>> =
            view.objects.values().filter(|e| e.revision > resume_revision && e.wanted(kinds, agent)).cloned().collect();
        missed.sort_by_key(|e| e.revision);
        Ok((Start::Resume { missed, revision }, subscription))
    }

    /// Applies entries read from the store (in revision order) and tells the watchers.
    pub(crate) fn apply(&self, entries: Vec<Entry>, compacted: u64) {
        let mut batch = Vec::with_capacity(entries.len());
        {
            let mut view = self.view();
            for entry in entries {
                if entry.revision <= view.revision {
                    continue;
                }
                view.revision = entry.revision;
                let entry = Arc::new(entry);
                view.objects.insert((entry.kind, entry.key.clone()), entry.clone());
                batch.push(entry);
            }
            if compacted > view.compacted {
                view.compacted = compacted;
                view.objects.retain(|_, e| !(e.deleted && e.revision <= compacted));
            }
        }
        if !batch.is_empty() {
            // No watcher: nothing to tell.
            let _ = self.changes.send(Arc::new(batch));
        }
    }

    /// What `live` changes against the view, and the revision the view is at (under the lock,
    /// no await: the differ is pure).
    pub(crate) fn diff(&self, live: &[objects::LiveObject]) -> (u64, Vec<crate::store::WatchWrite>) {
        let view = self.view();
        (view.revision, diff::changes(&view, live))
    }

    /// The revision this master's view is at.
    pub fn revision(&self) -> u64 {
        self.view().revision
    }
}

/// A kind's name in the store.
pub fn kind_name(kind: v1::ResourceKind) -> &'static str {
    match kind {
        v1::ResourceKind::Route => "route",
        v1::ResourceKind::Agent => "agent",
        v1::ResourceKind::Tunnel => "tunnel",
        v1::ResourceKind::Diagnostic => "diagnostic",
        v1::ResourceKind::Connector => "connector",
        v1::ResourceKind::Unspecified => "unspecified",
    }
}

/// A kind from its name in the store.
pub fn kind_from_name(name: &str) -> Option<v1::ResourceKind> {
    [
        v1::ResourceKind::Route,
        v1::ResourceKind::Agent,
        v1::ResourceKind::Tunnel,
        v1::ResourceKind::Diagnostic,
        v1::ResourceKind::Connector,
    ]
    .into_iter()
    .find(|kind| kind_name(*kind) == name)
}
