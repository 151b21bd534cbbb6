//! Matching and the auction: from a ping to ranked winning bids.
//!
//! This is the hot path. It reads one [`Snapshot`], writes into a reusable
//! [`Scratch`], and allocates nothing once the scratch buffers have grown to
//! their working size (checked by a counting-allocator test).

use crate::counters::ChargeRefusal;
use crate::index::{VerticalIndex, QUERY_ROWS};
use crate::lead::{Ping, SaleType, SaleTypeRequest};
use crate::localtime::LocalTime;
use crate::snapshot::{contains_str, Campaign, Seller, Snapshot};
use crate::spec::{EngineSettings, Pricing, MONEY_CENTS_MAX};

/// Why a ping got no bid. Ordered by how far the best campaign got, so the
/// reported reason is the most specific one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NoBidReason {
    /// No campaign's targeting matched.
    NoEligibleBuyers,
    /// The seller may not sell this vertical or campaigns refuse the seller or source.
    SellerNotAllowed,
    /// Campaigns require consent evidence the ping lacks.
    ConsentRequired,
    /// Matching campaigns are closed at this hour.
    OutsideSchedule,
    /// Matching campaigns have spent their budget.
    BudgetExhausted,
    /// Matching campaigns reached a cap.
    CapsReached,
    /// Every bid was below the seller's floor.
    BelowFloor,
}

impl NoBidReason {
    /// Every reason, in order.
    pub const ALL: [NoBidReason; 7] = [
        NoBidReason::NoEligibleBuyers,
        NoBidReason::SellerNotAllowed,
        NoBidReason::ConsentRequired,
        NoBidReason::OutsideSchedule,
        NoBidReason::BudgetExhausted,
        NoBidReason::CapsReached,
        NoBidReason::BelowFloor,
    ];

    /// Stable wire code.
    pub fn as_str(self) -> &'static str {
        match self {
            NoBidReason::NoEligibleBuyers => "no_eligible_buyers",
            NoBidReason::SellerNotAllowed => "seller_not_allowed",
            NoBidReason::ConsentRequired => "consent_required",
            NoBidReason::OutsideSchedule => "outside_schedule",
            NoBidReason::BudgetExhausted => "budget_exhausted",
            NoBidReason::CapsReached => "caps_reached",
            NoBidReason::BelowFloor => "below_floor",
        }
    }
}

/// A campaign that passed every check, with its own price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// Campaign index.
    pub campaign: u32,
    /// Account index.
    pub account: u32,
    /// The campaign's price for this lead, cents.
    pub bid_cents: u64,
    /// Tie-break priority.
    pub priority: u8,
    /// Sale type.
    pub sale_type: SaleType,
}

/// A winning bid with the price the buyer will pay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Winner {
    /// Campaign index.
    pub campaign: u32,
    /// What the buyer pays, cents.
    pub buyer_price_cents: u64,
    /// What the seller gets, cents.
    pub seller_price_cents: u64,
    /// Sale type.
    pub sale_type: SaleType,
}

/// Reusable buffers for one thread's auctions.
#[derive(Debug, Default)]
pub struct Scratch {
    rows: [usize; QUERY_ROWS],
    acc: Vec<u64>,
    candidates: Vec<Candidate>,
    ranked: Vec<Candidate>,
    /// Winners of the last auction, in bid order.
    pub winners: Vec<Winner>,
    /// Campaigns to leave out of the next auction (cascades).
    pub excluded_campaigns: Vec<u32>,
    local_times: Vec<(u64, i64, LocalTime)>,
}

impl Scratch {
    fn local_time(&mut self, snap: &Snapshot, tz: u16, now_ms: i64) -> LocalTime {
        // Cached per time zone for the current minute: every US offset is a
        // whole number of minutes, so hour, day, week and month keys cannot
        // change inside one UTC minute.
        let minute = now_ms.div_euclid(60_000);
        let i = tz as usize;
        if self.local_times.len() < snap.time_zones.len() {
            self.local_times.resize(
                snap.time_zones.len(),
                (u64::MAX, i64::MIN, LocalTime::default()),
            );
        }
        let slot = &mut self.local_times[i];
        if slot.0 != snap.generation || slot.1 != minute {
            *slot = (
                snap.generation,
                minute,
                LocalTime::at(snap.time_zones[i], now_ms),
            );
        }
        slot.2
    }
}

