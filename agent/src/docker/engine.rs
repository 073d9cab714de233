//! Connecting to the Docker engine and learning what kind of host it is.
//! The API version is negotiated: Debian's engine speaks 1.41 while bollard
//! defaults to a newer one.

use bollard::Docker;

/// Why the engine could not be used.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot connect to the Docker engine (DOCKER_HOST or /var/run/docker.sock): {0}")]
    Connect(bollard::errors::Error),
    #[error("the Docker engine did not answer: {0}")]
    Request(#[from] bollard::errors::Error),
    #[error("--mode swarm, but this Docker engine is not part of a Swarm")]
    NotInSwarm,
}

/// How the host runs containers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMode {
    Standalone {
        engine_id: String,
    },
    Swarm {
        node_id: String,
        manager: bool,
        /// The swarm's cluster id (managers only see it; "" on workers).
        cluster_id: String,
        /// The managers' node ids, sorted (every node sees them).
        managers: Vec<String>,
    },
}

/// The operator's choice (`--mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeChoice {
    Auto,
    Standalone,
    Swarm,
}

/// A client for the engine named by DOCKER_HOST (default: the local socket),
/// speaking the engine's API version.
pub async fn connect() -> Result<Docker, EngineError> {
    let docker = Docker::connect_with_defaults().map_err(EngineError::Connect)?;
    docker.negotiate_version().await.map_err(EngineError::Connect)
}

/// Detects standalone or Swarm (`choice` overrides detection).
pub async fn detect_mode(docker: &Docker, choice: ModeChoice) -> Result<HostMode, EngineError> {
    let info = docker.info().await?;
    let swarm = info.swarm.as_ref();
    let node_id = swarm.and_then(|s| s.node_id.clone()).filter(|id| !id.is_empty());
    let in_swarm = swarm.and_then(|s| s.local_node_state.as_ref()).is_some_and(|state| state.to_string() == "active")
        && node_id.is_some();
    let manager = swarm.and_then(|s| s.control_available).unwrap_or(false);
    let cluster_id = swarm.and_then(|s| s.cluster.as_ref()).and_then(|c| c.id.clone()).unwrap_or_default();
    let mut managers: Vec<String> = swarm
        .and_then(|s| s.remote_managers.as_ref())
        .map(|peers| peers.iter().filter_map(|peer| peer.node_id.clone()).filter(|id| !id.is_empty()).collect())
        .unwrap_or_default();
    managers.sort();
    managers.dedup();
    let engine_id = info.id.clone().unwrap_or_default();
    match (choice, in_swarm, node_id) {
        (ModeChoice::Standalone, _, _) | (ModeChoice::Auto, false, _) => Ok(HostMode::Standalone { engine_id }),
        (ModeChoice::Swarm | ModeChoice::Auto, true, Some(node_id)) => {
            Ok(HostMode::Swarm { node_id, manager, cluster_id, managers })
        }
        (ModeChoice::Swarm, _, _) => Err(EngineError::NotInSwarm),
        (ModeChoice::Auto, true, None) => Ok(HostMode::Standalone { engine_id }),
    }
}

/// The stack this agent's own container belongs to (its `com.docker.stack.namespace` label),
/// when it runs as a task of `docker stack deploy`; `None` outside a container or a stack. The
/// container is found by its host name, which Docker sets to the container's id.
pub async fn own_stack_namespace(docker: &Docker) -> Option<String> {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let inspect = docker
        .inspect_container(hostname.trim(), None::<bollard::query_parameters::InspectContainerOptions>)
        .await
        .ok()?;
    inspect.config?.labels?.get("com.docker.stack.namespace").cloned()
}
