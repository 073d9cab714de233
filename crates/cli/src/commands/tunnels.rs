//! `dockflare tunnels`: the tunnels the master manages, with Cloudflare's view and their health.

use super::{all_pages, Session};
use crate::output::style::Tone;
use crate::output::table::{Cell, Table};
use clap::Args;
use dockflare::v1;

#[derive(Args, Debug)]
pub struct TunnelsArgs {
    /// Only the tunnel whose connector this agent runs.
    #[arg(long, value_name = "ID")]
    agent: Option<String>,
}

pub async fn run(args: TunnelsArgs, session: &Session) -> anyhow::Result<()> {
    let client = session.connect().await?;
    let tunnels = all_pages(None, |page_token, page_size| {
        let mut client = client.clone();
        let request = v1::ListTunnelsRequest {
            agent_id: args.agent.clone().unwrap_or_default(),
            page_size,
            page_token,
            ..Default::default()
        };
        async move {
            let page = session.answer("ListTunnels", client.list_tunnels(request).await)?;
            Ok((page.tunnels, page.next_page_token))
        }
    })
    .await?;
    if session.out.is_json() {
        return session.out.json(&v1::ListTunnelsResponse { tunnels, ..Default::default() });
    }
    session.out.table(&tunnels_table(&tunnels), "No tunnels.")
}

fn status(tunnel: &v1::Tunnel) -> Cell {
    let tone = match tunnel.status.as_str() {
        "healthy" => Tone::Good,
        "degraded" | "inactive" => Tone::Warn,
        "down" => Tone::Bad,
        _ => Tone::Plain,
    };
    Cell::toned(tunnel.status.clone(), tone)
}

pub fn tunnels_table(tunnels: &[v1::Tunnel]) -> Table {
    let mut table = Table::new(&["name", "key", "status", "connectors", "routes", "agents", "health", "error"]);
    for tunnel in tunnels {
        table.row(vec![
            tunnel.name.as_str().into(),
            tunnel.key.as_str().into(),
            status(tunnel),
            tunnel.connector_count.to_string().into(),
            tunnel.route_count.to_string().into(),
            tunnel.agent_ids.join(",").into(),
            tunnel.health.as_str().into(),
            tunnel.last_error.as_str().into(),
        ]);
    }
    table
}
