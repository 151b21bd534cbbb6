//! Reports: per campaign (bids, wins, returns, spend, average price, win
//! rate), per seller (pings answered, leads, revenue) and the funnel by
//! vertical and day (pings → bids → sales → returns → contacted → quoted →
//! bound).
//!
//! Where the figures come from, so each is exact for a stated reason:
//! - **Sales, returns, spend, revenue and the CRM stages** are computed at
//!   query time from the lead records ([`crate::store`]), which the journal
//!   rebuilds exactly (a sale is recorded once, by lead id). Nothing is
//!   counted twice, and a report always agrees with the lead list.
//! - **Pings and bids** are counted per UTC day in [`PingTallies`] from the
//!   `PingIssued` events: live from the server's admin feed, and on replay
//!   from the journal for pings the engine did not hold yet (so a ping is
//!   counted once). Pings answered with no bid are not journaled and not in
//!   these reports (the engine's `/metrics` counts them by reason).
//!   The live feed never blocks a ping: when its queue is full a ping is not
//!   counted and `pings_not_counted` says how many (since the process
//!   started).
//! - "Pings matched" per campaign is not reported: the auction prunes
//!   campaigns that cannot reach a winning price without evaluating their
//!   filters (that is what keeps a ping in microseconds), so the engine
//!   does not know every campaign a ping matched. `bids` counts the pings
//!   whose answer held the campaign's bid.
//!
//! Days are UTC calendar days; a sale and its later return, status, quote
//! and policy count on the day the lead was sold (a cohort view), pings on
//! the day they were answered.

use crate::admin::{not_found, Principal};
use crate::error::{ApiError, ErrorBody};
use crate::json::ApiQuery;
use crate::keys::Role;
use crate::records::{wire_name, LeadStatus};
use crate::AppState;
use axum::extract::State;
use axum::Json;
use chrono::NaiveDate;
use leadex_engine::event::PingIssued;
use leadex_engine::lead::Vertical;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

/// Days of ping tallies kept; older days are dropped as new ones arrive.
pub const PING_DAYS_KEPT: i64 = 400;
/// Longest range one report covers, days.
pub const RANGE_DAYS_MAX: i64 = 366;
/// The range when none is given: this many days up to today.
pub const RANGE_DAYS_DEFAULT: i64 = 30;

const DAY_MS: i64 = 86_400_000;

/// The UTC day (days since 1970-01-01) of a Unix ms time.
pub fn day_of(at_ms: i64) -> i64 {
    at_ms.div_euclid(DAY_MS)
}

fn date_of(day: i64) -> String {
    (NaiveDate::default() + chrono::Days::new(day.max(0) as u64))
        .format("%Y-%m-%d")
        .to_string()
}

/// One ping answered with bids, as the reports count it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingSeen {
    /// When it was answered, Unix ms.
    pub at_ms: i64,
    /// Seller.
    pub seller_id: String,
    /// Vertical.
    pub vertical: Vertical,
    /// The campaigns whose bids the answer held.
    pub campaigns: Vec<String>,
}

impl PingSeen {
    /// What a journaled ping contributes.
    pub fn of(p: &PingIssued) -> Self {
        PingSeen {
            at_ms: p.issued_at_ms,
            seller_id: p.seller_id.clone(),
            vertical: p.ping.attributes.vertical,
            campaigns: p.bids.iter().map(|b| b.campaign_id.clone()).collect(),
        }
    }
}

/// One day's pings answered with bids.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayPings {
    /// Pings per seller.
    pub sellers: BTreeMap<String, u64>,
    /// Bids per campaign.
    pub campaigns: BTreeMap<String, u64>,
    /// Pings and bids per vertical (wire name).
    pub verticals: BTreeMap<String, VerticalPings>,
}

/// A vertical's pings answered with bids, and the bids in them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerticalPings {
    /// Pings.
    pub pings: u64,
    /// Bids.
    pub bids: u64,
}

/// Pings answered with bids, per UTC day, for the last [`PING_DAYS_KEPT`]
/// days (bounded: days × (sellers + campaigns + verticals) entries).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingTallies {
    /// By day number (days since 1970-01-01, UTC).
    pub days: BTreeMap<i64, DayPings>,
}

