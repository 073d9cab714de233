//! Cloudflare Access under `/accounts/{a}/access/…` (§6) and the account's members, as
//! Cloudflare's v4 API answers them. POST answers 201, DELETE 202 with `{"id"}`; lists page
//! with `page`/`per_page` and `result_info`.
//!
//! - `apps` ([`apps`]): an application needs a `type` (and a `domain` when `self_hosted`);
//!   no two applications share a `domain` (case-insensitive, the path part included);
//!   `session_duration` is a Go duration (default `24h`); `tags` name existing Access tags and
//!   `allowed_idps` existing identity providers; `aud` is 64 hex. `policies` items are
//!   `{id, precedence}` links, bare ids, or inline app-scoped policies (created, `reusable:
//!   false`, owned by the application); precedence is unique within an application and,
//!   when missing, assigned in list order. Answers expand `policies` into whole policies in
//!   precedence order. A PUT without `policies` keeps the current ones; app-scoped policies a
//!   PUT no longer lists are deleted, like those of a deleted application.
//! - `apps/{id}/policies` (legacy app-scoped policies): list, create (201), get, update and
//!   delete (202) the application's policies; deleting a linked reusable policy there only
//!   unlinks it, and a reusable policy is changed at `/access/policies` only.
//! - `policies` (reusable, [`rules`] checks them): answers carry `app_count`; deleting one
//!   that applications still link is refused with 400 naming how many (Cloudflare refuses
//!   too; its exact code is not in the reference).
//! - `tags`, `identity_providers`, `organizations`, `/accounts/{a}/members` ([`directory`]).
//!
//! Error codes are the emulator's own (the reference has none for Access): 400/[`INVALID`]
//! for a bad body, 404/[`NOT_FOUND`], 400/[`DOMAIN_TAKEN`] for a duplicate domain,
//! 400/[`IN_USE`] for deleting a policy or tag still in use, 409/[`TAG_EXISTS`]; every
//! message names the offending value.

mod apps;
mod directory;
mod policies;
mod rules;

use super::http::{ok, ok_page, ok_with_status, paginate, parse_object, ApiResult, PageLimits, Query, ACCESS_PAGES};
use super::Emulator;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::routing::get;
use axum::Router;
use dockflare_cloudflare::types::DeletedId;
use serde_json::Value;

/// 400: the body is not what Cloudflare accepts.
pub(super) const INVALID: i64 = 1001;
/// 404: no such application, policy, tag or identity provider.
pub(super) const NOT_FOUND: i64 = 1003;
/// 400: another application has this domain.
pub(super) const DOMAIN_TAKEN: i64 = 1004;
/// 400: a reusable policy still linked from applications, or a tag still named by them.
pub(super) const IN_USE: i64 = 1005;
/// 409: an Access tag with this name exists.
pub(super) const TAG_EXISTS: i64 = 1006;

/// The Access and member routes, relative to the base path.
pub(super) fn routes() -> Router<Emulator> {
    const ACCESS: &str = "/accounts/{account_id}/access";
    Router::new()
        .route(&format!("{ACCESS}/apps"), get(list_apps).post(create_app))
        .route(&format!("{ACCESS}/apps/{{app_id}}"), get(get_app).put(put_app).delete(delete_app))
        .route(&format!("{ACCESS}/apps/{{app_id}}/policies"), get(list_app_policies).post(create_app_policy))
        .route(
            &format!("{ACCESS}/apps/{{app_id}}/policies/{{policy_id}}"),
            get(get_app_policy).put(put_app_policy).delete(delete_app_policy),
        )
        .route(&format!("{ACCESS}/policies"), get(list_policies).post(create_policy))
        .route(&format!("{ACCESS}/policies/{{policy_id}}"), get(get_policy).put(put_policy).delete(delete_policy))
        .route(&format!("{ACCESS}/tags"), get(directory::list_tags).post(directory::create_tag))
        .route(&format!("{ACCESS}/tags/{{tag_name}}"), get(directory::get_tag).delete(directory::delete_tag))
        .route(&format!("{ACCESS}/identity_providers"), get(directory::list_identity_providers))
        .route(&format!("{ACCESS}/identity_providers/{{idp_id}}"), get(directory::get_identity_provider))
        .route(&format!("{ACCESS}/organizations"), get(directory::organization))
        .route("/accounts/{account_id}/members", get(directory::list_members))
}

/// One page of `items` as the answer.
fn page(items: Vec<Value>, uri: &Uri, limits: PageLimits) -> ApiResult {
    let (page, info) = paginate(items, &Query::from_uri(uri), limits)?;
    Ok(ok_page(page, info))
}

