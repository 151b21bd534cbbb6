//! [`AdminStore`]: the admin API's state (keys, sold leads and their CRM
//! records, ledgers, agents, webhooks and their deliveries, the audit log),
//! rebuilt from the journal and kept in snapshots as the `admin` extension.
//!
//! Three kinds of journal record change it: `Event::Admin` (a payload of
//! [`AdminChange`]s), `Event::Market` (a marketplace change the engine
//! applies, whose `note` carries the ledger entry and audit that go with
//! it) and `Event::LeadSold` (a sale: the lead, the buyers' purchases and
//! the ledger's charges). Each applies once (by record id, or by lead id),
//! in journal order on replay. Webhook deliveries are derived from the
//! records as they apply, so replay re-creates exactly the deliveries
//! whose outcome the journal does not hold yet.

use crate::keys::{ApiKey, Role};
use crate::records::*;
use crate::reports::{PingSeen, PingTallies};
use leadex_engine::event::{AdminRecord, LeadSold, MarketRecord};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

/// Name of the snapshot extension holding this state.
pub const EXTENSION: &str = "admin";

/// Deliveries kept per subscription: the oldest finished ones are dropped
/// past it (pending ones are never dropped).
pub const DELIVERIES_KEPT_PER_WEBHOOK: usize = 1_000;

/// One change, inside an [`AdminPayload`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum AdminChange {
    /// A key was created (its secret is not in here, only its hash).
    KeyCreated {
        /// The key.
        key: ApiKey,
    },
    /// A key was revoked.
    KeyRevoked {
        /// Key id.
        id: String,
        /// When, Unix ms.
        at_ms: i64,
    },
    /// A key stops working at a time (the old key of a rotation).
    KeyExpires {
        /// Key id.
        id: String,
        /// When, Unix ms.
        at_ms: i64,
    },
    /// A ledger line (top-up, credit limit).
    Ledger {
        /// The line.
        entry: LedgerEntry,
    },
    /// A purchase was returned (with the engine's refund, in one record).
    Returned {
        /// Lead.
        lead_id: String,
        /// Buyer account.
        buyer_id: String,
        /// The return.
        info: ReturnInfo,
        /// Its ledger line.
        entry: LedgerEntry,
    },
    /// A purchase's pipeline status changed.
    LeadStatus {
        /// Lead.
        lead_id: String,
        /// Buyer account.
        buyer_id: String,
        /// New status.
        status: LeadStatus,
    },
    /// A note on a purchase.
    NoteAdded {
        /// Lead.
        lead_id: String,
        /// Buyer account.
        buyer_id: String,
        /// The note.
        note: Note,
    },
    /// A contact attempt on a purchase.
    AttemptAdded {
        /// Lead.
        lead_id: String,
        /// Buyer account.
        buyer_id: String,
        /// The attempt.
        attempt: ContactAttempt,
    },
    /// A quote was given.
    QuoteCreated {
        /// The quote.
        quote: Quote,
    },
    /// A quote was declined.
    QuoteDeclined {
        /// Quote id.
        id: String,
    },
    /// A policy was created from an accepted quote, with its commissions.
    PolicyCreated {
        /// The policy.
        policy: Policy,
        /// Commission lines computed by the account's plan.
        commissions: Vec<Commission>,
    },
    /// A commission moved on (approved, paid).
    CommissionStatus {
        /// Commission id.
        id: String,
        /// New status.
        status: CommissionStatus,
        /// When, Unix ms.
        at_ms: i64,
    },
    /// An account's commission plan was set.
    PlanSet {
        /// Buyer account.
        tenant: String,
        /// The plan.
        plan: CommissionPlan,
    },
    /// An agent was created or replaced.
    AgentPut {
        /// The agent.
        agent: Agent,
    },
    /// A team was created or replaced.
    TeamPut {
        /// The team.
        team: Team,
    },
    /// A seller's source was created or replaced.
    SourcePut {
        /// The source.
        source: Source,
    },
    /// A webhook subscription was created.
    WebhookCreated {
        /// The subscription.
        webhook: Webhook,
    },
    /// A webhook subscription was deleted.
    WebhookDeleted {
        /// Subscription id.
        id: String,
        /// When, Unix ms.
        at_ms: i64,
    },
    /// A delivery was attempted.
    DeliveryAttempted {
        /// Delivery id.
        id: String,
        /// The attempt.
        attempt: DeliveryAttempt,
        /// Status after it.
        status: DeliveryStatus,
        /// Next attempt, Unix ms (pending only).
        next_attempt_at_ms: i64,
    },
}

