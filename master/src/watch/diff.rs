//! What changed: the objects the store holds now against the view's, compared by a hash of
//! what matters in them. Pure.

use super::objects::LiveObject;
use super::{kind_name, View};
use crate::store::WatchWrite;
use dockflare::v1;
use prost::Message;
use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

/// A hash of the object without what changes on its own without meaning anything (a
/// connector's report time).
pub fn material_hash(message: &v1::WatchChangesResponse) -> u64 {
    let mut material = message.clone();
    if let Some(v1::watch_changes_response::Object::Connector(connector)) = material.object.as_mut() {
        connector.reported_at = None;
    }
    let mut hasher = DefaultHasher::new();
    material.encode_to_vec().hash(&mut hasher);
    hasher.finish()
}

fn write(
    kind: v1::ResourceKind,
    key: &str,
    agents: &[String],
    message: &v1::WatchChangesResponse,
    deleted: bool,
) -> WatchWrite {
    WatchWrite {
        kind: kind_name(kind).to_string(),
        key: key.to_string(),
        agents: agents.join(","),
        deleted,
        payload: message.encode_to_vec(),
    }
}

/// The writes that bring the view to `live`: new and changed objects, then tombstones for
/// those gone.
pub fn changes(view: &View, live: &[LiveObject]) -> Vec<WatchWrite> {
    let mut writes = Vec::new();
    let mut present = HashSet::with_capacity(live.len());
    for object in live {
        present.insert((object.kind, object.key.as_str()));
        let unchanged = view
            .objects
            .get(&(object.kind, object.key.clone()))
            .is_some_and(|entry| !entry.deleted && entry.hash == object.hash);
        if !unchanged {
            writes.push(write(object.kind, &object.key, &object.agents, &object.message, false));
        }
    }
    let mut gone: Vec<_> = view
        .objects
        .values()
        .filter(|entry| !entry.deleted && !present.contains(&(entry.kind, entry.key.as_str())))
        .collect();
    gone.sort_by_key(|entry| entry.revision);
    writes.extend(gone.into_iter().map(|entry| write(entry.kind, &entry.key, &entry.agents, &entry.message, true)));
    writes
}

#[cfg(test)]
mod tests {
    use super::super::Entry;
    use super::*;
    use std::sync::Arc;

    fn route(hostname: &str, service: &str) -> LiveObject {
        LiveObject::new(
            v1::ResourceKind::Route,
            format!("{hostname}@a"),
            vec!["a".into()],
            v1::watch_changes_response::Object::Route(v1::Route {
                hostname: hostname.into(),
                service: service.into(),
                ..Default::default()
            }),
        )
    }

    fn view_of(objects: &[LiveObject], deleted: bool) -> View {
        let mut view = View::default();
        for (i, object) in objects.iter().enumerate() {
            let entry = Entry {
                kind: object.kind,
                key: object.key.clone(),
                agents: object.agents.clone(),
                revision: i as u64 + 1,
                changed_at: 0,
                deleted,
                message: object.message.clone(),
                hash: object.hash,
            };
            view.revision = entry.revision;
            view.objects.insert((entry.kind, entry.key.clone()), Arc::new(entry));
        }
        view
    }

    #[test]
    fn nothing_changed_writes_nothing() {
        let live = [route("a.example.com", "http://a"), route("b.example.com", "http://b")];
        assert!(changes(&view_of(&live, false), &live).is_empty());
    }

    #[test]
    fn new_changed_and_gone_objects_are_written() {
        let before = [route("a.example.com", "http://a"), route("b.example.com", "http://b")];
        let now = [route("a.example.com", "http://a2"), route("c.example.com", "http://c")];
        let writes = changes(&view_of(&before, false), &now);
        let summary: Vec<(&str, bool)> = writes.iter().map(|w| (w.key.as_str(), w.deleted)).collect();
        assert_eq!(summary, [("a.example.com@a", false), ("c.example.com@a", false), ("b.example.com@a", true)]);
        assert!(writes.iter().all(|w| w.kind == "route" && w.agents == "a"));
    }

    #[test]
    fn an_object_back_after_its_deletion_is_written_again() {
        let live = [route("a.example.com", "http://a")];
        assert_eq!(changes(&view_of(&live, true), &live).len(), 1);
    }

    #[test]
    fn a_connector_reporting_the_same_state_again_is_no_change() {
        let connector = |seconds: i64| v1::WatchChangesResponse {
            object: Some(v1::watch_changes_response::Object::Connector(v1::ConnectorStatus {
                agent_id: "a".into(),
                status: None,
                reported_at: Some(prost_types::Timestamp { seconds, nanos: 0 }),
            })),
            ..Default::default()
        };
        assert_eq!(material_hash(&connector(1)), material_hash(&connector(2)));
    }
}
