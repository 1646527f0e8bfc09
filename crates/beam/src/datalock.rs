//! One `beam server` per SQLite database: an exclusive advisory lock on
//! `<database>.lock`, taken before the store is opened and held until the
//! process exits (the kernel drops it even after `kill -9`). A second server
//! on the same data directory would otherwise mark the first one's live
//! tunnels disconnected and point the saved client config at itself.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it; `holder` is what that process wrote.
    #[error(
        "another beam server ({holder}) is using {db}; stop it, or give this one its own --data-dir"
    )]
    Held {
        /// The database the lock guards.
        db: String,
        /// `pid …, tunnel …` as the holder recorded it.
        holder: String,
    },
    /// The lock file could not be opened or written.
    #[error("cannot lock {path}: {source}")]
    Io {
        /// The lock file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// The held lock; dropping it (or exiting) releases it.
#[derive(Debug)]
pub struct DataLock {
    _file: File,
    path: PathBuf,
}

impl DataLock {
    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Locks the SQLite database at `db` for this process, recording `about`
/// (e.g. `pid 123, tunnel 127.0.0.1:8081`) for whoever tries next.
pub fn lock(db: &Path, about: &str) -> Result<DataLock, LockError> {
    let mut path = db.as_os_str().to_owned();
    path.push(".lock");
    let path = PathBuf::from(path);
    let io = |source| LockError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(LockError::Held {
                db: db.display().to_string(),
                holder: if holder.is_empty() {
                    "still starting".into()
                } else {
                    holder.to_string()
                },
            });
        }
        Err(TryLockError::Error(e)) => return Err(io(e)),
    }
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    file.write_all(about.as_bytes()).map_err(io)?;
    file.flush().map_err(io)?;
    Ok(DataLock { _file: file, path })
}

/// The SQLite file a `sqlite://` URL names, if it is one (not `:memory:`).
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && !path.contains(":memory:")).then(|| PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_database_names_the_first_holder() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("beam.db");
        let first = lock(&db, "pid 1, tunnel 127.0.0.1:8081").unwrap();
        let err = lock(&db, "pid 2, tunnel 127.0.0.1:9081")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("another beam server (pid 1, tunnel 127.0.0.1:8081)"),
            "{err}"
        );
        assert!(err.contains(&db.display().to_string()), "{err}");
        drop(first);
        let again = lock(&db, "pid 3").unwrap();
        assert_eq!(std::fs::read_to_string(again.path()).unwrap(), "pid 3");
    }

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(
            sqlite_file("sqlite:///var/lib/beam/beam.db"),
            Some("/var/lib/beam/beam.db".into())
        );
        assert_eq!(
            sqlite_file("sqlite://data/b.db?mode=rwc"),
            Some("data/b.db".into())
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://h/db"), None);
    }
}
