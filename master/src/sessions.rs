//! Live agent sessions on this master: who has a command stream or an event
//! stream open, how to wake a command stream when a command is queued, where
//! event receipts are published, and how streams are ended (a newer stream
//! of the same agent supersedes the older; revocation ends both).
//!
//! It also keeps the record of each agent that registered in the last
//! [`REGISTERED_FOR`], for the two streams the agent opens next (a fleet
//! reconnecting at once would otherwise read every agent twice more). A
//! revocation forgets the agent's record, and a record read before any
//! revocation is not kept after it ([`Sessions::revocation_mark`]).
//!
//! A command stream is pulled by the connection (it is the response body, with no task or
//! channel of its own), so a stream whose agent stops reading is simply not polled. Each one
//! keeps a [`CommandWake`]: queued commands wake it and mark it wanted, its pump notes when it
//! was last polled, and [`Sessions::end_unread_command_streams`] ends those wanted and not
//! polled for longer than the send timeout.
//!
//! One mutex guards a map of small entries; it is held only to look up or
//! change an entry, never across an await.

use crate::model::AgentRecord;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};

/// How long a registered agent's record serves its stream opens.
pub const REGISTERED_FOR: Duration = Duration::from_secs(10);
/// Records kept at most (older ones are dropped first when there are more).
const REGISTERED_MAX: usize = 65_536;

/// Why the master ended a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// A newer stream of the same kind for the same agent took over.
    Superseded,
    /// An operator revoked the agent.
    Revoked,
    /// This master is shutting down (the agent reconnects, to another master if it has one).
    ShuttingDown,
    /// Commands waited longer than the send timeout for the agent to read its stream.
    NotReading,
}

/// How a command stream is woken, and whether it keeps up: shared by the session (which wakes
/// it) and the stream's pump (which notes its progress).
#[derive(Default)]
pub struct CommandWake {
    notify: Notify,
    /// Set when a command is queued or the pump has more to send; cleared when the pump has
    /// sent everything and waits.
    wanted: AtomicBool,
    /// When the pump was last polled ([`monotonic_millis`]).
    polled_at: AtomicU64,
}

impl CommandWake {
    /// Waits until a command is queued (a wake-up given while nobody waited is kept).
    pub async fn queued(&self) {
        self.notify.notified().await
    }

    /// The pump was polled: it is making progress.
    pub fn polled(&self) {
        self.polled_at.store(monotonic_millis(), Ordering::Relaxed);
    }

    /// The pump has something to send (or may have: it is reading the log).
    pub fn busy(&self) {
        self.wanted.store(true, Ordering::Relaxed);
    }

    /// The pump has sent everything and waits.
    pub fn idle(&self) {
        self.wanted.store(false, Ordering::Relaxed);
    }

    fn wake(&self) {
        self.wanted.store(true, Ordering::Relaxed);
        self.notify.notify_one();
    }

    /// Wanted and not polled for longer than `limit` (milliseconds) as of `now`.
    fn unread_for(&self, now: u64, limit: u64) -> bool {
        self.wanted.load(Ordering::Relaxed) && now.saturating_sub(self.polled_at.load(Ordering::Relaxed)) > limit
    }
}

/// Milliseconds on a monotonic clock (since the first call in this process).
fn monotonic_millis() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    u64::try_from(START.get_or_init(Instant::now).elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The two long-lived streams an agent holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    Commands,
    Events,
}

struct Attachment {
    generation: u64,
    end: watch::Sender<Option<EndReason>>,
}

struct Entry {
    commands_queued: Arc<CommandWake>,
    receipts: watch::Sender<u64>,
    commands: Option<Attachment>,
    events: Option<Attachment>,
}

impl Entry {
    fn slot(&mut self, kind: StreamKind) -> &mut Option<Attachment> {
        match kind {
            StreamKind::Commands => &mut self.commands,
            StreamKind::Events => &mut self.events,
        }
    }
}

/// The registry of live sessions. Cheap to clone.
#[derive(Clone, Default)]
pub struct Sessions {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    next_generation: u64,
    /// Agents that registered lately: their record and when.
    registered: HashMap<String, (AgentRecord, Instant)>,
    /// The same agents in the order they registered (the oldest are forgotten first).
    registered_order: VecDeque<(String, Instant)>,
    /// Revocations so far (a record read before one is not kept).
    revocations: u64,
}

