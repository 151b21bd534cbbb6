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
use leadex_engine::routing::assign::{RoutingChange, RoutingRecord};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

/// Name of the snapshot extension holding this state.
pub const EXTENSION: &str = "admin";

/// Deliveries kept per subscription: the oldest finished ones are dropped
/// past it (pending ones are never dropped).
pub const DELIVERIES_KEPT_PER_WEBHOOK: usize = 1_000;

/// Terminal assignments (closed, unassigned) kept: past it the one that
/// ended first is forgotten. Open assignments are never dropped; the
/// engine bounds them (`OPEN_ASSIGNMENTS_MAX`). With a history of at most
/// [`ASSIGNMENT_HISTORY_MAX`] steps an assignment takes about 1 to 4 KiB,
/// so the terminal ones take at most about 400 MiB, typically a tenth of
/// it (a routed lead's history is created, offered, accepted, closed).
pub const ASSIGNMENTS_TERMINAL_KEPT: usize = 100_000;

/// Steps kept in one assignment's history: past it the oldest steps after
/// `created` are dropped. The engine ends an assignment after at most
/// `escalate_after` (at most 20) failed offers and one escalation, so a
/// history is at most 46 steps and this bound is a safety net.
pub const ASSIGNMENT_HISTORY_MAX: usize = 64;

