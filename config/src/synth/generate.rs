//! The marketplace generator: sellers, buyers and campaigns drawn from the
//! distributions in [`super::tables`], deterministic for a seed.

use super::demo;
use super::tables::{self, SCHEDULES};
use super::{sha256_hex, weighted, Profile, DEMO_SELLER_ID, DEMO_SELLER_KEY};
use leadex_engine::lead::{Credit, Device, SaleType, UsState, Vertical};
use leadex_engine::spec::{
    BuyerSpec, CampaignSpec, CampaignStatus, CapLimit, Caps, DedupeScope, Filters, MarketplaceSpec,
    PriceModifier, ScheduleWindow, SellerSpec,
};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// A buyer as the generator plans it: the account, what it buys, where it
/// is based (its campaigns run on that state's clock).
pub(super) struct BuyerPlan {
    pub(super) spec: BuyerSpec,
    pub(super) verticals: Vec<Vertical>,
    pub(super) home: UsState,
}

/// Generates a marketplace of `campaigns` campaigns for `profile`.
pub(super) fn generate(campaigns: usize, seed: u64, profile: Profile) -> MarketplaceSpec {
    let mut rng = SmallRng::seed_from_u64(seed);
    let (sellers, plans) = match profile {
        Profile::Synthetic => (synthetic_sellers(), synthetic_buyers(&mut rng, campaigns)),
        Profile::Demo => (demo::sellers(), demo::buyers()),
    };
    let seller_ids: Vec<&str> = sellers.iter().map(|s| s.id.as_str()).collect();
    let mut per_buyer_count = vec![0usize; plans.len()];
    let mut out = Vec::with_capacity(campaigns);
    // In the demo, every eighth campaign is an always-open auto campaign for
    // California and Texas, spread over the auto buyers, so a demo ping gets
    // bids at any hour of any day.
    let auto_buyers: Vec<usize> = (0..plans.len())
        .filter(|&b| plans[b].verticals.contains(&Vertical::Auto))
        .collect();
    for i in 0..campaigns {
        let anchor = profile == Profile::Demo && i % 8 == 0 && !auto_buyers.is_empty();
        let buyer = if anchor {
            auto_buyers[(i / 8) % auto_buyers.len()]
        } else {
            rng.gen_range(0..plans.len())
        };
        let plan = &plans[buyer];
        let vertical = if anchor {
            Vertical::Auto
        } else {
            *weighted(&mut rng, &plan.verticals, |v| {
                tables::VERTICAL_WEIGHTS[v.index()]
            })
        };
        per_buyer_count[buyer] += 1;
        let id = match profile {
            Profile::Synthetic => format!("c{i:06}"),
            Profile::Demo => format!(
                "{}-{}-{:02}",
                plan.spec.id,
                vertical.as_str(),
                per_buyer_count[buyer]
            ),
        };
        let mut c = campaign(&mut rng, id, plan, vertical, &seller_ids);
        if anchor {
            make_always_open_for_ca_and_tx(&mut rng, &mut c, i / 8);
        }
        if profile == Profile::Demo {
            c.name = demo::campaign_name(&mut rng, &c);
        }
        out.push(c);
    }
    let buyers = plans.into_iter().map(|p| p.spec).collect();
    MarketplaceSpec {
        sellers,
        buyers,
        campaigns: out,
    }
}

fn synthetic_sellers() -> Vec<SellerSpec> {
    let seller = |id: &str, name: &str, key: &str, floor_cents, margin_bps| SellerSpec {
        id: id.into(),
        name: name.into(),
        api_key_sha256: vec![sha256_hex(key)],
        floor_cents,
        margin_bps,
        verticals: vec![],
        active: true,
    };
    vec![
        seller(DEMO_SELLER_ID, "Demo Seller", DEMO_SELLER_KEY, 100, 1_000),
        seller("seller-2", "Synthetic Seller 2", "seller-2-key", 200, 1_500),
        seller("seller-3", "Synthetic Seller 3", "seller-3-key", 300, 1_200),
    ]
}

