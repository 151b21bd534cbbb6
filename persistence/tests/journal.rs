//! The journal through its public API, on real files: round trips, restarts,
//! rotation, torn tails, corruption, concurrency, back-pressure, locking,
//! and a property test of crashes at any byte.

use leadex_engine::event::EVENT_FORMAT_VERSION;
use leadex_engine::journal::{Lsn, ReplayStats};
use leadex_engine::{Event, Journal, JournalError, JournalReader};
use leadex_persistence::format::{self, SEGMENT_HEADER_BYTES};
use leadex_persistence::{
    testing, FileJournal, FileJournalReader, FsyncPolicy, JournalOptions, PersistenceError,
};
use parking_lot::Mutex;
use proptest::prelude::*;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// What replay visited.
type Replayed = Vec<(Lsn, Event)>;

/// Per appender thread: (sequence number, callback result), in call order.
type Acknowledgements = Arc<Vec<Mutex<Vec<(u64, Result<Lsn, JournalError>)>>>>;

fn options(dir: &Path, fsync: FsyncPolicy) -> JournalOptions {
    let mut options = JournalOptions::new(dir);
    options.fsync = fsync;
    options
}

fn open(
    options: &JournalOptions,
) -> Result<(FileJournal, ReplayStats, Replayed), PersistenceError> {
    let mut seen = vec![];
    let (journal, stats) =
        FileJournal::open(options.clone(), &mut |lsn, event| seen.push((lsn, event)))?;
    assert_eq!(stats.events, seen.len() as u64);
    Ok((journal, stats, seen))
}

fn append_and_wait(journal: &FileJournal, events: Vec<Event>) -> Result<Lsn, JournalError> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    journal.append(
        events,
        Some(Box::new(move |result| tx.send(result).unwrap())),
    )?;
    rx.recv().expect("callback called")
}

fn numbered(events: &[Event]) -> Vec<(Lsn, Event)> {
    events
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, event)| (i as Lsn + 1, event))
        .collect()
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "ldxj"))
        .collect();
    paths.sort();
    paths
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

