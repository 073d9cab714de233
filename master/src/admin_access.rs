//! Who may call what on AdminService: the role each method needs ([`required_role`], one
//! table for every RPC) and the tower layer that enforces it before a handler runs — the
//! caller must present a verified admin certificate that the master recorded and has not
//! revoked ([`AdminRegistry`]), with a role at least the method's. Refusals say what was
//! missing: UNAUTHENTICATED for a certificate that is not (or no longer) good,
//! PERMISSION_DENIED naming the role the method needs. The admitted [`CallerIdentity`] is
//! handed to the handlers in the request's extensions.

use crate::admin_identities::{AdminRegistry, AdmissionError, CallerIdentity};
use crate::auth::{Authenticator, VerifiedIdentity};
use dockflare_common::identity::{Identity, Role};
use futures::future::BoxFuture;
use tonic::body::Body;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::Status;

const ADMIN_SERVICE: &str = "/dockflare.v1.AdminService/";

/// Every AdminService method and the least role that may call it.
pub const METHOD_ROLES: &[(&str, Role)] = &[
    // Reading, secrets aside.
    ("ListAgents", Role::Viewer),
    ("GetAgent", Role::Viewer),
    ("ListCommands", Role::Viewer),
    ("ListEvents", Role::Viewer),
    ("ListContainers", Role::Viewer),
    ("ListDiagnostics", Role::Viewer),
    ("ListRoutes", Role::Viewer),
    ("ListTunnels", Role::Viewer),
    ("ListJoinTokens", Role::Viewer),
    ("ListAdminIdentities", Role::Viewer),
    ("WatchChanges", Role::Viewer),
    ("WhoAmI", Role::Viewer),
    ("ListAccessPolicies", Role::Viewer),
    ("GetAccessPolicy", Role::Viewer),
    // Operating the routes.
    ("AddManualRoute", Role::Operator),
    ("DeleteManualRoute", Role::Operator),
    ("SendCommand", Role::Operator),
    ("Reconcile", Role::Operator),
    ("PlanChanges", Role::Viewer),
    ("PutAccessPolicy", Role::Operator),
    ("DeleteAccessPolicy", Role::Operator),
    // Managing who belongs.
    ("CreateJoinToken", Role::Admin),
    ("RevokeJoinToken", Role::Admin),
    ("RevokeAgent", Role::Admin),
    ("RemoveAgent", Role::Admin),
    ("SetAgentTunnelGroup", Role::Admin),
    ("SetAgentPolicy", Role::Admin),
    ("IssueAdminIdentity", Role::Admin),
    ("RevokeAdminIdentity", Role::Admin),
];

/// The least role that may call `method`; admin for a method not in the table.
pub fn required_role(method: &str) -> Role {
    METHOD_ROLES.iter().find(|(name, _)| *name == method).map_or(Role::Admin, |(_, role)| *role)
}

/// Whether a caller with `role` may call `method`, or the refusal.
pub fn authorize(method: &str, caller: &CallerIdentity) -> Result<(), Status> {
    let needed = required_role(method);
    if caller.role >= needed {
        return Ok(());
    }
    Err(Status::permission_denied(format!(
        "{method} needs role {needed} or higher; {} {} has role {} \
         (ask an admin for an identity with role {needed}: dockflare-master admin issue --role {needed})",
        caller.role, caller.name, caller.role
    )))
}

fn admission_status(error: AdmissionError) -> Status {
    match error {
        AdmissionError::Store(error) => Status::unavailable(format!("cannot check the admin identity now: {error}")),
        other => Status::unauthenticated(other.to_string()),
    }
}

/// The tower layer (see the module docs).
#[derive(Clone)]
pub struct AdminAccessLayer {
    auth: Authenticator,
    registry: AdminRegistry,
}

impl AdminAccessLayer {
    pub fn new(auth: Authenticator, registry: AdminRegistry) -> AdminAccessLayer {
        AdminAccessLayer { auth, registry }
    }
}

