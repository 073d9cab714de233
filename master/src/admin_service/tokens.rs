//! Join tokens: create (with the tunnel group and hostname policy they admit into), list, revoke.

use super::paging::{PageRequest, Part};
use super::{required, AdminApi};
use crate::clock::now_millis;
use crate::convert;
use crate::grpc_status::store_status;
use crate::store::JoinTokenRow;
use dockflare::v1;
use dockflare_common::join_token::{certificate_digest, JoinToken};
use tonic::{Request, Response, Status};

const DEFAULT_TOKEN_TTL_SECONDS: u64 = 24 * 3600;
const MAX_TOKEN_TTL_SECONDS: u64 = 365 * 24 * 3600;
const MAX_TOKEN_USES: u32 = 100_000;

pub(super) async fn create_join_token(
    api: &AdminApi,
    request: Request<v1::CreateJoinTokenRequest>,
) -> Result<Response<v1::CreateJoinTokenResponse>, Status> {
    let admin = api.state.auth.admin(&request)?;
    let request = request.into_inner();
    let (token, row) = new_join_token(api.state.ca.certificate_der(), &request, now_millis())?;
    api.state
        .store
        .insert_join_token(&row, &token.secret_hash())
        .await
        .map_err(|e| store_status("storing the join token", e))?;
    tracing::info!(message = "Join token created.", token_id = %row.id, max_uses = row.max_uses, tunnel_group = %row.tunnel_group, %admin);
    Ok(Response::new(v1::CreateJoinTokenResponse { token: token.expose(), info: Some(convert::join_token(&row)) }))
}

pub(super) async fn list_join_tokens(
    api: &AdminApi,
    request: Request<v1::ListJoinTokensRequest>,
) -> Result<Response<v1::ListJoinTokensResponse>, Status> {
    api.state.auth.admin(&request)?;
    let page = PageRequest::parse("ListJoinTokens", request.get_ref().page_size, &request.get_ref().page_token)?;
    let rows = api.state.store.list_join_tokens().await.map_err(|e| store_status("listing join tokens", e))?;
    // Oldest first, as the store lists them.
    let keyed =
        rows.iter().map(|row| (vec![Part::Int(row.created_at), Part::from(row.id.as_str())], convert::join_token(row)));
    let (tokens, next_page_token) = page.page(keyed.collect());
    Ok(Response::new(v1::ListJoinTokensResponse { tokens, next_page_token }))
}

pub(super) async fn revoke_join_token(
    api: &AdminApi,
    request: Request<v1::RevokeJoinTokenRequest>,
) -> Result<Response<v1::RevokeJoinTokenResponse>, Status> {
    let admin = api.state.auth.admin(&request)?;
    let id = required("id", &request.get_ref().id)?;
    let row = api
        .state
        .store
        .revoke_join_token(id, now_millis())
        .await
        .map_err(|e| store_status("revoking the join token", e))?
        .ok_or_else(|| Status::not_found(format!("join token {id:?} does not exist")))?;
    tracing::info!(message = "Join token revoked.", token_id = %row.id, %admin);
    Ok(Response::new(v1::RevokeJoinTokenResponse { token: Some(convert::join_token(&row)) }))
}

/// A new join token for `ca_der`'s CA, and the row to store for it.
pub fn new_join_token(
    ca_der: &[u8],
    request: &v1::CreateJoinTokenRequest,
    now: i64,
) -> Result<(JoinToken, JoinTokenRow), Status> {
    let v1::CreateJoinTokenRequest { ttl_seconds, max_uses, description, tunnel_group, policy } = request;
    let policy = convert::hostname_policy_from("policy", policy.as_ref())?;
    let (ttl_seconds, max_uses) = (*ttl_seconds, *max_uses);
    crate::agent_service::validate::tunnel_group("tunnel_group", tunnel_group.trim())
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    let ttl = if ttl_seconds == 0 { DEFAULT_TOKEN_TTL_SECONDS } else { ttl_seconds };
    if ttl > MAX_TOKEN_TTL_SECONDS {
        return Err(Status::invalid_argument(format!("ttl_seconds: at most {MAX_TOKEN_TTL_SECONDS} (one year)")));
    }
    let max_uses = if max_uses == 0 { 1 } else { max_uses };
    if max_uses > MAX_TOKEN_USES {
        return Err(Status::invalid_argument(format!("max_uses: at most {MAX_TOKEN_USES}")));
    }
    if description.chars().count() > 256 || description.chars().any(char::is_control) {
        return Err(Status::invalid_argument("description: at most 256 printable characters"));
    }
    let token = JoinToken::generate(certificate_digest(ca_der));
    let row = JoinTokenRow {
        id: token.id.clone(),
        description: description.to_string(),
        created_at: now,
        expires_at: now.saturating_add((ttl as i64).saturating_mul(1000)),
        max_uses,
        uses: 0,
        revoked: false,
        tunnel_group: tunnel_group.trim().to_string(),
        policy,
    };
    Ok((token, row))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(ttl_seconds: u64, max_uses: u32, description: &str, tunnel_group: &str) -> v1::CreateJoinTokenRequest {
        v1::CreateJoinTokenRequest {
            ttl_seconds,
            max_uses,
            description: description.into(),
            tunnel_group: tunnel_group.into(),
            policy: None,
        }
    }

    #[test]
    fn join_token_limits_are_enforced_with_field_names() {
        let err = |r: Result<(JoinToken, JoinTokenRow), Status>| r.err().map(|s| s.message().to_string());
        let field = |r: &v1::CreateJoinTokenRequest| err(new_join_token(b"ca", r, 0)).unwrap_or_default();
        assert!(field(&request(MAX_TOKEN_TTL_SECONDS + 1, 1, "", "")).starts_with("ttl_seconds"));
        assert!(field(&request(0, MAX_TOKEN_USES + 1, "", "")).starts_with("max_uses"));
        assert!(field(&request(0, 0, "", "no spaces")).starts_with("tunnel_group"));
        let (_, row) = new_join_token(b"ca", &request(0, 0, "laptop", " edge "), 1_000)
            .map_err(|s| s.to_string())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((row.max_uses, row.expires_at), (1, 1_000 + DEFAULT_TOKEN_TTL_SECONDS as i64 * 1000));
        assert_eq!(row.tunnel_group, "edge");
    }
}
