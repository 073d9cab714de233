//! Applies commands from the master, in order, at most once each: the
//! ledger says what was applied; a command seen again is only acknowledged
//! again. Every command is acknowledged with its real outcome through a
//! command_result event in the outbox.

use crate::ledger::{Ledger, Outcome};
use crate::outbox::Outbox;
use crate::tunnel_state::{self, DesiredState, TunnelState};
use dockflare::v1::agent_event::Event;
use dockflare::v1::{command::Kind, Command, CommandResult};
use secrecy::SecretString;
use std::path::PathBuf;
use tokio::sync::{mpsc, watch};

/// Commands waiting to be applied.
pub const QUEUE: usize = 64;

/// What the applier needs.
pub struct Applier {
    pub data_dir: PathBuf,
    pub ledger: Ledger,
    pub outbox: Outbox,
    /// The desired connector, for the connector manager.
    pub tunnel: watch::Sender<Option<TunnelState>>,
}

impl Applier {
    /// Applies commands until the channel closes.
    pub async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        while let Some(command) = commands.recv().await {
            self.handle(command);
        }
    }

    fn handle(&mut self, command: Command) {
        let kind = command.kind.as_ref().map(kind_name).unwrap_or("unknown");
        if self.ledger.already_applied(command.sequence) {
            let outcome = self.ledger.outcome(command.sequence, &command.id).cloned().unwrap_or(Outcome {
                sequence: command.sequence,
                command_id: command.id.clone(),
                success: true,
                error: String::new(),
            });
            tracing::info!(message = "Command already applied; acknowledging again.", command = %command.id, sequence = command.sequence, kind);
            self.acknowledge(&outcome);
            return;
        }
        tracing::info!(message = "Applying command.", command = %command.id, sequence = command.sequence, kind);
        let result = match command.kind {
            None => Err("command has no kind (unknown to this agent version?)".to_string()),
            Some(kind) => self.apply(kind),
        };
        let outcome = Outcome {
            sequence: command.sequence,
            command_id: command.id.clone(),
            success: result.is_ok(),
            error: result.err().unwrap_or_default(),
        };
        self.ledger.record(outcome.clone());
        if let Err(error) = self.ledger.save(&self.data_dir) {
            // Without the ledger on disk the command could be applied twice
            // after a crash; not acknowledging makes the master resend it,
            // and applying is idempotent.
            tracing::error!(message = "Cannot record the applied command; it will be redelivered.", %error);
            return;
        }
        if outcome.success {
            tracing::info!(message = "Applied command.", command = %command.id, sequence = command.sequence, kind);
        } else {
            tracing::warn!(message = "Command failed.", command = %command.id, sequence = command.sequence, kind, error = %outcome.error);
        }
        let result = if outcome.success { "success" } else { "failure" };
        metrics::counter!("dockflare_agent_commands_applied_total", "kind" => kind, "outcome" => result).increment(1);
        self.acknowledge(&outcome);
    }

    fn acknowledge(&self, outcome: &Outcome) {
        self.outbox.push(Event::CommandResult(CommandResult {
            command_id: outcome.command_id.clone(),
            sequence: outcome.sequence,
            success: outcome.success,
            error: outcome.error.clone(),
        }));
    }

    fn apply(&mut self, kind: Kind) -> Result<(), String> {
        match kind {
            Kind::StartTunnel(start) => {
                if start.token.is_empty() || start.tunnel_id.is_empty() {
                    return Err("start_tunnel needs tunnel_id and token".into());
                }
                self.set_tunnel(TunnelState {
                    token: SecretString::from(start.token),
                    id: start.tunnel_id,
                    name: start.tunnel_name,
                    desired_state: DesiredState::Running,
                })
            }
            Kind::StopTunnel(stop) => {
                let current = self.tunnel.borrow().clone();
                match current {
                    Some(mut state) if stop.tunnel_id.is_empty() || stop.tunnel_id == state.id => {
                        state.desired_state = DesiredState::Stopped;
                        self.set_tunnel(state)
                    }
                    Some(state) => {
                        Err(format!("stop_tunnel for {} but this agent runs tunnel {}", stop.tunnel_id, state.id))
                    }
                    None => Ok(()),
                }
            }
            Kind::UpdateTunnelConfig(update) => {
                tracing::info!(message = "Tunnel ingress changed at the master.", tunnel = %update.tunnel_id, rules = update.rules.len());
                Ok(())
            }
            Kind::Resync(resync) => {
                tracing::info!(message = "Master asked for a resync.", reason = %resync.reason);
                self.outbox.push_status_report();
                Ok(())
            }
        }
    }

    fn set_tunnel(&mut self, state: TunnelState) -> Result<(), String> {
        tunnel_state::save(&self.data_dir, &state).map_err(|e| e.to_string())?;
        self.tunnel.send_replace(Some(state));
        Ok(())
    }
}

fn kind_name(kind: &Kind) -> &'static str {
    match kind {
        Kind::StartTunnel(_) => "start_tunnel",
        Kind::StopTunnel(_) => "stop_tunnel",
        Kind::UpdateTunnelConfig(_) => "update_tunnel_config",
        Kind::Resync(_) => "resync",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dockflare::v1::{StartTunnel, StopTunnel};

    fn applier(dir: &std::path::Path) -> Applier {
        Applier {
            data_dir: dir.to_path_buf(),
            ledger: Ledger::default(),
            outbox: Outbox::new(100, crate::inventory::Inventory::default()),
            tunnel: watch::Sender::new(None),
        }
    }

    fn start(sequence: u64) -> Command {
        Command {
            id: format!("c{sequence}"),
            sequence,
            created_at: None,
            kind: Some(Kind::StartTunnel(StartTunnel {
                tunnel_id: "t1".into(),
                tunnel_name: "n".into(),
                token: "tok".into(),
                rules: vec![],
            })),
        }
    }

    fn results(outbox: &Outbox) -> Vec<(u64, bool, String)> {
        outbox
            .pending_after(0, 100)
            .into_iter()
            .filter_map(|e| match e.event {
                Some(Event::CommandResult(r)) => Some((r.sequence, r.success, r.error)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_redelivered_command_is_acknowledged_again_but_not_reapplied() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let mut applier = applier(dir.path());
        applier.handle(start(1));
        std::fs::remove_file(dir.path().join(tunnel_state::FILE_NAME))?;
        applier.handle(start(1));
        assert!(!dir.path().join(tunnel_state::FILE_NAME).exists(), "applied twice");
        assert_eq!(results(&applier.outbox), vec![(1, true, String::new()), (1, true, String::new())]);
        assert_eq!(Ledger::load(dir.path())?.last_applied_sequence, 1);
        Ok(())
    }

    #[test]
    fn failures_are_acknowledged_with_their_reason() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let mut applier = applier(dir.path());
        applier.handle(start(1));
        applier.handle(Command {
            id: "c2".into(),
            sequence: 2,
            created_at: None,
            kind: Some(Kind::StopTunnel(StopTunnel { tunnel_id: "other".into() })),
        });
        let acks = results(&applier.outbox);
        assert_eq!(acks.len(), 2);
        assert!(!acks[1].1 && acks[1].2.contains("runs tunnel t1"), "{acks:?}");
        Ok(())
    }
}
