//! Declarative marketplace: sellers, buyers and campaigns as an operator
//! writes them (config files today, the admin API later), and the engine's
//! tunables. Validation here is the single source of truth for what a valid
//! campaign is; errors name the offending key.

use crate::lead::{Credit, Device, SaleType, UsState, Vertical};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// A seller (publisher) that pings and posts leads.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SellerSpec {
    /// Stable identifier, e.g. `"quotewizard"`.
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Lower-case hex SHA-256 of each API key the seller may use. Keys are
    /// never stored in clear.
    pub api_key_sha256: Vec<String>,
    /// Minimum payout per lead, after margin, in cents. Bids below are dropped.
    #[serde(default)]
    pub floor_cents: u64,
    /// Operator margin taken from the buyer's price, in basis points (1/100 %).
    #[serde(default)]
    pub margin_bps: u32,
    /// Verticals the seller may sell; empty means all.
    #[serde(default)]
    pub verticals: Vec<Vertical>,
    /// Whether the seller is allowed to trade.
    #[serde(default = "yes")]
    pub active: bool,
}

fn yes() -> bool {
    true
}

/// A buyer account. Accounts with the same parent never both buy one lead.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuyerSpec {
    /// Stable identifier, e.g. `"summit-auto"`: 1 to 64 of ASCII letters,
    /// digits, `-`, `_`, `.`.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^[A-Za-z0-9._-]+$", min_length = 1, max_length = 64)
    )]
    pub id: String,
    /// Display name (shown to sellers as the buyer alias).
    #[serde(default)]
    pub name: String,
    /// Parent account id, if this buyer belongs to a larger group.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^[A-Za-z0-9._-]+$", min_length = 1, max_length = 64)
    )]
    pub parent_id: Option<String>,
}

/// Whether a campaign takes part in auctions.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignStatus {
    /// Bidding.
    #[default]
    Active,
    /// Not bidding until resumed.
    Paused,
}

/// Day of the week in a campaign's time zone.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Weekday {
    /// Monday.
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}

impl Weekday {
    /// Monday = 0 … Sunday = 6.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// One window of a weekly schedule: on these days, from `from_hour`
/// (inclusive) to `to_hour` (exclusive), in the campaign's time zone.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleWindow {
    /// Days the window applies to (at least one).
    #[cfg_attr(feature = "openapi", schema(min_items = 1))]
    pub days: Vec<Weekday>,
    /// First hour, `0..=23`.
    #[cfg_attr(feature = "openapi", schema(maximum = 23))]
    pub from_hour: u8,
    /// Hour after the last, `1..=24`.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 24))]
    pub to_hour: u8,
}

impl ScheduleWindow {
    /// Checks one window; `at` is its key path.
    pub fn validate(&self, at: &str) -> Result<(), SpecError> {
        if self.from_hour > 23
            || self.to_hour == 0
            || self.to_hour > 24
            || self.from_hour >= self.to_hour
        {
            return Err(err(at, "needs 0 <= from_hour < to_hour <= 24"));
        }
        if self.days.is_empty() {
            return Err(err(format!("{at}.days"), "must name at least one day"));
        }
        Ok(())
    }

    /// The hours a schedule covers, one 24-bit mask per weekday (Monday
    /// first); `None` for an empty schedule (always).
    pub fn week_mask(windows: &[ScheduleWindow]) -> Option<[u32; 7]> {
        (!windows.is_empty()).then(|| {
            let mut days = [0u32; 7];
            for w in windows {
                let hours = ((1u32 << w.to_hour) - 1) & !((1u32 << w.from_hour) - 1);
                for d in &w.days {
                    days[d.index()] |= hours;
                }
            }
            days
        })
    }
}

/// Limits for one cap period. `None` means unlimited.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapLimit {
    /// Maximum leads bought in the period (at least 1; omit for no cap).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub leads: Option<u32>,
    /// Maximum spend in the period, in cents (1 to 4294967295).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 4294967295_u64))]
    pub spend_cents: Option<u64>,
}