impl AdminChange {
    /// The record kind, for logs and tools.
    pub fn kind(&self) -> &'static str {
        match self {
            AdminChange::KeyCreated { .. } => "key.created",
            AdminChange::KeyRevoked { .. } => "key.revoked",
            AdminChange::KeyExpires { .. } => "key.expires",
            AdminChange::Ledger { .. } => "ledger",
            AdminChange::Returned { .. } => "lead.returned",
            AdminChange::LeadStatus { .. } => "lead.status",
            AdminChange::NoteAdded { .. } => "lead.note",
            AdminChange::AttemptAdded { .. } => "lead.attempt",
            AdminChange::QuoteCreated { .. } => "quote.created",
            AdminChange::QuoteDeclined { .. } => "quote.declined",
            AdminChange::PolicyCreated { .. } => "policy.created",
            AdminChange::CommissionStatus { .. } => "commission.status",
            AdminChange::PlanSet { .. } => "plan.set",
            AdminChange::AgentPut { .. } => "agent.put",
            AdminChange::TeamPut { .. } => "team.put",
            AdminChange::SourcePut { .. } => "source.put",
            AdminChange::WebhookCreated { .. } => "webhook.created",
            AdminChange::WebhookDeleted { .. } => "webhook.deleted",
            AdminChange::DeliveryAttempted { .. } => "delivery.attempted",
        }
    }
}

/// What one journal record carries for the admin store: changes and the
/// audit entry of the mutation that made them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminPayload {
    /// The changes, applied in order.
    #[serde(default)]
    pub changes: Vec<AdminChange>,
    /// The audit entry (its `id` is set to the record's id when applied).
    #[serde(default)]
    pub audit: Option<AuditEntry>,
}

impl AdminPayload {
    /// A payload of one change.
    pub fn one(change: AdminChange) -> AdminPayload {
        AdminPayload {
            changes: vec![change],
            audit: None,
        }
    }

    /// Adds the audit entry.
    pub fn audited(mut self, audit: AuditEntry) -> AdminPayload {
        self.audit = Some(audit);
        self
    }

    /// Decodes a payload; a bare change is the first format (keys).
    pub fn decode(bytes: &[u8]) -> Result<AdminPayload, String> {
        if bytes.is_empty() {
            return Ok(AdminPayload::default());
        }
        serde_json::from_slice::<AdminPayload>(bytes)
            .or_else(|_| serde_json::from_slice::<AdminChange>(bytes).map(AdminPayload::one))
            .map_err(|e| e.to_string())
    }

    /// Encodes it.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("invariant: admin payloads encode")
    }

    /// The kind of the record, for logs: the first change's.
    pub fn kind(&self) -> &'static str {
        self.changes.first().map_or("audit", AdminChange::kind)
    }
}

