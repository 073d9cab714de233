//! HTTP clients of the local edge: one per origin rule (its own connect timeout and certificate
//! checking, like cloudflared's per-rule origin transports), and one for the emulator. HTTP/1.1
//! over TCP, TLS by rustls with the webpki roots (the image has no system store); `noTLSVerify`
//! skips the certificate checks but still verifies the handshake signatures.

use crate::any_certificate::AnyCertificate;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::{ClientConfig, RootCertStore};
use std::sync::Arc;
use std::time::Duration;

/// The body type every client sends: a request's own streaming body, or a small local one.
pub type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// An HTTP(S) client.
pub type HttpClient = Client<HttpsConnector<HttpConnector>, ProxyBody>;

/// cloudflared's default `connectTimeout`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle origin connections are kept this long (cloudflared's `keepAliveTimeout`).
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// …and at most this many per origin (`keepAliveConnections`).
const IDLE_PER_HOST: usize = 100;

/// Why the TLS setup failed (only when the crypto provider lacks the default protocol versions).
#[derive(Debug, thiserror::Error)]
#[error("TLS client setup: {0}")]
pub struct TlsSetupError(#[from] rustls::Error);

/// The two TLS client configurations: verifying, and `noTLSVerify`.
#[derive(Clone)]
pub struct Tls {
    verified: Arc<ClientConfig>,
    unverified: Arc<ClientConfig>,
}

impl Tls {
    pub fn new() -> Result<Tls, TlsSetupError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        // No ALPN here: the connector builder sets it (HTTP/1.1) and refuses a preset one.
        let verified = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let unverified = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate::new(provider)))
            .with_no_client_auth();
        Ok(Tls { verified: Arc::new(verified), unverified: Arc::new(unverified) })
    }

    /// A client; `verify: false` is `noTLSVerify`.
    pub fn client(&self, verify: bool, connect_timeout: Duration) -> HttpClient {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(connect_timeout));
        http.set_nodelay(true);
        let config = if verify { &self.verified } else { &self.unverified };
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config((**config).clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Client::builder(TokioExecutor::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_max_idle_per_host(IDLE_PER_HOST)
            .build(connector)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn clients_can_be_made() {
        let tls = match Tls::new() {
            Ok(tls) => tls,
            Err(error) => panic!("{error}"),
        };
        // The connector builder panics on a TLS configuration it does not accept: make both kinds.
        let _verifying = tls.client(true, DEFAULT_CONNECT_TIMEOUT);
        let _unverified = tls.client(false, Duration::from_secs(1));
    }
}