fn truncate(path: &Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn append_bytes(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

fn flip_byte(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x5a;
    std::fs::write(path, bytes).unwrap();
}

/// Seed the testing builders embedded in the event's id.
fn seed_of(event: &Event) -> u64 {
    match event {
        Event::PingIssued(ping) => (ping.ping_id.0 >> 64) as u64,
        Event::LeadSold(sold) => (sold.lead_id.0 >> 64) as u64,
        Event::Admin(_) | Event::Market(_) | Event::Routing(_) => {
            unreachable!("the testing builders make no admin, market or routing records")
        }
    }
}

/// A journal of `events`, each appended on its own and made durable.
fn journal_with(dir: &Path, events: &[Event]) -> JournalOptions {
    let options = options(dir, FsyncPolicy::Never);
    let (journal, _, _) = open(&options).unwrap();
    for event in events {
        append_and_wait(&journal, vec![event.clone()]).unwrap();
    }
    options
}

#[test]
fn many_events_of_both_kinds_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let options = options(dir.path(), FsyncPolicy::Always);
    let (journal, stats, seen) = open(&options).unwrap();
    assert_eq!((stats, seen.len()), (ReplayStats::default(), 0));

    let events: Vec<Event> = (0..600).map(testing::event).collect();
    let (tx, rx) = crossbeam_channel::unbounded();
    let mut expected_lsns = vec![];
    let mut lsn = 0;
    // Appends of 1 to 4 events, all in flight at once.
    for group in events
        .chunks(4)
        .flat_map(|chunk| chunk.chunks(1 + chunk.len() % 3))
    {
        lsn += group.len() as Lsn;
        expected_lsns.push(lsn);
        let tx = tx.clone();
        journal
            .append(
                group.to_vec(),
                Some(Box::new(move |result| tx.send(result).unwrap())),
            )
            .unwrap();
    }
    let acknowledged: Vec<Lsn> = (0..expected_lsns.len())
        .map(|_| rx.recv().unwrap().unwrap())
        .collect();
    assert_eq!(
        acknowledged, expected_lsns,
        "callbacks in append order with each append's last LSN"
    );

    let stats = journal.stats();
    assert_eq!((stats.appended_events, stats.last_lsn), (600, 600));
    assert!(
        stats.fsyncs >= 1 && stats.fsyncs <= stats.batches_written,
        "{stats:?}"
    );
    assert!(stats.fsync_latency_us_max >= stats.fsync_latency_us_last);
    drop(journal);

    let (_journal, stats, seen) = open(&options).unwrap();
    assert_eq!(
        stats,
        ReplayStats {
            events: 600,
            torn_bytes_cut: 0
        }
    );
    assert_eq!(seen, numbered(&events));
}

#[test]
fn reopening_continues_the_lsns() {
    let dir = tempfile::tempdir().unwrap();
    let options = options(dir.path(), FsyncPolicy::Always);
    let (journal, _, _) = open(&options).unwrap();
    assert_eq!(
        append_and_wait(&journal, vec![testing::event(1), testing::event(2)]),
        Ok(2)
    );
    assert_eq!(append_and_wait(&journal, vec![testing::event(3)]), Ok(3));
    drop(journal);

    let (journal, _, seen) = open(&options).unwrap();
    assert_eq!(seen.last().map(|(lsn, _)| *lsn), Some(3));
    assert_eq!(journal.stats().last_lsn, 3);
    assert_eq!(append_and_wait(&journal, vec![testing::event(4)]), Ok(4));
    // An empty append is acknowledged with the LSN before it.
    assert_eq!(append_and_wait(&journal, vec![]), Ok(4));
    drop(journal);

    let (_journal, _, seen) = open(&options).unwrap();
    assert_eq!(
        seen,
        numbered(&(1..=4).map(testing::event).collect::<Vec<_>>())
    );
}

#[test]
fn segments_rotate_and_replay_across_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = options(dir.path(), FsyncPolicy::Never);
    options.segment_bytes = 2_048;
    let events: Vec<Event> = (0..200).map(testing::event).collect();
    let (journal, _, _) = open(&options).unwrap();
    for event in &events {
        append_and_wait(&journal, vec![event.clone()]).unwrap();
    }
    drop(journal);

    let paths = segments(dir.path());
    assert!(paths.len() > 10, "only {} segments", paths.len());
    let mut expected_first_lsn = 1;
    for (index, path) in paths.iter().enumerate() {
        let name = path.file_name().unwrap().to_str().unwrap();
        assert_eq!(
            name,
            format::segment_file_name(expected_first_lsn),
            "segments are named by their first LSN"
        );
        let records = match paths.get(index + 1) {
            Some(next) => {
                format::parse_segment_file_name(next.file_name().unwrap().to_str().unwrap())
                    .unwrap()
                    - expected_first_lsn
            }
            None => 201 - expected_first_lsn,
        };
        if index + 1 < paths.len() {
            // Rotated once full: at least segment_bytes, at most one batch
            // (here one record, under 1 KiB) more.
            let len = file_len(path);
            assert!((2_048..2_048 + 1_024).contains(&len), "{name}: {len} bytes");
        }
        expected_first_lsn += records;
    }

    let (journal, stats, seen) = open(&options).unwrap();
    assert_eq!(stats.events, 200);
    assert_eq!(seen, numbered(&events));
    assert_eq!(
        append_and_wait(&journal, vec![testing::event(999)]),
        Ok(201)
    );
    drop(journal);

    let mut reader = FileJournalReader::open(dir.path()).unwrap();
    let mut read = vec![];
    reader
        .replay(&mut |lsn, event| read.push((lsn, event)))
        .unwrap();
    assert_eq!(read.len(), 201);
    assert_eq!(read[..200], numbered(&events)[..]);
}

