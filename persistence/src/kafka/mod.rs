//! The Kafka journal backend: [`KafkaJournal`] implements the engine's
//! [`Journal`] on a Kafka topic, for deployments where the journal must
//! outlive the machine that runs the engine.
//!
//! ```no_run
//! use leadex_engine::Journal;
//! use leadex_persistence::kafka::{KafkaJournal, KafkaOptions};
//! use leadex_persistence::testing;
//!
//! let options = KafkaOptions::new("127.0.0.1:9092");
//! // Blocking: run it on a blocking thread. Replays the whole topic.
//! let (journal, replay) = KafkaJournal::open(options, None, &mut |_offset, _event| {}).unwrap();
//! println!("replayed {} events", replay.events);
//!
//! let (tx, rx) = std::sync::mpsc::channel();
//! journal
//!     .append(vec![testing::lead_sold(1)], Some(Box::new(move |result| tx.send(result).unwrap())))
//!     .unwrap();
//! let offset = rx.recv().unwrap().unwrap(); // stored under acks=all
//! println!("sale stored at offset {offset}");
//! journal.shutdown();
//! ```
//!
//! ## Records
//!
//! One event is one record of the topic ([`KafkaOptions::topic`], created
//! by [`KafkaJournal::open`] with [`KafkaOptions::partitions`] partitions,
//! `retention.ms=-1` and `cleanup.policy=delete`: nothing is ever deleted
//! or compacted away).
//!
//! - **Value**: the event format version
//!   ([`leadex_engine::event::EVENT_FORMAT_VERSION`], 2 bytes little-endian)
//!   followed by the [postcard] encoding of the [`Event`], at most
//!   [`crate::format::RECORD_BODY_BYTES_MAX`] bytes: the body of a file
//!   journal record. A version this build does not know refuses the start.
//! - **Key**: the ping id (`p_…`) for a `PingIssued` and for a `LeadSold`
//!   made under a ping, the lead id (`l_…`) for a direct-post `LeadSold`.
//!   A ping and its sale therefore share a partition and keep their order.
//!   Admin records (`Event::Admin`) all have the key `admin`: one partition,
//!   one total order.
//! - **Partition**: CRC-32 of the key modulo the partition count (the
//!   function of librdkafka's `consistent` partitioner), computed by the
//!   journal so it knows the partition of a record when it queues it.
//! - **Header `leadex-event-id`**: the event's own id, the ping id of a
//!   `PingIssued`, the lead id of a `LeadSold`, the record id of an admin
//!   record. Reconciliation looks for it.
//! - **Marker records** (key and header `leadex-marker`, the header naming
//!   the producer generation, no value) are written by reconciliation and
//!   skipped by every reader.
//!
//! The LSN handed to callbacks and to replay visitors is the record's
//! offset in its partition: ordered within a partition, not across them.
//! [`JournalPosition::Kafka`] holds one next offset per partition.
//!
//! One append with several events becomes several records; if their keys
//! differ they may land on different partitions and their relative order
//! is not kept. A multi-event append is not atomic either: the callback
//! follows the last record only, and if librdkafka refuses a later record
//! the callback is called with [`JournalError::Storage`] although the
//! earlier ones are queued. The engine appends one event per call.
//!
//! ## Producing and the durability point
//!
//! The producer is idempotent (`enable.idempotence=true`, `acks=all`, at
//! most 5 requests in flight per connection), so retries inside librdkafka
//! neither duplicate nor reorder records. [`Journal::append`] never blocks:
//! librdkafka's full queue answers [`JournalError::QueueFull`], a shut-down
//! journal [`JournalError::Closed`], and while the journal is not healthy
//! (below) an append *with* a callback answers
//! [`JournalError::Unavailable`] (fire-and-forget appends are still queued
//! while the queue has room). A callback is called with `Ok(offset)` only
//! when the delivery report says the record is stored on every in-sync
//! replica.
//!
//! **Health** ([`KafkaJournal::stats`], [`KafkaJournal::is_healthy`]) is
//! lost when librdkafka reports all brokers down, when records have been in
//! flight for more than [`KafkaOptions::unavailable_after_ms`] with no
//! delivery since (a stalled broker keeps its connections open, and
//! librdkafka may take tens of seconds to report anything), when an append
//! is in doubt, or when a failed producer awaits its replacement. It comes
//! back with a successful delivery or metadata fetch and nothing in doubt.
//! Each check is a few relaxed atomic loads, cheap enough for every append.
//!
//! ## In doubt, and reconciliation
//!
//! A failed delivery report (a timeout during an outage, a purge, anything)
//! does not say whether the broker stored the record: the request may have
//! been written and its answer lost. Such a record is never resent and
//! never declared failed. Its callback is *parked* with the record's event
//! id, its partition and the partition's offset after the last record known
//! stored when it was queued, and the journal turns unhealthy. A
//! reconciler thread then, once a metadata request is answered again:
//!
//! 1. replaces the producer: appends go to a new idempotent producer; the
//!    old one is flushed briefly, then its queue and in-flight requests are
//!    purged (their callbacks are parked too) and it is dropped, so nothing
//!    of it is ever sent again (this also gets rid of a producer the broker
//!    forgot, which fails forever with `UnknownProducerId`);
//! 2. waits [`RECONCILE_SETTLE_MS`] for requests still buffered on the old
//!    connections to be handled, then produces one marker to every
//!    partition with the new producer and waits for their offsets;
//! 3. reads each partition with parked callbacks from the lowest remembered
//!    offset up to its marker and collects the `leadex-event-id` headers;
//! 4. calls each parked callback with `Ok(offset)` if its event id was
//!    found, else with [`JournalError::Storage`] ("not stored").
//!
//! Every step is bounded in time; if one fails, the whole round is retried
//! later (with back-off) and the callbacks stay parked. Fire-and-forget
//! records whose delivery failed are counted and logged; a replay finds
//! them if they were stored. [`KafkaJournal::shutdown`] calls what is still
//! in doubt with [`JournalError::Closed`] and a loud warning: such a record
//! may be stored, and the next start's replay decides.
//!
//! **What this guarantees**: every callback is called exactly once;
//! `Ok(offset)` means the record is in the topic at that offset; `Err`
//! after a reconciliation means the record was not in its partition before
//! the marker, and since every request of the old producer was sent before
//! the marker was produced, it will not appear later. **The one gap**: a
//! produce request still buffered on a connection the old producer had
//! (for example in the kernel buffers of a stopped broker) that the broker
//! reads only *after* it stored the marker would be stored after a "not
//! stored" answer. The settle delay and the round trips before the marker
//! (a metadata request, producer id initialisation, the produce) make that
//! unlikely, not impossible; closing it needs fencing by the broker
//! (a transactional producer with a fixed `transactional.id`).
//!
//! Only one journal may write a topic at a time.
//!
//! ## Reading
//!
//! Replay ([`KafkaJournal::open`]) and [`read_range`] read partition after
//! partition with `assign()` (no consumer group is joined: groups join
//! slowly on some brokers), `isolation.level=read_committed`, no offset
//! commits, and `auto.offset.reset=error`: a record that cannot be read or
//! decoded refuses the start rather than being skipped.
//!
//! The end of a partition ([`KafkaJournal::position`], and where replay
//! stops) is not taken from the broker's ListOffsets answer alone: Tansu
//! 0.6 answers the base offset of the partition's last batch plus one,
//! short of the end whenever that batch holds several records. The answer
//! is used as a lower bound and the partition is read from just below it
//! to its end (one batch at most).

