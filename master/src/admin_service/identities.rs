//! Admin identities: issue (signing the caller's CSR: the private key never reaches the
//! master), list, revoke (its calls refused, its open streams ended), and who-am-I.

use super::{required, AdminApi};
use crate::admin_identities::{self, CallerIdentity, IssueError};
use crate::clock::now_millis;
use crate::convert::timestamp;
use crate::grpc_status::store_status;
use crate::store::AdminIdentityRow;
use dockflare::v1;
use dockflare_common::identity::Role;
use std::time::Duration;
use tonic::{Request, Response, Status};

/// The caller the access layer admitted.
pub(super) fn caller<T>(request: &Request<T>) -> Result<CallerIdentity, Status> {
    request
        .extensions()
        .get::<CallerIdentity>()
        .cloned()
        .ok_or_else(|| Status::internal("the admin access layer did not run for this call"))
}

pub fn role_to_proto(role: Role) -> v1::AdminRole {
    match role {
        Role::Viewer => v1::AdminRole::Viewer,
        Role::Operator => v1::AdminRole::Operator,
        Role::Admin => v1::AdminRole::Admin,
    }
}

fn role_from_proto(value: i32) -> Result<Role, Status> {
    match v1::AdminRole::try_from(value) {
        Ok(v1::AdminRole::Viewer) => Ok(Role::Viewer),
        Ok(v1::AdminRole::Operator) => Ok(Role::Operator),
        Ok(v1::AdminRole::Admin) => Ok(Role::Admin),
        _ => Err(Status::invalid_argument(format!(
            "role: required, one of ADMIN_ROLE_VIEWER, ADMIN_ROLE_OPERATOR, ADMIN_ROLE_ADMIN (got {value})"
        ))),
    }
}

pub fn identity_to_proto(row: &AdminIdentityRow) -> v1::AdminIdentity {
    v1::AdminIdentity {
        id: row.serial.clone(),
        name: row.name.clone(),
        role: Role::parse(&row.role).map_or(v1::AdminRole::Unspecified, role_to_proto) as i32,
        issued_at: Some(timestamp(row.issued_at)),
        issued_by: row.issued_by.clone(),
        expires_at: Some(timestamp(row.expires_at)),
        last_used_at: row.last_used_at.map(timestamp),
        revoked: row.revoked_at.is_some(),
        revoked_at: row.revoked_at.map(timestamp),
    }
}

fn issue_status(error: IssueError) -> Status {
    match error {
        IssueError::Sign(_) => Status::internal(error.to_string()),
        other => Status::invalid_argument(other.to_string()),
    }
}

pub(super) async fn issue_admin_identity(
    api: &AdminApi,
    request: Request<v1::IssueAdminIdentityRequest>,
) -> Result<Response<v1::IssueAdminIdentityResponse>, Status> {
    let issuer = caller(&request)?;
    let request = request.into_inner();
    required("name", &request.name)?;
    let role = role_from_proto(request.role)?;
    required("csr_pem", &request.csr_pem)?;
    let csr = pem::parse(request.csr_pem.trim())
        .ok()
        .filter(|block| block.tag() == "CERTIFICATE REQUEST" || block.tag() == "NEW CERTIFICATE REQUEST")
        .ok_or_else(|| Status::invalid_argument("csr_pem: not a PEM CERTIFICATE REQUEST"))?;
    let issued = admin_identities::issue(
        &api.state.ca,
        &request.name,
        role,
        Duration::from_secs(request.ttl_seconds),
        csr.contents(),
        &issuer.name,
    )
    .map_err(issue_status)?;
    api.state
        .store
        .record_admin_identity(&issued.record)
        .await
        .map_err(|e| store_status("recording the admin identity", e))?;
    tracing::info!(
        message = "Admin identity issued.",
        id = %issued.record.serial,
        name = %issued.record.name,
        role = %role,
        issued_by = %issuer.name
    );
    Ok(Response::new(v1::IssueAdminIdentityResponse {
        identity: Some(identity_to_proto(&issued.record)),
        certificate_pem: issued.certificate_pem,
        ca_certificate_pem: api.state.ca.certificate_pem().to_string(),
    }))
}

pub(super) async fn list_admin_identities(
    api: &AdminApi,
    request: Request<v1::ListAdminIdentitiesRequest>,
) -> Result<Response<v1::ListAdminIdentitiesResponse>, Status> {
    let rows = api
        .state
        .store
        .list_admin_identities(request.get_ref().include_inactive, now_millis())
        .await
        .map_err(|e| store_status("listing admin identities", e))?;
    Ok(Response::new(v1::ListAdminIdentitiesResponse { identities: rows.iter().map(identity_to_proto).collect() }))
}

pub(super) async fn revoke_admin_identity(
    api: &AdminApi,
    request: Request<v1::RevokeAdminIdentityRequest>,
) -> Result<Response<v1::RevokeAdminIdentityResponse>, Status> {
    let admin = caller(&request)?;
    let id = required("id", &request.get_ref().id)?.to_ascii_lowercase();
    let row = api
        .state
        .store
        .revoke_admin_identity(&id, now_millis())
        .await
        .map_err(|e| store_status("revoking the admin identity", e))?
        .ok_or_else(|| {
            Status::not_found(format!("id: no admin identity {id:?} (ListAdminIdentities shows the ids)"))
        })?;
    api.state.admins.revoked(&row.serial);
    tracing::info!(message = "Admin identity revoked.", id = %row.serial, name = %row.name, admin = %admin.name);
    Ok(Response::new(v1::RevokeAdminIdentityResponse { identity: Some(identity_to_proto(&row)) }))
}

pub(super) async fn who_am_i(
    api: &AdminApi,
    request: Request<v1::WhoAmIRequest>,
) -> Result<Response<v1::WhoAmIResponse>, Status> {
    let me = caller(&request)?;
    let row = api
        .state
        .store
        .get_admin_identity(&me.serial)
        .await
        .map_err(|e| store_status("reading the admin identity", e))?
        .ok_or_else(|| Status::not_found("this identity's record is gone"))?;
    Ok(Response::new(v1::WhoAmIResponse { identity: Some(identity_to_proto(&row)) }))
}