/// Sales, returns and spend of one campaign, as the store counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignTally {
    /// Leads bought.
    pub bought: u64,
    /// Leads returned.
    pub returned: u64,
    /// Sum of prices paid, cents.
    pub charged_cents: u64,
    /// Sum of refunds, cents.
    pub refunded_cents: u64,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct State {
    pub keys: BTreeMap<String, ApiKey>,
    /// Ids of the records applied: replay is idempotent by them.
    pub applied: BTreeSet<String>,
    pub leads: BTreeMap<String, LeadRecord>,
    /// Lead ids in the order they were sold.
    pub lead_order: Vec<String>,
    pub tallies: BTreeMap<String, CampaignTally>,
    pub ledgers: BTreeMap<String, Vec<LedgerEntry>>,
    pub quotes: BTreeMap<String, Quote>,
    pub policies: BTreeMap<String, Policy>,
    pub commissions: BTreeMap<String, Commission>,
    pub plans: BTreeMap<String, CommissionPlan>,
    pub agents: BTreeMap<String, Agent>,
    pub teams: BTreeMap<String, Team>,
    pub sources: BTreeMap<String, Source>,
    pub webhooks: BTreeMap<String, Webhook>,
    pub deliveries: BTreeMap<String, Delivery>,
    pub audit: Vec<AuditEntry>,
    #[serde(skip)]
    pub by_hash: HashMap<String, String>,
    /// Only a carrier from a snapshot image into [`AdminStore::pings`]
    /// (restore moves it there; `image` writes the live tallies in its
    /// place): the tallies have their own lock so that counting a ping
    /// never waits for the state's.
    #[serde(default, skip_serializing)]
    pub pings: PingTallies,
}

impl State {
    fn index(&mut self) {
        self.by_hash = self
            .keys
            .values()
            .map(|k| (k.secret_sha256.clone(), k.id.clone()))
            .collect();
    }

    pub(crate) fn purchase_mut(&mut self, lead_id: &str, buyer_id: &str) -> Option<&mut Purchase> {
        self.leads
            .get_mut(lead_id)?
            .purchases
            .iter_mut()
            .find(|p| p.buyer_id == buyer_id)
    }

    /// Queues `event` for every live subscription of `tenant` to it.
    fn emit(
        &mut self,
        tenant: &str,
        event: WebhookEvent,
        event_id: &str,
        at_ms: i64,
        data: serde_json::Value,
    ) {
        let targets: Vec<String> = self
            .webhooks
            .values()
            .filter(|w| {
                w.tenant == tenant && w.deleted_at_ms.is_none() && w.events.contains(&event)
            })
            .map(|w| w.id.clone())
            .collect();
        for webhook_id in targets {
            let id = delivery_id(&webhook_id, event, event_id);
            if self.deliveries.contains_key(&id) {
                continue;
            }
            let body = serde_json::json!({
                "id": event_id,
                "type": event.as_str(),
                "created_at_ms": at_ms,
                "account": tenant,
                "data": data,
            })
            .to_string();
            self.deliveries.insert(
                id.clone(),
                Delivery {
                    id,
                    webhook_id: webhook_id.clone(),
                    event,
                    body,
                    created_at_ms: at_ms,
                    status: DeliveryStatus::Pending,
                    next_attempt_at_ms: at_ms,
                    attempts: Vec::new(),
                },
            );
            self.prune_deliveries(&webhook_id);
        }
    }

    /// Drops the oldest finished deliveries of a subscription past
    /// [`DELIVERIES_KEPT_PER_WEBHOOK`].
    fn prune_deliveries(&mut self, webhook_id: &str) {
        let mut finished: Vec<(i64, String)> = self
            .deliveries
            .values()
            .filter(|d| d.webhook_id == webhook_id)
            .map(|d| (d.created_at_ms, d.id.clone()))
            .collect();
        if finished.len() <= DELIVERIES_KEPT_PER_WEBHOOK {
            return;
        }
        finished.sort();
        let excess = finished.len() - DELIVERIES_KEPT_PER_WEBHOOK;
        for (_, id) in finished.into_iter().take(excess) {
            if self
                .deliveries
                .get(&id)
                .is_some_and(|d| d.status != DeliveryStatus::Pending)
            {
                self.deliveries.remove(&id);
            }
        }
    }

