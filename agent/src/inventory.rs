//! What the agent currently sees on its Docker host: the DockFlare-enabled
//! containers, as the next status_report will list them. The Docker watcher
//! publishes here; the session and the applier read snapshots.

use dockflare::v1::Container;
use std::sync::Arc;
use tokio::sync::watch;

/// The shared view of enabled containers. Cheap to clone.
#[derive(Clone)]
pub struct Inventory {
    containers: Arc<watch::Sender<Vec<Container>>>,
}

impl Default for Inventory {
    fn default() -> Self {
        Inventory { containers: Arc::new(watch::Sender::new(Vec::new())) }
    }
}

impl Inventory {
    /// Every enabled container now.
    pub fn snapshot(&self) -> Vec<Container> {
        self.containers.borrow().clone()
    }

    /// Replaces the whole view.
    pub fn replace(&self, containers: Vec<Container>) {
        self.containers.send_replace(containers);
    }

    pub fn len(&self) -> usize {
        self.containers.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
