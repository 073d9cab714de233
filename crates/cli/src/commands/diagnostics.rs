//! `dockflare diagnostics`: label problems in the containers agents report.

use super::{all_pages, Session};
use crate::output::table::Table;
use clap::Args;
use dockflare::v1;

#[derive(Args, Debug)]
pub struct DiagnosticsArgs {
    /// Only this agent's containers.
    #[arg(long, value_name = "ID")]
    agent: Option<String>,
}

pub async fn run(args: DiagnosticsArgs, session: &Session) -> anyhow::Result<()> {
    let client = session.connect().await?;
    let diagnostics = all_pages(None, |page_token, page_size| {
        let mut client = client.clone();
        let request = v1::ListDiagnosticsRequest {
            agent_id: args.agent.clone().unwrap_or_default(),
            page_size,
            page_token,
            ..Default::default()
        };
        async move {
            let page = session.answer("ListDiagnostics", client.list_diagnostics(request).await)?;
            Ok((page.diagnostics, page.next_page_token))
        }
    })
    .await?;
    if session.out.is_json() {
        return session.out.json(&v1::ListDiagnosticsResponse { diagnostics, ..Default::default() });
    }
    let mut table = Table::new(&["agent", "container", "label", "value", "reason"]);
    for record in &diagnostics {
        let diagnostic = record.diagnostic.clone().unwrap_or_default();
        table.row(vec![
            record.agent_id.as_str().into(),
            record.container_name.as_str().into(),
            diagnostic.label.into(),
            diagnostic.value.into(),
            diagnostic.reason.into(),
        ]);
    }
    session.out.table(&table, "No label problems.")
}
