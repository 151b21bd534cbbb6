//! Assignments: a routed lead offered to an agent, and its lifecycle.
//!
//! ```text
//!   route ──▶ offered ──accept──▶ accepted ──close──▶ closed
//!               │  ▲                                     ▲
//!     reject /  │  │ next candidate                      │
//!     expire    ▼  │ (or the manager, after              │
//!            declined  `escalate_after` failures) ──close┘
//!               │
//!               └──▶ unassigned (no candidate left)
//! ```
//!
//! Every transition is one [`RoutingRecord`] journaled before it is
//! answered, and changes workload counters exactly once: an offer takes one
//! unit of the agent's capacity, a decline or expiry gives it back (and the
//! next offer takes one), acceptance changes nothing, closing gives it back.
//!
//! The live path is two-phase, as a sale is ([`crate::Engine::post`]):
//! [`Router::open_assignment`] or [`Router::decide`] makes the decision and
//! reserves the next agent's capacity by compare-and-swap (so capacity is
//! never exceeded), marking the assignment *busy*; the caller journals
//! [`RoutingTicket::event`]; once durable, [`Router::commit`] installs the
//! new state and releases the previous agent's unit; if it failed,
//! [`Router::rollback`] releases the reservation and nothing changed. A
//! unit is released only at commit, so a rollback never has to take back
//! capacity someone else may have taken.
//!
//! Replay ([`Router::apply`]) applies the same records to the same states
//! and moves the counters by the same amounts, idempotent by
//! (assignment id, version): a record whose version is not the next one of
//! its assignment changes nothing.

use super::spec::{AgencySpec, AgentSpec, RoutingSpec, TeamSpec};
use super::{AgentGraph, RouteError, RouteOutcome, RouteRequest, Workloads};
use crate::event::{Event, MarketChange};
use crate::ids::LeadId;
use crate::lead::{Lead, UsState, Vertical, Zip};
use crate::spec::SpecError;
use arc_swap::ArcSwap;
use dashmap::DashMap;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Most assignments open at once (offered or accepted): bounds memory and
/// the expiry scan.
pub const OPEN_ASSIGNMENTS_MAX: usize = 1_000_000;

/// Most leads waiting to be routed after their sale.
pub const BACKLOG_MAX: usize = 100_000;

/// Identifies an assignment. Text form `a_<32 hex>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AssignmentId(pub u128);

impl AssignmentId {
    /// Text prefix.
    pub const PREFIX: &'static str = "a_";

    /// Parses the text form.
    pub fn parse(s: &str) -> Option<AssignmentId> {
        let hex = s.strip_prefix(Self::PREFIX)?;
        if hex.len() != 32
            || !hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return None;
        }
        u128::from_str_radix(hex, 16).ok().map(AssignmentId)
    }
}

impl std::fmt::Display for AssignmentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{:032x}", Self::PREFIX, self.0)
    }
}

impl std::fmt::Debug for AssignmentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// What routing needs to know of a lead (no PII).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RouteLead {
    /// Vertical.
    pub vertical: Vertical,
    /// State.
    pub state: UsState,
    /// ZIP.
    pub zip: Zip,
    /// The consumer's current carrier (lower case), if any.
    pub current_carrier: Option<String>,
    /// The consumer's language (ISO 639-1), if known.
    pub language: Option<String>,
    /// Lead score tier, 0 (best) to 3.
    pub score_tier: u8,
    /// The agent who referred the lead, if any.
    pub referring_agent: Option<String>,
}

impl RouteLead {
    /// A sold lead as routing sees it. The exchange keeps no lead score
    /// and no language yet: tier 0 and no language.
    pub fn of_lead(lead: &Lead) -> RouteLead {
        let a = &lead.ping.attributes;
        RouteLead {
            vertical: a.vertical,
            state: a.state,
            zip: a.zip,
            current_carrier: a.current_carrier.as_ref().map(|c| c.to_lowercase()),
            language: None,
            score_tier: 0,
            referring_agent: None,
        }
    }
}

/// An offer of an assignment to an agent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Offer {
    /// The agent.
    pub agent_id: String,
    /// When the offer lapses unless accepted, Unix ms.
    pub expires_at_ms: i64,
    /// True when this is the escalation to a manager.
    pub escalated: bool,
    /// The round-robin turn the route that chose the agent took (see
    /// `RouteOutcome::turn`); replay moves the agency's cursor past it.
    pub turn: Option<u64>,
}

/// One transition of an assignment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RoutingChange {
    /// A lead was routed: offered to an agent, or unassigned (no agent
    /// could take it).
    Created {
        /// The agency (buyer account).
        agency_id: String,
        /// The exchange's lead id, for leads it sold.
        lead_id: Option<LeadId>,
        /// The caller's reference for the lead, if any.
        reference: Option<String>,
        /// The lead.
        lead: RouteLead,
        /// The first offer; `None`: unassigned.
        offer: Option<Offer>,
    },
    /// The agent accepted the offer.
    Accepted {
        /// The agent.
        agent_id: String,
    },
    /// The offer was rejected by the agent or expired: its unit of capacity
    /// is given back, and the lead is offered to `next` (the next candidate,
    /// or the manager on escalation), or unassigned when `None`.
    Declined {
        /// The agent whose offer ended.
        agent_id: String,
        /// True when the offer timed out (false: the agent rejected it).
        expired: bool,
        /// The next offer.
        next: Option<Offer>,
    },
    /// The assignment was closed (worked, or withdrawn while offered): the
    /// agent's unit of capacity is given back.
    Closed {
        /// The agent that held it.
        agent_id: String,
    },
}