impl PingTallies {
    /// Counts one ping.
    pub fn add(&mut self, ping: &PingSeen) {
        let day = day_of(ping.at_ms);
        if let Some((&newest, _)) = self.days.last_key_value() {
            if day <= newest - PING_DAYS_KEPT {
                return;
            }
        }
        let d = self.days.entry(day).or_default();
        *d.sellers.entry(ping.seller_id.clone()).or_default() += 1;
        for c in &ping.campaigns {
            *d.campaigns.entry(c.clone()).or_default() += 1;
        }
        let v = d.verticals.entry(wire_name(&ping.vertical)).or_default();
        v.pings += 1;
        v.bids += ping.campaigns.len() as u64;
        while let Some((&oldest, _)) = self.days.first_key_value() {
            if oldest > day - PING_DAYS_KEPT {
                break;
            }
            self.days.pop_first();
        }
    }

    fn range(&self, r: &Range) -> impl Iterator<Item = (&i64, &DayPings)> {
        self.days.range(r.from_day..=r.to_day)
    }
}

/// The days a report covers (day numbers, UTC).
#[derive(Debug, Clone, Copy)]
struct Range {
    from_day: i64,
    to_day: i64,
}

impl Range {
    fn holds(&self, at_ms: i64) -> bool {
        (self.from_day..=self.to_day).contains(&day_of(at_ms))
    }
}

fn parse_day(field: &'static str, text: &str) -> Result<i64, ApiError> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .filter(|d| *d >= NaiveDate::default())
        .map(|d| (d - NaiveDate::default()).num_days())
        .ok_or_else(|| ApiError::invalid(field, "must be a date YYYY-MM-DD, 1970-01-01 or later"))
}

/// The range of a report's `from` and `to` parameters: at most
/// [`RANGE_DAYS_MAX`] days, by default the [`RANGE_DAYS_DEFAULT`] days up
/// to today.
fn range(from: Option<&str>, to: Option<&str>, now_ms: i64) -> Result<Range, ApiError> {
    let to_day = match to {
        Some(t) => parse_day("to", t)?,
        None => day_of(now_ms),
    };
    let from_day = match from {
        Some(f) => parse_day("from", f)?,
        None => (to_day - (RANGE_DAYS_DEFAULT - 1)).max(0),
    };
    if from_day > to_day {
        return Err(ApiError::invalid("from", "must not be after `to`"));
    }
    if to_day - from_day >= RANGE_DAYS_MAX {
        return Err(ApiError::invalid("to", "a report covers at most 366 days"));
    }
    Ok(Range { from_day, to_day })
}

/// Campaign report filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct CampaignReportQuery {
    /// First day, `YYYY-MM-DD` (UTC), inclusive. Default: 29 days before `to`.
    #[param(format = Date)]
    from: Option<String>,
    /// Last day, `YYYY-MM-DD` (UTC), inclusive. Default: today.
    #[param(format = Date)]
    to: Option<String>,
    /// Only this account's campaigns (admins; tenant keys see their own only).
    buyer_id: Option<String>,
    /// Only this campaign.
    campaign_id: Option<String>,
}

/// One campaign's figures over the range.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub(crate) struct CampaignRow {
    /// Campaign id (`TOTAL` in the totals row).
    campaign_id: String,
    /// Owning account (empty in the totals row).
    buyer_id: String,
    /// Pings whose answer held the campaign's bid.
    bids: u64,
    /// Leads bought at a post of one of those pings.
    wins: u64,
    /// Leads bought by direct post (no ping).
    direct: u64,
    /// Of the leads bought, how many were returned.
    returned: u64,
    /// Leads bought and kept: wins + direct − returned.
    sold: u64,
    /// Prices paid, cents.
    charged_cents: u64,
    /// Refunds for returns, cents.
    refunded_cents: u64,
    /// Charged less refunded, cents.
    spend_cents: u64,
    /// Charged ÷ leads bought, cents, rounded down (0 with none).
    average_price_cents: u64,
    /// Wins ÷ bids, basis points (10000 = every bid won; 0 with no bid).
    win_rate_bps: u64,
}

impl CampaignRow {
    fn finish(&mut self) {
        let bought = self.wins + self.direct;
        self.sold = bought - self.returned;
        self.spend_cents = self.charged_cents - self.refunded_cents;
        self.average_price_cents = self.charged_cents.checked_div(bought).unwrap_or(0);
        self.win_rate_bps = (self.wins * 10_000).checked_div(self.bids).unwrap_or(0);
    }

