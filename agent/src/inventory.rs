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

impl std::fmt::Debug for Inventory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inventory").field("containers", &self.len()).finish()
    }
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

    /// Calls `visit` with every container, in id order, without copying them (under the lock:
    /// `visit` must not use the inventory).
    pub fn for_each(&self, mut visit: impl FnMut(&Container)) {
        for container in self.lock().values() {
            visit(container);
        }
    }

    /// One container, copied.
    pub fn get(&self, id: &str) -> Option<Container> {
        self.lock().get(id).cloned()
    }

    /// Replaces the whole view; returns what changed: the ids of the containers new or
    /// different in `containers` (to report as started), and the containers gone (to report as
    /// stopped). The view is moved in, never copied.
    pub fn replace_all(&self, containers: BTreeMap<String, Container>) -> (Vec<String>, Vec<Container>) {
        let mut map = self.lock();
        let started = containers.iter().filter(|(id, c)| map.get(*id) != Some(*c)).map(|(id, _)| id.clone()).collect();
        let old = std::mem::replace(&mut *map, containers);
        let stopped = old.into_iter().filter(|(id, _)| !map.contains_key(id)).map(|(_, c)| c).collect();
        (started, stopped)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn container(id: &str, status: &str) -> (String, Container) {
        (id.to_string(), Container { id: id.into(), status: status.into(), ..Default::default() })
    }

    #[test]
    fn replacing_the_view_says_what_started_changed_and_stopped() {
        let inventory = Inventory::default();
        let (started, stopped) = inventory.replace_all([container("a", "running"), container("b", "running")].into());
        assert_eq!((started.len(), stopped.len()), (2, 0));
        let (started, stopped) =
            inventory.replace_all([container("b", "restarting"), container("c", "running")].into());
        assert_eq!(started, vec!["b", "c"]);
        assert_eq!(stopped.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), vec!["a"]);
        let mut seen = Vec::new();
        inventory.for_each(|c| seen.push(c.id.clone()));
        assert_eq!(seen, vec!["b", "c"]);
    }
}
