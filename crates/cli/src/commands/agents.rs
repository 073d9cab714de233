//! `dockflare agents`: list (every page, with the master's filters), get, revoke, remove, set-group, set-policy.

use super::{all_pages, Session};
use crate::output::table::{fields, Cell, Table};
use crate::output::words;
use clap::{Args, Subcommand};
use dockflare::v1;
use std::time::SystemTime;

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AgentsArgs {
    #[command(subcommand)]
    command: Option<AgentsCommand>,
    #[command(flatten)]
    list: ListArgs,
}

/// Which agents to list.
#[derive(Args, Debug, Default)]
struct ListArgs {
    /// Only agents of this tunnel group ("" for agents with a tunnel of their own).
    #[arg(long, value_name = "NAME")]
    group: Option<String>,
    /// Only agents with this status.
    #[arg(long, value_enum)]
    status: Option<Status>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Status {
    Online,
    Offline,
    Revoked,
}

impl Status {
    fn proto(self) -> v1::AgentStatus {
        match self {
            Status::Online => v1::AgentStatus::Online,
            Status::Offline => v1::AgentStatus::Offline,
            Status::Revoked => v1::AgentStatus::Revoked,
        }
    }
}

#[derive(Subcommand, Debug)]
enum AgentsCommand {
    /// List agents (the default), every page.
    List(ListArgs),
    /// Show one agent.
    Get { id: String },
    /// Revoke an agent: its calls are refused and its streams end. Enrolling again needs a new join token.
    Revoke { id: String },
    /// Remove an agent: its connector is stopped, its routes removed, its tunnel deleted if unused.
    Remove { id: String },
    /// Move an agent to a tunnel group ("" for a tunnel of its own).
    SetGroup { id: String, group: String },
    /// Replace an agent's hostname policy.
    SetPolicy(PolicyArgs),
}

/// A hostname policy, as `tokens create` and `agents set-policy` take it.
#[derive(Args, Debug, Default)]
pub struct PolicyFlags {
    /// A hostname the agent's labels may route: a name, or `*.suffix` for any name below it
    /// (repeat; none: any hostname of the account's zones).
    #[arg(long = "allow-hostname", value_name = "PATTERN")]
    pub allowed_hostnames: Vec<String>,
    /// Allow wildcard hostnames (`*.example.com`).
    #[arg(long)]
    pub allow_wildcards: bool,
    /// Allow a zone's apex (`example.com` itself).
    #[arg(long)]
    pub allow_apex: bool,
    /// At most this many routes (0: the master's --max-routes-per-agent).
    #[arg(long, default_value_t = 0)]
    pub max_routes: u32,
}

impl PolicyFlags {
    pub fn policy(&self) -> v1::HostnamePolicy {
        v1::HostnamePolicy {
            allowed_hostnames: self.allowed_hostnames.clone(),
            allow_wildcards: self.allow_wildcards,
            allow_apex: self.allow_apex,
            max_routes: self.max_routes,
        }
    }