    fn add(&mut self, o: &CampaignRow) {
        self.bids += o.bids;
        self.wins += o.wins;
        self.direct += o.direct;
        self.returned += o.returned;
        self.charged_cents += o.charged_cents;
        self.refunded_cents += o.refunded_cents;
    }
}

/// The campaign report.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CampaignReport {
    /// First day, inclusive.
    from: String,
    /// Last day, inclusive.
    to: String,
    /// One row per campaign the caller sees, by id.
    rows: Vec<CampaignRow>,
    /// The rows summed (`win_rate_bps` and `average_price_cents` of the sums).
    totals: CampaignRow,
    /// Pings answered since this process started that the live feed could
    /// not count (its queue was full); 0 means the ping figures are complete.
    pings_not_counted: u64,
}

/// Per campaign: bids, wins, returns, spend, average price and win rate.
#[utoipa::path(get, path = "/v1/reports/campaigns", operation_id = "report_campaigns", tag = "reports", security(("bearer" = [])),
    params(CampaignReportQuery),
    responses(
        (status = 200, description = "One row per campaign, and the totals", body = CampaignReport),
        (status = 400, description = "Bad date or range", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "A seller or agent key", body = ErrorBody),
        (status = 404, description = "Another account, or a campaign the caller does not see", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
    ))]
pub(crate) async fn campaigns(
    State(state): State<AppState>,
    caller: Principal,
    query: ApiQuery<CampaignReportQuery>,
) -> Result<Json<CampaignReport>, ApiError> {
    caller.require_any(&[Role::Buyer, Role::Manager])?;
    let q = query.0;
    let admin = &state.admin;
    let r = range(q.from.as_deref(), q.to.as_deref(), admin.now_ms())?;
    let account = caller.account(q.buyer_id.as_deref())?;
    let market = admin.engine.marketplace();
    let mut rows: BTreeMap<String, CampaignRow> = market
        .campaigns
        .iter()
        .filter(|c| account.as_deref().is_none_or(|a| a == c.buyer_id))
        .filter(|c| q.campaign_id.as_deref().is_none_or(|id| id == c.id))
        .map(|c| {
            let row = CampaignRow {
                campaign_id: c.id.clone(),
                buyer_id: c.buyer_id.clone(),
                ..CampaignRow::default()
            };
            (c.id.clone(), row)
        })
        .collect();
    if q.campaign_id.is_some() && rows.is_empty() {
        return Err(not_found("campaign"));
    }
    admin.store.pings(|t| {
        for (_, day) in t.range(&r) {
            for (id, n) in &day.campaigns {
                if let Some(row) = rows.get_mut(id) {
                    row.bids += n;
                }
            }
        }
    });
    admin.store.read(|s| {
        for lead in s.leads.values().filter(|l| r.holds(l.sold_at_ms)) {
            for p in &lead.purchases {
                let Some(row) = rows.get_mut(&p.campaign_id) else {
                    continue;
                };
                if lead.ping_id.is_some() {
                    row.wins += 1;
                } else {
                    row.direct += 1;
                }
                row.charged_cents += p.price_cents;
                if let Some(ret) = &p.returned {
                    row.returned += 1;
                    row.refunded_cents += ret.credited_cents;
                }
            }
        }
    });
    let mut totals = CampaignRow {
        campaign_id: "TOTAL".into(),
        ..CampaignRow::default()
    };
    let rows: Vec<CampaignRow> = rows
        .into_values()
        .map(|mut row| {
            totals.add(&row);
            row.finish();
            row
        })
        .collect();
    totals.finish();
    Ok(Json(CampaignReport {
        from: date_of(r.from_day),
        to: date_of(r.to_day),
        rows,
        totals,
        pings_not_counted: admin.store.pings_not_counted(),
    }))
}

/// Seller report filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SellerReportQuery {
    /// First day, `YYYY-MM-DD` (UTC), inclusive. Default: 29 days before `to`.
    #[param(format = Date)]
    from: Option<String>,
    /// Last day, `YYYY-MM-DD` (UTC), inclusive. Default: today.
    #[param(format = Date)]
    to: Option<String>,
    /// Only this seller (admins; seller keys see their own only).
    seller_id: Option<String>,
}

