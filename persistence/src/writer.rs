//! The writer thread: group commit, durability, rotation, failure repair.
//!
//! The only code that writes segment files while a journal is open. It owns
//! the active segment outright, so nothing here takes a lock.

use crate::format;
use crate::segment::ActiveSegment;
use crate::FsyncPolicy;
use crossbeam_channel::Receiver;
use leadex_engine::journal::{DurableCallback, Lsn};
use leadex_engine::{Event, JournalError};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// One `append` call on its way to the writer.
pub(crate) struct Request {
    pub(crate) events: Vec<Event>,
    /// Size of all its records, computed by `append`; the writer checks it.
    pub(crate) record_bytes: usize,
    pub(crate) on_durable: Option<DurableCallback>,
}

/// State the writer publishes to `FileJournal` (stats, health).
///
/// Only the writer thread stores into these, and nothing else in memory is
/// published through them, so every access is `Relaxed`: readers want a
/// recent figure for metrics, not an ordering with other data.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) appended_events: AtomicU64,
    pub(crate) bytes_written: AtomicU64,
    pub(crate) batches_written: AtomicU64,
    pub(crate) fsyncs: AtomicU64,
    pub(crate) last_lsn: AtomicU64,
    /// Last LSN durable under the policy (synced; or written, under
    /// `FsyncPolicy::Never`). Unlike the figures around it this one is read
    /// for correctness, by a snapshotter that then reads the files up to
    /// it: stored with `Release` after the bytes were written (and synced),
    /// loaded with `Acquire`, so the reader's reads come after the write.
    pub(crate) durable_lsn: AtomicU64,
    pub(crate) fsync_latency_us_last: AtomicU64,
    pub(crate) fsync_latency_us_max: AtomicU64,
    pub(crate) fsync_latency_us_total: AtomicU64,
    pub(crate) storage_failures: AtomicU64,
    /// Set while the writer cannot cut a failed batch off, and so fails
    /// every append; for the health figure.
    pub(crate) failed: AtomicBool,
    /// Test hook: make this many of the next writes tear halfway and fail.
    #[cfg(test)]
    pub(crate) inject_write_failures: std::sync::atomic::AtomicU32,
    /// Test hook: make this many of the next fsyncs fail.
    #[cfg(test)]
    pub(crate) inject_sync_failures: std::sync::atomic::AtomicU32,
    /// Test hook: make this many of the next cuts of a failed batch fail.
    #[cfg(test)]
    pub(crate) inject_cut_failures: std::sync::atomic::AtomicU32,
}

/// Limits and policy the writer runs with.
#[derive(Debug, Clone)]
pub(crate) struct WriterSettings {
    pub(crate) dir: PathBuf,
    pub(crate) fsync: FsyncPolicy,
    pub(crate) segment_bytes: u64,
    pub(crate) batch_bytes_max: usize,
    pub(crate) batch_appends_max: usize,
}

/// A failed batch still (maybe partly) in the segment.
#[derive(Debug)]
struct UncutBatch {
    /// Where the failed batch started, the end of the last good one.
    batch_start: u64,
    /// Why the batch failed.
    cause: String,
    /// Why cutting it off failed, the last time it was tried.
    cut_error: String,
}

impl UncutBatch {
    /// Why appends fail meanwhile.
    fn message(&self) -> String {
        format!(
            "{}; cutting the failed batch off failed too: {}",
            self.cause, self.cut_error
        )
    }
}

/// The writer thread's state.
pub(crate) struct Writer {
    settings: WriterSettings,
    segment: ActiveSegment,
    /// LSN of the next record.
    next_lsn: Lsn,
    /// Bytes were written since the last fsync (only under `Never`).
    unsynced: bool,
    /// Set while a failed batch could not be cut off: every batch first
    /// retries the cut, and fails while it does not succeed.
    uncut: Option<UncutBatch>,
    /// Reused for every batch: no allocation per batch after warm-up.
    buffer: Vec<u8>,
    batch: Vec<Request>,
    outcomes: Vec<Result<Lsn, JournalError>>,
    shared: Arc<Shared>,
}

