//! The network connectors and labelled containers meet on: created when missing (a bridge on a
//! standalone engine, an attachable overlay in Swarm), one creation at a time, and a name made
//! ambiguous by concurrent creators repaired.

use bollard::models::NetworkCreateRequest;
use bollard::query_parameters::{InspectNetworkOptions, ListNetworksOptions};
use bollard::Docker;
use std::collections::HashMap;

/// What kind of network to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkKind {
    /// A standalone engine's containers.
    Bridge,
    /// Swarm services and containers on any node.
    AttachableOverlay,
}

/// One network creation at a time in this agent: the connector manager and the watcher (attaching
/// containers) both ensure the network, and engines before API 1.44 accept two bridge networks
/// of one name, after which every use of the name is "ambiguous". A single-flight guard around
/// one Docker call, not shared state: nothing else waits on it.
static NETWORK_CREATION: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Creates the network when missing (an attachable overlay in Swarm). Repairs a name made
/// ambiguous by concurrent creators (another agent on the engine, say): see [`remove_duplicate_networks`].
pub async fn ensure(docker: &Docker, name: &str, kind: NetworkKind) -> Result<(), bollard::errors::Error> {
    let _single_flight = NETWORK_CREATION.lock().await;
    match docker.inspect_network(name, None::<InspectNetworkOptions>).await {
        Ok(_) => return Ok(()),
        Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {}
        Err(bollard::errors::Error::DockerResponseServerError { status_code: 400, message })
            if message.contains("ambiguous") =>
        {
            return remove_duplicate_networks(docker, name).await;
        }
        Err(error) => return Err(error),
    }
    let (driver, attachable) = match kind {
        NetworkKind::Bridge => ("bridge", None),
        NetworkKind::AttachableOverlay => ("overlay", Some(true)),
    };
    tracing::info!(message = "Creating the connector network.", network = %name, driver);
    let request = NetworkCreateRequest {
        name: name.to_string(),
        driver: Some(driver.to_string()),
        attachable,
        ..Default::default()
    };
    match docker.create_network(request).await {
        Ok(_) => Ok(()),
        // Created concurrently by someone else: fine.
        Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => Ok(()),
        Err(error) => Err(error),
    }
}

/// Several networks share `name`: keeps the oldest and removes the others that nothing is
/// attached to. A duplicate in use is left alone (and logged): removing it would cut containers off.
async fn remove_duplicate_networks(docker: &Docker, name: &str) -> Result<(), bollard::errors::Error> {
    let filters = HashMap::from([("name".to_string(), vec![name.to_string()])]);
    let mut networks: Vec<_> = docker
        .list_networks(Some(ListNetworksOptions { filters: Some(filters) }))
        .await?
        .into_iter()
        .filter(|network| network.name.as_deref() == Some(name))
        .collect();
    networks.sort_by(|a, b| a.created.cmp(&b.created));
    for duplicate in networks.iter().skip(1) {
        let Some(id) = duplicate.id.as_deref() else { continue };
        let in_use = docker
            .inspect_network(id, None::<InspectNetworkOptions>)
            .await?
            .containers
            .is_some_and(|containers| !containers.is_empty());
        if in_use {
            tracing::warn!(message = "Several networks have the connector network's name; this one is in use and stays: remove it by hand.", network = %name, %id);
            continue;
        }
        tracing::warn!(message = "Removing a duplicate of the connector network (same name, created concurrently).", network = %name, %id);
        match docker.remove_network(id).await {
            Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}
