//! How the rest of the master talks to the reconciler task: a bounded inbox of triggers (a
//! burst coalesces into one pass; a full inbox already holds a trigger) and run-now requests
//! that wait for the pass's report.

use super::dry_run::{Plan, ProposedContainer};
use super::PassReport;
use tokio::sync::{mpsc, oneshot};

pub(super) enum Request {
    Trigger,
    RunNow(oneshot::Sender<PassReport>),
    Plan(Vec<ProposedContainer>, oneshot::Sender<Plan>),
}

/// Talks to the reconciler task. Cheap to clone.
#[derive(Clone)]
pub struct ReconcilerHandle {
    requests: mpsc::Sender<Request>,
}

/// The receiving end of a [`ReconcilerHandle`], for [`super::Reconciler::spawn_with`].
pub struct ReconcilerInbox(pub(super) mpsc::Receiver<Request>);

impl ReconcilerHandle {
    /// A handle and the inbox its reconciler will read (the handle can be shared before the
    /// reconciler exists: the command queue and the fan-out need it first).
    pub fn channel() -> (ReconcilerHandle, ReconcilerInbox) {
        let (tx, rx) = mpsc::channel(64);
        (ReconcilerHandle { requests: tx }, ReconcilerInbox(rx))
    }

    /// Asks for a pass soon (coalesced with other requests).
    pub fn trigger(&self) {
        let _ = self.requests.try_send(Request::Trigger);
    }

    /// A dry run ([`super::dry_run`]): what a pass would change, with `proposals` in place.
    pub async fn plan(&self, proposals: Vec<ProposedContainer>) -> Option<Plan> {
        let (tx, rx) = oneshot::channel();
        self.requests.send(Request::Plan(proposals, tx)).await.ok()?;
        rx.await.ok()
    }

    /// Runs a pass now and returns what it changed.
    pub async fn run_now(&self) -> Option<PassReport> {
        let (tx, rx) = oneshot::channel();
        self.requests.send(Request::RunNow(tx)).await.ok()?;
        rx.await.ok()
    }
}
