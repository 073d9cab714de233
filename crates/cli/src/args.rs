//! The command line: the global flags (where the master is, as whom, the output format), the
//! nouns, and shell completion generated from this same definition.

use crate::commands::{
    access::AccessArgs, agent_commands::CommandsArgs, agents::AgentsArgs, containers::ContainersArgs,
    diagnostics::DiagnosticsArgs, events::EventsArgs, identities::IdentitiesArgs, plan::PlanArgs, routes::RoutesArgs,
    tokens::TokensArgs, tunnels::TunnelsArgs, watch::WatchArgs,
};
use crate::config::Layer;
use crate::output::Format;
use clap::{Args, CommandFactory, Parser, Subcommand};
use std::path::PathBuf;

const ABOUT: &str = "The operator's command line for a DockFlare master (its AdminService, over mutual TLS).";

/// Printed after the options of `dockflare plan --help`.
const PLAN_EXAMPLES: &str = "Examples:\n  \
    dockflare plan                                  # the plan of the state as reported\n  \
    dockflare plan --agent ID --name grafana --label dockflare.enable=true \\\n      \
    --label dockflare.hostname=grafana.example.com --label dockflare.service=http://grafana:3000\n  \
    dockflare plan --agent ID --name grafana --labels-file grafana.labels\n  \
    dockflare plan --agent ID --name grafana --remove   # as if the container stopped";

/// Printed after the command list of `dockflare --help`.
fn after_help() -> String {
    format!(
        "Finding the master and the identity, first match wins:\n  \
         1. flags: --master, --ca-cert, --cert, --key\n  \
         2. environment: DOCKFLARE_MASTER, DOCKFLARE_CA_CERT, DOCKFLARE_CERT, DOCKFLARE_KEY\n  \
         3. the config file `dockflare login` writes: $DOCKFLARE_CONFIG, else $XDG_CONFIG_HOME/dockflare, \
         else ~/.config/dockflare (config.toml)\n  \
         4. the local master's data dir ($DOCKFLARE_DATA_DIR, else ./dockflare-data): pki/ca.crt, \
         pki/admin.crt, pki/admin.key, master https://localhost:8443\n\
         `dockflare config` shows what was found where.\n\n{}",
        crate::exit::help_text()
    )
}

#[derive(Parser, Debug)]
#[command(name = "dockflare", version, about = ABOUT, after_help = after_help(), propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Args, Debug)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// The master: https://HOST[:PORT] (env DOCKFLARE_MASTER).
    #[arg(long, global = true, value_name = "URL")]
    pub master: Option<String>,
    /// The master's CA certificate, PEM (env DOCKFLARE_CA_CERT).
    #[arg(long, global = true, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// The client certificate, PEM (env DOCKFLARE_CERT).
    #[arg(long, global = true, value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// The client certificate's private key, PEM (env DOCKFLARE_KEY). Keys are read from files only.
    #[arg(long, global = true, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Output: a table for people, or JSON (protobuf's JSON mapping) for scripts.
    #[arg(short = 'o', long = "output", global = true, value_enum, default_value = "table")]
    pub output: Format,
    /// Say on stderr which master and identity are used, and where they came from.
    #[arg(short, long, global = true)]
    pub verbose: bool,
}