/// One seller's figures over the range.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub(crate) struct SellerRow {
    /// Seller id (`TOTAL` in the totals row).
    seller_id: String,
    /// Pings answered with at least one bid.
    pings_with_bids: u64,
    /// Leads sold (one lead sold shared to three buyers counts once).
    leads: u64,
    /// Purchases of those leads (a shared lead counts once per buyer).
    purchases: u64,
    /// Of the purchases, how many were returned.
    returned: u64,
    /// What the seller is paid for its leads, cents.
    revenue_cents: u64,
    /// What buyers paid for its leads, cents.
    buyer_spend_cents: u64,
    /// Refunded to buyers for returns, cents.
    refunded_cents: u64,
}

impl SellerRow {
    fn add(&mut self, o: &SellerRow) {
        self.pings_with_bids += o.pings_with_bids;
        self.leads += o.leads;
        self.purchases += o.purchases;
        self.returned += o.returned;
        self.revenue_cents += o.revenue_cents;
        self.buyer_spend_cents += o.buyer_spend_cents;
        self.refunded_cents += o.refunded_cents;
    }
}

/// The seller report.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SellerReport {
    /// First day, inclusive.
    from: String,
    /// Last day, inclusive.
    to: String,
    /// One row per seller the caller sees, by id.
    rows: Vec<SellerRow>,
    /// The rows summed.
    totals: SellerRow,
    /// As in the campaign report.
    pings_not_counted: u64,
}

/// Per seller: pings answered with bids, leads sold, revenue.
#[utoipa::path(get, path = "/v1/reports/sellers", operation_id = "report_sellers", tag = "reports", security(("bearer" = [])),
    params(SellerReportQuery),
    responses(
        (status = 200, description = "One row per seller, and the totals", body = SellerReport),
        (status = 400, description = "Bad date or range", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "A buyer, manager or agent key", body = ErrorBody),
        (status = 404, description = "A seller the caller does not see", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
    ))]
pub(crate) async fn sellers(
    State(state): State<AppState>,
    caller: Principal,
    query: ApiQuery<SellerReportQuery>,
) -> Result<Json<SellerReport>, ApiError> {
    caller.require_any(&[Role::Seller])?;
    let q = query.0;
    let admin = &state.admin;
    let r = range(q.from.as_deref(), q.to.as_deref(), admin.now_ms())?;
    let only = caller.account(q.seller_id.as_deref())?;
    let market = admin.engine.marketplace();
    let mut rows: BTreeMap<String, SellerRow> = market
        .sellers
        .iter()
        .filter(|s| only.as_deref().is_none_or(|id| id == s.id))
        .map(|s| {
            let row = SellerRow {
                seller_id: s.id.clone(),
                ..SellerRow::default()
            };
            (s.id.clone(), row)
        })
        .collect();
    if only.is_some() && rows.is_empty() {
        return Err(not_found("seller"));
    }
    admin.store.pings(|t| {
        for (_, day) in t.range(&r) {
            for (id, n) in &day.sellers {
                if let Some(row) = rows.get_mut(id) {
                    row.pings_with_bids += n;
                }
            }
        }
    });
    admin.store.read(|s| {
        for lead in s.leads.values().filter(|l| r.holds(l.sold_at_ms)) {
            let Some(row) = rows.get_mut(&lead.seller_id) else {
                continue;
            };
            row.leads += 1;
            row.revenue_cents += lead.seller_paid_cents;
            for p in &lead.purchases {
                row.purchases += 1;
                row.buyer_spend_cents += p.price_cents;
                if let Some(ret) = &p.returned {
                    row.returned += 1;
                    row.refunded_cents += ret.credited_cents;
                }
            }
        }
    });
    let mut totals = SellerRow {
        seller_id: "TOTAL".into(),
        ..SellerRow::default()
    };
    let rows: Vec<SellerRow> = rows.into_values().inspect(|r| totals.add(r)).collect();
    Ok(Json(SellerReport {
        from: date_of(r.from_day),
        to: date_of(r.to_day),
        rows,
        totals,
        pings_not_counted: admin.store.pings_not_counted(),
    }))
}

