//! Reading offset ranges of the journal topic by assignment: replay,
//! [`read_range`] and reconciliation.

use super::client::{self, TracingContext};
use super::codec::{self, EVENT_ID_HEADER, MARKER_HEADER};
use super::{backend_error, KafkaOptions};
use crate::error::PersistenceError;
use leadex_engine::journal::{Lsn, ReplayStats};
use leadex_engine::{Event, JournalPosition};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use std::time::{Duration, Instant};

/// A read fails when no record arrives for this long while records are
/// still expected.
pub(crate) const READ_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest single wait for the consumer.
const POLL_TIMEOUT: Duration = Duration::from_millis(200);

/// Reads `[from, to)` of every partition, in offset order per partition and
/// partition after partition, calling `visit(offset, event)` for each event
/// (markers are skipped). For the snapshotter (from a snapshot's position
/// to a position taken with [`super::KafkaJournal::position`]) and for
/// restore.
///
/// Both positions must be `Kafka` positions of equal length, with `from`
/// at most `to` on every partition. A record that does not decode is an
/// error (`visit` has then seen the events before it), as is a range that
/// reaches past the end of a partition or before its first offset.
pub fn read_range(
    options: &KafkaOptions,
    from: &JournalPosition,
    to: &JournalPosition,
    visit: &mut dyn FnMut(Lsn, Event),
) -> Result<ReplayStats, PersistenceError> {
    options.validate()?;
    let from = kafka_offsets(from, "from")?;
    let to = kafka_offsets(to, "to")?;
    if from.len() != to.len() {
        return Err(PersistenceError::InvalidOptions {
            reason: format!(
                "read_range positions cover {} and {} partitions",
                from.len(),
                to.len()
            ),
        });
    }
    read_offsets(options, from, to, visit)
}

/// The offsets of a `Kafka` position.
pub(crate) fn kafka_offsets<'a>(
    position: &'a JournalPosition,
    name: &str,
) -> Result<&'a [i64], PersistenceError> {
    match position {
        JournalPosition::Kafka { next_offsets } => Ok(next_offsets),
        JournalPosition::File { .. } => Err(PersistenceError::InvalidOptions {
            reason: format!("position {name} is a file journal position, not a Kafka one"),
        }),
    }
}

/// [`read_range`] on plain offset vectors of equal length.
pub(crate) fn read_offsets(
    options: &KafkaOptions,
    from: &[i64],
    to: &[i64],
    visit: &mut dyn FnMut(Lsn, Event),
) -> Result<ReplayStats, PersistenceError> {
    debug_assert_eq!(from.len(), to.len());
    for (partition, (&start, &end)) in from.iter().zip(to).enumerate() {
        if start < 0 || start > end {
            return Err(PersistenceError::InvalidOptions {
                reason: format!(
                    "read range of partition {partition} is {start}..{end}: \
                     the start must be 0 or more and at most the end"
                ),
            });
        }
    }
    let mut stats = ReplayStats::default();
    if from.iter().zip(to).all(|(start, end)| start == end) {
        return Ok(stats);
    }
    let consumer = client::reader(options)?;
    for (partition, (&start, &end)) in from.iter().zip(to).enumerate() {
        let partition = i32::try_from(partition).map_err(|_| PersistenceError::InvalidOptions {
            reason: format!("position has {} partitions", from.len()),
        })?;
        read_partition(
            &consumer,
            &options.topic,
            partition,
            start,
            end,
            &mut |message| {
                if is_marker(message) {
                    return Ok(());
                }
                let offset = message.offset();
                let event = codec::decode_value(message.payload().unwrap_or_default()).map_err(
                    |reason| {
                        backend_error(
                            format!(
                                "decoding record at partition {partition} offset {offset} of topic {}",
                                options.topic
                            ),
                            reason,
                        )
                    },
                )?;
                stats.events += 1;
                // Offsets are never negative for a record that was read.
                visit(offset as Lsn, event);
                Ok(())
            },
        )?;
    }
    Ok(stats)
}

/// The end (next offset to be written) of every partition of the topic.
///
/// The broker's answer to a ListOffsets request is only taken as a lower
/// bound: Tansu 0.6 answers the base offset of the partition's last batch
/// plus one, short of the end whenever that batch holds several records,
/// and a replay up to it would silently miss records. So each partition is
/// read from one offset below that answer until the consumer reports the
/// partition's end (at most one batch, a few KiB), and the position there
/// is the end. On a broker that answers right, this reads one record.
pub(crate) fn end_offsets(options: &KafkaOptions) -> Result<Vec<i64>, PersistenceError> {
    let topic = options.topic.as_str();
    let consumer = client::reader(options)?;
    let mut ends = Vec::with_capacity(partition_index(options.partitions));
    let mut assignment = TopicPartitionList::new();
    for partition in 0..options.partitions {
        let listed = client::listed_end(consumer.client(), topic, partition)?;
        ends.push(listed.max(0));
        if listed > 0 {
            assignment
                .add_partition_offset(topic, partition, Offset::Offset(listed - 1))
                .map_err(|error| backend_error(format!("finding the end of {topic}"), error))?;
        }
    }
    let mut open = assignment.count();
    if open == 0 {
        return Ok(ends);
    }
    let action = || format!("finding the end of {topic}");
    consumer
        .assign(&assignment)
        .map_err(|error| backend_error(action(), error))?;
    let mut done = vec![false; ends.len()];
    let started = Instant::now();
    // Bounded by READ_IDLE_TIMEOUT (the records read are about one batch per
    // partition, plus what is appended meanwhile).
    let result = loop {
        if open == 0 {
            break Ok(ends);
        }
        if started.elapsed() >= READ_IDLE_TIMEOUT {
            break Err(backend_error(
                action(),
                format!(
                    "{open} partitions did not report their end within {} s",
                    READ_IDLE_TIMEOUT.as_secs()
                ),
            ));
        }
        match consumer.poll(POLL_TIMEOUT) {
            None => {}
            Some(Ok(message)) if message.topic() == topic => {
                if let Some(end) = ends.get_mut(partition_index(message.partition())) {
                    *end = (*end).max(message.offset() + 1);
                }
            }
            Some(Ok(_)) => {}
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                let index = partition_index(partition);
                if index < done.len() && !done[index] {
                    if let Some(position) = fetch_position(&consumer, topic, partition) {
                        ends[index] = ends[index].max(position);
                    }
                    done[index] = true;
                    open -= 1;
                }
            }
            Some(Err(error)) if is_passing(&error) => {
                tracing::debug!(%error, "kafka reader lost a broker connection; retrying");
            }
            Some(Err(error)) => break Err(backend_error(action(), error)),
        }
    };
    if let Err(error) = consumer.unassign() {
        tracing::debug!(%error, "unassigning a kafka reader failed");
    }
    result
}