impl<S> tower::Layer<S> for AdminAccessLayer {
    type Service = AdminAccessService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AdminAccessService { layer: self.clone(), inner }
    }
}

/// The service [`AdminAccessLayer`] wraps around tonic's router.
#[derive(Clone)]
pub struct AdminAccessService<S> {
    layer: AdminAccessLayer,
    inner: S,
}

impl<S> AdminAccessService<S> {
    /// The verified identity of an HTTP request: from the call limits layer, or verified here.
    fn verified(&self, request: &http::Request<Body>) -> Result<VerifiedIdentity, Status> {
        if let Some(verified) = request.extensions().get::<VerifiedIdentity>() {
            return Ok(verified.clone());
        }
        let certs = request
            .extensions()
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(TlsConnectInfo::peer_certs)
            .ok_or_else(|| {
            Status::unauthenticated(
                "no client certificate: AdminService needs an admin certificate issued by the master's CA",
            )
        })?;
        self.layer.auth.verify_chain(&certs)
    }
}

impl<S> tower::Service<http::Request<Body>> for AdminAccessService<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let Some(method) = request.uri().path().strip_prefix(ADMIN_SERVICE).map(str::to_string) else {
            return Box::pin(self.inner.call(request));
        };
        let verified = self.verified(&request);
        let registry = self.layer.registry.clone();
        // The service that was polled ready goes with this call; a clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let admitted = async {
                let verified = verified?;
                let (name, role) = match &verified.identity {
                    Identity::Admin { name, role } => (name.clone(), *role),
                    Identity::Agent(id) => {
                        return Err(Status::permission_denied(format!(
                            "AdminService needs an admin certificate; agent {id} may not call it"
                        )))
                    }
                };
                let caller = registry.admit(&verified.serial, &name, role).await.map_err(admission_status)?;
                authorize(&method, &caller)?;
                Ok(caller)
            };
            match admitted.await {
                Ok(caller) => {
                    request.extensions_mut().insert(caller);
                    inner.call(request).await
                }
                Err(status) => Ok(status.into_http()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn caller(role: Role) -> CallerIdentity {
        CallerIdentity { serial: "01".into(), name: "ops".into(), role }
    }

    #[test]
    fn every_admin_service_method_has_a_role_in_the_table() {
        let set = prost_types::FileDescriptorSet::decode(dockflare::FILE_DESCRIPTOR_SET).expect("descriptor set");
        let methods: Vec<String> = set
            .file
            .iter()
            .flat_map(|file| &file.service)
            .filter(|service| service.name() == "AdminService")
            .flat_map(|service| &service.method)
            .map(|method| method.name().to_string())
            .collect();
        assert!(methods.len() >= 20, "{methods:?}");
        for method in &methods {
            assert!(METHOD_ROLES.iter().any(|(name, _)| name == method), "{method} has no role in METHOD_ROLES");
        }
        assert_eq!(methods.len(), METHOD_ROLES.len(), "METHOD_ROLES names a method AdminService lacks");
    }

    #[test]
    fn each_role_may_do_what_the_roles_before_it_may() {
        assert!(authorize("ListRoutes", &caller(Role::Viewer)).is_ok());
        assert!(authorize("AddManualRoute", &caller(Role::Operator)).is_ok());
        assert!(authorize("ListRoutes", &caller(Role::Admin)).is_ok());
        assert!(authorize("CreateJoinToken", &caller(Role::Admin)).is_ok());
        let refused = authorize("AddManualRoute", &caller(Role::Viewer)).expect_err("a viewer may not write");
        assert_eq!(refused.code(), tonic::Code::PermissionDenied);
        assert!(refused.message().contains("needs role operator"), "{}", refused.message());
        let refused = authorize("IssueAdminIdentity", &caller(Role::Operator)).expect_err("admin only");
        assert!(refused.message().contains("needs role admin"), "{}", refused.message());
        // Unknown methods need the most.
        assert_eq!(required_role("SomethingNew"), Role::Admin);
    }
}
