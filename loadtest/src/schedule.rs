//! The open-loop arrival schedule: request `i` is intended at
//! `start + i / rate`, whatever the server does.
//!
//! Everything here is pure and takes times as arguments, so it is tested
//! without sleeping.

use std::ops::Add;
use std::time::Duration;

const NANOS_PER_S: u128 = 1_000_000_000;

/// When each request of a run is due, as an offset from the run's start.
/// Requests intended before `warmup` are sent but not measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    rate_per_s: u64,
    warmup: Duration,
    total: u64,
    warmup_count: u64,
}

impl Schedule {
    /// A schedule at `rate_per_s` (at least 1) for `warmup` then `measured`.
    pub fn new(rate_per_s: u64, warmup: Duration, measured: Duration) -> Self {
        assert!(rate_per_s > 0, "invariant: the rate is validated positive");
        let count_in = |d: Duration| -> u64 {
            // Requests whose offset i/rate falls in [0, d): ceil(d * rate).
            let scaled = d.as_nanos() * u128::from(rate_per_s);
            u64::try_from(scaled.div_ceil(NANOS_PER_S)).unwrap_or(u64::MAX)
        };
        let warmup_count = count_in(warmup);
        let total = count_in(warmup + measured);
        Self {
            rate_per_s,
            warmup,
            total,
            warmup_count,
        }
    }

    /// Requests per second.
    pub fn rate_per_s(&self) -> u64 {
        self.rate_per_s
    }

    /// Every request of the run, warm-up included.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Requests that are measured (intended at or after the warm-up).
    pub fn measured_count(&self) -> u64 {
        self.total - self.warmup_count
    }

    /// The warm-up length.
    pub fn warmup(&self) -> Duration {
        self.warmup
    }

    /// When request `index` is intended, after the start.
    pub fn offset_of(&self, index: u64) -> Duration {
        let nanos = u128::from(index) * NANOS_PER_S / u128::from(self.rate_per_s);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// When request `index` is intended, on any clock (`std` or tokio's).
    pub fn intended_at<I: Add<Duration, Output = I>>(&self, start: I, index: u64) -> I {
        start + self.offset_of(index)
    }

    /// Whether request `index` counts in the results (not warm-up).
    pub fn is_measured(&self, index: u64) -> bool {
        index >= self.warmup_count
    }

    /// How many requests are due `elapsed` after the start (those intended
    /// at or before it), at most [`Schedule::total`].
    pub fn due_by(&self, elapsed: Duration) -> u64 {
        let due = elapsed.as_nanos() * u128::from(self.rate_per_s) / NANOS_PER_S + 1;
        u64::try_from(due).unwrap_or(u64::MAX).min(self.total)
    }
}

/// The latency of a request intended at `intended` and answered at
/// `answered`: measured from the intended time, not from the actual send,
/// so time spent waiting for a free connection counts.
pub fn latency_from_intended<I>(intended: I, answered: I) -> Duration
where
    I: Ord + std::ops::Sub<I, Output = Duration>,
{
    if answered > intended {
        answered - intended
    } else {
        Duration::ZERO
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn arrivals_are_evenly_spaced_at_the_rate() {
        let s = Schedule::new(200, Duration::ZERO, Duration::from_secs(3));
        assert_eq!(s.total(), 600);
        assert_eq!(s.offset_of(0), Duration::ZERO);
        assert_eq!(s.offset_of(1), Duration::from_millis(5));
        assert_eq!(s.offset_of(599), Duration::from_millis(2_995));
        let start = Instant::now();
        assert_eq!(s.intended_at(start, 400), start + Duration::from_secs(2));
        // A rate that does not divide a second: no drift, 3 per second exactly.
        let s = Schedule::new(3, Duration::ZERO, Duration::from_secs(10));
        assert_eq!(s.total(), 30);
        assert_eq!(s.offset_of(3), Duration::from_secs(1));
        assert_eq!(s.offset_of(1), Duration::from_nanos(333_333_333));
        assert_eq!(s.offset_of(29), Duration::from_nanos(9_666_666_666));
    }

    #[test]
    fn warmup_requests_are_sent_but_not_measured() {
        let s = Schedule::new(100, Duration::from_millis(500), Duration::from_secs(2));
        assert_eq!(s.total(), 250);
        assert_eq!(s.measured_count(), 200);
        assert!(!s.is_measured(49));
        assert!(s.is_measured(50));
        assert_eq!(s.offset_of(50), Duration::from_millis(500));
    }

    #[test]
    fn due_by_counts_requests_intended_so_far() {
        let s = Schedule::new(1_000, Duration::ZERO, Duration::from_secs(1));
        assert_eq!(s.due_by(Duration::ZERO), 1);
        assert_eq!(s.due_by(Duration::from_micros(999)), 1);
        assert_eq!(s.due_by(Duration::from_millis(1)), 2);
        assert_eq!(s.due_by(Duration::from_millis(10)), 11);
        assert_eq!(s.due_by(Duration::from_secs(60)), 1_000, "capped at total");
    }

    #[test]
    fn latency_counts_from_the_intended_time_when_the_server_stalls() {
        // One connection, 10 ms apart; the server stalls 1 s on request 0 and
        // then answers instantly. Request 1 is intended at 10 ms, can only be
        // sent at 1 s and is answered then: its latency is 990 ms, not ~0.
        let s = Schedule::new(100, Duration::ZERO, Duration::from_secs(2));
        let start = Instant::now();
        let answered_0 = start + Duration::from_secs(1);
        assert_eq!(
            latency_from_intended(s.intended_at(start, 0), answered_0),
            Duration::from_secs(1)
        );
        let sent_1 = answered_0.max(s.intended_at(start, 1));
        assert_eq!(
            latency_from_intended(s.intended_at(start, 1), sent_1),
            Duration::from_millis(990)
        );
        // A request answered "before" its intended time (clock skew) is 0.
        assert_eq!(
            latency_from_intended(start + Duration::from_secs(1), start),
            Duration::ZERO
        );
    }
}
