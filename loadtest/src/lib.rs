//! An open-loop load generator for the leadex seller API.
//!
//! Requests are sent at a fixed arrival rate whatever the server does, and
//! each latency is measured from the request's *intended* send time (request
//! `i` is due at `start + i / rate`), so a stalled server shows up in the
//! tail instead of silently slowing the generator down (coordinated omission
//! avoided, as in wrk2). Latencies go into HDR histograms, in microseconds.
//!
//! Leads come from the same samplers as the demo and synthetic marketplaces
//! (`leadex_config::synth`), one deterministic lead per request index and
//! seed, so bid rates are realistic and runs reproducible.
//!
//! ```
//! use leadex_loadtest::schedule::Schedule;
//! use std::time::Duration;
//!
//! // 200 requests/s for 3 s after a 1 s warm-up.
//! let schedule = Schedule::new(200, Duration::from_secs(1), Duration::from_secs(3));
//! assert_eq!(schedule.total(), 800);
//! assert_eq!(schedule.offset_of(201), Duration::from_millis(1_005));
//! assert!(!schedule.is_measured(199) && schedule.is_measured(200));
//! ```
//!
//! Modules: [`schedule`] (when each request is due), [`report`] (histograms,
//! percentiles, counts, the table and JSON), [`wire`] (request bodies),
//! [`run`] (connections and the driver) and [`cli`] (flags).
//!
//! Coming next for issue 3: `--find-max` (step the rate up until the SLO
//! breaks), `--baseline` (a bare hyper server answering a fixed bid, and
//! leadex's rate as a ratio of its maximum), `--slo FILE` with
//! `config/slo.toml` and a pass/fail exit code, a latency-by-rate plot
//! (`plotters`), optional CPU pinning, and `BENCHMARKS.md`.

pub mod cli;
pub mod report;
pub mod run;
pub mod schedule;
pub mod wire;
