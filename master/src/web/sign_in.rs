//! Signing in to the dashboard: passwords (Argon2id, a PHC string per user; at least
//! [`MIN_PASSWORD_LEN`] characters), session and CSRF tokens (32 random bytes; the store keeps
//! only the SHA-256 of a session token), constant-time comparison, and the limit on failed
//! sign-ins per source ([`SignInLimiter`], pure over the time it is given).

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

pub const MIN_PASSWORD_LEN: usize = 12;
pub const MAX_PASSWORD_LEN: usize = 1024;

/// Why a password cannot be set.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    #[error("password: at least {MIN_PASSWORD_LEN} characters (got {0})")]
    TooShort(usize),
    #[error("password: at most {MAX_PASSWORD_LEN} characters")]
    TooLong,
    #[error("password: hashing failed: {0}")]
    Hash(String),
}

/// The Argon2id PHC string of a new password.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    let length = password.chars().count();
    if length < MIN_PASSWORD_LEN {
        return Err(PasswordError::TooShort(length));
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(PasswordError::TooLong);
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches the stored PHC string (false for a malformed one).
pub fn verify_password(stored: &str, password: &str) -> bool {
    if password.len() > MAX_PASSWORD_LEN {
        return false;
    }
    PasswordHash::new(stored).is_ok_and(|hash| Argon2::default().verify_password(password.as_bytes(), &hash).is_ok())
}

/// A hash to verify against when the user does not exist, so that a wrong user name costs as
/// long as a wrong password.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password, never valid").unwrap_or_default())
}

/// 32 random bytes, URL-safe base64 (a session or CSRF token).
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// What the store keeps of a session token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Constant-time equality of two tokens.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Failed sign-ins allowed per source within [`SignInLimiter::window`].
pub const FAILURES_PER_WINDOW: usize = 5;

/// Failed sign-ins per source address, in a sliding window: past the limit, a source is
/// refused until its oldest failure leaves the window.
#[derive(Debug)]
pub struct SignInLimiter {
    window: Duration,
    limit: usize,
    failures: HashMap<IpAddr, Vec<Instant>>,
}

impl Default for SignInLimiter {
    fn default() -> Self {
        SignInLimiter::new(FAILURES_PER_WINDOW, Duration::from_secs(60))
    }
}

impl SignInLimiter {
    pub fn new(limit: usize, window: Duration) -> SignInLimiter {
        SignInLimiter { window, limit: limit.max(1), failures: HashMap::new() }
    }

    fn recent(&mut self, source: IpAddr, now: Instant) -> &mut Vec<Instant> {
        let window = self.window;
        let entry = self.failures.entry(source).or_default();
        entry.retain(|at| now.duration_since(*at) < window);
        entry
    }

    /// `Err(wait)` when `source` may not try now.
    pub fn check(&mut self, source: IpAddr, now: Instant) -> Result<(), Duration> {
        let (limit, window) = (self.limit, self.window);
        let recent = self.recent(source, now);
        if recent.len() < limit {
            return Ok(());
        }
        let oldest = recent.first().copied().unwrap_or(now);
        Err(window.saturating_sub(now.duration_since(oldest)).max(Duration::from_secs(1)))
    }

    /// Notes a failed attempt.
    pub fn failed(&mut self, source: IpAddr, now: Instant) {
        self.recent(source, now).push(now);
        // Keep the map small: forget sources with nothing recent.
        if self.failures.len() > 10_000 {
            let window = self.window;
            self.failures.retain(|_, at| at.last().is_some_and(|last| now.duration_since(*last) < window));
        }
    }

    /// A successful sign-in clears the source's failures.
    pub fn succeeded(&mut self, source: IpAddr) {
        self.failures.remove(&source);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify_and_short_ones_are_refused() {
        let hash = hash_password("correct horse battery").expect("hash");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password(&hash, "correct horse battery"));
        assert!(!verify_password(&hash, "correct horse batterY"));
        assert!(!verify_password("not a hash", "correct horse battery"));
        assert_eq!(hash_password("short"), Err(PasswordError::TooShort(5)));
    }

    #[test]
    fn tokens_are_random_and_compared_in_constant_time() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(same_token(&a, &a.clone()) && !same_token(&a, &b) && !same_token(&a, ""));
        assert_eq!(token_hash(&a).len(), 64);
    }

    #[test]
    fn a_source_is_refused_after_too_many_failures_until_the_window_passes() {
        let mut limiter = SignInLimiter::new(3, Duration::from_secs(60));
        let (source, other) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        let start = Instant::now();
        for i in 0..3 {
            assert!(limiter.check(source, start + Duration::from_secs(i)).is_ok());
            limiter.failed(source, start + Duration::from_secs(i));
        }
        let wait = limiter.check(source, start + Duration::from_secs(10)).expect_err("limited");
        assert_eq!(wait, Duration::from_secs(50));
        assert!(limiter.check(other, start + Duration::from_secs(10)).is_ok(), "other sources are not affected");
        assert!(limiter.check(source, start + Duration::from_secs(61)).is_ok(), "the window passed");
        limiter.failed(source, start + Duration::from_secs(62));
        limiter.succeeded(source);
        assert!(limiter.check(source, start + Duration::from_secs(62)).is_ok());
    }
}
