//! [`FileJournal`]: open (lock, replay, repair), append, stats, shutdown.

use crate::error::PersistenceError;
use crate::format;
use crate::lock::DirectoryLock;
use crate::scan::{self, LsnRange, ScanMode};
use crate::segment::{self, ActiveSegment};
use crate::writer::{Request, Shared, Writer, WriterSettings};
use crate::JournalOptions;
use crossbeam_channel::{Sender, TrySendError};
use leadex_engine::journal::{DurableCallback, Lsn, ReplayStats};
use leadex_engine::{Event, Journal, JournalError};
use parking_lot::{Mutex, RwLock};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;

/// The embedded, durable journal: segment files in one directory, written by
/// one thread with group commit. See the crate documentation.
pub struct FileJournal {
    /// `None` once shut down. `append` holds the read side only for a
    /// non-blocking `try_send`, so it never waits unless `shutdown` runs;
    /// `shutdown` takes the write side to drop the sender, after which no
    /// append can slip a request in behind the writer's last batch.
    sender: RwLock<Option<Sender<Request>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    pub(crate) shared: Arc<Shared>,
    dir: PathBuf,
    batch_bytes_max: usize,
    // Dropped after `Drop::drop` has joined the writer, so the directory
    // stays locked for as long as anything may write to it.
    _lock: DirectoryLock,
}

/// Figures of a [`FileJournal`], for metrics and health checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JournalStats {
    /// Events written (and acknowledged) since open.
    pub appended_events: u64,
    /// Record bytes written since open.
    pub bytes_written: u64,
    /// Group commits written since open.
    pub batches_written: u64,
    /// `fdatasync` calls since open.
    pub fsyncs: u64,
    /// LSN of the last event written (replayed ones included).
    pub last_lsn: Lsn,
    /// Latency of the latest fsync, µs.
    pub fsync_latency_us_last: u64,
    /// Slowest fsync since open, µs.
    pub fsync_latency_us_max: u64,
    /// Time spent in fsync since open, µs (divide by `fsyncs` for the mean).
    pub fsync_latency_us_total: u64,
    /// Batches that failed with a storage error.
    pub storage_failures: u64,
    /// True while the journal takes appends: not shut down, and not stuck
    /// failing every append because a failed batch cannot be cut off.
    pub accepting: bool,
}

impl FileJournal {
    /// Opens (or creates) the journal in `options.dir`: takes the directory
    /// lock, replays every stored event through `visit` in LSN order, cuts
    /// a torn tail, and starts the writer after the last good record.
    ///
    /// `visit` may have seen some events when an error is returned; the
    /// caller should then not start.
    pub fn open(
        options: JournalOptions,
        visit: &mut dyn FnMut(Lsn, Event),
    ) -> Result<(FileJournal, ReplayStats), PersistenceError> {
        FileJournal::open_after(options, 0, visit)
    }

    /// Like [`FileJournal::open`], but replays only the events after LSN
    /// `after` (what a snapshot covers); segments wholly at or before it
    /// are not read. The journal must still hold every event after `after`
    /// (else [`PersistenceError::Corrupt`]: a missing segment); an empty
    /// journal directory continues at `after + 1`.
    pub fn open_after(
        options: JournalOptions,
        after: Lsn,
        visit: &mut dyn FnMut(Lsn, Event),
    ) -> Result<(FileJournal, ReplayStats), PersistenceError> {
        options.validate()?;
        let dir = options.dir.clone();
        create_dir_durably(&dir)?;
        let lock = DirectoryLock::acquire(&dir)?;
        let range = LsnRange { after, upto: None };
        let scan = scan::scan_directory(&dir, ScanMode::Repair, range, visit)?;
        let segment = match &scan.last_segment {
            Some(last) => ActiveSegment::reopen(&last.path, last.header, last.good_end_bytes)?,
            None => ActiveSegment::create(&dir, scan.next_lsn)?,
        };
        let shared = Arc::new(Shared::default());
        // Relaxed: a monitoring figure, stored before the writer thread exists
        // (spawning it orders this store before anything the writer does).
        shared.last_lsn.store(scan.next_lsn - 1, Ordering::Relaxed);
        // Release: see `Shared::durable_lsn`; what replay read is on disk.
        shared
            .durable_lsn
            .store(scan.next_lsn - 1, Ordering::Release);
        let settings = WriterSettings {
            dir: dir.clone(),
            fsync: options.fsync,
            segment_bytes: options.segment_bytes,
            batch_bytes_max: options.batch_bytes_max,
            batch_appends_max: options.batch_appends_max,
        };
        let writer = Writer::new(settings, segment, scan.next_lsn, shared.clone());
        let (sender, receiver) = crossbeam_channel::bounded(options.queue_capacity);
        let handle = std::thread::Builder::new()
            .name("leadex-journal".into())
            .spawn(move || writer.run(receiver))
            .map_err(|source| PersistenceError::WriterThread {
                dir: dir.clone(),
                source,
            })?;
        tracing::info!(
            dir = %dir.display(),
            events = scan.stats.events,
            torn_bytes_cut = scan.stats.torn_bytes_cut,
            next_lsn = scan.next_lsn,
            fsync = ?options.fsync,
            "journal opened"
        );
        let journal = FileJournal {
            sender: RwLock::new(Some(sender)),
            writer: Mutex::new(Some(handle)),
            shared,
            dir,
            batch_bytes_max: options.batch_bytes_max,
            _lock: lock,
        };
        Ok((journal, scan.stats))
    }

