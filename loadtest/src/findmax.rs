//! `--find-max` and `--baseline`: the rate search against the target (and
//! against the bare-hyper baseline in the same run), the latency at shares
//! of the maximum, the SLO checks, and the report of it all.

use crate::baseline::{median_answer, BaselineProcess};
use crate::cli::{Options, Scenario};
use crate::plot::{Curve, Point};
use crate::report::{Kind, Report};
use crate::run::Session;
use crate::search::RateSearch;
use crate::slo::{invariant_check, Check, Slo};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// How the search steps.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Rate of the first step.
    pub start_rate: u64,
    /// Warm-up of each step, sent but not measured.
    pub step_warmup: Duration,
    /// Measured length of each step.
    pub step: Duration,
    /// Most steps per search, repeats included.
    pub max_steps: u32,
    /// Longest a search may take; no step starts that could end past it.
    pub search_budget: Duration,
    /// The search stops once the failing rate is within this factor of the
    /// passing one.
    pub precision: f64,
    /// Pings sent one by one to the target to copy a real bid answer for
    /// the baseline.
    pub probe_pings: u64,
    /// How long after a step's schedule ends queued arrivals may still go.
    pub drain: Duration,
    /// The binary to run as the baseline server; `None` is this one.
    pub baseline_exe: Option<std::path::PathBuf>,
}

impl Default for Plan {
    /// 0.5 s + 2 s steps and 50 s per search at most, so baseline, target
    /// and three operating points fit in two minutes.
    fn default() -> Self {
        Self {
            start_rate: 1_000,
            step_warmup: Duration::from_millis(500),
            step: Duration::from_secs(2),
            max_steps: 16,
            search_budget: Duration::from_secs(50),
            precision: 1.1,
            probe_pings: 64,
            drain: Duration::from_secs(1),
            baseline_exe: None,
        }
    }
}

/// One step of a search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Offered rate.
    pub rate_per_s: u64,
    /// Whether this step was the repeat of a failed one at the same rate.
    pub repeat: bool,
    /// Whether every `find_max` bound held.
    pub sustainable: bool,
    /// The `find_max` bounds, checked.
    pub checks: Vec<Check>,
    /// The step's measurements.
    pub report: Report,
}

/// A whole search against one server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Search {
    /// `leadex` or `baseline`.
    pub label: String,
    /// Where it ran.
    pub target: String,
    /// Highest sustainable rate, if any step was.
    pub max_rate_per_s: Option<u64>,
    /// Every step, in the order run.
    pub steps: Vec<Step>,
    /// Wall seconds the search took.
    pub wall_s: f64,
}

/// The run at one share of the maximum rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatingPoint {
    /// Share of the maximum.
    pub share: f64,
    /// Offered rate.
    pub rate_per_s: u64,
    /// The latency SLOs, checked.
    pub checks: Vec<Check>,
    /// The measurements.
    pub report: Report,
    /// With `--baseline`, the bare server at the same rate: the HTTP
    /// stack's and the machine's own latency, to read leadex's against.
    pub baseline: Option<Report>,
}

/// The baseline part of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineResult {
    /// Size of the fixed answer, bytes: the median of real bid answers.
    pub answer_bytes: usize,
    /// The search against the bare server.
    pub search: Search,
    /// leadex's maximum over the baseline's.
    pub ratio: Option<f64>,
}

/// Everything `--find-max` measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindMaxReport {
    /// The scenario run.
    pub scenario: String,
    /// Connections per server.
    pub connections: usize,
    /// Seed of the leads.
    pub seed: u64,
    /// The baseline, with `--baseline`.
    pub baseline: Option<BaselineResult>,
    /// The search against the target.
    pub target: Search,
    /// Latency at shares of the target's maximum.
    pub operating_points: Vec<OperatingPoint>,
    /// The checks that decide the exit code.
    pub checks: Vec<Check>,
    /// Whether all of them passed.
    pub pass: bool,
    /// Wall seconds of the whole run.
    pub wall_s: f64,
}

