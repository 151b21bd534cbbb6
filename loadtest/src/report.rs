//! Results: one HDR histogram of latencies (microseconds) per request kind,
//! counts of outcomes, and the human table and JSON made from them.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// Highest latency the histograms hold, in microseconds (one hour); longer
/// ones are clamped to it.
const LATENCY_US_MAX: u64 = 3_600_000_000;
/// Significant decimal digits kept by the histograms.
const SIGNIFICANT_DIGITS: u8 = 3;

/// An empty latency histogram, microseconds: 1 µs to one hour at three
/// significant digits. Request latencies and the pacer's lateness alike.
pub(crate) fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, SIGNIFICANT_DIGITS)
        .expect("invariant: constant histogram bounds are valid")
}

/// `d` in whole microseconds, within the histograms' bounds (1 µs to one
/// hour).
pub(crate) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros())
        .unwrap_or(LATENCY_US_MAX)
        .clamp(1, LATENCY_US_MAX)
}

/// What a request was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// `POST /v1/ping`.
    Ping,
    /// `POST /v1/post`, after a ping with bids.
    Post,
    /// `POST /v1/leads`.
    DirectPost,
    /// `POST /v1/route`.
    Route,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 4] = [Kind::Ping, Kind::Post, Kind::DirectPost, Kind::Route];

    /// The name used in the table and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Ping => "ping",
            Kind::Post => "post",
            Kind::DirectPost => "direct_post",
            Kind::Route => "route",
        }
    }

    /// How the table names a 200 answer that is not a win: `no bid` (no
    /// bids, or unsold), `not offered` for a route left unassigned.
    pub fn no_bid_label(self) -> &'static str {
        match self {
            Kind::Route => "not offered",
            _ => "no bid",
        }
    }
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 200 with bids (ping), sold (post, direct post) or offered to an
    /// agent (route).
    Won,
    /// 200 without bids, or unsold, with the `no_bid_reason` /
    /// `no_sale_reason`; a route `unassigned`.
    NoBid(String),
    /// Anything else, keyed by `"<status> <code>"` (e.g.
    /// `"409 duplicate_lead"`) or a transport failure (`"transport"`).
    Error(String),
}

/// One finished request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// What it was.
    pub kind: Kind,
    /// From its intended send time to its answer.
    pub latency: Duration,
    /// How it ended.
    pub outcome: Outcome,
    /// Whether the answer's invariant was checked, and held (only a sample
    /// of route answers is checked: each candidate's factors add up to its
    /// score).
    pub invariant: Invariant,
}

/// The invariant check of one answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Invariant {
    /// Not checked (not sampled, not a 200, or a kind without one).
    #[default]
    NotChecked,
    /// Checked and held.
    Held,
    /// Checked and broken.
    Violated,
}

/// Accumulates the samples of one kind.
#[derive(Debug, Clone)]
struct KindRecorder {
    latency_us: Histogram<u64>,
    won: u64,
    errors: BTreeMap<String, u64>,
    no_bids: BTreeMap<String, u64>,
    checked: u64,
    violations: u64,
}

impl KindRecorder {
    fn new() -> Self {
        Self {
            latency_us: latency_histogram(),
            won: 0,
            errors: BTreeMap::new(),
            no_bids: BTreeMap::new(),
            checked: 0,
            violations: 0,
        }
    }
}

/// Accumulates samples; one per connection, merged at the end.
#[derive(Debug, Clone)]
pub struct Recorder {
    kinds: [KindRecorder; Kind::ALL.len()],
}

impl Default for Recorder {
    fn default() -> Self {
        Self {
            kinds: std::array::from_fn(|_| KindRecorder::new()),
        }
    }
}

impl Recorder {
    /// Records one measured sample.
    pub fn record(&mut self, sample: &Sample) {
        let k = &mut self.kinds[sample.kind as usize];
        k.latency_us.saturating_record(micros(sample.latency));
        match &sample.outcome {
            Outcome::Won => k.won += 1,
            Outcome::NoBid(reason) => *k.no_bids.entry(reason.clone()).or_default() += 1,
            Outcome::Error(code) => *k.errors.entry(code.clone()).or_default() += 1,
        }
        match sample.invariant {
            Invariant::NotChecked => {}
            Invariant::Held => k.checked += 1,
            Invariant::Violated => {
                k.checked += 1;
                k.violations += 1;
            }
        }
    }

    /// Adds another recorder's samples to this one.
    pub fn merge(&mut self, other: &Recorder) {
        for (mine, theirs) in self.kinds.iter_mut().zip(&other.kinds) {
            mine.latency_us
                .add(&theirs.latency_us)
                .expect("invariant: all histograms have the same bounds");
            mine.won += theirs.won;
            mine.checked += theirs.checked;
            mine.violations += theirs.violations;
            for (code, n) in &theirs.errors {
                *mine.errors.entry(code.clone()).or_default() += n;
            }
            for (reason, n) in &theirs.no_bids {
                *mine.no_bids.entry(reason.clone()).or_default() += n;
            }
        }
    }

