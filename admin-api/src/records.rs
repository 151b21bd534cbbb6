//! The admin API's records: what the store keeps and what the routes show.
//! They are journaled (inside [`crate::store::AdminChange`]) and kept in
//! snapshots, so a field added later needs `#[serde(default)]`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The JSON name of a unit enum value (`"auto"`, `"exclusive"`,
/// `"quoted"`); empty for anything that is not a string in JSON.
pub(crate) fn wire_name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// A purchased lead's place in the buyer's pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LeadStatus {
    /// Bought, not yet worked.
    #[default]
    New,
    /// Contact was made.
    Contacted,
    /// At least one quote was given.
    Quoted,
    /// A policy was bound.
    Bound,
    /// Lost (no sale).
    Lost,
}

impl LeadStatus {
    /// Whether a lead may move from `self` to `next`: forward through the
    /// pipeline, to `lost` from any open state, and back to `contacted`
    /// from `lost` (a consumer who calls back).
    pub fn may_become(self, next: LeadStatus) -> bool {
        use LeadStatus::*;
        matches!(
            (self, next),
            (New, Contacted | Quoted | Lost)
                | (Contacted, Quoted | Lost)
                | (Quoted, Bound | Lost)
                | (Lost, Contacted)
        )
    }
}

/// Why a lead is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReturnReason {
    /// The phone number does not work.
    BadPhone,
    /// The e-mail address does not work.
    BadEmail,
    /// The buyer had the consumer already.
    Duplicate,
    /// Already insured with the buyer's own carrier.
    AlreadyInsuredWithBuyer,
    /// The consumer did not ask for a quote.
    DidNotRequest,
    /// The data is false or fraudulent.
    Fraud,
    /// Under age.
    Underage,
    /// Outside the buyer's targeting.
    OutsideTargeting,
}

/// A return of a purchased lead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReturnInfo {
    /// When, Unix ms.
    pub at_ms: i64,
    /// Why.
    pub reason: ReturnReason,
    /// Free text from the buyer.
    pub note: String,
    /// Credited to the campaign's budget, cents (the price paid).
    pub credited_cents: u64,
}

/// A note on a lead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Note {
    /// Note id.
    pub id: String,
    /// When, Unix ms.
    pub at_ms: i64,
    /// Key id of the author.
    pub author: String,
    /// Text.
    pub text: String,
}

/// How a contact was attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Phone call.
    Phone,
    /// Text message.
    Sms,
    /// E-mail.
    Email,
}

/// What a contact attempt achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// Spoke with the consumer.
    Reached,
    /// No answer.
    NoAnswer,
    /// Left a voicemail.
    Voicemail,
    /// The number or address is wrong.
    WrongContact,
    /// Message sent (e-mail, SMS).
    Sent,
}

/// A contact attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ContactAttempt {
    /// Attempt id.
    pub id: String,
    /// When, Unix ms.
    pub at_ms: i64,
    /// Key id of who made it.
    pub author: String,
    /// Channel.
    pub channel: Channel,
    /// Outcome.
    pub outcome: AttemptOutcome,
    /// Free text.
    pub note: String,
}

/// One buyer's purchase of a lead, with its CRM state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Purchase {
    /// Buyer account (the tenant).
    pub buyer_id: String,
    /// Campaign that bought it.
    pub campaign_id: String,
    /// `exclusive` or `shared`.
    pub sale_type: String,
    /// Price paid, cents.
    pub price_cents: u64,
    /// Pipeline status.
    pub status: LeadStatus,
    /// The return, if returned.
    pub returned: Option<ReturnInfo>,
    /// Notes, oldest first.
    pub notes: Vec<Note>,
    /// Contact attempts, oldest first.
    pub attempts: Vec<ContactAttempt>,
}

/// A sold lead as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadRecord {
    /// Lead id.
    pub lead_id: String,
    /// Ping id, for leads sold after a ping.
    pub ping_id: Option<String>,
    /// Seller.
    pub seller_id: String,
    /// Sale time, Unix ms.
    pub sold_at_ms: i64,
    /// The full lead (PII included), in the engine's encoding.
    pub lead: leadex_engine::lead::Lead,
    /// What the seller was paid in all, cents.
    pub seller_paid_cents: u64,
    /// One per buyer.
    pub purchases: Vec<Purchase>,
}

