//! Events the master has not confirmed yet. Every event gets the next id
//! and waits here until an EventsReceipt (or the ReportEvents response, or
//! the next Register) says the master stored it; after a reconnect the
//! whole backlog is sent again, and the master ignores ids it already has.
//!
//! The backlog is bounded. When it overflows, the oldest events are dropped
//! and a full status_report follows on the next connection: a snapshot
//! makes the lost container events irrelevant (commands whose results were
//! dropped are redelivered, and the applier re-acknowledges them).
//!
//! A status report is kept as a marker, not as a copy of every container: it
//! is built from the [`Inventory`] each time it is sent, so it says what the
//! host runs when the master reads it (the events after it change what it
//! says, in order, as they would after a report built earlier). A new marker
//! replaces the older ones still pending: the master ignores missing ids, and
//! a report supersedes every report before it. With a thousand containers,
//! the backlog after a reconnect holds no copy of them, and a send holds one.

use crate::inventory::Inventory;

use dockflare::v1::{agent_event::Event, AgentEvent, StatusReport};
use prost_types::Timestamp;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

/// Events kept for resending, at most.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// A pending event (boxed: the queue's slots stay small, and so does the capacity it keeps after
/// a burst), or the place of a status report built when it is sent.
#[derive(Debug)]
enum Entry {
    Event(Box<AgentEvent>),
    StatusReport { event_id: u64, occurred_at: Timestamp },
}

impl Entry {
    fn id(&self) -> u64 {
        match self {
            Entry::Event(event) => event.event_id,
            Entry::StatusReport { event_id, .. } => *event_id,
        }
    }

    fn set_id(&mut self, id: u64) {
        match self {
            Entry::Event(event) => event.event_id = id,
            Entry::StatusReport { event_id, .. } => *event_id = id,
        }
    }

    /// The event to send: a status report is built from `inventory` now.
    fn materialize(&self, inventory: &Inventory) -> AgentEvent {
        match self {
            Entry::Event(event) => AgentEvent::clone(event),
            Entry::StatusReport { event_id, occurred_at } => AgentEvent {
                event_id: *event_id,
                occurred_at: Some(*occurred_at),
                event: Some(Event::StatusReport(StatusReport { containers: inventory.snapshot() })),
            },
        }
    }
}

#[derive(Debug)]
struct State {
    next_id: u64,
    /// Ids are provisional until the first Register tells where to continue.
    numbered: bool,
    pending: VecDeque<Entry>,
    capacity: usize,
    dropped: u64,
    confirmed: u64,
}

/// The shared outbox. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Outbox {
    state: Arc<Mutex<State>>,
    added: Arc<Notify>,
    /// What status reports are built from.
    inventory: Inventory,
}

