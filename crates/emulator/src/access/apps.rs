//! Access applications and the policies they link: checking a body (type, domain not taken,
//! session duration, tags, identity providers), resolving its `policies` (links, bare ids,
//! inline app-scoped policies; precedence unique, assigned in list order when missing),
//! storing links and expanding them in answers, and the legacy app-scoped policy calls
//! (`/apps/{id}/policies`).

use super::policies::{id_of, is_reusable, owner_of};
use super::rules::{check_policy, check_session_duration, required, text};
use super::{DOMAIN_TAKEN, INVALID, NOT_FOUND};
use crate::http::ApiError;
use crate::state::{hex32, now, uuid, Data};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

/// The key of an app-scoped policy naming its application (never answered).
pub(crate) const OWNER: &str = "app_id";

/// A policy linked to an application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Link {
    pub id: String,
    pub precedence: i64,
}

/// The links an application holds, in precedence order. Tolerant of what older emulators
/// stored verbatim (bare ids, objects with an `id`; a missing precedence is the position).
pub(super) fn links(app: &Map<String, Value>) -> Vec<Link> {
    let items = app.get("policies").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let mut links: Vec<Link> = items
        .iter()
        .enumerate()
        .filter_map(|(index, item)| {
            let position = i64::try_from(index).unwrap_or(i64::MAX).saturating_add(1);
            match item {
                Value::String(id) => Some(Link { id: id.clone(), precedence: position }),
                Value::Object(map) => Some(Link {
                    id: map.get("id").and_then(Value::as_str)?.to_string(),
                    precedence: map.get("precedence").and_then(Value::as_i64).unwrap_or(position),
                }),
                _ => None,
            }
        })
        .collect();
    links.sort_by_key(|link| link.precedence);
    links
}

fn store_links(app: &mut Map<String, Value>, links: &[Link]) {
    let items = links.iter().map(|l| json!({"id": l.id, "precedence": l.precedence})).collect();
    app.insert("policies".into(), Value::Array(items));
}

fn invalid(message: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(INVALID, format!("Invalid request: {message}"))
}

fn app_not_found(id: &str) -> ApiError {
    ApiError::new(404, NOT_FOUND, format!("Access application {id} not found"))
}

/// `a.Example.com/api/` and `a.example.com/api` are one domain.
fn normalize_domain(domain: &str) -> String {
    domain.trim().trim_end_matches('/').to_ascii_lowercase()
}

/// `key` as a list of strings (absent or null: empty).
fn strings(body: &Map<String, Value>, key: &str) -> Result<Vec<String>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str().map(str::to_string).ok_or_else(|| invalid(format!("{key}: {item} is not a string")))
            })
            .collect(),
        Some(other) => Err(invalid(format!("{key} must be a list of strings, not {other}"))),
    }
}

/// Sets `key` unless it holds a value.
fn default(body: &mut Map<String, Value>, key: &str, value: Value) {
    if body.get(key).is_none_or(Value::is_null) {
        body.insert(key.into(), value);
    }
}

/// An integer `precedence`, if given.
fn precedence_of(map: &Map<String, Value>, what: &str) -> Result<Option<i64>, ApiError> {
    match map.get("precedence") {
        None | Some(Value::Null) => Ok(None),
        Some(value) => {
            value.as_i64().map(Some).ok_or_else(|| invalid(format!("{what}precedence must be an integer, not {value}")))
        }
    }
}

/// Links in precedence order: given precedences must be unique; missing ones take the next
/// free number, in list order.
fn assign_precedence(wanted: Vec<(String, Option<i64>)>) -> Result<Vec<Link>, ApiError> {
    let mut taken = BTreeSet::new();
    for precedence in wanted.iter().filter_map(|(_, p)| *p) {
        if !taken.insert(precedence) {
            return Err(invalid(format!(
                "precedence {precedence} is given to two policies; it must be unique within an application"
            )));
        }
    }
    let mut ids = BTreeSet::new();
    let mut next = 1;
    let mut links = Vec::with_capacity(wanted.len());
    for (id, precedence) in wanted {
        if !ids.insert(id.clone()) {
            return Err(invalid(format!("policy {id} is listed twice")));
        }
        let precedence = match precedence {
            Some(precedence) => precedence,
            None => {
                while taken.contains(&next) {
                    next += 1;
                }
                taken.insert(next);
                next
            }
        };
        links.push(Link { id, precedence });
    }
    links.sort_by_key(|link| link.precedence);
    Ok(links)
}

