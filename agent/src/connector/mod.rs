//! The tunnel connector (cloudflared, or a stand-in image): kept in the state
//! the master last commanded (`tunnel_state.json`), as a container on a
//! standalone engine or a node-pinned service in Swarm. Observe, plan
//! ([`plan`]), apply ([`docker_ops`]), report `tunnel_status` on every change
//! and periodically.

pub mod docker_ops;
pub mod plan;
mod ready;

use crate::docker::engine::{self, HostMode};
use crate::outbox::Outbox;
use crate::tunnel_state::{DesiredState, TunnelState};
use bollard::query_parameters::InspectContainerOptions;
use bollard::Docker;
use docker_ops::Launch;
use dockflare::v1::agent_event::Event;
use dockflare::v1::{ConnectorState, TunnelStatus};
use plan::{Action, DesiredConnector};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Check the connector this often when all is well…
const STEADY_INTERVAL: Duration = Duration::from_secs(15);
/// …and this often while it is starting or failing.
const BUSY_INTERVAL: Duration = Duration::from_secs(2);
/// Report the status at least this often even when nothing changed.
const REPORT_EVERY: Duration = Duration::from_secs(30);

/// Operator settings for the connector.
#[derive(Debug, Clone)]
pub struct ConnectorSettings {
    pub image: String,
    pub network: String,
}

/// Keeps the connector in its desired state.
pub struct ConnectorManager {
    pub settings: ConnectorSettings,
    pub agent_id: String,
    pub desired: watch::Receiver<Option<TunnelState>>,
    pub mode: watch::Receiver<Option<HostMode>>,
    pub outbox: Outbox,
}