    /// Stops taking appends, writes everything queued, fsyncs whatever the
    /// policy, and waits for the writer to stop. Every queued callback is
    /// called. Idempotent; `Drop` calls it too.
    pub fn shutdown(&self) {
        // Dropping the only sender disconnects the queue once it is drained.
        drop(self.sender.write().take());
        let Some(handle) = self.writer.lock().take() else {
            return;
        };
        if handle.thread().id() == std::thread::current().id() {
            // Called from a callback on the writer thread itself: it cannot
            // wait for itself; it stops once this callback returns.
            return;
        }
        if handle.join().is_err() {
            tracing::error!(dir = %self.dir.display(), "journal writer thread panicked");
        }
    }

    /// Current figures. Cheap: a handful of relaxed loads.
    pub fn stats(&self) -> JournalStats {
        let shared = &self.shared;
        // Relaxed everywhere: monitoring figures, see `Shared`.
        JournalStats {
            appended_events: shared.appended_events.load(Ordering::Relaxed),
            bytes_written: shared.bytes_written.load(Ordering::Relaxed),
            batches_written: shared.batches_written.load(Ordering::Relaxed),
            fsyncs: shared.fsyncs.load(Ordering::Relaxed),
            last_lsn: shared.last_lsn.load(Ordering::Relaxed),
            fsync_latency_us_last: shared.fsync_latency_us_last.load(Ordering::Relaxed),
            fsync_latency_us_max: shared.fsync_latency_us_max.load(Ordering::Relaxed),
            fsync_latency_us_total: shared.fsync_latency_us_total.load(Ordering::Relaxed),
            storage_failures: shared.storage_failures.load(Ordering::Relaxed),
            accepting: !shared.failed.load(Ordering::Relaxed) && self.sender.read().is_some(),
        }
    }

    /// The journal directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Last LSN durable under the fsync policy: a snapshot may cover up to
    /// here and read the files up to here beside the writer.
    pub fn durable_lsn(&self) -> Lsn {
        // Acquire: see `Shared::durable_lsn`.
        self.shared.durable_lsn.load(Ordering::Acquire)
    }

    /// Deletes the segments whose every record is at or before LSN
    /// `covered` (covered by a snapshot that restore can use). The active
    /// segment is never deleted, so this needs no coordination with the
    /// writer. Returns the number of segments deleted.
    pub fn compact(&self, covered: Lsn) -> Result<usize, PersistenceError> {
        let segments = scan::list_segments(&self.dir, ScanMode::ReadOnly)?;
        let mut deleted = 0;
        for pair in segments.windows(2) {
            if pair[1].first_lsn > covered + 1 {
                break;
            }
            std::fs::remove_file(&pair[0].path).map_err(PersistenceError::io(
                "deleting a compacted segment",
                &pair[0].path,
            ))?;
            deleted += 1;
        }
        if deleted > 0 {
            segment::sync_dir(&self.dir)?;
            tracing::info!(dir = %self.dir.display(), deleted, covered, "journal compacted behind a snapshot");
        }
        Ok(deleted)
    }
}

impl Journal for FileJournal {
    /// Queues `events` without blocking. Refusals: `QueueFull` (shed load),
    /// `Closed` (after shutdown), `Storage` (an event over the record size
    /// limit, or more than `batch_bytes_max` in one append). On a refusal
    /// `on_durable` is dropped without being called.
    fn append(
        &self,
        events: Vec<Event>,
        on_durable: Option<DurableCallback>,
    ) -> Result<(), JournalError> {
        let mut record_bytes = 0usize;
        for event in &events {
            // Sizing here keeps oversized events out of the writer's batch,
            // and runs in the callers' threads, in parallel.
            record_bytes += format::record_bytes(event)
                .map_err(|error| JournalError::Storage(error.to_string()))?;
        }
        if record_bytes > self.batch_bytes_max {
            return Err(JournalError::Storage(format!(
                "append of {record_bytes} bytes exceeds batch_bytes_max ({} bytes)",
                self.batch_bytes_max
            )));
        }
        let request = Request {
            events,
            record_bytes,
            on_durable,
        };
        let refused = {
            let sender = self.sender.read();
            match sender.as_ref() {
                None => Some((request, JournalError::Closed)),
                Some(sender) => match sender.try_send(request) {
                    Ok(()) => None,
                    Err(TrySendError::Full(request)) => Some((request, JournalError::QueueFull)),
                    Err(TrySendError::Disconnected(request)) => {
                        Some((request, JournalError::Closed))
                    }
                },
            }
        };
        // The refused request (and its callback, whose drop may run caller
        // code) is dropped here, outside the lock.
        match refused {
            None => Ok(()),
            Some((_request, error)) => Err(error),
        }
    }
}

impl Drop for FileJournal {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl std::fmt::Debug for FileJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileJournal")
            .field("dir", &self.dir)
            .field("stats", &self.stats())
            .finish()
    }
}

/// Creates `dir` if missing and makes its entry in the parent durable.
fn create_dir_durably(dir: &Path) -> Result<(), PersistenceError> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)
        .map_err(PersistenceError::io("creating journal directory", dir))?;
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => segment::sync_dir(parent),
        _ => Ok(()),
    }
}
