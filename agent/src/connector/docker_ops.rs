//! The connector's Docker side: finding this agent's connectors (containers
//! or node-pinned Swarm services, marked by labels), creating and removing
//! them, making sure their network exists, pulling a missing image.

use super::plan::{DesiredConnector, ObservedConnector};
use bollard::models::{
    ContainerCreateBody, EndpointPortConfig, EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum,
    EndpointSpec, HostConfig, NetworkAttachmentConfig, PortBinding, RestartPolicy, RestartPolicyNameEnum, ServiceSpec,
    TaskSpec, TaskSpecContainerSpec, TaskSpecPlacement, TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, ListContainersOptions, ListServicesOptions, ListTasksOptions,
    RemoveContainerOptions, StartContainerOptions,
};
use bollard::Docker;
use futures::StreamExt;
use secrecy::ExposeSecret;
use std::collections::HashMap;

pub const LABEL_MANAGED: &str = "dockflare.managed";
pub const LABEL_TYPE: &str = "dockflare.type";
pub const LABEL_AGENT: &str = "dockflare.agent_id";
pub const LABEL_TUNNEL: &str = "dockflare.tunnel_id";
pub const LABEL_HASH: &str = "dockflare.config_hash";

/// The command cloudflared runs; the token travels only in the environment.
pub const CONNECTOR_COMMAND: [&str; 3] = ["tunnel", "--no-autoupdate", "run"];
/// Where the connector serves its metrics (`/ready`), set through the environment.
pub const METRICS_PORT: u16 = 2000;

/// How a connector is run on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launch {
    /// A container on a standalone engine.
    Container,
    /// A Swarm service pinned to this node.
    Service { node_id: String },
}

impl Launch {
    /// The network its connector and the routed containers share.
    pub fn network_kind(&self) -> crate::docker::network::NetworkKind {
        match self {
            Launch::Container => crate::docker::network::NetworkKind::Bridge,
            Launch::Service { .. } => crate::docker::network::NetworkKind::AttachableOverlay,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Launch::Container => "container",
            Launch::Service { .. } => "service",
        }
    }
}

fn filters(agent_id: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([(
        "label".to_string(),
        vec![format!("{LABEL_MANAGED}=true"), format!("{LABEL_TYPE}=tunnel"), format!("{LABEL_AGENT}={agent_id}")],
    )])
}

/// The label `docker stack rm` finds a stack's objects by.
pub const LABEL_STACK_NAMESPACE: &str = "com.docker.stack.namespace";

fn labels(agent_id: &str, desired: &DesiredConnector) -> HashMap<String, String> {
    let mut labels = HashMap::from([
        (LABEL_MANAGED.to_string(), "true".to_string()),
        (LABEL_TYPE.to_string(), "tunnel".to_string()),
        (LABEL_AGENT.to_string(), agent_id.to_string()),
        (LABEL_TUNNEL.to_string(), desired.tunnel_id.clone()),
        (LABEL_HASH.to_string(), desired.config_hash.clone()),
    ]);
    if let Some(namespace) = &desired.stack_namespace {
        labels.insert(LABEL_STACK_NAMESPACE.to_string(), namespace.clone());
    }
    labels
}

/// Lets a standalone connector reach services on the Docker host (the master's built-in
/// emulator in offline mode) as `host.docker.internal`, as Docker Desktop does.
pub const HOST_GATEWAY: &str = "host.docker.internal:host-gateway";

type PortMap = HashMap<String, Option<Vec<PortBinding>>>;
type ExposedPorts = HashMap<String, HashMap<(), ()>>;

/// `--connector-publish` as Docker's `PortBindings` and `ExposedPorts`.
fn port_bindings(desired: &DesiredConnector) -> (PortMap, ExposedPorts) {
    let mut bindings: PortMap = HashMap::new();
    let mut exposed: ExposedPorts = HashMap::new();
    for publish in &desired.publish {
        let key = format!("{}/{}", publish.container_port, publish.protocol);
        exposed.insert(key.clone(), HashMap::new());
        bindings
            .entry(key)
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(PortBinding { host_ip: publish.host_ip.clone(), host_port: Some(publish.host_port.to_string()) });
    }
    (bindings, exposed)
}