mod client;
mod codec;
mod journal;
mod reader;
mod reconcile;
mod state;

pub use journal::KafkaJournal;
pub use reader::read_range;
pub use reconcile::RECONCILE_SETTLE_MS;

use crate::error::PersistenceError;

// For the documentation's links only.
#[cfg(doc)]
use leadex_engine::{Event, Journal, JournalError, JournalPosition};

/// The `backend` of every [`PersistenceError::Backend`] this module returns.
pub(crate) const BACKEND: &str = "kafka";

/// A [`PersistenceError::Backend`] for Kafka.
pub(crate) fn backend_error(action: impl Into<String>, message: impl ToString) -> PersistenceError {
    PersistenceError::Backend {
        backend: BACKEND,
        action: action.into(),
        message: message.to_string(),
    }
}

/// librdkafka settings the journal sets itself; [`KafkaOptions::extra`] may
/// not override them, since the guarantees above depend on them.
pub const MANAGED_SETTINGS: &[&str] = &[
    "bootstrap.servers",
    "metadata.broker.list",
    "enable.idempotence",
    "acks",
    "request.required.acks",
    "message.timeout.ms",
    "delivery.timeout.ms",
    "queue.buffering.max.messages",
    "linger.ms",
    "queue.buffering.max.ms",
    "max.in.flight.requests.per.connection",
    "max.in.flight",
    "enable.auto.commit",
    "isolation.level",
    "auto.offset.reset",
    "enable.partition.eof",
    "allow.auto.create.topics",
    "transactional.id",
    "partitioner",
];

