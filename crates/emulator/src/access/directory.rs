//! The account around Access: tags (`/access/tags`, names applications may carry; a name
//! taken is 409/[`TAG_EXISTS`], a tag applications carry is not deleted), identity providers
//! (`/access/identity_providers`: One-time PIN in a fresh account, more seeded through
//! `/__emulator/access/identity_providers`), the Zero Trust organization
//! (`/access/organizations`: [`crate::EmulatorConfig::access_team`], 404 when unset) and the
//! account's one member (`/accounts/{a}/members`: [`crate::EmulatorConfig::member_email`]).

use super::policies::id_of;
use super::rules::text;
use super::{body, page, INVALID, IN_USE, NOT_FOUND, TAG_EXISTS};
use crate::http::{ok, ok_with_status, ApiError, ApiResult, PageLimits, ACCESS_PAGES};
use crate::inspect::IdentityProviderSeed;
use crate::state::{now, uuid, Data};
use crate::Emulator;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use serde_json::{json, Map, Value};

/// `GET /accounts/{a}/members` pages like Cloudflare's: 20 by default, at most 50.
const MEMBER_PAGES: PageLimits = PageLimits { default: 20, min: 5, max: 50 };

fn tag_not_found(name: &str) -> ApiError {
    ApiError::new(404, NOT_FOUND, format!("Access tag {name:?} not found"))
}

impl Data {
    fn tag_answer(&self, tag: &Map<String, Value>) -> Value {
        let mut answer = tag.clone();
        answer.insert("app_count".into(), json!(self.tag_app_count(text(tag, "name").unwrap_or(""))));
        Value::Object(answer)
    }

    fn tag_index(&self, name: &str) -> Option<usize> {
        self.access_tags.iter().position(|t| text(t, "name") == Some(name))
    }

    fn create_tag(&mut self, body: &Map<String, Value>) -> Result<Value, ApiError> {
        let name = text(body, "name")
            .map(str::trim)
            .ok_or_else(|| ApiError::bad_request(INVALID, "Invalid request: name is required"))?;
        if self.tag_index(name).is_some() {
            return Err(ApiError::new(409, TAG_EXISTS, format!("Access tag {name:?} already exists")));
        }
        let stamp = now();
        let mut tag = Map::new();
        tag.insert("name".into(), json!(name));
        tag.insert("created_at".into(), json!(stamp));
        tag.insert("updated_at".into(), json!(stamp));
        self.access_tags.push(tag.clone());
        Ok(self.tag_answer(&tag))
    }

    fn delete_tag(&mut self, name: &str) -> Result<(), ApiError> {
        let index = self.tag_index(name).ok_or_else(|| tag_not_found(name))?;
        let count = self.tag_app_count(name);
        if count > 0 {
            return Err(ApiError::bad_request(
                IN_USE,
                format!(
                    "Access tag {name:?} is used by {count} application(s); remove it from them before deleting it"
                ),
            ));
        }
        self.access_tags.remove(index);
        Ok(())
    }

    /// Adds an identity provider (the inspection API's seeding); answers it as the API lists it.
    pub(crate) fn add_identity_provider(&mut self, seed: &IdentityProviderSeed) -> Result<Value, ApiError> {
        let (name, kind) = (seed.name.trim(), seed.kind.trim());
        if name.is_empty() || kind.is_empty() {
            return Err(ApiError::bad_request(
                INVALID,
                "Invalid request: an identity provider needs a name and a type",
            ));
        }
        let mut idp = Map::new();
        idp.insert("id".into(), json!(uuid()));
        idp.insert("name".into(), json!(name));
        idp.insert("type".into(), json!(kind));
        idp.insert("config".into(), seed.config.clone().unwrap_or_else(|| json!({})));
        self.identity_providers.push(idp.clone());
        Ok(Value::Object(idp))
    }
}

pub(super) async fn list_tags(State(e): State<Emulator>, Path(account_id): Path<String>, uri: Uri) -> ApiResult {
    e.check_account(&account_id)?;
    let tags = {
        let data = e.data();
        data.access_tags.iter().map(|t| data.tag_answer(t)).collect()
    };
    page(tags, &uri, ACCESS_PAGES)
}

pub(super) async fn create_tag(State(e): State<Emulator>, Path(account_id): Path<String>, bytes: Bytes) -> ApiResult {
    e.check_account(&account_id)?;
    let created = e.data().create_tag(&body(&bytes)?)?;
    Ok(ok_with_status(StatusCode::CREATED, created))
}

pub(super) async fn get_tag(State(e): State<Emulator>, Path((account_id, name)): Path<(String, String)>) -> ApiResult {
    e.check_account(&account_id)?;
    let data = e.data();
    let index = data.tag_index(&name).ok_or_else(|| tag_not_found(&name))?;
    Ok(ok(data.tag_answer(&data.access_tags[index])))
}

pub(super) async fn delete_tag(
    State(e): State<Emulator>,
    Path((account_id, name)): Path<(String, String)>,
) -> ApiResult {
    e.check_account(&account_id)?;
    e.data().delete_tag(&name)?;
    Ok(ok_with_status(StatusCode::ACCEPTED, json!({"name": name})))
}

pub(super) async fn list_identity_providers(
    State(e): State<Emulator>,
    Path(account_id): Path<String>,
    uri: Uri,
) -> ApiResult {
    e.check_account(&account_id)?;
    let idps = e.data().identity_providers.iter().cloned().map(Value::Object).collect();
    page(idps, &uri, ACCESS_PAGES)
}

pub(super) async fn get_identity_provider(
    State(e): State<Emulator>,
    Path((account_id, id)): Path<(String, String)>,
) -> ApiResult {
    e.check_account(&account_id)?;
    let found = e.data().identity_providers.iter().find(|p| id_of(p) == id).cloned();
    let idp = found.ok_or_else(|| ApiError::new(404, NOT_FOUND, format!("Identity provider {id} not found")))?;
    Ok(ok(Value::Object(idp)))
}

pub(super) async fn organization(State(e): State<Emulator>, Path(account_id): Path<String>) -> ApiResult {
    e.check_account(&account_id)?;
    let team = e.inner.access_team.as_deref().ok_or_else(|| {
        ApiError::new(404, NOT_FOUND, "Access organization not found: Zero Trust is not set up for this account")
    })?;
    let stamp = &e.inner.started_at;
    Ok(ok(json!({
        "name": team,
        "auth_domain": format!("{team}.cloudflareaccess.com"),
        "is_ui_read_only": false,
        "auto_redirect_to_identity": false,
        "session_duration": "24h",
        "user_seat_expiration_inactive_time": "",
        "login_design": {},
        "created_at": stamp,
        "updated_at": stamp,
    })))
}

pub(super) async fn list_members(State(e): State<Emulator>, Path(account_id): Path<String>, uri: Uri) -> ApiResult {
    e.check_account(&account_id)?;
    let (member_id, user_id, email) = &e.inner.member;
    let member = json!({
        "id": member_id,
        "status": "accepted",
        "user": {
            "id": user_id,
            "email": email,
            "first_name": null,
            "last_name": null,
            "two_factor_authentication_enabled": false,
        },
        "roles": [{
            "id": "05784afa30c1afe1440e79d9351c7430",
            "name": "Administrator",
            "description": "Can access the full account, except for membership management and billing.",
            "permissions": {},
        }],
        "policies": [],
    });
    page(vec![member], &uri, MEMBER_PAGES)
}