    fn apply_change(&mut self, change: AdminChange, at_ms: i64) {
        match change {
            AdminChange::KeyCreated { key } => {
                self.by_hash
                    .insert(key.secret_sha256.clone(), key.id.clone());
                self.keys.insert(key.id.clone(), key);
            }
            AdminChange::KeyRevoked { id, at_ms } => {
                if let Some(k) = self.keys.get_mut(&id) {
                    k.revoked_at_ms.get_or_insert(at_ms);
                }
            }
            AdminChange::KeyExpires { id, at_ms } => {
                if let Some(k) = self.keys.get_mut(&id) {
                    k.expires_at_ms = Some(k.expires_at_ms.map_or(at_ms, |e| e.min(at_ms)));
                }
            }
            AdminChange::Ledger { entry } => {
                self.ledgers
                    .entry(entry.campaign_id.clone())
                    .or_default()
                    .push(entry);
            }
            AdminChange::Returned {
                lead_id,
                buyer_id,
                info,
                entry,
            } => {
                let Some(purchase) = self.purchase_mut(&lead_id, &buyer_id) else {
                    return;
                };
                if purchase.returned.is_some() {
                    return;
                }
                purchase.returned = Some(info.clone());
                let campaign_id = purchase.campaign_id.clone();
                let tally = self.tallies.entry(campaign_id).or_default();
                tally.returned += 1;
                tally.refunded_cents += info.credited_cents;
                self.ledgers
                    .entry(entry.campaign_id.clone())
                    .or_default()
                    .push(entry);
                let data = serde_json::json!({"lead_id": lead_id, "return": info});
                self.emit(
                    &buyer_id,
                    WebhookEvent::LeadReturned,
                    &format!("{lead_id}.returned"),
                    at_ms,
                    data,
                );
            }
            AdminChange::LeadStatus {
                lead_id,
                buyer_id,
                status,
            } => {
                if let Some(p) = self.purchase_mut(&lead_id, &buyer_id) {
                    p.status = status;
                    let data = serde_json::json!({"lead_id": lead_id, "status": status});
                    let event_id = format!("{lead_id}.{}.{at_ms}", wire_name(&status));
                    self.emit(
                        &buyer_id,
                        WebhookEvent::LeadStatusChanged,
                        &event_id,
                        at_ms,
                        data,
                    );
                }
            }
            AdminChange::NoteAdded {
                lead_id,
                buyer_id,
                note,
            } => {
                if let Some(p) = self.purchase_mut(&lead_id, &buyer_id) {
                    p.notes.push(note);
                }
            }
            AdminChange::AttemptAdded {
                lead_id,
                buyer_id,
                attempt,
            } => {
                if let Some(p) = self.purchase_mut(&lead_id, &buyer_id) {
                    if p.status == LeadStatus::New && attempt.outcome == AttemptOutcome::Reached {
                        p.status = LeadStatus::Contacted;
                    }
                    p.attempts.push(attempt);
                }
            }
            AdminChange::QuoteCreated { quote } => {
                if let Some(p) = self.purchase_mut(&quote.lead_id, &quote.tenant) {
                    if matches!(p.status, LeadStatus::New | LeadStatus::Contacted) {
                        p.status = LeadStatus::Quoted;
                    }
                }
                let data = serde_json::to_value(&quote).unwrap_or_default();
                self.emit(
                    &quote.tenant.clone(),
                    WebhookEvent::QuoteCreated,
                    &quote.id.clone(),
                    at_ms,
                    data,
                );
                self.quotes.insert(quote.id.clone(), quote);
            }
            AdminChange::QuoteDeclined { id } => {
                if let Some(q) = self.quotes.get_mut(&id) {
                    if q.status == QuoteStatus::Open {
                        q.status = QuoteStatus::Declined;
                    }
                }
            }
            AdminChange::PolicyCreated {
                policy,
                commissions,
            } => {
                if let Some(q) = self.quotes.get_mut(&policy.quote_id) {
                    q.status = QuoteStatus::Accepted;
                }
                if let Some(p) = self.purchase_mut(&policy.lead_id, &policy.tenant) {
                    p.status = LeadStatus::Bound;
                }
                let data = serde_json::json!({"policy": policy, "commissions": commissions});
                self.emit(
                    &policy.tenant.clone(),
                    WebhookEvent::PolicyCreated,
                    &policy.id.clone(),
                    at_ms,
                    data,
                );
                for c in commissions {
                    self.commissions.insert(c.id.clone(), c);
                }
                self.policies.insert(policy.id.clone(), policy);
            }
            AdminChange::CommissionStatus { id, status, at_ms } => {
                let Some(c) = self.commissions.get_mut(&id) else {
                    return;
                };
                match status {
                    CommissionStatus::Approved if c.status == CommissionStatus::Pending => {
                        c.status = status;
                        c.approved_at_ms = Some(at_ms);
                        let (tenant, data) = (
                            c.tenant.clone(),
                            serde_json::to_value(&*c).unwrap_or_default(),
                        );
                        self.emit(&tenant, WebhookEvent::CommissionApproved, &id, at_ms, data);
                    }
                    CommissionStatus::Paid if c.status == CommissionStatus::Approved => {
                        c.status = status;
                        c.paid_at_ms = Some(at_ms);
                    }
                    _ => {}
                }
            }
            AdminChange::PlanSet { tenant, plan } => {
                self.plans.insert(tenant, plan);
            }
            AdminChange::AgentPut { agent } => {
                self.agents.insert(agent.id.clone(), agent);
            }
            AdminChange::TeamPut { team } => {
                self.teams.insert(team.id.clone(), team);
            }
            AdminChange::SourcePut { source } => {
                self.sources.insert(source.id.clone(), source);
            }
            AdminChange::WebhookCreated { webhook } => {
                self.webhooks.insert(webhook.id.clone(), webhook);
            }
            AdminChange::WebhookDeleted { id, at_ms } => {
                if let Some(w) = self.webhooks.get_mut(&id) {
                    w.deleted_at_ms.get_or_insert(at_ms);
                }
            }
            AdminChange::DeliveryAttempted {
                id,
                attempt,
                status,
                next_attempt_at_ms,
            } => {
                if let Some(d) = self.deliveries.get_mut(&id) {
                    if d.status == DeliveryStatus::Pending {
                        d.attempts.push(attempt);
                        d.status = status;
                        d.next_attempt_at_ms = next_attempt_at_ms;
                    }
                }
            }
        }
    }