impl Writer {
    pub(crate) fn new(
        settings: WriterSettings,
        segment: ActiveSegment,
        next_lsn: Lsn,
        shared: Arc<Shared>,
    ) -> Writer {
        assert!(
            next_lsn >= segment.header.first_lsn,
            "invariant: appends continue inside or after the segment"
        );
        let batch_capacity = settings.batch_appends_max.min(1024);
        Writer {
            buffer: Vec::with_capacity(settings.batch_bytes_max.min(1 << 20)),
            batch: Vec::with_capacity(batch_capacity),
            outcomes: Vec::with_capacity(batch_capacity),
            settings,
            segment,
            next_lsn,
            unsynced: false,
            uncut: None,
            shared,
        }
    }

    /// Commits batches until every sender is gone and the queue is empty,
    /// then makes everything durable.
    pub(crate) fn run(mut self, requests: Receiver<Request>) {
        let mut carried: Option<Request> = None;
        loop {
            let first = match carried.take() {
                Some(request) => request,
                // Blocks for the first request; after the last sender is
                // dropped it still returns what is queued, then `Err`.
                None => match requests.recv() {
                    Ok(request) => request,
                    Err(_disconnected) => break,
                },
            };
            carried = self.collect_batch(first, &requests);
            self.commit_batch();
        }
        self.finish();
    }

    /// Takes `first` and whatever else is queued, within the batch bounds.
    /// Returns a request that did not fit, for the next batch.
    fn collect_batch(&mut self, first: Request, requests: &Receiver<Request>) -> Option<Request> {
        assert!(
            self.batch.is_empty(),
            "invariant: the previous batch was delivered"
        );
        let mut batch_bytes = first.record_bytes;
        self.batch.push(first);
        while self.batch.len() < self.settings.batch_appends_max {
            let Ok(request) = requests.try_recv() else {
                break;
            };
            if batch_bytes + request.record_bytes > self.settings.batch_bytes_max {
                return Some(request);
            }
            batch_bytes += request.record_bytes;
            self.batch.push(request);
        }
        None
    }

    /// Writes the batch in one write, makes it durable, and calls back.
    fn commit_batch(&mut self) {
        assert!(
            !self.batch.is_empty(),
            "invariant: a batch has at least one request"
        );
        self.outcomes.clear();
        if let Some(uncut) = self.uncut.take() {
            self.cut_failed_batch(uncut.batch_start, uncut.cause);
        }
        if let Some(uncut) = &self.uncut {
            let message = uncut.message();
            self.fail_batch(&message);
        } else if let Err(error) = self.rotate_if_full() {
            self.fail_batch(&error);
        } else {
            let last_lsn = self.encode_batch();
            if !self.buffer.is_empty() {
                self.write_batch(last_lsn);
            }
        }
        self.deliver();
    }

    /// Encodes every request's records into the reused buffer and records
    /// each request's outcome, assuming the write will succeed. Returns the
    /// LSN of the last record encoded.
    fn encode_batch(&mut self) -> Lsn {
        self.buffer.clear();
        let salt = self.segment.header.salt;
        let mut last_lsn = self.next_lsn - 1;
        for request in &self.batch {
            let request_start = self.buffer.len();
            let encoded = request.events.iter().try_for_each(|event| {
                format::encode_record(&mut self.buffer, salt, event).map(drop)
            });
            match encoded {
                Ok(()) => {
                    assert_eq!(
                        self.buffer.len() - request_start,
                        request.record_bytes,
                        "invariant: append's size pass and the encoding agree"
                    );
                    last_lsn += request.events.len() as Lsn;
                    // An empty append is acknowledged with the LSN before it.
                    self.outcomes.push(Ok(last_lsn));
                }
                Err(error) => {
                    // `append` encoded the same value already, so this is a
                    // bug; fail this append alone and keep the others.
                    tracing::error!(%error, "journal could not encode an appended event");
                    self.buffer.truncate(request_start);
                    self.outcomes
                        .push(Err(JournalError::Storage(error.to_string())));
                }
            }
        }
        last_lsn
    }

