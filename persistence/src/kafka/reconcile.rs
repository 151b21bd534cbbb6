//! The reconciler: replaces a failed producer and resolves appends in
//! doubt by reading the topic up to a marker. The procedure and its
//! guarantee are in the module documentation.

use super::client;
use super::codec::MARKER_HEADER;
use super::journal::Inner;
use super::reader;
use super::state::{self, InDoubt, JournalProducer, MarkerReport, Resolution, Waiter};
use crate::error::PersistenceError;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, PurgeConfig};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

/// After brokers answer again, how long reconciliation waits before it
/// produces its markers, so that requests still buffered on the old
/// producer's connections are handled first. Milliseconds.
pub const RECONCILE_SETTLE_MS: u64 = 500;

/// How often the reconciler looks at the journal's state.
const TICK: Duration = Duration::from_millis(100);
/// Bound on the metadata request that tells whether brokers answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// While brokers are reported down, how often they are probed.
const PROBE_INTERVAL: Duration = Duration::from_millis(250);
/// How long a retired producer may go on delivering before it is purged.
const RETIRE_GRACE: Duration = Duration::from_secs(2);
/// How long a purged producer may take to report its purged records.
const PURGE_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the markers may take to be stored.
const MARKER_TIMEOUT: Duration = Duration::from_secs(10);
/// Back-off between failed rounds: doubles from the first to the second.
const RETRY_BACKOFF_MIN: Duration = Duration::from_millis(200);
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Slices in which the long waits of a round check for shutdown.
const WAIT_SLICE: Duration = Duration::from_millis(50);

/// The reconciler thread: every [`TICK`] until the stop channel
/// disconnects, probes brokers reported down and runs a reconciliation
/// round when there is work, with back-off after failures.
pub(crate) fn run(inner: &Inner, stop: &Receiver<()>) {
    let stopping = || !matches!(stop.try_recv(), Err(crossbeam_channel::TryRecvError::Empty));
    let mut backoff = RETRY_BACKOFF_MIN;
    let mut next_round = Instant::now();
    let mut next_probe = Instant::now();
    // Bounded by the stop signal; every turn is bounded in time.
    loop {
        match stop.recv_timeout(TICK) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let shared = &inner.shared;
        let now = Instant::now();
        if shared.needs_reconciliation() {
            if now < next_round {
                continue;
            }
            match inner.reconcile_round(&stopping) {
                Ok(()) => backoff = RETRY_BACKOFF_MIN,
                Err(error) => {
                    tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, "kafka reconciliation round failed; retrying");
                    next_round = Instant::now() + backoff;
                    backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
                }
            }
        } else if shared.brokers_down() && now >= next_probe {
            next_probe = now + PROBE_INTERVAL;
            if inner.probe().is_ok() {
                tracing::info!("kafka brokers answer again");
            }
        }
    }
}

impl Inner {
    /// Asks the brokers for the topic's metadata; success clears every
    /// earlier "all brokers down" report.
    pub(crate) fn probe(&self) -> Result<(), PersistenceError> {
        let seen = self.shared.brokers_down_reports();
        client::helper_client(&self.helper)
            .fetch_metadata(Some(&self.options.topic), PROBE_TIMEOUT)
            .map_err(|error| super::backend_error("probing the brokers", error))?;
        self.shared.brokers_answered(seen);
        Ok(())
    }

    /// One reconciliation round: replace the producer if it failed (or
    /// there is none), then resolve the appends in doubt of older
    /// producers. `stopping` aborts the round between and within steps.
    /// On error the appends stay in doubt.
    pub(crate) fn reconcile_round(
        &self,
        stopping: &dyn Fn() -> bool,
    ) -> Result<(), PersistenceError> {
        let shared = &self.shared;
        self.probe()?;
        let replace = shared.producer_failed() || self.producer.read().is_none();
        if replace {
            let generation = shared.producer_generation() + 1;
            let new = state::create_producer(&self.options, shared.clone(), generation)?;
            let old = {
                let mut slot = self.producer.write();
                shared.set_producer_generation(generation);
                slot.replace(new)
            };
            tracing::info!(generation, "kafka journal replaced its producer");
            if let Some(old) = old {
                self.retire(old, RETIRE_GRACE);
            }
        }
        let generation = shared.producer_generation();
        let entries = shared.take_in_doubt_before(generation);
        if entries.is_empty() {
            return Ok(());
        }
        match self.find_stored(&entries, generation, stopping) {
            Ok(found) => {
                let (mut stored, mut absent) = (0u64, 0u64);
                for entry in entries {
                    let key = (entry.parked.partition, entry.parked.event_id.clone());
                    let resolution = match found.stored.get(&key) {
                        Some(&offset) => {
                            stored += 1;
                            Resolution::Stored(offset)
                        }
                        None => {
                            absent += 1;
                            let range = found.ranges.get(&entry.parked.partition).copied();
                            Resolution::Absent(format!(
                                "kafka record of {} was not stored (delivery failed: {}; not in \
                                 partition {} offsets {:?} before the reconciliation marker)",
                                entry.parked.event_id,
                                entry.reason,
                                entry.parked.partition,
                                range.map(|(from, to)| from..to),
                            ))
                        }
                    };
                    shared.resolve(entry, resolution);
                }
                tracing::info!(stored, absent, "kafka journal reconciled appends in doubt");
                Ok(())
            }
            Err(error) => {
                shared.give_back(entries);
                Err(error)
            }
        }
    }

