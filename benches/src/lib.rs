//! # leadex-benches
//!
//! Criterion benchmarks of the engine's hot path, run with
//! `cargo bench -p leadex-benches`. Inputs (synthetic marketplaces of 10k and
//! 100k campaigns and a fixed set of sampled pings) are built here, outside
//! the timed loops, from `leadex_config::synth` with fixed seeds so every run
//! measures the same work.
//!
//! ```
//! let (engine, pings) = leadex_benches::fixture(500, 64);
//! assert_eq!(pings.len(), 64);
//! assert!(engine.snapshot().campaigns.len() == 500);
//! ```

use leadex_engine::lead::Ping;
use leadex_engine::spec::EngineSettings;
use leadex_engine::{Engine, ManualClock};
use rand::SeedableRng;
use std::sync::Arc;

/// Monday 2026-11-23 17:00 UTC (noon in New York): inside business-hours
/// schedules, so scheduled campaigns take part as they would at peak.
pub const BENCH_NOW_MS: i64 = 1_795_453_200_000;

/// An engine over a synthetic marketplace of `campaigns` campaigns and
/// `pings` sampled pings (seeded; the same on every run).
pub fn fixture(campaigns: usize, pings: usize) -> (Engine, Vec<Ping>) {
    let market = leadex_config::synth::synthetic_marketplace(campaigns, 42);
    let clock = Arc::new(ManualClock::new(BENCH_NOW_MS));
    let engine = Engine::new(EngineSettings::default(), &market, clock)
        .expect("synthetic marketplace is valid");
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    let pings = (0..pings)
        .map(|_| leadex_config::synth::sample_ping(&mut rng))
        .collect();
    (engine, pings)
}
