//! `dockflare`: the operator's command line for a DockFlare master. It speaks only the
//! AdminService contract (the `dockflare` proto crate) over mutual TLS, and prints tables for
//! people or protobuf JSON for scripts, with exit codes scripts can rely on (`exit.rs`).

// Requests are written `Message { field, ..Default::default() }` even where every field is set
// today: the contract only ever adds fields, and a newer one must not break this client.
#![allow(clippy::needless_update)]

mod args;
mod commands;
mod config;
mod connect;
mod errors;
mod exit;
mod files;
mod output;

use args::{Cli, Command};
use clap::Parser;
use commands::Session;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("dockflare: cannot start: {error}");
            return ExitCode::from(exit::Exit::Failure.code());
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that went away (`dockflare watch | head -1`) is not a failure.
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("dockflare: {error:#}");
            ExitCode::from(exit::exit_of(&error).code())
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Completion { shell } = cli.command {
        return output::print(&String::from_utf8_lossy(&args::completion(shell)));
    }
    let session = Session::new(cli.global.layer(), cli.global.output, cli.global.verbose)?;
    match cli.command {
        Command::Agents(args) => commands::agents::run(args, &session).await,
        Command::Routes(args) => commands::routes::run(args, &session).await,
        Command::Tunnels(args) => commands::tunnels::run(args, &session).await,
        Command::Containers(args) => commands::containers::run(args, &session).await,
        Command::Diagnostics(args) => commands::diagnostics::run(args, &session).await,
        Command::Tokens(args) => commands::tokens::run(args, &session).await,
        Command::Commands(args) => commands::agent_commands::run(args, &session).await,
        Command::Events(args) => commands::events::run(args, &session).await,
        Command::Identities(args) => commands::identities::run(args, &session).await,
        Command::Access(args) => commands::access::run(args, &session).await,
        Command::Reconcile => commands::reconcile::run(&session).await,
        Command::Plan(args) => commands::plan::run(args, &session).await,
        Command::Watch(args) => commands::watch::run(args, &session).await,
        Command::Whoami => commands::whoami::run(&session).await,
        Command::Login => commands::login::run(&session).await,
        Command::Config => commands::context::run(&session),
        Command::Completion { .. } => Ok(()),
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