/// Status of a quote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuoteStatus {
    /// Given, not yet decided.
    Open,
    /// Accepted: a policy was created from it.
    Accepted,
    /// Declined by the consumer.
    Declined,
}

/// A quote given to a lead's consumer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Quote {
    /// Quote id.
    pub id: String,
    /// Buyer account.
    pub tenant: String,
    /// The lead.
    pub lead_id: String,
    /// Carrier quoted (lower case).
    pub carrier: String,
    /// Yearly premium, cents.
    pub premium_cents: u64,
    /// Coverage described, e.g. `100/300/100 full coverage`.
    pub coverage: String,
    /// Status.
    pub status: QuoteStatus,
    /// Key id of the author.
    pub author: String,
    /// When, Unix ms.
    pub created_at_ms: i64,
}

/// A bound policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Policy {
    /// Policy id.
    pub id: String,
    /// Buyer account.
    pub tenant: String,
    /// The lead.
    pub lead_id: String,
    /// The accepted quote.
    pub quote_id: String,
    /// Carrier.
    pub carrier: String,
    /// Carrier's policy number.
    pub policy_number: String,
    /// Yearly premium, cents (from the quote).
    pub premium_cents: u64,
    /// First day of cover, `YYYY-MM-DD`.
    pub effective_date: String,
    /// The writing agent, if any.
    pub agent_id: Option<String>,
    /// When, Unix ms.
    pub created_at_ms: i64,
}

/// Who earns a commission line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CommissionTier {
    /// The writing broker or agent.
    Broker,
    /// The broker's manager (override).
    Manager,
    /// The affiliate that brought the business.
    Affiliate,
}

/// First-year or renewal premium.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PolicyYear {
    /// The policy's first year.
    FirstYear,
    /// A renewal.
    Renewal,
}

/// Status of a commission line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CommissionStatus {
    /// Computed, not yet approved.
    Pending,
    /// Approved for payment.
    Approved,
    /// Paid.
    Paid,
}

/// One rule of a commission plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommissionRule {
    /// Tier.
    pub tier: CommissionTier,
    /// Who is paid: an agent id, or a name for affiliates. For `broker` and
    /// `manager` it may be left out: the policy's agent, or that agent's
    /// manager, is paid.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    pub payee: Option<String>,
    /// Rate on first-year premium, basis points (1500 = 15 %).
    #[schema(maximum = 10000)]
    pub first_year_bps: u32,
    /// Rate on renewal premium, basis points.
    #[schema(maximum = 10000)]
    pub renewal_bps: u32,
}

/// A buyer account's commission plan.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommissionPlan {
    /// Rules, one line each per policy (at most 10; the first-year rates
    /// add up to at most 10000, and so do the renewal rates).
    #[schema(max_items = 10)]
    pub rules: Vec<CommissionRule>,
}

/// One commission line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Commission {
    /// Commission id.
    pub id: String,
    /// Buyer account.
    pub tenant: String,
    /// The policy.
    pub policy_id: String,
    /// Tier.
    pub tier: CommissionTier,
    /// Who is paid.
    pub payee: String,
    /// First year or renewal.
    pub year: PolicyYear,
    /// Premium it is computed on, cents.
    pub premium_cents: u64,
    /// Rate, basis points.
    pub rate_bps: u32,
    /// Amount, cents: `premium_cents * rate_bps / 10000`, rounded down.
    pub amount_cents: u64,
    /// Status.
    pub status: CommissionStatus,
    /// When computed, Unix ms.
    pub created_at_ms: i64,
    /// When approved, Unix ms.
    pub approved_at_ms: Option<i64>,
    /// When paid, Unix ms.
    pub paid_at_ms: Option<i64>,
}

/// A licence: a state and a line of authority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Licence {
    /// Two-letter state.
    #[schema(value_type = leadex_engine::lead::UsState)]
    pub state: String,
    /// Line of authority, e.g. `property`, `casualty`, `life`, `health`.
    #[schema(pattern = "^(property|casualty|life|health|personal_lines|commercial)$")]
    pub line: String,
}

