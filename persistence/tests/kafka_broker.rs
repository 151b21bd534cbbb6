//! The Kafka journal against a real Kafka-protocol broker (Tansu in CI).
//!
//! Needs `TEST_LEADEX_KAFKA_BROKERS` (host:port of a running broker) and,
//! for the outage test, `TEST_LEADEX_TANSU` (the tansu binary: the test
//! starts, stops and resumes its own broker). `scripts/services` sets both;
//! run the suite through `scripts/test`. A missing variable FAILS the test:
//! a journal test that silently skips proves nothing.

use leadex_engine::journal::Lsn;
use leadex_engine::{Event, Journal, JournalError, JournalPosition};
use leadex_persistence::kafka::{read_range, KafkaJournal, KafkaOptions};
use leadex_persistence::testing;
use leadex_persistence::testing::open_kafka as open;
use leadex_persistence::testing::OwnTansu;
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

fn required_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => value,
        _ => panic!(
            "{name} is not set: the Kafka journal tests need a real broker. Run them through \
             `scripts/test` (or `scripts/services cargo test -p leadex-persistence --test \
             kafka_broker`), which starts Tansu and sets TEST_LEADEX_KAFKA_BROKERS and \
             TEST_LEADEX_TANSU"
        ),
    }
}

fn unique_topic(name: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    // Relaxed: a unique number is all that is needed.
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("leadex-it-{name}-{}-{n}-{nanos}", std::process::id())
}

fn options(brokers: &str, topic: &str, partitions: i32) -> KafkaOptions {
    let mut options = KafkaOptions::new(brokers);
    options.topic = topic.into();
    options.partitions = partitions;
    options
}

fn event_id(event: &Event) -> String {
    match event {
        Event::PingIssued(ping) => ping.ping_id.to_string(),
        Event::LeadSold(sale) => sale.lead_id.to_string(),
        Event::Admin(record) => record.id.clone(),
        Event::Market(record) => record.id.clone(),
        Event::Routing(record) => format!("{}.{}", record.assignment_id, record.version),
    }
}

/// A sale after a ping (so keys spread over partitions), unique per test
/// run through `seed`.
fn sale(seed: u64) -> Event {
    testing::lead_sold(seed)
}

#[test]
fn appended_sales_come_back_exactly_once_in_order_from_any_position() {
    let brokers = required_env("TEST_LEADEX_KAFKA_BROKERS");
    let partitions = 3;
    let options = options(&brokers, &unique_topic("replay"), partitions);
    let (journal, replayed) = open(&options, None);
    assert!(replayed.is_empty(), "a new topic replays nothing");

    let count = 60u64;
    let wait = |rx: &mpsc::Receiver<Result<Lsn, JournalError>>| {
        rx.recv_timeout(Duration::from_secs(15))
            .expect("callback called in time")
            .expect("sale stored")
    };
    // Every callback once, Ok, with the offset the record will be read at.
    let mut offsets: HashMap<String, Lsn> = HashMap::new();
    let mut receivers = Vec::new();
    let mut middle = None;
    for seed in 0..count {
        if seed == count / 2 {
            // Wait for the first half so the position covers exactly it.
            for (seed, rx) in receivers.drain(..) {
                offsets.insert(event_id(&sale(seed)), wait(&rx));
            }
            middle = Some(journal.position().expect("position"));
        }
        let (tx, rx) = mpsc::channel();
        journal
            .append(
                vec![sale(seed)],
                Some(Box::new(move |result| {
                    let _ = tx.send(result);
                })),
            )
            .expect("append accepted");
        receivers.push((seed, rx));
    }
    for (seed, rx) in receivers.drain(..) {
        offsets.insert(event_id(&sale(seed)), wait(&rx));
    }
    let end = journal.position().expect("position");
    let stats = journal.stats();
    assert_eq!(stats.delivered, count, "{stats:?}");
    assert_eq!((stats.delivery_failures, stats.in_doubt), (0, 0));
    journal.shutdown();
    drop(journal);

    // From the start: every sale once, in append order within each
    // partition, at the offset its callback reported.
    let (journal, replayed) = open(&options, None);
    assert_eq!(replayed.len() as u64, count);
    let mut seen = HashSet::new();
    for (lsn, event) in &replayed {
        let id = event_id(event);
        assert!(seen.insert(id.clone()), "{id} replayed twice");
        assert_eq!(
            offsets.get(&id),
            Some(lsn),
            "{id} replayed at another offset"
        );
    }
    // Replay reads partition after partition, offsets 0, 1, 2… in each: a
    // run of consecutive offsets is one partition, and within it the sales
    // must be in append (seed) order.
    let mut runs: Vec<Vec<u64>> = Vec::new();
    let mut previous: Option<Lsn> = None;
    for (lsn, event) in &replayed {
        if previous.map(|p| p + 1) != Some(*lsn) {
            assert_eq!(*lsn, 0, "a partition's replay starts at offset 0");
            runs.push(Vec::new());
        }
        previous = Some(*lsn);
        let seed = (0..count)
            .find(|&s| sale(s) == *event)
            .expect("an appended sale");
        runs.last_mut().expect("a run").push(seed);
    }
    assert!(
        runs.len() <= partitions as usize && runs.len() > 1,
        "{} runs",
        runs.len()
    );
    for run in &runs {
        assert!(
            run.windows(2).all(|w| w[0] < w[1]),
            "out of append order: {run:?}"
        );
    }
    drop(journal);

    // From the middle: exactly the second half.
    let middle = middle.expect("middle position");
    let (journal, replayed) = open(&options, Some(&middle));
    let mut ids: Vec<String> = replayed.iter().map(|(_, e)| event_id(e)).collect();
    let mut expected: Vec<String> = (count / 2..count).map(|s| event_id(&sale(s))).collect();
    ids.sort();
    expected.sort();
    assert_eq!(ids, expected);
    drop(journal);

    // read_range over the same span agrees, and an empty span is empty.
    let mut ranged = Vec::new();
    read_range(&options, &middle, &end, &mut |lsn, event| {
        ranged.push((lsn, event))
    })
    .expect("read_range");
    assert_eq!(ranged, replayed);
    let mut nothing = 0;
    read_range(&options, &end, &end, &mut |_, _| nothing += 1).expect("read_range");
    assert_eq!(nothing, 0);
}

