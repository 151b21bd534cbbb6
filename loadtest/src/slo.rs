//! Service-level objectives: `config/slo.toml`, and the checks of a run's
//! report against them. The file in the repository is compiled in as the
//! default, so the documented SLOs and the checked ones cannot drift apart.

use crate::report::{Kind, KindReport, Report};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The repository's `config/slo.toml`.
pub const DEFAULT_SLO_TOML: &str = include_str!("../../config/slo.toml");

/// Every objective, as in `config/slo.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    /// What a sustainable step of `--find-max` is.
    pub find_max: FindMaxSlo,
    /// Where, after `--find-max`, latency is measured and checked.
    pub operating_points: OperatingPoints,
    /// The `--baseline` ratio.
    pub baseline: BaselineSlo,
    /// Pings.
    pub ping: KindSlo,
    /// Posts of pinged leads.
    pub post: KindSlo,
    /// Direct posts.
    pub direct_post: KindSlo,
    /// Routes (`--scenario route`); a file without a `[route]` section
    /// (written before routes existed) gets [`ROUTE_SLO`].
    #[serde(default = "route_slo")]
    pub route: KindSlo,
}

/// The route bounds of `config/slo.toml`, also those of a file without
/// `[route]`: a route is
/// answered once its assignment is journaled, like a post, so the post's
/// bounds.
pub const ROUTE_SLO: KindSlo = KindSlo {
    p99_ms: 5.0,
    p99_9_ms: None,
    error_share_max: 0.001,
};

fn route_slo() -> KindSlo {
    ROUTE_SLO
}

/// Bounds a `--find-max` step must hold to count as sustainable.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindMaxSlo {
    /// Highest p99 of the scheduled requests, milliseconds.
    pub p99_ms: f64,
    /// Highest share of failures.
    pub error_share_max: f64,
    /// Lowest achieved rate over offered rate.
    pub achieved_share_min: f64,
}

/// Shares of the maximum rate at which latency is measured after
/// `--find-max`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatingPoints {
    /// Every share measured, e.g. 0.25, 0.5, 0.8.
    pub shares: Vec<f64>,
    /// The share whose run decides the exit code; one of `shares`.
    pub check_at: f64,
}

/// The `--baseline` objective.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineSlo {
    /// Lowest leadex max rate over the bare server's max rate.
    pub ratio_min: f64,
}

/// Bounds for one kind of request.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KindSlo {
    /// Highest p99, milliseconds.
    pub p99_ms: f64,
    /// Highest p99.9, milliseconds, if bounded.
    pub p99_9_ms: Option<f64>,
    /// Highest share of failures.
    pub error_share_max: f64,
}

/// One objective checked against a measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// What was checked, e.g. `ping p99 (ms)`.
    pub name: String,
    /// The measured value.
    pub measured: f64,
    /// The bound.
    pub bound: f64,
    /// Whether the bound is a maximum (`true`) or a minimum.
    pub at_most: bool,
    /// Whether the measurement is within the bound.
    pub pass: bool,
}

impl Check {
    /// `measured <= bound`.
    pub fn at_most(name: impl Into<String>, measured: f64, bound: f64) -> Self {
        Self {
            name: name.into(),
            measured,
            bound,
            at_most: true,
            pass: measured <= bound,
        }
    }

    /// `measured >= bound`.
    pub fn at_least(name: impl Into<String>, measured: f64, bound: f64) -> Self {
        Self {
            name: name.into(),
            measured,
            bound,
            at_most: false,
            pass: measured >= bound,
        }
    }

    /// `name 0.84 <= 1 ok`, for the table.
    pub fn line(&self) -> String {
        format!(
            "{} {} {} {} {}",
            self.name,
            trim(self.measured),
            if self.at_most { "<=" } else { ">=" },
            trim(self.bound),
            if self.pass { "ok" } else { "FAILED" }
        )
    }
}

