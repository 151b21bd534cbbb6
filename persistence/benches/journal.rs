//! Append throughput of `FileJournal`, in events per second, with fsync
//! `Always` and `Never`, for 1 and 8 concurrent appenders.
//!
//! Each appender works like a post handler: it appends one `LeadSold` event
//! and waits for its durable callback before the next, so with one appender
//! a `Always` iteration costs one fsync, and with eight, group commit
//! shares each fsync between the appends that queued meanwhile. The journal
//! lives in a temporary directory on the same file system as `$TMPDIR`.
//!
//! Run: `cargo bench -p leadex-persistence --bench journal -- --warm-up-time 1 --measurement-time 3`

// criterion's `criterion_group!` generates a public function without docs.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use leadex_engine::{Event, Journal};
use leadex_persistence::{testing, FileJournal, FsyncPolicy, JournalOptions};
use std::time::{Duration, Instant};

const EVENT_VARIETY: u64 = 256;

/// Runs `appends` closed-loop appends split over `appenders` threads.
fn run(journal: &FileJournal, events: &[Event], appenders: u64, appends: u64) -> Duration {
    let started = Instant::now();
    std::thread::scope(|scope| {
        for appender in 0..appenders {
            let share = appends / appenders + u64::from(appender < appends % appenders);
            scope.spawn(move || {
                let (tx, rx) = crossbeam_channel::bounded(1);
                for i in 0..share {
                    let tx = tx.clone();
                    let event = events[((appender * 31 + i) % EVENT_VARIETY) as usize].clone();
                    journal
                        .append(
                            vec![event],
                            Some(Box::new(move |result| tx.send(result).unwrap())),
                        )
                        .expect("the queue is larger than the appenders");
                    rx.recv().unwrap().expect("durable");
                }
            });
        }
    });
    started.elapsed()
}

fn append_throughput(c: &mut Criterion) {
    let events: Vec<Event> = (0..EVENT_VARIETY).map(testing::lead_sold).collect();
    for fsync in [FsyncPolicy::Always, FsyncPolicy::Never] {
        let mut group = c.benchmark_group(format!("append/fsync_{fsync:?}").to_lowercase());
        group.throughput(Throughput::Elements(1));
        if fsync == FsyncPolicy::Always {
            // Each sample costs real fsyncs; fewer samples keep the run short.
            group.sample_size(10);
        }
        for appenders in [1u64, 8] {
            let dir = tempfile::tempdir().unwrap();
            let mut options = JournalOptions::new(dir.path());
            options.fsync = fsync;
            let (journal, _) = FileJournal::open(options, &mut |_, _| {}).unwrap();
            group.bench_with_input(
                BenchmarkId::new("appenders", appenders),
                &appenders,
                |b, &appenders| {
                    b.iter_custom(|iterations| run(&journal, &events, appenders, iterations));
                },
            );
            let stats = journal.stats();
            let mean_us = stats
                .fsync_latency_us_total
                .checked_div(stats.fsyncs)
                .unwrap_or(0);
            eprintln!(
                "  {fsync:?}/{appenders} appenders: {} events in {} batches ({:.1} events/batch), \
                 {} fsyncs, fsync mean {mean_us} µs, max {} µs",
                stats.appended_events,
                stats.batches_written,
                stats.appended_events as f64 / stats.batches_written.max(1) as f64,
                stats.fsyncs,
                stats.fsync_latency_us_max,
            );
        }
        group.finish();
    }
}

criterion_group!(benches, append_throughput);
criterion_main!(benches);
