//! `command_state.json`: which commands this agent applied, so that a
//! command delivered again (after a reconnect, or a crash before its
//! acknowledgement reached the master) is acknowledged again with its
//! original outcome instead of being applied twice.

use dockflare_common::secret_file::write_atomically;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};

pub const FILE_NAME: &str = "command_state.json";
/// Outcomes remembered for re-acknowledgement.
const REMEMBERED: usize = 256;

/// The outcome of one applied command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub sequence: u64,
    pub command_id: String,
    pub success: bool,
    pub error: String,
}

/// The ledger of applied commands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    /// Commands up to this sequence were applied (commands arrive in order).
    pub last_applied_sequence: u64,
    /// The most recent outcomes, oldest first.
    pub recent: VecDeque<Outcome>,
}

/// Why the ledger could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a valid command ledger: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

impl Ledger {
    pub fn load(dir: &Path) -> Result<Ledger, LedgerError> {
        let path = dir.join(FILE_NAME);
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| LedgerError::Invalid { path, reason: e.to_string() })
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Ledger::default()),
            Err(source) => Err(LedgerError::Io { path, source }),
        }
    }

    pub fn save(&self, dir: &Path) -> Result<(), LedgerError> {
        let path = dir.join(FILE_NAME);
        let json =
            serde_json::to_vec(self).map_err(|e| LedgerError::Invalid { path: path.clone(), reason: e.to_string() })?;
        write_atomically(&path, &json, 0o600).map_err(|source| LedgerError::Io { path, source })
    }

    /// Whether the command with this sequence was applied before.
    pub fn already_applied(&self, sequence: u64) -> bool {
        sequence <= self.last_applied_sequence
    }

    /// The remembered outcome of an applied command.
    pub fn outcome(&self, sequence: u64, command_id: &str) -> Option<&Outcome> {
        self.recent.iter().find(|o| o.sequence == sequence && o.command_id == command_id)
    }

    pub fn record(&mut self, outcome: Outcome) {
        self.last_applied_sequence = self.last_applied_sequence.max(outcome.sequence);
        self.recent.push_back(outcome);
        while self.recent.len() > REMEMBERED {
            self.recent.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ledger_remembers_outcomes_across_restarts() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let mut ledger = Ledger::load(dir.path())?;
        assert!(!ledger.already_applied(1));
        for sequence in 1..=300 {
            ledger.record(Outcome {
                sequence,
                command_id: format!("c{sequence}"),
                success: sequence % 2 == 0,
                error: String::new(),
            });
        }
        ledger.save(dir.path())?;
        let reloaded = Ledger::load(dir.path())?;
        assert!(reloaded.already_applied(300) && !reloaded.already_applied(301));
        assert_eq!(reloaded.outcome(300, "c300").map(|o| o.success), Some(true));
        assert_eq!(reloaded.recent.len(), REMEMBERED);
        assert!(reloaded.outcome(1, "c1").is_none());
        Ok(())
    }
}