/// Steps the rate up against `session` until a step breaks the `find_max`
/// bounds, printing one line per step to standard error.
///
/// A failed step is run once more at the same rate and the repeat decides:
/// on a shared machine one scheduling hiccup can push a single step's p99
/// over the bound, and a search that believed it would stop at a fraction
/// of the real maximum.
pub async fn search(label: &str, session: &mut Session, slo: &Slo, plan: &Plan) -> Search {
    let started = Instant::now();
    session.set_drain(plan.drain);
    let first = session.first_kind();
    // Warm-up, measured part, and at most the drain after it.
    let step_wall = plan.step_warmup + plan.step + plan.drain;
    let mut search = RateSearch::new(plan.start_rate, plan.max_steps, plan.precision);
    let mut steps: Vec<Step> = Vec::new();
    let room_for_a_step = |steps: &Vec<Step>| {
        steps.len() < plan.max_steps as usize && started.elapsed() + step_wall <= plan.search_budget
    };
    // Bounded: at most `plan.max_steps` steps and `plan.search_budget`.
    while let Some(rate) = search.next_rate() {
        if !room_for_a_step(&steps) {
            break;
        }
        let mut repeat = false;
        let sustainable = loop {
            let report = session.run(rate, plan.step_warmup, plan.step).await;
            let checks = slo.sustainable(&report, first);
            let sustainable = checks.iter().all(|c| c.pass);
            eprintln!(
                "{label:>8} {rate:>8}/s{}  {}",
                if repeat { " again" } else { "" },
                step_summary(&report, first, sustainable)
            );
            steps.push(Step {
                rate_per_s: rate,
                repeat,
                sustainable,
                checks,
                report,
            });
            if sustainable || repeat || !room_for_a_step(&steps) {
                break sustainable;
            }
            repeat = true;
        };
        search.record(rate, sustainable);
    }
    Search {
        label: label.into(),
        target: session.target().into(),
        max_rate_per_s: search.max_rate(),
        steps,
        wall_s: started.elapsed().as_secs_f64(),
    }
}

fn step_summary(report: &Report, first: Kind, sustainable: bool) -> String {
    match report.kind(first) {
        Some(k) => format!(
            "achieved {:>8.0}/s  p50 {:>7} us  p99 {:>8} us  failures {:>5}  {}",
            k.achieved_rate_per_s,
            k.latency_us.p50,
            k.latency_us.p99,
            crate::slo::failures(k),
            if sustainable { "ok" } else { "not sustainable" }
        ),
        None => "nothing answered".into(),
    }
}

