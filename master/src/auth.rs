//! Who is calling: every call's client certificate chain is verified against
//! the master's CA and its DockFlare identity (URI SAN) is read (a chain
//! verified in the last minute is not verified again: [`crate::verified_chains`]).
//! Handlers ask for the role they need; the agent id always comes from here,
//! never from a request body.

use crate::verified_chains::{self, VerifiedChains};
use dockflare_common::identity::{AgentId, Identity};
use dockflare_common::pki::describe_certificate;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::{CertificateError, Error as TlsError};
use std::sync::Arc;
use tonic::{Request, Status};

/// An identity whose chain was verified for this call (a request extension).
#[derive(Clone, Debug)]
pub struct VerifiedIdentity {
    pub identity: Identity,
    /// The serial number (hex) of the certificate that carries it.
    pub serial: String,
}

/// Checks callers' certificates.
#[derive(Clone, Debug)]
pub struct Authenticator {
    verifier: Arc<dyn ClientCertVerifier>,
    verified: VerifiedChains<VerifiedIdentity>,
}

impl Authenticator {
    pub fn new(verifier: Arc<dyn ClientCertVerifier>) -> Authenticator {
        Authenticator { verifier, verified: VerifiedChains::default() }
    }

    /// The verified identity of the caller: the one [`crate::call_limits`] verified before
    /// the request was decoded, or (when the call did not pass that layer) verified here.
    pub fn identity<T>(&self, request: &Request<T>) -> Result<Identity, Status> {
        if let Some(verified) = request.extensions().get::<VerifiedIdentity>() {
            return Ok(verified.identity.clone());
        }
        let certs = request.peer_certs().ok_or_else(|| {
            Status::unauthenticated("no client certificate: this call needs a certificate issued by the master's CA")
        })?;
        Ok(self.verify_chain(&certs)?.identity)
    }

    /// Verifies a presented chain (end entity first) and reads its DockFlare identity.
    pub fn verify_chain(&self, certs: &[CertificateDer<'static>]) -> Result<VerifiedIdentity, Status> {
        let (end_entity, intermediates) = certs.split_first().ok_or_else(|| {
            Status::unauthenticated("no client certificate: this call needs a certificate issued by the master's CA")
        })?;
        let now = UnixTime::now();
        let now_secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        let key = verified_chains::key(end_entity);
        if let Some(verified) = self.verified.get(&key, now_secs) {
            return Ok(verified);
        }
        self.verifier.verify_client_cert(end_entity, intermediates, now).map_err(|error| {
            Status::unauthenticated(format!("client certificate rejected: {}", describe_tls_error(&error)))
        })?;
        let info = describe_certificate(end_entity)
            .map_err(|error| Status::unauthenticated(format!("client certificate unreadable: {error}")))?;
        let identity = info.identity().ok_or_else(|| {
            Status::unauthenticated("client certificate carries no DockFlare identity (spiffe://dockflare/... URI SAN)")
        })?;
        let verified = VerifiedIdentity { identity, serial: info.serial_hex };
        self.verified.put(key, verified.clone(), now_secs, info.not_after.unix_timestamp());
        Ok(verified)
    }

    /// The calling agent's id; PERMISSION_DENIED for admin certificates.
    pub fn agent<T>(&self, request: &Request<T>) -> Result<AgentId, Status> {
        match self.identity(request)? {
            Identity::Agent(id) => Ok(id),
            Identity::Admin { .. } => {
                Err(Status::permission_denied("AgentService needs an agent certificate, not an admin one"))
            }
        }
    }

    /// The calling admin's name; PERMISSION_DENIED for agent certificates.
    pub fn admin<T>(&self, request: &Request<T>) -> Result<String, Status> {
        match self.identity(request)? {
            Identity::Admin { name, .. } => Ok(name),
            Identity::Agent(id) => Err(Status::permission_denied(format!(
                "AdminService needs an admin certificate; agent {id} may not call it"
            ))),
        }
    }
}

fn describe_tls_error(error: &TlsError) -> String {
    use CertificateError::*;
    match error {
        // BadSignature: the issuer's name matches our CA but its key did not
        // sign the certificate, as with another master's CA (every generated
        // CA is called "DockFlare CA").
        TlsError::InvalidCertificate(UnknownIssuer | BadSignature) => "not issued by this master's CA".into(),
        TlsError::InvalidCertificate(Expired | ExpiredContext { .. }) => "expired (re-enroll the agent)".into(),
        TlsError::InvalidCertificate(NotValidYet | NotValidYetContext { .. }) => {
            "not valid yet (check the clocks)".into()
        }
        TlsError::InvalidCertificate(InvalidPurpose | InvalidPurposeContext { .. }) => {
            "not a client certificate".into()
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_errors_are_explained() {
        let cases = [
            (CertificateError::UnknownIssuer, "not issued by this master's CA"),
            (CertificateError::BadSignature, "not issued by this master's CA"),
            (CertificateError::Expired, "expired (re-enroll the agent)"),
            (
                CertificateError::NotValidYetContext {
                    time: UnixTime::since_unix_epoch(std::time::Duration::from_secs(1)),
                    not_before: UnixTime::since_unix_epoch(std::time::Duration::from_secs(2)),
                },
                "not valid yet (check the clocks)",
            ),
            (
                CertificateError::InvalidPurposeContext {
                    required: rustls::ExtendedKeyPurpose::ClientAuth,
                    presented: vec![],
                },
                "not a client certificate",
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(describe_tls_error(&TlsError::InvalidCertificate(error.clone())), expected, "{error:?}");
        }
    }
}
