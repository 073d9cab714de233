//! Atomic, owner-only file writes for secrets (keys, certificates, tunnel
//! state). The one piece of I/O in this crate, shared by both binaries so
//! that every secret file is written the same way: a temporary file created
//! with mode 0600 in the same directory, fsynced, then renamed over the target.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Writes `contents` to `path` atomically with mode 0600.
pub fn write_secret_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    write_atomically(path, contents, 0o600)
}

/// Writes `contents` to `path` atomically with mode `mode`.
pub fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let file_name = path.file_name().ok_or_else(|| io::Error::other(format!("{} has no file name", path.display())))?;
    let temp = dir.join(format!(".{}.tmp-{}", file_name.to_string_lossy(), std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&temp)?;
        // The mode given to open() is filtered by the umask; set it exactly.
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

/// Creates a directory (and parents) with mode 0700 if it does not exist.
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    if !path.exists() {
        fs::create_dir_all(path)?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_files_are_owner_only_and_replaced_atomically() -> io::Result<()> {
        let dir = std::env::temp_dir().join(format!("dockflare-secret-file-{}", std::process::id()));
        create_private_dir(&dir)?;
        let path = dir.join("key.pem");
        write_secret_file(&path, b"one")?;
        write_secret_file(&path, b"two")?;
        assert_eq!(fs::read(&path)?, b"two");
        assert_eq!(fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read_dir(&dir)?.count(), 1, "no temporary file left behind");
        fs::remove_dir_all(&dir)
    }
}