/// About one buyer per ten campaigns; about one in ten belongs to a parent
/// account (another buyer without a parent).
fn synthetic_buyers(rng: &mut SmallRng, campaigns: usize) -> Vec<BuyerPlan> {
    let count = (campaigns / 10).max(2);
    let mut out: Vec<BuyerPlan> = Vec::with_capacity(count);
    for i in 0..count {
        let parent_id = if i >= 10 && rng.gen_bool(0.1) {
            let candidate = &out[rng.gen_range(0..i)].spec;
            Some(
                candidate
                    .parent_id
                    .clone()
                    .unwrap_or_else(|| candidate.id.clone()),
            )
        } else {
            None
        };
        let buyer = BuyerSpec {
            id: format!("buyer-{i:05}"),
            name: format!("Buyer {i}"),
            parent_id,
        };
        let vertical_count = *weighted(rng, &[1usize, 2, 3], |n| [60, 30, 10][n - 1]);
        let mut verticals = Vec::with_capacity(vertical_count);
        while verticals.len() < vertical_count {
            let v = *weighted(rng, &Vertical::ALL, |v| tables::VERTICAL_WEIGHTS[v.index()]);
            if !verticals.contains(&v) {
                verticals.push(v);
            }
        }
        out.push(BuyerPlan {
            spec: buyer,
            verticals,
            home: super::sample_state(rng),
        });
    }
    out
}

fn campaign(
    rng: &mut SmallRng,
    id: String,
    plan: &BuyerPlan,
    vertical: Vertical,
    seller_ids: &[&str],
) -> CampaignSpec {
    let sale_type = if rng.gen_bool(0.5) {
        SaleType::Shared
    } else {
        SaleType::Exclusive
    };
    let price_cents = price(rng, vertical, sale_type);
    let filters = filters(rng, vertical, plan.home);
    let home_zone = tables::STATE_TIME_ZONES[plan.home.index()];
    let time_zone = match filters.states.first() {
        // A campaign for one far-away state sometimes runs on that state's clock.
        Some(s) if filters.states.len() == 1 && rng.gen_bool(0.3) => {
            tables::STATE_TIME_ZONES[s.index()]
        }
        _ => home_zone,
    };
    let schedule = if rng.gen_bool(0.4) {
        schedule(rng)
    } else {
        Vec::new()
    };
    let caps = caps(rng, price_cents);
    let budget_cents = if rng.gen_bool(0.04) {
        // Nearly exhausted budgets exist in every real marketplace.
        rng.gen_range(0..price_cents * 3)
    } else {
        (rng.gen_range(500u64..=50_000) * 100).max(price_cents * 20)
    };
    let modifiers = if rng.gen_bool(0.3) {
        modifiers(rng, &filters)
    } else {
        Vec::new()
    };
    let sellers = if rng.gen_bool(0.08) {
        let count = rng.gen_range(1..=2.min(seller_ids.len()));
        let mut chosen: Vec<String> = seller_ids
            .choose_multiple(rng, count)
            .map(|s| s.to_string())
            .collect();
        chosen.sort();
        chosen
    } else {
        Vec::new()
    };
    let sources = if rng.gen_bool(0.04) {
        vec![weighted(rng, tables::SOURCES, |s| s.1).0.to_owned()]
    } else {
        vec![]
    };
    let exclude_sources = if sources.is_empty() && rng.gen_bool(0.1) {
        vec![weighted(rng, &tables::SOURCES[2..], |s| s.1).0.to_owned()]
    } else {
        vec![]
    };
    CampaignSpec {
        id: id.clone(),
        buyer_id: plan.spec.id.clone(),
        name: id,
        vertical,
        status: if rng.gen_bool(0.05) {
            CampaignStatus::Paused
        } else {
            CampaignStatus::Active
        },
        sale_type,
        price_cents,
        modifiers,
        filters,
        caps,
        time_zone: time_zone.to_owned(),
        schedule,
        budget_cents,
        credit_limit_cents: 0,
        return_window_hours: 168,
        return_max_bps: 1_000,
        dedupe_window_hours: weighted(rng, tables::DEDUPE_WINDOWS_HOURS, |d| d.1).0,
        dedupe_scope: if rng.gen_bool(0.15) {
            DedupeScope::Campaign
        } else {
            DedupeScope::Buyer
        },
        require_tcpa: rng.gen_bool(0.3),
        require_trustedform: rng.gen_bool(0.25),
        require_jornaya: rng.gen_bool(0.2),
        sellers,
        sources,
        exclude_sources,
        priority: if rng.gen_bool(0.1) {
            rng.gen_range(1..=5)
        } else {
            0
        },
    }
}