/// `x` with at most four decimals and no trailing zeros.
fn trim(x: f64) -> String {
    let s = format!("{x:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_owned()
}

/// Failures among a kind's requests: transport errors, timeouts, arrivals
/// never sent, unreadable answers and 5xx. 4xx answers are business
/// outcomes (a cap filled, a ping expired) and are not counted, except for
/// routes: every route answer but `offered` or `unassigned` (a bad key, an
/// agency without agents) is a failure.
pub fn failures(k: &KindReport) -> u64 {
    k.errors
        .iter()
        .filter(|(key, _)| k.kind == Kind::Route || !key.starts_with('4'))
        .map(|(_, n)| n)
        .sum()
}

/// `failures / count`, 0 for no requests.
fn failure_share(k: &KindReport) -> f64 {
    if k.count == 0 {
        0.0
    } else {
        failures(k) as f64 / k.count as f64
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1_000.0
}

/// No checked route answer may break the factor sum: any violation fails.
pub fn invariant_check(violations: u64) -> Check {
    Check::at_most(
        "route answers whose factors do not add up to the score",
        violations as f64,
        0.0,
    )
}

impl Default for Slo {
    fn default() -> Self {
        Self::parse(DEFAULT_SLO_TOML).expect("invariant: config/slo.toml is valid")
    }
}

impl Slo {
    /// Reads and validates an SLO file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("--slo {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("--slo {}: {e}", path.display()))
    }

    /// Parses and validates SLO TOML.
    pub fn parse(text: &str) -> Result<Self, String> {
        let slo: Slo = toml::from_str(text).map_err(|e| e.to_string())?;
        slo.validate()?;
        Ok(slo)
    }

    fn validate(&self) -> Result<(), String> {
        let positive = |name: &str, x: f64| {
            if x.is_finite() && x > 0.0 {
                Ok(())
            } else {
                Err(format!("{name} must be a positive number"))
            }
        };
        let share = |name: &str, x: f64| {
            if (0.0..=1.0).contains(&x) {
                Ok(())
            } else {
                Err(format!("{name} must be between 0 and 1"))
            }
        };
        positive("find_max.p99_ms", self.find_max.p99_ms)?;
        share("find_max.error_share_max", self.find_max.error_share_max)?;
        share(
            "find_max.achieved_share_min",
            self.find_max.achieved_share_min,
        )?;
        let points = &self.operating_points;
        if points.shares.is_empty() || points.shares.len() > 10 {
            return Err("operating_points.shares must list 1 to 10 shares".into());
        }
        for &s in &points.shares {
            positive("operating_points.shares", s)?;
            share("operating_points.shares", s)?;
        }
        if !points.shares.contains(&points.check_at) {
            return Err("operating_points.check_at must be one of operating_points.shares".into());
        }
        positive("baseline.ratio_min", self.baseline.ratio_min)?;
        for kind in Kind::ALL {
            let k = self.kind(kind);
            let name = kind.as_str();
            positive(&format!("{name}.p99_ms"), k.p99_ms)?;
            if let Some(p) = k.p99_9_ms {
                positive(&format!("{name}.p99_9_ms"), p)?;
            }
            share(&format!("{name}.error_share_max"), k.error_share_max)?;
        }
        Ok(())
    }

    /// The bounds for `kind`.
    pub fn kind(&self, kind: Kind) -> &KindSlo {
        match kind {
            Kind::Ping => &self.ping,
            Kind::Post => &self.post,
            Kind::DirectPost => &self.direct_post,
            Kind::Route => &self.route,
        }
    }

    /// Checks every measured kind of `report` against its bounds.
    pub fn check(&self, report: &Report) -> Vec<Check> {
        let mut checks = Vec::new();
        for k in &report.kinds {
            let slo = self.kind(k.kind);
            let name = k.kind.as_str();
            checks.push(Check::at_most(
                format!("{name} p99 (ms)"),
                ms(k.latency_us.p99),
                slo.p99_ms,
            ));
            if let Some(bound) = slo.p99_9_ms {
                checks.push(Check::at_most(
                    format!("{name} p99.9 (ms)"),
                    ms(k.latency_us.p99_9),
                    bound,
                ));
            }
            checks.push(Check::at_most(
                format!("{name} failure share"),
                failure_share(k),
                slo.error_share_max,
            ));
            if k.kind == Kind::Route {
                checks.push(invariant_check(k.invariant_violations));
            }
        }
        checks
    }

    /// Whether a `--find-max` step is sustainable: its scheduled requests
    /// (`first`) kept p99, failures and achieved rate within bounds. The
    /// checks that failed, if any, say why not.
    pub fn sustainable(&self, report: &Report, first: Kind) -> Vec<Check> {
        let bound = &self.find_max;
        let Some(k) = report.kind(first) else {
            return vec![Check::at_least("answers", 0.0, 1.0)];
        };
        let offered = report.settings.rate_per_s as f64;
        vec![
            Check::at_most("p99 (ms)", ms(k.latency_us.p99), bound.p99_ms),
            Check::at_most("failure share", failure_share(k), bound.error_share_max),
            Check::at_least(
                "achieved share",
                k.achieved_rate_per_s / offered,
                bound.achieved_share_min,
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Invariant, Outcome, Recorder, RunSettings, Sample};
    use std::time::Duration;

    fn report(rate: u64, latencies_us: &[u64], errors: &[&str], elapsed_s: f64) -> Report {
        let mut r = Recorder::default();
        for &us in latencies_us {
            r.record(&Sample {
                kind: Kind::Ping,
                latency: Duration::from_micros(us),
                outcome: Outcome::Won,
                invariant: Invariant::NotChecked,
            });
        }
        for e in errors {
            r.record(&Sample {
                kind: Kind::Ping,
                latency: Duration::from_micros(100),
                outcome: Outcome::Error((*e).into()),
                invariant: Invariant::NotChecked,
            });
        }
        r.report(
            RunSettings {
                scenario: "ping".into(),
                rate_per_s: rate,
                duration_s: elapsed_s,
                warmup_s: 0.0,
                connections: 1,
                seed: 1,
            },
            Duration::from_secs_f64(elapsed_s),
        )
    }

    #[test]
    fn the_repository_file_is_the_default_and_valid() {
        let slo = Slo::default();
        assert_eq!(slo.ping.p99_ms, 1.0);
        assert_eq!(slo.ping.p99_9_ms, Some(5.0));
        assert_eq!(slo.post.p99_ms, 5.0);
        assert_eq!(slo.baseline.ratio_min, 0.6);
        assert_eq!(slo.operating_points.check_at, 0.5);
        assert_eq!(slo.find_max.p99_ms, 10.0);
    }

    #[test]
    fn bad_files_are_refused_with_the_key() {
        let bad = [
            ("p99_ms = 10.0", "p99_ms = -1"),
            ("p99_9_ms = 5.0", "p99_9_ms = nan"),
            ("check_at = 0.5", "check_at = 0.4"),
            ("ratio_min = 0.6", "ratio_min = 0"),
            ("achieved_share_min = 0.95", "achieved_share_min = 1.5"),
        ];
        for (from, to) in bad {
            let text = DEFAULT_SLO_TOML.replacen(from, &format!("{to}\n"), 1);
            assert_ne!(text, DEFAULT_SLO_TOML, "{from}");
            assert!(Slo::parse(&text).is_err(), "{to}");
        }
        let unknown = format!("{DEFAULT_SLO_TOML}\n[pong]\np99_ms = 1.0\n");
        assert!(Slo::parse(&unknown).unwrap_err().contains("pong"));
    }

    #[test]
    fn a_run_within_bounds_passes_and_each_breach_is_named() {
        let slo = Slo::default();
        // 1,000 pings at 0.4 ms: passes.
        let fast = report(1_000, &[400; 1_000], &[], 1.0);
        assert!(slo.check(&fast).iter().all(|c| c.pass));
        // 2 % at 2 ms: p99 = 2 ms > 1 ms fails, p99.9 2 ms <= 5 ms passes.
        let mut latencies = vec![400; 980];
        latencies.extend([2_000; 20]);
        let checks = slo.check(&report(1_000, &latencies, &[], 1.0));
        let failed: Vec<_> = checks.iter().filter(|c| !c.pass).collect();
        assert_eq!(failed.len(), 1, "{checks:?}");
        assert_eq!(failed[0].name, "ping p99 (ms)");
        assert_eq!(failed[0].measured, 2.0);
        assert_eq!(
            failed[0].line(),
            "ping p99 (ms) 2 <= 1 FAILED",
            "the table line"
        );
    }

    #[test]
    fn only_transport_and_5xx_answers_are_failures() {
        let slo = Slo::default();
        // 2 failures in 1,000 (0.2 % > 0.1 %) and 50 business 4xx answers.
        let mut errors = vec!["409 bid_unavailable"; 50];
        errors.extend(["transport", "503 overloaded"]);
        let r = report(1_000, &[300; 948], &errors, 1.0);
        let k = r.kind(Kind::Ping).unwrap();
        assert_eq!(failures(k), 2);
        let share = slo
            .check(&r)
            .into_iter()
            .find(|c| c.name == "ping failure share")
            .unwrap();
        assert_eq!((share.measured, share.pass), (0.002, false));
    }

    #[test]
    fn routes_have_bounds_without_a_route_section_and_every_error_fails() {
        let slo = Slo::default();
        assert_eq!(
            slo.route, ROUTE_SLO,
            "config/slo.toml and the default agree"
        );
        // A file written before routes existed: no [route] section.
        let before_routes = DEFAULT_SLO_TOML.split("\n# Routes (").next().unwrap();
        assert!(!before_routes.contains("[route]"));
        assert_eq!(Slo::parse(before_routes).unwrap().route, ROUTE_SLO);
        let custom = format!("{before_routes}\n[route]\np99_ms = 20.0\nerror_share_max = 0.01\n");
        assert_eq!(Slo::parse(&custom).unwrap().route.p99_ms, 20.0);
        let bad = format!("{before_routes}\n[route]\np99_ms = 0\nerror_share_max = 0\n");
        assert!(Slo::parse(&bad).unwrap_err().contains("route.p99_ms"));

        let route = |outcomes: Vec<(Outcome, Invariant)>| {
            let mut r = Recorder::default();
            for (outcome, invariant) in outcomes {
                r.record(&Sample {
                    kind: Kind::Route,
                    latency: Duration::from_micros(500),
                    outcome,
                    invariant,
                });
            }
            let settings = RunSettings {
                scenario: "route".into(),
                rate_per_s: 100,
                duration_s: 1.0,
                warmup_s: 0.0,
                connections: 1,
                seed: 1,
            };
            r.report(settings, Duration::from_secs(1))
        };
        let failed = |r: &Report| -> Vec<String> {
            slo.check(r)
                .into_iter()
                .filter(|c| !c.pass)
                .map(|c| c.name)
                .collect()
        };
        let mut fine = vec![(Outcome::Won, Invariant::NotChecked); 98];
        fine.push((Outcome::NoBid("unassigned".into()), Invariant::Held));
        fine.push((Outcome::Won, Invariant::Held));
        let r = route(fine.clone());
        assert!(failed(&r).is_empty(), "{:?}", slo.check(&r));
        assert_eq!(r.kinds[0].checked, 2);
        // A 404 (an agency without agents) is a failure for routes.
        let mut missing = fine.clone();
        missing[0].0 = Outcome::Error("404 not_found".into());
        let r = route(missing);
        assert_eq!(failures(&r.kinds[0]), 1);
        assert_eq!(failed(&r), ["route failure share"]);
        // One checked answer whose factors do not add up fails the run.
        let mut broken = fine;
        broken[99].1 = Invariant::Violated;
        let r = route(broken);
        assert_eq!(
            (r.kinds[0].checked, r.kinds[0].invariant_violations),
            (2, 1)
        );
        assert_eq!(
            failed(&r),
            ["route answers whose factors do not add up to the score"]
        );
        assert!(r.table().contains("violations: 1"), "{}", r.table());
    }

    #[test]
    fn a_step_is_sustainable_only_when_p99_failures_and_rate_hold() {
        let slo = Slo::default();
        let pass = |r: &Report| slo.sustainable(r, Kind::Ping).iter().all(|c| c.pass);
        assert!(pass(&report(1_000, &[2_000; 1_000], &[], 1.0)));
        // p99 of 50 ms: the queue is growing.
        assert!(!pass(&report(1_000, &[50_000; 1_000], &[], 1.0)));
        // Only 900 answered in a second at 1,000/s offered.
        assert!(!pass(&report(1_000, &[2_000; 900], &[], 1.0)));
        // Timeouts.
        assert!(!pass(&report(1_000, &[2_000; 990], &["timeout"; 10], 1.0)));
        // Nothing measured at all.
        assert!(!pass(&report(1_000, &[], &[], 1.0)));
    }
}
