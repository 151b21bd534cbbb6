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
    /// Best exclusive candidates, one per account, ranked (bounded).
    top_exclusive: Vec<Candidate>,
    /// Best shared candidates, one per account, ranked (bounded).
    top_shared: Vec<Candidate>,
    /// Winners of the last auction, in bid order.
    pub winners: Vec<Winner>,
    /// Campaigns to leave out of the next auction (cascades).
    pub excluded_campaigns: Vec<u32>,
    local_times: Vec<(u64, i64, LocalTime)>,
    /// Visit every matching campaign (no early stop). For differential
    /// tests of the early stop; never set in production.
    #[doc(hidden)]
    pub exhaustive: bool,
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

/// Ranking: price, then priority, then campaign index (= id order).
fn better(a: &Candidate, b: &Candidate) -> bool {
    (a.bid_cents, a.priority, std::cmp::Reverse(a.campaign))
        > (b.bid_cents, b.priority, std::cmp::Reverse(b.campaign))
}

/// Inserts into a ranked list of at most `cap` candidates with distinct
/// accounts. No allocation once the list has held `cap + 1` items.
fn offer(list: &mut Vec<Candidate>, cap: usize, cand: Candidate) {
    if let Some(i) = list.iter().position(|c| c.account == cand.account) {
        if !better(&cand, &list[i]) {
            return;
        }
        list.remove(i);
    }
    let at = list
        .iter()
        .position(|c| better(&cand, c))
        .unwrap_or(list.len());
    if at < cap {
        list.insert(at, cand);
        list.truncate(cap);
    }
}