/// Runs `--find-max` (and `--baseline`) as `options` say.
pub async fn run(options: &Options, slo: &Slo, plan: &Plan) -> Result<FindMaxReport, String> {
    let started = Instant::now();
    let mut target = Session::open(options).await?;
    let mut baseline = if options.baseline {
        let answers = target.sample_bid_answers(plan.probe_pings).await?;
        let body = median_answer(answers).ok_or_else(|| {
            format!(
                "none of {} probe pings got bids; the baseline copies a real bid answer",
                plan.probe_pings
            )
        })?;
        let exe = match &plan.baseline_exe {
            Some(exe) => exe.clone(),
            None => std::env::current_exe().map_err(|e| format!("finding this binary: {e}"))?,
        };
        // Idle while leadex is measured; killed when dropped.
        let process = BaselineProcess::spawn(&exe, &body, options.baseline_cpus.as_deref())?;
        let mut bare = Session::open(&Options {
            target: format!("http://{}", process.addr()),
            ..options.clone()
        })
        .await?;
        let search = search("baseline", &mut bare, slo, plan).await;
        Some((process, bare, body.len(), search))
    } else {
        None
    };
    let found = search("leadex", &mut target, slo, plan).await;
    let mut operating_points = Vec::new();
    if let Some(max) = found.max_rate_per_s {
        let first = target.first_kind();
        for &share in &slo.operating_points.shares {
            let rate = ((max as f64 * share).round() as u64).max(1);
            let report = target.run(rate, plan.step_warmup, plan.step).await;
            let checks = slo.check(&report);
            let label = format!("{:.0}%", share * 100.0);
            let pass = checks.iter().all(|c| c.pass);
            eprintln!(
                "{label:>8} {rate:>8}/s  {}",
                step_summary(&report, first, pass)
            );
            let bare = match &mut baseline {
                Some((_, bare, _, _)) => {
                    let report = bare.run(rate, plan.step_warmup, plan.step).await;
                    let pass = slo.check(&report).iter().all(|c| c.pass);
                    eprintln!(
                        "{:>8} {rate:>8}/s  {}",
                        "bare",
                        step_summary(&report, first, pass)
                    );
                    Some(report)
                }
                None => None,
            };
            operating_points.push(OperatingPoint {
                share,
                rate_per_s: rate,
                checks,
                report,
                baseline: bare,
            });
        }
    }
    let mut checks = vec![Check::at_least(
        "max sustainable rate (/s)",
        found.max_rate_per_s.unwrap_or(0) as f64,
        1.0,
    )];
    if let Some(point) = operating_points
        .iter()
        .find(|p| p.share == slo.operating_points.check_at)
    {
        let at = format!("at {:.0}% of max: ", point.share * 100.0);
        checks.extend(point.checks.iter().map(|c| Check {
            name: format!("{at}{}", c.name),
            ..c.clone()
        }));
    }
    if options.scenario == Scenario::Route {
        // Every route answer checked in the whole run, not only at the
        // operating point that decides the latency SLOs.
        let violations = found
            .steps
            .iter()
            .map(|s| &s.report)
            .chain(operating_points.iter().map(|p| &p.report))
            .filter_map(|r| r.kind(Kind::Route))
            .map(|k| k.invariant_violations)
            .sum();
        let check = invariant_check(violations);
        checks.push(Check {
            name: format!("every step: {}", check.name),
            ..check
        });
    }
    let baseline = baseline.map(|(_process, _bare, answer_bytes, search)| {
        let ratio = match (found.max_rate_per_s, search.max_rate_per_s) {
            (Some(ours), Some(bare)) => Some(ours as f64 / bare as f64),
            _ => None,
        };
        checks.push(Check::at_least(
            "leadex / baseline max rate",
            ratio.unwrap_or(0.0),
            slo.baseline.ratio_min,
        ));
        BaselineResult {
            answer_bytes,
            search,
            ratio,
        }
    });
    let pass = checks.iter().all(|c| c.pass);
    Ok(FindMaxReport {
        scenario: options.scenario.as_str().into(),
        connections: options.connections,
        seed: options.seed,
        baseline,
        target: found,
        operating_points,
        checks,
        pass,
        wall_s: started.elapsed().as_secs_f64(),
    })
}

