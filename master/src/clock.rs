//! The master's clock: Unix milliseconds, the unit every stored time uses.

/// The current time as Unix milliseconds.
pub fn now_millis() -> i64 {
    crate::store::unix_millis(time::OffsetDateTime::now_utc())
}
