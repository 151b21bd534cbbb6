//! The engine's whole state as plain data: what a snapshot stores and what
//! restore loads before replaying the journal's tail.
//!
//! An [`EngineImage`] holds everything replay would rebuild: campaign
//! counters, open and used pings (price locks), dedupe entries, phone
//! exclusivity, sales seen (for idempotent replay) and the sale totals. The
//! marketplace (campaigns, sellers) is not here: it is compiled from its
//! spec, which the persistence crate stores beside the image.
//!
//! Images are canonical: every list is sorted, so two engines in the same
//! state produce equal images, equal encodings and equal
//! [`Engine::state_digest`](crate::Engine::state_digest)s. The types derive
//! rkyv's `Archive` so a snapshot can be validated and read without a
//! parsing pass (see `leadex-persistence`).

use crate::lead::{Ping, SaleType};

/// The engine's state, canonical (sorted lists). See the module docs.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[rkyv(attr(allow(missing_docs)))]
pub struct EngineImage {
    /// Counters of every campaign that has any, by campaign id.
    pub counters: Vec<CounterImage>,
    /// Pings held, by (expiry, id).
    pub pending: Vec<PendingImage>,
    /// Dedupe entries: (key, expiry Unix ms), by key.
    pub dedupe: Vec<(u64, i64)>,
    /// Exchange-level phone exclusivity, by key.
    pub phone_sales: Vec<PhoneImage>,
    /// Pings sold before their issue event was seen: (ping id, sale ms).
    pub sold_before_issue: Vec<(u128, i64)>,
    /// Recent sales by lead id (for idempotent replay): (lead id, sale ms).
    pub recent_leads: Vec<(u128, i64)>,
    /// Recent marketplace changes by record id (for idempotent replay).
    pub recent_market: Vec<(String, i64)>,
    /// Sale totals.
    pub totals: SaleTotals,
}

/// One campaign's counters, raw (see `counters.rs` for the period words).
#[derive(Debug, Clone, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(attr(allow(missing_docs)))]
pub struct CounterImage {
    /// Campaign id.
    pub campaign_id: String,
    /// Lifetime spend, cents.
    pub spent_cents: u64,
    /// Lifetime leads bought.
    pub sold: u64,
    /// `[period key : 32 | amount : 32]` per cap slot.
    pub periods: [u64; 8],
}

/// A ping held under its price lock (or remembered after use).
#[derive(Debug, Clone, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(attr(allow(missing_docs)))]
pub struct PendingImage {
    /// Ping id.
    pub id: u128,
    /// Seller id.
    pub seller_id: String,
    /// Issue time, Unix ms.
    pub issued_at_ms: i64,
    /// End of the price lock, Unix ms.
    pub expires_at_ms: i64,
    /// Hash for idempotent re-pings.
    pub request_hash: u64,
    /// The ping.
    pub ping: Ping,
    /// Bids by index.
    pub bids: Vec<BidImage>,
    /// True once sold.
    pub used: bool,
}

/// A held bid.
#[derive(Debug, Clone, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(attr(allow(missing_docs)))]
pub struct BidImage {
    /// Campaign id.
    pub campaign_id: String,
    /// Buyer id.
    pub buyer_id: String,
    /// Buyer alias shown to the seller.
    pub buyer_name: String,
    /// Exclusive or shared.
    pub sale_type: SaleType,
    /// Buyer pays, cents.
    pub buyer_price_cents: u64,
    /// Seller gets, cents.
    pub seller_price_cents: u64,
}

/// Until when a phone counts as sold, by kind of sale.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[rkyv(attr(allow(missing_docs)))]
pub struct PhoneImage {
    /// Stable hash of the phone.
    pub key: u64,
    /// Exclusive sale blocks until, Unix ms.
    pub exclusive_until_ms: i64,
    /// Shared sale blocks exclusive until, Unix ms.
    pub shared_until_ms: i64,
}

/// Totals of committed sales.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[rkyv(attr(allow(missing_docs)))]
pub struct SaleTotals {
    /// Leads sold.
    pub leads_sold: u64,
    /// Individual sales (a shared lead counts once per buyer).
    pub sales: u64,
    /// Buyer spend, cents.
    pub spend_cents: u64,
    /// Seller payouts, cents.
    pub payout_cents: u64,
    /// Spend given back for returned leads, cents.
    pub refunded_cents: u64,
}