/// Caps per calendar period in the campaign's time zone. Weeks start Monday.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Caps {
    /// Per clock hour.
    #[serde(default)]
    pub hourly: CapLimit,
    /// Per day, reset at local midnight.
    #[serde(default)]
    pub daily: CapLimit,
    /// Per ISO week.
    #[serde(default)]
    pub weekly: CapLimit,
    /// Per calendar month.
    #[serde(default)]
    pub monthly: CapLimit,
}

/// Who a dedupe entry blocks.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DedupeScope {
    /// Any campaign of the same top-level buyer account that also dedupes
    /// by account (account-scoped and campaign-scoped entries are separate).
    #[default]
    Buyer,
    /// The same campaign only.
    Campaign,
}

/// Targeting filters. Every filter that is set must match; a filter on an
/// attribute the ping does not carry does not match.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Filters {
    /// States accepted; empty means all.
    pub states: Vec<UsState>,
    /// States refused.
    pub exclude_states: Vec<UsState>,
    /// ZIP codes (5 digits) or ZIP prefixes (3 digits) accepted; empty means all.
    pub zips: Vec<String>,
    /// ZIP codes or 3-digit prefixes refused.
    pub exclude_zips: Vec<String>,
    /// Minimum age, inclusive.
    pub age_min: Option<u8>,
    /// Maximum age, inclusive (at most 120).
    #[cfg_attr(feature = "openapi", schema(maximum = 120))]
    pub age_max: Option<u8>,
    /// Credit tiers accepted; empty means any.
    pub credit: Vec<Credit>,
    /// Devices accepted; empty means any.
    pub device: Vec<Device>,
    /// Required homeowner status.
    pub homeowner: Option<bool>,
    /// Required currently-insured status.
    pub currently_insured: Option<bool>,
    /// Minimum months continuously insured.
    pub insured_months_min: Option<u16>,
    /// Current carriers accepted (lower case); empty means any.
    pub carriers: Vec<String>,
    /// Current carriers refused (lower case), e.g. the buyer's own.
    pub exclude_carriers: Vec<String>,
    /// Minimum vehicles.
    pub vehicles_min: Option<u8>,
    /// Maximum vehicles.
    pub vehicles_max: Option<u8>,
    /// Maximum drivers.
    pub drivers_max: Option<u8>,
    /// Maximum violations.
    pub violations_max: Option<u8>,
    /// Maximum accidents.
    pub accidents_max: Option<u8>,
    /// Required SR-22 status.
    pub sr22: Option<bool>,
    /// Required military status.
    pub military: Option<bool>,
    /// Required tobacco status.
    pub tobacco: Option<bool>,
    /// Required pre-existing-conditions status.
    pub pre_existing: Option<bool>,
    /// Coverage types accepted (lower case); empty means any.
    pub coverage_types: Vec<String>,
    /// Minimum yearly income in dollars.
    pub income_min: Option<u32>,
    /// Maximum household size.
    pub household_size_max: Option<u8>,
    /// Maximum BMI in tenths.
    pub bmi_tenths_max: Option<u16>,
}

/// A price modifier: when every condition that is set holds, adjust the price.
/// Modifiers apply in order; percentages compound on the running price.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PriceModifier {
    /// Lead state is one of these.
    pub states: Vec<UsState>,
    /// Local hour (campaign time zone) is in `[from_hour, to_hour)`,
    /// `0..=23`; `from_hour` and `to_hour` go together.
    #[cfg_attr(feature = "openapi", schema(maximum = 23))]
    pub from_hour: Option<u8>,
    /// See `from_hour`; `1..=24`.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 24))]
    pub to_hour: Option<u8>,
    /// Seller source is one of these.
    pub sources: Vec<String>,
    /// Credit tier is one of these.
    pub credit: Vec<Credit>,
    /// Device is one of these.
    pub device: Vec<Device>,
    /// Adjustment in basis points of the running price (e.g. 1500 = +15 %),
    /// -9000 to 100000.
    #[cfg_attr(feature = "openapi", schema(minimum = -9000, maximum = 100000))]
    pub adjust_bps: i32,
    /// Adjustment in cents, applied after `adjust_bps` (-1000000000 to
    /// 1000000000).
    #[cfg_attr(feature = "openapi", schema(minimum = -1000000000, maximum = 1000000000))]
    pub adjust_cents: i64,
}