/// Funnel filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct FunnelQuery {
    /// First day, `YYYY-MM-DD` (UTC), inclusive. Default: 29 days before `to`.
    #[param(format = Date)]
    from: Option<String>,
    /// Last day, `YYYY-MM-DD` (UTC), inclusive. Default: today.
    #[param(format = Date)]
    to: Option<String>,
    /// Only this vertical.
    #[param(value_type = Option<leadex_engine::lead::Vertical>)]
    vertical: Option<String>,
}

/// One day and vertical of the funnel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub(crate) struct FunnelRow {
    /// Day, `YYYY-MM-DD` (UTC; `TOTAL` in the totals row).
    day: String,
    /// Vertical (empty in the totals row).
    vertical: String,
    /// Pings answered with at least one bid.
    pings_with_bids: u64,
    /// Bids in those answers.
    bids: u64,
    /// Leads sold.
    leads_sold: u64,
    /// Purchases of those leads (a shared lead counts once per buyer).
    purchases: u64,
    /// Purchases returned.
    returned: u64,
    /// Purchases now contacted, quoted or bound.
    contacted: u64,
    /// Purchases now quoted or bound.
    quoted: u64,
    /// Purchases now bound.
    bound: u64,
    /// Purchases now lost.
    lost: u64,
}

impl FunnelRow {
    fn add(&mut self, o: &FunnelRow) {
        self.pings_with_bids += o.pings_with_bids;
        self.bids += o.bids;
        self.leads_sold += o.leads_sold;
        self.purchases += o.purchases;
        self.returned += o.returned;
        self.contacted += o.contacted;
        self.quoted += o.quoted;
        self.bound += o.bound;
        self.lost += o.lost;
    }
}

/// The funnel report.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FunnelReport {
    /// First day, inclusive.
    from: String,
    /// Last day, inclusive.
    to: String,
    /// One row per day and vertical with any activity, by day then vertical.
    rows: Vec<FunnelRow>,
    /// The rows summed.
    totals: FunnelRow,
    /// As in the campaign report.
    pings_not_counted: u64,
}

/// The funnel by vertical and day: pings → bids → sales → returns → CRM
/// stages (admins only).
#[utoipa::path(get, path = "/v1/reports/funnel", operation_id = "report_funnel", tag = "reports", security(("bearer" = [])),
    params(FunnelQuery),
    responses(
        (status = 200, description = "One row per day and vertical, and the totals", body = FunnelReport),
        (status = 400, description = "Bad date, range or vertical", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
    ))]
