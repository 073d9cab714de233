//! The floor's only state, in memory: per agent, the highest event id received (the receipts of
//! its command stream carry it), the highest command sequence acknowledged, the last command
//! sequence handed out, and the sender of its open WatchCommands stream. One plain mutex guards
//! the map; it is never held across an await (sending a command is a `try_send`).

use dockflare::v1::{command, Command};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;
use tokio::sync::{mpsc, watch};

/// Commands buffered per open command stream before SendCommand refuses.
pub const COMMAND_BUFFER: usize = 64;

/// What an agent's streams share without the map's lock.
pub struct Progress {
    /// The highest event id received: the receipts' `through_event_id`.
    received: watch::Sender<u64>,
    /// The highest command sequence acknowledged by a command_result event.
    acked: AtomicU64,
}

impl Progress {
    fn new() -> Progress {
        Progress { received: watch::Sender::new(0), acked: AtomicU64::new(0) }
    }

    /// Records a received event (an older id changes nothing).
    pub fn received(&self, event_id: u64) {
        self.received.send_if_modified(|highest| {
            let newer = event_id > *highest;
            if newer {
                *highest = event_id;
            }
            newer
        });
    }

    /// Records an acknowledged command sequence.
    pub fn acked(&self, sequence: u64) {
        self.acked.fetch_max(sequence, Ordering::AcqRel);
    }

    pub fn last_event_id(&self) -> u64 {
        *self.received.borrow()
    }

    pub fn last_acked(&self) -> u64 {
        self.acked.load(Ordering::Acquire)
    }

    /// Follows the highest event id received (starting with the current one).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.received.subscribe()
    }
}

/// One agent's entry.
struct Entry {
    progress: Arc<Progress>,
    /// The last command sequence handed out (commands are numbered from 1).
    last_sequence: u64,
    /// The open command stream, if any.
    stream: Option<OpenStream>,
}

struct OpenStream {
    /// Tells this stream apart from the one that replaced it.
    generation: u64,
    sender: mpsc::Sender<Command>,
}

/// Why a command was not pushed.
#[derive(Debug)]
pub enum SendError {
    /// The agent has no open WatchCommands stream.
    NoStream,
    /// Its stream's buffer is full (it does not read).
    Full,
}

/// Every agent the floor has heard of, by id.
#[derive(Default)]
pub struct Agents {
    entries: Mutex<HashMap<String, Entry>>,
    generations: AtomicU64,
}

impl Agents {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The agent's progress, creating its entry on first contact.
    pub fn progress(&self, agent_id: &str) -> Arc<Progress> {
        entry(&mut self.lock(), agent_id).progress.clone()
    }

    /// Opens the agent's command stream, replacing (and so ending) any earlier one: its
    /// generation, the commands to stream, and its progress.
    pub fn open_stream(&self, agent_id: &str) -> (u64, mpsc::Receiver<Command>, Arc<Progress>) {
        let generation = self.generations.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = mpsc::channel(COMMAND_BUFFER);
        let mut entries = self.lock();
        let entry = entry(&mut entries, agent_id);
        entry.stream = Some(OpenStream { generation, sender });
        (generation, receiver, entry.progress.clone())
    }

    /// Forgets the agent's command stream `generation`, unless another replaced it already.
    pub fn close_stream(&self, agent_id: &str, generation: u64) {
        if let Some(entry) = self.lock().get_mut(agent_id) {
            if entry.stream.as_ref().is_some_and(|open| open.generation == generation) {
                entry.stream = None;
            }
        }
    }

    /// Numbers a command of `kind` and pushes it on the agent's open stream: its id and sequence.
    /// Numbering and pushing happen under the lock, so sequences reach the agent in order.
    pub fn send(&self, agent_id: &str, kind: command::Kind) -> Result<(String, u64), SendError> {
        let mut entries = self.lock();
        let entry = entries.get_mut(agent_id).ok_or(SendError::NoStream)?;
        let open = entry.stream.as_ref().ok_or(SendError::NoStream)?;
        let sequence = entry.last_sequence + 1;
        let id = uuid::Uuid::now_v7().hyphenated().to_string();
        let command =
            Command { id: id.clone(), sequence, created_at: Some(SystemTime::now().into()), kind: Some(kind) };
        match open.sender.try_send(command) {
            Ok(()) => {
                entry.last_sequence = sequence;
                Ok((id, sequence))
            }
            Err(mpsc::error::TrySendError::Full(_)) => Err(SendError::Full),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                entry.stream = None;
                Err(SendError::NoStream)
            }
        }
    }
}

/// The agent's entry, created on first contact.
fn entry<'a>(entries: &'a mut HashMap<String, Entry>, agent_id: &str) -> &'a mut Entry {
    entries.entry(agent_id.to_string()).or_insert_with(|| Entry {
        progress: Arc::new(Progress::new()),
        last_sequence: 0,
        stream: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dockflare::v1::Resync;

    fn resync() -> command::Kind {
        command::Kind::Resync(Resync { reason: "test".into() })
    }

    #[test]
    fn commands_are_numbered_per_agent_and_need_an_open_stream() -> Result<(), String> {
        let agents = Agents::default();
        assert!(matches!(agents.send("a", resync()), Err(SendError::NoStream)));
        let (generation, mut commands, _) = agents.open_stream("a");
        let (_, first) = agents.send("a", resync()).map_err(|e| format!("{e:?}"))?;
        let (_, second) = agents.send("a", resync()).map_err(|e| format!("{e:?}"))?;
        assert_eq!((first, second), (1, 2));
        assert_eq!(commands.try_recv().map_err(|e| e.to_string())?.sequence, 1);
        agents.close_stream("a", generation);
        assert!(matches!(agents.send("a", resync()), Err(SendError::NoStream)));
        Ok(())
    }

    #[test]
    fn a_replaced_stream_does_not_close_its_successor() {
        let agents = Agents::default();
        let (old, _old_commands, _) = agents.open_stream("a");
        let (_new, _new_commands, _) = agents.open_stream("a");
        agents.close_stream("a", old);
        assert!(agents.send("a", resync()).is_ok());
    }

    #[test]
    fn a_full_stream_refuses_without_using_a_sequence() {
        let agents = Agents::default();
        let (_, _commands, _) = agents.open_stream("a");
        for _ in 0..COMMAND_BUFFER {
            assert!(agents.send("a", resync()).is_ok());
        }
        assert!(matches!(agents.send("a", resync()), Err(SendError::Full)));
    }

    #[test]
    fn progress_keeps_the_highest_ids() {
        let progress = Progress::new();
        progress.received(3);
        progress.received(2);
        progress.acked(5);
        progress.acked(4);
        assert_eq!((progress.last_event_id(), progress.last_acked()), (3, 5));
    }
}
