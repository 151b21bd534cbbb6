//! [`FileJournalReader`]: read-only replay, for tools and tests.

use crate::error::PersistenceError;
use crate::scan::{self, LsnRange, ScanMode};
use leadex_engine::journal::{Lsn, ReplayStats};
use leadex_engine::{Event, JournalError, JournalReader};
use std::path::{Path, PathBuf};

/// Reads a journal directory without changing it and without taking its
/// lock, so it works beside a running writer. It checks everything
/// [`FileJournal::open`](crate::FileJournal::open) checks; a torn tail is
/// where the journal ends, and is left in place (`torn_bytes_cut` counts
/// the bytes that the next `FileJournal::open` will cut). A writer may be
/// in the middle of a write, so a reader beside it can see a torn tail.
#[derive(Debug, Clone)]
pub struct FileJournalReader {
    dir: PathBuf,
}

impl FileJournalReader {
    /// A reader of the journal in `dir`, which must exist.
    pub fn open(dir: impl AsRef<Path>) -> Result<FileJournalReader, PersistenceError> {
        let dir = dir.as_ref().to_path_buf();
        let metadata = std::fs::metadata(&dir)
            .map_err(PersistenceError::io("opening journal directory", &dir))?;
        if !metadata.is_dir() {
            return Err(PersistenceError::Io {
                action: "opening journal directory",
                path: dir,
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a directory"),
            });
        }
        Ok(FileJournalReader { dir })
    }

    /// Like [`JournalReader::replay`], with the crate's richer error.
    pub fn replay_checked(
        &mut self,
        visit: &mut dyn FnMut(Lsn, Event),
    ) -> Result<ReplayStats, PersistenceError> {
        self.replay_range(0, None, visit)
    }

    /// Replays the records with LSNs in `after + 1 ..= upto` (`None`: to
    /// the end). Segments wholly at or before `after` are not read. A
    /// snapshotter reading beside the writer passes the LSN it knows is
    /// durable as `upto`, so it never looks at bytes being written.
    pub fn replay_range(
        &mut self,
        after: Lsn,
        upto: Option<Lsn>,
        visit: &mut dyn FnMut(Lsn, Event),
    ) -> Result<ReplayStats, PersistenceError> {
        let range = LsnRange { after, upto };
        Ok(scan::scan_directory(&self.dir, ScanMode::ReadOnly, range, visit)?.stats)
    }

    /// The journal directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl JournalReader for FileJournalReader {
    fn replay(&mut self, visit: &mut dyn FnMut(Lsn, Event)) -> Result<ReplayStats, JournalError> {
        self.replay_checked(visit).map_err(JournalError::from)
    }
}
