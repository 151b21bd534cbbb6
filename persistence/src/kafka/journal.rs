//! [`KafkaJournal`]: open (topic, replay), append, health, position,
//! shutdown.

use super::client::{self, HelperClient};
use super::codec::{self, EVENT_ID_HEADER};
use super::reader;
use super::reconcile;
use super::state::{self, JournalProducer, Parked, Resolution, Shared, Waiter, NO_TICKET};
use super::{backend_error, KafkaOptions, KafkaStats};
use crate::error::PersistenceError;
use crossbeam_channel::Sender;
use leadex_engine::journal::{DurableCallback, Lsn, ReplayStats};
use leadex_engine::{Event, Journal, JournalError, JournalPosition};
use parking_lot::{Mutex, RwLock};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How long shutdown waits for queued records to be delivered.
const SHUTDOWN_FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// The Kafka journal. See the [module documentation](super).
pub struct KafkaJournal {
    inner: Arc<Inner>,
    /// Dropping it tells the reconciler to stop.
    stop: Mutex<Option<Sender<()>>>,
    reconciler: Mutex<Option<JoinHandle<()>>>,
    shutdown_started: AtomicBool,
}

/// What the journal and its reconciler thread share.
pub(crate) struct Inner {
    pub options: KafkaOptions,
    pub shared: Arc<Shared>,
    /// The producer appends go to; `None` once shut down. Appends hold the
    /// read side for a non-blocking `send`; the reconciler takes the write
    /// side only to swap producers, shutdown to wait out appends in
    /// progress.
    pub producer: RwLock<Option<JournalProducer>>,
    /// Answers the reconciler's metadata probes.
    pub helper: HelperClient,
}

impl KafkaJournal {
    /// Opens the journal on `options.topic`: creates the topic if missing,
    /// checks its partition count, replays every record from `from` (`None`:
    /// from offset 0 of every partition) up to the end of each partition as
    /// found now (see [`KafkaJournal::position`]), calling `visit(offset, event)` in offset order per partition
    /// (partition after partition), then starts the producer and the
    /// reconciler thread.
    ///
    /// Blocking (network round trips, the whole replay): call it from a
    /// blocking thread. `visit` may have seen some events when an error is
    /// returned; the caller should then not start.
    pub fn open(
        options: KafkaOptions,
        from: Option<&JournalPosition>,
        visit: &mut dyn FnMut(Lsn, Event),
    ) -> Result<(KafkaJournal, ReplayStats), PersistenceError> {
        options.validate()?;
        client::ensure_topic(&options)?;
        let helper = client::helper(&options)?;
        let high = reader::end_offsets(&options)?;
        let start = start_offsets(&options, from, &high)?;
        let replay = reader::read_offsets(&options, &start, &high, visit)?;
        let shared = Arc::new(Shared::new(&options, &high));
        let producer = state::create_producer(&options, shared.clone(), 1)?;
        let inner = Arc::new(Inner {
            options,
            shared,
            producer: RwLock::new(Some(producer)),
            helper,
        });
        // Nothing is ever sent: dropping the sender is the stop signal.
        let (stop, stopped) = crossbeam_channel::bounded::<()>(1);
        let handle = std::thread::Builder::new()
            .name("leadex-kafka-reconciler".into())
            .spawn({
                let inner = inner.clone();
                move || reconcile::run(&inner, &stopped)
            })
            .map_err(|error| backend_error("starting the reconciler thread", error))?;
        tracing::info!(
            brokers = %inner.options.brokers,
            topic = %inner.options.topic,
            partitions = inner.options.partitions,
            replayed_events = replay.events,
            from = ?start,
            high_watermarks = ?high,
            "kafka journal opened"
        );
        let journal = KafkaJournal {
            inner,
            stop: Mutex::new(Some(stop)),
            reconciler: Mutex::new(Some(handle)),
            shutdown_started: AtomicBool::new(false),
        };
        Ok((journal, replay))
    }

    /// The high watermark (next offset to be written) of every partition:
    /// what a snapshot taken now may claim to cover once every record
    /// before it is applied. Blocking: a listed-offsets request and a short
    /// read per partition (see the module documentation), each bounded to
    /// about 10 s.
    pub fn position(&self) -> Result<JournalPosition, PersistenceError> {
        let next_offsets = reader::end_offsets(&self.inner.options)?;
        Ok(JournalPosition::Kafka { next_offsets })
    }