/// Local time of a campaign (outside the hot path: settlement, replay).
pub fn campaign_local_time(snap: &Snapshot, campaign: &Campaign, at_ms: i64) -> LocalTime {
    LocalTime::at(snap.time_zones[campaign.time_zone as usize], at_ms)
}

/// The campaign's price for a ping at a local time, before margin.
pub fn campaign_price(c: &Campaign, ping: &Ping, local: &LocalTime) -> Option<u64> {
    let a = &ping.attributes;
    let mut price = c.price_cents as i64;
    for m in c.modifiers.iter() {
        if m.applies(
            a.state,
            local.hour,
            a.source_id.as_deref(),
            a.credit,
            a.device,
        ) {
            price = m.adjust(price);
        }
    }
    (price >= 1).then(|| (price as u64).min(MONEY_CENTS_MAX))
}

/// Checks everything the index does not; returns the price or how far the
/// campaign got.
fn evaluate(
    c: &Campaign,
    seller: &Seller,
    ping: &Ping,
    local: &LocalTime,
) -> Result<u64, NoBidReason> {
    let a = &ping.attributes;
    // Residual targeting (open-ended value sets).
    if (!c.zips.is_empty() && !c.zips.contains(a.zip)) || c.exclude_zips.contains(a.zip) {
        return Err(NoBidReason::NoEligibleBuyers);
    }
    let carrier = a.current_carrier.as_deref();
    if (!c.carriers.is_empty() && !carrier.is_some_and(|x| contains_str(&c.carriers, x)))
        || carrier.is_some_and(|x| contains_str(&c.exclude_carriers, x))
    {
        return Err(NoBidReason::NoEligibleBuyers);
    }
    if !c.coverage_types.is_empty()
        && !a
            .coverage_type
            .as_deref()
            .is_some_and(|x| contains_str(&c.coverage_types, x))
    {
        return Err(NoBidReason::NoEligibleBuyers);
    }
    let at_least = |min: Option<u32>, v: Option<u32>| min.is_none_or(|m| v.is_some_and(|v| v >= m));
    let at_most = |max: Option<u32>, v: Option<u32>| max.is_none_or(|m| v.is_some_and(|v| v <= m));
    if !at_least(
        c.insured_months_min.map(u32::from),
        a.insured_months.map(u32::from),
    ) || !at_least(c.income_min, a.income)
        || !at_most(
            c.household_size_max.map(u32::from),
            a.household_size.map(u32::from),
        )
        || !at_most(c.bmi_tenths_max.map(u32::from), a.bmi_tenths.map(u32::from))
    {
        return Err(NoBidReason::NoEligibleBuyers);
    }
    // Seller and source.
    let source = a.source_id.as_deref();
    if (!c.sellers.is_empty() && c.sellers.binary_search(&seller.index).is_err())
        || (!c.sources.is_empty() && !source.is_some_and(|s| contains_str(&c.sources, s)))
        || source.is_some_and(|s| contains_str(&c.exclude_sources, s))
    {
        return Err(NoBidReason::SellerNotAllowed);
    }
    // Consent.
    let (tcpa, trustedform, jornaya) = c.require_consent;
    if tcpa || trustedform || jornaya {
        let ok = ping.consent.as_ref().is_some_and(|k| {
            (!tcpa || k.has_tcpa())
                && (!trustedform || k.has_trustedform())
                && (!jornaya || k.has_jornaya())
        });
        if !ok {
            return Err(NoBidReason::ConsentRequired);
        }
    }
    // Schedule.
    if let Some(days) = &c.schedule {
        if days[local.weekday as usize] & (1 << local.hour) == 0 {
            return Err(NoBidReason::OutsideSchedule);
        }
    }
    let price = campaign_price(c, ping, local).ok_or(NoBidReason::NoEligibleBuyers)?;
    // Budget and caps (advisory here; settlement charges exactly).
    match c
        .counters
        .would_fit(c.budget_cents, &c.limits, price, local)
    {
        Ok(()) => {}
        Err(ChargeRefusal::Budget) => return Err(NoBidReason::BudgetExhausted),
        Err(ChargeRefusal::Cap) => return Err(NoBidReason::CapsReached),
    }
    if seller.payout_cents(price) < seller.floor_cents {
        return Err(NoBidReason::BelowFloor);
    }
    Ok(price)
}

