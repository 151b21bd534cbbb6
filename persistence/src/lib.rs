//! # leadex-persistence
//!
//! Everything of leadex that outlives the process: the journals that make
//! sales durable, and the state snapshots that make restarts fast. It
//! implements the [`Journal`] and [`JournalReader`] traits that
//! `leadex-engine` defines (never the reverse).
//!
//! - [`FileJournal`] (this page): the embedded, durable, append-only journal,
//!   leadex's default backend; segment files on local disk.
//! - [`kafka::KafkaJournal`]: the journal on a Kafka topic, for production
//!   clusters.
//! - [`snapshot`], [`store`], [`RedisSnapshotStore`], [`state`]: state
//!   snapshots (an rkyv image of the engine plus the journal position it
//!   covers), kept in files or in Redis, built beside the hot path by
//!   replaying the journal ([`state::checkpoint`]); restore = newest usable
//!   snapshot + the journal's tail.
//!
//! The engine hands a journal [`Event`]s, the journal stores them and calls
//! the caller back once they are durable. On start, [`FileJournal::open`]
//! replays every stored event so the engine can rebuild its state.
//!
//! ```
//! use leadex_engine::Journal;
//! use leadex_persistence::{testing, FileJournal, FsyncPolicy, JournalOptions};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let mut options = JournalOptions::new(dir.path());
//! options.fsync = FsyncPolicy::Always; // the default: acknowledge after fdatasync
//!
//! // First start: nothing to replay.
//! let (journal, replay) = FileJournal::open(options.clone(), &mut |_lsn, _event| {}).unwrap();
//! assert_eq!(replay.events, 0);
//!
//! // Append a sale and wait until it is durable.
//! let (tx, rx) = std::sync::mpsc::channel();
//! let sale = testing::lead_sold(7);
//! journal.append(vec![sale.clone()], Some(Box::new(move |result| tx.send(result).unwrap()))).unwrap();
//! assert_eq!(rx.recv().unwrap(), Ok(1)); // LSN 1 is on disk
//! journal.shutdown();
//! drop(journal);
//!
//! // Restart: the sale is replayed with its LSN.
//! let mut replayed = Vec::new();
//! let (journal, replay) =
//!     FileJournal::open(options, &mut |lsn, event| replayed.push((lsn, event))).unwrap();
//! assert_eq!(replay.events, 1);
//! assert_eq!(replayed, vec![(1, sale)]);
//! # drop(journal);
//! ```
//!
//! ## On-disk format
//!
//! A journal is a directory holding a `LOCK` file and *segment* files named
//! by the LSN of their first record, zero-padded to 20 digits so that names
//! sort like numbers: `00000000000000000001.ldxj`, then for example
//! `00000000000000052117.ldxj`. The LSN (log sequence number) of a record is
//! its ordinal in the journal, starting at 1. All integers are little-endian.
//!
//! Segment header, 28 bytes:
//!
//! | bytes | field |
//! | --- | --- |
//! | 8 | magic `LDXJRNL\0` |
//! | 2 | segment format version, `1` ([`format::SEGMENT_FORMAT_VERSION`]) |
//! | 2 | reserved, zero |
//! | 8 | first LSN (must match the file name) |
//! | 4 | salt: random per segment, mixed into every record CRC |
//! | 4 | CRC-32 of the 24 bytes above |
//!
//! Then records, back to back, one per event:
//!
//! | bytes | field |
//! | --- | --- |
//! | 4 | length *n* of what follows the CRC (version + payload), 3..=1 MiB |
//! | 4 | CRC-32 (crc32fast, IEEE) of salt ‖ length ‖ version ‖ payload |
//! | 2 | event format version ([`leadex_engine::event::EVENT_FORMAT_VERSION`]) |
//! | *n* − 2 | the [postcard] encoding of one [`Event`] |
//!
//! The CRC covers the length too, so a damaged length field is caught. The
//! salt makes a record valid only in the segment it was written to: bytes
//! that merely *look* like a record (say, an encoded record that a client
//! smuggled into a lead's `user_agent`) cannot pass the check, because the
//! client does not know the salt. That matters because replay reads past a
//! bad record to decide whether it is a torn tail or corruption (below).
//!
//! **Why postcard**: it is serde-based, so the engine's event types only
//! derive `Serialize`/`Deserialize` and stay codec-agnostic; it is compact
//! (varints, no field names), fast, has a stable documented wire format
//! (1.x), and is well maintained. The per-record event format version lets
//! a future build refuse, or migrate, records it does not understand.
//!
//! ## Writing and the durability point
//!
//! [`FileJournal`] owns one writer thread fed by a bounded queue
//! ([`JournalOptions::queue_capacity`]). [`Journal::append`] never blocks: a
//! full queue answers [`JournalError::QueueFull`] so the caller can shed
//! load, and a shut-down journal answers [`JournalError::Closed`]. When the
//! append is refused, its callback is dropped without being called.
//!
//! The writer commits in groups: it waits for one append, takes whatever
//! else is queued (bounded by [`JournalOptions::batch_bytes_max`] and
//! [`JournalOptions::batch_appends_max`]), encodes all of it into one reused
//! buffer, writes it with one `write`, makes it durable, and only then calls
//! every `on_durable` callback of the batch, in append order, with the last
//! LSN of that append. The **durability point** depends on [`FsyncPolicy`]:
//!
//! - [`FsyncPolicy::Always`] (default): after `fdatasync` returned. An
//!   acknowledged sale survives a process crash and a power loss. A batch
//!   in which no append has an `on_durable` callback (fire-and-forget, like
//!   the engine's `PingIssued`) is written but not synced; the next synced
//!   batch, rotation or shutdown makes it durable along with everything
//!   before it. Nobody was told it was durable, so nothing is promised
//!   until then, and the ping path saves an `fdatasync` per batch.
//! - [`FsyncPolicy::Never`]: after the bytes reached the operating system.
//!   An acknowledged sale survives `kill -9` but not a power loss or kernel
//!   crash. For benchmarks and tests.
//!
//! Callbacks run on the writer thread: they must be short (complete a
//! oneshot, commit a settlement), since every later append waits for them.
//!
//! Atomicity is per record, so per event: a crash can tear a multi-event
//! append between two of its events. The engine puts everything that must
//! happen together (a sale, its charges, its dedupe entries) into one event.
//!
//! If a write or fsync fails, every append of that batch gets
//! [`JournalError::Storage`] and the failure is logged. The writer then
//! truncates the segment back to the end of the last good batch, fsyncs
//! that, and carries on: no later append is glued onto half a record, and
//! none of the failed events is replayed. If even the truncation fails,
//! every append fails with `Storage` (and [`JournalStats::accepting`] is
//! false) until a retry succeeds; the cut is retried before each batch and
//! at shutdown. One case is left: if the process dies while the cut keeps
//! failing, a failed batch that reached the file *whole* would be replayed
//! at the next start (a torn one is cut by replay). Appends that failed
//! with `Storage` are therefore "not known to be durable", not "known to
//! be absent"; the engine rolls them back either way.
//!
//! A segment is rotated when it has reached [`JournalOptions::segment_bytes`]
//! (so a segment holds at most that plus one batch). The old segment is
//! fsynced before the new one exists, whatever the policy, so only the last
//! segment can ever end in a torn record. A new segment is written under a
//! temporary name, fsynced, renamed into place, and the directory is fsynced:
//! a segment with its final name always has a complete header.
//!
//! ## Replay and repair
//!
//! [`FileJournal::open`] takes the directory lock, reads the segments in
//! order, checks each header, the LSN continuity between segments, and every
//! record's length, CRC and version, and calls `visit` for each event. A bad
//! record at the end of the *last* segment, with no valid record after it
//! (a short record, a bad CRC, garbage or zeros), is what a crash in the
//! middle of a write leaves: it was never acknowledged, so it is logged,
//! cut off (the file is truncated and fsynced) and reported in
//! [`ReplayStats::torn_bytes_cut`]. Anything else (a bad record followed by
//! a valid one, a bad record in an earlier segment, an unknown version, a
//! missing segment) is [`PersistenceError::Corrupt`]: the journal refuses
//! to start rather than silently lose sales. `visit` may already have seen
//! the events before the corruption when that error is returned.
//!
//! On a file system that writes the pages of one `write` out of order, a
//! crash can leave a hole followed by intact records of the same
//! unacknowledged batch; replay then reports `Corrupt` and an operator must
//! look. That errs on the side of never dropping a record silently.

