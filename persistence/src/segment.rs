//! Segment files: creating one durably, and reopening the last one to
//! append.

use crate::error::PersistenceError;
use crate::format::{self, SegmentHeader};
use leadex_engine::journal::Lsn;
use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The segment the writer appends to.
#[derive(Debug)]
pub(crate) struct ActiveSegment {
    pub(crate) file: File,
    pub(crate) path: PathBuf,
    pub(crate) header: SegmentHeader,
    /// Bytes in the file that hold good records (and the header); the
    /// file's write position.
    pub(crate) len_bytes: u64,
}

impl ActiveSegment {
    /// Creates the segment whose first record will have LSN `first_lsn`.
    ///
    /// Written under a temporary name, fsynced, renamed into place, then the
    /// directory is fsynced: a segment with its final name always has a
    /// whole header, and it stays in the directory after a power loss.
    pub(crate) fn create(dir: &Path, first_lsn: Lsn) -> Result<ActiveSegment, PersistenceError> {
        let path = dir.join(format::segment_file_name(first_lsn));
        let temporary = path.with_extension(format::SEGMENT_TEMPORARY_EXTENSION);
        let header = SegmentHeader {
            first_lsn,
            salt: new_salt(first_lsn),
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temporary)
            .map_err(PersistenceError::io("creating segment", &temporary))?;
        file.write_all(&header.encode())
            .map_err(PersistenceError::io("writing the header of", &temporary))?;
        file.sync_all()
            .map_err(PersistenceError::io("syncing the header of", &temporary))?;
        std::fs::rename(&temporary, &path)
            .map_err(PersistenceError::io("renaming into place", &temporary))?;
        sync_dir(dir)?;
        tracing::debug!(path = %path.display(), first_lsn, "created journal segment");
        Ok(ActiveSegment {
            file,
            path,
            header,
            len_bytes: format::SEGMENT_HEADER_BYTES as u64,
        })
    }

    /// Reopens the last segment to append after its last good record (the
    /// replay has already cut anything after it).
    pub(crate) fn reopen(
        path: &Path,
        header: SegmentHeader,
        good_end_bytes: u64,
    ) -> Result<ActiveSegment, PersistenceError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(PersistenceError::io("opening segment for appending", path))?;
        let file_bytes = file
            .metadata()
            .map_err(PersistenceError::io("reading the size of", path))?
            .len();
        assert_eq!(
            file_bytes, good_end_bytes,
            "invariant: replay cut the segment to its last good record"
        );
        file.seek(SeekFrom::Start(good_end_bytes))
            .map_err(PersistenceError::io("seeking to the end of", path))?;
        Ok(ActiveSegment {
            file,
            path: path.to_path_buf(),
            header,
            len_bytes: good_end_bytes,
        })
    }

    /// True when the segment holds records.
    pub(crate) fn has_records(&self) -> bool {
        self.len_bytes > format::SEGMENT_HEADER_BYTES as u64
    }
}

/// Makes a directory's entries (created, renamed, removed files) durable.
/// On Linux that takes an fsync of the directory itself.
#[cfg(unix)]
pub(crate) fn sync_dir(dir: &Path) -> Result<(), PersistenceError> {
    File::open(dir)
        .and_then(|directory| directory.sync_all())
        .map_err(PersistenceError::io("syncing directory", dir))
}

/// Windows has no directory fsync; NTFS journals its metadata itself.
#[cfg(not(unix))]
pub(crate) fn sync_dir(_dir: &Path) -> Result<(), PersistenceError> {
    Ok(())
}

/// A salt no client can predict: std's per-process random hash keys, mixed
/// with the time. Not cryptographic, and need not be (see the crate docs).
fn new_salt(first_lsn: Lsn) -> u32 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    hasher.write_u128(now.as_nanos());
    hasher.write_u64(first_lsn);
    let hash = hasher.finish();
    (hash ^ (hash >> 32)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_segment_has_a_whole_header_and_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let segment = ActiveSegment::create(dir.path(), 17).unwrap();
        assert!(!segment.has_records());
        let bytes = std::fs::read(&segment.path).unwrap();
        assert_eq!(SegmentHeader::decode(&bytes), Ok(segment.header));
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["00000000000000000017.ldxj".to_string()]);
    }

    #[test]
    fn salts_differ_between_segments() {
        let salts: std::collections::HashSet<u32> = (0..64).map(new_salt).collect();
        assert!(salts.len() > 60, "salts repeat: {}", salts.len());
    }
}
