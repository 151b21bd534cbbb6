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

/// Routing one lead among an agency's 10k agents: every agent licensed in
/// 3 of 10 states (so about 3,000 in the lead's state), 4 time zones, ZIP
/// offices around the lead, varied performance; the weighted strategy. The
/// assignment is released after each route so capacity never decides.
fn route_10k(c: &mut Criterion) {
    use leadex_engine::lead::{UsState, Vertical, Zip};
    use leadex_engine::routing::spec::{
        AgentSpec, LicenceSpec, Line, PerformanceSpec, RoutingSpec,
    };
    use leadex_engine::routing::{AgentGraph, RouteRequest, Workloads};
    let states = ["CA", "TX", "FL", "NY", "IL", "PA", "OH", "GA", "NC", "MI"];
    let zones = [
        "America/Los_Angeles",
        "America/Chicago",
        "America/New_York",
        "America/Denver",
    ];
    let agents = (0..10_000u32)
        .map(|i| AgentSpec {
            id: format!("agent-{i:05}"),
            agency_id: "acme".into(),
            licences: (0..3)
                .map(|k| LicenceSpec {
                    state: UsState::parse(states[((i * 7 + k * 3) % 10) as usize]).unwrap(),
                    line: Line::PersonalLines,
                })
                .collect(),
            appointments: vec![],
            captive_carrier: (i % 10 == 0).then(|| "state farm".into()),
            specializations: if i % 3 == 0 {
                vec![Vertical::Auto]
            } else {
                vec![]
            },
            zip: Zip::parse(&format!("9{:04}", (i * 37) % 6_000)),
            languages: if i % 4 == 0 {
                vec!["en".into(), "es".into()]
            } else {
                vec!["en".into()]
            },
            capacity: 20,
            time_zone: zones[(i % 4) as usize].into(),
            schedule: vec![],
            performance: PerformanceSpec {
                conversion_bps: ((i * 97) % 3_000) as u16,
                median_response_s: (i * 13) % 3_600,
                rating_centi: ((i * 31) % 500) as u16,
                success: vec![],
            },
            quality_tier: (i % 4) as u8,
            manager_id: None,
            team_id: Some(format!("team-{}", i % 50)),
            links: vec![],
            active: true,
        })
        .collect();
    let workloads = std::sync::Arc::new(Workloads::default());
    let graph = AgentGraph::build(
        &RoutingSpec {
            agents,
            agencies: vec![],
            teams: vec![],
        },
        &workloads,
    )
    .expect("the bench's agents are valid");
    let req = RouteRequest {
        agency_id: "acme",
        vertical: Vertical::Auto,
        state: UsState::parse("CA").unwrap(),
        zip: Zip::parse("90210").unwrap(),
        current_carrier: Some("state farm"),
        language: Some("es"),
        score_tier: 1,
        referring_agent: Some("agent-00042"),
        offered: &[],
        now_ms: leadex_benches::BENCH_NOW_MS,
    };
    let first = graph.route(&req).unwrap();
    eprintln!(
        "route among 10k agents: {} candidates",
        first.candidates.len()
    );
    graph.release(first.assigned.unwrap());
    c.bench_function("route/10k_agents", |b| {
        b.iter(|| {
            let out = graph.route(black_box(&req)).unwrap();
            let x = out.assigned.expect("an agent");
            graph.release(x);
            black_box(out.candidates.len())
        })
    });
}

criterion_group!(benches, match_and_auction, market_change, route_10k);
criterion_main!(benches);