#[test]
fn a_torn_last_record_is_cut_at_every_byte_and_appends_follow_it() {
    let template = tempfile::tempdir().unwrap();
    let events: Vec<Event> = (0..5).map(testing::event).collect();
    journal_with(template.path(), &events[..4]);
    let segment_name = segments(template.path())[0].file_name().unwrap().to_owned();
    let last_start = file_len(&template.path().join(&segment_name));
    journal_with(template.path(), &events[4..]);
    let last_end = file_len(&template.path().join(&segment_name));
    assert!(last_end - last_start > 100, "the last record is realistic");

    let replacement = testing::lead_sold(77);
    for cut in last_start..last_end {
        let dir = tempfile::tempdir().unwrap();
        let segment = dir.path().join(&segment_name);
        std::fs::copy(template.path().join(&segment_name), &segment).unwrap();
        truncate(&segment, cut);

        let options = options(dir.path(), FsyncPolicy::Never);
        let (journal, stats, seen) = open(&options).unwrap();
        assert_eq!(seen, numbered(&events[..4]), "cut at {cut}");
        assert_eq!(stats.torn_bytes_cut, cut - last_start, "cut at {cut}");
        assert_eq!(
            file_len(&segment),
            last_start,
            "the tail was cut off the file"
        );
        assert_eq!(append_and_wait(&journal, vec![replacement.clone()]), Ok(5));
        drop(journal);

        let (_journal, stats, seen) = open(&options).unwrap();
        assert_eq!(stats.torn_bytes_cut, 0);
        assert_eq!(seen.len(), 5);
        assert_eq!(seen[4], (5, replacement.clone()), "cut at {cut}");
    }
}

#[test]
fn garbage_and_zeros_at_the_tail_are_cut() {
    let events: Vec<Event> = (0..6).map(testing::event).collect();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let garbage: Vec<u8> = (0..1_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    for tail in [garbage, vec![0u8; 4_096], vec![0xff; 3]] {
        let dir = tempfile::tempdir().unwrap();
        let options = journal_with(dir.path(), &events);
        let segment = segments(dir.path())[0].clone();
        let good_len = file_len(&segment);
        append_bytes(&segment, &tail);

        // A reader sees the same events and leaves the file alone.
        let mut reader = FileJournalReader::open(dir.path()).unwrap();
        let stats = reader.replay(&mut |_, _| {}).unwrap();
        assert_eq!(
            stats,
            ReplayStats {
                events: 6,
                torn_bytes_cut: tail.len() as u64
            }
        );
        assert_eq!(file_len(&segment), good_len + tail.len() as u64);

        let (journal, stats, seen) = open(&options).unwrap();
        assert_eq!(seen, numbered(&events));
        assert_eq!(stats.torn_bytes_cut, tail.len() as u64);
        assert_eq!(file_len(&segment), good_len);
        assert_eq!(append_and_wait(&journal, vec![testing::event(50)]), Ok(7));
    }
}

#[test]
fn a_damaged_record_before_good_ones_is_corrupt_and_nothing_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let events: Vec<Event> = (0..6).map(testing::event).collect();
    let options = journal_with(dir.path(), &events[..2]);
    let segment = segments(dir.path())[0].clone();
    let third_start = file_len(&segment);
    journal_with(dir.path(), &events[2..]);
    let len = file_len(&segment);

    flip_byte(&segment, third_start + 30);
    let error = open(&options).unwrap_err();
    match &error {
        PersistenceError::Corrupt {
            segment: at,
            offset,
            reason,
        } => {
            assert_eq!((at, *offset), (&segment, third_start));
            assert!(reason.contains("valid record follows"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other}"),
    }
    assert!(
        error.to_string().contains(segment.to_str().unwrap()),
        "the message names the file: {error}"
    );
    assert_eq!(file_len(&segment), len, "corruption is never cut");

    // The reader refuses too, through the engine's error type.
    let mut reader = FileJournalReader::open(dir.path()).unwrap();
    assert!(matches!(
        reader.replay(&mut |_, _| {}),
        Err(JournalError::Corrupt { .. })
    ));
}

#[test]
fn damage_in_an_earlier_segment_is_corrupt_even_at_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = options(dir.path(), FsyncPolicy::Never);
    options.segment_bytes = 1_024;
    let (journal, _, _) = open(&options).unwrap();
    for seed in 0..40 {
        append_and_wait(&journal, vec![testing::event(seed)]).unwrap();
    }
    drop(journal);
    let paths = segments(dir.path());
    assert!(paths.len() >= 3);
    // The last byte of the first segment: the end of a record, as a torn
    // write would leave it, but this segment is not the last one.
    flip_byte(&paths[0], file_len(&paths[0]) - 1);
    let error = open(&options).unwrap_err();
    assert!(
        matches!(&error, PersistenceError::Corrupt { segment, reason, .. } if *segment == paths[0] && reason.contains("not the last")),
        "{error}"
    );
}

#[test]
fn a_missing_segment_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = options(dir.path(), FsyncPolicy::Never);
    options.segment_bytes = 1_024;
    let (journal, _, _) = open(&options).unwrap();
    for seed in 0..40 {
        append_and_wait(&journal, vec![testing::event(seed)]).unwrap();
    }
    drop(journal);
    let paths = segments(dir.path());
    std::fs::remove_file(&paths[1]).unwrap();
    let error = open(&options).unwrap_err();
    assert!(
        error.to_string().contains("a segment is missing"),
        "{error}"
    );
}

