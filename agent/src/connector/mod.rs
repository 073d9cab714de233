//! The tunnel connector (cloudflared, or a stand-in image): kept in the state
//! the master last commanded (`tunnel_state.json`), as a container on a
//! standalone engine or a node-pinned service in Swarm. Observe, plan
//! ([`plan`]), apply ([`docker_ops`]), report `tunnel_status` on every change
//! and periodically. Tunnels of an offline master (their token carries the
//! emulator's URL) run the local edge (`dockflare/local-edge`, port 8080
//! published) unless the operator chose the image ([`OfflineConnector`]).

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
    /// Ports published on the host by a standalone connector container (the local edge's 8080).
    pub publish: Vec<plan::PortPublish>,
    /// Used instead of `image` and `publish` for tunnels of an offline master; `None` when the
    /// operator chose the image (then it runs whatever the master's mode).
    pub offline: Option<OfflineConnector>,
    /// The stack the agent runs in, if it runs in one ([`engine::own_stack_namespace`]).
    pub stack_namespace: Option<String>,
}

/// The connector for tunnels of a master in offline mode, recognised by their token: DockFlare's
/// emulator writes its URL as the token's `"e"` (an `http(s)://` URL, which no Cloudflare token
/// carries). cloudflared cannot reach that edge; the local edge serves it on a host port.
#[derive(Debug, Clone)]
pub struct OfflineConnector {
    pub image: String,
    pub publish: Vec<plan::PortPublish>,
}

/// The local edge's image, the connector of offline tunnels unless the operator chose one.
pub const LOCAL_EDGE_IMAGE: &str = "dockflare/local-edge:latest";
/// Where the local edge serves its ingress in its container (published as the same host port).
pub const LOCAL_EDGE_PORT: u16 = 8080;

/// Whether `token` was issued by DockFlare's emulator with a public URL (offline mode).
pub fn is_offline_token(token: &secrecy::SecretString) -> bool {
    crate::edge::token::TunnelToken::decode(token)
        .ok()
        .and_then(|t| t.endpoint)
        .is_some_and(|endpoint| crate::edge::config::connector_url(&endpoint).is_ok())
}

impl ConnectorSettings {
    /// The image and published ports for a tunnel with `token`.
    pub fn for_token(&self, token: Option<&secrecy::SecretString>) -> (String, Vec<plan::PortPublish>) {
        match (&self.offline, token) {
            (Some(offline), Some(token)) if is_offline_token(token) => (offline.image.clone(), offline.publish.clone()),
            _ => (self.image.clone(), self.publish.clone()),
        }
    }
}

/// Keeps the connector in its desired state.
pub struct ConnectorManager {
    pub settings: ConnectorSettings,
    pub agent_id: String,
    pub desired: watch::Receiver<Option<TunnelState>>,
    pub mode: watch::Receiver<Option<HostMode>>,
    pub outbox: Outbox,
    pub status: crate::status::AgentStatus,
    /// The last reconcile error logged (each is logged when it first appears).
    pub last_error: std::sync::Mutex<Option<String>>,
}

