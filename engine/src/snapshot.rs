//! The immutable, compiled marketplace the hot path reads.
//!
//! A [`Snapshot`] is built on the control plane from a [`MarketplaceSpec`]
//! and swapped in atomically (`arc-swap`); the request path only ever reads
//! one snapshot, so it takes no lock. Counters are not part of the snapshot:
//! each campaign points at its `Arc<CampaignCounters>`, which outlives
//! snapshots (see [`CounterRegistry`]).

use crate::counters::{CampaignCounters, CapLimits};
use crate::index::VerticalIndex;
use crate::lead::{Credit, Device, SaleType, UsState, Vertical};
use crate::spec::{
    CampaignStatus, DedupeScope, MarketplaceSpec, ScheduleWindow, SpecError, MONEY_CENTS_MAX,
};
use chrono_tz::Tz;
use dashmap::DashMap;
use std::collections::HashMap;
use std::sync::Arc;

/// Counters by campaign id; they survive snapshot swaps and campaign removal
/// (a campaign removed and added back keeps its spend).
#[derive(Debug, Default)]
pub struct CounterRegistry {
    by_campaign: DashMap<Arc<str>, Arc<CampaignCounters>>,
}

impl CounterRegistry {
    /// The counters of `campaign_id`, created on first use.
    pub fn get_or_create(&self, campaign_id: &str) -> Arc<CampaignCounters> {
        if let Some(c) = self.by_campaign.get(campaign_id) {
            return c.clone();
        }
        self.by_campaign
            .entry(Arc::from(campaign_id))
            .or_default()
            .clone()
    }

    /// Calls `visit` with every campaign's counters (in no order).
    pub fn for_each(&self, mut visit: impl FnMut(&str, &CampaignCounters)) {
        for entry in &self.by_campaign {
            visit(entry.key(), entry.value());
        }
    }
}

/// A seller as the hot path sees it.
#[derive(Debug, Clone)]
pub struct Seller {
    /// Stable id.
    pub id: Arc<str>,
    /// Index in this snapshot.
    pub index: u32,
    /// Minimum payout, cents.
    pub floor_cents: u64,
    /// Operator margin, basis points.
    pub margin_bps: u32,
    /// Bit `v` set when vertical `v` may be sold.
    pub verticals_mask: u8,
}

impl Seller {
    /// The seller's payout for a buyer price (margin taken, rounded down in
    /// the operator's favour).
    pub fn payout_cents(&self, buyer_price_cents: u64) -> u64 {
        buyer_price_cents * u64::from(10_000 - self.margin_bps) / 10_000
    }

    /// The smallest buyer price whose payout reaches the floor.
    pub fn floor_buyer_price_cents(&self) -> u64 {
        (self.floor_cents * 10_000).div_ceil(u64::from(10_000 - self.margin_bps))
    }
}

/// A buyer as the hot path sees it.
#[derive(Debug, Clone)]
pub struct Buyer {
    /// Stable id.
    pub id: Arc<str>,
    /// Alias shown to sellers.
    pub name: Arc<str>,
    /// Index of the top-level account (itself when it has no parent).
    pub account: u32,
}

/// A compiled price modifier.
#[derive(Debug, Clone)]
pub struct Modifier {
    states_mask: u64,
    hours: Option<(u8, u8)>,
    sources: Box<[Box<str>]>,
    credit_mask: u8,
    device_mask: u8,
    adjust_bps: i32,
    adjust_cents: i64,
}

/// ZIP include/exclude lists, sorted for binary search.
#[derive(Debug, Clone, Default)]
pub struct ZipSet {
    fives: Box<[u32]>,
    prefixes: Box<[u16]>,
}

impl ZipSet {
    fn from_spec(list: &[String]) -> ZipSet {
        let mut fives: Vec<u32> = list
            .iter()
            .filter(|z| z.len() == 5)
            .filter_map(|z| z.parse().ok())
            .collect();
        let mut prefixes: Vec<u16> = list
            .iter()
            .filter(|z| z.len() == 3)
            .filter_map(|z| z.parse().ok())
            .collect();
        fives.sort_unstable();
        prefixes.sort_unstable();
        ZipSet {
            fives: fives.into(),
            prefixes: prefixes.into(),
        }
    }

    /// True when the set lists no ZIP.
    pub fn is_empty(&self) -> bool {
        self.fives.is_empty() && self.prefixes.is_empty()
    }

    /// True when `zip` (or its prefix) is listed.
    pub fn contains(&self, zip: crate::lead::Zip) -> bool {
        self.fives.binary_search(&zip.value()).is_ok()
            || self.prefixes.binary_search(&zip.prefix3()).is_ok()
    }
}

