//! `dockflare tunnels`: the tunnels the master manages, with Cloudflare's view and their health.

use super::Session;
use crate::output::style::Tone;
use crate::output::table::{Cell, Table};
use dockflare::v1;

pub async fn run(session: &Session) -> anyhow::Result<()> {
    let mut client = session.connect().await?;
    let response = session.answer("ListTunnels", client.list_tunnels(v1::ListTunnelsRequest::default()).await)?;
    if session.out.is_json() {
        return session.out.json(&response);
    }
    session.out.table(&tunnels_table(&response.tunnels), "No tunnels.")
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
