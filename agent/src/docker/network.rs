//! The network connectors and labelled containers meet on: created when missing (a bridge on a
//! standalone engine, an attachable overlay in Swarm, labelled as DockFlare's), one creation at a
//! time, and a name made ambiguous by concurrent creators repaired. In Swarm, a network of that
//! name of the wrong kind (a local bridge from an earlier standalone run, one made by hand or by
//! the Python DockFlare's `cloudflare-net`) is replaced when it is DockFlare's and unused, and is
//! otherwise a clear error that names the network and the fix — never a service create retried
//! against it for ever.

use bollard::models::NetworkCreateRequest;
use bollard::query_parameters::{InspectNetworkOptions, ListNetworksOptions};
use bollard::Docker;
use std::collections::HashMap;

/// The label on networks this agent creates (the same key marks its connectors).
pub const LABEL_MANAGED: &str = "dockflare.managed";

/// Why the connector network cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error(
        "network {name} is a {driver} network{why}; Swarm connectors need an attachable overlay: remove it \
         (docker network rm {name}) or give the agent another --network (CLOUDFLARED_NETWORK_NAME)"
    )]
    WrongKind { name: String, driver: String, why: String },
    #[error("Docker: {0}")]
    Docker(#[from] bollard::errors::Error),
}

/// What an existing network of the connector network's name is to the agent.
#[derive(Debug, PartialEq, Eq)]
pub enum Existing {
    /// Usable as it is.
    Fits,
    /// DockFlare's, unused, of the wrong kind: remove it and create the right one.
    Replace,
    /// Of the wrong kind and not DockFlare's, or in use: the operator decides.
    Refuse(String),
}

/// Decides about an existing network (`driver`, whether attachable, DockFlare's label, how many
/// containers are attached) for `kind`. Pure.
pub fn judge(kind: NetworkKind, driver: &str, attachable: bool, ours: bool, attached: usize) -> Existing {
    let fits = match kind {
        // Containers join any network their engine has.
        NetworkKind::Bridge => true,
        NetworkKind::AttachableOverlay => driver == "overlay" && attachable,
    };
    if fits {
        return Existing::Fits;
    }
    if !ours {
        return Existing::Refuse(" that DockFlare did not create".into());
    }
    if attached > 0 {
        return Existing::Refuse(format!(" with {attached} container(s) attached"));
    }
    Existing::Replace
}

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
pub async fn ensure(docker: &Docker, name: &str, kind: NetworkKind) -> Result<(), NetworkError> {
    let _single_flight = NETWORK_CREATION.lock().await;
    match docker.inspect_network(name, None::<InspectNetworkOptions>).await {
        Ok(existing) => {
            let driver = existing.driver.clone().unwrap_or_default();
            let ours = existing.labels.as_ref().is_some_and(|labels| labels.contains_key(LABEL_MANAGED));
            let attached = existing.containers.as_ref().map_or(0, |c| c.len());
            match judge(kind, &driver, existing.attachable.unwrap_or(false), ours, attached) {
                Existing::Fits => return Ok(()),
                Existing::Refuse(why) => return Err(NetworkError::WrongKind { name: name.to_string(), driver, why }),
                Existing::Replace => {
                    tracing::warn!(message = "Replacing the connector network: it is DockFlare's, unused, and of the wrong kind.", network = %name, driver = %driver);
                    docker.remove_network(name).await?;
                }
            }
        }
        Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {}
        Err(bollard::errors::Error::DockerResponseServerError { status_code: 400, message })
            if message.contains("ambiguous") =>
        {
            return Ok(remove_duplicate_networks(docker, name).await?);
        }
        Err(error) => return Err(error.into()),
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
        labels: Some(HashMap::from([(LABEL_MANAGED.to_string(), "true".to_string())])),
        ..Default::default()
    };
    match docker.create_network(request).await {
        Ok(_) => Ok(()),
        // Created concurrently by someone else: fine.
        Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => Ok(()),
        Err(error) => Err(error.into()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_network_of_the_wrong_kind_is_replaced_only_when_ours_and_unused() {
        use NetworkKind::*;
        assert_eq!(judge(AttachableOverlay, "overlay", true, false, 3), Existing::Fits);
        assert_eq!(judge(Bridge, "overlay", true, false, 0), Existing::Fits, "containers join an overlay too");
        assert_eq!(judge(AttachableOverlay, "bridge", false, true, 0), Existing::Replace);
        assert!(
            matches!(judge(AttachableOverlay, "bridge", false, false, 0), Existing::Refuse(why) if why.contains("did not create"))
        );
        assert!(
            matches!(judge(AttachableOverlay, "bridge", false, true, 2), Existing::Refuse(why) if why.contains("2 container"))
        );
        assert!(matches!(judge(AttachableOverlay, "overlay", false, false, 0), Existing::Refuse(_)), "not attachable");
    }
}