#[test]
fn a_topic_is_created_with_its_partitions_and_a_changed_count_is_refused() {
    let brokers = required_env("TEST_LEADEX_KAFKA_BROKERS");
    let options = options(&brokers, &unique_topic("count"), 2);
    let (journal, _) = open(&options, None);
    assert_eq!(
        journal.position().expect("position"),
        JournalPosition::Kafka {
            next_offsets: vec![0, 0]
        },
        "created with 2 partitions (auto-creation would give 4 on Tansu)"
    );
    drop(journal);
    let mut changed = options.clone();
    changed.partitions = 3;
    let error = KafkaJournal::open(changed, None, &mut |_, _| {}).expect_err("refused");
    assert!(error.to_string().contains("2 partitions"), "{error}");
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

/// What one append with a callback became.
#[derive(Default)]
struct Ledger {
    /// Accepted appends: event id → every result its callback got.
    accepted: HashMap<String, Vec<Result<Lsn, JournalError>>>,
    /// Appends refused by `append` itself, with the refusal.
    refused: HashMap<String, JournalError>,
}

/// Stops the broker (SIGSTOP) while sales are appended, resumes it, and
/// checks: health turns false within seconds, appends with a callback are
/// refused `Unavailable` meanwhile, every accepted callback is called
/// exactly once, and the sales answered `Ok` are exactly the sales stored
/// in the topic, at the offsets reported.
#[test]
fn a_stopped_broker_makes_the_journal_unavailable_and_every_answer_true() {
    required_env("TEST_LEADEX_KAFKA_BROKERS");
    let test_started = Instant::now();
    let tansu = OwnTansu::start();
    let mut options = options(&tansu.brokers(), &unique_topic("outage"), 2);
    options.message_timeout_ms = 3_000;
    options.unavailable_after_ms = 1_000;
    let (journal, _) = open(&options, None);
    let journal = Arc::new(journal);
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let running = Arc::new(AtomicBool::new(true));

    let appender = std::thread::spawn({
        let journal = journal.clone();
        let ledger = ledger.clone();
        let running = running.clone();
        move || {
            let mut seed = 1_000_000u64;
            // Bounded by the test's own deadline through `running`, and by
            // 5,000 appends.
            while running.load(Ordering::Relaxed) && seed < 1_005_000 {
                seed += 1;
                let event = sale(seed);
                let id = event_id(&event);
                let ledger_for_callback = ledger.clone();
                let id_for_callback = id.clone();
                // The entry exists before the callback can run.
                ledger.lock().accepted.insert(id.clone(), Vec::new());
                let appended = journal.append(
                    vec![event],
                    Some(Box::new(move |result| {
                        ledger_for_callback
                            .lock()
                            .accepted
                            .entry(id_for_callback)
                            .or_default()
                            .push(result);
                    })),
                );
                if let Err(refusal) = appended {
                    let mut ledger = ledger.lock();
                    let calls = ledger.accepted.remove(&id).unwrap_or_default();
                    assert!(calls.is_empty(), "a refused append's callback was called");
                    ledger.refused.insert(id, refusal);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    });

    // Warm-up: the stop comes while deliveries flow normally.
    let warm = wait_until(Duration::from_secs(15), || {
        journal.stats().delivered >= 20 && journal.is_healthy()
    });
    assert!(
        warm,
        "no steady deliveries before the outage: {:?}",
        journal.stats()
    );
    tansu.freeze();
    let stopped_at = Instant::now();
    let healthy_lost = loop {
        if !journal.is_healthy() {
            break Some(stopped_at.elapsed());
        }
        if stopped_at.elapsed() > Duration::from_secs(4) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let healthy_lost = healthy_lost
        .unwrap_or_else(|| panic!("still healthy 4 s into the outage: {:?}", journal.stats()));
    // Keep the broker stopped past the message timeout, so that records in
    // flight are reported failed and go through reconciliation.
    std::thread::sleep(Duration::from_millis(6_000).saturating_sub(stopped_at.elapsed()));
    let during = journal.stats();
    tansu.resume();
    let resumed_at = Instant::now();

    // Recovery: healthy again, then a little more traffic, then stop.
    let recovered = loop {
        if journal.is_healthy() {
            break Some(resumed_at.elapsed());
        }
        if resumed_at.elapsed() > Duration::from_secs(30) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(500));
    running.store(false, Ordering::Relaxed);
    appender.join().expect("appender thread");
    let recovered = recovered.unwrap_or_else(|| {
        panic!(
            "not healthy 30 s after the broker resumed: {:?}",
            journal.stats()
        )
    });

    // Every accepted callback is called exactly once (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let pending = ledger
            .lock()
            .accepted
            .values()
            .filter(|calls| calls.is_empty())
            .count();
        if pending == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{pending} callbacks not called 30 s after the outage: {:?}",
            journal.stats()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let end = journal.position().expect("position after the outage");
    let stats = journal.stats();
    journal.shutdown();

    let ledger = ledger.lock();
    let mut ok: HashMap<String, Lsn> = HashMap::new();
    let mut failed = 0;
    for (id, calls) in &ledger.accepted {
        assert_eq!(
            calls.len(),
            1,
            "{id}: callback called {} times",
            calls.len()
        );
        match &calls[0] {
            Ok(offset) => {
                ok.insert(id.clone(), *offset);
            }
            Err(JournalError::Storage(message)) => {
                assert!(message.contains("not stored"), "{id}: {message}");
                failed += 1;
            }
            Err(other) => panic!("{id}: unexpected callback error {other:?}"),
        }
    }
    let unavailable = ledger
        .refused
        .values()
        .filter(|refusal| matches!(refusal, JournalError::Unavailable(_)))
        .count();
    assert!(
        unavailable > 0,
        "no append was refused Unavailable during the outage"
    );
    for (id, refusal) in &ledger.refused {
        assert!(
            matches!(
                refusal,
                JournalError::Unavailable(_) | JournalError::QueueFull
            ),
            "{id}: unexpected refusal {refusal:?}"
        );
    }

    // The topic holds exactly the sales answered Ok, once, where reported.
    let mut stored: HashMap<String, Vec<Lsn>> = HashMap::new();
    let start = JournalPosition::Kafka {
        next_offsets: vec![0; 2],
    };
    read_range(&options, &start, &end, &mut |lsn, event| {
        stored.entry(event_id(&event)).or_default().push(lsn);
    })
    .expect("read the topic");
    for (id, offsets) in &stored {
        assert_eq!(offsets.len(), 1, "{id} stored {} times", offsets.len());
        assert!(
            !ledger.refused.contains_key(id),
            "{id} was refused but is stored"
        );
    }
    let stored_ids: HashSet<&String> = stored.keys().collect();
    let ok_ids: HashSet<&String> = ok.keys().collect();
    assert_eq!(
        stored_ids.difference(&ok_ids).count() + ok_ids.difference(&stored_ids).count(),
        0,
        "stored but not Ok: {:?}; Ok but not stored: {:?}",
        stored_ids.difference(&ok_ids).collect::<Vec<_>>(),
        ok_ids.difference(&stored_ids).collect::<Vec<_>>()
    );
    for (id, offset) in &ok {
        assert_eq!(stored[id], vec![*offset], "{id} reported at another offset");
    }
    eprintln!(
        "outage test: healthy lost after {healthy_lost:?}, healthy again {recovered:?} after \
         resume; {} accepted ({} ok, {failed} not stored), {unavailable} refused unavailable; \
         stats during {during:?}; final {stats:?}; {:?} in all",
        ledger.accepted.len(),
        ok.len(),
        test_started.elapsed()
    );
}