impl RoutingChange {
    /// The offer this change makes: the first one, or the next after a
    /// decline.
    pub fn new_offer(&self) -> Option<&Offer> {
        match self {
            RoutingChange::Created { offer, .. } => offer.as_ref(),
            RoutingChange::Declined { next, .. } => next.as_ref(),
            RoutingChange::Accepted { .. } | RoutingChange::Closed { .. } => None,
        }
    }
}

/// A transition as the journal carries it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RoutingRecord {
    /// The assignment.
    pub assignment_id: AssignmentId,
    /// 1 for `Created`, one more per transition: replay applies a record
    /// only when it is the next version of its assignment.
    pub version: u32,
    /// When, Unix ms.
    pub at_ms: i64,
    /// The transition.
    pub change: RoutingChange,
}

/// Where an assignment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Offered to `agent`, waiting for an answer.
    Offered,
    /// Accepted by `agent`.
    Accepted,
    /// No agent could take it (terminal).
    Unassigned,
    /// Closed (terminal).
    Closed,
}

impl Status {
    /// Offered or accepted: the agent holds one unit of capacity.
    pub fn holds_capacity(self) -> bool {
        matches!(self, Status::Offered | Status::Accepted)
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Offered => "offered",
            Status::Accepted => "accepted",
            Status::Unassigned => "unassigned",
            Status::Closed => "closed",
        }
    }
}

/// An assignment as it stands (open assignments are held by the engine;
/// the admin API keeps every assignment's history).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AssignmentState {
    /// Id.
    pub id: AssignmentId,
    /// Agency.
    pub agency_id: String,
    /// The exchange's lead id, if it sold the lead.
    pub lead_id: Option<LeadId>,
    /// The caller's reference.
    pub reference: Option<String>,
    /// The lead.
    pub lead: RouteLead,
    /// Version: the number of records applied.
    pub version: u32,
    /// Status.
    pub status: Status,
    /// The agent offered or holding it.
    pub agent_id: Option<String>,
    /// End of the current offer, Unix ms (0 unless offered).
    pub offer_expires_at_ms: i64,
    /// Every agent offered so far, in order.
    pub offered: Vec<String>,
    /// Offers declined or expired so far.
    pub failures: u8,
    /// True once escalated to a manager.
    pub escalated: bool,
    /// Created, Unix ms.
    pub created_at_ms: i64,
    /// Last transition, Unix ms.
    pub updated_at_ms: i64,
}

/// How a counter moves for one record: the agent released, the agent taken.
struct Moves {
    release: Option<String>,
    take: Option<String>,
}

impl AssignmentState {
    /// The state a `Created` record makes.
    fn created(record: &RoutingRecord) -> Option<AssignmentState> {
        let RoutingChange::Created {
            agency_id,
            lead_id,
            reference,
            lead,
            offer,
        } = &record.change
        else {
            return None;
        };
        Some(AssignmentState {
            id: record.assignment_id,
            agency_id: agency_id.clone(),
            lead_id: *lead_id,
            reference: reference.clone(),
            lead: lead.clone(),
            version: 1,
            status: if offer.is_some() {
                Status::Offered
            } else {
                Status::Unassigned
            },
            agent_id: offer.as_ref().map(|o| o.agent_id.clone()),
            offer_expires_at_ms: offer.as_ref().map_or(0, |o| o.expires_at_ms),
            offered: offer.iter().map(|o| o.agent_id.clone()).collect(),
            failures: 0,
            escalated: offer.as_ref().is_some_and(|o| o.escalated),
            created_at_ms: record.at_ms,
            updated_at_ms: record.at_ms,
        })
    }

