//! The dashboard's writes: adding and deleting manual routes, for operators and admins. Each
//! needs the session's CSRF token (`X-CSRF-Token`) and goes through the admin API's own code
//! (`AdminApi::add_manual_route_for`), so the dashboard refuses exactly what AddManualRoute
//! refuses, in the same words; the answer names the field at fault so the page can show the
//! message next to it.

use super::session::{csrf_header, Refusal, Signed};
use super::WebState;
use crate::admin_service::AdminApi;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use dockflare::v1;
use dockflare_common::identity::Role;
use serde_json::json;

/// Fields of the form, as the admin API names them in its messages.
const FIELDS: &[&str] = &["hostname", "path", "service", "zone_name", "agent_id", "tunnel_group"];

#[derive(serde::Deserialize)]
pub struct NewRoute {
    hostname: String,
    #[serde(default)]
    path: String,
    service: String,
    #[serde(default)]
    zone_name: String,
    #[serde(default)]
    agent_id: String,
    #[serde(default)]
    tunnel_group: String,
}

#[derive(serde::Deserialize)]
pub struct RouteKey {
    hostname: String,
    #[serde(default)]
    path: String,
}

/// The field a message of the admin API is about ("hostname: …"), if it is one of the form's.
pub fn field_of(message: &str) -> Option<&'static str> {
    let (head, _) = message.split_once(':')?;
    FIELDS.iter().copied().find(|field| *field == head.trim())
}

fn refused(status: tonic::Status) -> Response {
    let code = match status.code() {
        tonic::Code::InvalidArgument => StatusCode::BAD_REQUEST,
        tonic::Code::FailedPrecondition | tonic::Code::AlreadyExists => StatusCode::CONFLICT,
        tonic::Code::NotFound => StatusCode::NOT_FOUND,
        tonic::Code::PermissionDenied => StatusCode::FORBIDDEN,
        tonic::Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let message = status.message().to_string();
    (code, Json(json!({ "field": field_of(&message), "message": message }))).into_response()
}

fn allowed(signed: &Signed, headers: &HeaderMap) -> Result<(), Refusal> {
    signed.require(Role::Operator)?;
    signed.check_csrf(csrf_header(headers))
}

pub async fn add_route(
    State(state): State<WebState>,
    signed: Signed,
    headers: HeaderMap,
    Json(form): Json<NewRoute>,
) -> Response {
    if let Err(refusal) = allowed(&signed, &headers) {
        return refusal.into_response();
    }
    let request = v1::AddManualRouteRequest {
        hostname: form.hostname.trim().to_string(),
        path: form.path.trim().to_string(),
        service: form.service.trim().to_string(),
        zone_name: form.zone_name.trim().to_string(),
        agent_id: form.agent_id.trim().to_string(),
        tunnel_group: form.tunnel_group.trim().to_string(),
        ..Default::default()
    };
    let who = format!("dashboard user {}", signed.user);
    match AdminApi::new(state.master.clone()).add_manual_route_for(&who, request).await {
        Ok(route) => Json(json!({ "hostname": route.map(|r| r.hostname) })).into_response(),
        Err(status) => refused(status),
    }
}

pub async fn delete_route(
    State(state): State<WebState>,
    signed: Signed,
    headers: HeaderMap,
    Json(key): Json<RouteKey>,
) -> Response {
    if let Err(refusal) = allowed(&signed, &headers) {
        return refusal.into_response();
    }
    let request = v1::DeleteManualRouteRequest { hostname: key.hostname, path: key.path };
    let who = format!("dashboard user {}", signed.user);
    match AdminApi::new(state.master.clone()).delete_manual_route_for(&who, request).await {
        Ok(()) => Json(json!({})).into_response(),
        Err(status) => refused(status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_tied_to_their_field() {
        assert_eq!(field_of("tunnel_group: at most 63 characters"), Some("tunnel_group"));
        assert_eq!(field_of("hostname: not a hostname"), Some("hostname"));
        assert_eq!(field_of("no enrolled agent serves group x"), None);
        assert_eq!(field_of("origin_request.connect_timeout: whole seconds"), None);
    }
}
