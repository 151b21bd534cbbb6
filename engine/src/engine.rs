//! The engine: pings, posts, settlement, replay.
//!
//! Flow of a sale (the server drives it):
//! 1. [`Engine::post`] (or [`Engine::direct_post`]) checks the post, inserts
//!    dedupe entries atomically and charges budgets and caps exactly. Nothing
//!    is acknowledged yet; the ping is marked *settling* so a concurrent post
//!    of the same ping gets `ping_already_used`.
//! 2. The caller appends [`Settlement::event`] to the journal and waits for
//!    durability.
//! 3. Durable: [`Engine::commit`]. Failed: [`Engine::rollback`] gives every
//!    charge and dedupe entry back and reopens the ping.
//!
//! On restart, [`Engine::apply`] replays journaled events to rebuild exactly
//! the committed state.

use crate::auction::{campaign_local_time, run_auction, NoBidReason, Scratch, Winner};
use crate::clock::Clock;
use crate::counters::{CampaignCounters, Charge, CounterReading};
use crate::event::{BidRecord, Event, LeadSold, MarketChange, PingIssued, SaleRecord};
use crate::hash::stable_hash;
use crate::ids::{BidId, LeadId, PingId};
use crate::image::{BidImage, CounterImage, EngineImage, PendingImage, PhoneImage, SaleTotals};
use crate::lead::{Lead, LeadAttributes, Ping, SaleType};
use crate::localtime::LocalTime;
use crate::routing::assign::{
    Action, AssignmentId, RouteLead, Router, RoutingError, RoutingTicket,
};
use crate::snapshot::{CounterRegistry, Seller, Snapshot};
use crate::spec::{DedupeScope, EngineSettings, MarketplaceSpec, SpecError};
use arc_swap::ArcSwap;
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use parking_lot::Mutex;
use std::cell::RefCell;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

const PING_OPEN: u8 = 0;
const PING_SETTLING: u8 = 1;
const PING_USED: u8 = 2;

/// Most rounds a direct post cascades to the next bids when every winner of
/// a round refused (duplicate, budget, cap).
const DIRECT_POST_ROUNDS_MAX: usize = 3;

/// A bid held under a price lock.
#[derive(Debug, Clone)]
pub struct PendingBid {
    /// Campaign id.
    pub campaign_id: Arc<str>,
    /// Buyer id.
    pub buyer_id: Arc<str>,
    /// Buyer alias shown to the seller.
    pub buyer_name: Arc<str>,
    /// Exclusive or shared.
    pub sale_type: SaleType,
    /// Buyer pays, cents.
    pub buyer_price_cents: u64,
    /// Seller gets, cents.
    pub seller_price_cents: u64,
}

/// A ping answered with bids, waiting for its post.
#[derive(Debug)]
pub struct PendingPing {
    /// Id.
    pub id: PingId,
    /// Seller id.
    pub seller_id: Arc<str>,
    /// Issue time, Unix ms.
    pub issued_at_ms: i64,
    /// End of the price lock, Unix ms.
    pub expires_at_ms: i64,
    /// Hash for idempotent re-pings.
    pub request_hash: u64,
    /// The ping.
    pub ping: Ping,
    /// Bids by index.
    pub bids: Vec<PendingBid>,
    state: AtomicU8,
}

/// One bid in a ping answer.
#[derive(Debug, Clone)]
pub struct AnsweredBid {
    /// Bid id.
    pub bid_id: BidId,
    /// Buyer alias.
    pub buyer_name: Arc<str>,
    /// What the seller gets, cents.
    pub price_cents: u64,
    /// Exclusive or shared.
    pub sale_type: SaleType,
}

/// The answer to a ping.
#[derive(Debug, Clone)]
pub struct PingAnswer {
    /// Ping id (also for no-bid answers, for the seller's logs).
    pub ping_id: PingId,
    /// End of the price lock, Unix ms.
    pub expires_at_ms: i64,
    /// Bids; empty with a reason when there is none.
    pub bids: Vec<AnsweredBid>,
    /// Why there is no bid.
    pub no_bid_reason: Option<NoBidReason>,
    /// True when this repeats the answer to an identical earlier ping.
    pub repeated: bool,
    /// Event to journal (fire and forget), for new pings with bids.
    pub event: Option<Event>,
}

/// Why the engine refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// No such ping (or not this seller's).
    #[error("no pending ping with this id")]
    PingNotFound,
    /// The price lock is over.
    #[error("the ping's price lock has expired")]
    PingExpired,
    /// The ping was already posted (or a post of it is in flight).
    #[error("the ping was already posted")]
    PingAlreadyUsed,
    /// The post does not match its ping.
    #[error("post does not match its ping: {field} differs")]
    PostMismatch {
        /// First differing attribute.
        field: &'static str,
    },
    /// A bid id is not one of this ping's bids.
    #[error("bid {0} is not a bid of this ping")]
    UnknownBid(String),
    /// No accepted bid could be charged (budget, cap, campaign paused).
    #[error("no accepted bid is still available")]
    BidUnavailable,
    /// Every accepted bid's buyer already bought this consumer in its dedupe window.
    #[error("the lead is a duplicate for every accepted buyer")]
    DuplicateLead,
    /// A bounded store is full.
    #[error("engine is at capacity: {0}")]
    Overloaded(&'static str),
}

/// Until when a consumer phone counts as sold, by kind of sale, Unix ms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct PhoneSales {
    exclusive_until_ms: i64,
    shared_until_ms: i64,
}

/// A settlement's hold on a phone's exclusivity, to give back on rollback.
#[derive(Debug, Clone, Copy)]
struct PhoneClaim {
    key: u64,
    previous: PhoneSales,
    set: PhoneSales,
}

/// One sale during settlement: bid index, bid, the sale, dedupe expiry (ms).
type SaleInProgress = (u8, PendingBid, SettledSale, i64);

/// A sale made but not yet durable.
#[derive(Debug)]
pub struct SettledSale {
    /// Bid id (ping posts only).
    pub bid_id: Option<BidId>,
    /// Buyer alias.
    pub buyer_name: Arc<str>,
    /// Buyer pays, cents.
    pub buyer_price_cents: u64,
    /// Seller gets, cents.
    pub seller_price_cents: u64,
    counters: Arc<CampaignCounters>,
    charge: Charge,
    dedupe_key: Option<u64>,
}

/// The outcome of a post before it is durable. Exactly one of
/// [`Engine::commit`] or [`Engine::rollback`] must follow.
#[derive(Debug)]
pub struct Settlement {
    /// Lead id.
    pub lead_id: LeadId,
    /// The sales.
    pub sales: Vec<SettledSale>,
    /// The event to make durable before answering `sold`.
    pub event: Event,
    ping: Option<Arc<PendingPing>>,
    phone_claim: Option<PhoneClaim>,
}

impl Settlement {
    /// Sum of seller payouts, cents.
    pub fn total_seller_price_cents(&self) -> u64 {
        self.sales.iter().map(|s| s.seller_price_cents).sum()
    }
}