impl Outbox {
    pub fn new(capacity: usize, inventory: Inventory) -> Outbox {
        Outbox {
            inventory,
            state: Arc::new(Mutex::new(State {
                next_id: 1,
                numbered: false,
                pending: VecDeque::new(),
                capacity: capacity.max(1),
                dropped: 0,
                confirmed: 0,
            })),
            added: Arc::new(Notify::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change below is complete before the guard drops; a poisoned
        // lock still holds a consistent queue.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds an event; returns its id. A status report is better pushed with
    /// [`Outbox::push_status_report`], which keeps no copy of it.
    pub fn push(&self, event: Event) -> u64 {
        self.add(|event_id, occurred_at| {
            Entry::Event(Box::new(AgentEvent { event_id, occurred_at: Some(occurred_at), event: Some(event) }))
        })
    }

    /// Adds a status report of every container in the inventory, built when it is sent, in
    /// place of any older one still pending; returns its id.
    pub fn push_status_report(&self) -> u64 {
        self.add(|event_id, occurred_at| Entry::StatusReport { event_id, occurred_at })
    }

    fn add(&self, entry: impl FnOnce(u64, Timestamp) -> Entry) -> u64 {
        let now = time::OffsetDateTime::now_utc();
        let occurred_at = Timestamp { seconds: now.unix_timestamp(), nanos: now.nanosecond() as i32 };
        let id = {
            let mut state = self.lock();
            let id = state.next_id;
            state.next_id += 1;
            let entry = entry(id, occurred_at);
            if matches!(entry, Entry::StatusReport { .. }) {
                state.pending.retain(|pending| !matches!(pending, Entry::StatusReport { .. }));
            }
            state.pending.push_back(entry);
            while state.pending.len() > state.capacity {
                state.pending.pop_front();
                state.dropped += 1;
                metrics::counter!("dockflare_agent_outbox_dropped_total").increment(1);
            }
            id
        };
        self.added.notify_waiters();
        id
    }

    /// The master stored everything up to `through`.
    pub fn confirm(&self, through: u64) {
        let mut state = self.lock();
        while state.pending.front().is_some_and(|entry| entry.id() <= through) {
            state.pending.pop_front();
        }
        state.confirmed = state.confirmed.max(through);
    }

    /// After Register: the master has stored up to `last_event_id`. On the
    /// first Register of this process, renumber what is pending to follow it.
    pub fn resume_after(&self, last_event_id: u64) {
        let mut state = self.lock();
        if !state.numbered {
            state.numbered = true;
            let mut id = last_event_id;
            for entry in state.pending.iter_mut() {
                id += 1;
                entry.set_id(id);
            }
            state.next_id = id + 1;
            state.confirmed = last_event_id;
        } else {
            state.next_id = state.next_id.max(last_event_id + 1);
            drop(state);
            self.confirm(last_event_id);
        }
    }

    /// Up to `limit` pending events with an id above `after`, in order (a status report built
    /// from the inventory now).
    pub fn pending_after(&self, after: u64, limit: usize) -> Vec<AgentEvent> {
        let state = self.lock();
        // Lock order: the outbox, then the inventory (the inventory never takes the outbox's).
        state
            .pending
            .iter()
            .filter(|entry| entry.id() > after)
            .take(limit)
            .map(|e| e.materialize(&self.inventory))
            .collect()
    }

    /// Waits until an event is pushed (register interest before checking!).
    pub fn added(&self) -> Arc<Notify> {
        self.added.clone()
    }

    /// Events dropped by overflow since the last call (and resets the count).
    pub fn take_dropped(&self) -> u64 {
        std::mem::take(&mut self.lock().dropped)
    }

    /// Highest event id the master confirmed.
    pub fn confirmed(&self) -> u64 {
        self.lock().confirmed
    }

    pub fn len(&self) -> usize {
        self.lock().pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dockflare::v1::Heartbeat;

    fn heartbeat() -> Event {
        Event::Heartbeat(Heartbeat::default())
    }

    #[test]
    fn first_register_renumbers_provisional_events_after_the_masters_last_id() {
        let outbox = Outbox::new(10, Inventory::default());
        outbox.push(heartbeat());
        outbox.push(heartbeat());
        outbox.resume_after(41);
        let ids: Vec<u64> = outbox.pending_after(0, 10).iter().map(|e| e.event_id).collect();
        assert_eq!(ids, vec![42, 43]);
        assert_eq!(outbox.push(heartbeat()), 44);
    }

    #[test]
    fn receipts_and_later_registers_drop_confirmed_events() {
        let outbox = Outbox::new(10, Inventory::default());
        outbox.resume_after(0);
        for _ in 0..5 {
            outbox.push(heartbeat());
        }
        outbox.confirm(2);
        assert_eq!(outbox.pending_after(0, 10).first().map(|e| e.event_id), Some(3));
        outbox.resume_after(4);
        assert_eq!(outbox.pending_after(0, 10).iter().map(|e| e.event_id).collect::<Vec<_>>(), vec![5]);
        assert_eq!(outbox.pending_after(5, 10).len(), 0);
        assert_eq!(outbox.confirmed(), 4);
    }

    #[test]
    fn a_status_report_is_built_when_sent_and_replaces_older_ones() {
        let inventory = Inventory::default();
        let outbox = Outbox::new(10, inventory.clone());
        outbox.resume_after(0);
        outbox.push_status_report();
        outbox.push(heartbeat());
        inventory.upsert(dockflare::v1::Container { id: "c1".into(), ..Default::default() });
        let sent = outbox.pending_after(0, 10);
        let Some(Event::StatusReport(report)) = &sent[0].event else { panic!("not a report: {sent:?}") };
        assert_eq!(report.containers.len(), 1, "built from the inventory when sent");
        assert_eq!(outbox.push_status_report(), 3);
        let ids: Vec<u64> = outbox.pending_after(0, 10).iter().map(|e| e.event_id).collect();
        assert_eq!(ids, vec![2, 3], "the newer report replaced the older one");
        outbox.confirm(3);
        assert!(outbox.is_empty());
    }

    #[test]
    fn overflow_drops_the_oldest_and_counts_them() {
        let outbox = Outbox::new(3, Inventory::default());
        outbox.resume_after(0);
        for _ in 0..5 {
            outbox.push(heartbeat());
        }
        assert_eq!(outbox.pending_after(0, 10).iter().map(|e| e.event_id).collect::<Vec<_>>(), vec![3, 4, 5]);
        assert_eq!(outbox.take_dropped(), 2);
        assert_eq!(outbox.take_dropped(), 0);
    }
}
