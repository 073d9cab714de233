//! `/accounts/{a}/access/apps` and `/accounts/{a}/access/policies` (§6):
//! plain CRUD over the JSON bodies. POST answers 201, DELETE 202 with
//! `{"id"}`; an application gets an `aud` (64 hex). Checked: an application
//! has a `type` (and a `domain` when `self_hosted`); a policy has a `name`,
//! a `decision` among allow/deny/non_identity/bypass and a non-empty
//! `include`. Error codes here (1001, 404/1003) are the emulator's.

use super::http::{ok, ok_page, ok_with_status, paginate, parse_object, ApiError, ApiResult, Query, ACCESS_PAGES};
use super::state::{hex32, now, uuid, Data};
use super::Emulator;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use dockflare_cloudflare::types::DeletedId;
use serde_json::{json, Map, Value};

#[derive(Clone, Copy)]
enum Kind {
    App,
    Policy,
}

impl Kind {
    fn items(self, data: &mut Data) -> &mut Vec<Map<String, Value>> {
        match self {
            Kind::App => &mut data.access_apps,
            Kind::Policy => &mut data.access_policies,
        }
    }

    fn not_found(self) -> ApiError {
        match self {
            Kind::App => ApiError::new(404, 1003, "Access application not found"),
            Kind::Policy => ApiError::new(404, 1003, "Access policy not found"),
        }
    }

    fn check(self, body: &Map<String, Value>) -> Result<(), ApiError> {
        let text = |key: &str| body.get(key).and_then(Value::as_str).filter(|s| !s.is_empty());
        let missing = |key: &str| ApiError::bad_request(1001, format!("Invalid request: {key} is required"));
        match self {
            Kind::App => {
                let kind = text("type").ok_or_else(|| missing("type"))?;
                if kind == "self_hosted" && text("domain").is_none() {
                    return Err(missing("domain"));
                }
            }
            Kind::Policy => {
                text("name").ok_or_else(|| missing("name"))?;
                let decision = text("decision").ok_or_else(|| missing("decision"))?;
                if !["allow", "deny", "non_identity", "bypass"].contains(&decision) {
                    return Err(ApiError::bad_request(1001, format!("Invalid request: unknown decision {decision:?}")));
                }
                if body.get("include").and_then(Value::as_array).is_none_or(|rules| rules.is_empty()) {
                    return Err(missing("include"));
                }
            }
        }
        Ok(())
    }
}

fn id_of(item: &Map<String, Value>) -> &str {
    item.get("id").and_then(Value::as_str).unwrap_or("")
}

impl Data {
    fn access_create(&mut self, kind: Kind, mut body: Map<String, Value>) -> Result<Value, ApiError> {
        kind.check(&body)?;
        let stamp = now();
        body.insert("id".into(), json!(uuid()));
        body.insert("created_at".into(), json!(stamp));
        body.insert("updated_at".into(), json!(stamp));
        match kind {
            Kind::App => {
                body.insert("aud".into(), json!(format!("{}{}", hex32(), hex32())));
                body.entry("session_duration").or_insert_with(|| json!("24h"));
                body.entry("policies").or_insert_with(|| json!([]));
            }
            Kind::Policy => {
                body.insert("reusable".into(), json!(true));
                body.entry("exclude").or_insert_with(|| json!([]));
                body.entry("require").or_insert_with(|| json!([]));
            }
        }
        kind.items(self).push(body.clone());
        Ok(Value::Object(body))
    }

    fn access_get(&mut self, kind: Kind, id: &str) -> Result<Value, ApiError> {
        let found = kind.items(self).iter().find(|item| id_of(item) == id).cloned();
        found.map(Value::Object).ok_or_else(|| kind.not_found())
    }

    fn access_put(&mut self, kind: Kind, id: &str, mut body: Map<String, Value>) -> Result<Value, ApiError> {
        kind.check(&body)?;
        let items = kind.items(self);
        let slot = items.iter_mut().find(|item| id_of(item) == id).ok_or_else(|| kind.not_found())?;
        for key in ["id", "aud", "created_at", "reusable"] {
            if let Some(value) = slot.get(key) {
                body.insert(key.to_string(), value.clone());
            }
        }
        body.insert("updated_at".into(), json!(now()));
        *slot = body.clone();
        Ok(Value::Object(body))
    }