    /// Lets `old` deliver for up to `grace`, purges its queue and its
    /// requests in flight (their callbacks are parked in doubt), and drops
    /// it, so that nothing of it is ever sent again.
    pub(crate) fn retire(&self, old: JournalProducer, grace: Duration) {
        let context = old.context().clone();
        if !grace.is_zero() {
            // Records still in flight may complete normally now that the
            // brokers answer; a timeout only means some get purged.
            let _ = old.flush(grace);
        }
        old.purge(PurgeConfig::default().queue().inflight());
        if let Err(error) = old.flush(PURGE_FLUSH_TIMEOUT) {
            tracing::warn!(%error, generation = context.generation, "a purged kafka producer did not report every record");
        }
        // Joins its polling thread; librdkafka is destroyed.
        drop(old);
        self.shared.park_unreported(&context);
    }

    /// Produces the markers and reads, on every partition with appends in
    /// doubt, from the lowest remembered offset to the marker.
    fn find_stored(
        &self,
        entries: &[InDoubt],
        generation: u64,
        stopping: &dyn Fn() -> bool,
    ) -> Result<Found, PersistenceError> {
        let aborted = || super::backend_error("reconciling", "the journal is shutting down");
        let settle_until = Instant::now() + Duration::from_millis(RECONCILE_SETTLE_MS);
        // Bounded by RECONCILE_SETTLE_MS.
        while Instant::now() < settle_until {
            if stopping() {
                return Err(aborted());
            }
            std::thread::sleep(
                WAIT_SLICE.min(settle_until.saturating_duration_since(Instant::now())),
            );
        }
        let markers = self.produce_markers(generation, stopping)?;
        let mut wanted: BTreeMap<i32, (i64, HashSet<&str>)> = BTreeMap::new();
        for entry in entries {
            let (from, ids) = wanted
                .entry(entry.parked.partition)
                .or_insert((entry.parked.scan_from, HashSet::new()));
            *from = (*from).min(entry.parked.scan_from);
            ids.insert(entry.parked.event_id.as_str());
        }
        let consumer = client::reader(&self.options)?;
        let mut found = Found::default();
        for (&partition, (from, ids)) in &wanted {
            if stopping() {
                return Err(aborted());
            }
            let to = markers[partition_index(partition)];
            let from = (*from).min(to);
            found.ranges.insert(partition, (from, to));
            reader::read_partition(
                &consumer,
                &self.options.topic,
                partition,
                from,
                to,
                &mut |message| {
                    if let Some(id) = reader::event_id(message) {
                        if ids.contains(id) {
                            found
                                .stored
                                .entry((partition, id.to_owned()))
                                .or_insert(message.offset());
                        }
                    }
                    Ok(())
                },
            )?;
        }
        Ok(found)
    }

    /// Produces one marker to every partition with the current producer
    /// (of `generation`) and returns their offsets, by partition.
    fn produce_markers(
        &self,
        generation: u64,
        stopping: &dyn Fn() -> bool,
    ) -> Result<Vec<i64>, PersistenceError> {
        let shared = &self.shared;
        let partitions = self.options.partitions;
        let failed =
            |message: String| super::backend_error("producing reconciliation markers", message);
        let (sender, reports) =
            crossbeam_channel::bounded::<MarkerReport>(partition_index(partitions));
        {
            let guard = self.producer.read();
            let producer = guard.as_ref().ok_or_else(|| failed("no producer".into()))?;
            let context = producer.context();
            if context.generation != generation {
                return Err(failed("the producer was replaced meanwhile".into()));
            }
            let marker_value = format!("generation {generation}");
            for partition in 0..partitions {
                let ticket = shared.register(generation, Waiter::Marker(sender.clone()));
                let headers = OwnedHeaders::new_with_capacity(1).insert(Header {
                    key: MARKER_HEADER,
                    value: Some(marker_value.as_bytes()),
                });
                shared.note_queued();
                context.note_sent();
                let sent = producer.send::<str, [u8]>(
                    BaseRecord::with_opaque_to(&shared.topic, ticket)
                        .partition(partition)
                        .key(MARKER_HEADER)
                        .headers(headers),
                );
                if let Err((error, _)) = sent {
                    shared.note_not_in_flight(1);
                    context.note_unsent();
                    drop(shared.unregister(ticket));
                    return Err(failed(format!("partition {partition}: {error}")));
                }
            }
        }
        drop(sender);
        let mut offsets = vec![-1i64; partition_index(partitions)];
        let mut missing = partitions;
        let deadline = Instant::now() + MARKER_TIMEOUT;
        // Bounded by MARKER_TIMEOUT and by one report per partition.
        while missing > 0 {
            if stopping() {
                return Err(failed("the journal is shutting down".into()));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(failed(format!(
                    "{missing} of {partitions} markers not stored within {} s",
                    MARKER_TIMEOUT.as_secs()
                )));
            }
            match reports.recv_timeout(WAIT_SLICE.min(deadline - now)) {
                Ok(MarkerReport {
                    partition,
                    result: Ok(offset),
                }) => {
                    let slot = &mut offsets[partition_index(partition)];
                    if *slot < 0 {
                        *slot = offset;
                        missing -= 1;
                    }
                }
                Ok(MarkerReport {
                    partition,
                    result: Err(error),
                }) => return Err(failed(format!("partition {partition}: {error}"))),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(failed("marker reports were lost".into()));
                }
            }
        }
        Ok(offsets)
    }
}

/// What a round found.
#[derive(Default)]
struct Found {
    /// (partition, event id) → offset of the record.
    stored: HashMap<(i32, String), i64>,
    /// The offsets read, by partition.
    ranges: BTreeMap<i32, (i64, i64)>,
}

fn partition_index(partition: i32) -> usize {
    usize::try_from(partition).unwrap_or(0)
}