    /// Applies a transition record (not `Created`) if it is the next
    /// version and fits the status; returns the counter moves, or `None`
    /// when it changes nothing.
    fn advance(&mut self, record: &RoutingRecord) -> Option<Moves> {
        if record.version != self.version + 1 {
            return None;
        }
        let held = self.agent_id.as_deref();
        let moves = match &record.change {
            RoutingChange::Created { .. } => return None,
            RoutingChange::Accepted { agent_id } => {
                if self.status != Status::Offered || held != Some(agent_id) {
                    return None;
                }
                self.status = Status::Accepted;
                self.offer_expires_at_ms = 0;
                Moves {
                    release: None,
                    take: None,
                }
            }
            RoutingChange::Declined {
                agent_id,
                next,
                expired: _,
            } => {
                if self.status != Status::Offered || held != Some(agent_id) {
                    return None;
                }
                self.failures = self.failures.saturating_add(1);
                match next {
                    Some(o) => {
                        self.status = Status::Offered;
                        self.agent_id = Some(o.agent_id.clone());
                        self.offer_expires_at_ms = o.expires_at_ms;
                        self.offered.push(o.agent_id.clone());
                        self.escalated |= o.escalated;
                    }
                    None => {
                        self.status = Status::Unassigned;
                        self.agent_id = None;
                        self.offer_expires_at_ms = 0;
                    }
                }
                Moves {
                    release: Some(agent_id.clone()),
                    take: next.as_ref().map(|o| o.agent_id.clone()),
                }
            }
            RoutingChange::Closed { agent_id } => {
                if !self.status.holds_capacity() || held != Some(agent_id) {
                    return None;
                }
                self.status = Status::Closed;
                self.agent_id = None;
                self.offer_expires_at_ms = 0;
                Moves {
                    release: Some(agent_id.clone()),
                    take: None,
                }
            }
        };
        self.version = record.version;
        self.updated_at_ms = record.at_ms;
        Some(moves)
    }
}

/// An open assignment: its state, and whether a transition of it is
/// waiting for the journal.
#[derive(Debug)]
struct Cell {
    state: AssignmentState,
    busy: bool,
}

/// A lead sold by a campaign whose delivery is `route`, not routed yet.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Pending {
    /// The lead.
    pub lead_id: LeadId,
    /// The agency that bought it.
    pub agency_id: String,
    /// What routing needs of it.
    pub lead: RouteLead,
    /// Sale time, Unix ms.
    pub sold_at_ms: i64,
}

/// Routing state as a snapshot stores it: the spec, the open assignments,
/// the terminal ones still remembered (for idempotent replay), the
/// backlog.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct RoutingImage {
    /// Agents, teams and policies.
    pub spec: RoutingSpec,
    /// Open assignments, by id.
    pub open: Vec<AssignmentState>,
    /// Terminal assignments remembered: (id, version, at ms), by id.
    pub done: Vec<(u128, u32, i64)>,
    /// Leads waiting to be routed, by lead id.
    pub backlog: Vec<Pending>,
    /// Round-robin cursors that are not zero, by agency id.
    pub cursors: Vec<(String, u64)>,
}

/// Why a routing request was refused, with a stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoutingError {
    /// The agency has no agents.
    #[error("the agency has no agents")]
    UnknownAgency,
    /// `score_tier` is above 3.
    #[error("score_tier must be 0 to 3")]
    BadTier,
    /// No open assignment with this id.
    #[error("no open assignment with this id")]
    NotFound,
    /// Another transition of the assignment is being stored.
    #[error("another change of this assignment is in progress; retry")]
    Busy,
    /// The assignment is not offered (accept, reject) or not open (close).
    #[error("the assignment is {0}, not offered")]
    NotOffered(&'static str),
    /// The named agent is not the one the assignment is offered to.
    #[error("the assignment is offered to another agent")]
    WrongAgent,
    /// A bounded store is full.
    #[error("routing is at capacity: {0}")]
    Overloaded(&'static str),
}

impl RoutingError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            RoutingError::UnknownAgency => "unknown_agency",
            RoutingError::BadTier => "invalid_field",
            RoutingError::NotFound => "not_found",
            RoutingError::Busy => "assignment_busy",
            RoutingError::NotOffered(_) => "assignment_not_offered",
            RoutingError::WrongAgent => "wrong_agent",
            RoutingError::Overloaded(_) => "overloaded",
        }
    }
}

impl From<RouteError> for RoutingError {
    fn from(e: RouteError) -> Self {
        match e {
            RouteError::UnknownAgency => RoutingError::UnknownAgency,
            RouteError::BadTier => RoutingError::BadTier,
        }
    }
}