/// A compiled campaign.
#[derive(Debug, Clone)]
pub struct Campaign {
    /// Stable id.
    pub id: Arc<str>,
    /// Buyer index.
    pub buyer: u32,
    /// Top-level account index.
    pub account: u32,
    /// Vertical.
    pub vertical: Vertical,
    /// Active or paused.
    pub active: bool,
    /// Exclusive or shared.
    pub sale_type: SaleType,
    /// Base price, cents.
    pub price_cents: u64,
    /// Highest price any lead can reach (base with every raising modifier):
    /// an upper bound the auction uses to stop early.
    pub max_price_cents: u64,
    /// Modifiers in order.
    pub modifiers: Box<[Modifier]>,
    /// ZIPs accepted (empty: all).
    pub zips: ZipSet,
    /// ZIPs refused.
    pub exclude_zips: ZipSet,
    /// Carriers accepted, sorted (empty: any).
    pub carriers: Box<[Box<str>]>,
    /// Carriers refused, sorted.
    pub exclude_carriers: Box<[Box<str>]>,
    /// Coverage types accepted, sorted (empty: any).
    pub coverage_types: Box<[Box<str>]>,
    /// Minimum months insured.
    pub insured_months_min: Option<u16>,
    /// Minimum income.
    pub income_min: Option<u32>,
    /// Maximum household size.
    pub household_size_max: Option<u8>,
    /// Maximum BMI, tenths.
    pub bmi_tenths_max: Option<u16>,
    /// Index into the snapshot's time zones.
    pub time_zone: u16,
    /// Open hours per weekday as 24-bit masks; `None` when always open.
    pub schedule: Option<[u32; 7]>,
    /// Caps.
    pub limits: CapLimits,
    /// Total budget, cents.
    pub budget_cents: u64,
    /// Dedupe window, ms (0: no dedupe).
    pub dedupe_window_ms: i64,
    /// Dedupe scope.
    pub dedupe_scope: DedupeScope,
    /// Consent requirements: TCPA, TrustedForm, Jornaya.
    pub require_consent: (bool, bool, bool),
    /// Seller indexes allowed, sorted (empty: all).
    pub sellers: Box<[u32]>,
    /// Sources allowed, sorted (empty: all).
    pub sources: Box<[Box<str>]>,
    /// Sources refused, sorted.
    pub exclude_sources: Box<[Box<str>]>,
    /// Tie-break priority.
    pub priority: u8,
    /// Money and cap counters (shared across snapshots).
    pub counters: Arc<CampaignCounters>,
}

fn sorted_strs(list: &[String]) -> Box<[Box<str>]> {
    let mut v: Vec<Box<str>> = list.iter().map(|s| Box::from(s.as_str())).collect();
    v.sort_unstable();
    v.dedup();
    v.into()
}

/// Binary search of a sorted string list.
pub fn contains_str(list: &[Box<str>], s: &str) -> bool {
    list.binary_search_by(|x| (**x).cmp(s)).is_ok()
}

impl Modifier {
    /// Whether the modifier applies.
    pub fn applies(
        &self,
        state: UsState,
        hour: u8,
        source: Option<&str>,
        credit: Option<Credit>,
        device: Option<Device>,
    ) -> bool {
        (self.states_mask == 0 || self.states_mask & (1 << state.index()) != 0)
            && self
                .hours
                .is_none_or(|(from, to)| hour >= from && hour < to)
            && (self.sources.is_empty() || source.is_some_and(|s| contains_str(&self.sources, s)))
            && (self.credit_mask == 0
                || credit.is_some_and(|c| self.credit_mask & (1 << c.index()) != 0))
            && (self.device_mask == 0
                || device.is_some_and(|d| self.device_mask & (1 << d.index()) != 0))
    }

    /// Applies the adjustment to a running price.
    pub fn adjust(&self, price: i64) -> i64 {
        price + price * i64::from(self.adjust_bps) / 10_000 + self.adjust_cents
    }
}

/// The compiled marketplace.
#[derive(Debug)]
pub struct Snapshot {
    /// Increases with every swap.
    pub generation: u64,
    /// Sellers by index.
    pub sellers: Vec<Seller>,
    seller_ids: HashMap<Arc<str>, u32>,
    seller_keys: HashMap<[u8; 32], u32>,
    /// Buyers by index.
    pub buyers: Vec<Buyer>,
    buyer_ids: HashMap<Arc<str>, u32>,
    /// Campaigns by index, sorted by id (index order is the final tie-break).
    pub campaigns: Vec<Campaign>,
    campaign_ids: HashMap<Arc<str>, u32>,
    /// One index per vertical.
    pub verticals: Vec<VerticalIndex>,
    /// Distinct time zones used.
    pub time_zones: Vec<Tz>,
}