    fn apply_payload(&mut self, id: &str, at_ms: i64, payload: AdminPayload) {
        for change in payload.changes {
            self.apply_change(change, at_ms);
        }
        if let Some(mut audit) = payload.audit {
            audit.id = id.to_string();
            audit.at_ms = at_ms;
            self.audit.push(audit);
        }
    }

    fn record_sale(&mut self, sold: &LeadSold) -> bool {
        let lead_id = sold.lead_id.to_string();
        if self.leads.contains_key(&lead_id) {
            return false;
        }
        let mut purchases = Vec::with_capacity(sold.sales.len());
        for sale in &sold.sales {
            let bid = &sale.bid;
            purchases.push(Purchase {
                buyer_id: bid.buyer_id.clone(),
                campaign_id: bid.campaign_id.clone(),
                sale_type: wire_name(&bid.sale_type),
                price_cents: bid.buyer_price_cents,
                status: LeadStatus::New,
                returned: None,
                notes: Vec::new(),
                attempts: Vec::new(),
            });
            let tally = self.tallies.entry(bid.campaign_id.clone()).or_default();
            tally.bought += 1;
            tally.charged_cents += bid.buyer_price_cents;
            self.ledgers
                .entry(bid.campaign_id.clone())
                .or_default()
                .push(LedgerEntry {
                    id: format!("{lead_id}.{}", bid.campaign_id),
                    campaign_id: bid.campaign_id.clone(),
                    buyer_id: bid.buyer_id.clone(),
                    at_ms: sold.sold_at_ms,
                    kind: LedgerKind::Charge,
                    amount_cents: -(bid.buyer_price_cents as i64),
                    lead_id: Some(lead_id.clone()),
                    actor: None,
                });
        }
        let record = LeadRecord {
            lead_id: lead_id.clone(),
            ping_id: sold.ping_id.map(|p| p.to_string()),
            seller_id: sold.seller_id.clone(),
            sold_at_ms: sold.sold_at_ms,
            lead: sold.lead.clone(),
            seller_paid_cents: sold.sales.iter().map(|s| s.bid.seller_price_cents).sum(),
            purchases,
        };
        for p in &record.purchases {
            let data = serde_json::json!({
                "lead_id": lead_id,
                "campaign_id": p.campaign_id,
                "price_cents": p.price_cents,
                "sale_type": p.sale_type,
                "lead": record.lead,
            });
            self.emit(
                &p.buyer_id.clone(),
                WebhookEvent::LeadSold,
                &lead_id,
                sold.sold_at_ms,
                data,
            );
        }
        self.leads.insert(lead_id.clone(), record);
        self.lead_order.push(lead_id);
        true
    }
}

