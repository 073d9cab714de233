//! The `--access-policies` file (TOML, `[[policy]]` tables): read at start and again on SIGHUP;
//! its policies become the store's file-sourced set ([`crate::store::Store::replace_file_policies`]).
//! A file is taken or refused as a whole: at start a refused file stops the master (the error
//! names the file, the policy and the field); on reload it is logged and the previous set stays.
//! A reload that changed something asks for a reconcile pass.

use crate::access_policies::{self, FileError};
use crate::clock::now_millis;
use crate::fanout::Fanout;
use crate::store::{FileReplace, Store, StoreError};
use std::path::{Path, PathBuf};

/// Why the file's policies were not taken.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error(
        "access policy file {file}: {} defined through the admin API already (names have one owner: \
         delete them there — dockflare access policy rm NAME — or rename them in the file)",
        names.join(", ")
    )]
    HeldByApi { file: String, names: Vec<String> },
    #[error("access policy file {file}: storing its policies: {source}")]
    Store { file: String, source: StoreError },
}

/// Reads `path` and makes its policies the file-sourced set.
pub async fn load(store: &Store, path: &Path) -> Result<FileReplace, LoadError> {
    let file = path.display().to_string();
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| FileError::Read { file: file.clone(), reason: e.to_string() })?;
    let policies = access_policies::parse_file(&file, &text, now_millis())?;
    let outcome = store
        .replace_file_policies(&policies, &file)
        .await
        .map_err(|source| LoadError::Store { file: file.clone(), source })?;
    if !outcome.conflicts.is_empty() {
        return Err(LoadError::HeldByApi { file, names: outcome.conflicts });
    }
    tracing::info!(
        message = "Access policy file loaded.",
        %file,
        policies = policies.len(),
        created = ?outcome.created,
        changed = ?outcome.changed,
        removed = ?outcome.removed,
    );
    Ok(outcome)
}

/// Whether a load changed the stored set.
pub fn changed(outcome: &FileReplace) -> bool {
    !(outcome.created.is_empty() && outcome.changed.is_empty() && outcome.removed.is_empty())
}

/// The file, reloaded on every SIGHUP. The master registers for SIGHUP ([`reloads`]) before it
/// listens, with or without a file, so that a SIGHUP (`systemctl reload`) never ends the process.
pub struct Reloads {
    path: Option<PathBuf>,
    hangups: tokio::signal::unix::Signal,
}

/// Registers for SIGHUP: the returned [`Reloads`] runs the reloads of `path` (`None`: there is
/// nothing to reload, and a SIGHUP is only logged).
pub fn reloads(path: Option<PathBuf>) -> std::io::Result<Reloads> {
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    Ok(Reloads { path, hangups })
}

impl Reloads {
    /// Reloads the file on every SIGHUP, for as long as signals come.
    pub async fn run(mut self, store: Store, fanout: Fanout) {
        while self.hangups.recv().await.is_some() {
            let Some(path) = &self.path else {
                tracing::info!(message = "SIGHUP: nothing to reload (no --access-policies file).");
                continue;
            };
            tracing::info!(message = "SIGHUP: reloading the access policy file.", file = %path.display());
            match load(&store, path).await {
                Ok(outcome) if changed(&outcome) => fanout.reconcile().await,
                Ok(_) => {}
                Err(error) => tracing::error!(
                    message = "Access policy file refused; the previous policies stay.",
                    file = %path.display(),
                    %error
                ),
            }
        }
    }
}
