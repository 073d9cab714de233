//! Mutual-TLS gRPC channels to a master, as its agents and operators open them.

use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::time::Duration;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// A TLS channel to the master at `addr` that trusts `ca_pem` (server name "localhost") and,
/// when given, authenticates with `client` (certificate PEM, key PEM).
pub async fn mtls_channel(addr: SocketAddr, ca_pem: &str, client: Option<(&str, &str)>) -> Result<Channel> {
    mtls_channel_from(addr, ca_pem, client, None).await
}

/// [`mtls_channel`] from a chosen local address (127.0.0.2 and so on: another source).
pub async fn mtls_channel_from(
    addr: SocketAddr,
    ca_pem: &str,
    client: Option<(&str, &str)>,
    local: Option<std::net::IpAddr>,
) -> Result<Channel> {
    let endpoint = endpoint(addr, ca_pem, client)?.tcp_nodelay(true).local_address(local);
    endpoint.connect().await.with_context(|| format!("connecting to the master at {addr}"))
}

/// The endpoint every test channel starts from: the master's CA, the client identity if any.
fn endpoint(addr: SocketAddr, ca_pem: &str, client: Option<(&str, &str)>) -> Result<Endpoint> {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca_pem)).domain_name("localhost");
    if let Some((cert, key)) = client {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    Ok(Endpoint::from_shared(format!("https://{addr}"))?.tls_config(tls)?.connect_timeout(Duration::from_secs(10)))
}

/// [`mtls_channel`] for a client that reads slowly: HTTP/2 lets the server send it only a few
/// KiB ahead of what it has read.
pub async fn slow_reader_channel(addr: SocketAddr, ca_pem: &str, client: Option<(&str, &str)>) -> Result<Channel> {
    let endpoint = endpoint(addr, ca_pem, client)?
        .initial_stream_window_size(Some(4096))
        .initial_connection_window_size(Some(65_535));
    endpoint.connect().await.with_context(|| format!("connecting to the master at {addr}"))
}