/// A policy (or application) as stored.
type Policy = Map<String, Value>;

/// A checked application body, before it is stored.
struct Prepared {
    app: Map<String, Value>,
    links: Vec<Link>,
    /// App-scoped policies to add or replace (owner set).
    upserts: Vec<Map<String, Value>>,
}

impl Data {
    fn app_index(&self, id: &str) -> Result<usize, ApiError> {
        self.access_apps.iter().position(|app| id_of(app) == id).ok_or_else(|| app_not_found(id))
    }

    /// An application as answered: its links expanded into policies, in precedence order.
    fn app_answer(&self, app: &Map<String, Value>) -> Value {
        let mut answer = app.clone();
        answer.insert("policies".into(), Value::Array(self.expanded(app)));
        Value::Object(answer)
    }

    fn expanded(&self, app: &Map<String, Value>) -> Vec<Value> {
        links(app)
            .iter()
            .filter_map(|link| {
                let index = self.policy_index(&link.id)?;
                Some(Data::linked_policy_answer(&self.access_policies[index], link.precedence))
            })
            .collect()
    }

    /// Every application as the API answers it (policies expanded, in precedence order): what
    /// a local edge enforcing Access reads.
    pub(crate) fn app_answers(&self) -> Vec<Value> {
        self.access_apps.iter().map(|app| self.app_answer(app)).collect()
    }

    pub(super) fn app_answer_by_id(&self, id: &str) -> Result<Value, ApiError> {
        let index = self.app_index(id)?;
        Ok(self.app_answer(&self.access_apps[index]))
    }

    /// `id` if application `app_id` may link it: a reusable policy, or one of its own.
    fn linkable(&self, id: &str, app_id: &str) -> Result<String, ApiError> {
        self.policy_index(id)
            .map(|index| &self.access_policies[index])
            .filter(|policy| is_reusable(policy) || owner_of(policy) == Some(app_id))
            .map(|_| id.to_string())
            .ok_or_else(|| invalid(format!("policies: Access policy {id} does not exist")))
    }

    fn prepare_app(
        &self,
        mut body: Map<String, Value>,
        app_id: &str,
        current: Option<&Map<String, Value>>,
    ) -> Result<Prepared, ApiError> {
        let kind = required(&body, "type")?;
        if kind == "self_hosted" {
            required(&body, "domain")?;
        }
        if let Some(domain) = text(&body, "domain") {
            let wanted = normalize_domain(domain);
            let taken = self
                .access_apps
                .iter()
                .find(|app| id_of(app) != app_id && text(app, "domain").is_some_and(|d| normalize_domain(d) == wanted));
            if let Some(other) = taken {
                return Err(ApiError::bad_request(
                    DOMAIN_TAKEN,
                    format!(
                        "An Access application for domain {domain} already exists: {:?} ({})",
                        text(other, "name").unwrap_or(""),
                        id_of(other)
                    ),
                ));
            }
        }
        check_session_duration(&body)?;
        let tags = strings(&body, "tags")?;
        if let Some(tag) =
            tags.iter().find(|tag| !self.access_tags.iter().any(|t| text(t, "name") == Some(tag.as_str())))
        {
            return Err(invalid(format!(
                "tags: Access tag {tag:?} does not exist; create it with POST /accounts/{{account_id}}/access/tags"
            )));
        }
        let idps = strings(&body, "allowed_idps")?;
        if let Some(idp) = idps.iter().find(|idp| !self.identity_providers.iter().any(|p| id_of(p) == idp.as_str())) {
            return Err(invalid(format!("allowed_idps: identity provider {idp} does not exist")));
        }
        let (links, upserts) = match body.get("policies") {
            None | Some(Value::Null) => (current.map(links).unwrap_or_default(), Vec::new()),
            Some(Value::Array(items)) => self.resolve_policies(items, app_id)?,
            Some(other) => return Err(invalid(format!("policies must be a list, not {other}"))),
        };
        body.insert("tags".into(), json!(tags));
        body.insert("allowed_idps".into(), json!(idps));
        default(&mut body, "session_duration", json!("24h"));
        default(&mut body, "app_launcher_visible", json!(true));
        default(&mut body, "auto_redirect_to_identity", json!(false));
        Ok(Prepared { app: body, links, upserts })
    }