/// How to reach and use the Kafka topic of a [`KafkaJournal`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaOptions {
    /// Bootstrap brokers, `host:port[,host:port…]`.
    pub brokers: String,
    /// Topic holding the journal. Default `leadex.events`.
    pub topic: String,
    /// Partitions of the topic, used when creating it and checked against
    /// an existing one (a changed count would send a ping's later events to
    /// another partition and break their order). Default 1.
    pub partitions: i32,
    /// Replication factor used when creating the topic. Default 1; use 3 on
    /// a real cluster.
    pub replication_factor: i32,
    /// librdkafka `message.timeout.ms`: how long a record may wait for its
    /// delivery before it is reported failed (and its append is in doubt).
    /// Default 10,000.
    pub message_timeout_ms: u64,
    /// Records in flight for longer than this with no delivery since make
    /// the journal unhealthy. Default 2,000.
    pub unavailable_after_ms: u64,
    /// librdkafka `queue.buffering.max.messages`: records queued or in
    /// flight before appends answer `QueueFull`. Default 100,000.
    pub queue_capacity: usize,
    /// librdkafka `linger.ms`: how long a record may wait for others to
    /// share its request. Default 1.
    pub linger_ms: u64,
    /// Further librdkafka settings for every client (producer, readers,
    /// admin), applied last: e.g. `security.protocol`, `sasl.mechanism`,
    /// `sasl.username`, `ssl.ca.location`, or `group.id` where ACLs want a
    /// particular one (readers never join the group nor commit to it). May
    /// not name one of [`MANAGED_SETTINGS`].
    pub extra: Vec<(String, String)>,
}

impl KafkaOptions {
    /// Largest accepted `partitions`.
    pub const PARTITIONS_MAX: i32 = 10_000;
    /// Largest accepted `queue_capacity` (librdkafka allows more; a bound
    /// keeps memory sane).
    pub const QUEUE_CAPACITY_MAX: usize = 10_000_000;
    /// Largest accepted `linger_ms` (librdkafka's own limit).
    pub const LINGER_MS_MAX: u64 = 900_000;
    /// Largest accepted `message_timeout_ms` (librdkafka's own limit).
    pub const MESSAGE_TIMEOUT_MS_MAX: u64 = i32::MAX as u64;
    /// Longest accepted topic name (Kafka's limit).
    pub const TOPIC_BYTES_MAX: usize = 249;

    /// The defaults for `brokers`.
    pub fn new(brokers: impl Into<String>) -> KafkaOptions {
        KafkaOptions {
            brokers: brokers.into(),
            topic: "leadex.events".into(),
            partitions: 1,
            replication_factor: 1,
            message_timeout_ms: 10_000,
            unavailable_after_ms: 2_000,
            queue_capacity: 100_000,
            linger_ms: 1,
            extra: Vec::new(),
        }
    }

