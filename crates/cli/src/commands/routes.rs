//! `dockflare routes`: list (every page, with the master's filters), add a manual route, remove
//! one.

use super::{all_pages, Session};
use crate::output::table::{fields, Cell, Table};
use crate::output::words;
use clap::{ArgGroup, Args, Subcommand};
use dockflare::v1;
use std::time::SystemTime;

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RoutesArgs {
    #[command(subcommand)]
    command: Option<RoutesCommand>,
    #[command(flatten)]
    list: ListArgs,
}

/// Which routes to list.
#[derive(Args, Debug, Default)]
struct ListArgs {
    /// Only this agent's routes.
    #[arg(long, value_name = "ID")]
    agent: Option<String>,
    /// Only routes with this status.
    #[arg(long, value_enum)]
    status: Option<Status>,
    /// Only routes of this hostname (exactly, any case).
    #[arg(long)]
    hostname: Option<String>,
    /// Only routes from labels, or only manual ones.
    #[arg(long, value_enum)]
    source: Option<Source>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Status {
    Active,
    PendingDeletion,
    Conflict,
    Invalid,
    Error,
}

impl Status {
    fn proto(self) -> v1::RouteStatus {
        match self {
            Status::Active => v1::RouteStatus::Active,
            Status::PendingDeletion => v1::RouteStatus::PendingDeletion,
            Status::Conflict => v1::RouteStatus::Conflict,
            Status::Invalid => v1::RouteStatus::Invalid,
            Status::Error => v1::RouteStatus::Error,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Source {
    Labels,
    Manual,
}

impl Source {
    fn proto(self) -> v1::RouteSource {
        match self {
            Source::Labels => v1::RouteSource::Labels,
            Source::Manual => v1::RouteSource::Manual,
        }
    }
}

#[derive(Subcommand, Debug)]
enum RoutesCommand {
    /// List routes (the default), every page.
    List(ListArgs),
    /// Add (or replace) a manual route, carried by an agent's tunnel or a tunnel group's.
    Add(AddArgs),
    /// Delete a manual route; its ingress rule and DNS record go at once.
    #[command(visible_alias = "remove")]
    Rm {
        hostname: String,
        /// The path of the route ("" matches every path).
        #[arg(long, default_value = "")]
        path: String,
    },
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("carrier").required(true).args(["agent", "group"])))]
struct AddArgs {
    /// The public hostname (a leading `*.` is a wildcard).
    hostname: String,
    /// The origin, as in the service label: http(s)://host[:port], tcp://…, http_status:NNN, …
    #[arg(long, value_name = "URL")]
    service: String,
    /// Path match (a regular expression; "" matches every path).
    #[arg(long, default_value = "")]
    path: String,
    /// The agent whose tunnel carries it…
    #[arg(long, value_name = "ID")]
    agent: Option<String>,
    /// …or the tunnel group whose tunnel carries it.
    #[arg(long, value_name = "NAME")]
    group: Option<String>,
    /// The zone of the DNS record (default: the longest matching zone).
    #[arg(long, value_name = "ZONE")]
    zone: Option<String>,
    /// Do not verify the origin's TLS certificate.
    #[arg(long)]
    no_tls_verify: bool,
    /// The Host header sent to the origin.
    #[arg(long, value_name = "HOST")]
    http_host_header: Option<String>,
    /// The name the origin's TLS certificate is checked against.
    #[arg(long, value_name = "NAME")]
    origin_server_name: Option<String>,
}

pub async fn run(args: RoutesArgs, session: &Session) -> anyhow::Result<()> {
    let mut client = session.connect().await?;
    let out = session.out;
    match args.command.unwrap_or(RoutesCommand::List(args.list)) {
        RoutesCommand::List(list) => {
            let routes = all_pages(None, |page_token, page_size| {
                let mut client = client.clone();
                let request = v1::ListRoutesRequest {
                    agent_id: list.agent.clone().unwrap_or_default(),
                    status: list.status.map_or(0, |status| status.proto() as i32),
                    hostname: list.hostname.clone().unwrap_or_default(),
                    source: list.source.map_or(0, |source| source.proto() as i32),
                    page_size,
                    page_token,
                    ..Default::default()
                };
                async move {
                    let page = session.answer("ListRoutes", client.list_routes(request).await)?;
                    Ok((page.routes, page.next_page_token))
                }
            })
            .await?;
            if out.is_json() {
                return out.json(&v1::ListRoutesResponse { routes, ..Default::default() });
            }
            out.table(&routes_table(&routes, SystemTime::now()), "No routes.")
        }
        RoutesCommand::Add(add) => {
            let origin = v1::OriginRequest {
                no_tls_verify: add.no_tls_verify.then_some(true),
                http_host_header: add.http_host_header,
                origin_server_name: add.origin_server_name,
                ..Default::default()
            };
            let request = v1::AddManualRouteRequest {
                hostname: add.hostname,
                path: add.path,
                service: add.service,
                origin_request: (origin != v1::OriginRequest::default()).then_some(origin),
                zone_name: add.zone.unwrap_or_default(),
                agent_id: add.agent.unwrap_or_default(),
                tunnel_group: add.group.unwrap_or_default(),
                ..Default::default()
            };
            let response = session.answer("AddManualRoute", client.add_manual_route(request).await)?;
            if out.is_json() {
                return out.json(&response);
            }
            let Some(route) = &response.route else { return Ok(()) };
            crate::output::print(&fields(&route_fields(route, SystemTime::now()), out.colour))
        }
        RoutesCommand::Rm { hostname, path } => {
            let request =
                v1::DeleteManualRouteRequest { hostname: hostname.clone(), path: path.clone(), ..Default::default() };
            let response = session.answer("DeleteManualRoute", client.delete_manual_route(request).await)?;
            if out.is_json() {
                return out.json(&response);
            }
            crate::output::print(&format!("deleted manual route {hostname}{path}\n"))
        }
    }
}

/// Who carries a route: `group:NAME` for a group's manual route, else the agent.
fn carrier(route: &v1::Route) -> String {
    if route.tunnel_group.is_empty() {
        route.agent_id.clone()
    } else {
        format!("group:{}", route.tunnel_group)
    }
}

/// Why a route has its status: the reason, else the last Cloudflare error.
pub(super) fn why(route: &v1::Route) -> &str {
    if route.reason.is_empty() {
        &route.last_error
    } else {
        &route.reason
    }
}

pub fn routes_table(routes: &[v1::Route], now: SystemTime) -> Table {
    let mut table = Table::new(&["hostname", "path", "service", "status", "source", "agent", "container", "reason"]);
    for route in routes {
        let container = if route.service_name.is_empty() { &route.container_name } else { &route.service_name };
        table.row(vec![
            route.hostname.as_str().into(),
            route.path.as_str().into(),
            route.service.as_str().into(),
            words::route_status(route, now),
            words::route_source_word(route.source).into(),
            carrier(route).into(),
            container.as_str().into(),
            why(route).into(),
        ]);
    }
    table
}

fn route_fields(route: &v1::Route, now: SystemTime) -> Vec<(&'static str, Cell)> {
    vec![
        ("hostname", route.hostname.as_str().into()),
        ("path", route.path.as_str().into()),
        ("service", route.service.as_str().into()),
        ("status", words::route_status(route, now)),
        ("source", words::route_source_word(route.source).into()),
        ("agent", route.agent_id.as_str().into()),
        ("tunnel group", route.tunnel_group.as_str().into()),
        ("zone", route.zone_name.as_str().into()),
        ("tunnel", route.tunnel_id.as_str().into()),
        ("reason", why(route).into()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_route_names_its_group_and_errors_say_why() {
        let route = v1::Route {
            hostname: "app.example.test".into(),
            service: "http://web:80".into(),
            status: v1::RouteStatus::Error as i32,
            source: v1::RouteSource::Manual as i32,
            tunnel_group: "edge".into(),
            last_error: "Cloudflare refused".into(),
            ..Default::default()
        };
        let text = routes_table(&[route], SystemTime::now()).render(false);
        let row = text.lines().nth(1).unwrap();
        assert!(
            row.starts_with(
                "app.example.test  -     http://web:80  error   manual  group:edge  -          Cloudflare refused"
            ),
            "{row}"
        );
    }
}