/// Routing records held back because they came before the version they
/// follow (a live record of the admin API overtaking one of the server's
/// feed): applied when that version arrives, dropped past this bound.
pub const ROUTING_WAITING_MAX: usize = 10_000;

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
    /// Assignments, open and terminal, by id.
    #[serde(default)]
    pub assignments: BTreeMap<String, Assignment>,
    #[serde(skip)]
    pub by_hash: HashMap<String, String>,
    /// Assignments by (created at, id): the list's order and cursor.
    #[serde(skip)]
    pub assignment_order: BTreeSet<(i64, String)>,
    /// Terminal assignments by (ended at, id): the first is forgotten past
    /// [`ASSIGNMENTS_TERMINAL_KEPT`].
    #[serde(skip)]
    pub assignments_ended: BTreeSet<(i64, String)>,
    /// Routing records that came before the version they follow, by
    /// (assignment id, version); see [`ROUTING_WAITING_MAX`].
    #[serde(skip)]
    pub routing_waiting: BTreeMap<(String, u32), RoutingRecord>,
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
        self.assignment_order = self
            .assignments
            .values()
            .map(|a| (a.created_at_ms, a.id.clone()))
            .collect();
        self.assignments_ended = self
            .assignments
            .values()
            .filter(|a| !a.status.is_open())
            .map(|a| (a.updated_at_ms, a.id.clone()))
            .collect();
    }

    /// Applies a routing record if it is the next version of its
    /// assignment (a `Created` record: version 1 of an unknown one); one
    /// that comes early waits for the versions before it. True when it
    /// applied.
    fn apply_routing(&mut self, record: &RoutingRecord) -> bool {
        let id = record.assignment_id.to_string();
        let next = self.assignments.get(&id).map_or(1, |a| a.version + 1);
        if record.version < next {
            return false;
        }
        if record.version > next {
            if self.routing_waiting.len() < ROUTING_WAITING_MAX {
                self.routing_waiting
                    .insert((id, record.version), record.clone());
            } else {
                tracing::warn!(assignment = %id, version = record.version, "routing record dropped: too many records wait for an earlier version");
            }
            return false;
        }
        if !self.advance_assignment(&id, record) {
            return false;
        }
        // The versions that came early, in order.
        let mut version = record.version + 1;
        while let Some(waiting) = self.routing_waiting.remove(&(id.clone(), version)) {
            if !self.advance_assignment(&id, &waiting) {
                break;
            }
            version += 1;
        }
        true
    }

    /// Applies `record`, the next version of assignment `id`, if its
    /// transition fits the assignment's status (as the engine's own
    /// replay checks it); emits the webhook events of the steps it makes.
    fn advance_assignment(&mut self, id: &str, record: &RoutingRecord) -> bool {
        let (version, at_ms) = (record.version, record.at_ms);
        let step = |kind: TransitionKind, agent_id: Option<&String>| Transition {
            version,
            at_ms,
            kind,
            agent_id: agent_id.cloned(),
        };
        let mut steps = Vec::with_capacity(2);
        match &record.change {
            RoutingChange::Created {
                agency_id,
                lead_id,
                reference,
                offer,
                lead: _,
            } => {
                if version != 1 || self.assignments.contains_key(id) {
                    return false;
                }
                steps.push(step(TransitionKind::Created, None));
                steps.push(match offer {
                    Some(o) if o.escalated => step(TransitionKind::Escalated, Some(&o.agent_id)),
                    Some(o) => step(TransitionKind::Offered, Some(&o.agent_id)),
                    None => step(TransitionKind::Unassigned, None),
                });
                let assignment = Assignment {
                    id: id.to_string(),
                    tenant: agency_id.clone(),
                    lead_id: lead_id.map(|l| l.to_string()),
                    reference: reference.clone(),
                    status: if offer.is_some() {
                        AssignmentStatus::Offered
                    } else {
                        AssignmentStatus::Unassigned
                    },
                    agent_id: offer.as_ref().map(|o| o.agent_id.clone()),
                    escalated: offer.as_ref().is_some_and(|o| o.escalated),
                    failures: 0,
                    offer_expires_at_ms: offer.as_ref().map(|o| o.expires_at_ms),
                    version: 1,
                    created_at_ms: at_ms,
                    updated_at_ms: at_ms,
                    history: Vec::new(),
                };
                self.assignment_order.insert((at_ms, id.to_string()));
                self.assignments.insert(id.to_string(), assignment);
            }
            change => {
                let Some(a) = self.assignments.get_mut(id) else {
                    return false;
                };
                if version != a.version + 1 {
                    return false;
                }
                let held = a.agent_id.as_ref();
                match change {
                    RoutingChange::Created { .. } => return false,
                    RoutingChange::Accepted { agent_id } => {
                        if a.status != AssignmentStatus::Offered || held != Some(agent_id) {
                            return false;
                        }
                        a.status = AssignmentStatus::Accepted;
                        a.offer_expires_at_ms = None;
                        steps.push(step(TransitionKind::Accepted, Some(agent_id)));
                    }
                    RoutingChange::Declined {
                        agent_id,
                        expired,
                        next,
                    } => {
                        if a.status != AssignmentStatus::Offered || held != Some(agent_id) {
                            return false;
                        }
                        a.failures = a.failures.saturating_add(1);
                        let kind = if *expired {
                            TransitionKind::Expired
                        } else {
                            TransitionKind::Rejected
                        };
                        steps.push(step(kind, Some(agent_id)));
                        match next {
                            Some(o) => {
                                a.agent_id = Some(o.agent_id.clone());
                                a.offer_expires_at_ms = Some(o.expires_at_ms);
                                a.escalated |= o.escalated;
                                let kind = if o.escalated {
                                    TransitionKind::Escalated
                                } else {
                                    TransitionKind::Offered
                                };
                                steps.push(step(kind, Some(&o.agent_id)));
                            }
                            None => {
                                a.status = AssignmentStatus::Unassigned;
                                a.agent_id = None;
                                a.offer_expires_at_ms = None;
                                steps.push(step(TransitionKind::Unassigned, None));
                            }
                        }
                    }
                    RoutingChange::Closed { agent_id } => {
                        if !a.status.is_open() || held != Some(agent_id) {
                            return false;
                        }
                        a.status = AssignmentStatus::Closed;
                        a.offer_expires_at_ms = None;
                        steps.push(step(TransitionKind::Closed, Some(agent_id)));
                    }
                }
                a.version = version;
                a.updated_at_ms = at_ms;
            }
        }
        let a = self
            .assignments
            .get_mut(id)
            .expect("invariant: the assignment was found or inserted above");
        for s in &steps {
            if a.history.len() >= ASSIGNMENT_HISTORY_MAX {
                a.history.remove(1);
            }
            a.history.push(s.clone());
        }
        let (tenant, data, ended) = (
            a.tenant.clone(),
            serde_json::to_value(&*a).unwrap_or_default(),
            !a.status.is_open(),
        );
        for s in &steps {
            if let Some(event) = s.kind.webhook_event() {
                let event_id = format!("{id}.{version}.{}", wire_name(&s.kind));
                self.emit(&tenant, event, &event_id, at_ms, data.clone());
            }
        }
        if ended {
            self.assignments_ended.insert((at_ms, id.to_string()));
            self.forget_ended(ASSIGNMENTS_TERMINAL_KEPT);
        }
        true
    }

    /// Forgets the terminal assignments that ended first, past `kept`.
    /// A forgotten assignment's records change nothing if they come again
    /// (a transition finds no assignment), except its `Created` record,
    /// which would make it anew: journal replay never brings one back
    /// that old (a snapshot's tail starts after its position).
    fn forget_ended(&mut self, kept: usize) {
        while self.assignments_ended.len() > kept {
            let Some((_, old)) = self.assignments_ended.pop_first() else {
                break;
            };
            if let Some(gone) = self.assignments.remove(&old) {
                self.assignment_order.remove(&(gone.created_at_ms, old));
            }
        }
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
    /// A committed transition of an assignment (routed, accepted,
    /// declined or expired and offered on, closed).
    Routing(Box<RoutingRecord>),
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
            Feed::Routing(record) => {
                self.apply_routing(record);
            }
        }
    }

    /// Applies a committed routing record (live from the feed or the
    /// assignment routes, or on replay): the assignment's state and
    /// history, and the webhook deliveries of its steps. Idempotent by
    /// (assignment, version): only the next version of an assignment
    /// applies; a copy changes nothing, and a record that comes before the
    /// version it follows waits for it. True when it applied.
    pub fn apply_routing(&self, record: &RoutingRecord) -> bool {
        self.state.write().apply_routing(record)
    }

    /// An assignment by id.
    pub fn assignment(&self, id: &str) -> Option<Assignment> {
        self.state.read().assignments.get(id).cloned()
    }

    /// The agents and teams of this store as the engine's routing spec
    /// (agency policies are the engine's alone: none here). For a state
    /// restored from a snapshot taken before the engine kept routing,
    /// whose agents and teams were admin records only.
    pub fn routing_spec(&self) -> leadex_engine::routing::spec::RoutingSpec {
        let state = self.state.read();
        leadex_engine::routing::spec::RoutingSpec {
            agents: state
                .agents
                .values()
                .map(crate::routing::agent_spec)
                .collect(),
            agencies: Vec::new(),
            teams: state
                .teams
                .values()
                .map(crate::routing::team_spec)
                .collect(),
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

    mod routing {
        use super::*;
        use leadex_engine::lead::{UsState, Vertical, Zip};
        use leadex_engine::routing::assign::{AssignmentId, Offer, RouteLead};

        const ID: AssignmentId = AssignmentId(0xab);

        fn offer(agent: &str, escalated: bool) -> Offer {
            Offer {
                agent_id: agent.into(),
                expires_at_ms: 1_000,
                escalated,
                turn: None,
            }
        }

        fn created(offer: Option<Offer>) -> RoutingRecord {
            RoutingRecord {
                assignment_id: ID,
                version: 1,
                at_ms: 10,
                change: RoutingChange::Created {
                    agency_id: "acme".into(),
                    lead_id: Some(leadex_engine::LeadId(7)),
                    reference: Some("ref".into()),
                    lead: RouteLead {
                        vertical: Vertical::Auto,
                        state: UsState::parse("CA").unwrap(),
                        zip: Zip::parse("90210").unwrap(),
                        current_carrier: None,
                        language: None,
                        score_tier: 0,
                        referring_agent: None,
                    },
                    offer,
                },
            }
        }

        fn next(version: u32, change: RoutingChange) -> RoutingRecord {
            RoutingRecord {
                assignment_id: ID,
                version,
                at_ms: 10 + i64::from(version),
                change,
            }
        }

        /// Created (offered to a1), rejected by a1 and offered to a2,
        /// accepted by a2, closed by a2.
        fn lifecycle() -> Vec<RoutingRecord> {
            vec![
                created(Some(offer("a1", false))),
                next(
                    2,
                    RoutingChange::Declined {
                        agent_id: "a1".into(),
                        expired: false,
                        next: Some(offer("a2", false)),
                    },
                ),
                next(
                    3,
                    RoutingChange::Accepted {
                        agent_id: "a2".into(),
                    },
                ),
                next(
                    4,
                    RoutingChange::Closed {
                        agent_id: "a2".into(),
                    },
                ),
            ]
        }

        fn kinds(a: &Assignment) -> Vec<(u32, TransitionKind, Option<&str>)> {
            a.history
                .iter()
                .map(|t| (t.version, t.kind, t.agent_id.as_deref()))
                .collect()
        }

        /// A store with a webhook of `acme` subscribed to every
        /// assignment event.
        fn subscribed() -> AdminStore {
            let store = AdminStore::default();
            let events = vec![
                WebhookEvent::AssignmentCreated,
                WebhookEvent::AssignmentAccepted,
                WebhookEvent::AssignmentRejected,
                WebhookEvent::AssignmentExpired,
                WebhookEvent::AssignmentEscalated,
                WebhookEvent::AssignmentClosed,
                WebhookEvent::AssignmentUnassigned,
            ];
            let webhook = Webhook {
                id: "w_1".into(),
                tenant: "acme".into(),
                url: "https://example.com/hook".into(),
                events,
                secret: "s".into(),
                created_at_ms: 1,
                deleted_at_ms: None,
            };
            store
                .apply(&record(
                    &AdminPayload::one(AdminChange::WebhookCreated { webhook }),
                    1,
                ))
                .unwrap();
            store
        }

        fn deliveries(store: &AdminStore) -> Vec<(String, WebhookEvent)> {
            store.read(|s| {
                let mut d: Vec<_> = s
                    .deliveries
                    .values()
                    .map(|d| (d.id.clone(), d.event))
                    .collect();
                d.sort_by_key(|(_, e)| e.as_str());
                d
            })
        }

        #[test]
        fn records_build_the_assignment_and_its_history_once_each() {
            let store = AdminStore::default();
            let records = lifecycle();
            assert!(store.apply_routing(&records[0]));
            let a = store.assignment(&ID.to_string()).unwrap();
            assert_eq!(
                (a.status, a.agent_id.as_deref(), a.offer_expires_at_ms),
                (AssignmentStatus::Offered, Some("a1"), Some(1_000))
            );
            assert_eq!(a.lead_id, Some(leadex_engine::LeadId(7).to_string()));
            assert!(!store.apply_routing(&records[0]), "a copy of Created");
            assert!(store.apply_routing(&records[1]));
            assert!(!store.apply_routing(&records[1]), "a copy of version 2");
            assert!(store.apply_routing(&records[2]));
            assert!(store.apply_routing(&records[3]));
            let a = store.assignment(&ID.to_string()).unwrap();
            assert_eq!(
                (a.status, a.agent_id.as_deref(), a.failures, a.version),
                (AssignmentStatus::Closed, Some("a2"), 1, 4)
            );
            assert_eq!((a.created_at_ms, a.updated_at_ms), (10, 14));
            assert_eq!(a.offer_expires_at_ms, None);
            use TransitionKind::*;
            assert_eq!(
                kinds(&a),
                vec![
                    (1, Created, None),
                    (1, Offered, Some("a1")),
                    (2, Rejected, Some("a1")),
                    (2, Offered, Some("a2")),
                    (3, Accepted, Some("a2")),
                    (4, Closed, Some("a2")),
                ]
            );
            for r in &records {
                assert!(!store.apply_routing(r), "replayed again: nothing changes");
            }
            assert_eq!(store.assignment(&ID.to_string()).unwrap(), a);
        }

        #[test]
        fn a_record_that_does_not_fit_the_status_or_the_agent_changes_nothing() {
            let store = AdminStore::default();
            store.apply_routing(&created(Some(offer("a1", false))));
            let before = store.assignment(&ID.to_string());
            for change in [
                RoutingChange::Accepted {
                    agent_id: "a2".into(),
                },
                RoutingChange::Closed {
                    agent_id: "a2".into(),
                },
                RoutingChange::Declined {
                    agent_id: "a9".into(),
                    expired: true,
                    next: None,
                },
            ] {
                assert!(!store.apply_routing(&next(2, change)));
            }
            assert_eq!(store.assignment(&ID.to_string()), before);
            // A transition of an assignment no Created record made.
            let other = RoutingRecord {
                assignment_id: AssignmentId(1),
                ..next(
                    1,
                    RoutingChange::Closed {
                        agent_id: "a1".into(),
                    },
                )
            };
            assert!(!store.apply_routing(&other));
            assert!(store.assignment(&AssignmentId(1).to_string()).is_none());
        }

        #[test]
        fn a_record_that_comes_early_waits_for_the_version_it_follows() {
            let store = AdminStore::default();
            let records = lifecycle();
            store.apply_routing(&records[0]);
            assert!(
                !store.apply_routing(&records[3]),
                "version 4 before 2 and 3"
            );
            assert!(!store.apply_routing(&records[2]), "version 3 before 2");
            assert_eq!(store.assignment(&ID.to_string()).unwrap().version, 1);
            assert!(store.apply_routing(&records[1]));
            let a = store.assignment(&ID.to_string()).unwrap();
            assert_eq!((a.version, a.status), (4, AssignmentStatus::Closed));
            assert!(store.read(|s| s.routing_waiting.is_empty()));
        }

        #[test]
        fn expiry_escalation_and_unassignment_are_steps_of_their_own() {
            let store = AdminStore::default();
            store.apply_routing(&created(Some(offer("a1", false))));
            store.apply_routing(&next(
                2,
                RoutingChange::Declined {
                    agent_id: "a1".into(),
                    expired: true,
                    next: Some(offer("m1", true)),
                },
            ));
            let a = store.assignment(&ID.to_string()).unwrap();
            assert!(a.escalated);
            store.apply_routing(&next(
                3,
                RoutingChange::Declined {
                    agent_id: "m1".into(),
                    expired: false,
                    next: None,
                },
            ));
            let a = store.assignment(&ID.to_string()).unwrap();
            use TransitionKind::*;
            assert_eq!(
                kinds(&a)[2..],
                [
                    (2, Expired, Some("a1")),
                    (2, Escalated, Some("m1")),
                    (3, Rejected, Some("m1")),
                    (3, Unassigned, None),
                ]
            );
            assert_eq!(
                (a.status, a.agent_id, a.failures),
                (AssignmentStatus::Unassigned, None, 2)
            );
            // Routed with no agent to take it: unassigned at once.
            let store = AdminStore::default();
            store.apply_routing(&created(None));
            let a = store.assignment(&ID.to_string()).unwrap();
            assert_eq!(a.status, AssignmentStatus::Unassigned);
            assert_eq!(kinds(&a), vec![(1, Created, None), (1, Unassigned, None)]);
        }

        #[test]
        fn each_step_is_one_webhook_delivery_with_a_stable_id() {
            let store = subscribed();
            for r in lifecycle() {
                store.apply_routing(&r);
            }
            let sent = deliveries(&store);
            let events: Vec<&str> = sent.iter().map(|(_, e)| e.as_str()).collect();
            assert_eq!(
                events,
                vec![
                    "assignment.accepted",
                    "assignment.closed",
                    "assignment.created",
                    "assignment.rejected",
                ],
                "one per step; an offer has no event of its own"
            );
            let body = store.read(|s| {
                s.deliveries
                    .values()
                    .find(|d| d.event == WebhookEvent::AssignmentRejected)
                    .unwrap()
                    .body
                    .clone()
            });
            let body: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(body["type"], "assignment.rejected");
            assert_eq!(body["data"]["id"], ID.to_string());
            assert_eq!(
                body["data"]["agent_id"], "a2",
                "the payload is the record after the step"
            );
            // The same records applied to another store (a replay) make the
            // same delivery ids, and a replay over a restored image makes
            // none anew.
            let again = subscribed();
            for r in lifecycle() {
                again.apply_routing(&r);
            }
            assert_eq!(deliveries(&again), sent);
            let restored = AdminStore::default();
            restored.restore(&store.image()).unwrap();
            for r in lifecycle() {
                assert!(!restored.apply_routing(&r));
            }
            assert_eq!(deliveries(&restored), sent);
        }

        #[test]
        fn assignments_survive_the_image_and_an_older_image_has_none() {
            let store = AdminStore::default();
            for r in &lifecycle()[..2] {
                store.apply_routing(r);
            }
            let copy = AdminStore::default();
            copy.restore(&store.image()).unwrap();
            assert_eq!(copy.image(), store.image());
            assert_eq!(
                copy.read(|s| (s.assignment_order.len(), s.assignments_ended.len())),
                (1, 0),
                "the indexes are rebuilt"
            );
            assert!(copy.apply_routing(&lifecycle()[2]), "and it goes on");
            let mut old: serde_json::Value = serde_json::from_slice(&store.image()).unwrap();
            old.as_object_mut().unwrap().remove("assignments");
            let older = AdminStore::default();
            older.restore(&serde_json::to_vec(&old).unwrap()).unwrap();
            assert!(older.assignment(&ID.to_string()).is_none());
        }

        #[test]
        fn terminal_assignments_past_the_bound_are_forgotten_oldest_first() {
            let store = AdminStore::default();
            for n in 1..=3u128 {
                let id = AssignmentId(n);
                let at = |v: u32| 100 * n as i64 + i64::from(v);
                store.apply_routing(&RoutingRecord {
                    assignment_id: id,
                    at_ms: at(1),
                    ..created(Some(offer("a1", false)))
                });
                store.apply_routing(&RoutingRecord {
                    assignment_id: id,
                    at_ms: at(2),
                    ..next(
                        2,
                        RoutingChange::Closed {
                            agent_id: "a1".into(),
                        },
                    )
                });
            }
            store.apply_routing(&created(Some(offer("a1", false))));
            store.state.write().forget_ended(2);
            let ids: Vec<String> = store.read(|s| s.assignments.keys().cloned().collect());
            assert_eq!(
                ids,
                vec![
                    AssignmentId(2).to_string(),
                    AssignmentId(3).to_string(),
                    ID.to_string()
                ],
                "the first to end is forgotten; an open one never is"
            );
            assert_eq!(store.read(|s| s.assignment_order.len()), 3);
        }
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
