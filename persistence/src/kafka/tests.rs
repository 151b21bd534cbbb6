//! Tests of the Kafka journal against librdkafka's mock cluster (no server
//! needed): appends and offsets, replay from positions, `read_range`,
//! record layout, refusals, and the in-doubt paths (a record stored but not
//! acknowledged, a record never stored, shutdown with a record in doubt).
//! The same journal against a real broker: `tests/kafka_broker.rs`.

use super::client::{self};
use super::codec::{self, EVENT_ID_HEADER};
use super::reader;
use super::*;
use crate::testing;
use crate::testing::open_kafka as open;
use leadex_engine::journal::Lsn;
use leadex_engine::{Event, Journal, JournalError, JournalPosition};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

type Mock = MockCluster<'static, DefaultProducerContext>;

/// The mock's only broker.
const BROKER_ID: i32 = 1;

/// Longest a test waits for a timed-out record's delivery report. It
/// usually comes within `message.timeout.ms` plus a second, but librdkafka
/// scans for timeouts on its own schedule while the broker is down (17–44 s
/// seen against Tansu, over 10 s here under a loaded CI run), so a tight
/// bound would make these tests flaky, not stricter.
const IN_DOUBT_WAIT: Duration = Duration::from_secs(60);

fn mock() -> Mock {
    MockCluster::new(1).expect("mock cluster")
}

fn unique_topic(name: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    // Relaxed: a unique number is all that is needed.
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("leadex-unit-{name}-{}-{n}", std::process::id())
}

fn options(mock: &Mock, topic: &str, partitions: i32) -> KafkaOptions {
    mock.create_topic(topic, partitions, 1)
        .expect("mock topic creation");
    let mut options = KafkaOptions::new(mock.bootstrap_servers());
    options.topic = topic.to_string();
    options.partitions = partitions;
    options
}

type Outcome = mpsc::Receiver<Result<Lsn, JournalError>>;

/// Appends `event` with a callback that reports into the returned channel.
fn append(journal: &KafkaJournal, event: Event) -> Result<Outcome, JournalError> {
    let (tx, rx) = mpsc::channel();
    journal.append(
        vec![event],
        Some(Box::new(move |result| {
            let _ = tx.send(result);
        })),
    )?;
    Ok(rx)
}

/// The single outcome of a callback: exactly one call, then the callback
/// (and its sender) is gone.
fn outcome(rx: &Outcome, timeout: Duration) -> Result<Lsn, JournalError> {
    let result = rx
        .recv_timeout(timeout)
        .expect("callback not called in time");
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(50)),
        Err(mpsc::RecvTimeoutError::Disconnected),
        "callback called more than once, or kept alive after its call"
    );
    result
}

fn append_durably(journal: &KafkaJournal, event: Event) -> Lsn {
    let rx = append(journal, event).expect("append refused");
    outcome(&rx, Duration::from_secs(10)).expect("append failed")
}

fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    // Bounded by the deadline.
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    condition()
}

fn partition_of(event: &Event, partitions: i32) -> i32 {
    let (key, _) = codec::key_and_id(event);
    codec::partition_for_key(key.as_bytes(), partitions)
}

/// `events` in the order a replay reads them: partition after partition,
/// append order within each.
fn replay_order(events: &[Event], partitions: i32) -> Vec<Event> {
    (0..partitions)
        .flat_map(|p| {
            events
                .iter()
                .filter(move |e| partition_of(e, partitions) == p)
                .cloned()
        })
        .collect()
}

#[test]
fn options_are_validated() {
    let good = KafkaOptions::new("127.0.0.1:9092");
    assert!(good.validate().is_ok());
    type Change = Box<dyn Fn(&mut KafkaOptions)>;
    let cases: Vec<(&str, Change)> = vec![
        ("brokers", Box::new(|o| o.brokers = " ".into())),
        ("topic", Box::new(|o| o.topic = "bad topic".into())),
        ("topic", Box::new(|o| o.topic = String::new())),
        ("partitions", Box::new(|o| o.partitions = 0)),
        ("replication_factor", Box::new(|o| o.replication_factor = 0)),
        ("queue_capacity", Box::new(|o| o.queue_capacity = 0)),
        (
            "message_timeout_ms",
            Box::new(|o| o.linger_ms = o.message_timeout_ms),
        ),
        (
            "unavailable_after_ms",
            Box::new(|o| o.unavailable_after_ms = 0),
        ),
        (
            "enable.idempotence",
            Box::new(|o| o.extra.push(("enable.idempotence".into(), "false".into()))),
        ),
    ];
    for (field, change) in cases {
        let mut options = good.clone();
        change(&mut options);
        let error = options.validate().unwrap_err().to_string();
        assert!(error.contains(field), "{field}: {error}");
    }
    let mut sasl = good;
    sasl.extra
        .push(("security.protocol".into(), "SASL_SSL".into()));
    assert!(sasl.validate().is_ok());
}