/// A record built from the documented layout, not from the crate's encoder.
fn handmade_record(salt: u32, version: u16, payload: &[u8]) -> Vec<u8> {
    let mut body = version.to_le_bytes().to_vec();
    body.extend_from_slice(payload);
    let length = body.len() as u32;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&salt.to_le_bytes());
    hasher.update(&length.to_le_bytes());
    hasher.update(&body);
    let mut record = length.to_le_bytes().to_vec();
    record.extend_from_slice(&hasher.finalize().to_le_bytes());
    record.extend_from_slice(&body);
    record
}

#[test]
fn the_documented_record_layout_is_what_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let options = journal_with(dir.path(), &[testing::event(1)]);
    let segment = segments(dir.path())[0].clone();
    let header = std::fs::read(&segment).unwrap()[..SEGMENT_HEADER_BYTES].to_vec();
    let salt = u32::from_le_bytes(header[20..24].try_into().unwrap());
    let event = testing::lead_sold(2);
    append_bytes(
        &segment,
        &handmade_record(
            salt,
            EVENT_FORMAT_VERSION,
            &postcard::to_stdvec(&event).unwrap(),
        ),
    );
    let (_journal, _, seen) = open(&options).unwrap();
    assert_eq!(seen, vec![(1, testing::event(1)), (2, event)]);
}

#[test]
fn an_unknown_event_version_is_refused_even_at_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let options = journal_with(dir.path(), &[testing::event(1)]);
    let segment = segments(dir.path())[0].clone();
    let offset = file_len(&segment);
    let salt = u32::from_le_bytes(std::fs::read(&segment).unwrap()[20..24].try_into().unwrap());
    let payload = postcard::to_stdvec(&testing::event(2)).unwrap();
    append_bytes(
        &segment,
        &handmade_record(salt, EVENT_FORMAT_VERSION + 1, &payload),
    );
    let error = open(&options).unwrap_err();
    assert!(
        matches!(&error, PersistenceError::Corrupt { offset: at, reason, .. }
            if *at == offset && reason.contains("unknown event format version 2")),
        "{error}"
    );
    assert_eq!(
        file_len(&segment),
        offset + 10 + payload.len() as u64,
        "a known-good CRC is never cut"
    );
}