    /// True when appends that need durability are taken (see the module
    /// documentation). A few relaxed atomic loads.
    pub fn is_healthy(&self) -> bool {
        self.inner.shared.health().is_healthy()
    }

    /// Current figures. Cheap: relaxed atomic loads.
    pub fn stats(&self) -> KafkaStats {
        KafkaStats {
            healthy: self.is_healthy(),
            ..self.inner.shared.counters()
        }
    }

    /// The options the journal was opened with.
    pub fn options(&self) -> &KafkaOptions {
        &self.inner.options
    }

    /// Stops taking appends (they answer `Closed`), stops the reconciler,
    /// waits up to 10 s for queued records to be delivered, purges what is
    /// left, tries one last reconciliation of the appends in doubt, and
    /// calls every callback still unresolved with [`JournalError::Closed`]
    /// and a loud warning: such a record may be stored, and the next
    /// start's replay decides. Every callback has been called when it
    /// returns. Idempotent (later calls return at once); `Drop` calls it.
    ///
    /// Must not be called from a durable callback: callbacks run on the
    /// producer's polling thread, which shutdown waits for.
    pub fn shutdown(&self) {
        // Relaxed: only the first caller does the work, and it needs no
        // other memory from a previous caller.
        if self.shutdown_started.swap(true, Ordering::Relaxed) {
            return;
        }
        let shared = &self.inner.shared;
        // Relaxed: the write lock below orders it before every later
        // append's read lock, and waits for appends in progress.
        shared.closed.store(true, Ordering::Relaxed);
        drop(self.inner.producer.write());

        drop(self.stop.lock().take());
        if let Some(handle) = self.reconciler.lock().take() {
            if handle.thread().id() == std::thread::current().id() {
                // Called from a callback the reconciler runs: it stops
                // after this callback returns (its stop signal is sent).
                tracing::warn!("kafka journal shut down from its reconciler thread");
            } else if handle.join().is_err() {
                tracing::error!("kafka journal reconciler thread panicked");
            }
        }

        // Out of the lock, so that callbacks run by the flush may append
        // (and be told `Closed`) without waiting for it.
        let producer = self.inner.producer.write().take();
        if let Some(producer) = producer {
            if let Err(error) = producer.flush(SHUTDOWN_FLUSH_TIMEOUT) {
                tracing::warn!(%error, "kafka journal: records still undelivered at shutdown are purged and in doubt");
            }
            self.inner.retire(producer, Duration::ZERO);
        }
        if shared.counters().in_doubt > 0 {
            // One last round, with a producer of its own for the markers.
            if let Err(error) = self.inner.reconcile_round(&|| false) {
                tracing::warn!(%error, "kafka journal: last reconciliation at shutdown failed");
            }
            let producer = self.inner.producer.write().take();
            if let Some(producer) = producer {
                self.inner.retire(producer, Duration::ZERO);
            }
        }
        let unresolved = shared.take_all_in_doubt();
        for entry in unresolved {
            tracing::error!(
                event_id = %entry.parked.event_id,
                partition = entry.parked.partition,
                reason = %entry.reason,
                "kafka journal shut down with an append in doubt: it is answered `closed` but \
                 MAY BE STORED; the next start's replay decides"
            );
            shared.resolve(entry, Resolution::Closed);
        }
        let counters = shared.counters();
        tracing::info!(
            delivered = counters.delivered,
            delivery_failures = counters.delivery_failures,
            reconciled_stored = counters.reconciled_stored,
            reconciled_absent = counters.reconciled_absent,
            unresolved_at_shutdown = counters.unresolved_at_shutdown,
            "kafka journal shut down"
        );
    }
}

/// The offsets replay starts from, checked against the topic.
fn start_offsets(
    options: &KafkaOptions,
    from: Option<&JournalPosition>,
    high: &[i64],
) -> Result<Vec<i64>, PersistenceError> {
    let Some(from) = from else {
        return Ok(vec![0; high.len()]);
    };
    let offsets = reader::kafka_offsets(from, "from")?;
    if offsets.len() != high.len() {
        return Err(backend_error(
            format!(
                "checking the start position against topic {}",
                options.topic
            ),
            format!(
                "the position covers {} partitions, the topic has {}",
                offsets.len(),
                high.len()
            ),
        ));
    }
    for (partition, (&offset, &end)) in offsets.iter().zip(high).enumerate() {
        if offset < 0 || offset > end {
            return Err(backend_error(
                format!(
                    "checking the start position against topic {}",
                    options.topic
                ),
                format!(
                    "partition {partition} starts at {offset} but ends at {end}: \
                     the position is not from this topic (was it recreated?)"
                ),
            ));
        }
    }
    Ok(offsets.to_vec())
}