    /// Writes the buffer, whose last record has LSN `last_lsn`, and syncs it
    /// if an append of the batch waits to hear that it is durable; on
    /// failure turns every outcome into an error and cuts the segment back
    /// to where the batch started.
    ///
    /// A batch of fire-and-forget appends (no `on_durable`, such as the
    /// engine's `PingIssued`) is written but not synced: nobody was promised
    /// its durability, and the next synced batch (or rotation, or shutdown)
    /// makes it durable with everything before it, since `fdatasync` covers
    /// the whole file. Under ping-only load this saves one `fdatasync` per
    /// batch, which measured as the largest cost of the ping path.
    fn write_batch(&mut self, last_lsn: Lsn) {
        let batch_start = self.segment.len_bytes;
        let awaited = self.batch.iter().any(|r| r.on_durable.is_some());
        let result = self.write_buffer().and_then(|()| {
            self.segment.len_bytes += self.buffer.len() as u64;
            self.unsynced = true;
            match self.settings.fsync {
                FsyncPolicy::Always if awaited => self.sync(),
                FsyncPolicy::Always | FsyncPolicy::Never => Ok(()),
            }
        });
        match result {
            Ok(()) => {
                let events = last_lsn - (self.next_lsn - 1);
                self.next_lsn = last_lsn + 1;
                // Relaxed: monitoring figures that publish no other data.
                self.shared
                    .appended_events
                    .fetch_add(events, Ordering::Relaxed);
                self.shared
                    .bytes_written
                    .fetch_add(self.buffer.len() as u64, Ordering::Relaxed);
                self.shared.batches_written.fetch_add(1, Ordering::Relaxed);
                self.shared.last_lsn.store(last_lsn, Ordering::Relaxed);
                if !self.unsynced || self.settings.fsync == FsyncPolicy::Never {
                    // Release: see `Shared::durable_lsn`.
                    self.shared.durable_lsn.store(last_lsn, Ordering::Release);
                }
            }
            Err(error) => {
                let message = format!("appending to {}: {error}", self.segment.path.display());
                tracing::error!(
                    segment = %self.segment.path.display(),
                    %error,
                    appends = self.batch.len(),
                    "journal write failed; failing the batch and cutting it off"
                );
                self.fail_batch(&message);
                self.cut_failed_batch(batch_start, message);
            }
        }
    }

    /// Every append of the batch fails with `message`.
    fn fail_batch(&mut self, message: &str) {
        // Relaxed: a monitoring figure.
        self.shared.storage_failures.fetch_add(1, Ordering::Relaxed);
        self.outcomes.clear();
        let error = JournalError::Storage(message.to_string());
        self.outcomes
            .extend(self.batch.iter().map(|_| Err(error.clone())));
    }

    /// Cuts a failed batch off, so that no later append is glued onto half
    /// a record and none of its events is replayed. If that fails too, every
    /// append fails until a retry (with each batch, and at shutdown)
    /// succeeds.
    fn cut_failed_batch(&mut self, batch_start: u64, cause: String) {
        match self.truncate_to(batch_start) {
            Ok(()) => {
                self.segment.len_bytes = batch_start;
                self.unsynced = false;
                // Relaxed here and below: a health figure; the writer alone
                // decides, from its own state, whether appends fail.
                if self.shared.failed.swap(false, Ordering::Relaxed) {
                    tracing::warn!(segment = %self.segment.path.display(), batch_start, "journal cut the failed batch off at last and takes appends again");
                } else {
                    tracing::warn!(segment = %self.segment.path.display(), batch_start, "journal cut the failed batch off and carries on");
                }
            }
            Err(error) => {
                if !self.shared.failed.swap(true, Ordering::Relaxed) {
                    tracing::error!(segment = %self.segment.path.display(), %error, "journal cannot cut a failed batch off; failing every append until it can");
                }
                self.uncut = Some(UncutBatch {
                    batch_start,
                    cause,
                    cut_error: error.to_string(),
                });
            }
        }
    }

