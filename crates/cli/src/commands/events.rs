//! `dockflare events AGENT`: an agent's stored events, oldest first, one line each.

use super::{all_pages, Session};
use crate::output::table::Table;
use crate::output::words;
use clap::Args;
use dockflare::v1;
use std::time::SystemTime;

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// The agent.
    agent: String,
    /// At most this many, oldest first (default: every stored event, page after page).
    #[arg(long)]
    limit: Option<usize>,
}

pub async fn run(args: EventsArgs, session: &Session) -> anyhow::Result<()> {
    let client = session.connect().await?;
    let events = all_pages(args.limit, |page_token, page_size| {
        let mut client = client.clone();
        let request =
            v1::ListEventsRequest { agent_id: args.agent.clone(), page_size, page_token, ..Default::default() };
        async move {
            let page = session.answer("ListEvents", client.list_events(request).await)?;
            Ok((page.events, page.next_page_token))
        }
    })
    .await?;
    if session.out.is_json() {
        return session.out.json(&v1::ListEventsResponse { events, ..Default::default() });
    }
    let now = SystemTime::now();
    let mut table = Table::new(&["id", "kind", "occurred", "detail"]);
    for record in &events {
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
