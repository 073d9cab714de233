//! Waiting on a condition with a deadline (never a bare sleep).

use anyhow::{bail, Result};
use std::time::{Duration, Instant};

/// Polls `check` until it returns `Some`, failing after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(error) => last_error = Some(error),
        }
        if Instant::now() > deadline {
            bail!("{what}: not reached within {timeout:?} (last error: {last_error:?})");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
