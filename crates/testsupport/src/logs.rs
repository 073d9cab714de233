//! What a child process writes to stderr: drained on a thread for its whole life (the pipe never
//! fills), kept as lines, searched as JSON log records, waited for with a deadline.

use anyhow::{anyhow, bail, Context, Result};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Lines a process wrote to stderr, shared with the draining thread.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<String>>>, Arc<AtomicBool>);

impl Logs {
    /// Reads the child's stderr into these logs until it closes.
    pub fn drain(&self, child: &mut Child) -> Result<()> {
        self.drain_copying(child, None)
    }

    /// [`Logs::drain`], appending every line to `copy` as well.
    pub fn drain_copying(&self, child: &mut Child, copy: Option<&Path>) -> Result<()> {
        use std::io::Write;
        let stderr = child.stderr.take().ok_or_else(|| anyhow!("no stderr pipe"))?;
        let mut copy = match copy {
            Some(path) => Some(std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?),
            None => None,
        };
        let (sink, closed) = (self.0.clone(), self.1.clone());
        closed.store(false, Ordering::SeqCst);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(file) = &mut copy {
                    if writeln!(file, "{line}").is_err() {
                        copy = None;
                    }
                }
                sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
            closed.store(true, Ordering::SeqCst);
        });
        Ok(())
    }

    /// Waits (up to `timeout`) until the pipe has closed and every line is read: after a child
    /// exits, its last words are still in the pipe for a moment.
    pub async fn wait_closed(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.1.load(Ordering::SeqCst) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// [`Logs::wait_closed`] for synchronous callers.
    pub fn wait_closed_blocking(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.1.load(Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The first line `find` maps to a value.
    pub fn find_map<T>(&self, mut find: impl FnMut(&str) -> Option<T>) -> Option<T> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).iter().find_map(|line| find(line))
    }

    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Parsed JSON log records whose message is `message`.
    pub fn records(&self, message: &str) -> Vec<serde_json::Value> {
        self.lines()
            .iter()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|record| record.get("message").and_then(|m| m.as_str()) == Some(message))
            .collect()
    }

    pub fn count(&self, message: &str) -> usize {
        self.records(message).len()
    }

    pub fn text(&self) -> String {
        self.lines().join("\n")
    }

    /// Waits until a record with `message` appears.
    pub async fn wait_for(&self, message: &str, timeout: Duration) -> Result<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(record) = self.records(message).into_iter().next_back() {
                return Ok(record);
            }
            if Instant::now() > deadline {
                bail!("no log record {message:?} within {timeout:?}; log:\n{}", tail(&self.text(), 40));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Removes the environment variables of the test runner that would configure a DockFlare child
/// (DOCKFLARE_*, AGENT_*): every child gets exactly the flags its test gives.
pub fn strip_dockflare_env(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        let name_text = name.to_string_lossy();
        if name_text.starts_with("DOCKFLARE_") || name_text.starts_with("AGENT_") {
            command.env_remove(&name);
        }
    }
}