fn partition_index(partition: i32) -> usize {
    usize::try_from(partition).unwrap_or(usize::MAX)
}

/// True if `message` is a reconciliation marker.
pub(crate) fn is_marker(message: &BorrowedMessage<'_>) -> bool {
    header(message, MARKER_HEADER).is_some()
}

/// The event id header of `message`, if it has one in UTF-8.
pub(crate) fn event_id<'a>(message: &'a BorrowedMessage<'_>) -> Option<&'a str> {
    header(message, EVENT_ID_HEADER).and_then(|value| std::str::from_utf8(value).ok())
}

fn header<'a>(message: &'a BorrowedMessage<'_>, name: &str) -> Option<&'a [u8]> {
    let headers = message.headers()?;
    headers
        .iter()
        .find(|header| header.key == name)
        .map(|header| header.value.unwrap_or_default())
}

/// Reads `[from, to)` of one partition with `consumer`, calling `on_record`
/// for every record in offset order. Fails if no record arrives for
/// [`READ_IDLE_TIMEOUT`], if the partition ends before `to`, or on a
/// consumer error other than a passing broker disconnection.
pub(crate) fn read_partition(
    consumer: &BaseConsumer<TracingContext>,
    topic: &str,
    partition: i32,
    from: i64,
    to: i64,
    on_record: &mut dyn FnMut(&BorrowedMessage<'_>) -> Result<(), PersistenceError>,
) -> Result<(), PersistenceError> {
    if from >= to {
        return Ok(());
    }
    let action = || format!("reading {topic} partition {partition} offsets {from}..{to}");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, partition, Offset::Offset(from))
        .map_err(|error| backend_error(action(), error))?;
    consumer
        .assign(&assignment)
        .map_err(|error| backend_error(action(), error))?;
    let result = poll_until(consumer, topic, partition, from, to, on_record, &action);
    // Unassigning stops fetching; a failure only leaves a consumer that is
    // reassigned or dropped next.
    if let Err(error) = consumer.unassign() {
        tracing::debug!(%error, "unassigning a kafka reader failed");
    }
    result
}

fn poll_until(
    consumer: &BaseConsumer<TracingContext>,
    topic: &str,
    partition: i32,
    from: i64,
    to: i64,
    on_record: &mut dyn FnMut(&BorrowedMessage<'_>) -> Result<(), PersistenceError>,
    action: &dyn Fn() -> String,
) -> Result<(), PersistenceError> {
    let mut next = from;
    let mut last_progress = Instant::now();
    // Bounded: every turn either advances `next` towards `to` or counts
    // against READ_IDLE_TIMEOUT.
    loop {
        if last_progress.elapsed() >= READ_IDLE_TIMEOUT {
            return Err(backend_error(
                action(),
                format!(
                    "no record for {} s at offset {next}",
                    READ_IDLE_TIMEOUT.as_secs()
                ),
            ));
        }
        match consumer.poll(POLL_TIMEOUT) {
            None => {}
            Some(Ok(message)) => {
                if message.partition() != partition || message.topic() != topic {
                    continue;
                }
                let offset = message.offset();
                if offset < next {
                    // A duplicate after an internal fetch restart.
                    continue;
                }
                if offset >= to {
                    return Ok(());
                }
                on_record(&message)?;
                next = offset + 1;
                last_progress = Instant::now();
                if next >= to {
                    return Ok(());
                }
            }
            Some(Err(KafkaError::PartitionEOF(eof_partition))) if eof_partition == partition => {
                let position = fetch_position(consumer, topic, partition).unwrap_or(next);
                if position.max(next) >= to {
                    return Ok(());
                }
                return Err(backend_error(
                    action(),
                    format!("the partition ends at offset {}", position.max(next)),
                ));
            }
            Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Err(error)) if is_passing(&error) => {
                tracing::debug!(%error, "kafka reader lost a broker connection; retrying");
            }
            Some(Err(error)) => return Err(backend_error(action(), error)),
        }
    }
}

/// Errors librdkafka reports while it reconnects by itself.
fn is_passing(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::Resolve
                | RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::RequestTimedOut
        )
    )
}

fn fetch_position(
    consumer: &BaseConsumer<TracingContext>,
    topic: &str,
    partition: i32,
) -> Option<i64> {
    let positions = consumer.position().ok()?;
    match positions.find_partition(topic, partition)?.offset() {
        Offset::Offset(offset) => Some(offset),
        _ => None,
    }
}