    fn access_delete(&mut self, kind: Kind, id: &str) -> Result<(), ApiError> {
        let items = kind.items(self);
        let index = items.iter().position(|item| id_of(item) == id).ok_or_else(|| kind.not_found())?;
        items.remove(index);
        Ok(())
    }
}

async fn list(emulator: Emulator, account_id: String, uri: Uri, kind: Kind) -> ApiResult {
    emulator.check_account(&account_id)?;
    let items: Vec<Value> = kind.items(&mut emulator.data()).iter().cloned().map(Value::Object).collect();
    let (page, info) = paginate(items, &Query::from_uri(&uri), ACCESS_PAGES)?;
    Ok(ok_page(page, info))
}

async fn create(emulator: Emulator, account_id: String, body: Bytes, kind: Kind) -> ApiResult {
    emulator.check_account(&account_id)?;
    let body = parse_object(&body, 1001, "Invalid request")?;
    let created = emulator.data().access_create(kind, body)?;
    Ok(ok_with_status(StatusCode::CREATED, created))
}

async fn get_one(emulator: Emulator, account_id: String, id: String, kind: Kind) -> ApiResult {
    emulator.check_account(&account_id)?;
    let item = emulator.data().access_get(kind, &id)?;
    Ok(ok(item))
}

async fn put(emulator: Emulator, account_id: String, id: String, body: Bytes, kind: Kind) -> ApiResult {
    emulator.check_account(&account_id)?;
    let body = parse_object(&body, 1001, "Invalid request")?;
    let item = emulator.data().access_put(kind, &id, body)?;
    Ok(ok(item))
}

async fn delete(emulator: Emulator, account_id: String, id: String, kind: Kind) -> ApiResult {
    emulator.check_account(&account_id)?;
    emulator.data().access_delete(kind, &id)?;
    Ok(ok_with_status(StatusCode::ACCEPTED, DeletedId { id }))
}

pub(super) async fn list_apps(State(e): State<Emulator>, Path(account_id): Path<String>, uri: Uri) -> ApiResult {
    list(e, account_id, uri, Kind::App).await
}

pub(super) async fn create_app(State(e): State<Emulator>, Path(account_id): Path<String>, body: Bytes) -> ApiResult {
    create(e, account_id, body, Kind::App).await
}

pub(super) async fn get_app(State(e): State<Emulator>, Path((account_id, id)): Path<(String, String)>) -> ApiResult {
    get_one(e, account_id, id, Kind::App).await
}

pub(super) async fn put_app(
    State(e): State<Emulator>,
    Path((account_id, id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    put(e, account_id, id, body, Kind::App).await
}

pub(super) async fn delete_app(State(e): State<Emulator>, Path((account_id, id)): Path<(String, String)>) -> ApiResult {
    delete(e, account_id, id, Kind::App).await
}

pub(super) async fn list_policies(State(e): State<Emulator>, Path(account_id): Path<String>, uri: Uri) -> ApiResult {
    list(e, account_id, uri, Kind::Policy).await
}

pub(super) async fn create_policy(State(e): State<Emulator>, Path(account_id): Path<String>, body: Bytes) -> ApiResult {
    create(e, account_id, body, Kind::Policy).await
}

pub(super) async fn get_policy(State(e): State<Emulator>, Path((account_id, id)): Path<(String, String)>) -> ApiResult {
    get_one(e, account_id, id, Kind::Policy).await
}

pub(super) async fn put_policy(
    State(e): State<Emulator>,
    Path((account_id, id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    put(e, account_id, id, body, Kind::Policy).await
}

pub(super) async fn delete_policy(
    State(e): State<Emulator>,
    Path((account_id, id)): Path<(String, String)>,
) -> ApiResult {
    delete(e, account_id, id, Kind::Policy).await
}