/// A price in the vertical's range, rounded to 25 cents as buyers quote.
fn price(rng: &mut SmallRng, vertical: Vertical, sale_type: SaleType) -> u64 {
    let (exclusive_min, exclusive_max, shared_min, shared_max) =
        tables::price_range_cents(vertical);
    let (lo, hi) = match sale_type {
        SaleType::Exclusive => (exclusive_min, exclusive_max),
        SaleType::Shared => (shared_min, shared_max),
    };
    rng.gen_range(lo / 25..=hi / 25) * 25
}

fn distinct_states(rng: &mut SmallRng, first: Option<UsState>, count: usize) -> Vec<UsState> {
    let mut states: Vec<UsState> = first.into_iter().collect();
    // Bounded: weighted draws repeat populous states, so allow a few misses.
    for _ in 0..count * 20 {
        if states.len() >= count {
            break;
        }
        let s = super::sample_state(rng);
        if !states.contains(&s) {
            states.push(s);
        }
    }
    states
}

fn filters(rng: &mut SmallRng, vertical: Vertical, home: UsState) -> Filters {
    let mut f = Filters::default();
    let reach = rng.gen::<f64>();
    if reach < 0.12 {
        // Nationwide, often minus a few states the buyer is not licensed in.
        let excluded = *weighted(rng, &[0usize, 1, 2, 3], |n| [40, 30, 20, 10][*n]);
        f.exclude_states = distinct_states(rng, None, excluded);
    } else if reach < 0.17 {
        // Local agency: a few ZIP prefixes around its office.
        let prefixes = super::state_prefixes(home);
        let count = rng.gen_range(1..=5.min(prefixes.len()));
        f.states = vec![home];
        f.zips = prefixes
            .choose_multiple(rng, count)
            .map(|p| format!("{p:03}"))
            .collect();
        f.zips.sort();
    } else {
        let count = *weighted(rng, &[1usize, 2, 3, 4, 5, 6, 7, 8, 9, 10], |n| {
            [25, 15, 12, 10, 8, 7, 6, 6, 6, 5][n - 1]
        });
        let first = rng.gen_bool(0.6).then_some(home);
        f.states = distinct_states(rng, first, count);
    }

    let (age_lo, age_hi, _) = tables::age_range(vertical);
    let ages = match vertical {
        Vertical::Medicare => rng
            .gen_bool(0.8)
            .then(|| (Some(*[64u8, 65].choose(rng).unwrap()), None)),
        Vertical::Commercial => None,
        _ => rng.gen_bool(0.5).then(|| {
            let lo = (age_lo + rng.gen_range(0..=8)).min(age_hi);
            let hi = rng
                .gen_bool(0.7)
                .then(|| age_hi.saturating_sub(rng.gen_range(0..=20)).max(lo));
            (Some(lo), hi)
        }),
    };
    if let Some((lo, hi)) = ages {
        f.age_min = lo;
        f.age_max = hi;
    }
    if vertical != Vertical::Commercial && rng.gen_bool(0.3) {
        f.credit = tables::CREDIT_FILTERS.choose(rng).unwrap().to_vec();
    }
    if rng.gen_bool(0.1) {
        f.device = vec![if rng.gen_bool(0.6) {
            Device::Mobile
        } else {
            Device::Desktop
        }];
    }
    let carriers = tables::carriers(vertical);
    if rng.gen_bool(0.2) {
        // A carrier's own agents refuse their own customers.
        f.exclude_carriers = vec![weighted(rng, &carriers[..carriers.len() - 1], |c| c.1)
            .0
            .to_owned()];
    } else if rng.gen_bool(0.06) {
        let count = rng.gen_range(2..=4);
        let mut include: Vec<String> = carriers
            .choose_multiple(rng, count)
            .map(|c| c.0.to_owned())
            .collect();
        include.sort();
        f.carriers = include;
    }
    let coverage = tables::coverage_types(vertical);
    let coverage_share = if vertical == Vertical::Commercial {
        0.5
    } else {
        0.12
    };
    if rng.gen_bool(coverage_share) {
        let count = rng.gen_range(1..=2);
        let mut types: Vec<String> = coverage
            .choose_multiple(rng, count)
            .map(|c| c.0.to_owned())
            .collect();
        types.sort();
        f.coverage_types = types;
    }
    match vertical {
        Vertical::Auto => {
            if rng.gen_bool(0.2) {
                f.homeowner = Some(true);
            }
            if rng.gen_bool(0.4) {
                f.currently_insured = Some(true);
                if rng.gen_bool(0.25) {
                    f.insured_months_min = Some(*[6u16, 12].choose(rng).unwrap());
                }
            }
            if rng.gen_bool(0.3) {
                f.vehicles_max = Some(rng.gen_range(2..=4));
            }
            if rng.gen_bool(0.05) {
                f.vehicles_min = Some(2);
            }
            if rng.gen_bool(0.2) {
                f.drivers_max = Some(rng.gen_range(2..=4));
            }
            if rng.gen_bool(0.35) {
                f.violations_max = Some(rng.gen_range(0..=2));
            }
            if rng.gen_bool(0.3) {
                f.accidents_max = Some(rng.gen_range(0..=1));
            }
            if rng.gen_bool(0.12) {
                // Non-standard carriers want SR-22 drivers; standard ones refuse them.
                f.sr22 = Some(rng.gen_bool(0.25));
            }
        }
        Vertical::Home => {
            f.homeowner = Some(true);
            if rng.gen_bool(0.3) {
                f.currently_insured = Some(true);
            }
        }
        Vertical::Renters => {
            if rng.gen_bool(0.5) {
                f.homeowner = Some(false);
            }
        }
        Vertical::Life => {
            if rng.gen_bool(0.2) {
                f.tobacco = Some(false);
            }
            if rng.gen_bool(0.25) {
                f.income_min = Some(*[25_000u32, 40_000, 50_000, 75_000].choose(rng).unwrap());
            }
            if rng.gen_bool(0.1) {
                f.bmi_tenths_max = Some(rng.gen_range(300..=400));
            }
        }
        Vertical::Health => {
            if rng.gen_bool(0.15) {
                f.household_size_max = Some(rng.gen_range(3..=6));
            }
            if rng.gen_bool(0.15) {
                f.pre_existing = Some(false);
            }
            if rng.gen_bool(0.15) {
                f.income_min = Some(*[20_000u32, 30_000, 50_000].choose(rng).unwrap());
            }
            if rng.gen_bool(0.1) {
                f.bmi_tenths_max = Some(rng.gen_range(300..=400));
            }
        }
        Vertical::Medicare => {
            if rng.gen_bool(0.1) {
                f.tobacco = Some(false);
            }
        }
        Vertical::Commercial => {}
    }
    if rng.gen_bool(0.03) {
        f.military = Some(true);
    }
    f
}

