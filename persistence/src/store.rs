//! Where encoded state snapshots are kept: [`SnapshotStore`], with a file
//! store for the embedded backend ([`FileSnapshotStore`]) and a Redis store
//! for the Kafka backend ([`crate::RedisSnapshotStore`]).
//!
//! A store keeps the two newest snapshots: if the newest turns out to be
//! corrupt, restore falls back to the one before (and the file journal is
//! only ever compacted behind the *older* of the two).

use crate::error::PersistenceError;

/// One stored snapshot, as raw bytes (decoding and checking the checksum is
/// the caller's job, see [`crate::snapshot`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSnapshot {
    /// Where it was found, for logs (a file path, a Redis key).
    pub location: String,
    /// The encoded snapshot.
    pub bytes: Vec<u8>,
}

/// Keeps encoded snapshots. Methods block; call them from a blocking
/// thread (a store may drive async I/O inside), never from an async task.
pub trait SnapshotStore: Send + Sync + 'static {
    /// Stores `bytes` as the newest snapshot, atomically (a reader sees the
    /// old newest or the new one, never a mix); the previous newest becomes
    /// the fallback and any older one is dropped. Putting bytes equal to the
    /// newest may change nothing (a retried put must not push the fallback
    /// out with a second copy).
    fn put(&self, bytes: &[u8]) -> Result<(), PersistenceError>;

    /// The stored snapshots, newest first (at most two). A snapshot that
    /// cannot be read is left out with a warning; an unreachable store is
    /// an error.
    fn list(&self) -> Result<Vec<StoredSnapshot>, PersistenceError>;

    /// Human-readable location for logs, e.g. `redis://…/leadex:snapshot`.
    fn describe(&self) -> String;
}

/// Snapshots as files in one directory (the embedded backend's store):
/// `snapshot-<sequence>.ldxs`, written under a temporary name, fsynced,
/// renamed into place and the directory fsynced, so a snapshot with its
/// final name is always complete. Keeps the two newest.
#[derive(Debug, Clone)]
pub struct FileSnapshotStore {
    dir: std::path::PathBuf,
}

const SNAPSHOT_FILE_PREFIX: &str = "snapshot-";
const SNAPSHOT_FILE_EXTENSION: &str = ".ldxs";
/// Snapshots a store keeps: the newest, and one to fall back to.
pub const SNAPSHOTS_KEPT: usize = 2;

impl FileSnapshotStore {
    /// A store in `dir`, created if missing.
    pub fn open(dir: impl AsRef<std::path::Path>) -> Result<FileSnapshotStore, PersistenceError> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir)
            .map_err(PersistenceError::io("creating snapshot directory", &dir))?;
        Ok(FileSnapshotStore { dir })
    }

    /// Snapshot files by sequence, newest first.
    fn files(&self) -> Result<Vec<(u64, std::path::PathBuf)>, PersistenceError> {
        let entries = std::fs::read_dir(&self.dir).map_err(PersistenceError::io(
            "listing snapshot directory",
            &self.dir,
        ))?;
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(PersistenceError::io(
                "listing snapshot directory",
                &self.dir,
            ))?;
            let name = entry.file_name();
            let Some(sequence) = name
                .to_str()
                .and_then(|n| n.strip_prefix(SNAPSHOT_FILE_PREFIX))
                .and_then(|n| n.strip_suffix(SNAPSHOT_FILE_EXTENSION))
                .filter(|n| n.len() == 20)
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            files.push((sequence, entry.path()));
        }
        files.sort_unstable_by_key(|f| std::cmp::Reverse(f.0));
        Ok(files)
    }
}

impl SnapshotStore for FileSnapshotStore {
    fn put(&self, bytes: &[u8]) -> Result<(), PersistenceError> {
        use std::io::Write;
        let files = self.files()?;
        let sequence = files.first().map_or(1, |(s, _)| s + 1);
        let name = format!("{SNAPSHOT_FILE_PREFIX}{sequence:020}{SNAPSHOT_FILE_EXTENSION}");
        let path = self.dir.join(&name);
        let temporary = self.dir.join(format!("{name}.tmp"));
        let mut file = std::fs::File::create(&temporary)
            .map_err(PersistenceError::io("creating snapshot", &temporary))?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(PersistenceError::io("writing snapshot", &temporary))?;
        drop(file);
        std::fs::rename(&temporary, &path)
            .map_err(PersistenceError::io("renaming snapshot into place", &path))?;
        crate::segment::sync_dir(&self.dir)?;
        for (_, old) in files.iter().skip(SNAPSHOTS_KEPT - 1) {
            if let Err(error) = std::fs::remove_file(old) {
                tracing::warn!(path = %old.display(), %error, "cannot delete an old snapshot");
            }
        }
        Ok(())
    }

    fn list(&self) -> Result<Vec<StoredSnapshot>, PersistenceError> {
        let mut out = Vec::new();
        for (_, path) in self.files()?.into_iter().take(SNAPSHOTS_KEPT) {
            match std::fs::read(&path) {
                Ok(bytes) => out.push(StoredSnapshot {
                    location: path.display().to_string(),
                    bytes,
                }),
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "cannot read a snapshot; skipping it")
                }
            }
        }
        Ok(out)
    }

    fn describe(&self) -> String {
        self.dir.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_two_newest_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileSnapshotStore::open(dir.path().join("snaps")).unwrap();
        assert!(store.list().unwrap().is_empty());
        for i in 1..=4u8 {
            store.put(&[i; 3]).unwrap();
        }
        let listed: Vec<Vec<u8>> = store.list().unwrap().into_iter().map(|s| s.bytes).collect();
        assert_eq!(listed, vec![vec![4; 3], vec![3; 3]]);
        let names = std::fs::read_dir(dir.path().join("snaps")).unwrap().count();
        assert_eq!(names, 2, "older snapshots are deleted");
    }
}
