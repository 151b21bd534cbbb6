//! The crate's one error type.

use leadex_engine::JournalError;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Why a journal could not be opened, read or repaired.
///
/// Every variant names the file or directory at fault. Only `Locked` is
/// worth retrying as is (once the other process is gone); `Io` may be
/// transient (disk full, permissions); `Corrupt` needs an operator.
#[derive(Debug, thiserror::Error)]
pub enum PersistenceError {
    /// The options are out of bounds.
    #[error("invalid persistence options: {reason}")]
    InvalidOptions {
        /// Which bound, and the value given.
        reason: String,
    },
    /// Another `FileJournal` (in this or another process) holds the
    /// directory.
    #[error("journal directory {} is locked by another open journal, in this process or another (lock file {})", dir.display(), lock_file.display())]
    Locked {
        /// The journal directory.
        dir: PathBuf,
        /// The lock file; it holds the pid of the last process that locked it.
        lock_file: PathBuf,
    },
    /// A file system call failed.
    #[error("journal I/O failed while {action} {}", path.display())]
    Io {
        /// What the journal was doing, e.g. `"reading segment"`.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Stored data failed a check and is not a torn tail: refusing to start
    /// rather than silently losing records.
    #[error("journal segment {} is corrupt at byte {offset}: {reason}", segment.display())]
    Corrupt {
        /// The segment file.
        segment: PathBuf,
        /// Byte offset in the segment of the bad header or record.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// The writer thread could not be started.
    #[error("cannot start the journal writer thread for {}", dir.display())]
    WriterThread {
        /// The journal directory.
        dir: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A network backend (Kafka, Redis) refused or failed an operation.
    #[error("{backend} failed while {action}: {message}")]
    Backend {
        /// `"kafka"` or `"redis"`.
        backend: &'static str,
        /// What was being done, e.g. `"creating topic leadex.events"`.
        action: String,
        /// The client's error, as text.
        message: String,
    },
    /// A snapshot failed its checks (magic, version, length, checksum,
    /// archive validation).
    #[error("snapshot {location} is unusable: {reason}")]
    SnapshotCorrupt {
        /// Where it was read from.
        location: String,
        /// What was wrong.
        reason: String,
    },
}

impl PersistenceError {
    pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| PersistenceError::Io {
            action,
            path,
            source,
        }
    }
}

/// The error and all its causes on one line, for logs and for
/// [`JournalError::Storage`] messages.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    // Bounded: causes chains are short; stop at 16 in case one is cyclic.
    for _ in 0..16 {
        let Some(cause) = source else { break };
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

impl From<PersistenceError> for JournalError {
    fn from(error: PersistenceError) -> JournalError {
        match error {
            PersistenceError::Corrupt {
                segment,
                offset,
                reason,
            } => JournalError::Corrupt {
                position: format!("{} byte {offset}", segment.display()),
                reason,
            },
            other => JournalError::Storage(error_chain(&other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_messages_keep_the_cause_and_the_path() {
        let error = PersistenceError::Io {
            action: "reading segment",
            path: PathBuf::from("/j/00000000000000000001.ldxj"),
            source: std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied"),
        };
        let JournalError::Storage(message) = JournalError::from(error) else {
            panic!("not storage")
        };
        assert_eq!(
            message,
            "journal I/O failed while reading segment /j/00000000000000000001.ldxj: denied"
        );
    }

    #[test]
    fn corrupt_maps_to_corrupt() {
        let error = PersistenceError::Corrupt {
            segment: PathBuf::from("/j/s.ldxj"),
            offset: 40,
            reason: "bad".into(),
        };
        assert_eq!(
            JournalError::from(error),
            JournalError::Corrupt {
                position: "/j/s.ldxj byte 40".into(),
                reason: "bad".into()
            }
        );
    }
}
