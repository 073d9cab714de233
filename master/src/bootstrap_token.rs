//! A join token written to a file at start (`--bootstrap-join-token-file`), for installs where
//! agents start beside the master and read it from a shared volume or a secret (compose, a
//! Swarm stack): no token is copied by hand, none appears in a compose file, a command line or
//! `docker inspect`. On every start the file is kept valid: a token it holds that still has
//! uses and time left stays; otherwise a new one replaces it (the file is 0600).

use crate::admin_service::new_join_token;
use crate::clock::now_millis;
use crate::store::{JoinTokenRow, Store, StoreError};
use dockflare_common::join_token::JoinToken;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why the bootstrap token could not be written.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("--bootstrap-join-token-file {path}: {error}")]
    File { path: PathBuf, error: std::io::Error },
    #[error("bootstrap join token: {0}")]
    Token(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How the bootstrap token is made.
#[derive(Debug, Clone)]
pub struct BootstrapToken {
    pub path: PathBuf,
    pub uses: u32,
    pub ttl: Duration,
}

/// Whether `row` can still enroll an agent at `now`.
fn usable(row: &JoinTokenRow, now: i64) -> bool {
    !row.revoked && row.expires_at > now && row.uses < row.max_uses
}

/// The token the file holds, if it parses.
fn read_token(path: &Path) -> Option<JoinToken> {
    let text = std::fs::read_to_string(path).ok()?;
    JoinToken::parse(text.trim()).ok()
}

/// Keeps `settings.path` holding a usable join token for `ca_der`'s CA.
pub async fn ensure(store: &Store, ca_der: &[u8], settings: &BootstrapToken) -> Result<(), BootstrapError> {
    let now = now_millis();
    if let Some(token) = read_token(&settings.path) {
        let tokens = store.list_join_tokens().await?;
        if tokens.iter().any(|row| row.id == token.id && usable(row, now)) {
            tracing::info!(message = "Bootstrap join token still valid.", path = %settings.path.display(), token_id = %token.id);
            return Ok(());
        }
    }
    let request = dockflare::v1::CreateJoinTokenRequest {
        ttl_seconds: settings.ttl.as_secs(),
        max_uses: settings.uses,
        description: "bootstrap (--bootstrap-join-token-file)".into(),
        tunnel_group: String::new(),
        policy: None,
    };
    let (token, row) =
        new_join_token(ca_der, &request, now).map_err(|status| BootstrapError::Token(status.message().to_string()))?;
    store.insert_join_token(&row, &token.secret_hash()).await?;
    if let Some(parent) = settings.path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|error| BootstrapError::File { path: settings.path.clone(), error })?;
    }
    dockflare_common::secret_file::write_secret_file(&settings.path, format!("{}\n", token.expose()).as_bytes())
        .map_err(|error| BootstrapError::File { path: settings.path.clone(), error })?;
    tracing::info!(
        message = "Bootstrap join token written.",
        path = %settings.path.display(),
        token_id = %row.id,
        max_uses = row.max_uses,
        expires_in = %humantime::format_duration(settings.ttl),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_used_up_expired_or_revoked_token_is_replaced() {
        let row = JoinTokenRow {
            id: "t".into(),
            description: String::new(),
            created_at: 0,
            expires_at: 1_000,
            max_uses: 2,
            uses: 1,
            revoked: false,
            tunnel_group: String::new(),
            policy: Default::default(),
        };
        assert!(usable(&row, 999));
        assert!(!usable(&row, 1_000), "expired");
        assert!(!usable(&JoinTokenRow { uses: 2, ..row.clone() }, 0), "used up");
        assert!(!usable(&JoinTokenRow { revoked: true, ..row }, 0), "revoked");
    }
}
