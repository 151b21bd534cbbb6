//! The directory lock: one writer per journal, across processes.
//!
//! An advisory exclusive lock (`flock` on Unix, `LockFileEx` on Windows,
//! through `fs4`) on `<dir>/LOCK`. The operating system releases it when the
//! process dies, however it dies, so a crash never leaves a stale lock (a
//! pid file created with `create_new` would). Locks belong to open file
//! descriptions, so a second `FileJournal` on the same directory in the
//! same process is refused too.

use crate::error::PersistenceError;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Name of the lock file inside the journal directory.
pub(crate) const LOCK_FILE_NAME: &str = "LOCK";

/// Holds the lock until dropped.
#[derive(Debug)]
pub(crate) struct DirectoryLock {
    // Kept open: closing the descriptor releases the lock.
    _file: File,
}

impl DirectoryLock {
    /// Takes the lock on `dir` without waiting.
    pub(crate) fn acquire(dir: &Path) -> Result<DirectoryLock, PersistenceError> {
        let path = lock_file_path(dir);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(PersistenceError::io("opening lock file", &path))?;
        // Called through the trait: std's inherent `File::try_lock` (Rust
        // 1.89) would shadow it, and the workspace supports older compilers.
        match fs4::FileExt::try_lock(&file) {
            Ok(()) => {}
            Err(fs4::TryLockError::WouldBlock) => {
                return Err(PersistenceError::Locked {
                    dir: dir.to_path_buf(),
                    lock_file: path,
                })
            }
            Err(fs4::TryLockError::Error(source)) => {
                return Err(PersistenceError::Io {
                    action: "locking",
                    path,
                    source,
                })
            }
        }
        // For operators only: who holds it. The lock, not the content, is
        // what excludes; a failure to write the pid is not fatal.
        let pid = std::process::id();
        if let Err(error) = file.set_len(0).and_then(|()| writeln!(file, "{pid}")) {
            tracing::debug!(path = %path.display(), %error, "could not write the pid into the lock file");
        }
        Ok(DirectoryLock { _file: file })
    }
}

/// The path of the lock file of `dir`.
pub(crate) fn lock_file_path(dir: &Path) -> PathBuf {
    dir.join(LOCK_FILE_NAME)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirectoryLock::acquire(dir.path()).unwrap();
        let error = DirectoryLock::acquire(dir.path()).unwrap_err();
        assert!(matches!(error, PersistenceError::Locked { .. }), "{error}");
        assert!(
            error.to_string().contains("locked by another open journal"),
            "{error}"
        );
        drop(first);
        let _again = DirectoryLock::acquire(dir.path()).unwrap();
        let pid = std::fs::read_to_string(lock_file_path(dir.path())).unwrap();
        assert_eq!(pid.trim(), std::process::id().to_string());
    }
}
