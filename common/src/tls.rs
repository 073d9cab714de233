//! The master's TLS configuration, here so that the fleet benchmark's floor serves the very
//! same one (the master's accept loop is its `listener` module).
//!
//! Client certificates are requested but not required (Enroll, health and
//! reflection work without one), and their chain is *not* judged during the
//! handshake: the handshake only proves the client holds the certificate's
//! key. The master's `auth` module verifies the chain against the CA on every call, so a
//! certificate from another CA gets a gRPC `UNAUTHENTICATED` that says so
//! instead of a bare TLS alert.

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme};
use std::sync::Arc;

/// Why the TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("server certificate: {0}")]
    Certificate(String),
    #[error("server key: {0}")]
    Key(String),
    #[error("CA certificate: {0}")]
    Ca(String),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The crypto provider every DockFlare TLS endpoint uses.
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Verifies client certificate chains against the master's CA.
pub fn client_chain_verifier(ca_der: &[u8]) -> Result<Arc<dyn ClientCertVerifier>, TlsSetupError> {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(ca_der.to_vec())).map_err(|e| TlsSetupError::Ca(e.to_string()))?;
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), crypto_provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsSetupError::Ca(e.to_string()))
}

/// Builds the server configuration: our certificate chain (server cert, then
/// the CA, so that an enrolling agent can check the CA against its join
/// token), HTTP/2 only, optional client certificates.
pub fn server_config(
    server_cert_pem: &str,
    server_key_pem: &str,
    ca_der: &[u8],
    chain_verifier: Arc<dyn ClientCertVerifier>,
) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let mut chain: Vec<CertificateDer<'static>> = crate::pki::pem_certificates_der(server_cert_pem)
        .map_err(|e| TlsSetupError::Certificate(e.to_string()))?
        .into_iter()
        .map(CertificateDer::from)
        .collect();
    if !chain.iter().any(|cert| cert.as_ref() == ca_der) {
        chain.push(CertificateDer::from(ca_der.to_vec()));
    }
    let key =
        PrivateKeyDer::from_pem_slice(server_key_pem.as_bytes()).map_err(|e| TlsSetupError::Key(e.to_string()))?;
    let mut config = ServerConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(Arc::new(DeferredChainVerifier { inner: chain_verifier }))
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

use rustls::pki_types::pem::PemObject;

/// Requests a client certificate and checks the handshake signature, but
/// leaves the chain to `auth` (see the module docs).
#[derive(Debug)]
struct DeferredChainVerifier {
    inner: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for DeferredChainVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
