//! `dockflare commands AGENT`: an agent's command log; `commands send AGENT resync|stop-tunnel`
//! queues one.

use super::{all_pages, Session};
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
    /// At most this many, oldest first (default: the whole log, page after page).
    #[arg(long)]
    limit: Option<usize>,
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
            let agent_id = list.agent.unwrap_or_default();
            let commands = all_pages(list.limit, |page_token, page_size| {
                let mut client = client.clone();
                let request =
                    v1::ListCommandsRequest { agent_id: agent_id.clone(), page_size, page_token, ..Default::default() };
                async move {
                    let page = session.answer("ListCommands", client.list_commands(request).await)?;
                    Ok((page.commands, page.next_page_token))
                }
            })
            .await?;
            if out.is_json() {
                return out.json(&v1::ListCommandsResponse { commands, ..Default::default() });
            }
            let now = SystemTime::now();
            let mut table = Table::new(&["seq", "kind", "state", "created", "deliveries", "error"]);
            for command in &commands {
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