    /// Checks the bounds; [`KafkaJournal::open`] and [`read_range`] call it.
    pub fn validate(&self) -> Result<(), PersistenceError> {
        let invalid = |reason: String| Err(PersistenceError::InvalidOptions { reason });
        if self.brokers.trim().is_empty() {
            return invalid("kafka brokers is empty".into());
        }
        if self.topic.is_empty()
            || self.topic.len() > Self::TOPIC_BYTES_MAX
            || self.topic == "."
            || self.topic == ".."
            || !self
                .topic
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
        {
            return invalid(format!(
                "kafka topic {:?} is not a valid topic name (1..={} of [a-zA-Z0-9._-])",
                self.topic,
                Self::TOPIC_BYTES_MAX
            ));
        }
        if !(1..=Self::PARTITIONS_MAX).contains(&self.partitions) {
            return invalid(format!(
                "kafka partitions is {}, must be 1..={}",
                self.partitions,
                Self::PARTITIONS_MAX
            ));
        }
        if self.replication_factor < 1 {
            return invalid(format!(
                "kafka replication_factor is {}, must be at least 1",
                self.replication_factor
            ));
        }
        if !(1..=Self::QUEUE_CAPACITY_MAX).contains(&self.queue_capacity) {
            return invalid(format!(
                "kafka queue_capacity is {}, must be 1..={}",
                self.queue_capacity,
                Self::QUEUE_CAPACITY_MAX
            ));
        }
        if self.linger_ms > Self::LINGER_MS_MAX {
            return invalid(format!(
                "kafka linger_ms is {}, must be at most {}",
                self.linger_ms,
                Self::LINGER_MS_MAX
            ));
        }
        if self.message_timeout_ms <= self.linger_ms
            || self.message_timeout_ms > Self::MESSAGE_TIMEOUT_MS_MAX
        {
            return invalid(format!(
                "kafka message_timeout_ms is {}, must exceed linger_ms ({}) and be at most {}",
                self.message_timeout_ms,
                self.linger_ms,
                Self::MESSAGE_TIMEOUT_MS_MAX
            ));
        }
        if self.unavailable_after_ms <= self.linger_ms {
            // A record lingering in the queue is "in flight" for health.
            return invalid(format!(
                "kafka unavailable_after_ms is {}, must exceed linger_ms ({})",
                self.unavailable_after_ms, self.linger_ms
            ));
        }
        for (key, _) in &self.extra {
            if MANAGED_SETTINGS.contains(&key.trim()) {
                return invalid(format!(
                    "kafka extra setting {key:?} is set by the journal itself and may not be overridden"
                ));
            }
        }
        Ok(())
    }
}

/// Figures of a [`KafkaJournal`], for metrics and health checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KafkaStats {
    /// The journal takes appends that need durability (see the module
    /// documentation). False after shutdown.
    pub healthy: bool,
    /// Records queued in librdkafka or in flight, markers included.
    pub in_flight: u64,
    /// Appends whose delivery failed and whose callback awaits
    /// reconciliation.
    pub in_doubt: u64,
    /// Journal records delivered (stored) since open.
    pub delivered: u64,
    /// Journal records whose delivery report was a failure (in doubt, or
    /// fire-and-forget records not known to be stored).
    pub delivery_failures: u64,
    /// Appends in doubt that reconciliation found stored (called `Ok`).
    pub reconciled_stored: u64,
    /// Appends in doubt that reconciliation found absent (called `Err`).
    pub reconciled_absent: u64,
    /// Appends in doubt called with `Closed` at shutdown, unresolved.
    pub unresolved_at_shutdown: u64,
    /// Appends with a callback refused as `Unavailable`.
    pub refused_unavailable: u64,
    /// Producers replaced by reconciliation.
    pub producer_restarts: u64,
    /// Offset of the latest delivered journal record, -1 before the first.
    pub last_delivered_offset: i64,
}

#[cfg(test)]
mod tests;
