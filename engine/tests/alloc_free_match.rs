//! The match path makes no heap allocation once warmed up.
//!
//! "The match path" is [`run_auction`] with a reused [`Scratch`]: targeting
//! index, residual filters, schedules, consent, prices and modifiers, the
//! advisory budget and cap checks, ranking and the auction. (`Engine::ping`
//! is not it: it builds the answer and the journal event, which allocates by
//! design.) A counting global allocator counts the allocations this thread
//! makes while the test says so; after warming the scratch buffers up on a
//! few thousand varied campaigns, 1000 more auctions must count zero. The
//! test first proves the counter works by counting a deliberate allocation.

// A counting allocator must implement `GlobalAlloc`, an unsafe trait; the
// implementation only forwards to `System` and bumps a counter.
#![allow(unsafe_code)]

use leadex_engine::auction::{run_auction, Scratch};
use leadex_engine::counters::{CapLimits, ChargeRefusal};
use leadex_engine::lead::{
    Consent, Credit, Device, LeadAttributes, Ping, SaleType, SaleTypeRequest, UsState, Vertical,
    Zip,
};
use leadex_engine::localtime::LocalTime;
use leadex_engine::snapshot::{CounterRegistry, Snapshot};
use leadex_engine::spec::{
    CampaignSpec, CampaignStatus, CapLimit, DedupeScope, EngineSettings, MarketplaceSpec,
    PriceModifier, Pricing, ScheduleWindow, Weekday,
};
use leadex_engine::testing;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

struct CountingAllocator;

/// Allocations (and reallocations) made by threads while they count.
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // `const` and `Drop`-free: reading it never allocates, even during
    // thread start-up and tear-down.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn count_if_counting() {
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        // Relaxed: a plain event counter, read after the counted code ran on
        // this same thread.
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees are the caller's; counting touches only
// an atomic and a const thread-local, and never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_if_counting();
        // SAFETY: forwarded contract, see the impl.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_if_counting();
        // SAFETY: forwarded contract, see the impl.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_if_counting();
        // SAFETY: forwarded contract, see the impl.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract, see the impl.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Allocations this thread makes while running `f`. Other threads (the test
/// harness, other tests) are not counted.
fn allocations_during(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

/// SplitMix64: a fixed-seed generator, so the marketplace is the same on
/// every run without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

const CAMPAIGNS: usize = 3_000;
const BUYERS: usize = 300;

/// Whole-hour offsets only, so every instant below and the same instant plus
/// a few minutes are in the same local hour everywhere.
const TIME_ZONES: &[&str] = &[
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
    "America/Anchorage",
    "Pacific/Honolulu",
    "UTC",
];

/// (state, a ZIP in it).
const PLACES: &[(&str, &str)] = &[
    ("CA", "90210"),
    ("TX", "75001"),
    ("NY", "10001"),
    ("FL", "33101"),
    ("IL", "60601"),
    ("OH", "43004"),
];

const WEEKDAYS: [Weekday; 7] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
    Weekday::Sat,
    Weekday::Sun,
];

const CARRIERS: &[&str] = &["geico", "progressive", "state farm", "allstate"];
const SOURCES: &[&str] = &["google", "facebook", "email"];

fn state(code: &str) -> UsState {
    UsState::parse(code).unwrap()
}

