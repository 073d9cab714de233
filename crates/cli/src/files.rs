//! Files the CLI writes — the identity `identities issue` makes, the copies and config `login`
//! keeps: atomically (a temporary file in the same directory, fsynced, renamed over the
//! target), keys with mode 0600, their directories 0700. The same technique as
//! `dockflare_common::secret_file`, which the CLI does not depend on (it knows only the proto
//! crate).

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Mode of private keys and the config file.
pub const PRIVATE: u32 = 0o600;
/// Mode of certificates.
pub const PUBLIC: u32 = 0o644;

/// Writes `contents` to `path` atomically with exactly `mode`.
pub fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let file_name = path.file_name().ok_or_else(|| io::Error::other(format!("{} has no file name", path.display())))?;
    let temp = dir.join(format!(".{}.tmp-{}", file_name.to_string_lossy(), std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&temp)?;
        // open() filters the mode through the umask; set it exactly.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&temp, path)?;
        if let Ok(dir_handle) = fs::File::open(dir) {
            let _ = dir_handle.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Creates `path` (and its parents) if needed, and makes it 0700 (owner only): for directories
/// the CLI owns (its config dir).
pub fn private_dir(path: &Path) -> io::Result<()> {
    fs::create_dir_all(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o700))
}

/// Creates `path` 0700 when it does not exist; an existing directory is the operator's and keeps
/// its mode (what goes into it is 0600 where secret).
pub fn new_private_dir(path: &Path) -> io::Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    private_dir(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_owner_only_and_replaced_atomically() -> io::Result<()> {
        let root = tempfile::tempdir()?;
        let dir = root.path().join("nested").join("config");
        private_dir(&dir)?;
        assert_eq!(fs::metadata(&dir)?.permissions().mode() & 0o777, 0o700);
        let path = dir.join("identity.key");
        write_atomically(&path, b"one", PRIVATE)?;
        write_atomically(&path, b"two", PRIVATE)?;
        assert_eq!(fs::read(&path)?, b"two");
        assert_eq!(fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read_dir(&dir)?.count(), 1, "no temporary file left behind");

        let theirs = root.path().join("theirs");
        fs::create_dir(&theirs)?;
        fs::set_permissions(&theirs, fs::Permissions::from_mode(0o755))?;
        new_private_dir(&theirs)?;
        assert_eq!(fs::metadata(&theirs)?.permissions().mode() & 0o777, 0o755, "an existing directory keeps its mode");
        new_private_dir(&root.path().join("fresh"))?;
        assert_eq!(fs::metadata(root.path().join("fresh"))?.permissions().mode() & 0o777, 0o700);
        Ok(())
    }
}
