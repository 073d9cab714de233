//! What "healthy" and "ready" mean for the master, for [`dockflare_observe`]'s server:
//! live while every supervised task runs; ready when the database answers, the gRPC port
//! listens, and the reconciler leads or stands by behind another master. Also the gauges read
//! at scrape time: agents and routes by status (one `GROUP BY` each), connected streams, the
//! event writer's queue depth.

use crate::model::{Status, STATUS_OFFLINE, STATUS_ONLINE, STATUS_REVOKED};
use crate::state::SharedState;
use crate::supervisor::Supervisor;
use dockflare_observe::{Check, Observed};
use futures::future::BoxFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The longest a readiness or scrape query may take.
const QUERY_DEADLINE: Duration = Duration::from_secs(2);

pub struct MasterHealth {
    pub state: SharedState,
    pub supervisor: Supervisor,
    pub leader: watch::Receiver<bool>,
    pub grpc: SocketAddr,
}

/// Why the health server could not start.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("cannot listen on {addr} for health and metrics (--metrics-listen): {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Recorder(#[from] dockflare_observe::recorder::RecorderError),
}

/// Starts the health and metrics server on `addr` (supervised); the address it listens on.
pub async fn start(
    addr: SocketAddr,
    health: MasterHealth,
    mut stopping: watch::Receiver<bool>,
) -> Result<SocketAddr, HealthError> {
    let handle = dockflare_observe::recorder::install("master", env!("CARGO_PKG_VERSION"))?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| HealthError::Listen { addr, source })?;
    let local = listener.local_addr().map_err(|source| HealthError::Listen { addr, source })?;
    let supervisor = health.supervisor.clone();
    supervisor.spawn("metrics upkeep", dockflare_observe::recorder::upkeep(handle.clone()));
    supervisor.spawn("health server", async move {
        let shutdown = async move {
            let _ = stopping.wait_for(|stopping| *stopping).await;
        };
        if let Err(error) = dockflare_observe::server::serve(listener, Arc::new(health), Some(handle), shutdown).await {
            tracing::error!(message = "The health and metrics server failed.", %error);
        }
    });
    tracing::info!(message = "Health and metrics listening.", addr = %local, paths = "/healthz /readyz /metrics");
    Ok(local)
}

impl Observed for MasterHealth {
    fn live(&self) -> Vec<Check> {
        vec![match self.supervisor.first_failure() {
            None => Check::pass("tasks", "every long-lived task runs"),
            Some(failure) => Check::fail("tasks", failure),
        }]
    }

    fn ready(&self) -> BoxFuture<'_, Vec<Check>> {
        Box::pin(async move {
            let backend = format!("{:?}", self.state.store.backend()).to_lowercase();
            let database = match tokio::time::timeout(QUERY_DEADLINE, self.state.store.ping()).await {
                Ok(Ok(())) => Check::pass("database", format!("{backend} answers")),
                Ok(Err(error)) => Check::fail("database", format!("{backend} does not answer: {error}")),
                Err(_) => Check::fail("database", format!("{backend} did not answer within {QUERY_DEADLINE:?}")),
            };
            let reconciler = if *self.leader.borrow() {
                Check::pass("reconciler", "leading: this master reconciles Cloudflare")
            } else {
                Check::pass("reconciler", "standing by: another master holds the reconciler lock")
            };
            let mut checks = vec![database, Check::pass("grpc", format!("listening on {}", self.grpc)), reconciler];
            checks.extend(self.live());
            checks
        })
    }

    fn refresh(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            metrics::gauge!("dockflare_agent_streams").set(self.state.sessions.connected_count() as f64);
            metrics::gauge!("dockflare_event_queue_depth").set(self.state.events.depth() as f64);
            let known_agents = [STATUS_ONLINE, STATUS_OFFLINE, STATUS_REVOKED];
            self.gauge_by("agents", "status", "dockflare_agents", &known_agents).await;
            let known_routes =
                [Status::Active, Status::PendingDeletion, Status::Conflict, Status::Invalid].map(Status::as_str);
            self.gauge_by("routes", "status", "dockflare_routes", &known_routes).await;
        })
    }
}

impl MasterHealth {
    /// Sets `gauge{status=…}` from a count of `table` by `column`; known values absent count 0.
    async fn gauge_by(&self, table: &'static str, column: &'static str, gauge: &'static str, known: &[&str]) {
        match tokio::time::timeout(QUERY_DEADLINE, self.state.store.count_by(table, column)).await {
            Ok(Ok(counts)) => {
                for status in known {
                    if !counts.iter().any(|(value, _)| value == status) {
                        metrics::gauge!(gauge, "status" => status.to_string()).set(0.0);
                    }
                }
                for (status, count) in counts {
                    metrics::gauge!(gauge, "status" => status).set(count as f64);
                }
            }
            Ok(Err(error)) => tracing::warn!(message = "Could not count for the metrics.", %table, %error),
            Err(_) => tracing::warn!(message = "Counting for the metrics took too long.", %table),
        }
    }
}