/// Runs matching and the auction for `ping`. On success the winners are in
/// `scratch.winners` (non-empty); otherwise the most specific reason.
///
/// Campaigns are visited by descending maximum price; once the ranked lists
/// are full and the next campaign cannot beat their worst entry, the rest
/// cannot change the outcome and are skipped (top-k with upper bounds, as in
/// WAND). Work is bounded by the matching campaigns, and usually far less.
pub fn run_auction(
    snap: &Snapshot,
    settings: &EngineSettings,
    seller: &Seller,
    ping: &Ping,
    now_ms: i64,
    scratch: &mut Scratch,
) -> Result<(), NoBidReason> {
    scratch.winners.clear();
    scratch.top_exclusive.clear();
    scratch.top_shared.clear();
    let vertical = ping.attributes.vertical;
    if seller.verticals_mask & (1 << vertical.index()) == 0 {
        return Err(NoBidReason::SellerNotAllowed);
    }
    let second_price = settings.pricing == Pricing::SecondPrice;
    let max_shared = usize::from(settings.max_shared_buyers);
    // Second price needs the bid after the last winner.
    let cap_exclusive = if second_price { 2 } else { 1 };
    let cap_shared = if second_price {
        max_shared + 1
    } else {
        max_shared
    };
    let want_exclusive = ping.sale_type != SaleTypeRequest::Shared;
    let want_shared = ping.sale_type != SaleTypeRequest::Exclusive;
    let index = &snap.verticals[vertical.index()];
    VerticalIndex::query_rows(&ping.attributes, ping.sale_type, &mut scratch.rows);
    let mut furthest = NoBidReason::NoEligibleBuyers;
    let mut acc = std::mem::take(&mut scratch.acc);
    let rows = scratch.rows;
    let exhaustive = scratch.exhaustive;
    index.matches(&rows, &mut acc, |ci, (max_price, exclusive)| {
        let max_price = u64::from(max_price);
        // The price a campaign must be able to reach to enter a list: 0 while
        // the list has room, its worst entry once full (a tie may still win on
        // priority, so entry needs >=), and out of reach for a list the
        // seller did not ask for.
        let bar = |wanted: bool, list: &Vec<Candidate>, cap: usize| match (wanted, list.last()) {
            (false, _) => u64::MAX,
            (true, Some(w)) if list.len() == cap => w.bid_cents,
            (true, _) => 0,
        };
        let bar_exclusive = bar(want_exclusive, &scratch.top_exclusive, cap_exclusive);
        let bar_shared = bar(want_shared, &scratch.top_shared, cap_shared);
        if !exhaustive {
            // Campaigns come by descending maximum price: once no list can
            // take this one, no list can take any later one either.
            if max_price < bar_exclusive.min(bar_shared) {
                return false;
            }
            // This one cannot enter its own list: skip it unevaluated.
            if max_price < if exclusive { bar_exclusive } else { bar_shared } {
                return true;
            }
        }
        let c = &snap.campaigns[ci as usize];
        if scratch.excluded_campaigns.contains(&ci) {
            return true;
        }
        let local = scratch.local_time(snap, c.time_zone, now_ms);
        match evaluate(c, seller, ping, &local) {
            Ok(bid_cents) => {
                let cand = Candidate {
                    campaign: ci,
                    account: c.account,
                    bid_cents,
                    priority: c.priority,
                    sale_type: c.sale_type,
                };
                match c.sale_type {
                    SaleType::Exclusive => offer(&mut scratch.top_exclusive, cap_exclusive, cand),
                    SaleType::Shared => offer(&mut scratch.top_shared, cap_shared, cand),
                }
            }
            Err(reason) => furthest = furthest.max(reason),
        }
        true
    });
    scratch.acc = acc;
    if scratch.top_exclusive.is_empty() && scratch.top_shared.is_empty() {
        return Err(furthest);
    }
    let exclusive = scratch.top_exclusive.first();
    let shared_value: u64 = scratch
        .top_shared
        .iter()
        .take(max_shared)
        .map(|c| seller.payout_cents(c.bid_cents))
        .sum();
    let pick_exclusive = match (ping.sale_type, exclusive) {
        (SaleTypeRequest::Shared, _) | (_, None) => false,
        (SaleTypeRequest::Exclusive, Some(_)) => true,
        // An exclusive bid wins ties: it blocks every shared sale.
        (SaleTypeRequest::Any, Some(e)) => seller.payout_cents(e.bid_cents) >= shared_value,
    };
    let (ranked, take) = if pick_exclusive {
        (&scratch.top_exclusive, 1)
    } else {
        (&scratch.top_shared, max_shared)
    };
    let kind = if pick_exclusive {
        SaleType::Exclusive
    } else {
        SaleType::Shared
    };
    let floor_price = seller.floor_buyer_price_cents().max(1);
    for (i, c) in ranked.iter().take(take).enumerate() {
        let buyer_price = match settings.pricing {
            Pricing::FirstPrice => c.bid_cents,
            Pricing::SecondPrice => {
                let next = ranked.get(i + 1).map_or(0, |n| n.bid_cents + 1);
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
        "invariant: the chosen list is non-empty"
    );
    if scratch.winners.is_empty() {
        return Err(furthest);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lead::{Credit, SaleType, SaleTypeRequest, UsState};
    use crate::snapshot::{CounterRegistry, Snapshot};
    use crate::spec::{EngineSettings, PriceModifier, Pricing};
    use crate::testing::{campaign, market, ping};

    /// A small deterministic generator (xorshift), so failures reproduce.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    #[test]
    fn early_stop_never_changes_the_outcome() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let states = ["CA", "TX", "NY"];
        for round in 0..40 {
            let buyers: Vec<String> = (0..12).map(|i| format!("b{i}")).collect();
            let refs: Vec<&str> = buyers.iter().map(String::as_str).collect();
            let campaigns = (0..300)
                .map(|i| {
                    let sale = if rng.next(2) == 0 {
                        SaleType::Exclusive
                    } else {
                        SaleType::Shared
                    };
                    // Few distinct prices, so ties and priorities matter.
                    let mut c = campaign(
                        &format!("c{i:03}"),
                        refs[rng.next(12) as usize],
                        sale,
                        500 + 50 * rng.next(20),
                    );
                    c.priority = rng.next(3) as u8;
                    for _ in 0..rng.next(3) {
                        c.modifiers.push(PriceModifier {
                            states: vec![UsState::parse(states[rng.next(3) as usize]).unwrap()],
                            credit: if rng.next(2) == 0 {
                                vec![Credit::Good]
                            } else {
                                vec![]
                            },
                            adjust_bps: rng.next(4000) as i32 - 2000,
                            adjust_cents: rng.next(200) as i64 - 100,
                            ..Default::default()
                        });
                    }
                    if rng.next(4) == 0 {
                        c.filters.age_min = Some(30 + rng.next(20) as u8);
                    }
                    c
                })
                .collect();
            let mut m = market(&refs, campaigns);
            m.buyers[1].parent_id = Some("b0".into());
            m.sellers[0].floor_cents = 400 + rng.next(300);
            m.sellers[0].margin_bps = rng.next(2000) as u32;
            let snap = Snapshot::build(&m, &CounterRegistry::default(), 1).unwrap();
            let seller = snap.seller_by_id("s1").unwrap().clone();
            for pricing in [Pricing::FirstPrice, Pricing::SecondPrice] {
                let settings = EngineSettings {
                    pricing,
                    max_shared_buyers: 1 + rng.next(8) as u8,
                    ..Default::default()
                };
                for sale in [
                    SaleTypeRequest::Any,
                    SaleTypeRequest::Exclusive,
                    SaleTypeRequest::Shared,
                ] {
                    let mut p = ping();
                    p.sale_type = sale;
                    p.attributes.state = UsState::parse(states[rng.next(3) as usize]).unwrap();
                    p.attributes.zip = crate::lead::Zip::parse(match p.attributes.state.as_str() {
                        "CA" => "90210",
                        "TX" => "73301",
                        _ => "10001",
                    })
                    .unwrap();
                    p.attributes.credit = if rng.next(2) == 0 {
                        Some(Credit::Good)
                    } else {
                        None
                    };
                    p.attributes.age = Some(25 + rng.next(40) as u8);
                    let mut fast = Scratch::default();
                    let mut slow = Scratch {
                        exhaustive: true,
                        ..Default::default()
                    };
                    let now = 1_795_453_200_000;
                    let a = run_auction(&snap, &settings, &seller, &p, now, &mut fast);
                    let b = run_auction(&snap, &settings, &seller, &p, now, &mut slow);
                    assert_eq!(a.is_ok(), b.is_ok(), "round {round}");
                    assert_eq!(
                        fast.winners, slow.winners,
                        "round {round}, {pricing:?}, {sale:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn max_price_bounds_every_price() {
        let mut c = campaign("c", "b", SaleType::Exclusive, 1000);
        c.modifiers = vec![
            PriceModifier {
                states: vec![UsState::parse("CA").unwrap()],
                adjust_bps: 2500,
                ..Default::default()
            },
            PriceModifier {
                credit: vec![Credit::Good],
                adjust_bps: -5000,
                adjust_cents: 300,
                ..Default::default()
            },
            PriceModifier {
                adjust_cents: -50,
                ..Default::default()
            },
        ];
        let snap =
            Snapshot::build(&market(&["b"], vec![c]), &CounterRegistry::default(), 1).unwrap();
        let compiled = &snap.campaigns[0];
        assert_eq!(
            compiled.max_price_cents, 1250,
            "raise by 25 %, skip the cut, skip the -50"
        );
        let mut p = ping();
        for credit in [None, Some(Credit::Good)] {
            p.attributes.credit = credit;
            let local = campaign_local_time(&snap, compiled, 0);
            assert!(campaign_price(compiled, &p, &local).unwrap() <= compiled.max_price_cents);
        }
    }
}