#[test]
fn an_unknown_segment_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let options = journal_with(dir.path(), &[testing::event(1)]);
    let segment = segments(dir.path())[0].clone();
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[8..10].copy_from_slice(&2u16.to_le_bytes());
    let crc = crc32fast::hash(&bytes[..24]);
    bytes[24..28].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&segment, bytes).unwrap();
    let error = open(&options).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("unknown segment format version 2"),
        "{error}"
    );
}

#[test]
fn eight_threads_append_concurrently_and_every_callback_runs_once() {
    const THREADS: u64 = 8;
    const APPENDS: u64 = 1_000;
    let dir = tempfile::tempdir().unwrap();
    let options = options(dir.path(), FsyncPolicy::Always);
    let (journal, _, _) = open(&options).unwrap();
    let journal = Arc::new(journal);
    // (thread, seq) -> results received.
    let results: Acknowledgements =
        Arc::new((0..THREADS).map(|_| Mutex::new(Vec::new())).collect());
    let threads: Vec<_> = (0..THREADS)
        .map(|thread| {
            let journal = journal.clone();
            let results = results.clone();
            std::thread::spawn(move || {
                for seq in 0..APPENDS {
                    let results = results.clone();
                    let event = testing::event(thread * 1_000_000 + seq);
                    journal
                        .append(
                            vec![event],
                            Some(Box::new(move |result| {
                                results[thread as usize].lock().push((seq, result))
                            })),
                        )
                        .expect("the queue holds every append");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    journal.shutdown();

    for (thread, results) in results.iter().enumerate() {
        let results = results.lock();
        let seqs: Vec<u64> = results.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(
            seqs,
            (0..APPENDS).collect::<Vec<_>>(),
            "thread {thread}: each callback once, in order"
        );
        let lsns: Vec<Lsn> = results
            .iter()
            .map(|(_, result)| result.clone().unwrap())
            .collect();
        assert!(
            lsns.windows(2).all(|pair| pair[0] < pair[1]),
            "thread {thread}: LSNs strictly increase"
        );
    }
    let stats = journal.stats();
    assert_eq!(stats.appended_events, THREADS * APPENDS);
    assert!(
        stats.batches_written < THREADS * APPENDS,
        "group commit batched something: {stats:?}"
    );
    drop(journal);

    let (_journal, stats, seen) = open(&options).unwrap();
    assert_eq!(stats.events, THREADS * APPENDS);
    let mut next_seq = vec![0u64; THREADS as usize];
    for (index, (lsn, event)) in seen.iter().enumerate() {
        assert_eq!(*lsn, index as Lsn + 1);
        let seed = seed_of(event);
        let (thread, seq) = ((seed / 1_000_000) as usize, seed % 1_000_000);
        assert_eq!(seq, next_seq[thread], "thread {thread}'s order is kept");
        assert_eq!(*event, testing::event(seed));
        next_seq[thread] += 1;
    }
}

#[test]
fn a_full_queue_refuses_without_blocking_and_drops_the_callback_uncalled() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = options(dir.path(), FsyncPolicy::Never);
    options.queue_capacity = 4;
    let (journal, _, _) = open(&options).unwrap();

    // Hold the writer inside the first callback so the queue cannot drain.
    let (entered_tx, entered_rx) = crossbeam_channel::bounded(1);
    let (release_tx, release_rx) = crossbeam_channel::bounded::<()>(1);
    journal
        .append(
            vec![testing::event(0)],
            Some(Box::new(move |_| {
                entered_tx.send(()).unwrap();
                release_rx.recv().unwrap();
            })),
        )
        .unwrap();
    entered_rx.recv().unwrap();

    let acknowledged = Arc::new(Mutex::new(vec![]));
    for seed in 1..=4 {
        let acknowledged = acknowledged.clone();
        journal
            .append(
                vec![testing::event(seed)],
                Some(Box::new(move |result| acknowledged.lock().push(result))),
            )
            .unwrap();
    }
    let refused_called = Arc::new(AtomicBool::new(false));
    let flag = refused_called.clone();
    let refused = journal.append(
        vec![testing::event(5)],
        Some(Box::new(move |_| flag.store(true, Ordering::SeqCst))),
    );
    assert_eq!(refused, Err(JournalError::QueueFull));

    release_tx.send(()).unwrap();
    journal.shutdown();
    assert_eq!(*acknowledged.lock(), vec![Ok(2), Ok(3), Ok(4), Ok(5)]);
    assert!(
        !refused_called.load(Ordering::SeqCst),
        "a refused append's callback is never called"
    );
}

#[test]
fn shutdown_drains_the_queue_then_refuses_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let options = options(dir.path(), FsyncPolicy::Never);
    let (journal, _, _) = open(&options).unwrap();
    let called = Arc::new(AtomicUsize::new(0));
    for seed in 0..500 {
        let called = called.clone();
        journal
            .append(
                vec![testing::event(seed)],
                Some(Box::new(move |result| {
                    result.unwrap();
                    called.fetch_add(1, Ordering::SeqCst);
                })),
            )
            .unwrap();
    }
    journal.shutdown();
    assert_eq!(
        called.load(Ordering::SeqCst),
        500,
        "every queued callback ran before shutdown returned"
    );
    let stats = journal.stats();
    assert!(!stats.accepting);
    assert!(
        stats.fsyncs >= 1,
        "shutdown fsyncs even under FsyncPolicy::Never"
    );
    assert_eq!(
        journal.append(vec![testing::event(1)], None),
        Err(JournalError::Closed)
    );
    journal.shutdown();
    drop(journal);
    let (_journal, stats, _) = open(&options).unwrap();
    assert_eq!(stats.events, 500);
}

#[test]
fn the_directory_lock_refuses_a_second_opener() {
    let dir = tempfile::tempdir().unwrap();
    let options = options(dir.path(), FsyncPolicy::Never);
    let (journal, _, _) = open(&options).unwrap();
    let error = open(&options).unwrap_err();
    assert!(matches!(error, PersistenceError::Locked { .. }), "{error}");
    assert!(
        error.to_string().contains(dir.path().to_str().unwrap()),
        "{error}"
    );

    // A reader does not need the lock.
    append_and_wait(&journal, vec![testing::event(1)]).unwrap();
    let mut reader = FileJournalReader::open(dir.path()).unwrap();
    assert_eq!(reader.replay(&mut |_, _| {}).unwrap().events, 1);

    drop(journal);
    assert!(
        open(&options).is_ok(),
        "the lock is released with the journal"
    );
}

#[test]
fn an_oversized_event_is_refused_at_append_time() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _, _) = open(&options(dir.path(), FsyncPolicy::Never)).unwrap();
    let mut event = testing::lead_sold(1);
    let Event::LeadSold(sold) = &mut event else {
        unreachable!()
    };
    sold.lead.contact.address = Some("x".repeat(format::RECORD_BODY_BYTES_MAX));
    let refused = journal.append(vec![testing::event(0), event], None);
    assert!(
        matches!(refused, Err(JournalError::Storage(ref m)) if m.contains("limit")),
        "{refused:?}"
    );
    assert_eq!(
        append_and_wait(&journal, vec![testing::event(2)]),
        Ok(1),
        "nothing of the refused append was written"
    );
}

#[test]
fn invalid_options_are_refused_before_touching_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = options(&dir.path().join("journal"), FsyncPolicy::Never);
    options.queue_capacity = 0;
    assert!(matches!(
        open(&options),
        Err(PersistenceError::InvalidOptions { .. })
    ));
    assert!(!options.dir.exists());
    options.queue_capacity = 1;
    let (journal, _, _) = open(&options).unwrap();
    assert!(options.dir.is_dir(), "a missing directory is created");
    assert_eq!(segments(&options.dir).len(), 1);
    drop(journal);
}

