//! Events the master has not confirmed yet. Every event gets the next id
//! and waits here until an EventsReceipt (or the ReportEvents response, or
//! the next Register) says the master stored it; after a reconnect the
//! whole backlog is sent again, and the master ignores ids it already has.
//!
//! The backlog is bounded. When it overflows, the oldest events are dropped
//! and a full status_report follows on the next connection: a snapshot
//! makes the lost container events irrelevant (commands whose results were
//! dropped are redelivered, and the applier re-acknowledges them).

use dockflare::v1::{agent_event::Event, AgentEvent};
use prost_types::Timestamp;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

/// Events kept for resending, at most.
pub const DEFAULT_CAPACITY: usize = 10_000;

#[derive(Debug)]
struct State {
    next_id: u64,
    /// Ids are provisional until the first Register tells where to continue.
    numbered: bool,
    pending: VecDeque<AgentEvent>,
    capacity: usize,
    dropped: u64,
    confirmed: u64,
}

/// The shared outbox. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Outbox {
    state: Arc<Mutex<State>>,
    added: Arc<Notify>,
}

impl Outbox {
    pub fn new(capacity: usize) -> Outbox {
        Outbox {
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

    /// Adds an event; returns its id.
    pub fn push(&self, event: Event) -> u64 {
        let now = time::OffsetDateTime::now_utc();
        let occurred_at = Timestamp { seconds: now.unix_timestamp(), nanos: now.nanosecond() as i32 };
        let id = {
            let mut state = self.lock();
            let id = state.next_id;
            state.next_id += 1;
            state.pending.push_back(AgentEvent { event_id: id, occurred_at: Some(occurred_at), event: Some(event) });
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
        while state.pending.front().is_some_and(|event| event.event_id <= through) {
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
            for event in state.pending.iter_mut() {
                id += 1;
                event.event_id = id;
            }
            state.next_id = id + 1;
            state.confirmed = last_event_id;
        } else {
            state.next_id = state.next_id.max(last_event_id + 1);
            drop(state);
            self.confirm(last_event_id);
        }
    }

    /// Up to `limit` pending events with an id above `after`, in order.
    pub fn pending_after(&self, after: u64, limit: usize) -> Vec<AgentEvent> {
        let state = self.lock();
        state.pending.iter().filter(|event| event.event_id > after).take(limit).cloned().collect()
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
        let outbox = Outbox::new(10);
        outbox.push(heartbeat());
        outbox.push(heartbeat());
        outbox.resume_after(41);
        let ids: Vec<u64> = outbox.pending_after(0, 10).iter().map(|e| e.event_id).collect();
        assert_eq!(ids, vec![42, 43]);
        assert_eq!(outbox.push(heartbeat()), 44);
    }

    #[test]
    fn receipts_and_later_registers_drop_confirmed_events() {
        let outbox = Outbox::new(10);
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
    fn overflow_drops_the_oldest_and_counts_them() {
        let outbox = Outbox::new(3);
        outbox.resume_after(0);
        for _ in 0..5 {
            outbox.push(heartbeat());
        }
        assert_eq!(outbox.pending_after(0, 10).iter().map(|e| e.event_id).collect::<Vec<_>>(), vec![3, 4, 5]);
        assert_eq!(outbox.take_dropped(), 2);
        assert_eq!(outbox.take_dropped(), 0);
    }
}
