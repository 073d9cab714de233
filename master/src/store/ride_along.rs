//! Commands that ride along in the event transaction in progress (SQLite).
//!
//! SQLite has one writer. While the event writer holds it, a command handed
//! here is written inside the event transaction, at the end of the chunk in
//! progress, and is stored by that transaction's commit: one `fsync` for both,
//! instead of the events' commit and then the command's own. An operator's
//! command (`urgent`) makes the transaction commit right after it; the
//! reconciler's commands wait for the commit the events would make anyway.
//!
//! Each command is written under a savepoint, so one that fails undoes only
//! itself. Its outcome is handed back only once the transaction has
//! committed; a transaction that fails drops the waiting replies, and their
//! commands are written on their own instead ([`Offer::Closed`] is the same
//! for a transaction that is not open). This module owns the hand-over only;
//! what a command writes is `commands.rs`'s.

use super::{Enqueued, StoreError};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::oneshot;

/// A command's write, owned, so that another task's transaction can run it.
#[derive(Clone)]
pub struct CommandWrite {
    pub agent_id: String,
    pub command_id: String,
    pub kind: String,
    pub created_at: i64,
    /// Builds the payload once the sequence is known.
    pub encode: Arc<dyn Fn(u64) -> Result<Vec<u8>, String> + Send + Sync>,
}

/// Where a rider's outcome goes.
pub(super) type Reply = oneshot::Sender<Result<Enqueued, StoreError>>;

/// A command waiting in the open transaction, with where its outcome goes.
pub(super) struct Rider {
    pub write: CommandWrite,
    pub urgent: bool,
    pub reply: Reply,
}

#[derive(Default)]
struct Inbox {
    /// An event transaction is open and will look at `riders` again before it commits.
    open: bool,
    riders: Vec<Rider>,
}

/// The hand-over point between command writers and the event writer. Cheap to clone.
#[derive(Clone, Default)]
pub(super) struct RideAlong {
    inbox: Arc<Mutex<Inbox>>,
}

/// What became of a command offered to the open transaction.
pub(super) enum Offer {
    /// Taken: its outcome arrives once the transaction committed (a closed channel: the
    /// transaction failed, write it on its own).
    Taken(oneshot::Receiver<Result<Enqueued, StoreError>>),
    /// No event transaction is open: write it on its own.
    Closed,
}

/// The riders one look at the inbox took, and whether the transaction must commit now.
pub(super) struct Boarding {
    pub riders: Vec<Rider>,
    /// The inbox is closed: commit after these.
    pub commit_now: bool,
}

impl RideAlong {
    /// Hands a command to the open event transaction, if there is one.
    pub fn offer(&self, write: CommandWrite, urgent: bool) -> Offer {
        let mut inbox = self.inbox.lock().unwrap_or_else(PoisonError::into_inner);
        if !inbox.open {
            return Offer::Closed;
        }
        let (reply, outcome) = oneshot::channel();
        inbox.riders.push(Rider { write, urgent, reply });
        Offer::Taken(outcome)
    }

    /// Opens the inbox for a transaction; it closes when the guard is dropped (riders still in
    /// it are dropped: they write on their own).
    pub fn open(&self) -> OpenInbox {
        self.inbox.lock().unwrap_or_else(PoisonError::into_inner).open = true;
        OpenInbox { ride_along: self.clone() }
    }

    /// Takes the riders waiting now. The inbox closes (the transaction commits after these)
    /// when `last` (no chunk follows), when `give_way` (another writer waits for the
    /// connection), or when an urgent rider is among them.
    pub fn board(&self, last: bool, give_way: bool) -> Boarding {
        let mut inbox = self.inbox.lock().unwrap_or_else(PoisonError::into_inner);
        let commit_now = last || give_way || inbox.riders.iter().any(|rider| rider.urgent);
        if commit_now {
            inbox.open = false;
        }
        Boarding { riders: std::mem::take(&mut inbox.riders), commit_now }
    }

    /// Whether a transaction takes riders now.
    pub fn is_open(&self) -> bool {
        self.inbox.lock().unwrap_or_else(PoisonError::into_inner).open
    }

    fn close(&self) {
        let mut inbox = self.inbox.lock().unwrap_or_else(PoisonError::into_inner);
        inbox.open = false;
        inbox.riders.clear();
    }
}

/// Tells each command written in a transaction its outcome, once the transaction committed (a
/// caller that stopped listening is no one's concern).
pub(super) fn tell_riders(written: Vec<(Reply, Result<Enqueued, StoreError>)>) {
    for (reply, outcome) in written {
        let _ = reply.send(outcome);
    }
}

/// Keeps the inbox open while it lives.
pub(super) struct OpenInbox {
    ride_along: RideAlong,
}

impl Drop for OpenInbox {
    fn drop(&mut self) {
        self.ride_along.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(agent: &str) -> CommandWrite {
        CommandWrite {
            agent_id: agent.into(),
            command_id: "c".into(),
            kind: "resync".into(),
            created_at: 0,
            encode: Arc::new(|_| Ok(Vec::new())),
        }
    }

    #[test]
    fn a_command_is_taken_only_while_a_transaction_is_open() {
        let ride_along = RideAlong::default();
        assert!(matches!(ride_along.offer(write("a"), true), Offer::Closed));
        let open = ride_along.open();
        assert!(matches!(ride_along.offer(write("a"), true), Offer::Taken(_)));
        drop(open);
        assert!(matches!(ride_along.offer(write("a"), true), Offer::Closed));
    }

    #[test]
    fn an_urgent_rider_closes_the_inbox_and_a_background_one_does_not() {
        let ride_along = RideAlong::default();
        let _open = ride_along.open();
        let _background = ride_along.offer(write("a"), false);
        let boarding = ride_along.board(false, false);
        assert_eq!((boarding.riders.len(), boarding.commit_now), (1, false));
        assert!(matches!(ride_along.offer(write("b"), false), Offer::Taken(_)));
        let _urgent = ride_along.offer(write("c"), true);
        let boarding = ride_along.board(false, false);
        assert_eq!((boarding.riders.len(), boarding.commit_now), (2, true));
        assert!(matches!(ride_along.offer(write("d"), true), Offer::Closed), "closed once it commits");
    }

    #[test]
    fn the_last_chunk_or_a_waiting_writer_closes_the_inbox() {
        let ride_along = RideAlong::default();
        let _open = ride_along.open();
        assert!(ride_along.board(true, false).commit_now);
        let _open = ride_along.open();
        assert!(ride_along.board(false, true).commit_now);
        let _open = ride_along.open();
        assert!(!ride_along.board(false, false).commit_now);
    }

    #[test]
    fn riders_left_when_the_transaction_ends_learn_they_were_not_written() {
        let ride_along = RideAlong::default();
        let open = ride_along.open();
        let Offer::Taken(mut outcome) = ride_along.offer(write("a"), true) else { panic!("not taken") };
        drop(open);
        assert!(matches!(outcome.try_recv(), Err(oneshot::error::TryRecvError::Closed)));
    }
}
