//! Prometheus text metrics for the hot path, kept in preallocated atomics:
//! requests by route and status, latency histograms by route, and the
//! engine's and journal's own counters. Rendering allocates; recording never
//! does. All orderings are `Relaxed`: these are statistics, read without any
//! ordering need against other memory.

use leadex_engine::{Engine, NoBidReason};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Routes measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `POST /v1/ping`.
    Ping,
    /// `POST /v1/post`.
    Post,
    /// `POST /v1/leads`.
    DirectPost,
    /// `POST /v1/route`.
    Route,
    /// `GET /healthz`.
    Health,
    /// `GET /metrics`.
    Metrics,
    /// Anything else.
    Other,
}

const ROUTES: [(Route, &str); 7] = [
    (Route::Ping, "/v1/ping"),
    (Route::Post, "/v1/post"),
    (Route::DirectPost, "/v1/leads"),
    (Route::Route, "/v1/route"),
    (Route::Health, "/healthz"),
    (Route::Metrics, "/metrics"),
    (Route::Other, "other"),
];

const STATUSES: [u16; 14] = [
    200, 400, 401, 404, 405, 408, 409, 410, 413, 415, 422, 500, 503, 0,
];

/// Histogram bucket upper bounds, microseconds.
const BUCKETS_US: [u64; 14] = [
    25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 1_000_000,
    10_000_000,
];

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS_US.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

/// Hot-path metrics.
#[derive(Default)]
pub struct Metrics {
    requests: [[AtomicU64; STATUSES.len()]; ROUTES.len()],
    latency: [Histogram; ROUTES.len()],
    errors_by_code: dashmap::DashMap<&'static str, AtomicU64>,
    /// Pings whose journal append was refused.
    pub ping_journal_refusals: AtomicU64,
    /// Posts answered 503 because the journal failed.
    pub post_journal_failures: AtomicU64,
    /// Pings answered from memory while the journal was unavailable.
    pub pings_not_journaled: AtomicU64,
    /// Posts answered 503 because durability was not confirmed in time.
    pub post_durable_wait_expired: AtomicU64,
}

fn route_index(route: Route) -> usize {
    ROUTES
        .iter()
        .position(|(r, _)| *r == route)
        .unwrap_or(ROUTES.len() - 1)
}

