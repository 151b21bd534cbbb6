//! What the journal, its producers' delivery reports and the reconciler
//! share: health figures, callbacks waiting for a delivery report, and
//! callbacks parked in doubt.

use super::client::{config, log_to_tracing};
use super::{backend_error, KafkaOptions, KafkaStats};
use crate::error::PersistenceError;
use crossbeam_channel::Sender;
use leadex_engine::journal::{DurableCallback, Lsn};
use leadex_engine::JournalError;
use parking_lot::Mutex;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryResult, ProducerContext, ThreadedProducer};
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// The delivery opaque of a record nobody waits for.
pub(crate) const NO_TICKET: usize = 0;

/// The journal's producer.
pub(crate) type JournalProducer = ThreadedProducer<JournalContext>;

/// Who waits for the delivery report of a record.
pub(crate) enum Waiter {
    /// The last record of an append with a callback.
    Append(Parked),
    /// A reconciliation marker.
    Marker(Sender<MarkerReport>),
}

/// An append's callback and what reconciliation needs to resolve it.
pub(crate) struct Parked {
    /// Called exactly once.
    pub callback: DurableCallback,
    /// The record's `leadex-event-id`.
    pub event_id: String,
    /// The record's partition.
    pub partition: i32,
    /// The partition's offset after the last record known stored when this
    /// one was queued: if it was stored, it is at this offset or later.
    pub scan_from: i64,
    /// Generation of the producer that took the record.
    pub generation: u64,
}

/// A parked callback whose record may or may not be stored.
pub(crate) struct InDoubt {
    /// The callback and where to look.
    pub parked: Parked,
    /// Why it is in doubt, for the logs.
    pub reason: String,
}

/// The delivery report of a marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MarkerReport {
    /// The marker's partition.
    pub partition: i32,
    /// Its offset, or why it failed.
    pub result: Result<i64, String>,
}

/// Why the journal is not healthy (or that it is). Built from a few
/// atomics; only formatting it allocates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Health {
    Healthy,
    Closed,
    InDoubt(u64),
    ProducerFailed,
    BrokersDown,
    Stalled { in_flight: u64, quiet_ms: u64 },
}

impl Health {
    pub(crate) fn is_healthy(self) -> bool {
        self == Health::Healthy
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Health::Healthy => f.write_str("healthy"),
            Health::Closed => f.write_str("the journal is shut down"),
            Health::InDoubt(count) => write!(
                f,
                "{count} appends are in doubt after failed deliveries; awaiting reconciliation"
            ),
            Health::ProducerFailed => {
                f.write_str("the kafka producer failed and awaits its replacement")
            }
            Health::BrokersDown => f.write_str("librdkafka reports all kafka brokers down"),
            Health::Stalled {
                in_flight,
                quiet_ms,
            } => write!(
                f,
                "{in_flight} records in flight and no delivery for {quiet_ms} ms"
            ),
        }
    }
}

/// State shared by the journal, its producers' contexts and the reconciler.
///
/// Every atomic here uses `Relaxed`: each is a figure or flag read on its
/// own (health is a heuristic of a few independent loads, a stale value
/// only shifts a flip by nanoseconds), and none publishes other memory;
/// the callbacks and in-doubt records travel under mutexes.
pub(crate) struct Shared {
    pub topic: String,
    pub partitions: i32,
    unavailable_after_ms: u64,
    /// Origin of the millisecond clock below.
    epoch: Instant,
    /// Set by shutdown before it takes the producer lock's write side;
    /// appends read it under the read side, so the lock orders the two.
    pub closed: AtomicBool,
    /// "All brokers down" reports from librdkafka.
    brokers_down_reports: AtomicU64,
    /// Reports known to be superseded by a later delivery or answered
    /// metadata request. Brokers are down while reports > up_through.
    brokers_up_through: AtomicU64,
    /// Records handed to librdkafka (journal records and markers) and not
    /// yet reported.
    in_flight: AtomicU64,
    /// Milliseconds (since `epoch`) of the last successful delivery, or of
    /// the last time `in_flight` left zero, whichever is later.
    progress_ms: AtomicU64,
    /// Entries of `in_doubt`, readable without the lock.
    in_doubt_count: AtomicU64,
    /// Generation of the producer appends go to (the first is 1).
    producer_generation: AtomicU64,
    /// Highest generation whose producer reported a failure (0: none).
    failed_generation: AtomicU64,
    delivered: AtomicU64,
    delivery_failures: AtomicU64,
    reconciled_stored: AtomicU64,
    reconciled_absent: AtomicU64,
    unresolved_at_shutdown: AtomicU64,
    refused_unavailable: AtomicU64,
    producer_restarts: AtomicU64,
    last_delivered_offset: AtomicI64,
    /// Per partition, the offset after the last record known stored (the
    /// high watermark at open, then raised by every delivery).
    scan_floor: Vec<AtomicI64>,
    next_ticket: AtomicUsize,
    /// Callbacks and markers waiting for their delivery report, by ticket
    /// (the record's delivery opaque).
    waiters: Mutex<HashMap<usize, (u64, Waiter)>>,
    /// Callbacks whose delivery failed, awaiting reconciliation.
    in_doubt: Mutex<Vec<InDoubt>>,
}