impl Journal for KafkaJournal {
    /// Queues `events` without blocking, one record per event. Refusals:
    /// `QueueFull` (librdkafka's queue is full: shed load), `Closed` (after
    /// shutdown), `Unavailable` (an append with a callback while the journal
    /// is unhealthy), `Storage` (an event over the size limit, an empty
    /// append, or librdkafka refusing the record). On a refusal
    /// `on_durable` is dropped without being called. The callback follows
    /// the last record.
    fn append(
        &self,
        events: Vec<Event>,
        on_durable: Option<DurableCallback>,
    ) -> Result<(), JournalError> {
        if events.is_empty() {
            return Err(JournalError::Storage(
                "an append needs at least one event".into(),
            ));
        }
        let mut records = Vec::with_capacity(events.len());
        for event in &events {
            // Encoding here keeps it in the callers' threads, in parallel.
            records.push(
                codec::encode(event).map_err(|error| JournalError::Storage(error.to_string()))?,
            );
        }
        let shared = &self.inner.shared;
        let guard = self.inner.producer.read();
        // Relaxed: the producer lock orders it with shutdown (see `Shared`).
        if shared.closed.load(Ordering::Relaxed) {
            return Err(JournalError::Closed);
        }
        let Some(producer) = guard.as_ref() else {
            return Err(JournalError::Closed);
        };
        if on_durable.is_some() {
            let health = shared.health();
            if !health.is_healthy() {
                drop(guard);
                shared.note_refused_unavailable();
                return Err(JournalError::Unavailable(health.to_string()));
            }
        }
        let context = producer.context();
        let last = records.len() - 1;
        let mut on_durable = on_durable;
        for (index, record) in records.iter().enumerate() {
            let partition = codec::partition_for_key(record.key.as_bytes(), shared.partitions);
            let ticket = match on_durable.take_if(|_| index == last) {
                Some(callback) => shared.register(
                    context.generation,
                    Waiter::Append(Parked {
                        callback,
                        event_id: record.event_id.clone(),
                        partition,
                        scan_from: shared.scan_from(partition),
                        generation: context.generation,
                    }),
                ),
                None => NO_TICKET,
            };
            let headers = OwnedHeaders::new_with_capacity(1).insert(Header {
                key: EVENT_ID_HEADER,
                value: Some(record.event_id.as_bytes()),
            });
            shared.note_queued();
            context.note_sent();
            let sent = producer.send(
                BaseRecord::with_opaque_to(&shared.topic, ticket)
                    .partition(partition)
                    .key(record.key.as_bytes())
                    .payload(record.value.as_slice())
                    .headers(headers),
            );
            let Err((error, _refused)) = sent else {
                continue;
            };
            shared.note_not_in_flight(1);
            context.note_unsent();
            let waiter = (ticket != NO_TICKET)
                .then(|| shared.unregister(ticket))
                .flatten();
            drop(guard);
            let refusal = match error.rdkafka_error_code() {
                Some(RDKafkaErrorCode::QueueFull) => JournalError::QueueFull,
                _ => JournalError::Storage(format!("kafka refused the record: {error}")),
            };
            let callback = match waiter {
                Some(Waiter::Append(parked)) => Some(parked.callback),
                _ => on_durable.take(),
            };
            if index == 0 {
                // Nothing was queued: the callback is dropped uncalled.
                return Err(refusal);
            }
            // Part of a multi-event append is queued and cannot be taken
            // back; the append as a whole failed.
            tracing::warn!(queued = index, events = records.len(), %refusal, "kafka journal queued only part of an append");
            if let Some(callback) = callback {
                callback(Err(JournalError::Storage(format!(
                    "only {index} of {} events of the append were queued: {refusal}",
                    records.len()
                ))));
            }
            return Ok(());
        }
        Ok(())
    }
}

impl Drop for KafkaJournal {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl std::fmt::Debug for KafkaJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaJournal")
            .field("brokers", &self.inner.options.brokers)
            .field("topic", &self.inner.options.topic)
            .field("stats", &self.stats())
            .finish()
    }
}