impl Metrics {
    /// Records one answered request.
    pub fn observe(&self, route: Route, status: u16, elapsed: Duration) {
        let r = route_index(route);
        let s = STATUSES
            .iter()
            .position(|x| *x == status)
            .unwrap_or(STATUSES.len() - 1);
        self.requests[r][s].fetch_add(1, Ordering::Relaxed);
        let us = elapsed.as_micros().min(u128::from(u64::MAX)) as u64;
        let h = &self.latency[r];
        if let Some(b) = BUCKETS_US.iter().position(|b| us <= *b) {
            h.buckets[b].fetch_add(1, Ordering::Relaxed);
        }
        h.count.fetch_add(1, Ordering::Relaxed);
        h.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Counts an error answer by its stable code.
    pub fn error(&self, code: &'static str) {
        if let Some(c) = self.errors_by_code.get(code) {
            c.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.errors_by_code
            .entry(code)
            .or_default()
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Renders everything in Prometheus text format 0.0.4.
    pub fn render(&self, engine: &Engine, journal: &JournalGauges) -> String {
        let mut out = String::with_capacity(8192);
        out.push_str("# HELP leadex_requests_total Requests answered, by route and HTTP status.\n");
        out.push_str("# TYPE leadex_requests_total counter\n");
        for (r, (_, path)) in ROUTES.iter().enumerate() {
            for (s, status) in STATUSES.iter().enumerate() {
                let n = self.requests[r][s].load(Ordering::Relaxed);
                if n > 0 {
                    let status = if *status == 0 {
                        "other".to_owned()
                    } else {
                        status.to_string()
                    };
                    let _ = writeln!(
                        out,
                        "leadex_requests_total{{route=\"{path}\",status=\"{status}\"}} {n}"
                    );
                }
            }
        }
        out.push_str(
            "# HELP leadex_request_duration_seconds Time from request head to answer, by route.\n",
        );
        out.push_str("# TYPE leadex_request_duration_seconds histogram\n");
        for (r, (_, path)) in ROUTES.iter().enumerate() {
            let h = &self.latency[r];
            let count = h.count.load(Ordering::Relaxed);
            if count == 0 {
                continue;
            }
            let mut cumulative = 0;
            for (b, le) in BUCKETS_US.iter().enumerate() {
                cumulative += h.buckets[b].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "leadex_request_duration_seconds_bucket{{route=\"{path}\",le=\"{}\"}} {cumulative}",
                    *le as f64 / 1e6
                );
            }
            let _ = writeln!(
                out,
                "leadex_request_duration_seconds_bucket{{route=\"{path}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "leadex_request_duration_seconds_sum{{route=\"{path}\"}} {}",
                h.sum_us.load(Ordering::Relaxed) as f64 / 1e6
            );
            let _ = writeln!(
                out,
                "leadex_request_duration_seconds_count{{route=\"{path}\"}} {count}"
            );
        }
        out.push_str("# HELP leadex_errors_total Error answers by stable error code.\n");
        out.push_str("# TYPE leadex_errors_total counter\n");
        let mut codes: Vec<_> = self
            .errors_by_code
            .iter()
            .map(|e| (*e.key(), e.value().load(Ordering::Relaxed)))
            .collect();
        codes.sort_unstable();
        for (code, n) in codes {
            let _ = writeln!(out, "leadex_errors_total{{code=\"{code}\"}} {n}");
        }
        let s = &engine.stats;
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            single(out, "counter", name, help, v)
        };
        counter(
            &mut out,
            "leadex_pings_total",
            "Pings run through the auction.",
            s.pings.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "leadex_bids_total",
            "Bids returned to sellers.",
            s.bids.load(Ordering::Relaxed),
        );
        out.push_str("# HELP leadex_no_bids_total Pings answered without a bid, by reason.\n# TYPE leadex_no_bids_total counter\n");
        for reason in NoBidReason::ALL {
            let _ = writeln!(
                out,
                "leadex_no_bids_total{{reason=\"{}\"}} {}",
                reason.as_str(),
                s.no_bids[reason as usize].load(Ordering::Relaxed)
            );
        }
        counter(
            &mut out,
            "leadex_leads_sold_total",
            "Leads sold (durable).",
            s.leads_sold.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "leadex_sales_total",
            "Sales (one per buyer of a lead).",
            s.sales.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "leadex_spend_cents_total",
            "Buyer spend in cents.",
            s.spend_cents.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "leadex_payout_cents_total",
            "Seller payouts in cents.",
            s.payout_cents.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "leadex_ping_journal_refusals_total",
            "Pings refused because the journal queue was full.",
            self.ping_journal_refusals.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "leadex_post_journal_failures_total",
            "Posts answered 503 because the journal failed.",
            self.post_journal_failures.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "leadex_pings_not_journaled_total",
            "Pings answered from memory while the journal was unavailable.",
            self.pings_not_journaled.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "leadex_post_durable_wait_expired_total",
            "Posts answered 503 because their durability was not confirmed in time.",
            self.post_durable_wait_expired.load(Ordering::Relaxed),
        );
        let r = &engine.router().stats;
        out.push_str("# HELP leadex_routing_transitions_total Assignment transitions committed since start, by kind.\n# TYPE leadex_routing_transitions_total counter\n");
        for (kind, c) in [
            ("created", &r.created),
            ("offered", &r.offered),
            ("accepted", &r.accepted),
            ("rejected", &r.rejected),
            ("expired", &r.expired),
            ("escalated", &r.escalated),
            ("unassigned", &r.unassigned),
            ("closed", &r.closed),
        ] {
            let _ = writeln!(
                out,
                "leadex_routing_transitions_total{{kind=\"{kind}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        let gauge =
            |out: &mut String, name: &str, help: &str, v: u64| single(out, "gauge", name, help, v);
        gauge(
            &mut out,
            "leadex_assignments_open",
            "Assignments offered or accepted.",
            engine.router().open_count() as u64,
        );
        gauge(
            &mut out,
            "leadex_route_backlog",
            "Sold leads waiting to be routed.",
            engine.router().backlog_len() as u64,
        );
        gauge(
            &mut out,
            "leadex_agents",
            "Agents in the routing graph.",
            engine.router().graph().agents.len() as u64,
        );
        let snap = engine.snapshot();
        gauge(
            &mut out,
            "leadex_campaigns",
            "Campaigns loaded.",
            snap.campaigns.len() as u64,
        );
        gauge(
            &mut out,
            "leadex_pending_pings",
            "Pings held under a price lock.",
            engine.pending_pings() as u64,
        );
        gauge(
            &mut out,
            "leadex_dedupe_entries",
            "Dedupe entries held.",
            engine.dedupe_entries() as u64,
        );
        gauge(
            &mut out,
            "leadex_journal_last_lsn",
            "Last journal record written.",
            journal.last_lsn,
        );
        gauge(
            &mut out,
            "leadex_journal_healthy",
            "1 when the journal accepts writes.",
            u64::from(journal.healthy),
        );
        counter(
            &mut out,
            "leadex_journal_fsyncs_total",
            "Journal fsync calls.",
            journal.fsyncs,
        );
        gauge(
            &mut out,
            "leadex_journal_fsync_max_microseconds",
            "Slowest journal fsync.",
            journal.fsync_max_us,
        );
        gauge(
            &mut out,
            "leadex_journal_in_doubt",
            "Sales whose durability is being reconciled with the broker.",
            journal.in_doubt,
        );
        let _ = writeln!(
            out,
            "# HELP leadex_journal_reconciled_total Sales in doubt settled by reading the topic, by outcome.\n\
             # TYPE leadex_journal_reconciled_total counter\n\
             leadex_journal_reconciled_total{{outcome=\"stored\"}} {}\n\
             leadex_journal_reconciled_total{{outcome=\"absent\"}} {}",
            journal.reconciled_stored, journal.reconciled_absent
        );
        counter(
            &mut out,
            "leadex_snapshots_total",
            "Snapshots taken since start.",
            journal.snapshots_taken,
        );
        counter(
            &mut out,
            "leadex_snapshot_failures_total",
            "Snapshot attempts that failed (snapshots pause, serving continues).",
            journal.snapshot_failures,
        );
        gauge(
            &mut out,
            "leadex_snapshot_last_bytes",
            "Size of the latest snapshot.",
            journal.snapshot_last_bytes,
        );
        gauge(
            &mut out,
            "leadex_snapshot_last_milliseconds",
            "Time the latest snapshot took.",
            journal.snapshot_last_ms,
        );
        gauge(
            &mut out,
            "leadex_snapshots_healthy",
            "1 unless the latest snapshot attempt failed.",
            u64::from(journal.snapshots_ok),
        );
        out
    }
}

/// Writes one unlabelled metric with its HELP and TYPE lines.
fn single(out: &mut String, kind: &str, name: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

/// Storage figures for rendering (read from the backend's stats).
#[derive(Debug, Clone, Copy, Default)]
pub struct JournalGauges {
    /// `"file"` or `"kafka"`.
    pub backend: &'static str,
    /// Last LSN (file) or records delivered (Kafka).
    pub last_lsn: u64,
    /// Sales whose durability is being reconciled (Kafka).
    pub in_doubt: u64,
    /// Sales in doubt that reconciliation found stored (Kafka).
    pub reconciled_stored: u64,
    /// Sales in doubt that reconciliation found absent (Kafka).
    pub reconciled_absent: u64,
    /// Snapshots taken since start.
    pub snapshots_taken: u64,
    /// Snapshot attempts that failed.
    pub snapshot_failures: u64,
    /// Size of the latest snapshot, bytes.
    pub snapshot_last_bytes: u64,
    /// Time the latest snapshot took, ms.
    pub snapshot_last_ms: u64,
    /// False while snapshots fail (paused).
    pub snapshots_ok: bool,
    /// fsync calls.
    pub fsyncs: u64,
    /// Slowest fsync, µs.
    pub fsync_max_us: u64,
    /// Accepting writes.
    pub healthy: bool,
}