/// A buyer's campaign.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignSpec {
    /// Stable identifier, unique in the marketplace: 1 to 64 of ASCII
    /// letters, digits, `-`, `_`, `.`.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^[A-Za-z0-9._-]+$", min_length = 1, max_length = 64)
    )]
    pub id: String,
    /// Owning buyer id.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^[A-Za-z0-9._-]+$", min_length = 1, max_length = 64)
    )]
    pub buyer_id: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Vertical bought.
    pub vertical: Vertical,
    /// Active or paused.
    #[serde(default)]
    pub status: CampaignStatus,
    /// Exclusive or shared.
    pub sale_type: SaleType,
    /// Base price in cents (1 to 1000000000).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000000000))]
    pub price_cents: u64,
    /// Price modifiers.
    #[serde(default)]
    pub modifiers: Vec<PriceModifier>,
    /// Targeting.
    #[serde(default)]
    pub filters: Filters,
    /// Caps.
    #[serde(default)]
    pub caps: Caps,
    /// IANA time zone for schedule, caps and hour modifiers.
    #[serde(default = "default_time_zone")]
    #[cfg_attr(feature = "openapi", schema(value_type = TimeZone))]
    pub time_zone: String,
    /// Weekly schedule; empty means always open.
    #[serde(default)]
    pub schedule: Vec<ScheduleWindow>,
    /// Total prepaid budget in cents (top-ups add to it); lifetime spend
    /// less refunds never exceeds it plus `credit_limit_cents`; at most
    /// 100000000000.
    #[cfg_attr(feature = "openapi", schema(maximum = 100000000000_u64))]
    pub budget_cents: u64,
    /// Credit the buyer is allowed beyond the prepaid budget, cents (at
    /// most 100000000000).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(maximum = 100000000000_u64))]
    pub credit_limit_cents: u64,
    /// How long after a sale the buyer may return the lead, hours; 0
    /// refuses returns; at most 2160 (90 days).
    #[serde(default = "default_return_window_hours")]
    #[cfg_attr(feature = "openapi", schema(maximum = 2160))]
    pub return_window_hours: u32,
    /// Most leads the buyer may return, in basis points of the leads the
    /// campaign bought (1000 = 10 %); at most 10000.
    #[serde(default = "default_return_max_bps")]
    #[cfg_attr(feature = "openapi", schema(maximum = 10000))]
    pub return_max_bps: u32,
    /// Dedupe window in hours; 0 disables dedupe; at most 8784 (a year).
    #[serde(default = "default_dedupe_hours")]
    #[cfg_attr(feature = "openapi", schema(maximum = 8784))]
    pub dedupe_window_hours: u32,
    /// Dedupe scope.
    #[serde(default)]
    pub dedupe_scope: DedupeScope,
    /// Require a TCPA disclosure.
    #[serde(default)]
    pub require_tcpa: bool,
    /// Require a TrustedForm certificate.
    #[serde(default)]
    pub require_trustedform: bool,
    /// Require a Jornaya LeadiD.
    #[serde(default)]
    pub require_jornaya: bool,
    /// Sellers allowed; empty means all.
    #[serde(default)]
    pub sellers: Vec<String>,
    /// Sources allowed; empty means all.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Sources refused.
    #[serde(default)]
    pub exclude_sources: Vec<String>,
    /// Tie-break: higher wins among equal prices.
    #[serde(default)]
    pub priority: u8,
}

/// In the OpenAPI document, a time zone field: a string, one of the IANA
/// names the engine knows (`chrono_tz::TZ_VARIANTS`, the names
/// `str::parse::<chrono_tz::Tz>` takes). A schema only; the fields are
/// strings.
#[cfg(feature = "openapi")]
pub struct TimeZone;

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for TimeZone {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("An IANA time zone name, e.g. America/New_York"))
            .enum_values(Some(chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name())))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for TimeZone {}

fn default_time_zone() -> String {
    "America/New_York".to_owned()
}

fn default_return_window_hours() -> u32 {
    168
}

fn default_return_max_bps() -> u32 {
    1_000
}

fn default_dedupe_hours() -> u32 {
    720
}

