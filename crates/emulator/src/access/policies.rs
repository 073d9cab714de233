//! Reusable Access policies (`/accounts/{a}/access/policies`) and how any policy — reusable or
//! app-scoped — is answered. Reusable policies carry `app_count` (the applications linking
//! them); one still linked is not deleted (400/[`IN_USE`] naming the count). App-scoped
//! policies live in the same list, marked by [`OWNER`], and are neither listed nor reachable
//! here.

use super::apps::{links, OWNER};
use super::rules::{check_policy, text};
use super::{IN_USE, NOT_FOUND};
use crate::http::ApiError;
use crate::state::{now, uuid, Data};
use serde_json::{json, Map, Value};

/// An object's `id` (empty when it has none).
pub(super) fn id_of(item: &Map<String, Value>) -> &str {
    item.get("id").and_then(Value::as_str).unwrap_or("")
}

/// The application owning an app-scoped policy.
pub(super) fn owner_of(policy: &Map<String, Value>) -> Option<&str> {
    policy.get(OWNER).and_then(Value::as_str)
}

/// Whether `policy` is reusable (not owned by an application).
pub(super) fn is_reusable(policy: &Map<String, Value>) -> bool {
    owner_of(policy).is_none() && policy.get("reusable").and_then(Value::as_bool) != Some(false)
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(404, NOT_FOUND, format!("Access policy {id} not found"))
}

impl Data {
    pub(super) fn policy_index(&self, id: &str) -> Option<usize> {
        self.access_policies.iter().position(|p| id_of(p) == id)
    }

    fn reusable_index(&self, id: &str) -> Result<usize, ApiError> {
        self.policy_index(id).filter(|&i| is_reusable(&self.access_policies[i])).ok_or_else(|| not_found(id))
    }

    /// How many applications link policy `id`.
    pub(crate) fn app_count(&self, id: &str) -> usize {
        self.access_apps.iter().filter(|app| links(app).iter().any(|link| link.id == id)).count()
    }

    /// A policy as an application (or its `/policies`) answers it: with its precedence there.
    pub(super) fn linked_policy_answer(policy: &Map<String, Value>, precedence: i64) -> Value {
        let mut answer = policy.clone();
        answer.remove(OWNER);
        answer.remove("app_count");
        answer.insert("reusable".into(), json!(is_reusable(policy)));
        answer.insert("precedence".into(), json!(precedence));
        Value::Object(answer)
    }

    fn reusable_answer(&self, policy: &Map<String, Value>) -> Value {
        let mut answer = policy.clone();
        answer.insert("reusable".into(), json!(true));
        answer.insert("app_count".into(), json!(self.app_count(id_of(policy))));
        Value::Object(answer)
    }

    pub(super) fn reusable_policy_answers(&self) -> Vec<Value> {
        self.access_policies.iter().filter(|p| is_reusable(p)).map(|p| self.reusable_answer(p)).collect()
    }

    pub(super) fn reusable_policy(&self, id: &str) -> Result<Value, ApiError> {
        let index = self.reusable_index(id)?;
        Ok(self.reusable_answer(&self.access_policies[index]))
    }

    pub(super) fn create_reusable_policy(&mut self, mut body: Map<String, Value>) -> Result<Value, ApiError> {
        check_policy(&mut body)?;
        body.remove(OWNER);
        body.remove("app_count");
        body.remove("precedence");
        let stamp = now();
        body.insert("id".into(), json!(uuid()));
        body.insert("reusable".into(), json!(true));
        body.insert("created_at".into(), json!(stamp));
        body.insert("updated_at".into(), json!(stamp));
        self.access_policies.push(body.clone());
        Ok(self.reusable_answer(&body))
    }

    pub(super) fn put_reusable_policy(&mut self, id: &str, mut body: Map<String, Value>) -> Result<Value, ApiError> {
        let index = self.reusable_index(id)?;
        check_policy(&mut body)?;
        body.remove(OWNER);
        body.remove("app_count");
        body.remove("precedence");
        let old = &self.access_policies[index];
        let created = old.get("created_at").cloned().unwrap_or_else(|| json!(now()));
        body.insert("id".into(), json!(id));
        body.insert("reusable".into(), json!(true));
        body.insert("created_at".into(), created);
        body.insert("updated_at".into(), json!(now()));
        self.access_policies[index] = body.clone();
        Ok(self.reusable_answer(&body))
    }

    /// Refused (400/[`IN_USE`]) while applications link the policy.
    pub(super) fn delete_reusable_policy(&mut self, id: &str) -> Result<(), ApiError> {
        let index = self.reusable_index(id)?;
        let count = self.app_count(id);
        if count > 0 {
            let name = text(&self.access_policies[index], "name").unwrap_or("");
            return Err(ApiError::bad_request(
                IN_USE,
                format!(
                    "Access policy {name:?} ({id}) is used by {count} application(s); remove it from them before deleting it"
                ),
            ));
        }
        self.access_policies.remove(index);
        Ok(())
    }
}
