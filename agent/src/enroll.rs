//! First contact: exchanging a join token for a certificate.
//!
//! The agent knows only the master's URL and the join token, which pins the
//! master's CA by digest. It first fetches the master's certificate chain
//! (sending nothing), keeps the CA whose digest matches the token, and only
//! then opens a normally verified TLS connection, trusting that CA alone, to
//! send the token and a CSR. A master that cannot show the pinned CA never
//! sees the token.

use crate::any_certificate::AnyCertificate;
use crate::identity::AgentIdentity;
use dockflare::v1::agent_service_client::AgentServiceClient;
use dockflare::v1::EnrollRequest;
use dockflare_common::error_text::error_chain;
use dockflare_common::join_token::{certificate_digest, JoinToken};
use dockflare_common::pki::{der_to_pem, new_key_and_csr, pem_certificates_der};
use rustls::pki_types::ServerName;
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why enrollment failed.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("master URL {0:?} is not https://HOST:PORT")]
    BadUrl(String),
    #[error("cannot reach the master at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error(
        "the master at {0} shows no CA matching the join token's digest: wrong master, wrong token, or an interception"
    )]
    CaMismatch(String),
    #[error("the master refused enrollment: {0}")]
    Refused(String),
    #[error("the master could not enroll us now: {0}")]
    Unavailable(String),
    #[error("the master's answer is invalid: {0}")]
    BadAnswer(String),
    #[error("cannot create a key: {0}")]
    Key(String),
}

/// Enrolls with the master at `url`.
pub async fn enroll(url: &str, token: &JoinToken, display_name: &str) -> Result<AgentIdentity, EnrollError> {
    let (host, port) = host_and_port(url)?;
    let ca_der = fetch_pinned_ca(url, &host, port, &token.ca_digest).await?;
    let ca_pem = der_to_pem(&ca_der);
    let endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|_| EnrollError::BadUrl(url.to_string()))?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(Duration::from_secs(30))
        .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&ca_pem)))
        .map_err(|e| EnrollError::Unreachable { url: url.to_string(), reason: e.to_string() })?;
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| EnrollError::Unreachable { url: url.to_string(), reason: error_chain(&e) })?;
    let (key_pem, csr_der) = new_key_and_csr(display_name).map_err(|e| EnrollError::Key(e.to_string()))?;
    let request = EnrollRequest { join_token: token.expose(), csr_der, display_name: display_name.to_string() };
    let response = AgentServiceClient::new(channel)
        .enroll(request)
        .await
        .map_err(|status| {
            let text = format!("{:?}: {}", status.code(), status.message());
            match status.code() {
                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::ResourceExhausted => {
                    EnrollError::Unavailable(text)
                }
                _ => EnrollError::Refused(text),
            }
        })?
        .into_inner();
    let returned_cas =
        pem_certificates_der(&response.ca_certificates_pem).map_err(|e| EnrollError::BadAnswer(e.to_string()))?;
    if !returned_cas.iter().any(|der| certificate_digest(der) == token.ca_digest) {
        return Err(EnrollError::BadAnswer("ca_certificates_pem does not contain the pinned CA".into()));
    }
    AgentIdentity::new(response.agent_id, response.certificate_pem, key_pem, response.ca_certificates_pem)
        .map_err(EnrollError::BadAnswer)
}

/// Host and port of an https URL.
pub fn host_and_port(url: &str) -> Result<(String, u16), EnrollError> {
    let uri: tonic::transport::Uri = url.parse().map_err(|_| EnrollError::BadUrl(url.to_string()))?;
    if uri.scheme_str() != Some("https") {
        return Err(EnrollError::BadUrl(url.to_string()));
    }
    let host = uri.host().ok_or_else(|| EnrollError::BadUrl(url.to_string()))?;
    let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
    Ok((host, uri.port_u16().unwrap_or(443)))
}

/// Fetches the master's chain and returns the certificate whose digest the token pins.
async fn fetch_pinned_ca(url: &str, host: &str, port: u16, digest: &[u8; 32]) -> Result<Vec<u8>, EnrollError> {
    let unreachable = |reason: String| EnrollError::Unreachable { url: url.to_string(), reason };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // Trust is decided afterwards, by the pinned digest; the handshake signature is checked.
    let recorder = Arc::new(AnyCertificate::recording(provider.clone()));
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| unreachable(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_no_client_auth();
    let server_name = ServerName::try_from(host.to_string()).map_err(|_| EnrollError::BadUrl(url.to_string()))?;
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect((host, port)))
        .await
        .map_err(|_| unreachable("connection timed out".into()))?
        .map_err(|e| unreachable(e.to_string()))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    // The handshake may fail after the chain was seen (we offer no client
    // certificate); only the recorded chain matters here.
    let _ = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(server_name, tcp)).await;
    let chain = recorder.presented_chain();
    if chain.is_empty() {
        return Err(unreachable("the TLS handshake did not present a certificate".into()));
    }
    chain
        .into_iter()
        .find(|der| certificate_digest(der) == *digest)
        .ok_or_else(|| EnrollError::CaMismatch(url.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_urls_with_a_host_are_accepted() {
        assert_eq!(host_and_port("https://master.example:8443").ok(), Some(("master.example".into(), 8443)));
        assert_eq!(host_and_port("https://[::1]:9000").ok(), Some(("::1".into(), 9000)));
        assert_eq!(host_and_port("https://m").ok(), Some(("m".into(), 443)));
        assert!(host_and_port("http://m:80").is_err());
        assert!(host_and_port("m:80").is_err());
    }
}
