//! How agent events change the master's view of reported containers: a pure
//! mapping from an event to a [`ContainerChange`], applied by the event
//! writer in the event's own transaction.

use crate::store::{ContainerChange, ContainerRow};
use dockflare::v1::{agent_event::Event, AgentEvent, Container};
use prost::Message;

fn row(agent_id: &str, container: &Container, at: i64) -> ContainerRow {
    ContainerRow {
        agent_id: agent_id.to_string(),
        container_id: container.id.clone(),
        name: container.name.clone(),
        service_id: container.service_id.clone(),
        service_name: container.service_name.clone(),
        status: container.status.clone(),
        payload: container.encode_to_vec(),
        first_seen_at: at,
        updated_at: at,
    }
}

/// The change an event makes, if any.
pub fn container_change(agent_id: &str, event: &AgentEvent, received_at: i64) -> Option<ContainerChange> {
    match event.event.as_ref()? {
        Event::ContainerStart(container) => Some(ContainerChange::Upsert(row(agent_id, container, received_at))),
        Event::ContainerStop(container) => Some(ContainerChange::Remove { container_id: container.id.clone() }),
        Event::StatusReport(report) => {
            Some(ContainerChange::Replace(report.containers.iter().map(|c| row(agent_id, c, received_at)).collect()))
        }
        Event::Heartbeat(_) | Event::TunnelStatus(_) | Event::CommandResult(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dockflare::v1::{Heartbeat, StatusReport};

    fn event(event: Event) -> AgentEvent {
        AgentEvent { event_id: 1, occurred_at: None, event: Some(event) }
    }

    #[test]
    fn events_map_to_container_changes() {
        let web = Container { id: "c1".into(), name: "web".into(), status: "running".into(), ..Default::default() };
        match container_change("a", &event(Event::ContainerStart(web.clone())), 5) {
            Some(ContainerChange::Upsert(row)) => {
                assert_eq!((row.container_id.as_str(), row.name.as_str(), row.updated_at), ("c1", "web", 5));
                assert_eq!(Container::decode(row.payload.as_slice()).ok(), Some(web.clone()));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            container_change("a", &event(Event::ContainerStop(web.clone())), 5),
            Some(ContainerChange::Remove { container_id: "c1".into() })
        );
        match container_change("a", &event(Event::StatusReport(StatusReport { containers: vec![web] })), 5) {
            Some(ContainerChange::Replace(rows)) => assert_eq!(rows.len(), 1),
            other => panic!("{other:?}"),
        }
        assert_eq!(container_change("a", &event(Event::Heartbeat(Heartbeat::default())), 5), None);
    }
}