#[test]
fn appends_are_acknowledged_with_increasing_offsets() {
    let mock = mock();
    let options = options(&mock, &unique_topic("offsets"), 1);
    let (journal, replayed) = open(&options, None);
    assert!(replayed.is_empty());
    assert!(journal.is_healthy());
    let offsets: Vec<Lsn> = (0..5)
        .map(|seed| append_durably(&journal, testing::lead_sold(seed)))
        .collect();
    assert_eq!(offsets, [0, 1, 2, 3, 4]);
    let stats = journal.stats();
    assert_eq!(stats.delivered, 5);
    assert_eq!(stats.last_delivered_offset, 4);
    assert_eq!(
        (stats.in_flight, stats.in_doubt, stats.delivery_failures),
        (0, 0, 0)
    );
    assert!(stats.healthy);
    assert_eq!(
        journal.position().unwrap(),
        JournalPosition::Kafka {
            next_offsets: vec![5]
        }
    );
}

#[test]
fn open_replays_everything_or_from_a_position_in_partition_order() {
    let mock = mock();
    let partitions = 3;
    let options = options(&mock, &unique_topic("replay"), partitions);
    let events: Vec<Event> = (0..24).map(testing::event).collect();
    let (journal, _) = open(&options, None);
    // Fire-and-forget pings and durable sales, like the engine.
    let mut middle = None;
    for (i, event) in events.iter().enumerate() {
        if i == 12 {
            // Everything before is delivered: the last append was durable.
            middle = Some(journal.position().unwrap());
        }
        match event {
            Event::PingIssued(_) => journal.append(vec![event.clone()], None).unwrap(),
            Event::LeadSold(_) | Event::Admin(_) | Event::Market(_) | Event::Routing(_) => {
                append_durably(&journal, event.clone());
            }
        }
    }
    assert!(wait_until(Duration::from_secs(5), || journal
        .stats()
        .in_flight
        == 0));
    let end = journal.position().unwrap();
    journal.shutdown();
    drop(journal);

    let (journal, replayed) = open(&options, None);
    let replayed_events: Vec<Event> = replayed.iter().map(|(_, e)| e.clone()).collect();
    assert_eq!(replayed_events, replay_order(&events, partitions));
    // LSNs are offsets: 0, 1, 2… within each partition.
    let mut next = [0u64; 3];
    for (lsn, event) in &replayed {
        let p = partition_of(event, partitions) as usize;
        assert_eq!(*lsn, next[p]);
        next[p] += 1;
    }
    assert_eq!(
        end,
        JournalPosition::Kafka {
            next_offsets: next.iter().map(|&n| n as i64).collect()
        }
    );
    drop(journal);

    let middle = middle.unwrap();
    let (journal, replayed) = open(&options, Some(&middle));
    let replayed_events: Vec<Event> = replayed.into_iter().map(|(_, e)| e).collect();
    assert_eq!(replayed_events, replay_order(&events[12..], partitions));
    drop(journal);

    let (_journal, replayed) = open(&options, Some(&end));
    assert!(replayed.is_empty());
}

#[test]
fn read_range_reads_exactly_the_range() {
    let mock = mock();
    let options = options(&mock, &unique_topic("range"), 1);
    let (journal, _) = open(&options, None);
    let events: Vec<Event> = (0..10).map(testing::lead_sold).collect();
    let mut positions = vec![journal.position().unwrap()];
    for event in &events {
        append_durably(&journal, event.clone());
        positions.push(journal.position().unwrap());
    }
    let read = |from: &JournalPosition, to: &JournalPosition| {
        let mut seen = Vec::new();
        read_range(&options, from, to, &mut |lsn, event| {
            seen.push((lsn, event))
        })
        .map(|stats| {
            assert_eq!(stats.events, seen.len() as u64);
            seen
        })
    };
    let got = read(&positions[3], &positions[7]).unwrap();
    let expected: Vec<(Lsn, Event)> = (3..7).map(|i| (i as Lsn, events[i].clone())).collect();
    assert_eq!(got, expected);
    assert!(read(&positions[5], &positions[5]).unwrap().is_empty());
    assert_eq!(read(&positions[0], &positions[10]).unwrap().len(), 10);
    // Backwards, past the end, wrong lengths, a file position: refused.
    assert!(read(&positions[7], &positions[3]).is_err());
    let beyond = JournalPosition::Kafka {
        next_offsets: vec![12],
    };
    assert!(read(&positions[8], &beyond).is_err());
    let two = JournalPosition::Kafka {
        next_offsets: vec![0, 0],
    };
    assert!(read(&two, &positions[3]).is_err());
    assert!(read(&JournalPosition::File { last_lsn: 0 }, &positions[3]).is_err());
}