/// Runs matching and the auction for `ping`. On success the winners are in
/// `scratch.winners` (non-empty); otherwise the most specific reason.
pub fn run_auction(
    snap: &Snapshot,
    settings: &EngineSettings,
    seller: &Seller,
    ping: &Ping,
    now_ms: i64,
    scratch: &mut Scratch,
) -> Result<(), NoBidReason> {
    scratch.winners.clear();
    scratch.candidates.clear();
    let vertical = ping.attributes.vertical;
    if seller.verticals_mask & (1 << vertical.index()) == 0 {
        return Err(NoBidReason::SellerNotAllowed);
    }
    let index = &snap.verticals[vertical.index()];
    VerticalIndex::query_rows(&ping.attributes, ping.sale_type, &mut scratch.rows);
    let mut furthest = NoBidReason::NoEligibleBuyers;
    let mut acc = std::mem::take(&mut scratch.acc);
    let rows = scratch.rows;
    index.matches(&rows, &mut acc, |ci| {
        if scratch.excluded_campaigns.contains(&ci) {
            return;
        }
        let c = &snap.campaigns[ci as usize];
        let local = scratch.local_time(snap, c.time_zone, now_ms);
        match evaluate(c, seller, ping, &local) {
            Ok(bid_cents) => scratch.candidates.push(Candidate {
                campaign: ci,
                account: c.account,
                bid_cents,
                priority: c.priority,
                sale_type: c.sale_type,
            }),
            Err(reason) => furthest = furthest.max(reason),
        }
    });
    scratch.acc = acc;
    if scratch.candidates.is_empty() {
        return Err(furthest);
    }
    // Deterministic ranking: price, then priority, then campaign id order.
    scratch.candidates.sort_unstable_by(|x, y| {
        y.bid_cents
            .cmp(&x.bid_cents)
            .then(y.priority.cmp(&x.priority))
            .then(x.campaign.cmp(&y.campaign))
    });
    // Best campaign per account (one account buys a lead at most once),
    // keeping only what the auction can use: two exclusive bids (winner and
    // its second price) and max_shared + 1 shared bids. Bounded work.
    let max_shared = usize::from(settings.max_shared_buyers);
    scratch.ranked.clear();
    let (mut n_exclusive, mut n_shared) = (0usize, 0usize);
    for cand in &scratch.candidates {
        let (count, limit) = match cand.sale_type {
            SaleType::Exclusive => (&mut n_exclusive, 2),
            SaleType::Shared => (&mut n_shared, max_shared + 1),
        };
        if *count < limit
            && !scratch
                .ranked
                .iter()
                .any(|r| r.account == cand.account && r.sale_type == cand.sale_type)
        {
            *count += 1;
            scratch.ranked.push(*cand);
            if n_exclusive == 2 && n_shared == max_shared + 1 {
                break;
            }
        }
    }
    let exclusive = scratch
        .ranked
        .iter()
        .find(|c| c.sale_type == SaleType::Exclusive);
    let shared_value: u64 = scratch
        .ranked
        .iter()
        .filter(|c| c.sale_type == SaleType::Shared)
        .take(max_shared)
        .map(|c| seller.payout_cents(c.bid_cents))
        .sum();
    let pick_exclusive = match (ping.sale_type, exclusive) {
        (SaleTypeRequest::Shared, _) | (_, None) => false,
        (SaleTypeRequest::Exclusive, Some(_)) => true,
        // An exclusive bid wins ties: it blocks every shared sale.
        (SaleTypeRequest::Any, Some(e)) => seller.payout_cents(e.bid_cents) >= shared_value,
    };
    let kind = if pick_exclusive {
        SaleType::Exclusive
    } else {
        SaleType::Shared
    };
    let take = if pick_exclusive { 1 } else { max_shared };
    let floor_price = seller.floor_buyer_price_cents().max(1);
    let mut of_kind = scratch
        .ranked
        .iter()
        .filter(|c| c.sale_type == kind)
        .peekable();
    while let Some(c) = of_kind.next() {
        if scratch.winners.len() == take {
            break;
        }
        let buyer_price = match settings.pricing {
            Pricing::FirstPrice => c.bid_cents,
            Pricing::SecondPrice => {
                let next = of_kind.peek().map_or(0, |n| n.bid_cents + 1);
                next.max(floor_price).min(c.bid_cents)
            }
        };
        scratch.winners.push(Winner {
            campaign: c.campaign,
            buyer_price_cents: buyer_price,
            seller_price_cents: seller.payout_cents(buyer_price),
            sale_type: kind,
        });
    }
    debug_assert!(
        !scratch.winners.is_empty(),
        "invariant: a non-empty ranking of the chosen kind"
    );
    if scratch.winners.is_empty() {
        return Err(furthest);
    }
    Ok(())
}