pub mod error;
pub mod format;
mod journal;
pub mod kafka;
mod lock;
mod reader;
mod redis_store;
mod scan;
mod segment;
pub mod snapshot;
pub mod state;
pub mod store;
pub mod testing;
mod writer;

use std::path::{Path, PathBuf};

pub use error::PersistenceError;
pub use journal::{FileJournal, JournalStats};
pub use reader::FileJournalReader;
pub use redis_store::{RedisSnapshotStore, RedisStoreStats};
pub use store::{FileSnapshotStore, SnapshotStore, StoredSnapshot};

// The engine's types that appear in this crate's signatures.
pub use leadex_engine::journal::{Lsn, ReplayStats};

// For the documentation's links only; callers import them from the engine.
#[cfg(doc)]
use leadex_engine::{Event, Journal, JournalError, JournalReader};

/// When an append counts as durable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Acknowledge after `fdatasync` (`File::sync_data`): survives power loss.
    #[default]
    Always,
    /// Acknowledge once the OS has the bytes: survives a process kill, not a
    /// power loss. For benchmarks and tests.
    Never,
}

/// How to open a [`FileJournal`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalOptions {
    /// Directory of the journal; created if missing.
    pub dir: PathBuf,
    /// When appends are acknowledged.
    pub fsync: FsyncPolicy,
    /// Appends the queue to the writer holds before `append` answers
    /// [`JournalError::QueueFull`].
    pub queue_capacity: usize,
    /// A segment is rotated once it has reached this size.
    pub segment_bytes: u64,
    /// Most record bytes one group commit writes. Also the largest single
    /// append accepted, since an append is written in one piece.
    pub batch_bytes_max: usize,
    /// Most appends one group commit takes.
    pub batch_appends_max: usize,
}