    /// Truncates the segment to `length`, durably, and writes from there.
    fn truncate_to(&mut self, length: u64) -> io::Result<()> {
        #[cfg(test)]
        if take_one(&self.shared.inject_cut_failures) {
            return Err(io::Error::other("injected truncate failure"));
        }
        let file = &mut self.segment.file;
        file.set_len(length)?;
        file.seek(SeekFrom::Start(length))?;
        file.sync_data()
    }

    /// Starts a new segment once the current one has reached its size.
    fn rotate_if_full(&mut self) -> Result<(), String> {
        if self.segment.len_bytes < self.settings.segment_bytes || !self.segment.has_records() {
            return Ok(());
        }
        // Only the last segment may end torn (replay relies on it), so the
        // old one must be whole on disk before a newer one exists.
        if self.unsynced {
            self.sync().map_err(|error| {
                format!(
                    "syncing {} before rotation: {error}",
                    self.segment.path.display()
                )
            })?;
        }
        let next = ActiveSegment::create(&self.settings.dir, self.next_lsn)
            .map_err(|error| crate::error::error_chain(&error))?;
        tracing::info!(previous = %self.segment.path.display(), next = %next.path.display(), "journal segment rotated");
        self.segment = next;
        Ok(())
    }

    fn write_buffer(&mut self) -> io::Result<()> {
        #[cfg(test)]
        if take_one(&self.shared.inject_write_failures) {
            // A torn write: half the bytes land, then the device fails.
            let half = self.buffer.len() / 2;
            self.segment.file.write_all(&self.buffer[..half])?;
            return Err(io::Error::other("injected write failure"));
        }
        self.segment.file.write_all(&self.buffer)
    }

    /// `fdatasync`, timed.
    fn sync(&mut self) -> io::Result<()> {
        #[cfg(test)]
        if take_one(&self.shared.inject_sync_failures) {
            return Err(io::Error::other("injected fsync failure"));
        }
        let started = Instant::now();
        self.segment.file.sync_data()?;
        let latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.unsynced = false;
        // Release: see `Shared::durable_lsn`. In `write_batch` this runs
        // before `next_lsn` moves on, which then stores the batch's LSN.
        self.shared
            .durable_lsn
            .store(self.next_lsn - 1, Ordering::Release);
        // Relaxed: monitoring figures that publish no other data.
        self.shared.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.shared
            .fsync_latency_us_last
            .store(latency_us, Ordering::Relaxed);
        self.shared
            .fsync_latency_us_max
            .fetch_max(latency_us, Ordering::Relaxed);
        self.shared
            .fsync_latency_us_total
            .fetch_add(latency_us, Ordering::Relaxed);
        Ok(())
    }

    /// Calls every callback of the batch, in append order.
    fn deliver(&mut self) {
        assert_eq!(
            self.batch.len(),
            self.outcomes.len(),
            "invariant: one outcome per append"
        );
        for (request, outcome) in self.batch.drain(..).zip(self.outcomes.drain(..)) {
            let Some(on_durable) = request.on_durable else {
                continue;
            };
            // A panicking callback must not take the writer (and with it
            // every later append) down.
            let call = std::panic::AssertUnwindSafe(move || on_durable(outcome));
            if std::panic::catch_unwind(call).is_err() {
                tracing::error!("a journal on_durable callback panicked; the writer carries on");
            }
        }
    }