    /// The report, for a run of `settings` whose measured part took `elapsed`
    /// (from the first measured intended time to the last answer).
    pub fn report(&self, settings: RunSettings, elapsed: Duration) -> Report {
        let seconds = elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
        let kinds = Kind::ALL
            .iter()
            .zip(&self.kinds)
            .filter(|(_, k)| !k.latency_us.is_empty())
            .map(|(&kind, k)| {
                let h = &k.latency_us;
                KindReport {
                    kind,
                    count: h.len(),
                    achieved_rate_per_s: h.len() as f64 / seconds,
                    won: k.won,
                    errors: k.errors.clone(),
                    no_bids: k.no_bids.clone(),
                    checked: k.checked,
                    invariant_violations: k.violations,
                    latency_us: percentiles(h),
                }
            })
            .collect();
        Report {
            settings,
            elapsed_s: elapsed.as_secs_f64(),
            pacer_lateness_us: Percentiles::default(),
            checks: Vec::new(),
            kinds,
        }
    }
}

/// The percentiles of `h` (all zero when it is empty).
pub fn percentiles(h: &Histogram<u64>) -> Percentiles {
    if h.is_empty() {
        return Percentiles::default();
    }
    Percentiles {
        p50: h.value_at_quantile(0.50),
        p90: h.value_at_quantile(0.90),
        p99: h.value_at_quantile(0.99),
        p99_9: h.value_at_quantile(0.999),
        max: h.max(),
    }
}

/// What was asked of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    /// `ping`, `ping-post`, `direct-post` or `route`.
    pub scenario: String,
    /// Intended arrivals per second (first requests of each exchange).
    pub rate_per_s: u64,
    /// Measured seconds (warm-up excluded).
    pub duration_s: f64,
    /// Warm-up seconds, sent but not measured.
    pub warmup_s: f64,
    /// Keep-alive connections.
    pub connections: usize,
    /// Seed of the leads.
    pub seed: u64,
}

/// Latency percentiles, microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p99_9: u64,
    /// Largest.
    pub max: u64,
}

/// The results for one kind of request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindReport {
    /// What the requests were.
    pub kind: Kind,
    /// Measured requests answered (or failed).
    pub count: u64,
    /// `count` per second of the measured part.
    pub achieved_rate_per_s: f64,
    /// Pings answered with bids, posts and direct posts sold, routes
    /// offered to an agent.
    pub won: u64,
    /// Failures by `"<status> <code>"` or `"transport"`.
    pub errors: BTreeMap<String, u64>,
    /// 200 answers without bids (or unsold, or routes left `unassigned`)
    /// by reason.
    pub no_bids: BTreeMap<String, u64>,
    /// Answers whose invariant was checked (a sample of route answers).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub checked: u64,
    /// Checked answers that broke it (a route candidate whose factors do
    /// not add up to its score); any fails the run.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub invariant_violations: u64,
    /// Latency from intended send time to answer.
    pub latency_us: Percentiles,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A whole run's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// What was asked.
    pub settings: RunSettings,
    /// Seconds from the first measured intended time to the last answer.
    pub elapsed_s: f64,
    /// How late the generator itself released arrivals, microseconds: the
    /// floor under every latency above (zero for runs not paced in real
    /// time).
    #[serde(default)]
    pub pacer_lateness_us: Percentiles,
    /// The SLOs checked against this run, if any.
    #[serde(default)]
    pub checks: Vec<crate::slo::Check>,
    /// Per kind of request, in [`Kind::ALL`] order, kinds never sent left out.
    pub kinds: Vec<KindReport>,
}

impl Report {
    /// The results for `kind`, if any such request was measured.
    pub fn kind(&self, kind: Kind) -> Option<&KindReport> {
        self.kinds.iter().find(|k| k.kind == kind)
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("invariant: a report always serializes")
    }

