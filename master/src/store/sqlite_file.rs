//! The SQLite database file's permissions. It holds what the master must keep private (join-token
//! hashes, the fleet's routes; command payloads are sealed besides), so the file is created 0600 before
//! SQLite opens it — SQLite gives its `-wal` and `-shm` files the database file's mode — and an
//! existing file that others may read is tightened to 0600.

use std::fs::{OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The database file a `sqlite:` URL names (`sqlite://PATH?…`, `sqlite:PATH`); `None` for an
/// in-memory database.
pub fn database_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let in_memory = path.is_empty() || path == ":memory:" || query.split('&').any(|pair| pair == "mode=memory");
    (!in_memory).then(|| PathBuf::from(path))
}

/// Creates `path` with mode 0600 when missing; tightens it (and its `-wal`/`-shm` companions) to
/// 0600 when group or others have any access. Returns whether a mode was changed.
pub fn restrict(path: &Path) -> io::Result<bool> {
    match OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => return Ok(false),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(error),
    }
    let mut changed = false;
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        let Ok(metadata) = std::fs::metadata(&file) else { continue };
        if metadata.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(&file, Permissions::from_mode(0o600))?;
            changed = true;
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).map(|m| m.permissions().mode() & 0o777).unwrap_or(0)
    }

    #[test]
    fn paths_come_from_the_url() {
        assert_eq!(database_path("sqlite:///data/dockflare.db?mode=rwc"), Some(PathBuf::from("/data/dockflare.db")));
        assert_eq!(database_path("sqlite:relative.db"), Some(PathBuf::from("relative.db")));
        assert_eq!(database_path("sqlite::memory:"), None);
        assert_eq!(database_path("sqlite://x.db?mode=memory&cache=shared"), None);
    }

    #[test]
    fn a_new_file_is_private_and_an_open_one_is_tightened() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let fresh = dir.path().join("fresh.db");
        assert!(!restrict(&fresh)?);
        assert_eq!(mode(&fresh), 0o600);

        let loose = dir.path().join("loose.db");
        std::fs::write(&loose, b"")?;
        std::fs::set_permissions(&loose, Permissions::from_mode(0o644))?;
        let wal = dir.path().join("loose.db-wal");
        std::fs::write(&wal, b"")?;
        std::fs::set_permissions(&wal, Permissions::from_mode(0o644))?;
        assert!(restrict(&loose)?);
        assert_eq!((mode(&loose), mode(&wal)), (0o600, 0o600));
        assert!(!restrict(&loose)?, "nothing left to change");
        Ok(())
    }
}