impl JournalOptions {
    /// Largest accepted `queue_capacity`.
    pub const QUEUE_CAPACITY_MAX: usize = 1 << 20;

    /// Defaults: fsync always, a queue of 65,536 appends, 64 MiB segments,
    /// group commits of at most 4 MiB and 4,096 appends.
    pub fn new(dir: impl AsRef<Path>) -> JournalOptions {
        JournalOptions {
            dir: dir.as_ref().to_path_buf(),
            fsync: FsyncPolicy::Always,
            queue_capacity: 65_536,
            segment_bytes: 64 << 20,
            batch_bytes_max: 4 << 20,
            batch_appends_max: 4_096,
        }
    }

    /// Checks the bounds; [`FileJournal::open`] calls it.
    pub fn validate(&self) -> Result<(), PersistenceError> {
        let invalid = |reason: String| Err(PersistenceError::InvalidOptions { reason });
        if !(1..=Self::QUEUE_CAPACITY_MAX).contains(&self.queue_capacity) {
            return invalid(format!(
                "queue_capacity is {}, must be 1..={}",
                self.queue_capacity,
                Self::QUEUE_CAPACITY_MAX
            ));
        }
        if self.segment_bytes <= format::SEGMENT_HEADER_BYTES as u64 {
            return invalid(format!(
                "segment_bytes is {}, must exceed the {}-byte segment header",
                self.segment_bytes,
                format::SEGMENT_HEADER_BYTES
            ));
        }
        if self.batch_bytes_max < format::RECORD_BYTES_MAX {
            return invalid(format!(
                "batch_bytes_max is {}, must hold the largest record ({} bytes)",
                self.batch_bytes_max,
                format::RECORD_BYTES_MAX
            ));
        }
        if self.batch_appends_max == 0 {
            return invalid("batch_appends_max must be at least 1".into());
        }
        Ok(())
    }
}
