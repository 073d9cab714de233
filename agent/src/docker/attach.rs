//! Connecting enabled containers to the connector's network on a standalone engine, aliased by
//! their name, so that the connector resolves `http://NAME:PORT`. A container is reported to
//! the master once it is attached: its route goes live when the edge can reach it. Many at once
//! (a relist) cost one look at the network and [`CONNECTS_IN_FLIGHT`] connects at a time; one
//! (an engine event) costs nothing when its own inspection shows it attached, else one connect
//! (and, only if that fails, a look at the network and a second try).
//! Failures are logged and never fatal (a `--network host` container cannot be attached, say):
//! the container is reported all the same.

use super::network::{self, NetworkKind};
use bollard::models::{EndpointSettings, NetworkConnectRequest};
use bollard::query_parameters::InspectNetworkOptions;
use bollard::Docker;
use futures::StreamExt;
use std::collections::HashSet;

/// Connects at a time during a relist: the engine serialises part of each connect, and a burst
/// of starts keeps it busy (measured with 20 connects on an idle engine: 2.5 s one by one, 1.2 s
/// all at once).
pub const CONNECTS_IN_FLIGHT: usize = 4;

/// A container to connect to the connector network: its id and name (its alias there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    pub name: String,
}

/// Connects those of `members` not on `network` yet, a few at a time, and calls `done` for each
/// member as soon as it is on the network (or could not be put there).
pub async fn attach_many(docker: &Docker, network: &str, members: Vec<Member>, mut done: impl FnMut(&Member)) {
    if members.is_empty() {
        return;
    }
    let attached = match on_network(docker, network).await {
        Some(attached) => attached,
        None => {
            members.iter().for_each(&mut done);
            return;
        }
    };
    let (already, missing): (Vec<Member>, Vec<Member>) =
        members.into_iter().partition(|member| attached.contains(&member.id));
    already.iter().for_each(&mut done);
    let mut connects = futures::stream::iter(missing)
        .map(|member| async move {
            connect_logged(docker, network, &member).await;
            member
        })
        .buffer_unordered(CONNECTS_IN_FLIGHT);
    while let Some(member) = connects.next().await {
        done(&member);
    }
}

/// Connects `member` unless its own inspection said it is on `network` (`attached`). A connect
/// that fails otherwise than "already attached" is tried once more after making sure the network
/// exists: it may be missing, or being created right now by the connector manager (the engine then
/// answers 404 or 500, "network … not found"), and `ensure` waits for a creation in progress.
pub async fn attach_one(docker: &Docker, network: &str, member: &Member, attached: bool) {
    if attached {
        return;
    }
    match connect(docker, network, member).await {
        Ok(()) => log_outcome(network, member, Ok(())),
        Err(error) if already_attached(&error) => {}
        Err(error) => {
            tracing::debug!(message = "Could not attach the container yet; making sure the network exists, then retrying.", container = %member.name, %network, %error);
            if let Err(error) = network::ensure(docker, network, NetworkKind::Bridge).await {
                tracing::warn!(message = "Cannot create the connector network to attach containers to.", %network, %error);
                return;
            }
            connect_logged(docker, network, member).await;
        }
    }
}

fn already_attached(error: &bollard::errors::Error) -> bool {
    matches!(error, bollard::errors::Error::DockerResponseServerError { message, .. } if message.contains("already exists"))
}

/// The ids of the containers on `network` (created when missing); `None` when it cannot be read.
async fn on_network(docker: &Docker, network: &str) -> Option<HashSet<String>> {
    if let Err(error) = network::ensure(docker, network, NetworkKind::Bridge).await {
        tracing::warn!(message = "Cannot create the connector network to attach containers to.", %network, %error);
        return None;
    }
    match docker.inspect_network(network, None::<InspectNetworkOptions>).await {
        Ok(inspect) => Some(inspect.containers.unwrap_or_default().into_keys().collect()),
        Err(error) => {
            tracing::warn!(message = "Cannot inspect the connector network.", %network, %error);
            None
        }
    }
}

async fn connect(docker: &Docker, network: &str, member: &Member) -> Result<(), bollard::errors::Error> {
    let request = NetworkConnectRequest {
        container: Some(member.id.clone()),
        endpoint_config: Some(EndpointSettings { aliases: Some(vec![member.name.clone()]), ..Default::default() }),
    };
    docker.connect_network(network, request).await
}

async fn connect_logged(docker: &Docker, network: &str, member: &Member) {
    log_outcome(network, member, connect(docker, network, member).await);
}

fn log_outcome(network: &str, member: &Member, outcome: Result<(), bollard::errors::Error>) {
    match outcome {
        Ok(()) => {
            tracing::info!(message = "Container attached to the connector network.", container = %member.name, %network)
        }
        Err(error) if already_attached(&error) => {}
        Err(error) => tracing::warn!(
            message = "Cannot attach the container to the connector network; the connector may not reach it.",
            container = %member.name,
            %network,
            %error,
        ),
    }
}
