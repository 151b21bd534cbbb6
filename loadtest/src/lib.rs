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
//! Arrivals are released by a dedicated pacer thread sleeping until each
//! intended time (tens of microseconds late at most, and the lateness is
//! reported), not by tokio's timer, whose 1 ms ticks would add up to a
//! millisecond to every latency measured.
//!
//! `--find-max` steps the rate up until a step breaks the `find_max` bounds
//! of `config/slo.toml` ([`search`], [`findmax`]); `--baseline` runs the
//! same search against a bare hyper server answering a real bid answer
//! ([`baseline`]), and leadex's maximum as a share of the baseline's is the
//! headline figure. The exit code says whether the SLOs held ([`slo`]).
//!
//! `--scenario route` drives `POST /v1/route` with a buyer key instead of
//! the seller API, checking a sample of the answers (each candidate's
//! factors add up to its score); `--setup-route N` makes the account, its
//! agents and the key through the admin API ([`setup`]).
//!
//! Modules: [`schedule`] (when each request is due), [`report`] (histograms,
//! percentiles, counts, the table and JSON), [`wire`] (request bodies and
//! the route answer),
//! [`run`] (connections, the pacer and the driver), [`search`] (the rate
//! search), [`findmax`] (search, baseline and operating points),
//! [`baseline`] (the bare server), [`slo`] (objectives and checks),
//! [`plot`] (the latency-by-rate SVG), [`setup`] (the route scenario's
//! account) and [`cli`] (flags).

pub mod baseline;
pub mod cli;
pub mod findmax;
pub mod plot;
pub mod report;
pub mod run;
pub mod schedule;
pub mod search;
pub mod setup;
pub mod slo;
pub mod wire;