/// Everything traded: sellers, buyers, campaigns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketplaceSpec {
    /// Sellers.
    #[serde(default)]
    pub sellers: Vec<SellerSpec>,
    /// Buyers.
    #[serde(default)]
    pub buyers: Vec<BuyerSpec>,
    /// Campaigns.
    #[serde(default)]
    pub campaigns: Vec<CampaignSpec>,
}

/// Auction pricing rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pricing {
    /// Winners pay their own bid.
    #[default]
    FirstPrice,
    /// Each winner pays the next lower bid plus one cent, never above its own
    /// bid and never below the floor.
    SecondPrice,
}

/// Engine tunables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSettings {
    /// How long bids stay valid after a ping, in milliseconds.
    pub price_lock_ms: u64,
    /// How long an expired ping is still remembered (so a late post gets
    /// `ping_expired` rather than `ping_not_found`), in milliseconds.
    pub expired_ping_memory_ms: u64,
    /// Pricing rule.
    pub pricing: Pricing,
    /// Maximum buyers of one shared lead, `1..=8`.
    pub max_shared_buyers: u8,
    /// Maximum pending pings held; past it new pings get `overloaded`.
    pub pending_pings_max: u32,
    /// Maximum dedupe entries held; past it posts get `overloaded`.
    pub dedupe_entries_max: u32,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            price_lock_ms: 60_000,
            expired_ping_memory_ms: 600_000,
            pricing: Pricing::FirstPrice,
            max_shared_buyers: 4,
            pending_pings_max: 2_000_000,
            dedupe_entries_max: 20_000_000,
        }
    }
}

/// A validation failure, naming the key (`campaigns[3].caps.daily.leads`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct SpecError {
    /// Dotted path of the offending key.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

fn err(path: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError {
        path: path.into(),
        message: message.into(),
    }
}

/// Largest price or budget accepted, in cents ($10 million): keeps every
/// product of price and basis points far inside `i64`.
pub const MONEY_CENTS_MAX: u64 = 1_000_000_000;

/// Largest spend cap per period: spend counters pack into 32 bits.
pub const CAP_SPEND_CENTS_MAX: u64 = u32::MAX as u64;

impl EngineSettings {
    /// Checks ranges.
    pub fn validate(&self) -> Result<(), SpecError> {
        if !(1_000..=3_600_000).contains(&self.price_lock_ms) {
            return Err(err(
                "engine.price_lock_ms",
                "must be between 1000 and 3600000",
            ));
        }
        if !(1..=8).contains(&self.max_shared_buyers) {
            return Err(err("engine.max_shared_buyers", "must be between 1 and 8"));
        }
        if self.pending_pings_max == 0 {
            return Err(err("engine.pending_pings_max", "must be at least 1"));
        }
        if self.dedupe_entries_max == 0 {
            return Err(err("engine.dedupe_entries_max", "must be at least 1"));
        }
        Ok(())
    }
}

/// Checks a record id: 1 to 64 of ASCII letters, digits, `-`, `_`, `.`
/// (the rule for every id in the marketplace and the admin API).
pub fn check_id(path: String, id: &str) -> Result<(), SpecError> {
    if id.is_empty() || id.len() > 64 {
        return Err(err(path, "must be 1 to 64 characters"));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(err(
            path,
            "may hold only ASCII letters, digits, '-', '_' and '.'",
        ));
    }
    Ok(())
}

fn check_zip_list(path: String, zips: &[String]) -> Result<(), SpecError> {
    for (i, z) in zips.iter().enumerate() {
        if !(z.len() == 5 || z.len() == 3) || !z.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err(
                format!("{path}[{i}]"),
                "must be a 5-digit ZIP or a 3-digit prefix",
            ));
        }
    }
    Ok(())
}

fn check_lower(path: String, values: &[String]) -> Result<(), SpecError> {
    for (i, v) in values.iter().enumerate() {
        if v.is_empty() || v.trim() != v || v.to_lowercase() != *v {
            return Err(err(
                format!("{path}[{i}]"),
                "must be non-empty, trimmed, lower case",
            ));
        }
    }
    Ok(())
}

fn check_cap(path: String, cap: &CapLimit) -> Result<(), SpecError> {
    if cap.leads == Some(0) {
        return Err(err(
            format!("{path}.leads"),
            "must be at least 1 (omit for no cap)",
        ));
    }
    if let Some(spend) = cap.spend_cents {
        if spend == 0 || spend > CAP_SPEND_CENTS_MAX {
            return Err(err(
                format!("{path}.spend_cents"),
                "must be between 1 and 4294967295",
            ));
        }
    }
    Ok(())
}

