//! `dockflare containers`: the DockFlare-labelled containers (and Swarm tasks) agents report.

use super::{all_pages, Session};
use crate::output::table::Table;
use crate::output::words;
use clap::Args;
use dockflare::v1;
use std::time::SystemTime;

#[derive(Args, Debug)]
pub struct ContainersArgs {
    /// Only this agent's containers.
    #[arg(long, value_name = "ID")]
    agent: Option<String>,
}

pub async fn run(args: ContainersArgs, session: &Session) -> anyhow::Result<()> {
    let client = session.connect().await?;
    let containers = all_pages(None, |page_token, page_size| {
        let mut client = client.clone();
        let request = v1::ListContainersRequest {
            agent_id: args.agent.clone().unwrap_or_default(),
            page_size,
            page_token,
            ..Default::default()
        };
        async move {
            let page = session.answer("ListContainers", client.list_containers(request).await)?;
            Ok((page.containers, page.next_page_token))
        }
    })
    .await?;
    if session.out.is_json() {
        return session.out.json(&v1::ListContainersResponse { containers, ..Default::default() });
    }
    let now = SystemTime::now();
    let mut table = Table::new(&["agent", "name", "status", "image", "service", "problems", "since"]);
    for record in &containers {
        let container = record.container.clone().unwrap_or_default();
        table.row(vec![
            record.agent_id.as_str().into(),
            container.name.into(),
            container.status.into(),
            container.image.into(),
            container.service_name.into(),
            if container.diagnostics.is_empty() { String::new() } else { container.diagnostics.len().to_string() }
                .into(),
            words::age_of(record.first_seen_at.as_ref(), now).into(),
        ]);
    }
    session.out.table(&table, "No labelled containers.")
}