/// What an agent or the sweeper does to an open assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'a> {
    /// The offered agent takes it (`None`: whoever it is offered to).
    Accept(Option<&'a str>),
    /// The offered agent turns it down.
    Reject(Option<&'a str>),
    /// The offer's time is up (the sweeper).
    Expire,
    /// The holder is done with it, or the offer is withdrawn (`None`:
    /// whoever holds it).
    Close(Option<&'a str>),
}

/// A decision waiting for the journal: exactly one of [`Router::commit`]
/// or [`Router::rollback`] must follow.
#[derive(Debug)]
pub struct RoutingTicket {
    /// The record to journal (as `Event::Routing`).
    pub record: RoutingRecord,
    /// The route behind a new offer (ranked candidates with their factor
    /// contributions), when one was run.
    pub outcome: Option<RouteOutcome>,
    /// The graph the decision was made on (to name agents by index).
    pub graph: Arc<AgentGraph>,
    /// Agent index whose capacity was reserved for the new offer.
    reserved: Option<u32>,
}

impl RoutingTicket {
    /// The record as a journal event.
    pub fn event(&self) -> Event {
        Event::Routing(self.record.clone())
    }
}

/// Routing transitions committed by this process, by kind (for metrics;
/// replayed records are not counted). `Relaxed` throughout: statistics.
#[derive(Debug, Default)]
pub struct RoutingStats {
    /// Assignments created (offered or unassigned).
    pub created: AtomicU64,
    /// Offers made (first offers, next candidates, escalations).
    pub offered: AtomicU64,
    /// Offers accepted.
    pub accepted: AtomicU64,
    /// Offers rejected by the agent.
    pub rejected: AtomicU64,
    /// Offers expired.
    pub expired: AtomicU64,
    /// Offers escalated to a manager.
    pub escalated: AtomicU64,
    /// Assignments left unassigned.
    pub unassigned: AtomicU64,
    /// Assignments closed.
    pub closed: AtomicU64,
}

impl RoutingStats {
    fn count(&self, change: &RoutingChange) {
        let add = |c: &AtomicU64| {
            c.fetch_add(1, Ordering::Relaxed);
        };
        let offer = |o: &Option<Offer>| match o {
            Some(o) => {
                add(&self.offered);
                if o.escalated {
                    add(&self.escalated);
                }
            }
            None => add(&self.unassigned),
        };
        match change {
            RoutingChange::Created { offer: o, .. } => {
                add(&self.created);
                offer(o);
            }
            RoutingChange::Accepted { .. } => add(&self.accepted),
            RoutingChange::Declined { expired, next, .. } => {
                add(if *expired {
                    &self.expired
                } else {
                    &self.rejected
                });
                offer(next);
            }
            RoutingChange::Closed { .. } => add(&self.closed),
        }
    }
}

/// Routing inside the engine: the spec and the compiled graph (swapped
/// whole on a change), workload counters, open assignments, and the
/// backlog of sold leads to route.
pub struct Router {
    spec: ArcSwap<RoutingSpec>,
    graph: ArcSwap<AgentGraph>,
    workloads: Arc<Workloads>,
    /// Serializes spec changes (control plane only).
    write: Mutex<()>,
    /// Open assignments. The mutex of a cell is held only while deciding
    /// (never across the journal); `busy` keeps a second transition out
    /// until the first is committed or rolled back.
    open: DashMap<AssignmentId, Arc<Mutex<Cell>>>,
    /// Terminal assignments remembered for idempotent replay: version and
    /// time, swept after the engine's memory window.
    done: DashMap<AssignmentId, (u32, i64)>,
    backlog: DashMap<LeadId, Pending>,
    /// Assignments created but not yet committed: a second creation with
    /// the same id (a backlog lead picked again before its first route is
    /// durable) is refused.
    creating: DashMap<AssignmentId, ()>,
    /// Transitions committed by this process.
    pub stats: RoutingStats,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("agents", &self.graph.load().agents.len())
            .field("open", &self.open.len())
            .finish()
    }
}

impl Default for Router {
    fn default() -> Self {
        let workloads = Arc::new(Workloads::default());
        let graph = AgentGraph::build(&RoutingSpec::default(), &workloads)
            .expect("invariant: the empty routing spec compiles");
        Router {
            spec: ArcSwap::from_pointee(RoutingSpec::default()),
            graph: ArcSwap::from_pointee(graph),
            workloads,
            write: Mutex::new(()),
            open: DashMap::new(),
            done: DashMap::new(),
            backlog: DashMap::new(),
            creating: DashMap::new(),
            stats: RoutingStats::default(),
        }
    }
}

/// Puts the routing record a marketplace change carries into `spec`.
/// Returns false for changes that are not routing changes.
pub fn put_routing(spec: &mut RoutingSpec, change: &MarketChange) -> bool {
    fn put<T: Clone>(list: &mut Vec<T>, record: &T, id: impl Fn(&T) -> &str) {
        match list.iter_mut().find(|r| id(r) == id(record)) {
            Some(slot) => *slot = record.clone(),
            None => list.push(record.clone()),
        }
    }
    match change {
        MarketChange::PutAgent(a) => put(&mut spec.agents, &**a, |r: &AgentSpec| &r.id),
        MarketChange::PutTeam(t) => put(&mut spec.teams, t, |r: &TeamSpec| &r.id),
        MarketChange::PutAgency(p) => put(&mut spec.agencies, p, |r: &AgencySpec| &r.id),
        _ => return false,
    }
    true
}

impl Router {
    /// The routing spec in force.
    pub fn spec(&self) -> Arc<RoutingSpec> {
        self.spec.load_full()
    }

    /// The compiled graph in force.
    pub fn graph(&self) -> Arc<AgentGraph> {
        self.graph.load_full()
    }

    /// Workload counters.
    pub fn workloads(&self) -> &Arc<Workloads> {
        &self.workloads
    }

    /// The spec `change` would produce, validated, without applying it:
    /// the checks of [`RoutingSpec::validate`], and room for a new agent's
    /// workload counter (what compiling the graph also needs).
    pub fn preview(&self, change: &MarketChange) -> Result<RoutingSpec, SpecError> {
        let mut spec = (*self.spec.load_full()).clone();
        put_routing(&mut spec, change);
        spec.validate()?;
        if let MarketChange::PutAgent(a) = change {
            if !self.workloads.has_room_for(&a.id) {
                return Err(SpecError {
                    path: "id".into(),
                    message: format!(
                        "the exchange routes to at most {} agents",
                        super::WORKLOAD_SLOTS
                    ),
                });
            }
        }
        Ok(spec)
    }

    /// Replaces the whole spec (restore, tests): compiles and swaps.
    pub fn replace(&self, spec: RoutingSpec) -> Result<(), SpecError> {
        let _w = self.write.lock();
        let graph = AgentGraph::build(&spec, &self.workloads)?;
        self.graph.store(Arc::new(graph));
        self.spec.store(Arc::new(spec));
        Ok(())
    }

    /// Applies a routing change of the marketplace: only the agent graph is
    /// rebuilt. False when the change is not a routing one or does not
    /// compile (a journal of another build; skipped alike on every replay).
    pub fn put(&self, change: &MarketChange) -> bool {
        let _w = self.write.lock();
        let mut spec = (*self.spec.load_full()).clone();
        if !put_routing(&mut spec, change) {
            return false;
        }
        match AgentGraph::build(&spec, &self.workloads) {
            Ok(graph) => {
                self.graph.store(Arc::new(graph));
                self.spec.store(Arc::new(spec));
                true
            }
            Err(_) => false,
        }
    }

    /// The route request for `lead` in `agency_id`, skipping `offered`.
    fn request<'a>(
        agency_id: &'a str,
        lead: &'a RouteLead,
        offered: &'a [u32],
        now_ms: i64,
    ) -> RouteRequest<'a> {
        RouteRequest {
            agency_id,
            vertical: lead.vertical,
            state: lead.state,
            zip: lead.zip,
            current_carrier: lead.current_carrier.as_deref(),
            language: lead.language.as_deref(),
            score_tier: lead.score_tier,
            referring_agent: lead.referring_agent.as_deref(),
            offered,
            now_ms,
        }
    }

    /// Routes a new lead: runs the agency's strategy, reserves the chosen
    /// agent's capacity, and returns the `Created` record to journal. An
    /// agency with agents but none eligible gives an unassigned record.
    pub fn open_assignment(
        &self,
        id: AssignmentId,
        agency_id: &str,
        lead: RouteLead,
        lead_id: Option<LeadId>,
        reference: Option<String>,
        now_ms: i64,
    ) -> Result<RoutingTicket, RoutingError> {
        if self.open.len() >= OPEN_ASSIGNMENTS_MAX {
            return Err(RoutingError::Overloaded("open assignments"));
        }
        if self.open.contains_key(&id) || self.done.contains_key(&id) {
            return Err(RoutingError::Busy);
        }
        match self.creating.entry(id) {
            dashmap::Entry::Occupied(_) => return Err(RoutingError::Busy),
            dashmap::Entry::Vacant(v) => {
                v.insert(());
            }
        }
        let graph = self.graph.load_full();
        let routed = graph
            .route(&Self::request(agency_id, &lead, &[], now_ms))
            .map_err(RoutingError::from)
            .and_then(|o| {
                let policy = &graph
                    .agency(agency_id)
                    .ok_or(RoutingError::UnknownAgency)?
                    .policy;
                Ok((o, policy.offer_timeout_s))
            });
        let (outcome, offer_timeout_s) = match routed {
            Ok(x) => x,
            Err(e) => {
                self.creating.remove(&id);
                return Err(e);
            }
        };
        let offer = outcome.assigned.map(|x| Offer {
            agent_id: graph.agents[x as usize].id.to_string(),
            expires_at_ms: now_ms + i64::from(offer_timeout_s) * 1_000,
            escalated: false,
            turn: outcome.turn,
        });
        let record = RoutingRecord {
            assignment_id: id,
            version: 1,
            at_ms: now_ms,
            change: RoutingChange::Created {
                agency_id: agency_id.to_string(),
                lead_id,
                reference,
                lead,
                offer,
            },
        };
        Ok(RoutingTicket {
            reserved: outcome.assigned,
            outcome: Some(outcome),
            graph,
            record,
        })
    }

    /// Decides a transition of an open assignment. For a rejection or an
    /// expiry, the next offer is decided too (the next candidate, or the
    /// manager after the agency's `escalate_after` failures) and its
    /// capacity reserved.
    pub fn decide(
        &self,
        id: AssignmentId,
        action: Action<'_>,
        now_ms: i64,
    ) -> Result<RoutingTicket, RoutingError> {
        let cell = self
            .open
            .get(&id)
            .map(|c| c.clone())
            .ok_or(RoutingError::NotFound)?;
        let mut cell = cell.lock();
        if cell.busy {
            return Err(RoutingError::Busy);
        }
        let s = &cell.state;
        let graph = self.graph.load_full();
        let holder = s.agent_id.clone();
        let named = match action {
            Action::Accept(a) | Action::Reject(a) | Action::Close(a) => a,
            _ => None,
        };
        if named.is_some_and(|a| holder.as_deref() != Some(a)) {
            return Err(RoutingError::WrongAgent);
        }
        let offered = s.status == Status::Offered;
        let change = match action {
            Action::Accept(_) | Action::Reject(_) | Action::Expire if !offered => {
                return Err(RoutingError::NotOffered(s.status.as_str()))
            }
            Action::Expire if s.offer_expires_at_ms > now_ms => {
                return Err(RoutingError::NotOffered("not yet expired"))
            }
            Action::Close(_) if !s.status.holds_capacity() => {
                return Err(RoutingError::NotOffered(s.status.as_str()))
            }
            Action::Accept(_) => RoutingChange::Accepted {
                agent_id: holder.clone().unwrap_or_default(),
            },
            Action::Close(_) => RoutingChange::Closed {
                agent_id: holder.clone().unwrap_or_default(),
            },
            Action::Reject(_) | Action::Expire => {
                let (next, reserved, outcome) = self.next_offer(&graph, s, now_ms);
                let record = RoutingRecord {
                    assignment_id: id,
                    version: s.version + 1,
                    at_ms: now_ms,
                    change: RoutingChange::Declined {
                        agent_id: holder.clone().unwrap_or_default(),
                        expired: action == Action::Expire,
                        next,
                    },
                };
                cell.busy = true;
                return Ok(RoutingTicket {
                    record,
                    outcome,
                    graph,
                    reserved,
                });
            }
        };
        let record = RoutingRecord {
            assignment_id: id,
            version: s.version + 1,
            at_ms: now_ms,
            change,
        };
        cell.busy = true;
        Ok(RoutingTicket {
            record,
            outcome: None,
            graph,
            reserved: None,
        })
    }

    /// The offer that follows a declined one: escalation to the manager
    /// once the failures (this one included) reach the agency's
    /// `escalate_after`, else the next candidate by the agency's strategy;
    /// after an escalated offer fails, none. Reserves the capacity.
    fn next_offer(
        &self,
        graph: &AgentGraph,
        s: &AssignmentState,
        now_ms: i64,
    ) -> (Option<Offer>, Option<u32>, Option<RouteOutcome>) {
        let Some(agency) = graph.agency(&s.agency_id) else {
            return (None, None, None);
        };
        if s.escalated {
            return (None, None, None);
        }
        let policy = &agency.policy;
        let expires_at_ms = now_ms + i64::from(policy.offer_timeout_s) * 1_000;
        let offered: Vec<u32> = s
            .offered
            .iter()
            .filter_map(|a| graph.agent_index(a))
            .collect();
        let req = Self::request(&s.agency_id, &s.lead, &offered, now_ms);
        if u32::from(s.failures) + 1 >= u32::from(policy.escalate_after) {
            let last = s.agent_id.as_deref().and_then(|a| graph.agent_index(a));
            let manager = last
                .and_then(|x| graph.escalation_target(x))
                .filter(|&m| graph.fits(m, &req).is_ok() && graph.reserve(m));
            let offer = manager.map(|m| Offer {
                agent_id: graph.agents[m as usize].id.to_string(),
                expires_at_ms,
                escalated: true,
                turn: None,
            });
            return (offer, manager, None);
        }
        match graph.route(&req) {
            Ok(outcome) => {
                let offer = outcome.assigned.map(|x| Offer {
                    agent_id: graph.agents[x as usize].id.to_string(),
                    expires_at_ms,
                    escalated: false,
                    turn: outcome.turn,
                });
                (offer, outcome.assigned, Some(outcome))
            }
            Err(_) => (None, None, None),
        }
    }

    /// The ticket's record is durable: install the new state and give back
    /// the previous agent's unit.
    pub fn commit(&self, ticket: &RoutingTicket) {
        let id = ticket.record.assignment_id;
        self.stats.count(&ticket.record.change);
        if let Some(state) = AssignmentState::created(&ticket.record) {
            self.install(state);
            self.creating.remove(&id);
            return;
        }
        let Some(cell) = self.open.get(&id).map(|c| c.clone()) else {
            return;
        };
        let mut cell = cell.lock();
        cell.busy = false;
        let Some(moves) = cell.state.advance(&ticket.record) else {
            // Cannot happen while `busy` keeps other transitions out; if it
            // did, the reservation must not leak.
            if let Some(x) = ticket.reserved {
                ticket.graph.release(x);
            }
            return;
        };
        if let Some(agent) = moves.release {
            self.workloads.sub(&agent);
        }
        // `moves.take` was reserved when deciding.
        self.retire_if_terminal(id, cell);
    }

    /// The ticket's record could not be made durable: give back the
    /// reservation; the assignment is as before.
    pub fn rollback(&self, ticket: &RoutingTicket) {
        if let Some(x) = ticket.reserved {
            ticket.graph.release(x);
        }
        let id = ticket.record.assignment_id;
        if matches!(ticket.record.change, RoutingChange::Created { .. }) {
            self.creating.remove(&id);
        } else if let Some(cell) = self.open.get(&id) {
            cell.lock().busy = false;
        }
    }

    /// Applies a journaled record (replay): the same state change as
    /// [`Router::commit`], with both counter moves, and the agency's
    /// round-robin cursor moved past the offer's turn. False when it
    /// changed nothing (a duplicate, or not the next version).
    pub fn apply(&self, record: &RoutingRecord) -> bool {
        let id = record.assignment_id;
        let turn = record.change.new_offer().and_then(|o| o.turn);
        if let Some(state) = AssignmentState::created(record) {
            if self.open.contains_key(&id) || self.done.contains_key(&id) {
                return false;
            }
            if let Some(t) = turn {
                self.workloads.advance_cursor(&state.agency_id, t + 1);
            }
            if let Some(agent) = &state.agent_id {
                self.workloads.add(agent);
            }
            self.install(state);
            return true;
        }
        let Some(cell) = self.open.get(&id).map(|c| c.clone()) else {
            return false;
        };
        let mut cell = cell.lock();
        let Some(moves) = cell.state.advance(record) else {
            return false;
        };
        if let Some(agent) = moves.release {
            self.workloads.sub(&agent);
        }
        if let Some(agent) = moves.take {
            self.workloads.add(&agent);
        }
        if let Some(t) = turn {
            self.workloads.advance_cursor(&cell.state.agency_id, t + 1);
        }
        self.retire_if_terminal(id, cell);
        true
    }

    /// Holds a new assignment: open while it holds capacity, else
    /// remembered as terminal; its lead leaves the backlog.
    fn install(&self, state: AssignmentState) {
        let id = state.id;
        if let Some(l) = state.lead_id {
            self.backlog.remove(&l);
        }
        if state.status.holds_capacity() {
            self.open
                .insert(id, Arc::new(Mutex::new(Cell { state, busy: false })));
        } else {
            self.done.insert(id, (state.version, state.updated_at_ms));
        }
    }

    /// After a transition: a terminal assignment leaves the open ones and
    /// is remembered by its version (the cell's lock is let go first: the
    /// map's shard lock is never taken under it).
    fn retire_if_terminal(&self, id: AssignmentId, cell: parking_lot::MutexGuard<'_, Cell>) {
        if !cell.state.status.holds_capacity() {
            self.done
                .insert(id, (cell.state.version, cell.state.updated_at_ms));
            drop(cell);
            self.open.remove(&id);
        }
    }

    /// An open assignment.
    pub fn assignment(&self, id: AssignmentId) -> Option<AssignmentState> {
        self.open.get(&id).map(|c| c.lock().state.clone())
    }

    /// Open assignments (offered or accepted).
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// Offers past their time, oldest first, at most `max` (the sweeper
    /// expires them through [`Router::decide`]).
    pub fn due_offers(&self, now_ms: i64, max: usize) -> Vec<AssignmentId> {
        let mut due: Vec<(i64, AssignmentId)> = self
            .open
            .iter()
            .filter_map(|e| {
                let c = e.value().lock();
                (c.state.status == Status::Offered
                    && !c.busy
                    && c.state.offer_expires_at_ms <= now_ms)
                    .then_some((c.state.offer_expires_at_ms, *e.key()))
            })
            .collect();
        due.sort_unstable();
        due.truncate(max);
        due.into_iter().map(|(_, id)| id).collect()
    }

    /// Notes a sold lead to route if its buyer's agency routes the campaign.
    /// Called for every sale, live and on replay. False when nothing to do.
    pub fn note_sale(
        &self,
        lead_id: LeadId,
        agency_id: &str,
        campaign_id: &str,
        lead: &Lead,
        at_ms: i64,
    ) -> bool {
        // A sold lead is routed once, as the assignment with its id: one
        // that exists already (its record replayed before the sale's, from
        // another partition) means it was routed.
        let id = AssignmentId(lead_id.0);
        if self.open.contains_key(&id) || self.done.contains_key(&id) {
            return false;
        }
        let spec = self.spec.load();
        let routes = spec
            .agencies
            .iter()
            .any(|a| a.id == agency_id && a.routes_campaign(campaign_id));
        if !routes || self.backlog.len() >= BACKLOG_MAX || self.backlog.contains_key(&lead_id) {
            return false;
        }
        self.backlog.insert(
            lead_id,
            Pending {
                lead_id,
                agency_id: agency_id.to_string(),
                lead: RouteLead::of_lead(lead),
                sold_at_ms: at_ms,
            },
        );
        true
    }

    /// Sold leads waiting to be routed.
    pub fn backlog_len(&self) -> usize {
        self.backlog.len()
    }

    /// Sold leads waiting to be routed, oldest first, at most `max`.
    pub fn backlog(&self, max: usize) -> Vec<Pending> {
        let mut out: Vec<Pending> = self.backlog.iter().map(|e| e.value().clone()).collect();
        out.sort_unstable_by_key(|p| (p.sold_at_ms, p.lead_id));
        out.truncate(max);
        out
    }

    /// Drops a backlog entry that cannot be routed (its agency has no
    /// agents any more): the lead stays in the buyer's list, unrouted.
    pub fn drop_pending(&self, lead_id: LeadId) {
        self.backlog.remove(&lead_id);
    }

    /// Forgets terminal assignments older than `horizon_ms`.
    pub fn sweep(&self, horizon_ms: i64) {
        self.done.retain(|_, (_, at)| *at > horizon_ms);
    }

    /// The routing state as plain, canonical data.
    pub fn image(&self) -> RoutingImage {
        let mut open: Vec<AssignmentState> = self
            .open
            .iter()
            .map(|e| e.value().lock().state.clone())
            .collect();
        open.sort_unstable_by_key(|s| s.id);
        let mut done: Vec<(u128, u32, i64)> = self
            .done
            .iter()
            .map(|e| (e.key().0, e.value().0, e.value().1))
            .collect();
        done.sort_unstable();
        let mut backlog: Vec<Pending> = self.backlog.iter().map(|e| e.value().clone()).collect();
        backlog.sort_unstable_by_key(|p| p.lead_id);
        RoutingImage {
            spec: (*self.spec.load_full()).clone(),
            open,
            done,
            backlog,
            cursors: self.workloads.cursors(),
        }
    }

    /// Loads an image into a fresh router (restore, before replay): the
    /// spec compiled, each open assignment's agent counted.
    pub fn restore(&self, image: &RoutingImage) -> Result<(), SpecError> {
        self.replace(image.spec.clone())?;
        for s in &image.open {
            if let (Some(agent), true) = (&s.agent_id, s.status.holds_capacity()) {
                self.workloads.add(agent);
            }
            self.open.insert(
                s.id,
                Arc::new(Mutex::new(Cell {
                    state: s.clone(),
                    busy: false,
                })),
            );
        }
        for (id, version, at) in &image.done {
            self.done.insert(AssignmentId(*id), (*version, *at));
        }
        for p in &image.backlog {
            self.backlog.insert(p.lead_id, p.clone());
        }
        for (agency, next) in &image.cursors {
            self.workloads.advance_cursor(agency, *next);
        }
        Ok(())
    }

    /// Checks the invariant that ties assignments to workloads: every
    /// agent's counter equals the open assignments it holds (offered or
    /// accepted), and no counter exceeds the agent's capacity. Exact when
    /// no decision is waiting for the journal. Returns the first
    /// disagreement.
    pub fn check_workloads(&self) -> Result<(), String> {
        let mut held: std::collections::BTreeMap<String, u32> = Default::default();
        for e in self.open.iter() {
            let c = e.value().lock();
            if let (Some(a), true) = (&c.state.agent_id, c.state.status.holds_capacity()) {
                *held.entry(a.clone()).or_default() += 1;
            }
        }
        let counted: std::collections::BTreeMap<String, u32> = self
            .workloads
            .nonzero()
            .into_iter()
            .map(|(a, n)| (a.to_string(), n))
            .collect();
        if held != counted {
            return Err(format!("held {held:?} but counted {counted:?}"));
        }
        let graph = self.graph.load();
        for (a, n) in &counted {
            if let Some(x) = graph.agent_index(a) {
                let cap = graph.agents[x as usize].capacity;
                if *n > cap {
                    return Err(format!("agent {a} holds {n} over capacity {cap}"));
                }
            }
        }
        Ok(())
    }
}