/// A direct post's outcome.
#[derive(Debug)]
pub enum DirectOutcome {
    /// Sold; commit or roll back after journaling.
    Sold(Box<Settlement>),
    /// Not sold, with the stable reason code.
    Unsold(&'static str),
}

/// Counters for metrics; `Relaxed` throughout: they are statistics, read
/// without any ordering need.
#[derive(Debug, Default)]
pub struct EngineStats {
    /// Pings answered.
    pub pings: AtomicU64,
    /// Bids returned.
    pub bids: AtomicU64,
    /// No-bid answers by reason (index of [`NoBidReason::ALL`]).
    pub no_bids: [AtomicU64; 7],
    /// Leads sold.
    pub leads_sold: AtomicU64,
    /// Individual sales (a shared lead counts once per buyer).
    pub sales: AtomicU64,
    /// Buyer spend, cents.
    pub spend_cents: AtomicU64,
    /// Seller payouts, cents.
    pub payout_cents: AtomicU64,
    /// Buyer spend given back for returned leads, cents.
    pub refunded_cents: AtomicU64,
}

/// The engine. Cheap to share (`Arc<Engine>`); every method takes `&self`.
pub struct Engine {
    settings: EngineSettings,
    clock: Arc<dyn Clock>,
    snapshot: ArcSwap<Snapshot>,
    /// The marketplace the snapshot was compiled from: the base of every
    /// marketplace change. Read lock-free; changed only under
    /// `market_write`, on the control plane.
    market: ArcSwap<MarketplaceSpec>,
    market_write: Mutex<()>,
    /// Marketplace changes applied recently, by id, with their time, so a
    /// record journaled twice applies once (as `recent_leads`).
    recent_market: DashMap<Box<str>, i64>,
    counters: CounterRegistry,
    pending: DashMap<PingId, Arc<PendingPing>>,
    pending_by_request: DashMap<u64, PingId>,
    pending_count: AtomicUsize,
    /// Pings in issue order (= expiry order: one price lock for all). A
    /// lock-free queue on the hot path; only the sweeper receives.
    expiry_tx: crossbeam_channel::Sender<(i64, PingId)>,
    expiry_rx: crossbeam_channel::Receiver<(i64, PingId)>,
    /// The sweeper's look-ahead: one received item not yet due.
    expiry_next: Mutex<Option<(i64, PingId)>>,
    dedupe: DashMap<u64, i64>,
    /// Pings whose sale was replayed before their `PingIssued` (a repeated
    /// ping can be posted before the original's event is appended), with
    /// the sale time; `apply(PingIssued)` marks them used. Swept with pings.
    sold_before_issue: DashMap<PingId, i64>,
    /// Exchange-level exclusivity by consumer phone (stable hash): an
    /// exclusive sale blocks every later sale of the phone, and a shared sale
    /// blocks a later exclusive one, within the buyers' dedupe windows.
    phone_sales: DashMap<u64, PhoneSales>,
    /// Leads sold recently (committed or replayed), with the sale time, so
    /// replay skips a `LeadSold` it has already applied (idempotent by
    /// event id). Kept as long as pings are remembered; swept with them.
    recent_leads: DashMap<LeadId, i64>,
    last_dedupe_sweep_ms: AtomicI64,
    id_epoch: u64,
    id_sequence: AtomicU64,
    /// Lead routing: agents, assignments, the backlog of sold leads to
    /// route. Its graph is swapped on its own, so an agent change never
    /// recompiles the marketplace.
    router: Router,
    /// Statistics.
    pub stats: EngineStats,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

fn mismatch(ping: &LeadAttributes, post: &LeadAttributes) -> Option<&'static str> {
    macro_rules! same {
        ($($f:ident),*) => {
            $( if ping.$f.is_some() && ping.$f != post.$f { return Some(stringify!($f)); } )*
        };
    }
    if ping.vertical != post.vertical {
        return Some("vertical");
    }
    if ping.zip != post.zip {
        return Some("zip");
    }
    if ping.state != post.state {
        return Some("state");
    }
    same!(
        age,
        gender,
        credit,
        homeowner,
        currently_insured,
        current_carrier,
        insured_months,
        vehicles,
        drivers,
        violations,
        accidents,
        sr22,
        coverage_type,
        household_size,
        income,
        military,
        tobacco,
        bmi_tenths,
        pre_existing,
        device,
        source_id,
        sub_id
    );
    None
}

impl Engine {
    /// Builds an engine over a marketplace.
    pub fn new(
        settings: EngineSettings,
        market: &MarketplaceSpec,
        clock: Arc<dyn Clock>,
    ) -> Result<Engine, SpecError> {
        settings.validate()?;
        let counters = CounterRegistry::default();
        let snapshot = Snapshot::build(market, &counters, 1)?;
        // A per-process random epoch (std's RandomState is seeded by the OS)
        // makes ids unique across restarts without journaling a sequence.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(clock.now_ms() as u64);
        let (expiry_tx, expiry_rx) = crossbeam_channel::unbounded();
        Ok(Engine {
            settings,
            clock,
            snapshot: ArcSwap::from_pointee(snapshot),
            market: ArcSwap::from_pointee(market.clone()),
            market_write: Mutex::new(()),
            recent_market: DashMap::new(),
            counters,
            pending: DashMap::new(),
            pending_by_request: DashMap::new(),
            pending_count: AtomicUsize::new(0),
            expiry_tx,
            expiry_rx,
            expiry_next: Mutex::new(None),
            dedupe: DashMap::new(),
            sold_before_issue: DashMap::new(),
            phone_sales: DashMap::new(),
            recent_leads: DashMap::new(),
            last_dedupe_sweep_ms: AtomicI64::new(0),
            id_epoch: h.finish(),
            id_sequence: AtomicU64::new(1),
            router: Router::default(),
            stats: EngineStats::default(),
        })
    }

    /// The settings.
    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Compiles and swaps in a new marketplace; counters carry over by id.
    pub fn replace_marketplace(&self, market: &MarketplaceSpec) -> Result<(), SpecError> {
        let _writer = self.market_write.lock();
        self.swap_marketplace(market.clone())
    }

    /// Compiles `market` and swaps it in; the caller holds `market_write`.
    fn swap_marketplace(&self, market: MarketplaceSpec) -> Result<(), SpecError> {
        let generation = self.snapshot.load().generation + 1;
        let snapshot = Snapshot::build(&market, &self.counters, generation)?;
        self.market.store(Arc::new(market));
        self.snapshot.store(Arc::new(snapshot));
        Ok(())
    }

    /// The marketplace in force (sellers, buyers, campaigns as specified).
    pub fn marketplace(&self) -> Arc<MarketplaceSpec> {
        self.market.load_full()
    }

    /// The marketplace `change` would produce, validated, without applying
    /// it: the admin API checks a change with it before journaling it.
    /// A refund changes no record and is always valid; a routing change
    /// (checked against the routing spec) leaves the marketplace as it is,
    /// so the one in force is returned without a copy.
    pub fn preview_market_change(
        &self,
        change: &MarketChange,
    ) -> Result<Arc<MarketplaceSpec>, SpecError> {
        if change.is_routing() {
            self.router.preview(change)?;
            return Ok(self.market.load_full());
        }
        let mut market = (*self.market.load_full()).clone();
        put_record(&mut market, change);
        market.validate()?;
        Ok(Arc::new(market))
    }

    /// Lead routing (agents, assignments, backlog).
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Routes a lead for an agency (see [`Router::open_assignment`]): the
    /// caller journals the ticket's event, then commits or rolls back
    /// through [`Router`].
    pub fn route_lead(
        &self,
        agency_id: &str,
        lead: RouteLead,
        lead_id: Option<LeadId>,
        reference: Option<String>,
    ) -> Result<RoutingTicket, RoutingError> {
        let id = AssignmentId(self.next_id());
        self.router
            .open_assignment(id, agency_id, lead, lead_id, reference, self.clock.now_ms())
    }

    /// Routes a sold lead from the backlog (see [`Router::backlog`]). Its
    /// assignment's id is the lead's, so a lead is routed once.
    pub fn route_pending(
        &self,
        pending: &crate::routing::assign::Pending,
    ) -> Result<RoutingTicket, RoutingError> {
        self.router.open_assignment(
            AssignmentId(pending.lead_id.0),
            &pending.agency_id,
            pending.lead.clone(),
            Some(pending.lead_id),
            None,
            self.clock.now_ms(),
        )
    }

    /// Decides a transition of an open assignment (see [`Router::decide`]).
    pub fn decide_assignment(
        &self,
        id: AssignmentId,
        action: Action<'_>,
    ) -> Result<RoutingTicket, RoutingError> {
        self.router.decide(id, action, self.clock.now_ms())
    }

    /// Tells routing about a sale, so leads bought by campaigns whose
    /// delivery is `route` wait in its backlog until routed.
    fn note_sale_for_routing(&self, sold: &LeadSold) {
        if self.router.spec().agencies.is_empty() {
            return;
        }
        let snap = self.snapshot.load();
        for sale in &sold.sales {
            let account = snap
                .buyer_by_id(&sale.bid.buyer_id)
                .map_or(sale.bid.buyer_id.as_str(), |b| {
                    &*snap.buyers[b.account as usize].id
                });
            self.router.note_sale(
                sold.lead_id,
                account,
                &sale.bid.campaign_id,
                &sold.lead,
                sold.sold_at_ms,
            );
        }
    }

    /// The seller owning an API key, given the key's SHA-256.
    pub fn authenticate(&self, key_sha256: &[u8; 32]) -> Option<Seller> {
        self.snapshot.load().seller_by_key_hash(key_sha256).cloned()
    }

    /// Seller by id.
    pub fn seller_by_id(&self, id: &str) -> Option<Seller> {
        self.snapshot.load().seller_by_id(id).cloned()
    }

    fn next_id(&self) -> u128 {
        // Relaxed: uniqueness comes from the atomic increment alone.
        let seq = self.id_sequence.fetch_add(1, Ordering::Relaxed);
        (u128::from(self.id_epoch) << 64) | u128::from(seq)
    }

    /// Current time by the injected clock.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Pings held (open, settling or used, until forgotten).
    pub fn pending_pings(&self) -> usize {
        self.pending_count.load(Ordering::Relaxed)
    }

    /// Dedupe entries held.
    pub fn dedupe_entries(&self) -> usize {
        self.dedupe.len()
    }