impl FindMaxReport {
    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("invariant: a report always serializes")
    }

    /// The kind of the scheduled requests.
    pub fn first_kind(&self) -> Kind {
        Scenario::parse(&self.scenario).map_or(Kind::Ping, Scenario::first_kind)
    }

    /// The latency-by-rate curves: every step and operating point; where a
    /// rate was measured twice (a repeated step), the later run.
    pub fn curves(&self) -> Vec<Curve> {
        let first = self.first_kind();
        let points = |reports: &mut dyn Iterator<Item = &Report>| -> Vec<Point> {
            let mut by_rate = std::collections::BTreeMap::new();
            for r in reports {
                if let Some(k) = r.kind(first) {
                    by_rate.insert(r.settings.rate_per_s, k.latency_us);
                }
            }
            by_rate
                .into_iter()
                .map(|(rate, latency_us)| Point {
                    rate_per_s: rate as f64,
                    latency_us,
                })
                .collect()
        };
        let mut curves = Vec::new();
        if let Some(b) = &self.baseline {
            curves.push(Curve {
                label: "baseline".into(),
                points: points(
                    &mut b.search.steps.iter().map(|s| &s.report).chain(
                        self.operating_points
                            .iter()
                            .filter_map(|p| p.baseline.as_ref()),
                    ),
                ),
            });
        }
        curves.push(Curve {
            label: "leadex".into(),
            points: points(
                &mut self
                    .target
                    .steps
                    .iter()
                    .map(|s| &s.report)
                    .chain(self.operating_points.iter().map(|p| &p.report)),
            ),
        });
        curves
    }

    /// The human table.
    pub fn table(&self) -> String {
        let mut out = format!(
            "find-max · scenario {} · {} connections · seed {} · {:.0} s\n",
            self.scenario, self.connections, self.seed, self.wall_s
        );
        let first = self.first_kind();
        let searches = self
            .baseline
            .iter()
            .map(|b| &b.search)
            .chain(std::iter::once(&self.target));
        for search in searches {
            let _ = writeln!(
                out,
                "\n{} ({}): max sustainable {}",
                search.label,
                search.target,
                search
                    .max_rate_per_s
                    .map_or("none".into(), |r| format!("{r}/s"))
            );
            rows_header(&mut out, "rate/s");
            for step in &search.steps {
                let rate = if step.repeat {
                    format!("{} again", step.rate_per_s)
                } else {
                    step.rate_per_s.to_string()
                };
                row(
                    &mut out,
                    &rate,
                    &step.report,
                    first,
                    if step.sustainable { "ok" } else { "over" },
                );
            }
        }
        if let Some(b) = &self.baseline {
            let _ = writeln!(
                out,
                "\nbaseline answer: {} bytes (median real bid answer)\nratio leadex / baseline: {}",
                b.answer_bytes,
                b.ratio.map_or("n/a".into(), |r| format!("{r:.2}"))
            );
        }
        if !self.operating_points.is_empty() {
            out.push_str("\nlatency at shares of leadex's max\n");
            rows_header(&mut out, "share");
            for p in &self.operating_points {
                let label = format!("{:.0}% {}/s", p.share * 100.0, p.rate_per_s);
                let pass = p.checks.iter().all(|c| c.pass);
                let verdict = if pass { "slo ok" } else { "slo miss" };
                row(&mut out, &label, &p.report, first, verdict);
                for kind in p.report.kinds.iter().filter(|k| k.kind != first) {
                    row(
                        &mut out,
                        &format!("  {}", kind.kind.as_str()),
                        &p.report,
                        kind.kind,
                        "",
                    );
                }
                if let Some(bare) = &p.baseline {
                    row(&mut out, "  bare hyper", bare, first, "same rate");
                }
                for kind in &p.report.kinds {
                    outcomes(&mut out, kind);
                }
            }
        }
        out.push_str("\nSLO checks\n");
        for c in &self.checks {
            let _ = writeln!(out, "  {}", c.line());
        }
        let _ = writeln!(out, "{}", if self.pass { "PASS" } else { "FAIL" });
        out
    }
}

/// `    ping no bid: a 12, b 3 · errors: 409 x 1`, if there are any.
fn outcomes(out: &mut String, k: &crate::report::KindReport) {
    let list = |m: &std::collections::BTreeMap<String, u64>| {
        m.iter()
            .map(|(code, n)| format!("{code} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut parts = Vec::new();
    if !k.no_bids.is_empty() {
        parts.push(format!("{}: {}", k.kind.no_bid_label(), list(&k.no_bids)));
    }
    if !k.errors.is_empty() {
        parts.push(format!("errors: {}", list(&k.errors)));
    }
    if k.checked > 0 || k.invariant_violations > 0 {
        parts.push(format!(
            "checked {}, factor-sum violations {}",
            k.checked, k.invariant_violations
        ));
    }
    if !parts.is_empty() {
        let _ = writeln!(out, "    {} {}", k.kind.as_str(), parts.join(" · "));
    }
}

fn rows_header(out: &mut String, first: &str) {
    let _ = writeln!(
        out,
        "  {:<16} {:>9} {:>8} {:>8} {:>8} {:>9} {:>9} {:>8} {:>8}  verdict",
        first,
        "achieved",
        "p50 us",
        "p90 us",
        "p99 us",
        "p99.9 us",
        "max us",
        "failures",
        "late us"
    );
}

fn row(out: &mut String, label: &str, report: &Report, first: Kind, verdict: &str) {
    let Some(k) = report.kind(first) else {
        let _ = writeln!(out, "  {label:<16} (nothing answered)  {verdict}");
        return;
    };
    let l = &k.latency_us;
    let _ = writeln!(
        out,
        "  {:<16} {:>9.0} {:>8} {:>8} {:>8} {:>9} {:>9} {:>8} {:>8}  {}",
        label,
        k.achieved_rate_per_s,
        l.p50,
        l.p90,
        l.p99,
        l.p99_9,
        l.max,
        crate::slo::failures(k),
        report.pacer_lateness_us.p99,
        verdict
    );
}