fn varied_campaign(rng: &mut Rng, index: usize) -> CampaignSpec {
    let sale_type = if rng.chance(50) {
        SaleType::Shared
    } else {
        SaleType::Exclusive
    };
    let buyer = format!("b{}", rng.below(BUYERS as u64));
    let mut c = testing::campaign(
        &format!("c{index:05}"),
        &buyer,
        sale_type,
        100 + rng.below(4_900),
    );
    c.vertical = match rng.below(100) {
        0..=79 => Vertical::Auto,
        80..=97 => Vertical::Home,
        // A few life campaigns that want a Jornaya LeadiD, which no ping
        // carries: life pings get no bid, after the whole evaluation.
        _ => {
            c.require_jornaya = true;
            Vertical::Life
        }
    };
    c.time_zone = rng.pick(TIME_ZONES).into();
    c.priority = rng.below(3) as u8;
    if rng.chance(5) {
        c.status = CampaignStatus::Paused;
    }
    let f = &mut c.filters;
    if rng.chance(40) {
        f.states = (0..1 + rng.below(3))
            .map(|_| state(rng.pick(PLACES).0))
            .collect();
    }
    if rng.chance(10) {
        f.exclude_states = vec![state(rng.pick(PLACES).0)];
    }
    if rng.chance(40) {
        let min = 18 + rng.below(30) as u8;
        (f.age_min, f.age_max) = (Some(min), Some(min + 10 + rng.below(40) as u8));
    }
    if rng.chance(30) {
        f.credit = (0..1 + rng.below(2))
            .map(|_| rng.pick(Credit::ALL))
            .collect();
    }
    if rng.chance(15) {
        f.device = vec![rng.pick(Device::ALL)];
    }
    if rng.chance(15) {
        f.homeowner = Some(rng.chance(50));
    }
    if rng.chance(10) {
        f.currently_insured = Some(true);
    }
    if rng.chance(10) {
        f.vehicles_max = Some(1 + rng.below(3) as u8);
    }
    if rng.chance(10) {
        f.zips = vec![rng.pick(PLACES).1[..3].to_string()];
    }
    if rng.chance(5) {
        f.exclude_zips = vec![rng.pick(PLACES).1.to_string()];
    }
    if rng.chance(10) {
        f.carriers = vec![rng.pick(CARRIERS).to_string()];
    }
    if rng.chance(10) {
        f.exclude_carriers = vec![rng.pick(CARRIERS).to_string()];
    }
    if rng.chance(5) {
        f.income_min = Some(30_000);
    }
    if rng.chance(10) {
        c.sources = vec![rng.pick(SOURCES).to_string()];
    }
    if rng.chance(5) {
        c.exclude_sources = vec![rng.pick(SOURCES).to_string()];
    }
    if rng.chance(5) {
        c.sellers = vec!["s1".into()];
    }
    if rng.chance(5) {
        c.require_tcpa = true;
    }
    if rng.chance(3) {
        c.require_trustedform = true;
    }
    if rng.chance(25) {
        let from_hour = rng.below(20) as u8;
        c.schedule = vec![ScheduleWindow {
            days: WEEKDAYS
                .iter()
                .copied()
                .filter(|_| rng.chance(70))
                .chain([Weekday::Mon])
                .collect(),
            from_hour,
            to_hour: from_hour + 1 + rng.below(u64::from(23 - from_hour)) as u8,
        }];
    }
    if rng.chance(20) {
        c.caps.daily = CapLimit {
            leads: Some(1 + rng.below(50) as u32),
            spend_cents: None,
        };
    }
    if rng.chance(10) {
        c.caps.hourly = CapLimit {
            leads: Some(1 + rng.below(5) as u32),
            spend_cents: Some(20_000),
        };
    }
    if rng.chance(10) {
        c.budget_cents = 10_000 + rng.below(100_000);
    }
    if rng.chance(10) {
        c.dedupe_scope = DedupeScope::Campaign;
    }
    for _ in 0..rng.below(3) {
        let hours = rng.chance(30).then(|| {
            let from = rng.below(22) as u8;
            (from, from + 2)
        });
        c.modifiers.push(PriceModifier {
            states: if rng.chance(50) {
                vec![state(rng.pick(PLACES).0)]
            } else {
                vec![]
            },
            from_hour: hours.map(|h| h.0),
            to_hour: hours.map(|h| h.1),
            sources: if rng.chance(20) {
                vec![rng.pick(SOURCES).to_string()]
            } else {
                vec![]
            },
            credit: if rng.chance(20) {
                vec![rng.pick(Credit::ALL)]
            } else {
                vec![]
            },
            device: if rng.chance(20) {
                vec![rng.pick(Device::ALL)]
            } else {
                vec![]
            },
            adjust_bps: rng.below(4_000) as i32 - 2_000,
            adjust_cents: rng.below(200) as i64 - 100,
        });
    }
    c
}

fn varied_market(rng: &mut Rng) -> MarketplaceSpec {
    let buyers: Vec<String> = (0..BUYERS).map(|i| format!("b{i}")).collect();
    let buyer_refs: Vec<&str> = buyers.iter().map(String::as_str).collect();
    let campaigns = (0..CAMPAIGNS).map(|i| varied_campaign(rng, i)).collect();
    let mut market = testing::market(&buyer_refs, campaigns);
    // Parent accounts: every tenth buyer owns the next few.
    for i in 0..BUYERS {
        if i % 10 != 0 {
            market.buyers[i].parent_id = Some(format!("b{}", i - i % 10));
        }
    }
    market.sellers[0].margin_bps = 1_500;
    market.sellers[0].floor_cents = 150;
    market
}

fn varied_ping(rng: &mut Rng) -> Ping {
    let (code, zip) = rng.pick(PLACES);
    let vertical = match rng.below(100) {
        0..=74 => Vertical::Auto,
        75..=89 => Vertical::Home,
        _ => Vertical::Life,
    };
    let mut a = LeadAttributes::new(vertical, Zip::parse(zip).unwrap(), state(code));
    a.age = rng.chance(90).then(|| 18 + rng.below(60) as u8);
    a.credit = rng.chance(80).then(|| rng.pick(Credit::ALL));
    a.device = rng.chance(70).then(|| rng.pick(Device::ALL));
    a.homeowner = rng.chance(70).then(|| rng.chance(50));
    a.currently_insured = rng.chance(70).then(|| rng.chance(60));
    a.vehicles = rng.chance(80).then(|| 1 + rng.below(3) as u8);
    a.current_carrier = rng.chance(50).then(|| rng.pick(CARRIERS).to_string());
    a.income = rng.chance(50).then(|| 20_000 + rng.below(80_000) as u32);
    a.source_id = rng.chance(70).then(|| rng.pick(SOURCES).to_string());
    let consent = rng.chance(50).then(|| Consent {
        tcpa_text: Some("I agree to be contacted.".into()),
        trustedform_cert_url: rng
            .chance(50)
            .then(|| "https://cert.trustedform.com/abc".into()),
        ..Default::default()
    });
    let sale_type = rng.pick(SaleTypeRequest::ALL);
    Ping {
        attributes: a,
        sale_type,
        consent,
    }
}