impl ConnectorManager {
    pub async fn run(mut self) {
        let mut docker: Option<Docker> = None;
        let mut last: Option<TunnelStatus> = None;
        let mut last_sent = Instant::now();
        loop {
            let status = self.reconcile(&mut docker).await;
            let changed = last.as_ref() != Some(&status);
            if changed || last_sent.elapsed() >= REPORT_EVERY {
                if changed {
                    tracing::info!(
                        message = "Connector status.",
                        state = ?ConnectorState::try_from(status.state).unwrap_or(ConnectorState::Unspecified),
                        tunnel = %status.tunnel_id,
                        container = %status.container_id,
                        ready = status.ready,
                        detail = %status.detail,
                    );
                }
                self.outbox.push(Event::TunnelStatus(status.clone()));
                last_sent = Instant::now();
                last = Some(status.clone());
            }
            let steady =
                matches!(ConnectorState::try_from(status.state), Ok(ConnectorState::Running | ConnectorState::Absent))
                    && (status.ready || status.state == ConnectorState::Absent as i32);
            let wait = if steady { STEADY_INTERVAL } else { BUSY_INTERVAL };
            tokio::select! {
                _ = self.desired.changed() => {}
                _ = self.mode.changed() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    fn desired_connector(&self, launch: &Launch) -> Option<DesiredConnector> {
        let state = self.desired.borrow().clone()?;
        if state.desired_state != DesiredState::Running {
            return None;
        }
        let short_id: String = self.agent_id.chars().take(8).collect();
        let config_hash =
            plan::config_hash(&state.token, &self.settings.image, &self.settings.network, &state.id, launch.name());
        Some(DesiredConnector {
            name: format!("dockflare-tunnel-{short_id}"),
            image: self.settings.image.clone(),
            network: self.settings.network.clone(),
            tunnel_id: state.id,
            tunnel_name: state.name,
            token: state.token,
            config_hash,
        })
    }

    async fn reconcile(&self, cached: &mut Option<Docker>) -> TunnelStatus {
        let tunnel = self.desired.borrow().clone();
        let mut status = TunnelStatus {
            tunnel_id: tunnel.as_ref().map(|t| t.id.clone()).unwrap_or_default(),
            tunnel_name: tunnel.as_ref().map(|t| t.name.clone()).unwrap_or_default(),
            image: self.settings.image.clone(),
            version: image_version(&self.settings.image),
            ..Default::default()
        };
        let Some(mode) = self.mode.borrow().clone() else {
            status.state = ConnectorState::Failed as i32;
            status.detail = "the Docker engine is not reachable yet".into();
            return status;
        };
        let docker = match cached {
            Some(docker) => docker.clone(),
            None => match engine::connect().await {
                Ok(docker) => {
                    *cached = Some(docker.clone());
                    docker
                }
                Err(error) => {
                    status.state = ConnectorState::Failed as i32;
                    status.detail = error.to_string();
                    return status;
                }
            },
        };
        let launch = match mode {
            HostMode::Standalone { .. } => Launch::Container,
            HostMode::Swarm { node_id, .. } => Launch::Service { node_id },
        };
        let desired = self.desired_connector(&launch);
        match self.apply(&docker, &launch, desired.as_ref()).await {
            Ok(id) => {
                status.container_id = id.clone().unwrap_or_default();
                describe(&docker, &launch, &self.agent_id, id.as_deref(), desired.as_ref(), &mut status).await;
            }
            Err(error) => {
                *cached = None;
                status.state = ConnectorState::Failed as i32;
                status.detail = format!("Docker: {error}");
                tracing::warn!(message = "Connector reconcile failed.", %error);
            }
        }
        status
    }

    /// Observes, plans and applies; returns the connector's id, if one runs.
    async fn apply(
        &self,
        docker: &Docker,
        launch: &Launch,
        desired: Option<&DesiredConnector>,
    ) -> Result<Option<String>, bollard::errors::Error> {
        let observed = docker_ops::observe(docker, launch, &self.agent_id).await?;
        let actions = plan::plan(desired, &observed);
        let mut current = observed
            .iter()
            .map(|c| c.id.clone())
            .find(|id| !actions.iter().any(|a| matches!(a, Action::Remove { id: removed, .. } if removed == id)));
        for action in actions {
            match action {
                Action::Remove { id, why } => {
                    docker_ops::remove(docker, launch, &id).await?;
                    tracing::info!(message = "Connector removed.", id = %id, reason = why);
                }
                Action::Start { id } => {
                    docker_ops::start(docker, &id).await?;
                    tracing::info!(message = "Connector started.", id = %id);
                }
                Action::Create => {
                    let Some(desired) = desired else { continue };
                    docker_ops::ensure_network(docker, &desired.network, launch).await?;
                    let id = docker_ops::create(docker, launch, &self.agent_id, desired).await?;
                    tracing::info!(message = "Connector created.", id = %id, tunnel = %desired.tunnel_id, launch = launch.name());
                    current = Some(id);
                }
            }
        }
        Ok(if desired.is_some() { current } else { None })
    }
}

/// The version part of an image reference ("cloudflare/cloudflared:2025.9.0" → "2025.9.0").
fn image_version(image: &str) -> String {
    let name = image.rsplit('/').next().unwrap_or(image);
    match (name.split_once('@'), name.split_once(':')) {
        (Some((_, digest)), _) => digest.to_string(),
        (None, Some((_, tag))) => tag.to_string(),
        (None, None) => "latest".into(),
    }
}

/// Fills state, exit code and readiness of the connector `id`.
async fn describe(
    docker: &Docker,
    launch: &Launch,
    agent_id: &str,
    id: Option<&str>,
    desired: Option<&DesiredConnector>,
    status: &mut TunnelStatus,
) {
    let (Some(id), Some(desired)) = (id, desired) else {
        status.state = ConnectorState::Absent as i32;
        return;
    };
    if let Launch::Service { .. } = launch {
        // Swarm restarts the task itself: running once a task runs. Readiness
        // is not probed (overlay addresses are not reachable from the host).
        let observed = docker_ops::observe(docker, launch, agent_id).await.unwrap_or_default();
        let running = observed.iter().any(|c| c.id == id && c.state == "running");
        status.state = if running { ConnectorState::Running } else { ConnectorState::Starting } as i32;
        return;
    }
    let inspect = match docker.inspect_container(id, None::<InspectContainerOptions>).await {
        Ok(inspect) => inspect,
        Err(error) => {
            status.state = ConnectorState::Failed as i32;
            status.detail = format!("inspecting the connector: {error}");
            return;
        }
    };
    let state = inspect.state.as_ref();
    let docker_state = state.and_then(|s| s.status.as_ref()).map(|s| s.to_string()).unwrap_or_default();
    status.exit_code = state.and_then(|s| s.exit_code).unwrap_or_default() as i32;
    status.state = match docker_state.as_str() {
        "running" => ConnectorState::Running,
        "restarting" => ConnectorState::Restarting,
        "exited" | "dead" => ConnectorState::Exited,
        "created" => ConnectorState::Starting,
        _ => ConnectorState::Unspecified,
    } as i32;
    if let Some(error) = state.and_then(|s| s.error.clone()).filter(|e| !e.is_empty()) {
        status.detail = error;
    }
    if docker_state == "running" {
        let address = inspect
            .network_settings
            .as_ref()
            .and_then(|n| n.networks.as_ref())
            .and_then(|n| n.get(&desired.network))
            .and_then(|n| n.ip_address.clone())
            .filter(|ip| !ip.is_empty());
        if let Some(ip) = address {
            status.ready = ready::probe(&ip, docker_ops::METRICS_PORT).await;
            if !status.ready && status.detail.is_empty() {
                status.detail = "metrics /ready does not answer 200 yet".into();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn image_versions() {
        assert_eq!(super::image_version("cloudflare/cloudflared:2025.9.0"), "2025.9.0");
        assert_eq!(super::image_version("registry:5000/cloudflared"), "latest");
        assert_eq!(super::image_version("cloudflared@sha256:abc"), "sha256:abc");
    }
}