/// A stream's hold on its session. Dropping it detaches the stream.
pub struct Attached {
    sessions: Sessions,
    agent_id: String,
    kind: StreamKind,
    generation: u64,
    /// Becomes `Some` when the master ends this stream.
    pub end: watch::Receiver<Option<EndReason>>,
    /// Woken when a command is queued for the agent (command streams).
    pub commands_queued: Arc<CommandWake>,
    /// The highest event id stored for the agent.
    pub receipts: watch::Receiver<u64>,
}

impl Sessions {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave an entry half-written
        // (every change is a single insert or assignment), so a poisoned
        // lock is still consistent.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Attaches a stream, ending the agent's previous stream of that kind.
    /// `stored_event_id` seeds the receipt channel for a new entry.
    pub fn attach(&self, agent_id: &str, kind: StreamKind, stored_event_id: u64) -> Attached {
        let mut inner = self.lock();
        inner.next_generation += 1;
        let generation = inner.next_generation;
        let entry = inner.entries.entry(agent_id.to_string()).or_insert_with(|| Entry {
            commands_queued: Arc::new(CommandWake::default()),
            receipts: watch::Sender::new(stored_event_id),
            commands: None,
            events: None,
        });
        if kind == StreamKind::Commands {
            // A new stream counts as polled now: its first poll may come a moment later.
            entry.commands_queued.polled();
        }
        let (end_tx, end_rx) = watch::channel(None);
        if let Some(previous) = entry.slot(kind).replace(Attachment { generation, end: end_tx }) {
            let _ = previous.end.send(Some(EndReason::Superseded));
        }
        Attached {
            sessions: self.clone(),
            agent_id: agent_id.to_string(),
            kind,
            generation,
            end: end_rx,
            commands_queued: entry.commands_queued.clone(),
            receipts: entry.receipts.subscribe(),
        }
    }

    fn detach(&self, agent_id: &str, kind: StreamKind, generation: u64) {
        let mut inner = self.lock();
        let Some(entry) = inner.entries.get_mut(agent_id) else { return };
        if entry.slot(kind).as_ref().is_some_and(|a| a.generation == generation) {
            *entry.slot(kind) = None;
        }
        if entry.commands.is_none() && entry.events.is_none() {
            inner.entries.remove(agent_id);
        }
    }

    /// Wakes the agent's command stream, if it has one here.
    pub fn notify_commands(&self, agent_id: &str) {
        if let Some(entry) = self.lock().entries.get(agent_id) {
            entry.commands_queued.wake();
        }
    }

    /// Wakes every command stream here (after missed notifications).
    pub fn notify_all_commands(&self) {
        for entry in self.lock().entries.values() {
            entry.commands_queued.wake();
        }
    }

