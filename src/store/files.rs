//! The SQLite database's files hold password hashes: only the server's account may read them.

use std::fs::{OpenOptions, Permissions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Creates the database file with mode 0600 when it does not exist (SQLite gives its `-wal`
/// and `-shm` files the mode of the database file), and takes group and other access away
/// from an existing one and its `-wal`/`-shm`, saying so in the log. Blocking: call it off
/// the async workers.
pub(super) fn secure_sqlite_files(db: &Path) -> std::io::Result<()> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(db)?;
    for file in [
        db.to_owned(),
        with_suffix(db, "-wal"),
        with_suffix(db, "-shm"),
    ] {
        let mode = match std::fs::metadata(&file) {
            Ok(meta) => meta.permissions().mode() & 0o777,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if mode & 0o077 != 0 {
            std::fs::set_permissions(&file, Permissions::from_mode(mode & 0o700))?;
            tracing::warn!(
                file = %file.display(),
                "the database file had mode {mode:o}, readable by other accounts (it holds \
                 password hashes); its mode is now {:o}",
                mode & 0o700
            );
        }
    }
    Ok(())
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_database_file_is_private_and_an_open_one_is_closed() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("new.db");
        secure_sqlite_files(&db).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&db), 0o600);

        let old = dir.path().join("old.db");
        for f in [&old, &with_suffix(&old, "-wal"), &with_suffix(&old, "-shm")] {
            std::fs::write(f, b"").unwrap();
            std::fs::set_permissions(f, Permissions::from_mode(0o644)).unwrap();
        }
        secure_sqlite_files(&old).unwrap();
        for f in [&old, &with_suffix(&old, "-wal"), &with_suffix(&old, "-shm")] {
            assert_eq!(mode(f), 0o600, "{}", f.display());
        }
    }
}
