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
    /// the fallback and any older one is dropped.
    fn put(&self, bytes: &[u8]) -> Result<(), PersistenceError>;

    /// The stored snapshots, newest first (at most two). A snapshot that
    /// cannot be read is left out with a warning; an unreachable store is
    /// an error.
    fn list(&self) -> Result<Vec<StoredSnapshot>, PersistenceError>;

    /// Human-readable location for logs, e.g. `redis://…/leadex:snapshot`.
    fn describe(&self) -> String;
}