/// Spends the whole budget of some campaigns and fills the caps of others,
/// so the advisory checks refuse them in the auction.
fn spend_some_budgets(snapshot: &Snapshot, rng: &mut Rng, at_ms: i64) {
    for c in &snapshot.campaigns {
        let now = LocalTime::at(snapshot.time_zones[usize::from(c.time_zone)], at_ms);
        if rng.chance(10) {
            c.counters
                .try_charge(c.budget_cents, &CapLimits::default(), c.budget_cents, &now)
                .unwrap();
            assert_eq!(
                c.counters.try_charge(c.budget_cents, &c.limits, 1, &now),
                Err(ChargeRefusal::Budget)
            );
        } else if !c.limits.is_unlimited() && rng.chance(50) {
            for _ in 0..100 {
                if c.counters
                    .try_charge(c.budget_cents, &c.limits, 1_000, &now)
                    .is_err()
                {
                    break;
                }
            }
        }
    }
}

/// 2026-11-23T17:10Z, a Monday. Eight instants 3 h 1 min apart span a day,
/// so schedules, hour modifiers and hourly caps answer differently; each is
/// at most 17 minutes past its hour, leaving room for the measured offsets.
const START_MS: i64 = 1_795_392_000_000 + 17 * 3_600_000 + 10 * 60_000;
const TIME_STEP_MS: i64 = 3 * 3_600_000 + 60_000;
const TIMES: usize = 8;

#[test]
fn run_auction_does_not_allocate_after_warm_up() {
    // The counter counts: a deliberate allocation in the counted region.
    let deliberate = allocations_during(|| {
        std::hint::black_box(Vec::<u8>::with_capacity(1));
    });
    assert_eq!(
        deliberate, 1,
        "the counting allocator must see a deliberate allocation"
    );

    let mut rng = Rng(0x5eed_1ead);
    let market = varied_market(&mut rng);
    let snapshot = Snapshot::build(&market, &CounterRegistry::default(), 1).unwrap();
    spend_some_budgets(&snapshot, &mut rng, START_MS);
    let seller = snapshot.seller_by_id("s1").unwrap();
    let pings: Vec<Ping> = (0..48).map(|_| varied_ping(&mut rng)).collect();
    let times: Vec<i64> = (0..TIMES as i64)
        .map(|i| START_MS + i * TIME_STEP_MS)
        .collect();
    let settings = [
        EngineSettings::default(),
        EngineSettings {
            pricing: Pricing::SecondPrice,
            max_shared_buyers: 8,
            ..EngineSettings::default()
        },
    ];
    let mut scratch = Scratch::default();
    scratch.excluded_campaigns.extend([3, 30, 300]);

    // Warm-up: every ping at every time, so every buffer reaches the size
    // the measured calls need (candidates depend on the ping and the hour).
    let mut warm_up_winners = 0;
    for (i, ping) in pings.iter().enumerate() {
        for &now_ms in &times {
            if run_auction(
                &snapshot,
                &settings[i % 2],
                seller,
                ping,
                now_ms,
                &mut scratch,
            )
            .is_ok()
            {
                warm_up_winners += scratch.winners.len();
            }
        }
    }

    // Measured: the same pings and hours, one to five minutes later, so the
    // per-minute local-time cache is recomputed inside the counted region.
    let (mut sold, mut unsold, mut winners) = (0usize, 0usize, 0usize);
    let allocations = allocations_during(|| {
        for call in 0..1_000usize {
            let i = call % pings.len();
            let now_ms = times[(call / pings.len()) % TIMES] + (1 + (call % 5) as i64) * 60_000;
            match run_auction(
                &snapshot,
                &settings[i % 2],
                seller,
                &pings[i],
                now_ms,
                &mut scratch,
            ) {
                Ok(()) => {
                    sold += 1;
                    winners += scratch.winners.len();
                }
                Err(_) => unsold += 1,
            }
        }
    });
    assert!(
        sold > 100 && unsold > 10,
        "the pings must exercise both outcomes: {sold} sold, {unsold} unsold"
    );
    assert!(
        winners > sold,
        "some auctions must have several (shared) winners: {winners} winners"
    );
    assert!(warm_up_winners > 0);
    assert_eq!(
        allocations, 0,
        "run_auction allocated {allocations} times in 1000 warmed-up calls"
    );
}
