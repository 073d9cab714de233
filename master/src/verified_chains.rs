//! Client certificates verified recently, so that a chain is verified once rather than on
//! every call: an agent's Register and its two streams are three calls on one connection, and a
//! reconnecting fleet makes thousands at once (each verification is a signature check and a
//! certificate parse). An entry is kept at most [`KEEP_FOR`] and never past the certificate's
//! expiry; the map is bounded ([`MAX_ENTRIES`]). Revocation is not decided here: agents are
//! checked against the store on every call, admin identities by the admin registry.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// How long a verification is trusted, in seconds.
pub const KEEP_FOR: i64 = 60;
/// Entries at most; a full map first drops what expired, then everything.
pub const MAX_ENTRIES: usize = 16_384;

/// The digest an entry is found by: the end-entity certificate's SHA-256.
pub type Key = [u8; 32];

pub fn key(end_entity_der: &[u8]) -> Key {
    Sha256::digest(end_entity_der).into()
}

/// The cache of what each verification found (`T`: the identity); cloning shares it.
#[derive(Clone, Debug)]
pub struct VerifiedChains<T> {
    entries: Arc<Mutex<HashMap<Key, Entry<T>>>>,
}

impl<T> Default for VerifiedChains<T> {
    fn default() -> Self {
        VerifiedChains { entries: Arc::default() }
    }
}

#[derive(Clone, Debug)]
struct Entry<T> {
    identity: T,
    /// Unix seconds: trusted before this.
    until: i64,
}

impl<T: Clone> VerifiedChains<T> {
    fn entries(&self) -> MutexGuard<'_, HashMap<Key, Entry<T>>> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The identity verified for `key`, if that was less than [`KEEP_FOR`] before `now` (Unix
    /// seconds) and the certificate has not expired since.
    pub fn get(&self, key: &Key, now: i64) -> Option<T> {
        let entries = self.entries();
        entries.get(key).filter(|entry| now < entry.until).map(|entry| entry.identity.clone())
    }

    /// Remembers a verification made at `now` of a certificate valid until `not_after` (both
    /// Unix seconds).
    pub fn put(&self, key: Key, identity: T, now: i64, not_after: i64) {
        let until = (now + KEEP_FOR).min(not_after);
        if until <= now {
            return;
        }
        let mut entries = self.entries();
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&key) {
            entries.retain(|_, entry| now < entry.until);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, Entry { identity, until });
    }

    pub fn len(&self) -> usize {
        self.entries().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(n: u8) -> String {
        format!("{n:02x}")
    }

    #[test]
    fn a_verification_is_trusted_for_a_minute_and_never_past_the_expiry() {
        let chains = VerifiedChains::<String>::default();
        let (long, short) = (key(b"long-lived"), key(b"expiring"));
        chains.put(long, identity(1), 1000, 1_000_000);
        chains.put(short, identity(2), 1000, 1010);
        assert_eq!(chains.get(&long, 1059), Some("01".to_string()));
        assert!(chains.get(&long, 1060).is_none(), "after a minute it is verified again");
        assert!(chains.get(&short, 1009).is_some());
        assert!(chains.get(&short, 1010).is_none(), "not past the certificate's expiry");
        assert!(chains.get(&key(b"unknown"), 1000).is_none());
        chains.put(key(b"expired"), identity(3), 1000, 900);
        assert!(chains.get(&key(b"expired"), 1000).is_none(), "an expired one is not kept");
    }

    #[test]
    fn the_map_stays_bounded() {
        let chains = VerifiedChains::<String>::default();
        for n in 0..MAX_ENTRIES {
            chains.put(key(&n.to_le_bytes()), identity(0), 1000, 1001);
        }
        assert_eq!(chains.len(), MAX_ENTRIES);
        chains.put(key(b"later"), identity(1), 2000, 1_000_000);
        assert_eq!(chains.len(), 1, "the expired entries made room");
        for n in 0..MAX_ENTRIES {
            chains.put(key(&n.to_le_bytes()), identity(0), 2000, 1_000_000);
        }
        assert!(chains.len() <= MAX_ENTRIES);
    }
}
