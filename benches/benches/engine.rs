//! Matching + auction latency at 10k and 100k campaigns. (Engine::ping is
//! not benched here: identical pings repeat from the idempotency cache, so a
//! fixed ping set would measure the cache, not the auction.)

// criterion_group! generates a public function without docs.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use leadex_engine::auction::{run_auction, Scratch};
use std::hint::black_box;

fn match_and_auction(c: &mut Criterion) {
    let mut group = c.benchmark_group("match_auction");
    for campaigns in [10_000usize, 100_000] {
        let (engine, pings) = leadex_benches::fixture(campaigns, 1024);
        let snapshot = engine.snapshot();
        let seller = engine
            .seller_by_id("demo-seller")
            .expect("synthetic marketplaces have demo-seller");
        let settings = *engine.settings();
        let mut scratch = Scratch::default();
        let mut bids = 0usize;
        for p in &pings {
            if run_auction(
                &snapshot,
                &settings,
                &seller,
                p,
                leadex_benches::BENCH_NOW_MS,
                &mut scratch,
            )
            .is_ok()
            {
                bids += 1;
            }
        }
        eprintln!(
            "{campaigns} campaigns: {bids} of {} sampled pings get bids",
            pings.len()
        );
        let mut i = 0;
        group.bench_with_input(
            BenchmarkId::from_parameter(campaigns),
            &campaigns,
            |b, _| {
                b.iter(|| {
                    i = (i + 1) % pings.len();
                    let r = run_auction(
                        &snapshot,
                        &settings,
                        &seller,
                        &pings[i],
                        leadex_benches::BENCH_NOW_MS,
                        &mut scratch,
                    );
                    black_box(r.is_ok())
                })
            },
        );
    }
    group.finish();
}

/// One marketplace change (a campaign's price, as `PUT /v1/campaigns/{id}`
/// journals it) applied to the engine: the marketplace spec is copied, the
/// record put, and a new snapshot built and swapped in. Replay pays this
/// once per change too.
fn market_change(c: &mut Criterion) {
    use leadex_engine::event::{MarketChange, MarketRecord};
    use leadex_engine::Event;
    let mut group = c.benchmark_group("market_change");
    group.sample_size(10);
    for campaigns in [10_000usize, 100_000] {
        let (engine, _) = leadex_benches::fixture(campaigns, 1);
        let mut spec = engine.marketplace().campaigns[campaigns / 2].clone();
        let mut n = 0u64;
        group.bench_with_input(
            BenchmarkId::from_parameter(campaigns),
            &campaigns,
            |b, _| {
                b.iter(|| {
                    n += 1;
                    spec.price_cents = 1_000 + n % 1_000;
                    let event = Event::Market(MarketRecord {
                        id: format!("bench-{n}"),
                        at_ms: leadex_benches::BENCH_NOW_MS,
                        change: MarketChange::PutCampaign(Box::new(spec.clone())),
                        note: Vec::new(),
                    });
                    assert!(engine.apply(&event), "the change applies");
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, match_and_auction, market_change);
criterion_main!(benches);
