//! `tunnel_state.json`: the tunnel connector the agent should run, as the
//! master last commanded. Written atomically with mode 0600 (it holds the
//! tunnel token), so that a restarted agent can bring its connector back
//! even while the master is unreachable. Same fields as DockFlare's Python
//! agent: `token`, `id`, `name`, `desired_state`.

use dockflare_common::secret_file::write_secret_file;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

pub const FILE_NAME: &str = "tunnel_state.json";

/// Whether the connector should run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DesiredState {
    Running,
    Stopped,
}

/// The desired tunnel connector.
#[derive(Clone, Serialize, Deserialize)]
pub struct TunnelState {
    /// Tunnel token (secret).
    #[serde(serialize_with = "expose", deserialize_with = "secret")]
    pub token: SecretString,
    /// Cloudflare tunnel id.
    pub id: String,
    /// Cloudflare tunnel name.
    pub name: String,
    pub desired_state: DesiredState,
}

impl PartialEq for TunnelState {
    fn eq(&self, other: &Self) -> bool {
        self.token.expose_secret() == other.token.expose_secret()
            && self.id == other.id
            && self.name == other.name
            && self.desired_state == other.desired_state
    }
}

impl fmt::Debug for TunnelState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TunnelState")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("desired_state", &self.desired_state)
            .field("token", &"[redacted]")
            .finish()
    }
}

fn expose<S: serde::Serializer>(token: &SecretString, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(token.expose_secret())
}

fn secret<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<SecretString, D::Error> {
    String::deserialize(deserializer).map(SecretString::from)
}

/// Why the state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TunnelStateError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not valid tunnel state: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// Reads the desired state; `None` when the file does not exist.
pub fn load(dir: &Path) -> Result<Option<TunnelState>, TunnelStateError> {
    let path = dir.join(FILE_NAME);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| TunnelStateError::Invalid { path, reason: e.to_string() }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(TunnelStateError::Io { path, source }),
    }
}

/// Writes the desired state atomically (0600).
pub fn save(dir: &Path, state: &TunnelState) -> Result<(), TunnelStateError> {
    let path = dir.join(FILE_NAME);
    let json = serde_json::to_vec_pretty(state)
        .map_err(|e| TunnelStateError::Invalid { path: path.clone(), reason: e.to_string() })?;
    write_secret_file(&path, &json).map_err(|source| TunnelStateError::Io { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn state_round_trips_with_the_python_agents_field_names() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        assert!(load(dir.path())?.is_none());
        let state = TunnelState {
            token: SecretString::from("eyJ0b2tlbiI6MX0"),
            id: "6ff42ae2-765d-4adf-8112-31c55c1551ef".into(),
            name: "dockflare-agent-a".into(),
            desired_state: DesiredState::Running,
        };
        save(dir.path(), &state)?;
        let path = dir.path().join(FILE_NAME);
        assert_eq!(std::fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
        let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
        assert_eq!(json["desired_state"], "running");
        assert_eq!(json["token"], "eyJ0b2tlbiI6MX0");
        assert_eq!(load(dir.path())?, Some(state.clone()));
        assert!(!format!("{state:?}").contains("eyJ0b2tlbiI6MX0"));
        Ok(())
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_the_file() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join(FILE_NAME), b"{not json")?;
        let error = load(dir.path()).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains(FILE_NAME) && error.contains("not valid tunnel state"), "{error}");
        Ok(())
    }
}
