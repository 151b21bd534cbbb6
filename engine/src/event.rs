//! Journal events: every state change of the engine, as a value.
//!
//! A sale, its charges, its cap use and its dedupe entries are one
//! [`LeadSold`] event, written as one journal record, so a crash can never
//! leave half a sale. Replaying the events in order rebuilds the engine's
//! state exactly (see `Engine::apply`).

use crate::ids::{LeadId, PingId};
use crate::lead::{Lead, Ping, SaleType};
use crate::routing::assign::RoutingRecord;
use crate::routing::spec::{AgencySpec, AgentSpec, TeamSpec};
use crate::spec::{BuyerSpec, CampaignSpec, SellerSpec};
use serde::{Deserialize, Serialize};

/// Version of the event encoding; journals record it per record and refuse
/// versions they do not know.
pub const EVENT_FORMAT_VERSION: u16 = 1;

/// One state change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// A ping was answered with bids and a price lock.
    PingIssued(PingIssued),
    /// A lead was sold (after a ping, or by direct post).
    LeadSold(LeadSold),
    /// A change made through the admin API (keys, CRM records, webhooks):
    /// opaque to the engine, which only has it ordered and stored with the
    /// sales; the admin API encodes and applies it.
    Admin(AdminRecord),
    /// A change to the marketplace or to a campaign's money, made through
    /// the admin API: applied by the engine (a new snapshot swapped in, or a
    /// counter credited).
    Market(MarketRecord),
    /// A transition of a lead's assignment to an agent (routed, accepted,
    /// declined or expired and offered on, closed).
    Routing(RoutingRecord),
}

impl Event {
    /// Event time, Unix milliseconds.
    pub fn at_ms(&self) -> i64 {
        match self {
            Event::PingIssued(p) => p.issued_at_ms,
            Event::LeadSold(s) => s.sold_at_ms,
            Event::Admin(a) => a.at_ms,
            Event::Market(m) => m.at_ms,
            Event::Routing(r) => r.at_ms,
        }
    }
}

/// An admin change as the journal carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminRecord {
    /// Unique id of the change; replay is idempotent by it.
    pub id: String,
    /// When, Unix ms.
    pub at_ms: i64,
    /// What kind of change, e.g. `key.created` (for logs and tools).
    pub kind: String,
    /// The change, encoded by the admin API.
    pub payload: Vec<u8>,
}

/// A marketplace change as the journal carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketRecord {
    /// Unique id of the change; replay is idempotent by it.
    pub id: String,
    /// When, Unix ms.
    pub at_ms: i64,
    /// The change.
    pub change: MarketChange,
    /// What the admin API records with the change (ledger entry, audit),
    /// encoded by it and opaque here: one record, so a crash can never
    /// keep the change and lose its ledger entry.
    pub note: Vec<u8>,
}

/// One marketplace change. Records, campaigns included, are put whole (the
/// admin API serializes its changes, so a put is never based on a stale
/// copy), which makes every put idempotent by itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MarketChange {
    /// A seller created or replaced.
    PutSeller(SellerSpec),
    /// A buyer created or replaced.
    PutBuyer(BuyerSpec),
    /// A campaign created or replaced (targeting, price, status, budget...).
    PutCampaign(Box<CampaignSpec>),
    /// Money given back to a campaign's budget for a returned lead: its
    /// lifetime spend goes down by `cents`; caps already used stay used.
    Refund {
        /// Campaign credited.
        campaign_id: String,
        /// The lead returned.
        lead_id: LeadId,
        /// Amount, cents (the price the campaign paid for the lead).
        cents: u64,
    },
    /// An agent created or replaced (routing: only the agent graph is
    /// rebuilt).
    PutAgent(Box<AgentSpec>),
    /// A team created or replaced (its manager).
    PutTeam(TeamSpec),
    /// An agency's routing policy created or replaced.
    PutAgency(AgencySpec),
}

impl MarketChange {
    /// True for the changes routing applies (agents, teams, agency
    /// policies): they rebuild the agent graph, not the marketplace.
    pub fn is_routing(&self) -> bool {
        matches!(
            self,
            MarketChange::PutAgent(_) | MarketChange::PutTeam(_) | MarketChange::PutAgency(_)
        )
    }
}

/// A bid as remembered with its ping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BidRecord {
    /// Campaign that bid.
    pub campaign_id: String,
    /// Buyer owning the campaign.
    pub buyer_id: String,
    /// Exclusive or shared.
    pub sale_type: SaleType,
    /// What the buyer is charged, cents.
    pub buyer_price_cents: u64,
    /// What the seller is paid (buyer price less margin), cents.
    pub seller_price_cents: u64,
}

/// A ping answered with bids (pings with no bid are not journaled).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingIssued {
    /// Ping id.
    pub ping_id: PingId,
    /// Seller that pinged.
    pub seller_id: String,
    /// When, Unix ms.
    pub issued_at_ms: i64,
    /// End of the price lock, Unix ms.
    pub expires_at_ms: i64,
    /// Hash of the ping for idempotent re-pings.
    pub request_hash: u64,
    /// The ping.
    pub ping: Ping,
    /// Bids, in bid-index order.
    pub bids: Vec<BidRecord>,
}

/// One buyer's purchase of a lead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleRecord {
    /// Index of the bid in its ping (direct posts: position in the auction).
    pub bid_index: u8,
    /// The bid.
    pub bid: BidRecord,
    /// Dedupe key inserted for this sale (0 when the campaign does not dedupe).
    pub dedupe_key: u64,
    /// When the dedupe entry lapses, Unix ms.
    pub dedupe_expires_at_ms: i64,
}

/// A sold lead and every sale of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadSold {
    /// Lead id.
    pub lead_id: LeadId,
    /// The ping it was sold under; `None` for direct posts.
    pub ping_id: Option<PingId>,
    /// Seller.
    pub seller_id: String,
    /// When, Unix ms. Cap periods are computed from this time.
    pub sold_at_ms: i64,
    /// The full lead, PII included (needed for delivery).
    pub lead: Lead,
    /// The sales, one per buyer.
    pub sales: Vec<SaleRecord>,
}