    /// The links a request's `policies` ask for, and the inline policies to store.
    fn resolve_policies(&self, items: &[Value], app_id: &str) -> Result<(Vec<Link>, Vec<Policy>), ApiError> {
        let mut wanted = Vec::with_capacity(items.len());
        let mut upserts = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let what = format!("policies[{index}].");
            let map = match item {
                Value::String(id) => {
                    wanted.push((self.linkable(id, app_id)?, None));
                    continue;
                }
                Value::Object(map) => map,
                other => return Err(invalid(format!("policies[{index}] {other} is neither a policy id nor a policy"))),
            };
            let precedence = precedence_of(map, &what)?;
            let id = text(map, "id");
            let is_link = map.keys().all(|key| key == "id" || key == "precedence");
            let reusable =
                id.and_then(|id| self.policy_index(id)).is_some_and(|i| is_reusable(&self.access_policies[i]));
            match id {
                Some(id) if is_link || reusable => wanted.push((self.linkable(id, app_id)?, precedence)),
                None if is_link => return Err(invalid(format!("policies[{index}] names no policy"))),
                id => {
                    let mut policy = map.clone();
                    policy.remove("precedence");
                    policy.remove("app_count");
                    check_policy(&mut policy)?;
                    let stamp = now();
                    let own = id
                        .and_then(|id| self.policy_index(id))
                        .map(|i| &self.access_policies[i])
                        .filter(|p| owner_of(p) == Some(app_id));
                    let (policy_id, created) = match own {
                        Some(own) => (id_of(own).to_string(), own.get("created_at").cloned().unwrap_or(json!(stamp))),
                        None => (uuid(), json!(stamp)),
                    };
                    policy.insert("id".into(), json!(policy_id));
                    policy.insert("reusable".into(), json!(false));
                    policy.insert("created_at".into(), created);
                    policy.insert("updated_at".into(), json!(stamp));
                    policy.insert(OWNER.into(), json!(app_id));
                    upserts.push(policy);
                    wanted.push((policy_id, precedence));
                }
            }
        }
        Ok((assign_precedence(wanted)?, upserts))
    }

    /// Stores a prepared application (`index`: the one it replaces) and answers it.
    fn commit_app(&mut self, app_id: &str, prepared: Prepared, index: Option<usize>) -> Value {
        let Prepared { mut app, links, upserts } = prepared;
        let linked: BTreeSet<String> = links.iter().map(|l| l.id.clone()).collect();
        self.access_policies.retain(|p| owner_of(p) != Some(app_id) || linked.contains(id_of(p)));
        for policy in upserts {
            match self.policy_index(id_of(&policy)) {
                Some(i) => self.access_policies[i] = policy,
                None => self.access_policies.push(policy),
            }
        }
        let stamp = now();
        let old = index.and_then(|i| self.access_apps.get(i));
        let aud = old.and_then(|o| o.get("aud").cloned()).unwrap_or_else(|| json!(format!("{}{}", hex32(), hex32())));
        let created = old.and_then(|o| o.get("created_at").cloned()).unwrap_or_else(|| json!(stamp));
        app.insert("id".into(), json!(app_id));
        app.insert("aud".into(), aud);
        app.insert("created_at".into(), created);
        app.insert("updated_at".into(), json!(stamp));
        store_links(&mut app, &links);
        match index {
            Some(i) => self.access_apps[i] = app.clone(),
            None => self.access_apps.push(app.clone()),
        }
        self.app_answer(&app)
    }

    pub(super) fn create_app(&mut self, body: Map<String, Value>) -> Result<Value, ApiError> {
        let app_id = uuid();
        let prepared = self.prepare_app(body, &app_id, None)?;
        Ok(self.commit_app(&app_id, prepared, None))
    }

    pub(super) fn put_app(&mut self, id: &str, body: Map<String, Value>) -> Result<Value, ApiError> {
        let index = self.app_index(id)?;
        let current = self.access_apps[index].clone();
        let prepared = self.prepare_app(body, id, Some(&current))?;
        Ok(self.commit_app(id, prepared, Some(index)))
    }

    /// Deletes the application and its app-scoped policies.
    pub(super) fn delete_app(&mut self, id: &str) -> Result<(), ApiError> {
        let index = self.app_index(id)?;
        self.access_apps.remove(index);
        self.access_policies.retain(|p| owner_of(p) != Some(id));
        Ok(())
    }

    pub(super) fn app_policies(&self, app_id: &str) -> Result<Vec<Value>, ApiError> {
        let index = self.app_index(app_id)?;
        Ok(self.expanded(&self.access_apps[index]))
    }

    fn app_link(&self, app_id: &str, policy_id: &str) -> Result<(usize, Vec<Link>, usize), ApiError> {
        let index = self.app_index(app_id)?;
        let links = links(&self.access_apps[index]);
        let position = links
            .iter()
            .position(|l| l.id == policy_id)
            .filter(|_| self.policy_index(policy_id).is_some())
            .ok_or_else(|| {
                ApiError::new(404, NOT_FOUND, format!("Access policy {policy_id} not found in application {app_id}"))
            })?;
        Ok((index, links, position))
    }

    pub(super) fn app_policy(&self, app_id: &str, policy_id: &str) -> Result<Value, ApiError> {
        let (_, links, position) = self.app_link(app_id, policy_id)?;
        let policy = self.policy_index(policy_id).map(|i| &self.access_policies[i]);
        policy
            .map(|p| Data::linked_policy_answer(p, links[position].precedence))
            .ok_or_else(|| ApiError::new(404, NOT_FOUND, format!("Access policy {policy_id} not found")))
    }

    /// 400 unless `precedence` is free in `links` (but for position `except`).
    fn free_precedence(links: &[Link], precedence: i64, except: Option<usize>) -> Result<(), ApiError> {
        match links.iter().enumerate().find(|(i, l)| l.precedence == precedence && Some(*i) != except) {
            Some((_, other)) => Err(invalid(format!(
                "precedence {precedence} is already policy {}'s in this application; it must be unique",
                other.id
            ))),
            None => Ok(()),
        }
    }

    /// A new app-scoped policy, linked last unless `precedence` says otherwise.
    pub(super) fn create_app_policy(&mut self, app_id: &str, mut body: Map<String, Value>) -> Result<Value, ApiError> {
        let index = self.app_index(app_id)?;
        let mut app_links = links(&self.access_apps[index]);
        let precedence = precedence_of(&body, "")?;
        body.remove("precedence");
        body.remove("app_count");
        check_policy(&mut body)?;
        let precedence = match precedence {
            Some(p) => {
                Data::free_precedence(&app_links, p, None)?;
                p
            }
            None => app_links.iter().map(|l| l.precedence).max().unwrap_or(0).saturating_add(1),
        };
        let stamp = now();
        let policy_id = uuid();
        body.insert("id".into(), json!(policy_id));
        body.insert("reusable".into(), json!(false));
        body.insert("created_at".into(), json!(stamp));
        body.insert("updated_at".into(), json!(stamp));
        body.insert(OWNER.into(), json!(app_id));
        self.access_policies.push(body.clone());
        app_links.push(Link { id: policy_id, precedence });
        app_links.sort_by_key(|l| l.precedence);
        store_links(&mut self.access_apps[index], &app_links);
        Ok(Data::linked_policy_answer(&body, precedence))
    }

    /// Replaces one of the application's own policies (a reusable one is changed at
    /// `/access/policies`: 400 here).
    pub(super) fn put_app_policy(
        &mut self,
        app_id: &str,
        policy_id: &str,
        mut body: Map<String, Value>,
    ) -> Result<Value, ApiError> {
        let (index, mut app_links, position) = self.app_link(app_id, policy_id)?;
        let policy_index = self.policy_index(policy_id).ok_or_else(|| app_not_found(app_id))?;
        if owner_of(&self.access_policies[policy_index]) != Some(app_id) {
            return Err(invalid(format!(
                "Access policy {policy_id} is reusable: change it with PUT /accounts/{{account_id}}/access/policies/{policy_id}"
            )));
        }
        let precedence = precedence_of(&body, "")?;
        body.remove("precedence");
        body.remove("app_count");
        check_policy(&mut body)?;
        if let Some(p) = precedence {
            Data::free_precedence(&app_links, p, Some(position))?;
            app_links[position].precedence = p;
        }
        let created = self.access_policies[policy_index].get("created_at").cloned().unwrap_or_else(|| json!(now()));
        body.insert("id".into(), json!(policy_id));
        body.insert("reusable".into(), json!(false));
        body.insert("created_at".into(), created);
        body.insert("updated_at".into(), json!(now()));
        body.insert(OWNER.into(), json!(app_id));
        self.access_policies[policy_index] = body.clone();
        let precedence = app_links[position].precedence;
        app_links.sort_by_key(|l| l.precedence);
        store_links(&mut self.access_apps[index], &app_links);
        Ok(Data::linked_policy_answer(&body, precedence))
    }

    /// Unlinks the policy from the application; an app-scoped one is deleted too.
    pub(super) fn delete_app_policy(&mut self, app_id: &str, policy_id: &str) -> Result<(), ApiError> {
        let (index, mut app_links, position) = self.app_link(app_id, policy_id)?;
        app_links.remove(position);
        store_links(&mut self.access_apps[index], &app_links);
        self.access_policies.retain(|p| !(id_of(p) == policy_id && owner_of(p) == Some(app_id)));
        Ok(())
    }

    /// How many applications name tag `name`.
    pub(super) fn tag_app_count(&self, name: &str) -> usize {
        self.access_apps
            .iter()
            .filter(|app| {
                app.get("tags")
                    .and_then(Value::as_array)
                    .is_some_and(|tags| tags.iter().any(|t| t.as_str() == Some(name)))
            })
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_is_unique_and_assigned_in_list_order() {
        let wanted = |items: &[(&str, Option<i64>)]| -> Vec<(String, Option<i64>)> {
            items.iter().map(|(id, p)| (id.to_string(), *p)).collect()
        };
        let links = assign_precedence(wanted(&[("a", None), ("b", Some(1)), ("c", None)])).unwrap_or_default();
        let order: Vec<(&str, i64)> = links.iter().map(|l| (l.id.as_str(), l.precedence)).collect();
        assert_eq!(order, [("b", 1), ("a", 2), ("c", 3)]);
        assert!(assign_precedence(wanted(&[("a", Some(2)), ("b", Some(2))])).is_err());
        assert!(assign_precedence(wanted(&[("a", None), ("a", None)])).is_err());
    }

    #[test]
    fn stored_links_are_read_tolerantly() {
        let app = json!({"policies": ["p1", {"id": "p2", "precedence": 0}, {"name": "no id"}, 7]});
        let found = links(app.as_object().unwrap_or(&Map::new()));
        assert_eq!(found, [Link { id: "p2".into(), precedence: 0 }, Link { id: "p1".into(), precedence: 1 }]);
    }

    #[test]
    fn domains_compare_without_case_or_trailing_slash() {
        assert_eq!(normalize_domain("A.Example.com/api/"), normalize_domain("a.example.com/api"));
        assert_ne!(normalize_domain("a.example.com/api"), normalize_domain("a.example.com"));
    }
}
