//! Restore benchmark: how long a start takes from a snapshot plus the
//! journal's tail, against a full replay, over a large marketplace and a
//! long journal of real engine events. Figures go to `BENCHMARKS.md`.
//!
//! ```text
//! cargo run --release -p leadex-benches --bin restore -- \
//!     [--campaigns 100000] [--events 1000000] [--tail 100000] [--dir PATH] [--runs 3]
//! ```
//!
//! 1. Generates `--events` journal events by running the engine itself
//!    (pings with bids, a quarter of them posted and sold) over a synthetic
//!    marketplace, with a clock moving 4 ms per event (a million events
//!    span about an hour), into a file journal.
//! 2. Builds a snapshot covering all but the last `--tail` events, as the
//!    snapshotter would (replay into a second engine, image, encode, store).
//! 3. Restores `--runs` times: build the engine over the marketplace, read
//!    and check the snapshot, load the image, replay the tail; and once by
//!    full replay. Checks that both end in the same state digest.

use leadex_engine::spec::EngineSettings;
use leadex_engine::{Engine, Journal, JournalPosition, ManualClock};
use leadex_persistence::snapshot::{self, SnapshotContents};
use leadex_persistence::state::newest_snapshot;
use leadex_persistence::{
    FileJournal, FileJournalReader, FileSnapshotStore, FsyncPolicy, JournalOptions, SnapshotStore,
};
use rand::SeedableRng;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

struct Args {
    campaigns: usize,
    events: u64,
    tail: u64,
    dir: Option<PathBuf>,
    runs: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        campaigns: 100_000,
        events: 1_000_000,
        tail: 100_000,
        dir: None,
        runs: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let number = |v: String| v.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--campaigns" => a.campaigns = number(value()?)? as usize,
            "--events" => a.events = number(value()?)?,
            "--tail" => a.tail = number(value()?)?,
            "--runs" => a.runs = number(value()?)?.max(1) as usize,
            "--dir" => a.dir = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if a.tail > a.events {
        return Err("--tail cannot exceed --events".into());
    }
    Ok(a)
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("restore: {e}");
            std::process::exit(2);
        }
    };
    let scratch = tempfile::tempdir().expect("temporary directory");
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| scratch.path().to_path_buf());
    let market = leadex_config::synth::synthetic_marketplace(args.campaigns, 42);
    let clock = Arc::new(ManualClock::new(leadex_benches::BENCH_NOW_MS));
    let settings = EngineSettings::default();
    let new_engine = || {
        let started = Instant::now();
        let e = Engine::new(settings, &market, clock.clone()).expect("valid marketplace");
        (e, ms(started))
    };
    let mut options = JournalOptions::new(dir.join("journal"));
    options.fsync = FsyncPolicy::Never;

    // 1. A journal of real engine events.
    let started = Instant::now();
    let (live, _) = new_engine();
    let (journal, _) = FileJournal::open(options.clone(), &mut |_, _| {}).expect("journal");
    let seller = live.seller_by_id(&market.sellers[0].id).expect("a seller");
    let mut rng = rand::rngs::SmallRng::seed_from_u64(11);
    let (mut events, mut sales, mut pings) = (0u64, 0u64, 0u64);
    while events < args.events {
        let mut lead = leadex_config::synth::sample_lead(&mut rng);
        let answer = live.ping(&seller, &lead.ping).expect("ping");
        let Some(event) = answer.event.clone() else {
            continue;
        };
        journal.append(vec![event], None).expect("append");
        clock.advance_ms(4);
        events += 1;
        pings += 1;
        if pings % 4 == 0 && events < args.events {
            lead.contact.phone = format!("31{:08}", pings % 100_000_000);
            let bid = answer.bids[0].bid_id;
            if let Ok(st) = live.post(&seller, answer.ping_id, &[bid], &lead) {
                journal
                    .append(vec![st.event.clone()], None)
                    .expect("append");
                live.commit(&st);
                clock.advance_ms(4);
                events += 1;
                sales += 1;
            }
        }
    }
    journal.shutdown();
    drop(journal);
    let journal_bytes: u64 = std::fs::read_dir(dir.join("journal"))
        .expect("journal dir")
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "journal: {events} events ({pings} pings with bids, {sales} sales), {:.1} MB, generated in {:.1} s",
        journal_bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );

    // 2. The snapshot the snapshotter would have taken `tail` events ago.
    let covered = args.events - args.tail;
    let started = Instant::now();
    let (shadow, _) = new_engine();
    FileJournalReader::open(dir.join("journal"))
        .expect("reader")
        .replay_range(0, Some(covered), &mut |_, e| {
            shadow.apply(&e);
        })
        .expect("replay");
    let contents = SnapshotContents {
        position: JournalPosition::File { last_lsn: covered },
        taken_at_ms: shadow.now_ms(),
        marketplace: snapshot::encode_marketplace(&market),
        engine: shadow.image(),
        extensions: Vec::new(),
    };
    let image = &contents.engine;
    let bytes = snapshot::encode(&contents).expect("encode");
    let store = FileSnapshotStore::open(dir.join("snapshots")).expect("store");
    store.put(&bytes).expect("put");
    println!(
        "snapshot at LSN {covered}: {:.1} MB ({} counters, {} pending pings, {} dedupe, {} phones, {} recent leads), built in {:.0} ms",
        bytes.len() as f64 / 1e6,
        image.counters.len(),
        image.pending.len(),
        image.dedupe.len(),
        image.phone_sales.len(),
        image.recent_leads.len(),
        ms(started)
    );
    drop(contents);
    drop(shadow);

    // 3. Restores.
    let mut totals = Vec::new();
    let mut digest = 0;
    for run in 0..args.runs {
        let started = Instant::now();
        let (engine, build_ms) = new_engine();
        let t = Instant::now();
        let (newest, rejected) = newest_snapshot(&store, &|_| true).expect("read snapshot");
        assert!(rejected.is_empty(), "{rejected:?}");
        let newest = newest.expect("a snapshot");
        let read_ms = ms(t);
        let t = Instant::now();
        engine.restore_image(&newest.engine);
        let load_ms = ms(t);
        drop(newest);
        let t = Instant::now();
        let (journal, replayed) = FileJournal::open_after(options.clone(), covered, &mut |_, e| {
            engine.apply(&e);
        })
        .expect("tail");
        let tail_ms = ms(t);
        let total = ms(started);
        drop(journal);
        digest = engine.state_digest();
        println!(
            "restore run {run}: total {total:.0} ms = engine build {build_ms:.0} + snapshot read+check+decode {read_ms:.0} + load image {load_ms:.0} + tail replay {tail_ms:.0} ({} events); without the engine build {:.0} ms",
            replayed.events,
            total - build_ms
        );
        totals.push(total - build_ms);
    }
    totals.sort_by(f64::total_cmp);
    println!(
        "restore from snapshot + tail (median of {}, engine build excluded): {:.0} ms",
        totals.len(),
        totals[totals.len() / 2]
    );
    let started = Instant::now();
    let (engine, build_ms) = new_engine();
    let t = Instant::now();
    let (journal, replayed) = FileJournal::open_after(options, 0, &mut |_, e| {
        engine.apply(&e);
    })
    .expect("full replay");
    drop(journal);
    println!(
        "full replay: total {:.0} ms = engine build {build_ms:.0} + replay {:.0} ({} events)",
        ms(started),
        ms(t),
        replayed.events
    );
    assert_eq!(
        engine.state_digest(),
        digest,
        "snapshot + tail and full replay must agree"
    );
    println!("state digest {digest:016x}: snapshot + tail equals full replay");
}