impl Global {
    /// The flags layer of the context resolution.
    pub fn layer(&self) -> Layer {
        Layer {
            master: self.master.clone(),
            ca_cert: self.ca_cert.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Agents: list (default), get, revoke, remove, set-group, set-policy.
    Agents(AgentsArgs),
    /// Routes: list (default), add a manual route, rm.
    Routes(RoutesArgs),
    /// Tunnels the master manages, with their health.
    Tunnels(TunnelsArgs),
    /// The labelled containers agents report.
    Containers(ContainersArgs),
    /// Label problems in reported containers.
    Diagnostics(DiagnosticsArgs),
    /// Join tokens: list (default), create, revoke.
    Tokens(TokensArgs),
    /// An agent's command log; `commands send AGENT resync` queues one.
    Commands(CommandsArgs),
    /// An agent's stored events.
    Events(EventsArgs),
    /// Admin identities: list (default), issue, revoke.
    Identities(IdentitiesArgs),
    /// Operator-defined Cloudflare Access policies: `access policies`, `access policy get|put|rm`.
    Access(AccessArgs),
    /// Run a full reconcile pass now and print what it changed (exit 1 if it met errors).
    Reconcile,
    /// A dry run: what the next pass would change and how routes end up, nothing written (exit 1 if it met errors).
    #[command(after_help = PLAN_EXAMPLES)]
    Plan(PlanArgs),
    /// Follow changes as they happen: a snapshot, then every change (one line each).
    Watch(WatchArgs),
    /// Who the master says you are.
    Whoami,
    /// Check an identity with the master and keep it in the config dir for later commands.
    Login,
    /// Show which master and identity would be used, and where each came from.
    Config,
    /// Print a shell completion script (e.g. `dockflare completion bash > /etc/bash_completion.d/dockflare`).
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// The completion script for `shell`.
pub fn completion(shell: clap_complete::Shell) -> Vec<u8> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "dockflare", &mut script);
    script
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_documents_exit_codes_and_the_context_order() {
        let help = Cli::command().render_help().to_string();
        assert!(help.contains("Exit codes:"), "{help}");
        assert!(help.contains("  3  the master is unreachable"), "{help}");
        assert!(help.contains("DOCKFLARE_MASTER"), "{help}");
    }

    #[test]
    fn parsing() {
        let cli = Cli::try_parse_from([
            "dockflare",
            "routes",
            "add",
            "a.example.test",
            "--service",
            "http://w:80",
            "--group",
            "edge",
            "-o",
            "json",
        ])
        .unwrap();
        assert!(matches!(cli.command, Command::Routes(_)));
        assert_eq!(cli.global.output, Format::Json);
        let missing_carrier =
            Cli::try_parse_from(["dockflare", "routes", "add", "a.example.test", "--service", "http://w:80"]);
        assert_eq!(missing_carrier.unwrap_err().exit_code(), 2);
        let both =
            Cli::try_parse_from(["dockflare", "routes", "add", "a", "--service", "s", "--agent", "x", "--group", "g"]);
        assert_eq!(both.unwrap_err().exit_code(), 2);
        assert!(Cli::try_parse_from(["dockflare", "commands", "agent-1"]).is_ok());
        assert!(Cli::try_parse_from(["dockflare", "commands", "send", "agent-1", "resync"]).is_ok());
        assert!(Cli::try_parse_from(["dockflare", "commands"]).is_err(), "the agent is required");
        assert!(Cli::try_parse_from(["dockflare", "watch", "--kind", "route,agent", "--resume", "7"]).is_ok());
        assert!(Cli::try_parse_from([
            "dockflare",
            "identities",
            "issue",
            "--name",
            "ci",
            "--role",
            "viewer",
            "--ttl",
            "90d",
            "--out-dir",
            "x"
        ])
        .is_ok());
        assert!(Cli::try_parse_from([
            "dockflare",
            "identities",
            "issue",
            "--name",
            "ci",
            "--role",
            "root",
            "--out-dir",
            "x"
        ])
        .is_err());
        let plan = Cli::try_parse_from([
            "dockflare",
            "plan",
            "--agent",
            "a1",
            "--name",
            "grafana",
            "--label",
            "dockflare.enable=true",
            "--labels-file",
            "g.labels",
        ]);
        assert!(matches!(plan.map(|cli| cli.command), Ok(Command::Plan(_))));
        assert!(Cli::try_parse_from(["dockflare", "plan"]).is_ok(), "the plan of the state as reported");
        assert!(Cli::try_parse_from(["dockflare", "plan", "--agent", "a1", "--name", "g", "--remove"]).is_ok());
        for wrong in [
            &["dockflare", "plan", "--agent", "a1", "--name", "g", "--label", "grafana"][..],
            &["dockflare", "plan", "--name", "g"],
            &["dockflare", "plan", "--label", "a=b"],
            &["dockflare", "plan", "--remove"],
            &["dockflare", "plan", "--labels-file", "f"],
            &["dockflare", "plan", "--agent", "a1"],
            &["dockflare", "plan", "--agent", "a1", "--name", "g", "--remove", "--label", "a=b"],
        ] {
            assert_eq!(Cli::try_parse_from(wrong).unwrap_err().exit_code(), 2, "{wrong:?}");
        }
        let error = Cli::try_parse_from(["dockflare", "plan", "--agent", "a", "--name", "g", "--label", "grafana"]);
        let text = error.unwrap_err().to_string();
        assert!(text.contains("'grafana'") && text.contains("--label"), "{text}");
    }

    #[test]
    fn completion_scripts_are_generated() {
        let script = String::from_utf8(completion(clap_complete::Shell::Bash)).unwrap();
        assert!(script.contains("_dockflare()"), "{script}");
        assert!(script.contains("identities"), "{script}");
        assert!(script.contains("plan") && script.contains("--labels-file"), "{script}");
    }
}
