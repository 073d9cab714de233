//! How agent events change the master's view of reported containers and connectors: pure
//! mappings from an event to a [`ContainerChange`] and to the connector state kept, applied by
//! the event writer in the event's own transaction.

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

/// The connector state a tunnel_status event reports, as the store keeps it: an `AgentEvent`
/// holding only the status (no event id, no time), so that a repeated report of the same state
/// has the same bytes.
pub fn connector_state(event: &AgentEvent) -> Option<Vec<u8>> {
    match event.event.as_ref()? {
        Event::TunnelStatus(status) => Some(
            AgentEvent { event: Some(Event::TunnelStatus(status.clone())), ..AgentEvent::default() }.encode_to_vec(),
        ),
        _ => None,
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
    fn a_connector_state_is_the_status_alone() {
        use dockflare::v1::{ConnectorState, TunnelStatus};
        let running = TunnelStatus { state: ConnectorState::Running as i32, ..Default::default() };
        let first = AgentEvent {
            event_id: 1,
            occurred_at: Some(prost_types::Timestamp { seconds: 10, nanos: 0 }),
            event: Some(Event::TunnelStatus(running.clone())),
        };
        let again = AgentEvent {
            event_id: 9,
            occurred_at: Some(prost_types::Timestamp { seconds: 40, nanos: 0 }),
            ..first.clone()
        };
        let state = connector_state(&first).expect("a tunnel_status has a state");
        assert_eq!(connector_state(&again), Some(state.clone()), "a repeated report is the same state");
        let stored = AgentEvent::decode(state.as_slice()).expect("the state decodes as an AgentEvent");
        assert_eq!(stored.event, Some(Event::TunnelStatus(running)));
        let failed = TunnelStatus { state: ConnectorState::Failed as i32, ..Default::default() };
        assert_ne!(connector_state(&event(Event::TunnelStatus(failed))), Some(state));
        assert_eq!(connector_state(&event(Event::Heartbeat(Heartbeat::default()))), None);
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