/// The stable id of the delivery of `event` `event_id` to `webhook_id`.
fn delivery_id(webhook_id: &str, event: WebhookEvent, event_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{webhook_id}\n{}\n{event_id}", event.as_str()).as_bytes());
    format!("d_{}", &hex::encode(digest)[..32])
}

/// The admin state. Reads take a shared lock (the admin path is not the hot
/// path); writes come from committed changes, the sales feed and replay.
#[derive(Debug, Default)]
pub struct AdminStore {
    state: RwLock<State>,
    /// Pings answered with bids, per day (see [`crate::reports`]).
    pings: Mutex<PingTallies>,
    /// Pings the live feed could not count (its queue was full).
    pings_not_counted: AtomicU64,
}

/// What the server's feed thread hands the store, in journal-commit order
/// per kind.
#[derive(Debug, Clone)]
pub enum Feed {
    /// A committed sale.
    Sale(Box<LeadSold>),
    /// A journaled ping answered with bids.
    Ping(PingSeen),
    /// A committed transition of an assignment.
    Routing(Box<leadex_engine::routing::assign::RoutingRecord>),
}

impl AdminStore {
    /// Applies one journaled admin record; `Ok(false)` when it was applied
    /// before. A record that does not decode is an error (the caller
    /// refuses to start rather than lose admin changes).
    pub fn apply(&self, record: &AdminRecord) -> Result<bool, String> {
        let payload = AdminPayload::decode(&record.payload)
            .map_err(|e| format!("admin record {} does not decode: {e}", record.id))?;
        Ok(self.apply_once(&record.id, record.at_ms, payload))
    }

    /// Applies the admin part (`note`) of a marketplace record.
    pub fn apply_market(&self, record: &MarketRecord) -> Result<bool, String> {
        let payload = AdminPayload::decode(&record.note)
            .map_err(|e| format!("market record {} note does not decode: {e}", record.id))?;
        Ok(self.apply_once(&record.id, record.at_ms, payload))
    }

    /// Applies the payload of record `id` unless it was applied before.
    fn apply_once(&self, id: &str, at_ms: i64, payload: AdminPayload) -> bool {
        let mut state = self.state.write();
        if !state.applied.insert(id.to_string()) {
            return false;
        }
        state.apply_payload(id, at_ms, payload);
        true
    }

    /// Records a sale (live from the sales feed, or on replay); false when
    /// the lead is known already.
    pub fn record_sale(&self, sold: &LeadSold) -> bool {
        self.state.write().record_sale(sold)
    }

    /// Counts a ping answered with bids (live from the feed, or on replay
    /// for a ping the engine did not hold yet).
    pub fn record_ping(&self, ping: &PingSeen) {
        self.pings.lock().add(ping);
    }

    /// Takes one item of the server's feed.
    pub fn take(&self, item: &Feed) {
        match item {
            Feed::Sale(sold) => {
                self.record_sale(sold);
            }
            Feed::Ping(ping) => self.record_ping(ping),
            Feed::Routing(_) => {}
        }
    }