impl CampaignSpec {
    /// Checks one campaign; `path` prefixes error keys.
    pub fn validate(&self, path: &str) -> Result<(), SpecError> {
        check_id(format!("{path}.id"), &self.id)?;
        check_id(format!("{path}.buyer_id"), &self.buyer_id)?;
        if self.price_cents == 0 || self.price_cents > MONEY_CENTS_MAX {
            return Err(err(
                format!("{path}.price_cents"),
                "must be between 1 and 1000000000",
            ));
        }
        if self.budget_cents > MONEY_CENTS_MAX * 100 {
            return Err(err(
                format!("{path}.budget_cents"),
                "must be at most 100000000000",
            ));
        }
        if self.credit_limit_cents > MONEY_CENTS_MAX * 100 {
            return Err(err(
                format!("{path}.credit_limit_cents"),
                "must be at most 100000000000",
            ));
        }
        if self.return_window_hours > 24 * 90 {
            return Err(err(
                format!("{path}.return_window_hours"),
                "must be at most 2160 (90 days)",
            ));
        }
        if self.return_max_bps > 10_000 {
            return Err(err(
                format!("{path}.return_max_bps"),
                "must be at most 10000 (100 %)",
            ));
        }
        if self.time_zone.parse::<chrono_tz::Tz>().is_err() {
            return Err(err(
                format!("{path}.time_zone"),
                "is not an IANA time zone name",
            ));
        }
        let f = &self.filters;
        if let (Some(lo), Some(hi)) = (f.age_min, f.age_max) {
            if lo > hi {
                return Err(err(format!("{path}.filters.age_min"), "is above age_max"));
            }
        }
        if let (Some(lo), Some(hi)) = (f.vehicles_min, f.vehicles_max) {
            if lo > hi {
                return Err(err(
                    format!("{path}.filters.vehicles_min"),
                    "is above vehicles_max",
                ));
            }
        }
        if f.age_max.is_some_and(|a| a > 120) {
            return Err(err(
                format!("{path}.filters.age_max"),
                "must be at most 120",
            ));
        }
        check_zip_list(format!("{path}.filters.zips"), &f.zips)?;
        check_zip_list(format!("{path}.filters.exclude_zips"), &f.exclude_zips)?;
        check_lower(format!("{path}.filters.carriers"), &f.carriers)?;
        check_lower(
            format!("{path}.filters.exclude_carriers"),
            &f.exclude_carriers,
        )?;
        check_lower(format!("{path}.filters.coverage_types"), &f.coverage_types)?;
        for (i, w) in self.schedule.iter().enumerate() {
            w.validate(&format!("{path}.schedule[{i}]"))?;
        }
        for (i, m) in self.modifiers.iter().enumerate() {
            let mp = format!("{path}.modifiers[{i}]");
            if m.from_hour.is_some() != m.to_hour.is_some() {
                return Err(err(
                    format!("{mp}.from_hour"),
                    "from_hour and to_hour go together",
                ));
            }
            if let (Some(a), Some(b)) = (m.from_hour, m.to_hour) {
                if a > 23 || b == 0 || b > 24 || a >= b {
                    return Err(err(
                        format!("{mp}.from_hour"),
                        "needs 0 <= from_hour < to_hour <= 24",
                    ));
                }
            }
            if !(-9_000..=100_000).contains(&m.adjust_bps) {
                return Err(err(
                    format!("{mp}.adjust_bps"),
                    "must be between -9000 and 100000",
                ));
            }
            if m.adjust_cents.unsigned_abs() > MONEY_CENTS_MAX {
                return Err(err(format!("{mp}.adjust_cents"), "is out of range"));
            }
        }
        check_cap(format!("{path}.caps.hourly"), &self.caps.hourly)?;
        check_cap(format!("{path}.caps.daily"), &self.caps.daily)?;
        check_cap(format!("{path}.caps.weekly"), &self.caps.weekly)?;
        check_cap(format!("{path}.caps.monthly"), &self.caps.monthly)?;
        if self.dedupe_window_hours > 24 * 366 {
            return Err(err(
                format!("{path}.dedupe_window_hours"),
                "must be at most 8784 (a year)",
            ));
        }
        Ok(())
    }
}