fn body(bytes: &Bytes) -> Result<serde_json::Map<String, Value>, super::ApiError> {
    parse_object(bytes, INVALID, "Invalid request")
}

fn deleted(id: String) -> ApiResult {
    Ok(ok_with_status(StatusCode::ACCEPTED, DeletedId { id }))
}

async fn list_apps(State(e): State<Emulator>, Path(account_id): Path<String>, uri: Uri) -> ApiResult {
    e.check_account(&account_id)?;
    let apps = e.data().app_answers();
    page(apps, &uri, ACCESS_PAGES)
}

async fn create_app(State(e): State<Emulator>, Path(account_id): Path<String>, bytes: Bytes) -> ApiResult {
    e.check_account(&account_id)?;
    let created = e.data().create_app(body(&bytes)?)?;
    Ok(ok_with_status(StatusCode::CREATED, created))
}

async fn get_app(State(e): State<Emulator>, Path((account_id, id)): Path<(String, String)>) -> ApiResult {
    e.check_account(&account_id)?;
    let app = e.data().app_answer_by_id(&id)?;
    Ok(ok(app))
}

async fn put_app(State(e): State<Emulator>, Path((account_id, id)): Path<(String, String)>, bytes: Bytes) -> ApiResult {
    e.check_account(&account_id)?;
    let app = e.data().put_app(&id, body(&bytes)?)?;
    Ok(ok(app))
}

async fn delete_app(State(e): State<Emulator>, Path((account_id, id)): Path<(String, String)>) -> ApiResult {
    e.check_account(&account_id)?;
    e.data().delete_app(&id)?;
    deleted(id)
}

async fn list_app_policies(
    State(e): State<Emulator>,
    Path((account_id, app_id)): Path<(String, String)>,
    uri: Uri,
) -> ApiResult {
    e.check_account(&account_id)?;
    let policies = e.data().app_policies(&app_id)?;
    page(policies, &uri, ACCESS_PAGES)
}

async fn create_app_policy(
    State(e): State<Emulator>,
    Path((account_id, app_id)): Path<(String, String)>,
    bytes: Bytes,
) -> ApiResult {
    e.check_account(&account_id)?;
    let created = e.data().create_app_policy(&app_id, body(&bytes)?)?;
    Ok(ok_with_status(StatusCode::CREATED, created))
}

async fn get_app_policy(
    State(e): State<Emulator>,
    Path((account_id, app_id, policy_id)): Path<(String, String, String)>,
) -> ApiResult {
    e.check_account(&account_id)?;
    let policy = e.data().app_policy(&app_id, &policy_id)?;
    Ok(ok(policy))
}

async fn put_app_policy(
    State(e): State<Emulator>,
    Path((account_id, app_id, policy_id)): Path<(String, String, String)>,
    bytes: Bytes,
) -> ApiResult {
    e.check_account(&account_id)?;
    let policy = e.data().put_app_policy(&app_id, &policy_id, body(&bytes)?)?;
    Ok(ok(policy))
}

async fn delete_app_policy(
    State(e): State<Emulator>,
    Path((account_id, app_id, policy_id)): Path<(String, String, String)>,
) -> ApiResult {
    e.check_account(&account_id)?;
    e.data().delete_app_policy(&app_id, &policy_id)?;
    deleted(policy_id)
}

async fn list_policies(State(e): State<Emulator>, Path(account_id): Path<String>, uri: Uri) -> ApiResult {
    e.check_account(&account_id)?;
    let policies = e.data().reusable_policy_answers();
    page(policies, &uri, ACCESS_PAGES)
}

async fn create_policy(State(e): State<Emulator>, Path(account_id): Path<String>, bytes: Bytes) -> ApiResult {
    e.check_account(&account_id)?;
    let created = e.data().create_reusable_policy(body(&bytes)?)?;
    Ok(ok_with_status(StatusCode::CREATED, created))
}

async fn get_policy(State(e): State<Emulator>, Path((account_id, id)): Path<(String, String)>) -> ApiResult {
    e.check_account(&account_id)?;
    let policy = e.data().reusable_policy(&id)?;
    Ok(ok(policy))
}

async fn put_policy(
    State(e): State<Emulator>,
    Path((account_id, id)): Path<(String, String)>,
    bytes: Bytes,
) -> ApiResult {
    e.check_account(&account_id)?;
    let policy = e.data().put_reusable_policy(&id, body(&bytes)?)?;
    Ok(ok(policy))
}

async fn delete_policy(State(e): State<Emulator>, Path((account_id, id)): Path<(String, String)>) -> ApiResult {
    e.check_account(&account_id)?;
    e.data().delete_reusable_policy(&id)?;
    deleted(id)
}
