//! What the agent currently sees on its Docker host: every container (and,
//! on Swarm managers, every service) that carries DockFlare labels, keyed by
//! id. The Docker watcher keeps it true; the session and the applier read
//! snapshots for status reports.

use dockflare::v1::Container;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// The shared view. Cheap to clone.
#[derive(Clone, Default)]
pub struct Inventory {
    containers: Arc<Mutex<BTreeMap<String, Container>>>,
}

impl Inventory {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Container>> {
        // Each change is a single map operation; a poisoned lock is consistent.
        self.containers.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every reported container now, ordered by id.
    pub fn snapshot(&self) -> Vec<Container> {
        self.lock().values().cloned().collect()
    }

    /// Replaces the whole view; returns the previous one.
    pub fn replace_all(&self, containers: BTreeMap<String, Container>) -> BTreeMap<String, Container> {
        std::mem::replace(&mut *self.lock(), containers)
    }

    /// Adds or updates one container; `true` when it was new or different.
    pub fn upsert(&self, container: Container) -> bool {
        let mut map = self.lock();
        if map.get(&container.id) == Some(&container) {
            return false;
        }
        map.insert(container.id.clone(), container);
        true
    }

    /// Removes one container, returning it if it was there.
    pub fn remove(&self, id: &str) -> Option<Container> {
        self.lock().remove(id)
    }

    pub fn contains(&self, id: &str) -> bool {
        self.lock().contains_key(id)
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