/// `--connector-publish` as a Swarm endpoint: each port published in host mode on the one node
/// that runs the connector (the service is pinned to it), like `-p` on a standalone engine. The
/// host IP of a publish cannot be expressed in Swarm and is ignored there.
fn service_endpoint(desired: &DesiredConnector) -> Option<EndpointSpec> {
    let ports: Vec<EndpointPortConfig> = desired
        .publish
        .iter()
        .map(|publish| EndpointPortConfig {
            name: None,
            protocol: Some(if publish.protocol.eq_ignore_ascii_case("udp") {
                EndpointPortConfigProtocolEnum::UDP
            } else {
                EndpointPortConfigProtocolEnum::TCP
            }),
            target_port: Some(i64::from(publish.container_port)),
            published_port: Some(i64::from(publish.host_port)),
            publish_mode: Some(EndpointPortConfigPublishModeEnum::HOST),
        })
        .collect();
    (!ports.is_empty()).then_some(EndpointSpec { mode: None, ports: Some(ports) })
}

/// [`HOST_GATEWAY`] in the `/etc/hosts` form of a Swarm container spec (`IP NAME`).
fn service_hosts() -> Vec<String> {
    let (name, address) = HOST_GATEWAY.split_once(':').unwrap_or((HOST_GATEWAY, ""));
    vec![format!("{address} {name}")]
}

fn environment(desired: &DesiredConnector) -> Vec<String> {
    vec![format!("TUNNEL_TOKEN={}", desired.token.expose_secret()), format!("TUNNEL_METRICS=0.0.0.0:{METRICS_PORT}")]
}

/// This agent's connectors on the engine.
pub async fn observe(
    docker: &Docker,
    launch: &Launch,
    agent_id: &str,
) -> Result<Vec<ObservedConnector>, bollard::errors::Error> {
    match launch {
        Launch::Container => {
            let options = ListContainersOptions { all: true, filters: Some(filters(agent_id)), ..Default::default() };
            let containers = docker.list_containers(Some(options)).await?;
            Ok(containers
                .into_iter()
                .filter_map(|c| {
                    Some(ObservedConnector {
                        id: c.id?,
                        config_hash: c.labels.and_then(|l| l.get(LABEL_HASH).cloned()).unwrap_or_default(),
                        state: c.state.map(|s| s.to_string()).unwrap_or_default(),
                    })
                })
                .collect())
        }
        Launch::Service { .. } => {
            let services = docker
                .list_services(Some(ListServicesOptions { filters: Some(filters(agent_id)), ..Default::default() }))
                .await?;
            let mut observed = Vec::new();
            for service in services {
                let Some(id) = service.id else { continue };
                let tasks = docker
                    .list_tasks(Some(ListTasksOptions {
                        filters: Some(HashMap::from([("service".to_string(), vec![id.clone()])])),
                    }))
                    .await?;
                let running = tasks.iter().any(|t| {
                    t.status.as_ref().and_then(|s| s.state.as_ref()).is_some_and(|s| s.to_string() == "running")
                });
                observed.push(ObservedConnector {
                    config_hash: service
                        .spec
                        .and_then(|s| s.labels)
                        .and_then(|l| l.get(LABEL_HASH).cloned())
                        .unwrap_or_default(),
                    state: if running { "running".into() } else { "pending".into() },
                    id,
                });
            }
            Ok(observed)
        }
    }
}

