//! The process-wide Prometheus recorder. Code anywhere records through the `metrics` facade
//! (`metrics::counter!("dockflare_…_total")`, handles kept where the path is hot); this installs
//! the recorder once and renders it for `/metrics`. Durations are histograms in seconds
//! (`*_seconds`, buckets from 1 ms to 60 s), sizes are histograms with their own buckets.

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

/// Buckets of every `*_seconds` histogram.
pub const SECONDS_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
/// Buckets of every `*_size` histogram (items per batch).
pub const SIZE_BUCKETS: &[f64] = &[1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 8192.0];

/// Why the recorder could not be installed.
#[derive(Debug, thiserror::Error)]
#[error("installing the metrics recorder: {0}")]
pub struct RecorderError(#[from] BuildError);

static INSTALLED: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();

/// Installs the recorder for this process (once; later calls return the same handle) and
/// records `dockflare_build_info{binary, version}`.
pub fn install(binary: &'static str, version: &'static str) -> Result<PrometheusHandle, RecorderError> {
    if let Some(handle) = INSTALLED.get() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)?
        .set_buckets_for_metric(Matcher::Suffix("_size".into()), SIZE_BUCKETS)?
        .install_recorder()?;
    metrics::gauge!("dockflare_build_info", "binary" => binary, "version" => version).set(1.0);
    Ok(INSTALLED.get_or_init(|| handle).clone())
}

/// Keeps the recorder's histograms compact: drains them every few seconds (run as a task).
pub async fn upkeep(handle: PrometheusHandle) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        tick.tick().await;
        handle.run_upkeep();
    }
}