#[test]
fn records_carry_the_specified_keys_partitions_and_headers() {
    let mock = mock();
    let partitions = 4;
    let options = options(&mock, &unique_topic("layout"), partitions);
    let (journal, _) = open(&options, None);
    // Seed 1: a ping and the sale under it; seed 3: a direct post.
    let ping = testing::ping_issued(1);
    let sale = testing::lead_sold(1);
    let direct = testing::lead_sold(3);
    for event in [&ping, &sale, &direct] {
        append_durably(&journal, event.clone());
    }
    let Event::PingIssued(p) = &ping else {
        unreachable!()
    };
    let Event::LeadSold(s) = &sale else {
        unreachable!()
    };
    let Event::LeadSold(d) = &direct else {
        unreachable!()
    };
    let expected = [
        (&ping, p.ping_id.to_string(), p.ping_id.to_string()),
        (&sale, p.ping_id.to_string(), s.lead_id.to_string()),
        (&direct, d.lead_id.to_string(), d.lead_id.to_string()),
    ];
    let consumer = client::reader(&options).unwrap();
    let ends = match journal.position().unwrap() {
        JournalPosition::Kafka { next_offsets } => next_offsets,
        other => panic!("{other:?}"),
    };
    let mut records = Vec::new();
    for partition in 0..partitions {
        reader::read_partition(
            &consumer,
            &options.topic,
            partition,
            0,
            ends[partition as usize],
            &mut |message| {
                let header = message
                    .headers()
                    .and_then(|h| h.iter().find(|h| h.key == EVENT_ID_HEADER))
                    .and_then(|h| h.value)
                    .map(|v| String::from_utf8(v.to_vec()).unwrap());
                records.push((
                    message.partition(),
                    String::from_utf8(message.key().unwrap().to_vec()).unwrap(),
                    header,
                    codec::decode_value(message.payload().unwrap()).unwrap(),
                ));
                Ok(())
            },
        )
        .unwrap();
    }
    assert_eq!(records.len(), 3);
    for (event, key, id) in expected {
        let record = records
            .iter()
            .find(|r| &r.3 == event)
            .expect("record of the event");
        assert_eq!(record.1, key);
        assert_eq!(record.2.as_deref(), Some(id.as_str()));
        assert_eq!(
            record.0,
            codec::partition_for_key(key.as_bytes(), partitions)
        );
    }
    // The ping and its sale share a partition.
    let partition = |event: &Event| records.iter().find(|r| &r.3 == event).unwrap().0;
    assert_eq!(partition(&ping), partition(&sale));
}

#[test]
fn a_topic_with_another_partition_count_is_refused() {
    let mock = mock();
    let topic = unique_topic("count");
    let options = options(&mock, &topic, 3);
    let mut wrong = options.clone();
    wrong.partitions = 1;
    let error = KafkaJournal::open(wrong, None, &mut |_, _| {}).unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("3 partitions") && text.contains("configured for 1"),
        "{text}"
    );
}

/// A record that does not decode (garbage, or an event format version this
/// build does not know) refuses the start rather than being skipped.
#[test]
fn a_record_that_does_not_decode_refuses_the_start() {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let mock = mock();
    let future_version = codec::encode_value(
        &testing::lead_sold(2),
        leadex_engine::event::EVENT_FORMAT_VERSION + 1,
    )
    .unwrap();
    for (name, value) in [
        ("garbage", b"\x01\x00not postcard".to_vec()),
        ("future", future_version),
    ] {
        let options = options(&mock, &unique_topic(name), 1);
        let (journal, _) = open(&options, None);
        append_durably(&journal, testing::lead_sold(1));
        drop(journal);
        let producer: BaseProducer = client::config(&options, &[])
            .create()
            .expect("raw producer");
        producer
            .send(BaseRecord::<str, [u8]>::to(&options.topic).payload(&value[..]))
            .map_err(|(error, _)| error)
            .expect("raw record queued");
        producer
            .flush(Duration::from_secs(5))
            .expect("raw record stored");
        let mut visited = Vec::new();
        let error = KafkaJournal::open(options.clone(), None, &mut |lsn, _| visited.push(lsn))
            .expect_err("a bad record must refuse the start");
        let text = error.to_string();
        assert!(
            text.contains("decoding record at partition 0 offset 1"),
            "{name}: {text}"
        );
        assert_eq!(
            visited,
            [0],
            "{name}: the good record before it was visited"
        );
    }
}