    /// Answers a ping: bids under a price lock, or a no-bid reason.
    pub fn ping(&self, seller: &Seller, ping: &Ping) -> Result<PingAnswer, EngineError> {
        let now = self.clock.now_ms();
        let request_hash = stable_hash(&(&*seller.id, ping));
        if let Some(answer) = self.repeat_answer(seller, ping, request_hash, now) {
            return Ok(answer);
        }
        let snap = self.snapshot.load();
        let seller = snap.seller_by_id(&seller.id).unwrap_or(seller);
        self.stats.pings.fetch_add(1, Ordering::Relaxed);
        let result = SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            s.excluded_campaigns.clear();
            run_auction(&snap, &self.settings, seller, ping, now, &mut s).map(|()| {
                s.winners
                    .iter()
                    .map(|w| pending_bid(&snap, w))
                    .collect::<Vec<_>>()
            })
        });
        let expires_at_ms = now + self.settings.price_lock_ms as i64;
        let ping_id = PingId(self.next_id());
        let bids = match result {
            Ok(bids) => bids,
            Err(reason) => {
                self.stats.no_bids[reason as usize].fetch_add(1, Ordering::Relaxed);
                return Ok(PingAnswer {
                    ping_id,
                    expires_at_ms,
                    bids: Vec::new(),
                    no_bid_reason: Some(reason),
                    repeated: false,
                    event: None,
                });
            }
        };
        if self.pending_count.load(Ordering::Relaxed) >= self.settings.pending_pings_max as usize {
            return Err(EngineError::Overloaded("pending pings"));
        }
        self.stats
            .bids
            .fetch_add(bids.len() as u64, Ordering::Relaxed);
        let event = Event::PingIssued(PingIssued {
            ping_id,
            seller_id: seller.id.to_string(),
            issued_at_ms: now,
            expires_at_ms,
            request_hash,
            ping: ping.clone(),
            bids: bids.iter().map(bid_record).collect(),
        });
        let pending = Arc::new(PendingPing {
            id: ping_id,
            seller_id: seller.id.clone(),
            issued_at_ms: now,
            expires_at_ms,
            request_hash,
            ping: ping.clone(),
            bids,
            state: AtomicU8::new(PING_OPEN),
        });
        let answer = answer_of(&pending, false, Some(event));
        self.hold(pending);
        Ok(answer)
    }

    fn repeat_answer(
        &self,
        seller: &Seller,
        ping: &Ping,
        request_hash: u64,
        now: i64,
    ) -> Option<PingAnswer> {
        let id = *self.pending_by_request.get(&request_hash)?;
        let p = self.pending.get(&id)?.clone();
        let same = p.seller_id == seller.id && p.ping == *ping;
        // Acquire: pairs with the Release that marks a ping used, so a used
        // ping is never repeated as if it were open.
        (same && now < p.expires_at_ms && p.state.load(Ordering::Acquire) == PING_OPEN)
            .then(|| answer_of(&p, true, None))
    }

    fn hold(&self, pending: Arc<PendingPing>) {
        self.pending_count.fetch_add(1, Ordering::Relaxed);
        self.pending_by_request
            .insert(pending.request_hash, pending.id);
        // Unbounded channel, bounded in practice by `pending_pings_max`
        // (checked before every hold); the receiver lives as long as self.
        let _ = self.expiry_tx.send((pending.expires_at_ms, pending.id));
        self.pending.insert(pending.id, pending);
    }

    /// True while ping `id` is held (open or used, until its memory window
    /// ends): `apply` of its `PingIssued` would change nothing.
    pub fn holds_ping(&self, id: PingId) -> bool {
        self.pending.contains_key(&id)
    }

    /// Drops a ping whose `PingIssued` event could not be journaled, so it
    /// can never be posted.
    pub fn forget_ping(&self, ping_id: PingId) {
        if let Some((_, p)) = self.pending.remove(&ping_id) {
            self.pending_by_request
                .remove_if(&p.request_hash, |_, id| *id == ping_id);
            self.pending_count.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Settles a post of `ping_id` accepting `bid_ids`.
    pub fn post(
        &self,
        seller: &Seller,
        ping_id: PingId,
        bid_ids: &[BidId],
        lead: &Lead,
    ) -> Result<Settlement, EngineError> {
        let now = self.clock.now_ms();
        let pending = self
            .pending
            .get(&ping_id)
            .map(|p| p.clone())
            .ok_or(EngineError::PingNotFound)?;
        if pending.seller_id != seller.id {
            return Err(EngineError::PingNotFound); // never reveal another seller's ping
        }
        // Acquire: see `repeat_answer`.
        if pending.state.load(Ordering::Acquire) != PING_OPEN {
            return Err(EngineError::PingAlreadyUsed);
        }
        if now >= pending.expires_at_ms {
            return Err(EngineError::PingExpired);
        }
        if let Some(field) = mismatch(&pending.ping.attributes, &lead.ping.attributes) {
            return Err(EngineError::PostMismatch { field });
        }
        let mut accepted = Vec::with_capacity(bid_ids.len());
        for b in bid_ids {
            if b.ping != ping_id || usize::from(b.index) >= pending.bids.len() {
                return Err(EngineError::UnknownBid(b.to_string()));
            }
            if !accepted.contains(&b.index) {
                accepted.push(b.index);
            }
        }
        // Exactly one post wins the ping. AcqRel: the winner's later writes
        // (charges) happen-after it took the ping; losers see it taken.
        if pending
            .state
            .compare_exchange(
                PING_OPEN,
                PING_SETTLING,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            return Err(EngineError::PingAlreadyUsed);
        }
        let snap = self.snapshot.load();
        let bids: Vec<(Option<BidId>, u8, PendingBid)> = accepted
            .iter()
            .map(|i| {
                (
                    Some(BidId {
                        ping: ping_id,
                        index: *i,
                    }),
                    *i,
                    pending.bids[usize::from(*i)].clone(),
                )
            })
            .collect();
        match self.settle(&snap, lead, &bids, now) {
            Ok((sales, claim)) => {
                Ok(self.settlement(Some(pending), seller, lead, sales, claim, now))
            }
            Err(e) => {
                // Release: the ping is open again for another attempt.
                pending.state.store(PING_OPEN, Ordering::Release);
                Err(e)
            }
        }
    }

    /// A full lead without a ping: auction and settlement in one call.
    pub fn direct_post(&self, seller: &Seller, lead: &Lead) -> Result<DirectOutcome, EngineError> {
        let now = self.clock.now_ms();
        let snap = self.snapshot.load();
        let seller = snap.seller_by_id(&seller.id).unwrap_or(seller);
        let mut excluded: Vec<u32> = Vec::new();
        let mut last_error = None;
        for _round in 0..DIRECT_POST_ROUNDS_MAX {
            let winners = SCRATCH.with(|s| {
                let mut s = s.borrow_mut();
                s.excluded_campaigns.clear();
                s.excluded_campaigns.extend_from_slice(&excluded);
                run_auction(&snap, &self.settings, seller, &lead.ping, now, &mut s)
                    .map(|()| s.winners.clone())
            });
            let winners = match winners {
                Ok(w) => w,
                Err(reason) => {
                    return Ok(DirectOutcome::Unsold(unsold_reason(
                        last_error.as_ref(),
                        Some(reason),
                    )))
                }
            };
            let bids: Vec<(Option<BidId>, u8, PendingBid)> = winners
                .iter()
                .enumerate()
                .map(|(i, w)| (None, i as u8, pending_bid(&snap, w)))
                .collect();
            match self.settle(&snap, lead, &bids, now) {
                Ok((sales, claim)) => {
                    return Ok(DirectOutcome::Sold(Box::new(
                        self.settlement(None, seller, lead, sales, claim, now),
                    )))
                }
                Err(e @ EngineError::Overloaded(_)) => return Err(e),
                Err(e) => {
                    last_error = Some(e);
                    excluded.extend(winners.iter().map(|w| w.campaign));
                }
            }
        }
        Ok(DirectOutcome::Unsold(unsold_reason(
            last_error.as_ref(),
            None,
        )))
    }

    fn dedupe_key(
        snap: &Snapshot,
        scope: DedupeScope,
        campaign_id: &str,
        buyer_id: &str,
        phone: &str,
    ) -> u64 {
        match scope {
            DedupeScope::Campaign => stable_hash(&("campaign", campaign_id, phone)),
            DedupeScope::Buyer => {
                let account = snap
                    .buyer_by_id(buyer_id)
                    .map(|b| &*snap.buyers[b.account as usize].id)
                    .unwrap_or(buyer_id);
                stable_hash(&("account", account, phone))
            }
        }
    }

    /// Dedupe check-and-insert and exact charges for each bid; all or
    /// nothing per bid. Fails only when no bid could be settled.
    fn settle(
        &self,
        snap: &Snapshot,
        lead: &Lead,
        bids: &[(Option<BidId>, u8, PendingBid)],
        now: i64,
    ) -> Result<(Vec<SaleInProgress>, Option<PhoneClaim>), EngineError> {
        let claim = self.claim_phone(snap, lead, bids, now)?;
        let mut sales = Vec::with_capacity(bids.len());
        let mut duplicates = 0;
        for (bid_id, index, bid) in bids {
            let Some(c) = snap.campaign_by_id(&bid.campaign_id) else {
                continue;
            };
            if !c.active {
                continue;
            }
            let local = campaign_local_time(snap, c, now);
            let mut dedupe = None;
            if c.dedupe_window_ms > 0 {
                if self.dedupe.len() >= self.settings.dedupe_entries_max as usize {
                    self.release_all(&sales);
                    self.release_phone(claim);
                    return Err(EngineError::Overloaded("dedupe entries"));
                }
                let key = Self::dedupe_key(
                    snap,
                    c.dedupe_scope,
                    &c.id,
                    &bid.buyer_id,
                    &lead.contact.phone,
                );
                let expires = now + c.dedupe_window_ms;
                // The shard lock held by `entry` makes check-and-insert atomic.
                match self.dedupe.entry(key) {
                    Entry::Occupied(e) if *e.get() > now => {
                        duplicates += 1;
                        continue;
                    }
                    Entry::Occupied(mut e) => {
                        e.insert(expires);
                    }
                    Entry::Vacant(e) => {
                        e.insert(expires);
                    }
                }
                dedupe = Some((key, expires));
            }
            match c
                .counters
                .try_charge(c.budget_cents, &c.limits, bid.buyer_price_cents, &local)
            {
                Ok(charge) => sales.push((
                    *index,
                    bid.clone(),
                    SettledSale {
                        bid_id: *bid_id,
                        buyer_name: bid.buyer_name.clone(),
                        buyer_price_cents: bid.buyer_price_cents,
                        seller_price_cents: bid.seller_price_cents,
                        counters: c.counters.clone(),
                        charge,
                        dedupe_key: dedupe.map(|d| d.0),
                    },
                    dedupe.map_or(0, |d| d.1),
                )),
                Err(_) => {
                    if let Some((key, _)) = dedupe {
                        self.dedupe.remove(&key);
                    }
                }
            }
        }
        if sales.is_empty() {
            self.release_phone(claim);
            return Err(if duplicates > 0 && duplicates == bids.len() {
                EngineError::DuplicateLead
            } else {
                EngineError::BidUnavailable
            });
        }
        Ok((sales, claim))
    }

    /// Atomically checks and records the phone's exclusivity for this sale:
    /// refused (`DuplicateLead`) when an exclusive sale of the phone is live,
    /// or when this sale is exclusive and a shared sale of it is live. The
    /// hold lasts the longest dedupe window of the accepted campaigns.
    fn claim_phone(
        &self,
        snap: &Snapshot,
        lead: &Lead,
        bids: &[(Option<BidId>, u8, PendingBid)],
        now: i64,
    ) -> Result<Option<PhoneClaim>, EngineError> {
        let Some((_, _, first)) = bids.first() else {
            return Ok(None);
        };
        let window = bids
            .iter()
            .filter_map(|(_, _, b)| snap.campaign_by_id(&b.campaign_id))
            .map(|c| c.dedupe_window_ms)
            .max()
            .unwrap_or(0);
        if window == 0 {
            return Ok(None);
        }
        if self.phone_sales.len() >= self.settings.dedupe_entries_max as usize {
            return Err(EngineError::Overloaded("dedupe entries"));
        }
        let key = phone_sale_key(&lead.contact.phone);
        let until = now + window;
        // The shard lock held by `entry` makes check-and-set atomic.
        let mut entry = self.phone_sales.entry(key).or_default();
        let previous = *entry;
        let exclusive = first.sale_type == SaleType::Exclusive;
        if previous.exclusive_until_ms > now || (exclusive && previous.shared_until_ms > now) {
            return Err(EngineError::DuplicateLead);
        }
        if exclusive {
            entry.exclusive_until_ms = until;
        } else {
            entry.shared_until_ms = entry.shared_until_ms.max(until);
        }
        Ok(Some(PhoneClaim {
            key,
            previous,
            set: *entry,
        }))
    }

    fn release_phone(&self, claim: Option<PhoneClaim>) {
        if let Some(c) = claim {
            if let Some(mut e) = self.phone_sales.get_mut(&c.key) {
                // Only if nobody changed it since: a later claim stands.
                if *e == c.set {
                    *e = c.previous;
                }
            }
        }
    }

    fn release_all(&self, sales: &[SaleInProgress]) {
        for (_, _, s, _) in sales {
            s.counters.refund(&s.charge);
            if let Some(k) = s.dedupe_key {
                self.dedupe.remove(&k);
            }
        }
    }

    fn settlement(
        &self,
        ping: Option<Arc<PendingPing>>,
        seller: &Seller,
        lead: &Lead,
        sales: Vec<SaleInProgress>,
        phone_claim: Option<PhoneClaim>,
        now: i64,
    ) -> Settlement {
        let lead_id = LeadId(self.next_id());
        let records = sales
            .iter()
            .map(|(index, bid, s, dedupe_expires)| SaleRecord {
                bid_index: *index,
                bid: bid_record(bid),
                dedupe_key: s.dedupe_key.unwrap_or(0),
                dedupe_expires_at_ms: *dedupe_expires,
            })
            .collect();
        let event = Event::LeadSold(LeadSold {
            lead_id,
            ping_id: ping.as_ref().map(|p| p.id),
            seller_id: seller.id.to_string(),
            sold_at_ms: now,
            lead: lead.clone(),
            sales: records,
        });
        Settlement {
            lead_id,
            sales: sales.into_iter().map(|s| s.2).collect(),
            event,
            ping,
            phone_claim,
        }
    }

    /// The settlement's event is durable: the sale stands.
    pub fn commit(&self, settlement: &Settlement) {
        if let Some(p) = &settlement.ping {
            // Release: pairs with the Acquire loads in `post` and `repeat_answer`.
            p.state.store(PING_USED, Ordering::Release);
        }
        if let Event::LeadSold(sold) = &settlement.event {
            self.recent_leads.insert(sold.lead_id, sold.sold_at_ms);
            self.note_sale_for_routing(sold);
        }
        self.count_sale(
            settlement
                .sales
                .iter()
                .map(|s| (s.buyer_price_cents, s.seller_price_cents)),
        );
    }

    fn count_sale(&self, sales: impl Iterator<Item = (u64, u64)>) {
        self.stats.leads_sold.fetch_add(1, Ordering::Relaxed);
        for (buyer, seller) in sales {
            self.stats.sales.fetch_add(1, Ordering::Relaxed);
            self.stats.spend_cents.fetch_add(buyer, Ordering::Relaxed);
            self.stats.payout_cents.fetch_add(seller, Ordering::Relaxed);
        }
    }

    /// The settlement's event could not be made durable: undo everything.
    pub fn rollback(&self, settlement: &Settlement) {
        for s in &settlement.sales {
            s.counters.refund(&s.charge);
            if let Some(k) = s.dedupe_key {
                self.dedupe.remove(&k);
            }
        }
        self.release_phone(settlement.phone_claim);
        if let Some(p) = &settlement.ping {
            // Release: see `post`.
            p.state.store(PING_OPEN, Ordering::Release);
        }
    }

    /// Applies one journaled event (replay on start, and the snapshotter).
    ///
    /// Idempotent by event id: a `PingIssued` whose ping is held and a
    /// `LeadSold` whose lead was already applied or committed change
    /// nothing, so a journal that holds an event twice (a producer retry)
    /// or a tail that overlaps a snapshot replays exactly. Returns false
    /// when the event changed nothing (a duplicate, or a ping already past
    /// its memory window).
    pub fn apply(&self, event: &Event) -> bool {
        let now = self.clock.now_ms();
        match event {
            // Not engine state: the admin API applies its own records.
            Event::Admin(_) => false,
            Event::Routing(r) => self.router.apply(r),
            Event::Market(m) => {
                match self.recent_market.entry(Box::from(m.id.as_str())) {
                    Entry::Occupied(_) => return false,
                    Entry::Vacant(v) => {
                        v.insert(m.at_ms);
                    }
                }
                match &m.change {
                    MarketChange::Refund {
                        campaign_id, cents, ..
                    } => {
                        self.counters.get_or_create(campaign_id).credit(*cents);
                        // Relaxed: statistics; see `EngineStats`.
                        self.stats
                            .refunded_cents
                            .fetch_add(*cents, Ordering::Relaxed);
                        true
                    }
                    routing if routing.is_routing() => self.router.put(routing),
                    put => {
                        let _writer = self.market_write.lock();
                        let mut market = (*self.market.load_full()).clone();
                        put_record(&mut market, put);
                        // The admin API validated the change against this
                        // same state before journaling it, so a failure is
                        // a journal written by a different build: skipped
                        // alike on every replay.
                        self.swap_marketplace(market).is_ok()
                    }
                }
            }
            Event::PingIssued(p) => {
                if p.expires_at_ms + self.settings.expired_ping_memory_ms as i64 <= now
                    || self.pending.contains_key(&p.ping_id)
                {
                    return false;
                }
                let snap = self.snapshot.load();
                let bids = p
                    .bids
                    .iter()
                    .map(|b| PendingBid {
                        campaign_id: Arc::from(b.campaign_id.as_str()),
                        buyer_id: Arc::from(b.buyer_id.as_str()),
                        buyer_name: snap
                            .buyer_by_id(&b.buyer_id)
                            .map_or_else(|| Arc::from(b.buyer_id.as_str()), |x| x.name.clone()),
                        sale_type: b.sale_type,
                        buyer_price_cents: b.buyer_price_cents,
                        seller_price_cents: b.seller_price_cents,
                    })
                    .collect();
                let state = if self.sold_before_issue.remove(&p.ping_id).is_some() {
                    PING_USED
                } else {
                    PING_OPEN
                };
                self.hold(Arc::new(PendingPing {
                    id: p.ping_id,
                    seller_id: Arc::from(p.seller_id.as_str()),
                    issued_at_ms: p.issued_at_ms,
                    expires_at_ms: p.expires_at_ms,
                    request_hash: p.request_hash,
                    ping: p.ping.clone(),
                    bids,
                    state: AtomicU8::new(state),
                }));
                true
            }
            Event::LeadSold(s) => {
                match self.recent_leads.entry(s.lead_id) {
                    Entry::Occupied(_) => return false,
                    Entry::Vacant(v) => {
                        v.insert(s.sold_at_ms);
                    }
                }
                let snap = self.snapshot.load();
                for sale in &s.sales {
                    let at = match snap.campaign_by_id(&sale.bid.campaign_id) {
                        Some(c) => campaign_local_time(&snap, c, s.sold_at_ms),
                        None => LocalTime::at(chrono_tz::UTC, s.sold_at_ms),
                    };
                    self.counters
                        .get_or_create(&sale.bid.campaign_id)
                        .replay_charge(sale.bid.buyer_price_cents, &at);
                    if sale.dedupe_key != 0 && sale.dedupe_expires_at_ms > now {
                        let mut e = self
                            .dedupe
                            .entry(sale.dedupe_key)
                            .or_insert(sale.dedupe_expires_at_ms);
                        *e = (*e).max(sale.dedupe_expires_at_ms);
                    }
                }
                let until = s
                    .sales
                    .iter()
                    .map(|x| x.dedupe_expires_at_ms)
                    .max()
                    .unwrap_or(0);
                if until > now {
                    let mut e = self
                        .phone_sales
                        .entry(phone_sale_key(&s.lead.contact.phone))
                        .or_default();
                    match s.sales.first().map(|x| x.bid.sale_type) {
                        Some(SaleType::Exclusive) => {
                            e.exclusive_until_ms = e.exclusive_until_ms.max(until)
                        }
                        _ => e.shared_until_ms = e.shared_until_ms.max(until),
                    }
                }
                if let Some(id) = s.ping_id {
                    match self.pending.get(&id) {
                        Some(p) => p.state.store(PING_USED, Ordering::Release),
                        None => {
                            self.sold_before_issue.insert(id, s.sold_at_ms);
                        }
                    }
                }
                self.count_sale(
                    s.sales
                        .iter()
                        .map(|x| (x.bid.buyer_price_cents, x.bid.seller_price_cents)),
                );
                self.note_sale_for_routing(s);
                true
            }
        }
    }

    /// Forgets pings past their lock plus the memory window, and (once a
    /// minute) lapsed dedupe entries. Call periodically from the control
    /// plane. Bounded: handles at most `max_items` pings per call.
    pub fn sweep(&self, max_items: usize) -> usize {
        let now = self.clock.now_ms();
        let memory = self.settings.expired_ping_memory_ms as i64;
        let mut removed = 0;
        let mut next = self.expiry_next.lock();
        while removed < max_items {
            let Some((expires, id)) = next.take().or_else(|| self.expiry_rx.try_recv().ok()) else {
                break;
            };
            if expires + memory > now {
                *next = Some((expires, id));
                break;
            }
            self.forget_ping(id);
            removed += 1;
        }
        drop(next);
        let horizon = now - self.settings.price_lock_ms as i64 - memory;
        self.sold_before_issue
            .retain(|_, sold_at| *sold_at > horizon);
        self.recent_leads.retain(|_, sold_at| *sold_at > horizon);
        self.recent_market.retain(|_, at| *at > horizon);
        self.router.sweep(horizon);
        // Relaxed: only this control-plane task reads and writes it.
        if now - self.last_dedupe_sweep_ms.load(Ordering::Relaxed) >= 60_000 {
            self.last_dedupe_sweep_ms.store(now, Ordering::Relaxed);
            self.dedupe.retain(|_, expires| *expires > now);
            self.phone_sales
                .retain(|_, p| p.exclusive_until_ms.max(p.shared_until_ms) > now);
        }
        removed
    }

    /// The whole state as a canonical image (see [`crate::image`]).
    ///
    /// Exact when no settlement is in flight: on an engine that only
    /// replays (the snapshotter's), or after the journal has been flushed.
    /// On a serving engine it is a fuzzy copy: a ping being settled is
    /// imaged as open and its charges as made.
    pub fn image(&self) -> EngineImage {
        let mut counters = Vec::new();
        self.counters.for_each(|id, c| {
            let (spent_cents, sold, periods) = c.raw();
            if spent_cents != 0 || sold != 0 || periods.iter().any(|w| *w != 0) {
                counters.push(CounterImage {
                    campaign_id: id.to_string(),
                    spent_cents,
                    sold,
                    periods,
                });
            }
        });
        counters.sort_unstable_by(|a, b| a.campaign_id.cmp(&b.campaign_id));
        let mut pending: Vec<PendingImage> = self
            .pending
            .iter()
            .map(|e| {
                let p = e.value();
                PendingImage {
                    id: p.id.0,
                    seller_id: p.seller_id.to_string(),
                    issued_at_ms: p.issued_at_ms,
                    expires_at_ms: p.expires_at_ms,
                    request_hash: p.request_hash,
                    ping: p.ping.clone(),
                    bids: p
                        .bids
                        .iter()
                        .map(|b| BidImage {
                            campaign_id: b.campaign_id.to_string(),
                            buyer_id: b.buyer_id.to_string(),
                            buyer_name: b.buyer_name.to_string(),
                            sale_type: b.sale_type,
                            buyer_price_cents: b.buyer_price_cents,
                            seller_price_cents: b.seller_price_cents,
                        })
                        .collect(),
                    // Acquire: pairs with the Release that marks a ping used.
                    used: p.state.load(Ordering::Acquire) == PING_USED,
                }
            })
            .collect();
        pending.sort_unstable_by_key(|p| (p.expires_at_ms, p.id));
        let mut dedupe: Vec<(u64, i64)> =
            self.dedupe.iter().map(|e| (*e.key(), *e.value())).collect();
        dedupe.sort_unstable();
        let mut phone_sales: Vec<PhoneImage> = self
            .phone_sales
            .iter()
            .map(|e| PhoneImage {
                key: *e.key(),
                exclusive_until_ms: e.value().exclusive_until_ms,
                shared_until_ms: e.value().shared_until_ms,
            })
            .collect();
        phone_sales.sort_unstable_by_key(|p| p.key);
        let mut sold_before_issue: Vec<(u128, i64)> = self
            .sold_before_issue
            .iter()
            .map(|e| (e.key().0, *e.value()))
            .collect();
        sold_before_issue.sort_unstable();
        let mut recent_leads: Vec<(u128, i64)> = self
            .recent_leads
            .iter()
            .map(|e| (e.key().0, *e.value()))
            .collect();
        recent_leads.sort_unstable();
        let mut recent_market: Vec<(String, i64)> = self
            .recent_market
            .iter()
            .map(|e| (e.key().to_string(), *e.value()))
            .collect();
        recent_market.sort_unstable();
        // Relaxed: statistics; see `EngineStats`.
        let totals = SaleTotals {
            leads_sold: self.stats.leads_sold.load(Ordering::Relaxed),
            sales: self.stats.sales.load(Ordering::Relaxed),
            spend_cents: self.stats.spend_cents.load(Ordering::Relaxed),
            payout_cents: self.stats.payout_cents.load(Ordering::Relaxed),
            refunded_cents: self.stats.refunded_cents.load(Ordering::Relaxed),
        };
        EngineImage {
            counters,
            pending,
            dedupe,
            phone_sales,
            sold_before_issue,
            recent_leads,
            recent_market,
            totals,
        }
    }

    /// Loads a state image into a fresh engine (restore, before serving and
    /// before the journal's tail is replayed). Pings past their memory
    /// window and lapsed dedupe and exclusivity entries are left out, as
    /// replay leaves them out, so restore-from-image and full replay agree.
    pub fn restore_image(&self, image: &EngineImage) {
        let now = self.clock.now_ms();
        let memory = self.settings.expired_ping_memory_ms as i64;
        for c in &image.counters {
            self.counters.get_or_create(&c.campaign_id).restore_raw(
                c.spent_cents,
                c.sold,
                &c.periods,
            );
        }
        // The image lists pings by expiry, the order the sweeper expects.
        for p in image
            .pending
            .iter()
            .filter(|p| p.expires_at_ms + memory > now)
        {
            let state = if p.used { PING_USED } else { PING_OPEN };
            self.hold(Arc::new(PendingPing {
                id: PingId(p.id),
                seller_id: Arc::from(p.seller_id.as_str()),
                issued_at_ms: p.issued_at_ms,
                expires_at_ms: p.expires_at_ms,
                request_hash: p.request_hash,
                ping: p.ping.clone(),
                bids: p
                    .bids
                    .iter()
                    .map(|b| PendingBid {
                        campaign_id: Arc::from(b.campaign_id.as_str()),
                        buyer_id: Arc::from(b.buyer_id.as_str()),
                        buyer_name: Arc::from(b.buyer_name.as_str()),
                        sale_type: b.sale_type,
                        buyer_price_cents: b.buyer_price_cents,
                        seller_price_cents: b.seller_price_cents,
                    })
                    .collect(),
                state: AtomicU8::new(state),
            }));
        }
        // Lapsed entries are left out, as replay leaves them out.
        for (key, expires) in image.dedupe.iter().filter(|(_, e)| *e > now) {
            self.dedupe.insert(*key, *expires);
        }
        let live = |p: &&PhoneImage| p.exclusive_until_ms.max(p.shared_until_ms) > now;
        for p in image.phone_sales.iter().filter(live) {
            self.phone_sales.insert(
                p.key,
                PhoneSales {
                    exclusive_until_ms: p.exclusive_until_ms,
                    shared_until_ms: p.shared_until_ms,
                },
            );
        }
        for (id, at) in &image.sold_before_issue {
            self.sold_before_issue.insert(PingId(*id), *at);
        }
        for (id, at) in &image.recent_leads {
            self.recent_leads.insert(LeadId(*id), *at);
        }
        for (id, at) in &image.recent_market {
            self.recent_market.insert(Box::from(id.as_str()), *at);
        }
        // Relaxed: statistics, written before serving starts.
        let t = &image.totals;
        self.stats.leads_sold.store(t.leads_sold, Ordering::Relaxed);
        self.stats.sales.store(t.sales, Ordering::Relaxed);
        self.stats
            .spend_cents
            .store(t.spend_cents, Ordering::Relaxed);
        self.stats
            .payout_cents
            .store(t.payout_cents, Ordering::Relaxed);
        self.stats
            .refunded_cents
            .store(t.refunded_cents, Ordering::Relaxed);
    }

    /// A stable 64-bit digest of the whole state ([`Engine::image`]): equal
    /// states, equal digests, across processes and builds. For restore
    /// checks and tests.
    pub fn state_digest(&self) -> u64 {
        stable_hash(&(self.image(), self.router.image()))
    }

    /// Counter reading of a campaign now (spend, sold, cap use).
    pub fn campaign_counters(&self, campaign_id: &str) -> Option<CounterReading> {
        let snap = self.snapshot.load();
        let c = snap.campaign_by_id(campaign_id)?;
        Some(
            c.counters
                .read(&campaign_local_time(&snap, c, self.clock.now_ms())),
        )
    }
}

/// Puts the record a change carries into `market`, replacing the one with
/// its id (a new campaign keeps the marketplace's order: appended).
fn put_record(market: &mut MarketplaceSpec, change: &MarketChange) {
    fn put<T: Clone>(list: &mut Vec<T>, record: &T, id: impl Fn(&T) -> &str) {
        match list.iter_mut().find(|r| id(r) == id(record)) {
            Some(slot) => *slot = record.clone(),
            None => list.push(record.clone()),
        }
    }
    match change {
        MarketChange::PutSeller(s) => put(&mut market.sellers, s, |r| &r.id),
        MarketChange::PutBuyer(b) => put(&mut market.buyers, b, |r| &r.id),
        MarketChange::PutCampaign(c) => put(&mut market.campaigns, &**c, |r| &r.id),
        MarketChange::Refund { .. }
        | MarketChange::PutAgent(_)
        | MarketChange::PutTeam(_)
        | MarketChange::PutAgency(_) => {}
    }
}

/// Stable key of a consumer phone for exchange-level exclusivity.
fn phone_sale_key(phone: &str) -> u64 {
    stable_hash(&("phone-sale", phone))
}

/// The bid an auction winner makes, as held under a price lock or settled.
fn pending_bid(snap: &Snapshot, w: &Winner) -> PendingBid {
    let c = &snap.campaigns[w.campaign as usize];
    let buyer = &snap.buyers[c.buyer as usize];
    PendingBid {
        campaign_id: c.id.clone(),
        buyer_id: buyer.id.clone(),
        buyer_name: buyer.name.clone(),
        sale_type: w.sale_type,
        buyer_price_cents: w.buyer_price_cents,
        seller_price_cents: w.seller_price_cents,
    }
}

/// Why a direct post did not sell: a refusal seen in an earlier round wins
/// over the auction's own no-bid reason (the auction only ran out of bids
/// because those were refused).
fn unsold_reason(last_error: Option<&EngineError>, no_bid: Option<NoBidReason>) -> &'static str {
    match (last_error, no_bid) {
        (Some(EngineError::DuplicateLead), _) => "duplicate_lead",
        (None, Some(reason)) => reason.as_str(),
        _ => "bid_unavailable",
    }
}

