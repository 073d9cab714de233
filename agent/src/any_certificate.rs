//! A rustls server-certificate verifier that accepts any certificate yet still checks the
//! handshake signatures (so the peer holds the key of what it presented), optionally recording
//! the chain presented. For the places that decide trust another way: enrollment (the chain must
//! contain the CA the join token pins) and the local edge's `noTLSVerify` origins.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::{Arc, Mutex, PoisonError};

#[derive(Debug)]
pub struct AnyCertificate {
    provider: Arc<CryptoProvider>,
    /// The last chain presented (end entity first), when recording.
    presented: Option<Mutex<Vec<Vec<u8>>>>,
}

impl AnyCertificate {
    /// Accepts any certificate; keeps nothing.
    pub fn new(provider: Arc<CryptoProvider>) -> AnyCertificate {
        AnyCertificate { provider, presented: None }
    }

    /// Accepts any certificate and keeps the chain presented, for [`AnyCertificate::presented_chain`].
    pub fn recording(provider: Arc<CryptoProvider>) -> AnyCertificate {
        AnyCertificate { provider, presented: Some(Mutex::default()) }
    }

    /// The last chain presented (DER, end entity first); empty when none was, or not recording.
    pub fn presented_chain(&self) -> Vec<Vec<u8>> {
        self.presented
            .as_ref()
            .map(|chain| chain.lock().unwrap_or_else(PoisonError::into_inner).clone())
            .unwrap_or_default()
    }
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(presented) = &self.presented {
            *presented.lock().unwrap_or_else(PoisonError::into_inner) =
                std::iter::once(end_entity).chain(intermediates).map(|c| c.to_vec()).collect();
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