    /// Shutdown: everything is written; make it durable whatever the policy.
    fn finish(&mut self) {
        if let Some(uncut) = self.uncut.take() {
            self.cut_failed_batch(uncut.batch_start, uncut.cause);
            if self.uncut.is_some() {
                tracing::error!(segment = %self.segment.path.display(), "journal stops with a failed batch it could not cut off; replay will cut it if it is torn");
            }
        }
        if self.unsynced && self.uncut.is_none() {
            if let Err(error) = self.sync() {
                tracing::error!(segment = %self.segment.path.display(), %error, "journal fsync at shutdown failed");
            }
        }
        tracing::info!(last_lsn = self.next_lsn - 1, "journal writer stopped");
    }
}

#[cfg(test)]
fn take_one(counter: &std::sync::atomic::AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
}

#[cfg(test)]
mod tests {
    use crate::{testing, FileJournal, FsyncPolicy, JournalOptions};
    use leadex_engine::journal::Lsn;
    use leadex_engine::{Event, Journal, JournalError};
    use std::sync::atomic::Ordering;

    fn append_and_wait(journal: &FileJournal, events: Vec<Event>) -> Result<Lsn, JournalError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        journal.append(
            events,
            Some(Box::new(move |result| tx.send(result).unwrap())),
        )?;
        rx.recv().unwrap()
    }

    fn replay(options: &JournalOptions) -> Vec<(Lsn, Event)> {
        let mut seen = vec![];
        let (journal, stats) =
            FileJournal::open(options.clone(), &mut |lsn, event| seen.push((lsn, event))).unwrap();
        assert_eq!(
            stats.torn_bytes_cut, 0,
            "a repaired failure leaves nothing to cut"
        );
        drop(journal);
        seen
    }

    #[test]
    fn a_torn_failed_write_is_cut_off_and_the_journal_carries_on() {
        let dir = tempfile::tempdir().unwrap();
        let options = JournalOptions::new(dir.path());
        let (journal, _) = FileJournal::open(options.clone(), &mut |_, _| {}).unwrap();
        assert_eq!(append_and_wait(&journal, vec![testing::event(1)]), Ok(1));

        journal
            .shared
            .inject_write_failures
            .store(1, Ordering::Relaxed);
        let failed = append_and_wait(&journal, vec![testing::event(2), testing::event(3)]);
        assert!(
            matches!(failed, Err(JournalError::Storage(ref m)) if m.contains("injected write failure")),
            "{failed:?}"
        );
        assert_eq!(journal.stats().storage_failures, 1);

        // The next append continues at LSN 2, right after the last good one.
        assert_eq!(append_and_wait(&journal, vec![testing::event(4)]), Ok(2));
        drop(journal);
        assert_eq!(
            replay(&options),
            vec![(1, testing::event(1)), (2, testing::event(4))]
        );
    }

    #[test]
    fn a_failed_fsync_fails_the_batch_and_none_of_it_is_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let options = JournalOptions::new(dir.path());
        let (journal, _) = FileJournal::open(options.clone(), &mut |_, _| {}).unwrap();
        journal
            .shared
            .inject_sync_failures
            .store(1, Ordering::Relaxed);
        assert!(matches!(
            append_and_wait(&journal, vec![testing::event(1)]),
            Err(JournalError::Storage(_))
        ));
        assert_eq!(append_and_wait(&journal, vec![testing::event(5)]), Ok(1));
        drop(journal);
        assert_eq!(replay(&options), vec![(1, testing::event(5))]);
    }

    #[test]
    fn while_a_failed_batch_cannot_be_cut_appends_fail_then_the_journal_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let options = JournalOptions::new(dir.path());
        let (journal, _) = FileJournal::open(options.clone(), &mut |_, _| {}).unwrap();
        assert_eq!(append_and_wait(&journal, vec![testing::event(1)]), Ok(1));

        journal
            .shared
            .inject_write_failures
            .store(1, Ordering::Relaxed);
        journal
            .shared
            .inject_cut_failures
            .store(2, Ordering::Relaxed);
        assert!(append_and_wait(&journal, vec![testing::event(2)]).is_err());
        assert!(!journal.stats().accepting);
        // The retry of the cut fails once more: this append fails as well.
        let failed = append_and_wait(&journal, vec![testing::event(3)]);
        let Err(JournalError::Storage(message)) = failed else {
            panic!("{failed:?}")
        };
        assert!(message.contains("injected write failure"), "{message}");
        assert!(message.contains("injected truncate failure"), "{message}");
        assert_eq!(
            message.matches("cutting").count(),
            1,
            "retries do not nest: {message}"
        );
        // The next retry succeeds; the journal carries on after LSN 1.
        assert_eq!(append_and_wait(&journal, vec![testing::event(4)]), Ok(2));
        assert!(journal.stats().accepting);
        drop(journal);
        assert_eq!(
            replay(&options),
            vec![(1, testing::event(1)), (2, testing::event(4))]
        );
    }

    #[test]
    fn a_failed_batch_left_uncut_at_shutdown_is_cut_by_replay_when_torn() {
        let dir = tempfile::tempdir().unwrap();
        let options = JournalOptions::new(dir.path());
        let (journal, _) = FileJournal::open(options.clone(), &mut |_, _| {}).unwrap();
        assert_eq!(append_and_wait(&journal, vec![testing::event(1)]), Ok(1));
        journal
            .shared
            .inject_write_failures
            .store(1, Ordering::Relaxed);
        journal
            .shared
            .inject_cut_failures
            .store(u32::MAX, Ordering::Relaxed);
        assert!(append_and_wait(&journal, vec![testing::event(2)]).is_err());
        drop(journal);

        let mut seen = vec![];
        let (journal, stats) =
            FileJournal::open(options, &mut |lsn, event| seen.push((lsn, event))).unwrap();
        assert!(stats.torn_bytes_cut > 0);
        assert_eq!(seen, vec![(1, testing::event(1))]);
        assert_eq!(append_and_wait(&journal, vec![testing::event(3)]), Ok(2));
    }

    #[test]
    fn a_panicking_callback_does_not_stop_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let mut options = JournalOptions::new(dir.path());
        options.fsync = FsyncPolicy::Never;
        let (journal, _) = FileJournal::open(options, &mut |_, _| {}).unwrap();
        journal
            .append(
                vec![testing::event(1)],
                Some(Box::new(|_| panic!("callback bug"))),
            )
            .unwrap();
        assert_eq!(append_and_wait(&journal, vec![testing::event(2)]), Ok(2));
    }

    #[test]
    fn only_batches_someone_waits_on_are_synced() {
        let dir = tempfile::tempdir().unwrap();
        let options = JournalOptions::new(dir.path());
        assert_eq!(options.fsync, FsyncPolicy::Always);
        let (journal, _) = FileJournal::open(options.clone(), &mut |_, _| {}).unwrap();
        // Fire-and-forget appends: written, never synced.
        for i in 1..=50 {
            journal.append(vec![testing::event(i)], None).unwrap();
        }
        // Wait (bounded) until they are written, so they are in batches
        // of their own.
        for _ in 0..1_000 {
            if journal.stats().last_lsn == 50 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(journal.stats().last_lsn, 50);
        assert_eq!(journal.stats().fsyncs, 0);
        // An awaited append is synced, and with it everything before it.
        assert_eq!(append_and_wait(&journal, vec![testing::event(51)]), Ok(51));
        let stats = journal.stats();
        assert_eq!(stats.last_lsn, 51);
        assert_eq!(
            stats.fsyncs, 1,
            "one fdatasync, for the batch with the awaited append: {stats:?}"
        );
        // Trailing fire-and-forget appends are synced at shutdown.
        journal.append(vec![testing::event(52)], None).unwrap();
        drop(journal);
        let mut seen = 0;
        FileJournal::open(options, &mut |_, _| seen += 1).unwrap();
        assert_eq!(seen, 52);
    }
}
