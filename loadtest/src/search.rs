//! The rate search of `--find-max`, as a pure state machine: it proposes
//! the next rate to try and learns whether each step was sustainable.
//!
//! It doubles the rate from the start until a step fails, then bisects
//! between the highest passing and the lowest failing rate until they are
//! within [`RateSearch::precision`] of each other. If the very first step
//! fails it halves instead. Every path ends within `max_steps`, so the
//! search's wall time is bounded by `max_steps` x the step length.

/// Where the search stands.
#[derive(Debug, Clone, PartialEq)]
pub struct RateSearch {
    start: u64,
    /// Highest rate that passed.
    passed: Option<u64>,
    /// Lowest rate that failed.
    failed: Option<u64>,
    steps: u32,
    max_steps: u32,
    precision: f64,
}

/// The lowest rate the search tries.
const MIN_RATE: u64 = 1;

impl RateSearch {
    /// A search from `start` (at least 1) of at most `max_steps` steps,
    /// stopping when the bracket is within a factor `precision` (> 1).
    pub fn new(start: u64, max_steps: u32, precision: f64) -> Self {
        assert!(
            start > 0 && precision > 1.0,
            "invariant: validated by the caller"
        );
        Self {
            start,
            passed: None,
            failed: None,
            steps: 0,
            max_steps,
            precision,
        }
    }

    /// The rate to try next, or `None` when the search is over.
    pub fn next_rate(&self) -> Option<u64> {
        if self.steps >= self.max_steps {
            return None;
        }
        match (self.passed, self.failed) {
            (None, None) => Some(self.start),
            (Some(passed), None) => Some(passed.saturating_mul(2)),
            (None, Some(failed)) => (failed / 2 >= MIN_RATE).then_some(failed / 2),
            (Some(passed), Some(failed)) => {
                if failed as f64 <= passed as f64 * self.precision {
                    return None;
                }
                let middle = round_to_3_digits(passed + (failed - passed) / 2);
                (middle > passed && middle < failed).then_some(middle)
            }
        }
    }

    /// Records that a step at `rate` was sustainable (`pass`) or not.
    pub fn record(&mut self, rate: u64, pass: bool) {
        self.steps += 1;
        if pass {
            self.passed = Some(self.passed.map_or(rate, |p| p.max(rate)));
        } else {
            self.failed = Some(self.failed.map_or(rate, |f| f.min(rate)));
        }
    }

    /// The highest sustainable rate found, if any step passed.
    pub fn max_rate(&self) -> Option<u64> {
        self.passed
    }

    /// Steps taken.
    pub fn steps(&self) -> u32 {
        self.steps
    }
}

/// `x` rounded to three significant digits (12_345 -> 12_300), so the
/// rates tried read as round numbers.
fn round_to_3_digits(x: u64) -> u64 {
    let mut unit = 1;
    while x / unit >= 1_000 {
        unit *= 10;
    }
    (x + unit / 2) / unit * unit
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Runs a search against a server that sustains up to `capacity`.
    fn search(start: u64, capacity: u64, max_steps: u32) -> (RateSearch, Vec<u64>) {
        let mut s = RateSearch::new(start, max_steps, 1.1);
        let mut tried = Vec::new();
        while let Some(rate) = s.next_rate() {
            tried.push(rate);
            s.record(rate, rate <= capacity);
        }
        (s, tried)
    }

    #[test]
    fn doubles_then_bisects_to_within_ten_percent() {
        let (s, tried) = search(1_000, 20_000, 20);
        assert_eq!(&tried[..6], &[1_000, 2_000, 4_000, 8_000, 16_000, 32_000]);
        // 22,000 fails and is within 10 % of 20,000: done.
        assert_eq!(&tried[6..], &[24_000, 20_000, 22_000]);
        assert_eq!(s.max_rate(), Some(20_000));
    }

    #[test]
    fn halves_when_the_first_step_fails() {
        let (s, tried) = search(1_000, 300, 20);
        assert_eq!(&tried[..3], &[1_000, 500, 250]);
        let max = s.max_rate().unwrap();
        assert!((250..=300).contains(&max), "{tried:?}");
        // Nothing sustainable at all: halves down to 1 and reports none.
        let (s, tried) = search(1_000, 0, 20);
        assert_eq!(s.max_rate(), None);
        assert_eq!(*tried.last().unwrap(), 1);
    }

    #[test]
    fn the_step_budget_ends_the_search() {
        let (s, tried) = search(1, u64::MAX / 4, 12);
        assert_eq!(tried.len(), 12);
        assert_eq!(s.steps(), 12);
        assert_eq!(s.max_rate(), Some(2_048));
    }

    #[test]
    fn rounding_keeps_three_digits() {
        assert_eq!(round_to_3_digits(12_345), 12_300);
        assert_eq!(round_to_3_digits(12_350), 12_400);
        assert_eq!(round_to_3_digits(999), 999);
        assert_eq!(round_to_3_digits(7), 7);
    }

    proptest! {
        /// Whatever the capacity, the search ends within its budget, never
        /// reports a rate above capacity, and, when the budget suffices,
        /// lands within 10 % of the capacity.
        #[test]
        fn the_search_brackets_any_capacity(start in 1u64..100_000, capacity in 0u64..10_000_000) {
            let (s, tried) = search(start, capacity, 40);
            prop_assert!(tried.len() <= 40);
            match s.max_rate() {
                Some(max) => {
                    prop_assert!(max <= capacity);
                    prop_assert!(capacity as f64 <= max as f64 * 1.1 + 2.0, "{max} vs {capacity}: {tried:?}");
                }
                None => prop_assert!(capacity < 1 || tried.contains(&1)),
            }
        }
    }
}