/// A weekly availability window, in the agent's time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Availability {
    /// Days: `mon` … `sun`.
    #[schema(value_type = Vec<leadex_engine::spec::Weekday>, min_items = 1)]
    pub days: Vec<String>,
    /// First hour, 0 to 23.
    #[schema(maximum = 23)]
    pub from_hour: u8,
    /// Hour after the last, 1 to 24.
    #[schema(minimum = 1, maximum = 24)]
    pub to_hour: u8,
}

/// An insurance agent of a buyer account (the routing issue uses these).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Agent {
    /// Agent id.
    pub id: String,
    /// Buyer account.
    pub tenant: String,
    /// Name.
    pub name: String,
    /// E-mail.
    pub email: String,
    /// Licences.
    pub licences: Vec<Licence>,
    /// Carriers the agent is appointed with (lower case).
    pub appointments: Vec<String>,
    /// The carrier the agent is captive to, if captive.
    pub captive_carrier: Option<String>,
    /// Languages (ISO 639-1, e.g. `en`, `es`).
    pub languages: Vec<String>,
    /// Most open assignments at once.
    pub capacity: u32,
    /// IANA time zone of the schedule.
    pub time_zone: String,
    /// Weekly availability; empty means always.
    pub schedule: Vec<Availability>,
    /// ZIP of the agent's office.
    pub zip: Option<String>,
    /// Manager (an agent id of the same account).
    pub manager_id: Option<String>,
    /// Team.
    pub team_id: Option<String>,
    /// Takes leads.
    pub active: bool,
    /// Verticals the agent specializes in.
    #[serde(default)]
    pub specializations: Vec<leadex_engine::lead::Vertical>,
    /// How the agent performs: conversion, response time, rating, and
    /// conversion by vertical and lead score tier.
    #[serde(default)]
    pub performance: leadex_engine::routing::spec::PerformanceSpec,
    /// The lead score tier the agent serves best: 0 (the best leads) to 3.
    #[serde(default)]
    pub quality_tier: u8,
    /// Referral and mentorship links to other agents of the account.
    #[serde(default)]
    pub links: Vec<leadex_engine::routing::spec::LinkSpec>,
}

/// A team of agents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Team {
    /// Team id.
    pub id: String,
    /// Buyer account.
    pub tenant: String,
    /// Name.
    pub name: String,
    /// The team's manager (an agent id).
    pub manager_id: Option<String>,
}

/// Where an assignment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AssignmentStatus {
    /// Offered to `agent_id`, waiting for an answer until
    /// `offer_expires_at_ms`.
    Offered,
    /// Accepted by `agent_id`.
    Accepted,
    /// No agent could take it (terminal).
    Unassigned,
    /// Closed (terminal).
    Closed,
}

impl AssignmentStatus {
    /// Offered or accepted: it can still change.
    pub fn is_open(self) -> bool {
        matches!(self, AssignmentStatus::Offered | AssignmentStatus::Accepted)
    }
}

/// What happened to an assignment at one step of its history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransitionKind {
    /// The lead was routed (followed by `offered` or `unassigned`).
    Created,
    /// Offered to `agent_id` (the first offer, or the next candidate's).
    Offered,
    /// `agent_id` accepted it.
    Accepted,
    /// `agent_id` rejected the offer.
    Rejected,
    /// `agent_id`'s offer lapsed unaccepted.
    Expired,
    /// Offered to the manager `agent_id` after too many failed offers.
    Escalated,
    /// `agent_id` closed it (worked, or withdrawn while offered).
    Closed,
    /// No agent could take it.
    Unassigned,
}

impl TransitionKind {
    /// The webhook event of this step; `offered` has none (the record of
    /// the step before it, `created`, `rejected` or `expired`, names the
    /// new agent).
    pub fn webhook_event(self) -> Option<WebhookEvent> {
        Some(match self {
            TransitionKind::Created => WebhookEvent::AssignmentCreated,
            TransitionKind::Offered => return None,
            TransitionKind::Accepted => WebhookEvent::AssignmentAccepted,
            TransitionKind::Rejected => WebhookEvent::AssignmentRejected,
            TransitionKind::Expired => WebhookEvent::AssignmentExpired,
            TransitionKind::Escalated => WebhookEvent::AssignmentEscalated,
            TransitionKind::Closed => WebhookEvent::AssignmentClosed,
            TransitionKind::Unassigned => WebhookEvent::AssignmentUnassigned,
        })
    }
}

