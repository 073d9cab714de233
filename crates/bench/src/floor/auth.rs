//! Who is calling: the client certificate's chain verified against the CA on every call (as the
//! master does, with the same rustls verifier) and its DockFlare identity read from the URI SAN.

use dockflare_common::identity::{AgentId, Identity};
use dockflare_common::pki::describe_certificate;
use rustls::pki_types::UnixTime;
use rustls::server::danger::ClientCertVerifier;
use std::sync::Arc;
use tonic::{Request, Status};

/// Verifies callers' certificates.
pub struct Authenticator {
    verifier: Arc<dyn ClientCertVerifier>,
}

impl Authenticator {
    pub fn new(verifier: Arc<dyn ClientCertVerifier>) -> Authenticator {
        Authenticator { verifier }
    }

    /// The calling agent's id; UNAUTHENTICATED without a valid agent certificate.
    pub fn agent<T>(&self, request: &Request<T>) -> Result<AgentId, Status> {
        let certs = request.peer_certs().ok_or_else(|| Status::unauthenticated("no client certificate"))?;
        let (end_entity, intermediates) =
            certs.split_first().ok_or_else(|| Status::unauthenticated("no client certificate"))?;
        self.verifier
            .verify_client_cert(end_entity, intermediates, UnixTime::now())
            .map_err(|error| Status::unauthenticated(format!("client certificate rejected: {error}")))?;
        let info = describe_certificate(end_entity)
            .map_err(|error| Status::unauthenticated(format!("client certificate unreadable: {error}")))?;
        match info.identity() {
            Some(Identity::Agent(id)) => Ok(id),
            Some(Identity::Admin { .. }) => Err(Status::permission_denied("AgentService needs an agent certificate")),
            None => Err(Status::unauthenticated("client certificate carries no DockFlare identity")),
        }
    }
}
