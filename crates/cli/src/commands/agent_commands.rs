//! `dockflare commands AGENT`: an agent's command log; `commands send AGENT resync|stop-tunnel`
//! queues one.

use super::Session;
use crate::output::table::{fields, Table};
use crate::output::words;
use clap::{Args, Subcommand};
use dockflare::v1;
use std::time::SystemTime;

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct CommandsArgs {
    #[command(subcommand)]
    command: Option<CommandsCommand>,
    #[command(flatten)]
    list: ListArgs,
}

#[derive(Subcommand, Debug)]
enum CommandsCommand {
    /// List an agent's command log, oldest first (the default).
    List(ListArgs),
    /// Queue a command for an agent (stored first, delivered now or when it returns).
    Send(SendArgs),
}

#[derive(Args, Debug)]
struct ListArgs {
    /// The agent.
    #[arg(required = true, value_name = "AGENT")]
    agent: Option<String>,
    /// Only commands with a sequence above this.
    #[arg(long, default_value_t = 0, value_name = "SEQUENCE")]
    after: u64,
    /// At most this many (the master's default: 100; at most 1000).
    #[arg(long, default_value_t = 0, hide_default_value = true)]
    limit: u32,
}

#[derive(Args, Debug)]
struct SendArgs {
    /// The agent.
    agent: String,
    #[command(subcommand)]
    kind: SendKind,
}

#[derive(Subcommand, Debug)]
enum SendKind {
    /// Ask for a full status report now.
    Resync {
        /// Why, for the agent's log.
        #[arg(long, default_value = "asked by an operator")]
        reason: String,
    },
    /// Stop and remove the agent's tunnel connector.
    StopTunnel {
        /// Only this tunnel's connector (default: whatever runs).
        #[arg(long, default_value = "", value_name = "ID")]
        tunnel_id: String,
    },
}

pub async fn run(args: CommandsArgs, session: &Session) -> anyhow::Result<()> {
    let mut client = session.connect().await?;
    let out = session.out;
    match args.command.unwrap_or(CommandsCommand::List(args.list)) {
        CommandsCommand::List(list) => {
            // after_sequence and limit: the paging the master answers to now (kept while it does).
            #[allow(deprecated)]
            let request = v1::ListCommandsRequest {
                agent_id: list.agent.unwrap_or_default(),
                after_sequence: list.after,
                limit: list.limit,
                ..Default::default()
            };
            let response = session.answer("ListCommands", client.list_commands(request).await)?;
            if out.is_json() {
                return out.json(&response);
            }
            let now = SystemTime::now();
            let mut table = Table::new(&["seq", "kind", "state", "created", "deliveries", "error"]);
            for command in &response.commands {
                table.row(vec![
                    command.sequence.to_string().into(),
                    command.kind.as_str().into(),
                    words::command_state(command.state),
                    words::age_of(command.created_at.as_ref(), now).into(),
                    command.delivery_count.to_string().into(),
                    command.error.as_str().into(),
                ]);
            }
            out.table(&table, "No commands.")
        }
        CommandsCommand::Send(send) => {
            use v1::send_command_request::Kind;
            let kind = match send.kind {
                SendKind::Resync { reason } => Kind::Resync(v1::Resync { reason }),
                SendKind::StopTunnel { tunnel_id } => Kind::StopTunnel(v1::StopTunnel { tunnel_id }),
            };
            let request =
                v1::SendCommandRequest { agent_id: send.agent.clone(), kind: Some(kind), ..Default::default() };
            let response = session.answer("SendCommand", client.send_command(request).await)?;
            if out.is_json() {
                return out.json(&response);
            }
            let text = fields(
                &[
                    ("agent", send.agent.as_str().into()),
                    ("command", response.command_id.as_str().into()),
                    ("sequence", response.sequence.to_string().into()),
                ],
                out.colour,
            );
            crate::output::print(&text)
        }
    }
}
