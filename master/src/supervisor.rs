//! The master's long-lived tasks, owned: each is spawned through a
//! [`Supervisor`] under a name, and [`Supervisor::first_exit`] yields the
//! first one that ends — returned, or panicked — so that the process can log
//! why and exit non-zero (systemd, Docker or Swarm restart it) instead of
//! serving half-alive: triggers that reach no reconciler, events that reach
//! no writer. Per-connection tasks (handshakes, command pumps) are not here:
//! they end all the time.

use futures::FutureExt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// A task that ended, and how.
#[derive(Debug)]
pub struct Exit {
    pub task: &'static str,
    /// `None`: it returned; `Some`: it panicked, with the panic's message.
    pub panic: Option<String>,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.panic {
            None => write!(f, "the {} task stopped", self.task),
            Some(message) => write!(f, "the {} task panicked: {message}", self.task),
        }
    }
}

/// Spawns critical tasks; cloning shares it.
#[derive(Clone)]
pub struct Supervisor {
    exits: mpsc::UnboundedSender<Exit>,
    /// Set when the process is shutting down: tasks end then on purpose, and are not reported.
    stopping: Arc<AtomicBool>,
}

/// Where exits arrive (one per supervisor, held by whoever decides to stop the process).
pub struct Exits(mpsc::UnboundedReceiver<Exit>);

impl Supervisor {
    pub fn new() -> (Supervisor, Exits) {
        let (exits, rx) = mpsc::unbounded_channel();
        (Supervisor { exits, stopping: Arc::default() }, Exits(rx))
    }

    /// The process is shutting down: from now on, tasks that end are not reported.
    pub fn stopping(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Spawns `task` under `name`; its end, however it comes, is reported.
    pub fn spawn(&self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        let (exits, stopping) = (self.exits.clone(), self.stopping.clone());
        tokio::spawn(async move {
            let panic = AssertUnwindSafe(task).catch_unwind().await.err().map(|payload| {
                payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(no message)".to_string())
            });
            if !stopping.load(Ordering::SeqCst) {
                let _ = exits.send(Exit { task: name, panic });
            }
        });
    }
}

impl Exits {
    /// The first critical task to end (pending for ever while none has).
    pub async fn first_exit(&mut self) -> Exit {
        match self.0.recv().await {
            Some(exit) => exit,
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_ended_or_panicked_task_is_reported_by_name() {
        let (supervisor, mut exits) = Supervisor::new();
        supervisor.spawn("forever", std::future::pending());
        supervisor.spawn("returns", async {});
        let exit = exits.first_exit().await;
        assert_eq!((exit.task, exit.panic.is_none()), ("returns", true));
        supervisor.spawn("panics", async { panic!("the writer lost its database") });
        let exit = exits.first_exit().await;
        assert_eq!(exit.task, "panics");
        assert_eq!(exit.to_string(), "the panics task panicked: the writer lost its database");
        // Shutting down: tasks end on purpose, and nothing is reported.
        supervisor.stopping();
        supervisor.spawn("drained", async {});
        let quiet = tokio::time::timeout(std::time::Duration::from_millis(200), exits.first_exit()).await;
        assert!(quiet.is_err(), "an exit during shutdown was reported");
    }
}