impl ConnectorManager {
    pub async fn run(mut self) {
        let mut docker: Option<Docker> = None;
        let mut last: Option<TunnelStatus> = None;
        let mut last_sent = Instant::now();
        loop {
            let status = self.reconcile(&mut docker).await;
            self.status.connector(&status);
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
        let (image, publish) = self.settings.for_token(Some(&state.token));
        // A Swarm connector is pinned to this node, so its ports are published in host mode there.
        let config_hash =
            plan::config_hash(&state.token, &image, &self.settings.network, &state.id, launch.name(), &publish);
        Some(DesiredConnector {
            name: format!("dockflare-tunnel-{short_id}"),
            image,
            network: self.settings.network.clone(),
            tunnel_id: state.id,
            tunnel_name: state.name,
            token: state.token,
            publish,
            config_hash,
            stack_namespace: self.settings.stack_namespace.clone(),
        })
    }

    async fn reconcile(&self, cached: &mut Option<Docker>) -> TunnelStatus {
        let tunnel = self.desired.borrow().clone();
        let (image, _) = self.settings.for_token(tunnel.as_ref().map(|t| &t.token));
        let mut status = TunnelStatus {
            tunnel_id: tunnel.as_ref().map(|t| t.id.clone()).unwrap_or_default(),
            tunnel_name: tunnel.as_ref().map(|t| t.name.clone()).unwrap_or_default(),
            version: image_version(&image),
            image,
            ..Default::default()
        };
        let Some(mode) = self.mode.borrow().clone() else {
            // Not known yet: the watcher has not reached the engine (it retries, and says why).
            status.state = ConnectorState::Unspecified as i32;
            status.detail = "waiting for the Docker engine".into();
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
                *self.last_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
                status.container_id = id.clone().unwrap_or_default();
                describe(&docker, &launch, &self.agent_id, id.as_deref(), desired.as_ref(), &mut status).await;
            }
            Err(error) => {
                if matches!(error, crate::docker::network::NetworkError::Docker(_)) {
                    *cached = None;
                }
                status.state = ConnectorState::Failed as i32;
                status.detail = error.to_string();
                // Said when it changes (the status line repeats it to the master every report).
                let mut last = self.last_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if last.as_deref() != Some(status.detail.as_str()) {
                    tracing::warn!(message = "Connector reconcile failed.", error = %status.detail);
                    *last = Some(status.detail.clone());
                }
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
    ) -> Result<Option<String>, crate::docker::network::NetworkError> {
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
                    metrics::counter!("dockflare_agent_connector_starts_total").increment(1);
                    tracing::info!(message = "Connector started.", id = %id);
                }
                Action::Create => {
                    let Some(desired) = desired else { continue };
                    crate::docker::network::ensure(docker, &desired.network, launch.network_kind()).await?;
                    let id = docker_ops::create(docker, launch, &self.agent_id, desired).await?;
                    metrics::counter!("dockflare_agent_connector_starts_total").increment(1);
                    tracing::info!(message = "Connector created.", id = %id, tunnel = %desired.tunnel_id, launch = launch.name(), image = %desired.image);
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
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use secrecy::SecretString;

    fn token(endpoint: Option<&str>) -> SecretString {
        let mut json = serde_json::json!({"a": "acc", "s": "AAAA", "t": "c1744f8b-faa1-48a4-9e5c-02ac921467fa"});
        if let Some(endpoint) = endpoint {
            json["e"] = endpoint.into();
        }
        SecretString::from(STANDARD.encode(json.to_string()))
    }

    #[test]
    fn offline_tunnels_run_the_local_edge_unless_an_image_was_chosen() {
        let publish = |spec: &str| plan::PortPublish::parse(spec).map(|p| vec![p]).unwrap_or_default();
        let settings = ConnectorSettings {
            image: "cloudflare/cloudflared:2026.8.2".into(),
            network: "n".into(),
            publish: Vec::new(),
            offline: Some(OfflineConnector { image: LOCAL_EDGE_IMAGE.into(), publish: publish("8080:8080") }),
            stack_namespace: None,
        };
        let offline = token(Some("http://host.docker.internal:8788/client/v4"));
        // (token, expected image, expected ports)
        let cases = [
            (Some(offline.clone()), LOCAL_EDGE_IMAGE, publish("8080:8080")),
            (Some(token(None)), "cloudflare/cloudflared:2026.8.2", vec![]),
            (Some(token(Some("fed"))), "cloudflare/cloudflared:2026.8.2", vec![]),
            (Some(SecretString::from("garbage".to_string())), "cloudflare/cloudflared:2026.8.2", vec![]),
            (None, "cloudflare/cloudflared:2026.8.2", vec![]),
        ];
        for (token, image, ports) in cases {
            assert_eq!(settings.for_token(token.as_ref()), (image.to_string(), ports), "{image}");
        }
        let chosen = ConnectorSettings { offline: None, ..settings };
        assert_eq!(chosen.for_token(Some(&offline)).0, "cloudflare/cloudflared:2026.8.2");
    }

    #[test]
    fn image_versions() {
        assert_eq!(super::image_version("cloudflare/cloudflared:2025.9.0"), "2025.9.0");
        assert_eq!(super::image_version("registry:5000/cloudflared"), "latest");
        assert_eq!(super::image_version("cloudflared@sha256:abc"), "sha256:abc");
    }
}