#[test]
fn start_positions_must_fit_the_topic() {
    let mock = mock();
    let options = options(&mock, &unique_topic("positions"), 2);
    for bad in [
        JournalPosition::File { last_lsn: 3 },
        JournalPosition::Kafka {
            next_offsets: vec![0],
        },
        JournalPosition::Kafka {
            next_offsets: vec![0, 1],
        },
    ] {
        assert!(
            KafkaJournal::open(options.clone(), Some(&bad), &mut |_, _| {}).is_err(),
            "{bad:?} accepted"
        );
    }
}

#[test]
fn a_full_queue_refuses_and_drops_the_callback_uncalled() {
    let mock = mock();
    let mut options = options(&mock, &unique_topic("full"), 1);
    options.queue_capacity = 1;
    // The first record lingers in the queue long enough to fill it.
    options.linger_ms = 3_000;
    options.unavailable_after_ms = 5_000;
    let (journal, _) = open(&options, None);
    journal.append(vec![testing::ping_issued(0)], None).unwrap();
    let (tx, rx) = mpsc::channel::<Result<Lsn, JournalError>>();
    let refused = journal.append(
        vec![testing::lead_sold(1)],
        Some(Box::new(move |result| {
            let _ = tx.send(result);
        })),
    );
    assert_eq!(refused, Err(JournalError::QueueFull));
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(100)),
        Err(mpsc::RecvTimeoutError::Disconnected),
        "a refused append's callback must be dropped without being called"
    );
    assert_eq!(journal.stats().in_flight, 1);
}

#[test]
fn appends_after_shutdown_are_closed_and_shutdown_is_idempotent() {
    let mock = mock();
    let options = options(&mock, &unique_topic("closed"), 1);
    let (journal, _) = open(&options, None);
    let queued = append(&journal, testing::lead_sold(1)).unwrap();
    journal.shutdown();
    // Shutdown flushed the queued sale: its callback was called.
    assert_eq!(outcome(&queued, Duration::from_secs(1)), Ok(0));
    assert_eq!(
        append(&journal, testing::lead_sold(2)).err(),
        Some(JournalError::Closed)
    );
    assert_eq!(
        journal.append(vec![testing::ping_issued(2)], None),
        Err(JournalError::Closed)
    );
    assert!(!journal.stats().healthy);
    journal.shutdown();
    drop(journal);
}

#[test]
fn an_empty_append_is_refused() {
    let mock = mock();
    let options = options(&mock, &unique_topic("empty"), 1);
    let (journal, _) = open(&options, None);
    assert!(matches!(
        journal.append(vec![], None),
        Err(JournalError::Storage(_))
    ));
}

/// A broker that stores a record but answers after the message timeout:
/// the delivery fails, the append is in doubt, and reconciliation finds
/// the record and answers `Ok` with its offset.
#[test]
fn a_record_stored_but_not_acknowledged_is_reconciled_as_stored() {
    let mock = mock();
    let mut options = options(&mock, &unique_topic("stored"), 2);
    // Long enough for a fresh idempotent producer's first delivery on a
    // loaded machine (1 s was not), short enough to time out below.
    options.message_timeout_ms = 3_000;
    options.unavailable_after_ms = 300;
    let (journal, _) = open(&options, None);
    append_durably(&journal, testing::lead_sold(1));

    // The broker stores the next record but answers after the timeout.
    mock.broker_round_trip_time(BROKER_ID, Duration::from_millis(8_000))
        .unwrap();
    let sale = testing::lead_sold(2);
    let slow = append(&journal, sale.clone()).unwrap();
    assert!(
        wait_until(Duration::from_secs(2), || !journal.is_healthy()),
        "a record in flight with no delivery must make the journal unhealthy: {:?}",
        journal.stats()
    );
    assert!(matches!(
        append(&journal, testing::lead_sold(3)).err(),
        Some(JournalError::Unavailable(_))
    ));
    // Fire-and-forget appends are still taken.
    journal.append(vec![testing::ping_issued(4)], None).unwrap();
    assert!(
        wait_until(IN_DOUBT_WAIT, || journal.stats().in_doubt == 1),
        "the timed-out append must be in doubt: {:?}",
        journal.stats()
    );
    assert!(
        slow.try_recv().is_err(),
        "an append in doubt must not be answered before reconciliation"
    );
    mock.broker_round_trip_time(BROKER_ID, Duration::ZERO)
        .unwrap();

    let offset =
        outcome(&slow, Duration::from_secs(20)).expect("stored record reconciled as stored");
    let stats = journal.stats();
    assert_eq!(stats.reconciled_stored, 1, "{stats:?}");
    assert_eq!(stats.reconciled_absent, 0, "{stats:?}");
    assert!(stats.producer_restarts >= 1, "{stats:?}");
    assert!(wait_until(Duration::from_secs(5), || journal.is_healthy()));
    // New appends work on the new producer.
    append_durably(&journal, testing::lead_sold(5));
    journal.shutdown();
    drop(journal);

    // The record is where the callback said, once.
    let (_journal, replayed) = open(&options, None);
    let found: Vec<&(Lsn, Event)> = replayed.iter().filter(|(_, e)| *e == sale).collect();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0, offset);
}