impl Shared {
    /// State for a topic whose partitions end at `high_watermarks`.
    pub(crate) fn new(options: &KafkaOptions, high_watermarks: &[i64]) -> Shared {
        Shared {
            topic: options.topic.clone(),
            partitions: options.partitions,
            unavailable_after_ms: options.unavailable_after_ms,
            epoch: Instant::now(),
            closed: AtomicBool::new(false),
            brokers_down_reports: AtomicU64::new(0),
            brokers_up_through: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            progress_ms: AtomicU64::new(0),
            in_doubt_count: AtomicU64::new(0),
            producer_generation: AtomicU64::new(1),
            failed_generation: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            delivery_failures: AtomicU64::new(0),
            reconciled_stored: AtomicU64::new(0),
            reconciled_absent: AtomicU64::new(0),
            unresolved_at_shutdown: AtomicU64::new(0),
            refused_unavailable: AtomicU64::new(0),
            producer_restarts: AtomicU64::new(0),
            last_delivered_offset: AtomicI64::new(-1),
            scan_floor: high_watermarks.iter().map(|&o| AtomicI64::new(o)).collect(),
            next_ticket: AtomicUsize::new(NO_TICKET + 1),
            waiters: Mutex::new(HashMap::new()),
            in_doubt: Mutex::new(Vec::new()),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether appends that need durability are taken, and if not why.
    pub(crate) fn health(&self) -> Health {
        // Relaxed throughout: see the type's documentation.
        if self.closed.load(Ordering::Relaxed) {
            return Health::Closed;
        }
        let in_doubt = self.in_doubt_count.load(Ordering::Relaxed);
        if in_doubt > 0 {
            return Health::InDoubt(in_doubt);
        }
        if self.producer_failed() {
            return Health::ProducerFailed;
        }
        if self.brokers_down() {
            return Health::BrokersDown;
        }
        let in_flight = self.in_flight.load(Ordering::Relaxed);
        if in_flight == 0 {
            return Health::Healthy;
        }
        let quiet_ms = self
            .now_ms()
            .saturating_sub(self.progress_ms.load(Ordering::Relaxed));
        if quiet_ms > self.unavailable_after_ms {
            return Health::Stalled {
                in_flight,
                quiet_ms,
            };
        }
        Health::Healthy
    }

    /// librdkafka reported all brokers down and nothing answered since.
    pub(crate) fn brokers_down(&self) -> bool {
        // Relaxed: see the type's documentation.
        self.brokers_down_reports.load(Ordering::Relaxed)
            > self.brokers_up_through.load(Ordering::Relaxed)
    }

    /// The producer appends go to has reported a failure: reconciliation
    /// must replace it.
    pub(crate) fn producer_failed(&self) -> bool {
        // Relaxed: see the type's documentation.
        self.failed_generation.load(Ordering::Relaxed)
            >= self.producer_generation.load(Ordering::Relaxed)
    }

    /// Reconciliation has work: callbacks in doubt or a failed producer.
    pub(crate) fn needs_reconciliation(&self) -> bool {
        // Relaxed: see the type's documentation.
        self.in_doubt_count.load(Ordering::Relaxed) > 0 || self.producer_failed()
    }

    /// Something answered: every "all brokers down" report `seen` before
    /// the request was sent is superseded.
    pub(crate) fn brokers_answered(&self, seen_reports: u64) {
        // Relaxed: see the type's documentation.
        self.brokers_up_through
            .fetch_max(seen_reports, Ordering::Relaxed);
    }

    /// The "all brokers down" reports so far, to pass to
    /// [`Shared::brokers_answered`] after a request succeeds.
    pub(crate) fn brokers_down_reports(&self) -> u64 {
        // Relaxed: see the type's documentation.
        self.brokers_down_reports.load(Ordering::Relaxed)
    }

    pub(crate) fn producer_generation(&self) -> u64 {
        // Relaxed: written under the producer lock's write side, read under
        // its read side (appends) or by the reconciler that writes it.
        self.producer_generation.load(Ordering::Relaxed)
    }

    /// Called with the producer lock's write side held, as the producer of
    /// `generation` takes over.
    pub(crate) fn set_producer_generation(&self, generation: u64) {
        // Relaxed: see `producer_generation`.
        self.producer_generation
            .store(generation, Ordering::Relaxed);
        self.producer_restarts.fetch_add(1, Ordering::Relaxed);
    }

    /// Where reconciliation must start looking for a record queued now on
    /// `partition`.
    pub(crate) fn scan_from(&self, partition: i32) -> i64 {
        // Relaxed: the floor only rises, and a stale (lower) value only
        // widens the scan. Any value read comes from a delivery reported
        // before this record was queued, so the record lands after it.
        self.scan_floor[partition_index(partition)].load(Ordering::Relaxed)
    }

    /// A record is about to be handed to librdkafka.
    pub(crate) fn note_queued(&self) {
        // Relaxed: see the type's documentation. Leaving zero restarts the
        // stall clock; fetch_max keeps it monotonic under races.
        if self.in_flight.load(Ordering::Relaxed) == 0 {
            self.progress_ms.fetch_max(self.now_ms(), Ordering::Relaxed);
        }
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// librdkafka refused a record announced with `note_queued`, or
    /// `count` records will never be reported.
    pub(crate) fn note_not_in_flight(&self, count: u64) {
        // Relaxed: see the type's documentation.
        self.in_flight.fetch_sub(count, Ordering::Relaxed);
    }

    pub(crate) fn note_refused_unavailable(&self) {
        // Relaxed: a monitoring counter.
        self.refused_unavailable.fetch_add(1, Ordering::Relaxed);
    }

    /// Registers who waits for a record's report; the ticket is the
    /// record's delivery opaque.
    pub(crate) fn register(&self, generation: u64, waiter: Waiter) -> usize {
        // Relaxed: a unique number is all that is needed.
        let mut ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        if ticket == NO_TICKET {
            // After 2^64 tickets; skip the reserved value.
            ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        }
        self.waiters.lock().insert(ticket, (generation, waiter));
        ticket
    }

    /// Takes back a waiter whose record librdkafka refused.
    pub(crate) fn unregister(&self, ticket: usize) -> Option<Waiter> {
        self.waiters
            .lock()
            .remove(&ticket)
            .map(|(_, waiter)| waiter)
    }

    /// A delivery report of the producer of `generation`.
    fn on_report(&self, generation: u64, ticket: usize, result: &DeliveryResult<'_>) {
        let waiter = if ticket == NO_TICKET {
            None
        } else {
            let waiter = self.unregister(ticket);
            if waiter.is_none() {
                tracing::error!(
                    ticket,
                    "kafka delivery report for an unknown ticket; its callback is lost"
                );
            }
            waiter
        };
        match result {
            Ok(message) => self.on_stored(message.partition(), message.offset(), waiter),
            Err((error, message)) => {
                self.on_failed(generation, message.partition(), error, waiter);
            }
        }
    }

    fn on_stored(&self, partition: i32, offset: i64, waiter: Option<Waiter>) {
        // Relaxed throughout: see the type's documentation and `scan_from`.
        if let Some(floor) = self.scan_floor.get(partition_index(partition)) {
            floor.fetch_max(offset + 1, Ordering::Relaxed);
        }
        self.progress_ms.fetch_max(self.now_ms(), Ordering::Relaxed);
        self.brokers_answered(self.brokers_down_reports());
        let (callback, journal_record) = match waiter {
            Some(Waiter::Marker(sender)) => {
                // The reconciler may have given up waiting; then nobody
                // listens and the marker is just a skipped record.
                let _ = sender.try_send(MarkerReport {
                    partition,
                    result: Ok(offset),
                });
                (None, false)
            }
            Some(Waiter::Append(parked)) => (Some(parked.callback), true),
            None => (None, true),
        };
        if journal_record {
            self.delivered.fetch_add(1, Ordering::Relaxed);
            self.last_delivered_offset.store(offset, Ordering::Relaxed);
        }
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        if let Some(callback) = callback {
            // Offsets of stored records are never negative.
            callback(Ok(offset as Lsn));
        }
    }

    fn on_failed(
        &self,
        generation: u64,
        partition: i32,
        error: &KafkaError,
        waiter: Option<Waiter>,
    ) {
        // Relaxed throughout: see the type's documentation. `in_doubt_count`
        // rises before `in_flight` falls, so health never sees neither.
        self.failed_generation
            .fetch_max(generation, Ordering::Relaxed);
        match waiter {
            Some(Waiter::Marker(sender)) => {
                let _ = sender.try_send(MarkerReport {
                    partition,
                    result: Err(error.to_string()),
                });
            }
            Some(Waiter::Append(parked)) => {
                self.delivery_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    event_id = %parked.event_id,
                    partition,
                    %error,
                    "kafka delivery failed; the append is in doubt until reconciliation"
                );
                self.park(InDoubt {
                    parked,
                    reason: error.to_string(),
                });
            }
            None => {
                let failures = self.delivery_failures.fetch_add(1, Ordering::Relaxed) + 1;
                // One line per power of two: an outage fails every queued
                // ping, and the log should not drown.
                if failures.is_power_of_two() {
                    tracing::warn!(
                        partition,
                        %error,
                        failures,
                        "kafka delivery of a fire-and-forget record failed; it may or may not be stored"
                    );
                }
            }
        }
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Parks a callback in doubt.
    pub(crate) fn park(&self, in_doubt: InDoubt) {
        self.in_doubt.lock().push(in_doubt);
        // Relaxed: see the type's documentation.
        self.in_doubt_count.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes the parked callbacks of producers older than `generation`
    /// (those whose every request was sent before a marker of
    /// `generation`). The count stays until each is resolved or given back.
    pub(crate) fn take_in_doubt_before(&self, generation: u64) -> Vec<InDoubt> {
        let mut all = self.in_doubt.lock();
        let (older, newer): (Vec<_>, Vec<_>) = all
            .drain(..)
            .partition(|entry| entry.parked.generation < generation);
        *all = newer;
        older
    }

    /// Gives back entries taken with `take_in_doubt_before` that could not
    /// be resolved.
    pub(crate) fn give_back(&self, entries: Vec<InDoubt>) {
        self.in_doubt.lock().extend(entries);
    }

    /// Takes every parked callback (shutdown).
    pub(crate) fn take_all_in_doubt(&self) -> Vec<InDoubt> {
        std::mem::take(&mut *self.in_doubt.lock())
    }

    /// Calls an in-doubt callback with its outcome. Not under any lock.
    pub(crate) fn resolve(&self, entry: InDoubt, outcome: Resolution) {
        // Relaxed: see the type's documentation.
        let result = match outcome {
            Resolution::Stored(offset) => {
                self.reconciled_stored.fetch_add(1, Ordering::Relaxed);
                Ok(offset as Lsn)
            }
            Resolution::Absent(message) => {
                self.reconciled_absent.fetch_add(1, Ordering::Relaxed);
                Err(JournalError::Storage(message))
            }
            Resolution::Closed => {
                self.unresolved_at_shutdown.fetch_add(1, Ordering::Relaxed);
                Err(JournalError::Closed)
            }
        };
        self.in_doubt_count.fetch_sub(1, Ordering::Relaxed);
        (entry.parked.callback)(result);
    }

    /// After the producer of `context` was dropped: parks the callbacks
    /// whose records it never reported and forgets its unreported records.
    pub(crate) fn park_unreported(&self, context: &JournalContext) {
        // Relaxed: the producer is gone, so these counters no longer move;
        // its polling thread was joined, which orders its last writes.
        let unreported = context
            .sent
            .load(Ordering::Relaxed)
            .saturating_sub(context.reported.load(Ordering::Relaxed));
        let orphans: Vec<Waiter> = {
            let mut waiters = self.waiters.lock();
            let tickets: Vec<usize> = waiters
                .iter()
                .filter(|(_, (generation, _))| *generation == context.generation)
                .map(|(&ticket, _)| ticket)
                .collect();
            tickets
                .into_iter()
                .filter_map(|ticket| waiters.remove(&ticket).map(|(_, waiter)| waiter))
                .collect()
        };
        for waiter in orphans {
            if let Waiter::Append(parked) = waiter {
                self.park(InDoubt {
                    parked,
                    reason: "the producer was dropped before reporting the delivery".into(),
                });
            }
        }
        if unreported > 0 {
            tracing::warn!(
                unreported,
                generation = context.generation,
                "a retired kafka producer never reported some records; they may or may not be stored"
            );
            self.note_not_in_flight(unreported);
        }
    }

    /// The counters as [`KafkaStats`], with `healthy` left false: the
    /// journal fills it in.
    pub(crate) fn counters(&self) -> KafkaStats {
        // Relaxed: monitoring figures.
        KafkaStats {
            healthy: false,
            in_flight: self.in_flight.load(Ordering::Relaxed),
            in_doubt: self.in_doubt_count.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            delivery_failures: self.delivery_failures.load(Ordering::Relaxed),
            reconciled_stored: self.reconciled_stored.load(Ordering::Relaxed),
            reconciled_absent: self.reconciled_absent.load(Ordering::Relaxed),
            unresolved_at_shutdown: self.unresolved_at_shutdown.load(Ordering::Relaxed),
            refused_unavailable: self.refused_unavailable.load(Ordering::Relaxed),
            producer_restarts: self.producer_restarts.load(Ordering::Relaxed),
            last_delivered_offset: self.last_delivered_offset.load(Ordering::Relaxed),
        }
    }
}

/// How reconciliation (or shutdown) resolves an append in doubt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resolution {
    /// Found at this offset.
    Stored(i64),
    /// Not found before the marker; the message is for the callback.
    Absent(String),
    /// Shutdown came first.
    Closed,
}

fn partition_index(partition: i32) -> usize {
    usize::try_from(partition).unwrap_or(usize::MAX)
}

/// The producer context: routes delivery reports to [`Shared`] and watches
/// librdkafka's global errors for "all brokers down" and fatal errors.
pub(crate) struct JournalContext {
    shared: Arc<Shared>,
    /// Which producer this is; failures mark it for replacement.
    pub generation: u64,
    /// Records handed to this producer (journal records and markers).
    pub sent: AtomicU64,
    /// Delivery reports this producer delivered.
    pub reported: AtomicU64,
}

impl JournalContext {
    /// A record is about to be handed to this producer.
    pub(crate) fn note_sent(&self) {
        // Relaxed: compared with `reported` only after the producer is
        // dropped and its thread joined.
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    /// The producer refused a record announced with `note_sent`.
    pub(crate) fn note_unsent(&self) {
        // Relaxed: see `note_sent`.
        self.sent.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ClientContext for JournalContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log_to_tracing(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::AllBrokersDown) => {
                // Relaxed: see `Shared`.
                self.shared
                    .brokers_down_reports
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, reason, "kafka brokers are all down");
            }
            Some(RDKafkaErrorCode::Fatal) => {
                // Relaxed: see `Shared`. A fatal idempotence error makes the
                // producer useless; reconciliation replaces it.
                self.shared
                    .failed_generation
                    .fetch_max(self.generation, Ordering::Relaxed);
                tracing::error!(%error, reason, generation = self.generation, "kafka producer failed fatally");
            }
            _ => tracing::info!(%error, reason, "kafka producer error"),
        }
    }
}

impl ProducerContext for JournalContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, ticket: usize) {
        self.shared.on_report(self.generation, ticket, result);
        // Relaxed: see `note_sent`.
        self.reported.fetch_add(1, Ordering::Relaxed);
    }
}

/// Creates the producer of `generation`.
pub(crate) fn create_producer(
    options: &KafkaOptions,
    shared: Arc<Shared>,
    generation: u64,
) -> Result<JournalProducer, PersistenceError> {
    let message_timeout_ms = options.message_timeout_ms.to_string();
    let queue_capacity = options.queue_capacity.to_string();
    let linger_ms = options.linger_ms.to_string();
    let config = config(
        options,
        &[
            ("client.id", "leadex-journal"),
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("max.in.flight.requests.per.connection", "5"),
            ("message.timeout.ms", &message_timeout_ms),
            ("queue.buffering.max.messages", &queue_capacity),
            ("linger.ms", &linger_ms),
        ],
    );
    let context = JournalContext {
        shared,
        generation,
        sent: AtomicU64::new(0),
        reported: AtomicU64::new(0),
    };
    config
        .create_with_context(context)
        .map_err(|error| backend_error(format!("creating producer {generation}"), error))
}