pub(crate) async fn funnel(
    State(state): State<AppState>,
    caller: Principal,
    query: ApiQuery<FunnelQuery>,
) -> Result<Json<FunnelReport>, ApiError> {
    caller.require(Role::Admin)?;
    let q = query.0;
    let admin = &state.admin;
    let r = range(q.from.as_deref(), q.to.as_deref(), admin.now_ms())?;
    let vertical: Option<String> = match &q.vertical {
        Some(v) => {
            let parsed: Vertical = crate::json::wire_enum(v)
                .ok_or_else(|| ApiError::invalid("vertical", "is not a vertical"))?;
            Some(wire_name(&parsed))
        }
        None => None,
    };
    let wanted = |v: &str| vertical.as_deref().is_none_or(|w| w == v);
    let mut rows: BTreeMap<(i64, String), FunnelRow> = BTreeMap::new();
    admin.store.pings(|t| {
        for (&day, d) in t.range(&r) {
            for (v, n) in d.verticals.iter().filter(|(v, _)| wanted(v)) {
                let row = rows.entry((day, v.clone())).or_default();
                row.pings_with_bids += n.pings;
                row.bids += n.bids;
            }
        }
    });
    admin.store.read(|s| {
        for lead in s.leads.values().filter(|l| r.holds(l.sold_at_ms)) {
            let v = wire_name(&lead.lead.ping.attributes.vertical);
            if !wanted(&v) {
                continue;
            }
            let row = rows.entry((day_of(lead.sold_at_ms), v)).or_default();
            row.leads_sold += 1;
            for p in &lead.purchases {
                row.purchases += 1;
                row.returned += u64::from(p.returned.is_some());
                let (contacted, quoted, bound, lost) = match p.status {
                    LeadStatus::New => (0, 0, 0, 0),
                    LeadStatus::Contacted => (1, 0, 0, 0),
                    LeadStatus::Quoted => (1, 1, 0, 0),
                    LeadStatus::Bound => (1, 1, 1, 0),
                    LeadStatus::Lost => (0, 0, 0, 1),
                };
                row.contacted += contacted;
                row.quoted += quoted;
                row.bound += bound;
                row.lost += lost;
            }
        }
    });
    let mut totals = FunnelRow {
        day: "TOTAL".into(),
        ..FunnelRow::default()
    };
    let rows: Vec<FunnelRow> = rows
        .into_iter()
        .map(|((day, vertical), mut row)| {
            totals.add(&row);
            row.day = date_of(day);
            row.vertical = vertical;
            row
        })
        .collect();
    Ok(Json(FunnelReport {
        from: date_of(r.from_day),
        to: date_of(r.to_day),
        rows,
        totals,
        pings_not_counted: admin.store.pings_not_counted(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(at_ms: i64, seller: &str, campaigns: &[&str]) -> PingSeen {
        PingSeen {
            at_ms,
            seller_id: seller.into(),
            vertical: Vertical::Auto,
            campaigns: campaigns.iter().map(|c| c.to_string()).collect(),
        }
    }

    #[test]
    fn tallies_count_by_day_and_drop_days_past_the_window() {
        let mut t = PingTallies::default();
        t.add(&seen(0, "s1", &["c1", "c2"]));
        t.add(&seen(DAY_MS - 1, "s1", &["c1"]));
        t.add(&seen(DAY_MS, "s2", &["c2"]));
        assert_eq!(t.days[&0].sellers["s1"], 2);
        assert_eq!(t.days[&0].campaigns["c1"], 2);
        assert_eq!(
            t.days[&0].verticals["auto"],
            VerticalPings { pings: 2, bids: 3 }
        );
        assert_eq!(t.days[&1].campaigns["c2"], 1);
        // A ping PING_DAYS_KEPT days later drops day 0 but keeps day 1.
        t.add(&seen(PING_DAYS_KEPT * DAY_MS, "s1", &[]));
        assert!(!t.days.contains_key(&0));
        assert!(t.days.contains_key(&1));
        // A ping older than the window is not counted.
        t.add(&seen(0, "s1", &["c1"]));
        assert!(!t.days.contains_key(&0));
        assert!(t.days.len() as i64 <= PING_DAYS_KEPT);
    }

    #[test]
    fn ranges_default_to_thirty_days_and_refuse_bad_dates() {
        let now = 20_000 * DAY_MS + 5;
        let r = range(None, None, now).unwrap();
        assert_eq!((r.from_day, r.to_day), (20_000 - 29, 20_000));
        let r = range(Some("2024-01-01"), Some("2024-01-31"), now).unwrap();
        assert_eq!(date_of(r.from_day), "2024-01-01");
        assert_eq!(r.to_day - r.from_day, 30);
        assert!(r.holds(r.to_day * DAY_MS + DAY_MS - 1));
        assert!(!r.holds(r.to_day * DAY_MS + DAY_MS));
        for (from, to) in [
            (Some("2024-02-30"), None),
            (Some("yesterday"), None),
            (Some("2024-02-01"), Some("2024-01-31")),
            (Some("2023-01-01"), Some("2024-01-02")),
            (Some("1969-12-31"), None),
        ] {
            let e = range(from, to, now).unwrap_err();
            assert_eq!(
                e.code,
                crate::error::ErrorCode::InvalidField,
                "{from:?} {to:?}"
            );
        }
        // 366 days inclusive is the most.
        assert!(range(Some("2024-01-01"), Some("2024-12-31"), now).is_ok());
    }

    #[test]
    fn rows_derive_rates_and_averages_from_the_sums() {
        let mut row = CampaignRow {
            bids: 40,
            wins: 10,
            direct: 2,
            returned: 3,
            charged_cents: 30_000,
            refunded_cents: 7_500,
            ..CampaignRow::default()
        };
        row.finish();
        assert_eq!(row.sold, 9);
        assert_eq!(row.spend_cents, 22_500);
        assert_eq!(row.average_price_cents, 2_500);
        assert_eq!(row.win_rate_bps, 2_500);
        let mut empty = CampaignRow::default();
        empty.finish();
        assert_eq!((empty.average_price_cents, empty.win_rate_bps), (0, 0));
    }
}