/// One step of an assignment's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Transition {
    /// The version of the assignment the step made (one journal record
    /// makes one version, and one or two steps: `rejected` then `offered`).
    pub version: u32,
    /// When, Unix ms.
    pub at_ms: i64,
    /// What happened.
    pub kind: TransitionKind,
    /// The agent concerned, if any.
    pub agent_id: Option<String>,
}

/// A lead routed to the agents of an agency (a buyer account), with its
/// history. Kept for open and terminal assignments (see
/// [`crate::store::ASSIGNMENTS_TERMINAL_KEPT`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Assignment {
    /// Assignment id (`a_` and 32 hex digits).
    pub id: String,
    /// The agency: the buyer account whose agents it is routed to.
    pub tenant: String,
    /// The exchange's lead id, for a lead the exchange sold.
    pub lead_id: Option<String>,
    /// The caller's reference for the lead, if any.
    pub reference: Option<String>,
    /// Status.
    pub status: AssignmentStatus,
    /// The agent it is offered to or held by; for a closed one, the agent
    /// that held it last; none when unassigned.
    pub agent_id: Option<String>,
    /// True once offered to a manager after failed offers.
    pub escalated: bool,
    /// Offers rejected or expired so far.
    pub failures: u8,
    /// When the current offer lapses, Unix ms (offered only).
    pub offer_expires_at_ms: Option<i64>,
    /// Version: the number of journal records applied.
    pub version: u32,
    /// Created, Unix ms.
    pub created_at_ms: i64,
    /// Last change, Unix ms.
    pub updated_at_ms: i64,
    /// Every step, oldest first (at most
    /// [`crate::store::ASSIGNMENT_HISTORY_MAX`]: past it the oldest steps
    /// after `created` are dropped).
    pub history: Vec<Transition>,
}

/// A traffic source of a seller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Source {
    /// Source id (what pings carry as `source_id`).
    pub id: String,
    /// Seller.
    pub seller_id: String,
    /// Name.
    pub name: String,
    /// Sends traffic.
    pub active: bool,
}

/// Events a webhook can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum WebhookEvent {
    /// A lead was sold to the account.
    #[serde(rename = "lead.sold")]
    LeadSold,
    /// The account returned a lead.
    #[serde(rename = "lead.returned")]
    LeadReturned,
    /// A lead's status changed.
    #[serde(rename = "lead.status_changed")]
    LeadStatusChanged,
    /// A quote was given.
    #[serde(rename = "quote.created")]
    QuoteCreated,
    /// A policy was created.
    #[serde(rename = "policy.created")]
    PolicyCreated,
    /// A commission was approved.
    #[serde(rename = "commission.approved")]
    CommissionApproved,
    /// A lead was routed: an assignment was made (offered, or unassigned).
    #[serde(rename = "assignment.created")]
    AssignmentCreated,
    /// An agent accepted an assignment.
    #[serde(rename = "assignment.accepted")]
    AssignmentAccepted,
    /// An agent rejected an assignment (it is offered on, or unassigned).
    #[serde(rename = "assignment.rejected")]
    AssignmentRejected,
    /// An offer lapsed unaccepted (it is offered on, or unassigned).
    #[serde(rename = "assignment.expired")]
    AssignmentExpired,
    /// An assignment was escalated to a manager.
    #[serde(rename = "assignment.escalated")]
    AssignmentEscalated,
    /// An assignment was closed.
    #[serde(rename = "assignment.closed")]
    AssignmentClosed,
    /// No agent could take an assignment.
    #[serde(rename = "assignment.unassigned")]
    AssignmentUnassigned,
}

impl WebhookEvent {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEvent::LeadSold => "lead.sold",
            WebhookEvent::LeadReturned => "lead.returned",
            WebhookEvent::LeadStatusChanged => "lead.status_changed",
            WebhookEvent::QuoteCreated => "quote.created",
            WebhookEvent::PolicyCreated => "policy.created",
            WebhookEvent::CommissionApproved => "commission.approved",
            WebhookEvent::AssignmentCreated => "assignment.created",
            WebhookEvent::AssignmentAccepted => "assignment.accepted",
            WebhookEvent::AssignmentRejected => "assignment.rejected",
            WebhookEvent::AssignmentExpired => "assignment.expired",
            WebhookEvent::AssignmentEscalated => "assignment.escalated",
            WebhookEvent::AssignmentClosed => "assignment.closed",
            WebhookEvent::AssignmentUnassigned => "assignment.unassigned",
        }
    }
}

