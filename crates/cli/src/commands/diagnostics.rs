//! `dockflare diagnostics`: label problems in the containers agents report.

use super::Session;
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
    let mut client = session.connect().await?;
    let request = v1::ListDiagnosticsRequest { agent_id: args.agent.unwrap_or_default(), ..Default::default() };
    let response = session.answer("ListDiagnostics", client.list_diagnostics(request).await)?;
    if session.out.is_json() {
        return session.out.json(&response);
    }
    let mut table = Table::new(&["agent", "container", "label", "value", "reason"]);
    for record in &response.diagnostics {
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