/// Commits or rolls back a ticket exactly once: commit when the journal
/// reports its record durable, rollback on failure, and rollback when the
/// journal drops the callback without calling it (refused, shut down).
struct DecideOnce {
    inner: Option<(Arc<crate::Engine>, RoutingTicket)>,
    done: Option<TicketDone>,
}

/// What [`journal_ticket`] calls with the outcome.
type TicketDone = Box<dyn FnOnce(Result<RoutingTicket, crate::JournalError>) + Send>;

impl DecideOnce {
    fn finish(&mut self, result: Result<crate::journal::Lsn, crate::JournalError>) {
        let Some((engine, ticket)) = self.inner.take() else {
            return;
        };
        let outcome = match result {
            Ok(_) => {
                engine.router().commit(&ticket);
                Ok(ticket)
            }
            Err(e) => {
                engine.router().rollback(&ticket);
                Err(e)
            }
        };
        if let Some(done) = self.done.take() {
            done(outcome);
        }
    }
}

impl Drop for DecideOnce {
    fn drop(&mut self) {
        self.finish(Err(crate::JournalError::Closed));
    }
}

/// Journals a routing ticket; once the journal answers, commits it (durable)
/// or rolls it back (failed), then calls `done` with the outcome, on the
/// journal's callback thread. The commit never depends on the caller still
/// waiting, so a caller that gives up (a deadline, a disconnect) cannot
/// leave a reservation behind.
pub fn journal_ticket(
    engine: &Arc<crate::Engine>,
    journal: &dyn crate::Journal,
    ticket: RoutingTicket,
    done: impl FnOnce(Result<RoutingTicket, crate::JournalError>) + Send + 'static,
) {
    let event = ticket.event();
    let mut guard = DecideOnce {
        inner: Some((engine.clone(), ticket)),
        done: Some(Box::new(done)),
    };
    let callback: crate::journal::DurableCallback = Box::new(move |result| guard.finish(result));
    // A refused append drops the callback: the guard rolls back.
    let _ = journal.append(vec![event], Some(callback));
}