fn schedule(rng: &mut SmallRng) -> Vec<ScheduleWindow> {
    SCHEDULES
        .choose(rng)
        .unwrap()
        .iter()
        .map(|(days, from_hour, to_hour)| ScheduleWindow {
            days: days.to_vec(),
            from_hour: *from_hour,
            to_hour: *to_hour,
        })
        .collect()
}

fn caps(rng: &mut SmallRng, price_cents: u64) -> Caps {
    let mut caps = Caps::default();
    let daily = rng.gen_bool(0.7).then(|| {
        *[
            5u32, 10, 15, 20, 25, 30, 40, 50, 75, 100, 150, 200, 300, 500,
        ]
        .choose(rng)
        .unwrap()
    });
    caps.daily.leads = daily;
    if rng.gen_bool(0.2) {
        // An hourly cap spreads the daily volume over the day.
        caps.hourly.leads = Some(match daily {
            Some(d) => (d / rng.gen_range(4..=10)).max(1),
            None => rng.gen_range(1..=20),
        });
    }
    // Weekly and monthly caps below what the daily cap would allow, or they
    // would never bind.
    if rng.gen_bool(0.2) {
        caps.weekly.leads = Some(match daily {
            Some(d) => d * rng.gen_range(3..=6),
            None => rng.gen_range(5..=200) * 10,
        });
    }
    if rng.gen_bool(0.4) {
        caps.monthly.leads = Some(match daily {
            Some(d) => d * rng.gen_range(12..=26),
            None => rng.gen_range(10..=500) * 10,
        });
    }
    if rng.gen_bool(0.15) {
        // A daily spend cap of 10 to 200 leads at the base price.
        caps.daily.spend_cents = Some(price_cents * rng.gen_range(10..=200));
    }
    if rng.gen_bool(0.1) {
        caps.monthly.spend_cents = Some(price_cents * rng.gen_range(200..=4_000));
    }
    caps
}

