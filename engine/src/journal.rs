//! The journal contract the engine needs from persistence.
//!
//! The engine defines it and `leadex-persistence` implements it (embedded
//! file journal and Kafka journal), never the reverse. The contract is
//! callback-based so the engine stays free of any async runtime.

use crate::event::Event;

/// Position of a record in a journal (monotonic per journal).
pub type Lsn = u64;

/// Called once when appended events are durable, or failed to be.
pub type DurableCallback = Box<dyn FnOnce(Result<Lsn, JournalError>) + Send + 'static>;

/// Why the journal could not take or keep events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JournalError {
    /// The bounded append queue is full; the caller should shed load.
    #[error("journal queue is full")]
    QueueFull,
    /// The journal is shut down.
    #[error("journal is closed")]
    Closed,
    /// The storage cannot be reached right now (a broker outage); nothing
    /// was queued. The caller should refuse what needs durability and may
    /// carry on with what does not. The message is for logs.
    #[error("journal storage is unavailable: {0}")]
    Unavailable(String),
    /// The storage failed; the message is for logs, not for clients.
    #[error("journal storage failed: {0}")]
    Storage(String),
    /// A record could not be decoded during replay.
    #[error("journal record at {position} is corrupt: {reason}")]
    Corrupt {
        /// Where (segment and offset, in the backend's words).
        position: String,
        /// What was wrong.
        reason: String,
    },
}

pub use position::JournalPosition;

// rkyv's derive generates archived twins whose fields carry no docs.
#[allow(missing_docs)]
mod position {
    use super::Lsn;

    /// Where a journal stands: every event before it is covered (by a state
    /// snapshot, or by a replay that reached it). Stored in snapshots.
    #[derive(
        Debug, Clone, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
    )]
    pub enum JournalPosition {
        /// The embedded file journal: the last LSN covered (0 = none).
        File {
            /// Last LSN covered.
            last_lsn: Lsn,
        },
        /// A Kafka topic: for each partition (index = partition number), the
        /// offset of the first record *not* covered.
        Kafka {
            /// Next offset to read, per partition.
            next_offsets: Vec<i64>,
        },
    }

    impl JournalPosition {
        /// True for a file journal's position.
        pub fn is_file(&self) -> bool {
            matches!(self, JournalPosition::File { .. })
        }

        /// True for a position in a Kafka topic of `partitions` partitions.
        pub fn is_kafka_with(&self, partitions: usize) -> bool {
            matches!(self, JournalPosition::Kafka { next_offsets } if next_offsets.len() == partitions)
        }
    }
}

/// Appends events in order.
pub trait Journal: Send + Sync + 'static {
    /// Queues `events` as one record group, in order after everything queued
    /// before. When `on_durable` is given it is called exactly once: with the
    /// last LSN when the events are durable under the configured policy, or
    /// with an error (then none of these events will be replayed). If
    /// `append` itself returns `Err`, nothing was queued and `on_durable` is
    /// dropped without being called. Without a callback the append is
    /// fire-and-forget but still ordered.
    fn append(
        &self,
        events: Vec<Event>,
        on_durable: Option<DurableCallback>,
    ) -> Result<(), JournalError>;
}

/// Reads back what a journal holds, in order.
pub trait JournalReader {
    /// Calls `visit` with every stored event in append order.
    fn replay(&mut self, visit: &mut dyn FnMut(Lsn, Event)) -> Result<ReplayStats, JournalError>;
}

/// What a replay saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Events visited.
    pub events: u64,
    /// Bytes of a torn tail that were cut off.
    pub torn_bytes_cut: u64,
}

/// A journal that keeps everything in memory and is durable immediately.
/// For tests and benchmarks of the engine only: it survives nothing.
#[derive(Default)]
pub struct MemoryJournal {
    events: parking_lot::Mutex<Vec<Event>>,
}

impl MemoryJournal {
    /// Everything appended so far.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().clone()
    }
}

impl Journal for MemoryJournal {
    fn append(
        &self,
        events: Vec<Event>,
        on_durable: Option<DurableCallback>,
    ) -> Result<(), JournalError> {
        let lsn = {
            let mut all = self.events.lock();
            all.extend(events);
            all.len() as Lsn
        };
        if let Some(cb) = on_durable {
            cb(Ok(lsn));
        }
        Ok(())
    }
}