    /// Notes a ping the feed could not count.
    pub fn note_ping_not_counted(&self) {
        // Relaxed: a statistic read on its own.
        self.pings_not_counted.fetch_add(1, Ordering::Relaxed);
    }

    /// Pings the feed could not count since the process started.
    pub fn pings_not_counted(&self) -> u64 {
        self.pings_not_counted.load(Ordering::Relaxed)
    }

    /// Reads the ping tallies.
    pub(crate) fn pings<T>(&self, f: impl FnOnce(&PingTallies) -> T) -> T {
        f(&self.pings.lock())
    }

    /// Reads the state.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.state.read())
    }

    /// The active key whose secret hashes to `secret_sha256`.
    pub fn authenticate(&self, secret_sha256: &str, now_ms: i64) -> Option<ApiKey> {
        let state = self.state.read();
        let id = state.by_hash.get(secret_sha256)?;
        state.keys.get(id).filter(|k| k.is_active(now_ms)).cloned()
    }

    /// A key by id.
    pub fn key(&self, id: &str) -> Option<ApiKey> {
        self.state.read().keys.get(id).cloned()
    }

    /// Every key, by id.
    pub fn keys(&self) -> Vec<ApiKey> {
        self.state.read().keys.values().cloned().collect()
    }

    /// True when some admin key works at `now_ms`.
    pub fn has_active_admin(&self, now_ms: i64) -> bool {
        self.state
            .read()
            .keys
            .values()
            .any(|k| k.role == Role::Admin && k.is_active(now_ms))
    }

    /// A sold lead.
    pub fn lead(&self, lead_id: &str) -> Option<LeadRecord> {
        self.state.read().leads.get(lead_id).cloned()
    }

    /// Deliveries due at `now_ms`, oldest first, at most `max`.
    pub fn due_deliveries(&self, now_ms: i64, max: usize) -> Vec<(Delivery, Webhook)> {
        let state = self.state.read();
        let mut due: Vec<(Delivery, Webhook)> = state
            .deliveries
            .values()
            .filter(|d| d.status == DeliveryStatus::Pending && d.next_attempt_at_ms <= now_ms)
            .filter_map(|d| {
                state
                    .webhooks
                    .get(&d.webhook_id)
                    .map(|w| (d.clone(), w.clone()))
            })
            .collect();
        due.sort_by_key(|(d, _)| (d.next_attempt_at_ms, d.created_at_ms));
        due.truncate(max);
        due
    }

    /// The state for a snapshot (JSON; canonical: sorted maps).
    pub fn image(&self) -> Vec<u8> {
        // The tallies are small (days × ids): copied out under their own
        // lock, then written as the state's `pings` member, which the
        // state's encoding skips. The state is a struct with many members,
        // so its JSON is a non-empty object ending in `}`.
        let pings = self.pings.lock().clone();
        let mut out =
            serde_json::to_vec(&*self.state.read()).expect("invariant: the admin state encodes");
        debug_assert_eq!(out.last(), Some(&b'}'));
        out.pop();
        out.extend_from_slice(b",\"pings\":");
        serde_json::to_writer(&mut out, &pings).expect("invariant: the tallies encode");
        out.push(b'}');
        out
    }

    /// Loads a snapshot's image into a fresh store.
    pub fn restore(&self, image: &[u8]) -> Result<(), String> {
        let mut state: State = serde_json::from_slice(image)
            .map_err(|e| format!("the admin snapshot section does not decode: {e}"))?;
        state.index();
        *self.pings.lock() = std::mem::take(&mut state.pings);
        *self.state.write() = state;
        Ok(())
    }
}

