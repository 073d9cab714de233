//! The master's long-lived tasks, owned: each is spawned through a
//! [`Supervisor`] under a name, and [`Supervisor::first_exit`] yields the
//! first one that ends — returned, or panicked — so that the process can log
//! why and exit non-zero (systemd, Docker or Swarm restart it) instead of
//! serving half-alive: triggers that reach no reconciler, events that reach
//! no writer. Per-connection tasks (handshakes, command pumps) are not here:
//! they end all the time.
//!
//! For tests, one named task can be made to fail on purpose once the master listens
//! ([`Supervisor::inject_fault`], the hidden `--test-fault-task NAME` flag): the only way to
//! show, against the real binary, that a dead task ends the process.

use futures::FutureExt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{mpsc, watch};

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
    /// A task to fail on purpose (tests), and when: once the value turns true.
    fault: Option<(String, watch::Receiver<bool>)>,
    /// The first task that ended unexpectedly, in words (`/healthz` says it until the exit).
    failure: Arc<Mutex<Option<String>>>,
}

/// Where exits arrive (one per supervisor, held by whoever decides to stop the process).
pub struct Exits(mpsc::UnboundedReceiver<Exit>);

impl Supervisor {
    pub fn new() -> (Supervisor, Exits) {
        let (exits, rx) = mpsc::unbounded_channel();
        (Supervisor { exits, stopping: Arc::default(), fault: None, failure: Arc::default() }, Exits(rx))
    }

    /// The first task that ended unexpectedly, if one has.
    pub fn first_failure(&self) -> Option<String> {
        self.failure.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Tests only: the task named `task`, spawned from now on, panics once `fire` turns true.
    pub fn inject_fault(&mut self, task: String, fire: watch::Receiver<bool>) {
        self.fault = Some((task, fire));
    }

    /// The process is shutting down: from now on, tasks that end are not reported.
    pub fn stopping(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Spawns `task` under `name`; its end, however it comes, is reported.
    pub fn spawn(&self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        tokio::spawn(self.supervised(name, task));
    }

    /// Like [`Supervisor::spawn`], on an OS thread of its own with a single-threaded runtime:
    /// for a task whose every step waits for another thread (the database's) and that must not
    /// queue behind thousands of ready stream tasks for each one. I/O is shared both ways (a
    /// pool's connection belongs to the runtime that opened it), so the thread's runtime keeps
    /// running after the task ends, until the process exits.
    pub fn spawn_on_own_thread(
        &self,
        name: &'static str,
        task: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let supervised = self.supervised(name, task);
        std::thread::Builder::new().name(name.replace(' ', "-")).spawn(move || {
            runtime.block_on(async move {
                supervised.await;
                std::future::pending::<()>().await
            })
        })?;
        Ok(())
    }

    /// `task` with the fault injection, and its end reported.
    fn supervised(
        &self,
        name: &'static str,
        task: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = ()> + Send + 'static {
        let (exits, stopping, failure) = (self.exits.clone(), self.stopping.clone(), self.failure.clone());
        let fault = self.fault.as_ref().filter(|(task, _)| task == name).map(|(_, fire)| fire.clone());
        let task = async move {
            let Some(mut fire) = fault else { return task.await };
            tokio::select! {
                () = task => {}
                _ = fire.wait_for(|fire| *fire) => panic!("a fault injected by --test-fault-task {name}"),
            }
        };
        async move {
            let panic = AssertUnwindSafe(task).catch_unwind().await.err().map(|payload| {
                payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(no message)".to_string())
            });
            if !stopping.load(Ordering::SeqCst) {
                let exit = Exit { task: name, panic };
                failure.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert_with(|| exit.to_string());
                let _ = exits.send(exit);
            }
        }
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

    #[tokio::test]
    async fn an_injected_fault_fails_only_the_named_task_and_only_once_fired() {
        let (mut supervisor, mut exits) = Supervisor::new();
        let (fire, armed) = watch::channel(false);
        supervisor.inject_fault("reconciler".into(), armed);
        supervisor.spawn("reconciler", std::future::pending());
        supervisor.spawn("liveness", std::future::pending());
        let early = tokio::time::timeout(std::time::Duration::from_millis(100), exits.first_exit()).await;
        assert!(early.is_err(), "the fault fired before it was armed");
        fire.send_replace(true);
        let exit = exits.first_exit().await;
        assert_eq!(exit.task, "reconciler");
        assert_eq!(exit.panic.as_deref(), Some("a fault injected by --test-fault-task reconciler"));
    }

    #[tokio::test]
    async fn a_task_on_its_own_thread_runs_there_and_its_end_is_reported() -> std::io::Result<()> {
        let (supervisor, mut exits) = Supervisor::new();
        let (name_tx, name_rx) = tokio::sync::oneshot::channel();
        supervisor.spawn_on_own_thread("event writer", async move {
            let _ = name_tx.send(std::thread::current().name().map(str::to_string));
            panic!("the writer lost its database");
        })?;
        let exit = exits.first_exit().await;
        assert_eq!(exit.to_string(), "the event writer task panicked: the writer lost its database");
        assert_eq!(name_rx.await.ok().flatten().as_deref(), Some("event-writer"));
        Ok(())
    }
}