/// A webhook subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    /// Subscription id.
    pub id: String,
    /// Buyer account whose events are sent.
    pub tenant: String,
    /// Target URL.
    pub url: String,
    /// Events sent.
    pub events: Vec<WebhookEvent>,
    /// Signing secret (shown once at creation).
    pub secret: String,
    /// Created, Unix ms.
    pub created_at_ms: i64,
    /// Deleted, Unix ms (deliveries stop; the log stays readable).
    pub deleted_at_ms: Option<i64>,
}

/// Status of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    /// Received with a 2xx.
    Delivered,
    /// Gave up after the last attempt.
    Failed,
}

/// One attempt to deliver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeliveryAttempt {
    /// When, Unix ms.
    pub at_ms: i64,
    /// HTTP status received, if any.
    pub status: Option<u16>,
    /// What went wrong, if anything.
    pub error: Option<String>,
    /// Round trip, ms.
    pub elapsed_ms: u64,
}

/// One event to deliver to one subscription, with its log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Delivery {
    /// Delivery id (stable: derived from the event and the subscription).
    pub id: String,
    /// Subscription.
    pub webhook_id: String,
    /// Event type.
    pub event: WebhookEvent,
    /// The JSON body sent.
    pub body: String,
    /// Created, Unix ms.
    pub created_at_ms: i64,
    /// Status.
    pub status: DeliveryStatus,
    /// Next attempt, Unix ms (pending only).
    pub next_attempt_at_ms: i64,
    /// Attempts so far.
    pub attempts: Vec<DeliveryAttempt>,
}

/// Kind of a ledger entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LedgerKind {
    /// Money added to the prepaid budget.
    TopUp,
    /// The credit limit was set (amount: the change).
    CreditLimit,
    /// A lead bought.
    Charge,
    /// A returned lead's price given back.
    Refund,
}

/// One line of a campaign's ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LedgerEntry {
    /// Entry id.
    pub id: String,
    /// Campaign.
    pub campaign_id: String,
    /// Buyer account.
    pub buyer_id: String,
    /// When, Unix ms.
    pub at_ms: i64,
    /// Kind.
    pub kind: LedgerKind,
    /// Signed amount, cents: what the entry adds to the money available
    /// (a charge is negative).
    pub amount_cents: i64,
    /// The lead, for charges and refunds.
    pub lead_id: Option<String>,
    /// Key id of who made it (none for charges).
    pub actor: Option<String>,
}

/// One audited mutation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    /// The journal record's id.
    pub id: String,
    /// When, Unix ms.
    pub at_ms: i64,
    /// Key id of the actor.
    pub actor: String,
    /// The actor's role.
    pub role: crate::keys::Role,
    /// The actor's account, if tenant-bound.
    pub tenant: Option<String>,
    /// `METHOD /path`.
    pub route: String,
    /// What was changed, e.g. `campaign c1`.
    pub target: String,
    /// The record before (null for creations), or for a change of status
    /// (campaign, lead, quote, commission) the status before, a string.
    pub before: Option<serde_json::Value>,
    /// The record after (null for deletions), or for a change of status
    /// the status after, a string.
    pub after: Option<serde_json::Value>,
}

/// A record that belongs to one buyer account (its `tenant`).
pub(crate) trait Owned {
    /// The account.
    fn tenant(&self) -> &str;
}

macro_rules! owned {
    ($($t:ty),+) => {$(
        impl Owned for $t {
            fn tenant(&self) -> &str {
                &self.tenant
            }
        }
    )+};
}
owned!(Quote, Policy, Commission, Agent, Team, Webhook, Assignment);

/// The records of `account`, or every account's for `None` (an admin
/// listing all), as [`crate::Principal::account`] resolves it: the one
/// place list routes apply tenancy.
pub(crate) fn of_account<'a, T: Owned + 'a>(
    records: impl IntoIterator<Item = &'a T>,
    account: Option<&'a str>,
) -> impl Iterator<Item = &'a T> {
    records
        .into_iter()
        .filter(move |r| account.is_none_or(|a| r.tenant() == a))
}
