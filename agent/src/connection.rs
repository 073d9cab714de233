//! Opening mutual-TLS channels to the master, trying each configured master
//! URL in turn (the last one that worked first).

use crate::identity::AgentIdentity;
use dockflare_common::error_text::error_chain;
use secrecy::ExposeSecret;
use std::time::Duration;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// A channel to one master, authenticated with `identity`.
pub async fn connect(url: &str, identity: &AgentIdentity) -> Result<Channel, String> {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&identity.ca_pem))
        .identity(Identity::from_pem(&identity.certificate_pem, identity.key_pem.expose_secret()));
    Endpoint::from_shared(url.to_string())
        .map_err(|e| format!("{url}: {e}"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true)
        .tls_config(tls)
        .map_err(|e| format!("{url}: {}", error_chain(&e)))?
        .connect()
        .await
        .map_err(|e| format!("{url}: {}", error_chain(&e)))
}

/// Connects to the first reachable master, starting at `preferred`.
/// Returns the channel and the index of the URL that worked.
pub async fn connect_any(
    urls: &[String],
    preferred: usize,
    identity: &AgentIdentity,
) -> Result<(Channel, usize), String> {
    let mut failures = Vec::new();
    for offset in 0..urls.len() {
        let index = (preferred + offset) % urls.len();
        match connect(&urls[index], identity).await {
            Ok(channel) => return Ok((channel, index)),
            Err(error) => failures.push(error),
        }
    }
    Err(if failures.is_empty() { "no master URL configured".into() } else { failures.join("; ") })
}
