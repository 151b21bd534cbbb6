//! Checkpoints over the file journal: a snapshot built beside the writer
//! restores exactly what the journal holds, the journal is compacted only
//! behind the older snapshot kept, and a compacted journal with no usable
//! snapshot refuses to start rather than restore a partial state.

use leadex_engine::spec::EngineSettings;
use leadex_engine::{Engine, Event, Journal, ManualClock};
use leadex_persistence::state::{checkpoint, newest_snapshot, EngineReplica, Replica};
use leadex_persistence::{testing, FileJournal, FileSnapshotStore, JournalOptions, SnapshotStore};
use std::path::Path;
use std::sync::Arc;

/// Inside the price lock and dedupe windows of `testing`'s events.
const NOW_MS: i64 = 1_700_000_000_000 + 500_000_000;

fn fresh_engine(clock: &Arc<ManualClock>) -> Engine {
    let market = leadex_engine::testing::market(&[], vec![]);
    Engine::new(EngineSettings::default(), &market, clock.clone()).unwrap()
}

fn fresh_replica(clock: &Arc<ManualClock>) -> Box<dyn Replica> {
    Box::new(EngineReplica {
        engine: Arc::new(fresh_engine(clock)),
    })
}

fn options(dir: &Path) -> JournalOptions {
    let mut o = JournalOptions::new(dir.join("journal"));
    o.segment_bytes = 8 * 1024; // many segments
    o.fsync = leadex_persistence::FsyncPolicy::Never; // speed; durability is not under test
    o
}

/// Appends `seeds` one at a time (one batch each, so segments rotate
/// often), each durable before the next.
fn append_all(journal: &FileJournal, seeds: std::ops::Range<u64>) -> Vec<Event> {
    let mut events = Vec::new();
    for seed in seeds {
        let event = testing::event(seed);
        events.push(event.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        journal
            .append(vec![event], Some(Box::new(move |r| tx.send(r).unwrap())))
            .unwrap();
        assert!(rx.recv().unwrap().is_ok());
    }
    events
}

fn segments(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("journal"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".ldxj"))
        .collect();
    names.sort();
    names
}

#[test]
fn checkpoints_restore_exactly_and_compact_behind_the_older_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let make = || fresh_engine(&clock);
    let replica = || fresh_replica(&clock);
    let store = FileSnapshotStore::open(dir.path().join("snapshots")).unwrap();
    let (journal, _) = FileJournal::open(options(dir.path()), &mut |_, _| {}).unwrap();

    let mut all = append_all(&journal, 0..300);
    let first = checkpoint(&replica, &store, &journal).unwrap().unwrap();
    assert_eq!(first.events, 300);
    let before_compaction = segments(dir.path());
    assert!(before_compaction.len() > 5, "{before_compaction:?}");
    assert_eq!(before_compaction[0], "00000000000000000001.ldxj");

    all.extend(append_all(&journal, 300..600));
    let second = checkpoint(&replica, &store, &journal).unwrap().unwrap();
    assert_eq!(second.events, 300, "built on the first snapshot");
    let after = segments(dir.path());
    assert_ne!(
        after[0], before_compaction[0],
        "compacted behind the first snapshot"
    );
    let first_lsn: u64 = after[0].trim_end_matches(".ldxj").parse().unwrap();
    assert!(
        first_lsn <= 301,
        "everything after the older snapshot is kept: {after:?}"
    );
    assert!(
        checkpoint(&replica, &store, &journal).unwrap().is_none(),
        "nothing new, no snapshot"
    );
    journal.shutdown();
    drop(journal);

    // Restore: newest snapshot + tail equals applying everything.
    let expected = make();
    for e in &all {
        expected.apply(e);
    }
    let restored = make();
    let (newest, rejected) = newest_snapshot(&store, &|_| true).unwrap();
    assert!(rejected.is_empty());
    let newest = newest.unwrap();
    restored.restore_image(&newest.engine);
    let leadex_engine::JournalPosition::File { last_lsn } = newest.position else {
        panic!("file position expected")
    };
    assert_eq!(last_lsn, 600);
    let (journal, replayed) =
        FileJournal::open_after(options(dir.path()), last_lsn, &mut |_, e| {
            restored.apply(&e);
        })
        .unwrap();
    assert_eq!(replayed.events, 0);
    assert_eq!(restored.image(), expected.image());
    assert_eq!(restored.state_digest(), expected.state_digest());

    // Falling back to the older snapshot still finds its whole tail.
    let older = store.list().unwrap().pop().unwrap();
    let older = leadex_persistence::snapshot::decode(&older.location, &older.bytes).unwrap();
    let from_older = make();
    from_older.restore_image(&older.engine);
    let leadex_engine::JournalPosition::File { last_lsn } = older.position else {
        panic!()
    };
    drop(journal);
    let (journal, replayed) =
        FileJournal::open_after(options(dir.path()), last_lsn, &mut |_, e| {
            from_older.apply(&e);
        })
        .unwrap();
    assert_eq!(replayed.events, 300);
    assert_eq!(from_older.image(), expected.image());
    drop(journal);

    // With every snapshot gone, a full replay is impossible: refuse.
    let error = FileJournal::open(options(dir.path()), &mut |_, _| {}).unwrap_err();
    assert!(error.to_string().contains("missing"), "{error}");
}

#[test]
fn a_snapshot_never_covers_what_is_not_durable() {
    // The snapshotter reads the files beside the writer up to the durable
    // LSN only; with appends racing, every snapshot's position is a prefix
    // that restore + tail completes exactly.
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let make = || fresh_engine(&clock);
    let replica = || fresh_replica(&clock);
    let store = FileSnapshotStore::open(dir.path().join("snapshots")).unwrap();
    let (journal, _) = FileJournal::open(options(dir.path()), &mut |_, _| {}).unwrap();
    let journal = Arc::new(journal);
    let writer = {
        let journal = journal.clone();
        std::thread::spawn(move || append_all(&journal, 0..1_000))
    };
    let mut taken = 0;
    while !writer.is_finished() {
        if checkpoint(&replica, &store, &*journal).unwrap().is_some() {
            taken += 1;
        }
    }
    let all = writer.join().unwrap();
    checkpoint(&replica, &store, &*journal).unwrap();
    let expected = make();
    for e in &all {
        expected.apply(e);
    }
    let (newest, _) = newest_snapshot(&store, &|_| true).unwrap();
    assert_eq!(
        newest.unwrap().engine,
        expected.image(),
        "after {taken} racing checkpoints"
    );
}