impl MarketplaceSpec {
    /// Checks every record and every cross reference.
    pub fn validate(&self) -> Result<(), SpecError> {
        let mut seller_ids = HashSet::new();
        let mut key_hashes = HashSet::new();
        for (i, s) in self.sellers.iter().enumerate() {
            let p = format!("sellers[{i}]");
            check_id(format!("{p}.id"), &s.id)?;
            if !seller_ids.insert(s.id.as_str()) {
                return Err(err(
                    format!("{p}.id"),
                    format!("duplicate seller id {:?}", s.id),
                ));
            }
            if s.margin_bps >= 10_000 {
                return Err(err(
                    format!("{p}.margin_bps"),
                    "must be below 10000 (100 %)",
                ));
            }
            if s.floor_cents > MONEY_CENTS_MAX {
                return Err(err(format!("{p}.floor_cents"), "is out of range"));
            }
            for (k, h) in s.api_key_sha256.iter().enumerate() {
                if h.len() != 64
                    || !h
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                {
                    return Err(err(
                        format!("{p}.api_key_sha256[{k}]"),
                        "must be 64 lower-case hex digits (the SHA-256 of the key)",
                    ));
                }
                if !key_hashes.insert(h.as_str()) {
                    return Err(err(
                        format!("{p}.api_key_sha256[{k}]"),
                        "key used by two sellers",
                    ));
                }
            }
        }
        let mut buyer_ids = HashSet::new();
        for (i, b) in self.buyers.iter().enumerate() {
            check_id(format!("buyers[{i}].id"), &b.id)?;
            if !buyer_ids.insert(b.id.as_str()) {
                return Err(err(
                    format!("buyers[{i}].id"),
                    format!("duplicate buyer id {:?}", b.id),
                ));
            }
        }
        for (i, b) in self.buyers.iter().enumerate() {
            if let Some(parent) = &b.parent_id {
                if !buyer_ids.contains(parent.as_str()) {
                    return Err(err(
                        format!("buyers[{i}].parent_id"),
                        format!("unknown buyer {parent:?}"),
                    ));
                }
            }
        }
        let mut campaign_ids = HashSet::new();
        for (i, c) in self.campaigns.iter().enumerate() {
            let p = format!("campaigns[{i}]");
            c.validate(&p)?;
            if !campaign_ids.insert(c.id.as_str()) {
                return Err(err(
                    format!("{p}.id"),
                    format!("duplicate campaign id {:?}", c.id),
                ));
            }
            if !buyer_ids.contains(c.buyer_id.as_str()) {
                return Err(err(
                    format!("{p}.buyer_id"),
                    format!("unknown buyer {:?}", c.buyer_id),
                ));
            }
            for (k, s) in c.sellers.iter().enumerate() {
                if !seller_ids.contains(s.as_str()) {
                    return Err(err(
                        format!("{p}.sellers[{k}]"),
                        format!("unknown seller {s:?}"),
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lead::SaleType;
    use crate::testing::campaign;

    #[test]
    fn errors_name_the_key() {
        let mut m = MarketplaceSpec {
            buyers: vec![BuyerSpec {
                id: "b1".into(),
                name: String::new(),
                parent_id: None,
            }],
            campaigns: vec![campaign("c1", "b1", SaleType::Exclusive, 1000)],
            ..Default::default()
        };
        assert!(m.validate().is_ok());
        m.campaigns[0].caps.daily.leads = Some(0);
        assert_eq!(
            m.validate().unwrap_err().path,
            "campaigns[0].caps.daily.leads"
        );
        m.campaigns[0].caps.daily.leads = None;
        m.campaigns[0].time_zone = "Mars/Olympus".into();
        assert_eq!(m.validate().unwrap_err().path, "campaigns[0].time_zone");
        m.campaigns[0].time_zone = "America/Chicago".into();
        m.campaigns[0].buyer_id = "nobody".into();
        assert_eq!(m.validate().unwrap_err().path, "campaigns[0].buyer_id");
    }
}