fn bid_record(b: &PendingBid) -> BidRecord {
    BidRecord {
        campaign_id: b.campaign_id.to_string(),
        buyer_id: b.buyer_id.to_string(),
        sale_type: b.sale_type,
        buyer_price_cents: b.buyer_price_cents,
        seller_price_cents: b.seller_price_cents,
    }
}

fn answer_of(p: &PendingPing, repeated: bool, event: Option<Event>) -> PingAnswer {
    PingAnswer {
        ping_id: p.id,
        expires_at_ms: p.expires_at_ms,
        bids: p
            .bids
            .iter()
            .enumerate()
            .map(|(i, b)| AnsweredBid {
                bid_id: BidId {
                    ping: p.id,
                    index: i as u8,
                },
                buyer_name: b.buyer_name.clone(),
                price_cents: b.seller_price_cents,
                sale_type: b.sale_type,
            })
            .collect(),
        no_bid_reason: None,
        repeated,
        event,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::lead::{Consent, SaleTypeRequest};
    use crate::spec::{CapLimit, Pricing, ScheduleWindow, Weekday};
    use crate::testing::{campaign, lead_with_phone, market, ping};

    const MONDAY_NOON_NY_MS: i64 = 1_795_392_000_000 + 17 * 3_600_000; // 2026-11-23T17:00Z

    fn engine_with(settings: EngineSettings, m: MarketplaceSpec) -> (Engine, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(MONDAY_NOON_NY_MS));
        (Engine::new(settings, &m, clock.clone()).unwrap(), clock)
    }

    fn engine(m: MarketplaceSpec) -> (Engine, Arc<ManualClock>) {
        engine_with(EngineSettings::default(), m)
    }

    fn sell(e: &Engine, phone: &str) -> Result<Settlement, EngineError> {
        let s = e.seller_by_id("s1").unwrap();
        let answer = e.ping(&s, &ping()).unwrap();
        let ids: Vec<_> = answer.bids.iter().map(|b| b.bid_id).collect();
        let settlement = e.post(&s, answer.ping_id, &ids, &lead_with_phone(phone))?;
        e.commit(&settlement);
        Ok(settlement)
    }

    fn market_record(id: &str, change: MarketChange) -> Event {
        Event::Market(crate::event::MarketRecord {
            id: id.into(),
            at_ms: MONDAY_NOON_NY_MS,
            change,
            note: Vec::new(),
        })
    }

    #[test]
    fn market_changes_apply_live_once_and_replay_to_the_same_state() {
        let (e, _) = engine(market(&["a"], vec![]));
        let s = e.seller_by_id("s1").unwrap();
        assert!(e.ping(&s, &ping()).unwrap().bids.is_empty());
        let mut c = campaign("c1", "a", SaleType::Exclusive, 1500);
        c.budget_cents = 3000;
        let put = market_record("m1", MarketChange::PutCampaign(Box::new(c.clone())));
        assert_eq!(
            e.preview_market_change(&MarketChange::PutCampaign(Box::new(c.clone())))
                .map(|m| m.campaigns.len()),
            Ok(1)
        );
        assert!(e.apply(&put));
        assert!(!e.apply(&put), "a record applies once");
        assert_eq!(
            e.ping(&s, &ping()).unwrap().bids.len(),
            1,
            "the next ping sees the new campaign"
        );
        let first = sell(&e, "5550000001").unwrap();
        sell(&e, "5550000002").unwrap();
        assert_eq!(
            e.campaign_counters("c1").unwrap().spent_cents,
            3000,
            "the budget is spent"
        );
        assert!(
            e.ping(&s, &ping()).unwrap().bids.is_empty(),
            "no budget left: no bid"
        );
        let refund = market_record(
            "m2",
            MarketChange::Refund {
                campaign_id: "c1".into(),
                lead_id: first.lead_id,
                cents: 1500,
            },
        );
        assert!(e.apply(&refund));
        assert!(!e.apply(&refund), "a refund applies once");
        assert_eq!(e.campaign_counters("c1").unwrap().spent_cents, 1500);
        assert_eq!(e.stats.refunded_cents.load(Ordering::Relaxed), 1500);
        assert_eq!(
            e.ping(&s, &ping()).unwrap().bids.len(),
            1,
            "the refund made room"
        );
        c.status = crate::spec::CampaignStatus::Paused;
        assert!(e.apply(&market_record(
            "m3",
            MarketChange::PutCampaign(Box::new(c.clone()))
        )));
        let mut fresh = ping();
        fresh.attributes.age = Some(44); // not a repeat of an answered ping
        assert!(
            e.ping(&s, &fresh).unwrap().bids.is_empty(),
            "paused: no bid"
        );
        assert_eq!(
            e.marketplace().campaigns[0].status,
            crate::spec::CampaignStatus::Paused
        );
        // An unknown buyer is refused by the preview, and skipped by apply.
        let mut orphan = campaign("c2", "nobody", SaleType::Exclusive, 100);
        orphan.budget_cents = 1;
        let bad = MarketChange::PutCampaign(Box::new(orphan));
        assert_eq!(
            e.preview_market_change(&bad).unwrap_err().path,
            "campaigns[1].buyer_id"
        );
        assert!(!e.apply(&market_record("m4", bad)));
        assert_eq!(e.marketplace().campaigns.len(), 1);

        // The image carries the refund and the records seen.
        let image = e.image();
        assert_eq!(image.totals.refunded_cents, 1500);
        assert_eq!(image.recent_market.len(), 4);
        let (copy, _) = engine(market(&["a"], vec![]));
        copy.replace_marketplace(&e.marketplace()).unwrap();
        copy.restore_image(&image);
        assert_eq!(copy.state_digest(), e.state_digest());
        assert!(!copy.apply(&refund), "the restored engine knows the refund");
    }

    #[test]
    fn exclusive_beats_shared_only_when_it_pays_more() {
        let m = market(
            &["a", "b", "c"],
            vec![
                campaign("ex", "a", SaleType::Exclusive, 3000),
                campaign("sh1", "b", SaleType::Shared, 1200),
                campaign("sh2", "c", SaleType::Shared, 1000),
            ],
        );
        let (e, _) = engine(m.clone());
        let s = e.seller_by_id("s1").unwrap();
        let a = e.ping(&s, &ping()).unwrap();
        assert_eq!(a.bids.len(), 1);
        assert_eq!(
            (a.bids[0].price_cents, a.bids[0].sale_type),
            (3000, SaleType::Exclusive)
        );

        let mut m2 = m.clone();
        m2.campaigns[0].price_cents = 2100; // below 1200 + 1000
        let (e, _) = engine(m2);
        let a = e.ping(&s, &ping()).unwrap();
        let prices: Vec<_> = a
            .bids
            .iter()
            .map(|b| (b.price_cents, b.sale_type))
            .collect();
        assert_eq!(
            prices,
            vec![(1200, SaleType::Shared), (1000, SaleType::Shared)]
        );

        let mut p = ping();
        p.sale_type = SaleTypeRequest::Exclusive;
        let a = e.ping(&s, &p).unwrap();
        assert_eq!(a.bids.len(), 1);
        assert_eq!(a.bids[0].price_cents, 2100);
    }

    #[test]
    fn one_account_buys_once_and_shared_is_capped_at_n() {
        let mut m = market(
            &["parent", "child", "x", "y", "z", "w"],
            ["parent", "child", "x", "y", "z", "w"]
                .iter()
                .enumerate()
                .map(|(i, b)| campaign(&format!("c{i}"), b, SaleType::Shared, 1000 + i as u64))
                .collect(),
        );
        m.buyers[1].parent_id = Some("parent".into());
        let settings = EngineSettings {
            max_shared_buyers: 3,
            ..Default::default()
        };
        let (e, _) = engine_with(settings, m);
        let s = e.seller_by_id("s1").unwrap();
        let a = e.ping(&s, &ping()).unwrap();
        let prices: Vec<_> = a.bids.iter().map(|b| b.price_cents).collect();
        // w(1005) z(1004) y(1003): three buyers, highest first.
        assert_eq!(prices, vec![1005, 1004, 1003]);
        // With everyone else out, parent and child are one account: one bid.
        let settings = EngineSettings {
            max_shared_buyers: 8,
            ..Default::default()
        };
        let mut m = market(
            &["parent", "child"],
            vec![
                campaign("p", "parent", SaleType::Shared, 900),
                campaign("c", "child", SaleType::Shared, 950),
            ],
        );
        m.buyers[1].parent_id = Some("parent".into());
        let (e, _) = engine_with(settings, m);
        let a = e.ping(&s, &ping()).unwrap();
        assert_eq!(a.bids.len(), 1);
        assert_eq!(a.bids[0].price_cents, 950);
    }

    #[test]
    fn ties_break_by_priority_then_campaign_id() {
        let mut m = market(
            &["a", "b", "c"],
            vec![
                campaign("zz", "a", SaleType::Exclusive, 1000),
                campaign("aa", "b", SaleType::Exclusive, 1000),
                campaign("mm", "c", SaleType::Exclusive, 1000),
            ],
        );
        let (e, _) = engine(m.clone());
        let s = e.seller_by_id("s1").unwrap();
        assert_eq!(&*e.ping(&s, &ping()).unwrap().bids[0].buyer_name, "Buyer b");
        m.campaigns[2].priority = 5;
        let (e, _) = engine(m);
        assert_eq!(&*e.ping(&s, &ping()).unwrap().bids[0].buyer_name, "Buyer c");
    }

    #[test]
    fn second_price_floor_and_margin() {
        let mut m = market(
            &["a", "b"],
            vec![
                campaign("a1", "a", SaleType::Exclusive, 5000),
                campaign("b1", "b", SaleType::Exclusive, 3000),
            ],
        );
        m.sellers[0].margin_bps = 1000; // 10 %
        m.sellers[0].floor_cents = 1000;
        let settings = EngineSettings {
            pricing: Pricing::SecondPrice,
            ..Default::default()
        };
        let (e, _) = engine_with(settings, m.clone());
        let s = e.seller_by_id("s1").unwrap();
        let a = e.ping(&s, &ping()).unwrap();
        // Buyer pays 3001, seller gets 90 % rounded down.
        assert_eq!(a.bids[0].price_cents, 3001 * 9 / 10);
        let ids = vec![a.bids[0].bid_id];
        let st = e
            .post(&s, a.ping_id, &ids, &lead_with_phone("2125550123"))
            .unwrap();
        assert_eq!(st.sales[0].buyer_price_cents, 3001);
        e.commit(&st);
        assert_eq!(e.campaign_counters("a1").unwrap().spent_cents, 3001);

        // Floor: payout 90 % of 1000 = 900 < 1000 drops the bid.
        m.campaigns = vec![campaign("low", "a", SaleType::Exclusive, 1000)];
        let (e, _) = engine(m);
        let a = e.ping(&s, &ping()).unwrap();
        assert!(a.bids.is_empty());
        assert_eq!(a.no_bid_reason, Some(NoBidReason::BelowFloor));
    }

    #[test]
    fn no_bid_reason_is_the_most_specific() {
        let mut c = campaign("c", "a", SaleType::Exclusive, 1000);
        c.require_trustedform = true;
        let (e, _) = engine(market(&["a"], vec![c.clone()]));
        let s = e.seller_by_id("s1").unwrap();
        assert_eq!(
            e.ping(&s, &ping()).unwrap().no_bid_reason,
            Some(NoBidReason::ConsentRequired)
        );
        let mut p = ping();
        p.consent = Some(Consent {
            trustedform_cert_url: Some("https://cert.trustedform.com/abc".into()),
            ..Default::default()
        });
        assert!(e.ping(&s, &p).unwrap().no_bid_reason.is_none());

        c.require_trustedform = false;
        c.schedule = vec![ScheduleWindow {
            days: vec![Weekday::Sat, Weekday::Sun],
            from_hour: 9,
            to_hour: 17,
        }];
        let (e, _) = engine(market(&["a"], vec![c.clone()]));
        assert_eq!(
            e.ping(&s, &ping()).unwrap().no_bid_reason,
            Some(NoBidReason::OutsideSchedule)
        );

        c.schedule = vec![ScheduleWindow {
            days: vec![Weekday::Mon],
            from_hour: 12,
            to_hour: 13,
        }];
        let (e, clock) = engine(market(&["a"], vec![c.clone()]));
        assert!(
            e.ping(&s, &ping()).unwrap().no_bid_reason.is_none(),
            "Monday 12:00 in New York is open"
        );
        clock.advance_ms(3_600_000);
        assert_eq!(
            e.ping(&s, &ping()).unwrap().no_bid_reason,
            Some(NoBidReason::OutsideSchedule)
        );

        c.schedule.clear();
        c.budget_cents = 999;
        let (e, _) = engine(market(&["a"], vec![c.clone()]));
        assert_eq!(
            e.ping(&s, &ping()).unwrap().no_bid_reason,
            Some(NoBidReason::BudgetExhausted)
        );

        c.filters.states = vec![crate::lead::UsState::parse("TX").unwrap()];
        let (e, _) = engine(market(&["a"], vec![c]));
        assert_eq!(
            e.ping(&s, &ping()).unwrap().no_bid_reason,
            Some(NoBidReason::NoEligibleBuyers)
        );
    }

    #[test]
    fn repeated_ping_gets_the_same_answer_within_the_lock() {
        let (e, clock) = engine(market(
            &["a"],
            vec![campaign("c", "a", SaleType::Exclusive, 1000)],
        ));
        let s = e.seller_by_id("s1").unwrap();
        let first = e.ping(&s, &ping()).unwrap();
        assert!(first.event.is_some());
        let again = e.ping(&s, &ping()).unwrap();
        assert!(again.repeated && again.event.is_none());
        assert_eq!(again.ping_id, first.ping_id);
        assert_eq!(again.bids[0].bid_id, first.bids[0].bid_id);
        clock.advance_ms(60_000);
        let later = e.ping(&s, &ping()).unwrap();
        assert_ne!(later.ping_id, first.ping_id, "a new lock after expiry");
    }

    #[test]
    fn post_lifecycle_errors() {
        let (e, clock) = engine(market(
            &["a"],
            vec![campaign("c", "a", SaleType::Exclusive, 1000)],
        ));
        let s = e.seller_by_id("s1").unwrap();
        let a = e.ping(&s, &ping()).unwrap();
        let ids = vec![a.bids[0].bid_id];
        let mut other = lead_with_phone("2125550123");
        other.ping.attributes.age = Some(35);
        assert_eq!(
            e.post(&s, a.ping_id, &ids, &other).unwrap_err(),
            EngineError::PostMismatch { field: "age" }
        );
        let bogus = BidId {
            ping: a.ping_id,
            index: 5,
        };
        assert!(matches!(
            e.post(&s, a.ping_id, &[bogus], &lead_with_phone("2125550123")),
            Err(EngineError::UnknownBid(_))
        ));
        assert_eq!(
            e.post(&s, PingId(7), &ids, &lead_with_phone("2125550123"))
                .unwrap_err(),
            EngineError::PingNotFound
        );
        let st = e
            .post(&s, a.ping_id, &ids, &lead_with_phone("2125550123"))
            .unwrap();
        // While the first post is settling, a second one is refused.
        assert_eq!(
            e.post(&s, a.ping_id, &ids, &lead_with_phone("2125550123"))
                .unwrap_err(),
            EngineError::PingAlreadyUsed
        );
        e.commit(&st);
        assert_eq!(
            e.post(&s, a.ping_id, &ids, &lead_with_phone("2125550123"))
                .unwrap_err(),
            EngineError::PingAlreadyUsed
        );

        let b = e.ping(&s, &ping()).unwrap();
        clock.advance_ms(60_000);
        assert_eq!(
            e.post(
                &s,
                b.ping_id,
                &[b.bids[0].bid_id],
                &lead_with_phone("3125550123")
            )
            .unwrap_err(),
            EngineError::PingExpired
        );
        clock.advance_ms(600_000);
        e.sweep(1000);
        assert_eq!(
            e.post(
                &s,
                b.ping_id,
                &[b.bids[0].bid_id],
                &lead_with_phone("3125550123")
            )
            .unwrap_err(),
            EngineError::PingNotFound
        );
    }

    #[test]
    fn rollback_restores_money_dedupe_and_the_ping() {
        let (e, _) = engine(market(
            &["a"],
            vec![campaign("c", "a", SaleType::Exclusive, 1000)],
        ));
        let s = e.seller_by_id("s1").unwrap();
        let a = e.ping(&s, &ping()).unwrap();
        let ids = vec![a.bids[0].bid_id];
        let st = e
            .post(&s, a.ping_id, &ids, &lead_with_phone("2125550123"))
            .unwrap();
        assert_eq!(e.campaign_counters("c").unwrap().spent_cents, 1000);
        e.rollback(&st);
        assert_eq!(e.campaign_counters("c").unwrap().spent_cents, 0);
        assert_eq!(e.dedupe_entries(), 0);
        let st = e
            .post(&s, a.ping_id, &ids, &lead_with_phone("2125550123"))
            .unwrap();
        e.commit(&st);
        assert_eq!(e.campaign_counters("c").unwrap().sold, 1);
    }

    #[test]
    fn dedupe_blocks_the_same_phone_for_the_same_account() {
        let (e, clock) = engine(market(
            &["a"],
            vec![campaign("c", "a", SaleType::Exclusive, 1000)],
        ));
        sell(&e, "2125550123").unwrap();
        assert_eq!(
            sell(&e, "2125550123").unwrap_err(),
            EngineError::DuplicateLead
        );
        sell(&e, "2125550124").unwrap();
        clock.advance_ms(720 * 3_600_000);
        sell(&e, "2125550123").unwrap();
    }

    #[test]
    fn an_exclusive_sale_blocks_every_later_sale_of_the_phone() {
        let m = market(
            &["a", "b", "c"],
            vec![
                campaign("a-ex", "a", SaleType::Exclusive, 3000),
                campaign("b-sh", "b", SaleType::Shared, 1000),
                campaign("c-sh", "c", SaleType::Shared, 900),
            ],
        );
        let (e, clock) = engine(m);
        let s = e.seller_by_id("s1").unwrap();
        let lead = lead_with_phone("3127340123");
        let DirectOutcome::Sold(first) = e.direct_post(&s, &lead).unwrap() else {
            panic!("unsold")
        };
        assert_eq!(first.sales.len(), 1, "exclusive wins");
        e.commit(&first);
        // Other buyers may not buy the consumer shared while the exclusive holds.
        assert!(matches!(
            e.direct_post(&s, &lead).unwrap(),
            DirectOutcome::Unsold("duplicate_lead")
        ));
        clock.advance_ms(720 * 3_600_000);
        let DirectOutcome::Sold(later) = e.direct_post(&s, &lead).unwrap() else {
            panic!("unsold")
        };
        e.commit(&later);

        // A shared sale blocks a later exclusive one, but not more shared sales
        // to other buyers; a rolled-back claim is given back.
        let (e, _) = engine(market(
            &["a", "b"],
            vec![
                campaign("a-ex", "a", SaleType::Exclusive, 3000),
                campaign("b-sh", "b", SaleType::Shared, 1000),
            ],
        ));
        let mut shared_only = lead_with_phone("3127340124");
        shared_only.ping.sale_type = SaleTypeRequest::Shared;
        let DirectOutcome::Sold(st) = e.direct_post(&s, &shared_only).unwrap() else {
            panic!("unsold")
        };
        e.rollback(&st);
        let DirectOutcome::Sold(st) = e.direct_post(&s, &shared_only).unwrap() else {
            panic!("unsold")
        };
        e.commit(&st);
        let mut exclusive_only = lead_with_phone("3127340124");
        exclusive_only.ping.sale_type = SaleTypeRequest::Exclusive;
        assert!(matches!(
            e.direct_post(&s, &exclusive_only).unwrap(),
            DirectOutcome::Unsold("duplicate_lead")
        ));
        // Replay rebuilds the hold.
        let (r, _) = engine(market(
            &["a", "b"],
            vec![
                campaign("a-ex", "a", SaleType::Exclusive, 3000),
                campaign("b-sh", "b", SaleType::Shared, 1000),
            ],
        ));
        r.apply(&st.event);
        assert!(matches!(
            r.direct_post(&s, &exclusive_only).unwrap(),
            DirectOutcome::Unsold("duplicate_lead")
        ));
    }

    #[test]
    fn caps_and_budget_refuse_posts_exactly() {
        let mut c = campaign("c", "a", SaleType::Exclusive, 1000);
        c.caps.daily = CapLimit {
            leads: Some(2),
            spend_cents: None,
        };
        let (e, clock) = engine(market(&["a"], vec![c]));
        sell(&e, "2125550001").unwrap();
        sell(&e, "2125550002").unwrap();
        let s = e.seller_by_id("s1").unwrap();
        assert_eq!(
            e.ping(&s, &ping()).unwrap().no_bid_reason,
            Some(NoBidReason::CapsReached)
        );
        clock.advance_ms(24 * 3_600_000);
        sell(&e, "2125550003").unwrap();
    }

    #[test]
    fn direct_post_cascades_past_a_duplicate() {
        // One shared buyer per lead, so each post sells to the best buyer that
        // has not bought this consumer yet.
        let settings = EngineSettings {
            max_shared_buyers: 1,
            ..Default::default()
        };
        let (e, _) = engine_with(
            settings,
            market(
                &["a", "b"],
                vec![
                    campaign("a1", "a", SaleType::Shared, 2000),
                    campaign("b1", "b", SaleType::Shared, 1000),
                ],
            ),
        );
        let s = e.seller_by_id("s1").unwrap();
        let lead = lead_with_phone("2125550123");
        let DirectOutcome::Sold(first) = e.direct_post(&s, &lead).unwrap() else {
            panic!("unsold")
        };
        assert_eq!(first.sales[0].buyer_price_cents, 2000);
        e.commit(&first);
        let DirectOutcome::Sold(second) = e.direct_post(&s, &lead).unwrap() else {
            panic!("unsold")
        };
        assert_eq!(
            second.sales[0].buyer_price_cents, 1000,
            "the duplicate for a goes to b"
        );
        e.commit(&second);
        assert!(matches!(
            e.direct_post(&s, &lead).unwrap(),
            DirectOutcome::Unsold("duplicate_lead")
        ));
    }

    /// Pings and sales (shared, exclusive, direct) on `e`; returns the events.
    fn trade(e: &Engine, rounds: u8) -> Vec<Event> {
        let s = e.seller_by_id("s1").unwrap();
        let mut events = vec![];
        for i in 0..rounds {
            let mut p = ping();
            p.attributes.age = Some(20 + i);
            let a = e.ping(&s, &p).unwrap();
            events.extend(a.event.clone());
            if i % 3 != 1 {
                let mut lead = lead_with_phone(&format!("21255502{i:02}"));
                lead.ping = p;
                let ids: Vec<_> = a.bids.iter().map(|b| b.bid_id).collect();
                let st = e.post(&s, a.ping_id, &ids, &lead).unwrap();
                e.commit(&st);
                events.push(st.event.clone());
            }
        }
        let mut lead = lead_with_phone("2125550377");
        lead.ping.attributes.age = Some(77);
        if let DirectOutcome::Sold(st) = e.direct_post(&s, &lead).unwrap() {
            e.commit(&st);
            events.push(st.event.clone());
        }
        events
    }

    #[test]
    fn image_restore_plus_tail_equals_full_replay_and_the_live_state() {
        let m = market(
            &["a", "b"],
            vec![
                campaign("a1", "a", SaleType::Shared, 700),
                campaign("b1", "b", SaleType::Shared, 600),
            ],
        );
        let (live, clock) = engine(m.clone());
        let events = trade(&live, 9);
        assert!(events.len() > 10, "{}", events.len());
        let at = clock.now_ms();
        let replayed = |upto: usize, image: Option<&EngineImage>| {
            let (r, c) = engine(m.clone());
            c.set_ms(at);
            if let Some(image) = image {
                r.restore_image(image);
            }
            for ev in &events[upto..] {
                assert!(r.apply(ev));
            }
            r
        };
        let full = replayed(0, None);
        assert_eq!(full.image(), live.image());
        assert_eq!(full.state_digest(), live.state_digest());
        for cut in [0, 1, 5, events.len() - 1, events.len()] {
            let (prefix, _) = engine(m.clone());
            for ev in &events[..cut] {
                prefix.apply(ev);
            }
            let restored = replayed(cut, Some(&prefix.image()));
            assert_eq!(restored.image(), live.image(), "cut at {cut}");
        }
        // The digest sees a one-cent difference.
        let (other, _) = engine(m);
        other.restore_image(&live.image());
        let mut image = other.image();
        image.counters[0].spent_cents += 1;
        assert_ne!(stable_hash(&image), live.state_digest());
    }

    #[test]
    fn admin_records_are_not_engine_state() {
        let m = market(&["a"], vec![campaign("a1", "a", SaleType::Shared, 700)]);
        let (e, _) = engine(m);
        let before = e.image();
        let record = Event::Admin(crate::event::AdminRecord {
            id: "a_1".into(),
            at_ms: 1,
            kind: "key.created".into(),
            payload: vec![1, 2, 3],
        });
        assert!(!e.apply(&record));
        assert_eq!(e.image(), before);
    }

    #[test]
    fn replay_is_idempotent_by_event_id() {
        let m = market(&["a"], vec![campaign("a1", "a", SaleType::Shared, 700)]);
        let (live, _) = engine(m.clone());
        let events = trade(&live, 6);
        let (r, _) = engine(m);
        for ev in &events {
            assert!(r.apply(ev));
            assert!(!r.apply(ev), "a second copy must change nothing");
        }
        assert_eq!(r.image(), live.image());
    }

    #[test]
    fn replay_rebuilds_the_committed_state() {
        let m = market(
            &["a", "b"],
            vec![
                campaign("a1", "a", SaleType::Shared, 700),
                campaign("b1", "b", SaleType::Shared, 600),
            ],
        );
        let (e, _) = engine(m.clone());
        let mut events = vec![];
        for i in 0..5 {
            let s = e.seller_by_id("s1").unwrap();
            let mut p = ping();
            p.attributes.age = Some(30 + i);
            let a = e.ping(&s, &p).unwrap();
            events.push(a.event.clone().unwrap());
            if i % 2 == 0 {
                let mut lead = lead_with_phone(&format!("21255501{i:02}"));
                lead.ping = p;
                let ids: Vec<_> = a.bids.iter().map(|b| b.bid_id).collect();
                let st = e.post(&s, a.ping_id, &ids, &lead).unwrap();
                e.commit(&st);
                events.push(st.event.clone());
            }
        }
        let (r, _) = engine(m);
        for ev in &events {
            r.apply(ev);
        }
        for id in ["a1", "b1"] {
            assert_eq!(r.campaign_counters(id), e.campaign_counters(id), "{id}");
        }
        assert_eq!(r.dedupe_entries(), e.dedupe_entries());
        assert_eq!(r.pending_pings(), e.pending_pings());
        // A ping sold before the restart stays used; an open one is postable.
        let s = r.seller_by_id("s1").unwrap();
        let Event::PingIssued(p0) = &events[0] else {
            panic!()
        };
        let bid0 = BidId {
            ping: p0.ping_id,
            index: 0,
        };
        let lead = Lead {
            ping: p0.ping.clone(),
            contact: lead_with_phone("2125550999").contact,
        };
        assert_eq!(
            r.post(&s, p0.ping_id, &[bid0], &lead).unwrap_err(),
            EngineError::PingAlreadyUsed
        );
        let Event::PingIssued(p1) = &events[2] else {
            panic!()
        };
        let lead = Lead {
            ping: p1.ping.clone(),
            contact: lead_with_phone("2125550998").contact,
        };
        r.post(
            &s,
            p1.ping_id,
            &[BidId {
                ping: p1.ping_id,
                index: 0,
            }],
            &lead,
        )
        .unwrap();
    }
}
