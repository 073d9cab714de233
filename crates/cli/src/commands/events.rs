//! `dockflare events AGENT`: an agent's stored events, oldest first, one line each.

use super::Session;
use crate::output::table::Table;
use crate::output::words;
use clap::Args;
use dockflare::v1;
use std::time::SystemTime;

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// The agent.
    agent: String,
    /// Only events with an id above this.
    #[arg(long, default_value_t = 0, value_name = "EVENT_ID")]
    after: u64,
    /// At most this many (the master's default: 100; at most 1000).
    #[arg(long, default_value_t = 0, hide_default_value = true)]
    limit: u32,
}

pub async fn run(args: EventsArgs, session: &Session) -> anyhow::Result<()> {
    let mut client = session.connect().await?;
    // after_event_id and limit: the paging the master answers to now (kept while it does).
    #[allow(deprecated)]
    let request = v1::ListEventsRequest {
        agent_id: args.agent,
        after_event_id: args.after,
        limit: args.limit,
        ..Default::default()
    };
    let response = session.answer("ListEvents", client.list_events(request).await)?;
    if session.out.is_json() {
        return session.out.json(&response);
    }
    let now = SystemTime::now();
    let mut table = Table::new(&["id", "kind", "occurred", "detail"]);
    for record in &response.events {
        table.row(vec![
            record.event_id.to_string().into(),
            record.kind.as_str().into(),
            words::age_of(record.occurred_at.as_ref(), now).into(),
            detail(record.event.as_ref()).into(),
        ]);
    }
    session.out.table(&table, "No events.")
}

/// One event in a few words.
fn detail(event: Option<&v1::AgentEvent>) -> String {
    use v1::agent_event::Event;
    match event.and_then(|event| event.event.as_ref()) {
        Some(Event::ContainerStart(container)) => format!("{} started ({})", container.name, container.image),
        Some(Event::ContainerStop(container)) => format!("{} stopped", container.name),
        Some(Event::Heartbeat(beat)) => format!("{} container(s)", beat.container_count),
        Some(Event::StatusReport(report)) => format!("{} container(s) reported", report.containers.len()),
        Some(Event::TunnelStatus(status)) => {
            let mut text = format!("connector {}", words::connector_state_word(status.state));
            if !status.tunnel_name.is_empty() {
                text.push_str(&format!(" for {}", status.tunnel_name));
            }
            if !status.detail.is_empty() {
                text.push_str(&format!(": {}", status.detail));
            }
            text
        }
        Some(Event::CommandResult(result)) if result.success => format!("command {} applied", result.sequence),
        Some(Event::CommandResult(result)) => format!("command {} failed: {}", result.sequence, result.error),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use v1::agent_event::Event;

    #[test]
    fn events_in_a_few_words() {
        let event = |e: Event| v1::AgentEvent { event: Some(e), ..Default::default() };
        let failed = v1::CommandResult { sequence: 3, success: false, error: "no image".into(), ..Default::default() };
        assert_eq!(detail(Some(&event(Event::CommandResult(failed)))), "command 3 failed: no image");
        let status = v1::TunnelStatus {
            state: v1::ConnectorState::Running as i32,
            tunnel_name: "t1".into(),
            ..Default::default()
        };
        assert_eq!(detail(Some(&event(Event::TunnelStatus(status)))), "connector running for t1");
        assert_eq!(detail(None), "");
    }
}