/// Creates and starts the connector; returns its id.
pub async fn create(
    docker: &Docker,
    launch: &Launch,
    agent_id: &str,
    desired: &DesiredConnector,
) -> Result<String, bollard::errors::Error> {
    match launch {
        Launch::Container => {
            let (bindings, exposed) = port_bindings(desired);
            let body = ContainerCreateBody {
                image: Some(desired.image.clone()),
                cmd: Some(CONNECTOR_COMMAND.iter().map(|s| s.to_string()).collect()),
                env: Some(environment(desired)),
                labels: Some(labels(agent_id, desired)),
                exposed_ports: Some(exposed).filter(|e| !e.is_empty()),
                host_config: Some(HostConfig {
                    network_mode: Some(desired.network.clone()),
                    port_bindings: Some(bindings).filter(|b| !b.is_empty()),
                    extra_hosts: Some(vec![HOST_GATEWAY.to_string()]),
                    restart_policy: Some(RestartPolicy {
                        name: Some(RestartPolicyNameEnum::ALWAYS),
                        maximum_retry_count: None,
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let options = CreateContainerOptions { name: Some(desired.name.clone()), ..Default::default() };
            let created = match docker.create_container(Some(options.clone()), body.clone()).await {
                Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {
                    pull(docker, &desired.image).await?;
                    docker.create_container(Some(options), body).await?
                }
                Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => {
                    // A container of that name that is not ours (no labels) or left over.
                    let _ = docker
                        .remove_container(
                            &desired.name,
                            Some(RemoveContainerOptions { force: true, ..Default::default() }),
                        )
                        .await;
                    docker.create_container(Some(options), body).await?
                }
                other => other?,
            };
            docker.start_container(&created.id, None::<StartContainerOptions>).await?;
            Ok(created.id)
        }
        Launch::Service { node_id } => {
            let spec = ServiceSpec {
                name: Some(desired.name.clone()),
                labels: Some(labels(agent_id, desired)),
                task_template: Some(TaskSpec {
                    container_spec: Some(TaskSpecContainerSpec {
                        image: Some(desired.image.clone()),
                        args: Some(CONNECTOR_COMMAND.iter().map(|s| s.to_string()).collect()),
                        env: Some(environment(desired)),
                        labels: Some(labels(agent_id, desired)),
                        hosts: Some(service_hosts()),
                        ..Default::default()
                    }),
                    placement: Some(TaskSpecPlacement {
                        constraints: Some(vec![format!("node.id=={node_id}")]),
                        ..Default::default()
                    }),
                    restart_policy: Some(TaskSpecRestartPolicy {
                        condition: Some(TaskSpecRestartPolicyConditionEnum::ANY),
                        ..Default::default()
                    }),
                    networks: Some(vec![NetworkAttachmentConfig {
                        target: Some(desired.network.clone()),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
                endpoint_spec: service_endpoint(desired),
                ..Default::default()
            };
            let created = docker.create_service(spec, None).await?;
            Ok(created.id.unwrap_or_default())
        }
    }
}

async fn pull(docker: &Docker, image: &str) -> Result<(), bollard::errors::Error> {
    tracing::info!(message = "Pulling the connector image.", %image);
    let options = CreateImageOptions { from_image: Some(image.to_string()), ..Default::default() };
    let mut progress = docker.create_image(Some(options), None, None);
    while let Some(step) = progress.next().await {
        step?;
    }
    Ok(())
}

pub async fn start(docker: &Docker, id: &str) -> Result<(), bollard::errors::Error> {
    docker.start_container(id, None::<StartContainerOptions>).await
}

pub async fn remove(docker: &Docker, launch: &Launch, id: &str) -> Result<(), bollard::errors::Error> {
    let result = match launch {
        Launch::Container => {
            docker.remove_container(id, Some(RemoveContainerOptions { force: true, ..Default::default() })).await
        }
        Launch::Service { .. } => docker.delete_service(id).await,
    };
    match result {
        Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::plan::PortPublish;

    fn desired(publish: &[&str]) -> DesiredConnector {
        DesiredConnector {
            name: "dockflare-tunnel-1".into(),
            image: "dockflare/local-edge:latest".into(),
            network: "cloudflare-net".into(),
            tunnel_id: "t".into(),
            tunnel_name: "n".into(),
            token: secrecy::SecretString::from("token".to_string()),
            publish: publish.iter().filter_map(|p| PortPublish::parse(p).ok()).collect(),
            config_hash: "h".into(),
            stack_namespace: None,
        }
    }

    #[test]
    fn swarm_connectors_publish_in_host_mode_and_reach_the_host_gateway() {
        let endpoint = service_endpoint(&desired(&["127.0.0.1:18080:8080", "9000:9000/udp"]));
        let ports = endpoint.and_then(|e| e.ports).unwrap_or_default();
        assert_eq!(ports.len(), 2);
        assert_eq!(ports[0].published_port, Some(18080));
        assert_eq!(ports[0].target_port, Some(8080));
        assert_eq!(ports[0].publish_mode, Some(EndpointPortConfigPublishModeEnum::HOST));
        assert_eq!(ports[1].protocol, Some(EndpointPortConfigProtocolEnum::UDP));
        assert!(service_endpoint(&desired(&[])).is_none());
        assert_eq!(service_hosts(), vec!["host-gateway host.docker.internal".to_string()]);
    }
}