    /// Whether any flag was given (an unset policy means the master's default).
    pub fn given(&self) -> bool {
        !self.allowed_hostnames.is_empty() || self.allow_wildcards || self.allow_apex || self.max_routes > 0
    }
}

#[derive(Args, Debug)]
struct PolicyArgs {
    id: String,
    #[command(flatten)]
    policy: PolicyFlags,
}

pub async fn run(args: AgentsArgs, session: &Session) -> anyhow::Result<()> {
    let mut client = session.connect().await?;
    let out = session.out;
    match args.command.unwrap_or(AgentsCommand::List(args.list)) {
        AgentsCommand::List(list) => {
            let agents = all_pages(None, |page_token, page_size| {
                let mut client = client.clone();
                let request = v1::ListAgentsRequest {
                    tunnel_group: list.group.clone(),
                    status: list.status.map_or(0, |status| status.proto() as i32),
                    page_size,
                    page_token,
                    ..Default::default()
                };
                async move {
                    let page = session.answer("ListAgents", client.list_agents(request).await)?;
                    Ok((page.agents, page.next_page_token))
                }
            })
            .await?;
            let response = v1::ListAgentsResponse { agents, ..Default::default() };
            if out.is_json() {
                return out.json(&response);
            }
            out.table(&agents_table(&response.agents, SystemTime::now()), "No agents.")
        }
        AgentsCommand::Get { id } => {
            let response =
                session.answer("GetAgent", client.get_agent(v1::GetAgentRequest { id, ..Default::default() }).await)?;
            show_one(session, &response, response.agent.as_ref())
        }
        AgentsCommand::Revoke { id } => {
            let response = session.answer(
                "RevokeAgent",
                client.revoke_agent(v1::RevokeAgentRequest { id, ..Default::default() }).await,
            )?;
            show_one(session, &response, response.agent.as_ref())
        }
        AgentsCommand::Remove { id } => {
            let response = session.answer(
                "RemoveAgent",
                client.remove_agent(v1::RemoveAgentRequest { id, ..Default::default() }).await,
            )?;
            show_one(session, &response, response.agent.as_ref())
        }
        AgentsCommand::SetGroup { id, group } => {
            let request = v1::SetAgentTunnelGroupRequest { id, tunnel_group: group, ..Default::default() };
            let response = session.answer("SetAgentTunnelGroup", client.set_agent_tunnel_group(request).await)?;
            show_one(session, &response, response.agent.as_ref())
        }
        AgentsCommand::SetPolicy(PolicyArgs { id, policy }) => {
            let request = v1::SetAgentPolicyRequest { id, policy: Some(policy.policy()), ..Default::default() };
            let response = session.answer("SetAgentPolicy", client.set_agent_policy(request).await)?;
            show_one(session, &response, response.agent.as_ref())
        }
    }
}

/// One agent: the response as JSON, or its fields.
fn show_one<M: crate::output::json::Proto>(
    session: &Session,
    response: &M,
    agent: Option<&v1::Agent>,
) -> anyhow::Result<()> {
    if session.out.is_json() {
        return session.out.json(response);
    }
    let Some(agent) = agent else { return Ok(()) };
    crate::output::print(&fields(&agent_fields(agent, SystemTime::now()), session.out.colour))
}

pub fn agents_table(agents: &[v1::Agent], now: SystemTime) -> Table {
    let mut table = Table::new(&["id", "name", "status", "connected", "mode", "group", "version", "last seen"]);
    for agent in agents {
        table.row(vec![
            agent.id.as_str().into(),
            agent.display_name.as_str().into(),
            words::agent_status(agent.status),
            if agent.connected { "yes" } else { "no" }.into(),
            words::docker_mode_word(agent.docker_mode).into(),
            agent.tunnel_group.as_str().into(),
            agent.version.as_str().into(),
            words::age_of(agent.last_seen_at.as_ref(), now).into(),
        ]);
    }
    table
}

fn agent_fields(agent: &v1::Agent, now: SystemTime) -> Vec<(&'static str, Cell)> {
    let policy = agent.policy.clone().unwrap_or_default();
    let hostnames =
        if policy.allowed_hostnames.is_empty() { "any".to_string() } else { policy.allowed_hostnames.join(", ") };
    let age = |t: &Option<prost_types::Timestamp>| {
        let when = words::rfc3339(t.as_ref());
        if when.is_empty() {
            when
        } else {
            format!("{when} ({})", words::age_of(t.as_ref(), now))
        }
    };
    vec![
        ("id", agent.id.as_str().into()),
        ("name", agent.display_name.as_str().into()),
        ("status", words::agent_status(agent.status)),
        ("connected", if agent.connected { "yes" } else { "no" }.into()),
        ("hostname", agent.hostname.as_str().into()),
        ("mode", words::docker_mode_word(agent.docker_mode).into()),
        ("node", agent.node_id.as_str().into()),
        ("swarm", agent.swarm_cluster_id.as_str().into()),
        ("tunnel group", agent.tunnel_group.as_str().into()),
        ("version", agent.version.as_str().into()),
        ("enrolled", age(&agent.enrolled_at).into()),
        ("last seen", age(&agent.last_seen_at).into()),
        (
            "certificate",
            format!("{} (until {})", agent.certificate_serial, words::rfc3339(agent.certificate_not_after.as_ref()))
                .into(),
        ),
        (
            "commands",
            format!("{} queued, {} acknowledged", agent.last_command_sequence, agent.last_acked_command_sequence)
                .into(),
        ),
        ("last event", agent.last_event_id.to_string().into()),
        ("may route", hostnames.into()),
        (
            "policy",
            format!(
                "wildcards {}, apex {}, max routes {}",
                if policy.allow_wildcards { "allowed" } else { "refused" },
                if policy.allow_apex { "allowed" } else { "refused" },
                if policy.max_routes == 0 { "default".to_string() } else { policy.max_routes.to_string() }
            )
            .into(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agents_table_says_status_in_words() {
        let agent = v1::Agent {
            id: "a1".into(),
            display_name: "web-host".into(),
            status: v1::AgentStatus::Online as i32,
            connected: true,
            docker_mode: v1::DockerMode::Swarm as i32,
            ..Default::default()
        };
        let text = agents_table(&[agent], SystemTime::now()).render(false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            ["ID", "NAME", "STATUS", "CONNECTED", "MODE", "GROUP", "VERSION", "LAST", "SEEN"]
        );
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            ["a1", "web-host", "online", "yes", "swarm", "-", "-", "-"]
        );
    }
}