    /// Runs [`Sessions::end_unread_command_streams`] a few times per `limit`, for ever, logging
    /// each stream it ends.
    pub async fn end_unread_command_streams_every(self, limit: Duration) {
        let mut tick = tokio::time::interval((limit / 4).clamp(Duration::from_millis(100), Duration::from_secs(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            for agent_id in self.end_unread_command_streams(limit) {
                tracing::warn!(
                    message = "Agent is not reading its command stream; closing it.",
                    agent = %agent_id,
                    waited_longer_than = ?limit,
                );
            }
        }
    }

    /// Ends the command streams that had something to send and were not polled for longer than
    /// `limit` (their agent does not read them); returns those agents.
    pub fn end_unread_command_streams(&self, limit: Duration) -> Vec<String> {
        self.end_command_streams_unread_at(monotonic_millis(), u64::try_from(limit.as_millis()).unwrap_or(u64::MAX))
    }

    /// [`Sessions::end_unread_command_streams`] as of `now`, `limit` in milliseconds.
    fn end_command_streams_unread_at(&self, now: u64, limit: u64) -> Vec<String> {
        let mut ended = Vec::new();
        for (agent_id, entry) in self.lock().entries.iter_mut() {
            if entry.commands.is_some() && entry.commands_queued.unread_for(now, limit) {
                if let Some(attachment) = entry.commands.take() {
                    let _ = attachment.end.send(Some(EndReason::NotReading));
                    ended.push(agent_id.clone());
                }
            }
        }
        ended
    }

    /// Publishes that the agent's events up to `event_id` are stored.
    pub fn publish_receipt(&self, agent_id: &str, event_id: u64) {
        if let Some(entry) = self.lock().entries.get(agent_id) {
            entry.receipts.send_if_modified(|stored| {
                let advanced = event_id > *stored;
                *stored = (*stored).max(event_id);
                advanced
            });
        }
    }

    /// A mark to take before reading an agent for [`Sessions::remember_registered`].
    pub fn revocation_mark(&self) -> u64 {
        self.lock().revocations
    }

    /// Keeps the record an agent registered with, for its stream opens — unless an agent was
    /// revoked since `mark` (the record may predate it).
    pub fn remember_registered(&self, record: &AgentRecord, mark: u64) {
        let mut inner = self.lock();
        if inner.revocations != mark {
            return;
        }
        let now = Instant::now();
        inner.forget_registered_before(now);
        if inner.registered.len() >= REGISTERED_MAX {
            inner.registered.clear();
            inner.registered_order.clear();
        }
        inner.registered.insert(record.id.clone(), (record.clone(), now));
        inner.registered_order.push_back((record.id.clone(), now));
    }

    /// The record the agent registered with, if that was in the last [`REGISTERED_FOR`] and it
    /// was not revoked since.
    pub fn recently_registered(&self, agent_id: &str) -> Option<AgentRecord> {
        let mut inner = self.lock();
        inner.forget_registered_before(Instant::now());
        let (record, at) = inner.registered.get(agent_id)?;
        (at.elapsed() < REGISTERED_FOR).then(|| record.clone())
    }

    /// Ends every stream of a revoked agent (and forgets its registration).
    pub fn revoke(&self, agent_id: &str) {
        let mut inner = self.lock();
        inner.revocations += 1;
        inner.registered.remove(agent_id);
        if let Some(entry) = inner.entries.get_mut(agent_id) {
            for attachment in [entry.commands.take(), entry.events.take()].into_iter().flatten() {
                let _ = attachment.end.send(Some(EndReason::Revoked));
            }
        }
    }

    /// Ends every stream on this master (it is shutting down).
    pub fn end_all(&self) {
        for entry in self.lock().entries.values_mut() {
            for attachment in [entry.commands.take(), entry.events.take()].into_iter().flatten() {
                let _ = attachment.end.send(Some(EndReason::ShuttingDown));
            }
        }
    }

    /// Whether the agent has a command stream open on this master.
    pub fn is_connected(&self, agent_id: &str) -> bool {
        self.lock().entries.get(agent_id).is_some_and(|entry| entry.commands.is_some())
    }

    /// Number of agents with a command stream open here.
    pub fn connected_count(&self) -> usize {
        self.lock().entries.values().filter(|entry| entry.commands.is_some()).count()
    }
}

impl Inner {
    /// Forgets the records older than [`REGISTERED_FOR`] (a fleet's records do not stay once
    /// its streams are open).
    fn forget_registered_before(&mut self, now: Instant) {
        while let Some((agent_id, at)) = self.registered_order.front() {
            if now.duration_since(*at) < REGISTERED_FOR {
                break;
            }
            // A newer registration of the same agent keeps its record.
            if self.registered.get(agent_id).is_some_and(|(_, latest)| latest == at) {
                self.registered.remove(agent_id);
            }
            self.registered_order.pop_front();
        }
        if self.registered.is_empty() {
            self.registered.shrink_to(0);
            self.registered_order.shrink_to(0);
        }
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        self.sessions.detach(&self.agent_id, self.kind, self.generation);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newer_stream_supersedes_the_older_and_the_older_cannot_detach_it() {
        let sessions = Sessions::default();
        let first = sessions.attach("a", StreamKind::Commands, 0);
        let second = sessions.attach("a", StreamKind::Commands, 0);
        assert_eq!(*first.end.borrow(), Some(EndReason::Superseded));
        assert_eq!(*second.end.borrow(), None);
        drop(first);
        assert!(sessions.is_connected("a"));
        drop(second);
        assert!(!sessions.is_connected("a"));
        assert_eq!(sessions.connected_count(), 0);
    }

    #[test]
    fn a_registration_serves_the_stream_opens_until_a_revocation() {
        let sessions = Sessions::default();
        let record = crate::reconcile::swarms::tests::agent("a", "standalone", "", "n1", "", &[]);
        let mark = sessions.revocation_mark();
        sessions.remember_registered(&record, mark);
        assert_eq!(sessions.recently_registered("a"), Some(record.clone()));
        assert_eq!(sessions.recently_registered("b"), None);
        sessions.revoke("a");
        assert_eq!(sessions.recently_registered("a"), None, "a revocation forgets it");

        // A record read before a revocation (of any agent) is not kept after it.
        let mark = sessions.revocation_mark();
        sessions.revoke("someone-else");
        sessions.remember_registered(&record, mark);
        assert_eq!(sessions.recently_registered("a"), None);
    }

    #[test]
    fn revocation_ends_both_streams() {
        let sessions = Sessions::default();
        let commands = sessions.attach("a", StreamKind::Commands, 0);
        let events = sessions.attach("a", StreamKind::Events, 0);
        let other = sessions.attach("b", StreamKind::Commands, 0);
        sessions.revoke("a");
        assert_eq!(*commands.end.borrow(), Some(EndReason::Revoked));
        assert_eq!(*events.end.borrow(), Some(EndReason::Revoked));
        assert_eq!(*other.end.borrow(), None);
    }

    #[test]
    fn a_stream_is_unread_only_while_wanted_and_not_polled() {
        let wake = CommandWake::default();
        wake.polled_at.store(100, Ordering::Relaxed);
        assert!(!wake.unread_for(10_000, 50), "nothing to send: never unread");
        wake.wake();
        assert!(wake.unread_for(200, 50));
        assert!(!wake.unread_for(140, 50), "polled lately");
        wake.idle();
        assert!(!wake.unread_for(10_000, 50), "everything sent");
        wake.busy();
        assert!(wake.unread_for(10_000, 50), "mid-page, not polled");
    }

    #[test]
    fn only_the_unread_command_stream_is_ended_and_detached() {
        let sessions = Sessions::default();
        let stuck = sessions.attach("stuck", StreamKind::Commands, 0);
        let idle = sessions.attach("idle", StreamKind::Commands, 0);
        let reading = sessions.attach("reading", StreamKind::Commands, 0);
        let events = sessions.attach("stuck", StreamKind::Events, 0);
        stuck.commands_queued.polled_at.store(1_000, Ordering::Relaxed);
        idle.commands_queued.polled_at.store(1_000, Ordering::Relaxed);
        reading.commands_queued.polled_at.store(9_990, Ordering::Relaxed);
        sessions.notify_commands("stuck");
        sessions.notify_commands("reading");

        assert_eq!(sessions.end_command_streams_unread_at(10_000, 5_000), vec!["stuck".to_string()]);
        assert_eq!(*stuck.end.borrow(), Some(EndReason::NotReading));
        assert_eq!(*idle.end.borrow(), None);
        assert_eq!(*reading.end.borrow(), None);
        assert_eq!(*events.end.borrow(), None, "the event stream goes on");
        assert!(!sessions.is_connected("stuck"), "a new command stream is welcome");
        assert!(sessions.end_command_streams_unread_at(10_000, 5_000).is_empty(), "ended once");
    }

    #[test]
    fn registrations_are_forgotten_once_old() {
        let sessions = Sessions::default();
        let first = crate::reconcile::swarms::tests::agent("a", "standalone", "", "n1", "", &[]);
        let second = crate::reconcile::swarms::tests::agent("b", "standalone", "", "n2", "", &[]);
        let mark = sessions.revocation_mark();
        sessions.remember_registered(&first, mark);
        sessions.remember_registered(&second, mark);
        sessions.remember_registered(&first, mark); // again: one record, the newest
        assert_eq!(sessions.lock().registered.len(), 2);
        sessions.lock().forget_registered_before(Instant::now() + REGISTERED_FOR);
        let inner = sessions.lock();
        assert!(inner.registered.is_empty() && inner.registered_order.is_empty(), "nothing kept past its time");
    }

    #[test]
    fn receipts_only_move_forward() {
        let sessions = Sessions::default();
        let events = sessions.attach("a", StreamKind::Events, 5);
        sessions.publish_receipt("a", 9);
        sessions.publish_receipt("a", 7);
        assert_eq!(*events.receipts.borrow(), 9);
    }
}