/// Simulates a crash that kept the first `kept_bytes` record bytes of the
/// journal: the segment holding that point is cut there and every later
/// segment is removed (a later segment exists only once the earlier one was
/// synced whole). Returns the events and torn bytes replay must find.
fn crash_at(dir: &Path, events: &[Event], kept_bytes: u64) -> (u64, u64) {
    let paths = segments(dir);
    let mut remaining = kept_bytes;
    for (index, path) in paths.iter().enumerate() {
        let body = file_len(path) - SEGMENT_HEADER_BYTES as u64;
        if remaining > body && index + 1 < paths.len() {
            remaining -= body;
            continue;
        }
        let first_lsn =
            format::parse_segment_file_name(path.file_name().unwrap().to_str().unwrap()).unwrap();
        let kept = remaining.min(body);
        truncate(path, SEGMENT_HEADER_BYTES as u64 + kept);
        for later in &paths[index + 1..] {
            std::fs::remove_file(later).unwrap();
        }
        let mut whole_records = 0;
        let mut whole_bytes = 0;
        for event in &events[first_lsn as usize - 1..] {
            let size = format::record_bytes(event).unwrap() as u64;
            if whole_bytes + size > kept {
                break;
            }
            whole_bytes += size;
            whole_records += 1;
        }
        return (first_lsn - 1 + whole_records, kept - whole_bytes);
    }
    unreachable!("a journal has at least one segment")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Whatever was appended, in whatever groups, and wherever a crash cuts
    /// the files, replay gives back exactly a prefix of the appended events
    /// (every whole record before the cut), and appends continue after it.
    #[test]
    fn replay_after_a_crash_at_any_byte_is_a_prefix(
        groups in prop::collection::vec(prop::collection::vec(0u64..1_000_000, 0..4), 1..24),
        small_segments in any::<bool>(),
        cut_fraction in 0.0f64..=1.0,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut options = options(dir.path(), FsyncPolicy::Never);
        if small_segments {
            options.segment_bytes = 900;
        }
        let (journal, _, _) = open(&options).unwrap();
        let mut appended = vec![];
        for group in &groups {
            let events: Vec<Event> = group.iter().map(|seed| testing::event(*seed)).collect();
            appended.extend(events.iter().cloned());
            journal.append(events, None).unwrap();
        }
        drop(journal);

        let total: u64 = segments(dir.path()).iter().map(|path| file_len(path) - SEGMENT_HEADER_BYTES as u64).sum();
        let kept_bytes = (total as f64 * cut_fraction) as u64;
        let (expected_events, expected_torn) = crash_at(dir.path(), &appended, kept_bytes);

        let (journal, stats, seen) = open(&options).unwrap();
        prop_assert_eq!(&seen, &numbered(&appended[..expected_events as usize]));
        prop_assert_eq!(stats.torn_bytes_cut, expected_torn);
        let next = testing::event(4_242_424);
        prop_assert_eq!(append_and_wait(&journal, vec![next.clone()]), Ok(expected_events + 1));
        drop(journal);
        let (_journal, _, seen) = open(&options).unwrap();
        prop_assert_eq!(seen.last(), Some(&(expected_events + 1, next)));
    }
}

#[test]
fn admin_records_are_journaled_and_replayed_in_order_with_sales() {
    let dir = tempfile::tempdir().unwrap();
    let admin = |i: u8| {
        Event::Admin(leadex_engine::event::AdminRecord {
            id: format!("a_{i:032x}"),
            at_ms: 1_700_000_000_000 + i64::from(i),
            kind: "key.created".into(),
            payload: vec![i; usize::from(i) * 7],
        })
    };
    let events = vec![
        admin(1),
        testing::lead_sold(2),
        admin(3),
        testing::ping_issued(4),
        admin(0),
    ];
    let options = journal_with(dir.path(), &events);
    let (_journal, _, replayed) = open(&options).unwrap();
    assert_eq!(
        replayed.into_iter().map(|(_, e)| e).collect::<Vec<_>>(),
        events
    );
}