/// An upper bound of a campaign's price over all leads. Each modifier maps
/// the running price through a non-decreasing function (`adjust_bps` is at
/// least -9000, so the factor stays positive), so applying each modifier
/// only where it raises the price yields the maximum over every subset.
fn max_price_cents(c: &crate::spec::CampaignSpec) -> u64 {
    let mut price = c.price_cents as i64;
    for m in &c.modifiers {
        let raised = price + price * i64::from(m.adjust_bps) / 10_000 + m.adjust_cents;
        price = price.max(raised);
    }
    price.clamp(1, MONEY_CENTS_MAX as i64) as u64
}

fn err(path: String, message: impl Into<String>) -> SpecError {
    SpecError {
        path,
        message: message.into(),
    }
}

fn mask<T: Copy>(items: &[T], index: impl Fn(T) -> usize) -> u64 {
    items.iter().fold(0u64, |m, x| m | (1u64 << index(*x)))
}

impl Snapshot {
    /// Compiles a validated marketplace.
    pub fn build(
        spec: &MarketplaceSpec,
        counters: &CounterRegistry,
        generation: u64,
    ) -> Result<Snapshot, SpecError> {
        spec.validate()?;
        let mut sellers = Vec::with_capacity(spec.sellers.len());
        let mut seller_ids = HashMap::new();
        let mut seller_keys = HashMap::new();
        for (i, s) in spec.sellers.iter().enumerate() {
            let id: Arc<str> = Arc::from(s.id.as_str());
            seller_ids.insert(id.clone(), i as u32);
            if s.active {
                for (k, h) in s.api_key_sha256.iter().enumerate() {
                    let mut key = [0u8; 32];
                    for (j, byte) in key.iter_mut().enumerate() {
                        *byte = u8::from_str_radix(&h[j * 2..j * 2 + 2], 16).map_err(|_| {
                            err(format!("sellers[{i}].api_key_sha256[{k}]"), "is not hex")
                        })?;
                    }
                    seller_keys.insert(key, i as u32);
                }
            }
            let verticals_mask = if s.verticals.is_empty() {
                0x7f
            } else {
                mask(&s.verticals, Vertical::index) as u8
            };
            sellers.push(Seller {
                id,
                index: i as u32,
                floor_cents: s.floor_cents,
                margin_bps: s.margin_bps,
                verticals_mask,
            });
        }

        let buyer_ids: HashMap<Arc<str>, u32> = spec
            .buyers
            .iter()
            .enumerate()
            .map(|(i, b)| (Arc::from(b.id.as_str()), i as u32))
            .collect();
        let mut buyers = Vec::with_capacity(spec.buyers.len());
        for (i, b) in spec.buyers.iter().enumerate() {
            let mut account = i;
            for _ in 0..=spec.buyers.len() {
                match &spec.buyers[account].parent_id {
                    Some(p) => account = buyer_ids[p.as_str()] as usize,
                    None => break,
                }
            }
            if spec.buyers[account].parent_id.is_some() {
                return Err(err(
                    format!("buyers[{i}].parent_id"),
                    "parent accounts form a cycle",
                ));
            }
            let name = if b.name.is_empty() {
                b.id.as_str()
            } else {
                b.name.as_str()
            };
            buyers.push(Buyer {
                id: Arc::from(b.id.as_str()),
                name: Arc::from(name),
                account: account as u32,
            });
        }

        let mut order: Vec<usize> = (0..spec.campaigns.len()).collect();
        order.sort_by(|a, b| spec.campaigns[*a].id.cmp(&spec.campaigns[*b].id));
        let mut time_zones: Vec<Tz> = Vec::new();
        let mut campaigns = Vec::with_capacity(order.len());
        let mut campaign_ids = HashMap::with_capacity(order.len());
        for &i in &order {
            let c = &spec.campaigns[i];
            let tz: Tz = c
                .time_zone
                .parse()
                .map_err(|_| err(format!("campaigns[{i}].time_zone"), "unknown time zone"))?;
            let tz_index = match time_zones.iter().position(|t| *t == tz) {
                Some(p) => p,
                None => {
                    time_zones.push(tz);
                    time_zones.len() - 1
                }
            };
            let schedule = ScheduleWindow::week_mask(&c.schedule);
            let modifiers = c
                .modifiers
                .iter()
                .map(|m| Modifier {
                    states_mask: mask(&m.states, UsState::index),
                    hours: m.from_hour.zip(m.to_hour),
                    sources: sorted_strs(&m.sources),
                    credit_mask: mask(&m.credit, Credit::index) as u8,
                    device_mask: mask(&m.device, Device::index) as u8,
                    adjust_bps: m.adjust_bps,
                    adjust_cents: m.adjust_cents,
                })
                .collect();
            let mut allowed_sellers: Vec<u32> =
                c.sellers.iter().map(|s| seller_ids[s.as_str()]).collect();
            allowed_sellers.sort_unstable();
            let buyer = buyer_ids[c.buyer_id.as_str()];
            let id: Arc<str> = Arc::from(c.id.as_str());
            campaign_ids.insert(id.clone(), campaigns.len() as u32);
            campaigns.push(Campaign {
                counters: counters.get_or_create(&c.id),
                id,
                buyer,
                account: buyers[buyer as usize].account,
                vertical: c.vertical,
                active: c.status == CampaignStatus::Active,
                sale_type: c.sale_type,
                price_cents: c.price_cents,
                max_price_cents: max_price_cents(c),
                modifiers,
                zips: ZipSet::from_spec(&c.filters.zips),
                exclude_zips: ZipSet::from_spec(&c.filters.exclude_zips),
                carriers: sorted_strs(&c.filters.carriers),
                exclude_carriers: sorted_strs(&c.filters.exclude_carriers),
                coverage_types: sorted_strs(&c.filters.coverage_types),
                insured_months_min: c.filters.insured_months_min,
                income_min: c.filters.income_min,
                household_size_max: c.filters.household_size_max,
                bmi_tenths_max: c.filters.bmi_tenths_max,
                time_zone: tz_index as u16,
                schedule,
                limits: CapLimits::from_spec(&c.caps),
                budget_cents: c.budget_cents + c.credit_limit_cents,
                dedupe_window_ms: i64::from(c.dedupe_window_hours) * 3_600_000,
                dedupe_scope: c.dedupe_scope,
                require_consent: (c.require_tcpa, c.require_trustedform, c.require_jornaya),
                sellers: allowed_sellers.into(),
                sources: sorted_strs(&c.sources),
                exclude_sources: sorted_strs(&c.exclude_sources),
                priority: c.priority,
            });
        }
        let verticals = Vertical::ALL
            .iter()
            .map(|v| {
                let mut members: Vec<(u32, usize)> = order
                    .iter()
                    .enumerate()
                    .filter(|(gi, &si)| campaigns[*gi].active && spec.campaigns[si].vertical == *v)
                    .map(|(gi, &si)| (gi as u32, si))
                    .collect();
                // Highest possible price first, so auctions can stop early.
                members.sort_by_key(|(gi, _)| {
                    (
                        std::cmp::Reverse(campaigns[*gi as usize].max_price_cents),
                        *gi,
                    )
                });
                VerticalIndex::build(members.iter().map(|(gi, si)| {
                    let c = &spec.campaigns[*si];
                    (
                        *gi,
                        &c.filters,
                        c.sale_type,
                        campaigns[*gi as usize].max_price_cents,
                    )
                }))
            })
            .collect();
        Ok(Snapshot {
            generation,
            sellers,
            seller_ids,
            seller_keys,
            buyers,
            buyer_ids,
            campaigns,
            campaign_ids,
            verticals,
            time_zones,
        })
    }

    /// Seller by the SHA-256 of an API key.
    pub fn seller_by_key_hash(&self, key_sha256: &[u8; 32]) -> Option<&Seller> {
        self.seller_keys
            .get(key_sha256)
            .map(|i| &self.sellers[*i as usize])
    }

    /// Seller by id.
    pub fn seller_by_id(&self, id: &str) -> Option<&Seller> {
        self.seller_ids.get(id).map(|i| &self.sellers[*i as usize])
    }

    /// Buyer by id.
    pub fn buyer_by_id(&self, id: &str) -> Option<&Buyer> {
        self.buyer_ids.get(id).map(|i| &self.buyers[*i as usize])
    }

    /// Campaign by id.
    pub fn campaign_by_id(&self, id: &str) -> Option<&Campaign> {
        self.campaign_ids
            .get(id)
            .map(|i| &self.campaigns[*i as usize])
    }

    /// Approximate heap bytes of the targeting index.
    pub fn index_heap_bytes(&self) -> usize {
        self.verticals.iter().map(VerticalIndex::heap_bytes).sum()
    }
}