fn modifiers(rng: &mut SmallRng, filters: &Filters) -> Vec<PriceModifier> {
    let count = rng.gen_range(1..=3);
    // Distinct kinds: two device modifiers on one campaign would be noise.
    let mut kinds = [0, 1, 2, 3, 4];
    kinds.shuffle(rng);
    let mut out = Vec::with_capacity(count);
    for kind in &kinds[..count] {
        let mut m = PriceModifier::default();
        match kind {
            0 => {
                let pool: Vec<UsState> = if filters.states.is_empty() {
                    distinct_states(rng, None, 3)
                } else {
                    filters.states.clone()
                };
                let count = rng.gen_range(1..=2);
                let mut states: Vec<UsState> = pool.choose_multiple(rng, count).copied().collect();
                states.sort();
                m.states = states;
                m.adjust_bps = rng.gen_range(2..=10) * 250;
            }
            1 => {
                m.from_hour = Some(18);
                m.to_hour = Some(22);
                m.adjust_bps = -1_000;
            }
            2 => {
                m.credit = vec![Credit::Excellent];
                m.adjust_bps = rng.gen_range(4..=8) * 250;
            }
            3 => {
                m.device = vec![Device::Mobile];
                m.adjust_bps = -(rng.gen_range(2..=6) * 250);
            }
            _ => {
                m.sources = vec!["search".to_owned()];
                m.adjust_cents = rng.gen_range(1..=12) * 25;
            }
        }
        out.push(m);
    }
    out
}

/// Turns a demo auto campaign into one that bids on a California or Texas
/// ping at any hour: no schedule, both states targeted, no seller or source
/// restriction, active. Its other filters stay as drawn, so not every such
/// campaign matches every ping.
fn make_always_open_for_ca_and_tx(rng: &mut SmallRng, c: &mut CampaignSpec, n: usize) {
    let ca = UsState::parse("CA").expect("invariant: CA is a state code");
    let tx = UsState::parse("TX").expect("invariant: TX is a state code");
    c.sale_type = if n % 2 == 0 {
        SaleType::Exclusive
    } else {
        SaleType::Shared
    };
    c.price_cents = price(rng, Vertical::Auto, c.sale_type);
    c.schedule.clear();
    c.status = CampaignStatus::Active;
    c.sellers.clear();
    c.sources.clear();
    c.filters.zips.clear();
    c.filters.exclude_states.retain(|s| *s != ca && *s != tx);
    c.filters.states.retain(|s| *s != ca && *s != tx);
    c.filters.states.splice(0..0, [ca, tx]);
    c.filters.states.truncate(6);
    c.budget_cents = c.budget_cents.max(c.price_cents * 100);
    for cap in [
        &mut c.caps.hourly,
        &mut c.caps.daily,
        &mut c.caps.weekly,
        &mut c.caps.monthly,
    ] {
        if let Some(spend) = cap.spend_cents {
            cap.spend_cents = Some(spend.max(c.price_cents * 10));
        }
    }
    c.caps.hourly = CapLimit {
        leads: c.caps.hourly.leads.map(|l| l.max(5)),
        ..c.caps.hourly
    };
}