/// A record that never reaches the broker (it lingers in the queue until
/// the broker is down, then times out): the append is in doubt, and
/// reconciliation answers `Storage` ("not stored") once the broker is back.
#[test]
fn a_record_never_stored_is_reconciled_as_absent() {
    let mock = mock();
    let mut options = options(&mock, &unique_topic("absent"), 1);
    options.linger_ms = 1_000;
    // Leaves 2 s for the first delivery past the 1 s linger.
    options.message_timeout_ms = 3_000;
    options.unavailable_after_ms = 1_500;
    let (journal, _) = open(&options, None);
    append_durably(&journal, testing::lead_sold(1));

    let lost = append(&journal, testing::lead_sold(2)).unwrap();
    mock.broker_down(BROKER_ID).unwrap();
    assert!(
        wait_until(Duration::from_secs(3), || !journal.is_healthy()),
        "{:?}",
        journal.stats()
    );
    assert!(matches!(
        append(&journal, testing::lead_sold(3)).err(),
        Some(JournalError::Unavailable(_))
    ));
    assert!(
        wait_until(IN_DOUBT_WAIT, || journal.stats().in_doubt == 1),
        "{:?}",
        journal.stats()
    );
    // Still down: reconciliation cannot run, the append stays in doubt.
    std::thread::sleep(Duration::from_millis(500));
    assert!(lost.try_recv().is_err());
    mock.broker_up(BROKER_ID).unwrap();

    match outcome(&lost, Duration::from_secs(20)) {
        Err(JournalError::Storage(message)) => {
            assert!(message.contains("not stored"), "{message}");
        }
        other => panic!("expected a storage error, got {other:?}"),
    }
    let stats = journal.stats();
    assert_eq!((stats.reconciled_stored, stats.reconciled_absent), (0, 1));
    assert!(wait_until(Duration::from_secs(5), || journal.is_healthy()));
    // Offset 1 (at least) holds a reconciliation marker.
    assert!(append_durably(&journal, testing::lead_sold(4)) >= 2);
    journal.shutdown();
    drop(journal);

    let (_journal, replayed) = open(&options, None);
    let events: Vec<Event> = replayed.into_iter().map(|(_, e)| e).collect();
    assert_eq!(events, vec![testing::lead_sold(1), testing::lead_sold(4)]);
}

/// Shutdown while brokers are down: the append in doubt is answered
/// `Closed`, once.
#[test]
fn shutdown_answers_closed_for_what_it_cannot_resolve() {
    let mock = mock();
    let mut options = options(&mock, &unique_topic("shutdown"), 1);
    options.linger_ms = 1_000;
    // Leaves 2 s for the first delivery past the 1 s linger.
    options.message_timeout_ms = 3_000;
    options.unavailable_after_ms = 1_500;
    let (journal, _) = open(&options, None);
    append_durably(&journal, testing::lead_sold(1));
    let pending = append(&journal, testing::lead_sold(2)).unwrap();
    mock.broker_down(BROKER_ID).unwrap();
    assert!(wait_until(IN_DOUBT_WAIT, || journal.stats().in_doubt == 1));
    let started = Instant::now();
    journal.shutdown();
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(outcome(&pending, Duration::ZERO), Err(JournalError::Closed));
    assert_eq!(journal.stats().unresolved_at_shutdown, 1);
}