    /// The human table.
    pub fn table(&self) -> String {
        let s = &self.settings;
        let mut out = format!(
            "scenario {} · rate {}/s · {} s measured after {} s warm-up · {} connections · seed {}\n\n",
            s.scenario, s.rate_per_s, s.duration_s, s.warmup_s, s.connections, s.seed
        );
        let _ = writeln!(
            out,
            "{:<12} {:>8} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "kind",
            "count",
            "achieved/s",
            "won",
            "p50 us",
            "p90 us",
            "p99 us",
            "p99.9 us",
            "max us",
            "errors"
        );
        for k in &self.kinds {
            let l = &k.latency_us;
            let _ = writeln!(
                out,
                "{:<12} {:>8} {:>10.1} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
                k.kind.as_str(),
                k.count,
                k.achieved_rate_per_s,
                k.won,
                l.p50,
                l.p90,
                l.p99,
                l.p99_9,
                l.max,
                k.errors.values().sum::<u64>()
            );
        }
        out.push_str("(won: pings answered with bids, posts and direct posts sold, routes offered; latency from intended send)\n");
        let p = &self.pacer_lateness_us;
        let _ = writeln!(
            out,
            "generator: arrivals released late by p50 {} us, p99 {} us, max {} us",
            p.p50, p.p99, p.max
        );
        if !self.checks.is_empty() {
            out.push_str("SLO checks\n");
            for c in &self.checks {
                let _ = writeln!(out, "  {}", c.line());
            }
            let pass = self.checks.iter().all(|c| c.pass);
            let _ = writeln!(out, "{}", if pass { "PASS" } else { "FAIL" });
        }
        for k in &self.kinds {
            for (code, n) in &k.errors {
                let _ = writeln!(out, "  {} error {code}: {n}", k.kind.as_str());
            }
            for (reason, n) in &k.no_bids {
                let _ = writeln!(
                    out,
                    "  {} {} {reason}: {n}",
                    k.kind.as_str(),
                    k.kind.no_bid_label()
                );
            }
            if k.checked > 0 || k.invariant_violations > 0 {
                let _ = writeln!(
                    out,
                    "  {} answers checked (factors add up to the score): {}, violations: {}",
                    k.kind.as_str(),
                    k.checked,
                    k.invariant_violations
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(kind: Kind, latency_us: u64, outcome: Outcome) -> Sample {
        Sample {
            kind,
            latency: Duration::from_micros(latency_us),
            outcome,
            invariant: Invariant::NotChecked,
        }
    }

    fn settings() -> RunSettings {
        RunSettings {
            scenario: "ping".into(),
            rate_per_s: 1_000,
            duration_s: 1.0,
            warmup_s: 0.0,
            connections: 2,
            seed: 7,
        }
    }

    /// 1..=1000 µs, one each, with some no-bids and errors.
    fn known() -> Recorder {
        let mut r = Recorder::default();
        for us in 1..=1_000 {
            let outcome = match us % 10 {
                0 => Outcome::NoBid("no_eligible_buyers".into()),
                1 if us <= 31 => Outcome::Error("503 overloaded".into()),
                _ => Outcome::Won,
            };
            r.record(&sample(Kind::Ping, us, outcome));
        }
        r
    }

    #[test]
    fn percentiles_of_a_known_uniform_distribution() {
        let report = known().report(settings(), Duration::from_secs(2));
        let ping = report.kind(Kind::Ping).unwrap();
        assert_eq!(ping.count, 1_000);
        assert_eq!(ping.achieved_rate_per_s, 500.0);
        let l = ping.latency_us;
        // Exact below 2048 µs at 3 significant digits.
        assert_eq!(
            (l.p50, l.p90, l.p99, l.p99_9, l.max),
            (500, 900, 990, 999, 1_000)
        );
        assert_eq!(ping.no_bids["no_eligible_buyers"], 100);
        assert_eq!(ping.errors["503 overloaded"], 4, "1, 11, 21 and 31");
        assert_eq!(ping.won, 1_000 - 100 - 4);
        assert!(
            report.kind(Kind::Post).is_none(),
            "kinds never sent are left out"
        );
    }

    #[test]
    fn large_latencies_keep_three_significant_digits_and_the_stall_shows() {
        let mut r = Recorder::default();
        for _ in 0..998 {
            r.record(&sample(Kind::Post, 1_000, Outcome::Won));
        }
        r.record(&sample(Kind::Post, 1_000_000, Outcome::Won));
        r.record(&sample(Kind::Post, 2_500_000, Outcome::Won));
        let l = r.report(settings(), Duration::from_secs(1)).kinds[0].latency_us;
        assert_eq!(l.p99, 1_000);
        let close = |x: u64, to: u64| x.abs_diff(to) * 1_000 <= to;
        assert!(close(l.p99_9, 1_000_000), "{l:?}");
        assert!(close(l.max, 2_500_000), "{l:?}");
    }

    #[test]
    fn merging_recorders_is_recording_everything_in_one() {
        let mut a = Recorder::default();
        let mut b = Recorder::default();
        let mut all = Recorder::default();
        for us in 1..=400u64 {
            let s = sample(
                if us % 3 == 0 { Kind::Post } else { Kind::Ping },
                us * 7,
                if us % 5 == 0 {
                    Outcome::Error("409 duplicate_lead".into())
                } else {
                    Outcome::Won
                },
            );
            if us % 2 == 0 { &mut a } else { &mut b }.record(&s);
            all.record(&s);
        }
        a.merge(&b);
        let d = Duration::from_secs(1);
        assert_eq!(a.report(settings(), d), all.report(settings(), d));
    }

    #[test]
    fn the_json_round_trips_and_the_table_shows_every_count() {
        let report = known().report(settings(), Duration::from_secs(1));
        let json = report.to_json();
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back, report);
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["kinds"][0]["kind"], "ping");
        assert_eq!(value["kinds"][0]["latency_us"]["p99_9"], 999);
        let table = report.table();
        assert!(table.contains("ping error 503 overloaded: 4"), "{table}");
        assert!(
            table.contains("ping no bid no_eligible_buyers: 100"),
            "{table}"
        );
    }
}