/// Encodes a payload as a journal record with a fresh id.
pub fn record(payload: &AdminPayload, at_ms: i64) -> AdminRecord {
    AdminRecord {
        id: crate::keys::generate_id("a_"),
        at_ms,
        kind: payload.kind().to_string(),
        payload: payload.encode(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{generate_secret, secret_hash};

    fn key(id: &str, role: Role, secret_hash: String) -> ApiKey {
        ApiKey {
            id: id.into(),
            name: "n".into(),
            role,
            tenant: None,
            secret_sha256: secret_hash,
            created_at_ms: 1,
            revoked_at_ms: None,
            expires_at_ms: None,
            tier: Default::default(),
        }
    }

    #[test]
    fn keys_authenticate_until_revoked_or_expired_and_replay_is_idempotent() {
        let store = AdminStore::default();
        let (secret, hash) = generate_secret();
        let created = record(
            &AdminPayload::one(AdminChange::KeyCreated {
                key: key("k_1", Role::Admin, hash.clone()),
            }),
            1,
        );
        assert_eq!(store.apply(&created), Ok(true));
        assert_eq!(
            store.apply(&created),
            Ok(false),
            "a second copy changes nothing"
        );
        assert_eq!(
            store.authenticate(&secret_hash(&secret), 5).map(|k| k.id),
            Some("k_1".into())
        );
        assert!(store.has_active_admin(5));
        let expires = record(
            &AdminPayload::one(AdminChange::KeyExpires {
                id: "k_1".into(),
                at_ms: 100,
            }),
            2,
        );
        store.apply(&expires).unwrap();
        assert!(store.authenticate(&hash, 99).is_some());
        assert!(store.authenticate(&hash, 100).is_none());
        let revoked = record(
            &AdminPayload::one(AdminChange::KeyRevoked {
                id: "k_1".into(),
                at_ms: 50,
            }),
            3,
        );
        store.apply(&revoked).unwrap();
        assert!(store.authenticate(&hash, 10).is_none());
        assert!(!store.has_active_admin(10));
        assert!(store.authenticate("0".repeat(64).as_str(), 10).is_none());
        let bad = AdminRecord {
            payload: b"{".to_vec(),
            ..revoked.clone()
        };
        assert!(store
            .apply(&AdminRecord {
                id: "a_x".into(),
                ..bad
            })
            .is_err());
    }

    #[test]
    fn a_bare_change_of_the_first_format_still_decodes() {
        let bare = serde_json::to_vec(&AdminChange::KeyRevoked {
            id: "k".into(),
            at_ms: 3,
        })
        .unwrap();
        assert_eq!(
            AdminPayload::decode(&bare).unwrap().changes,
            vec![AdminChange::KeyRevoked {
                id: "k".into(),
                at_ms: 3
            }]
        );
        assert!(AdminPayload::decode(b"{\"changes\":[],\"x\":1}").is_err());
    }

    #[test]
    fn the_image_restores_the_same_state() {
        let store = AdminStore::default();
        let (_, hash) = generate_secret();
        let created = record(
            &AdminPayload::one(AdminChange::KeyCreated {
                key: key("k_1", Role::Buyer, hash.clone()),
            }),
            1,
        );
        store.apply(&created).unwrap();
        store.record_ping(&PingSeen {
            at_ms: 86_400_000 * 3,
            seller_id: "s1".into(),
            vertical: leadex_engine::lead::Vertical::Home,
            campaigns: vec!["c1".into(), "c2".into()],
        });
        let copy = AdminStore::default();
        copy.restore(&store.image()).unwrap();
        assert_eq!(copy.image(), store.image());
        assert_eq!(
            copy.pings(|t| t.clone()),
            store.pings(|t| t.clone()),
            "the ping tallies survive the image"
        );
        assert_eq!(copy.pings(|t| t.days[&3].campaigns["c2"]), 1);
        // An image from before the tallies existed restores with none.
        let old = serde_json::to_vec(&State::default()).unwrap();
        AdminStore::default().restore(&old).unwrap();
        assert_eq!(
            copy.authenticate(&hash, 2).map(|k| k.role),
            Some(Role::Buyer)
        );
        assert_eq!(
            copy.apply(&created),
            Ok(false),
            "applied ids survive the image"
        );
    }
}
