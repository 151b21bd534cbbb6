//! Lead routing: the agent graph (compiled, immutable, swapped whole) and
//! the choice of an agent for a bought lead.
//!
//! - [`spec`]: what an agency declares (agents, policy), validated.
//! - [`AgentGraph`]: the compiled graph: agents of each agency indexed by
//!   the state they are licensed in, locations from the ZIP centroid table,
//!   schedules as hour masks, teams, managers and links as indices.
//! - [`Workloads`]: the open-assignment counter of every agent and the
//!   round-robin cursor of every agency: atomics that live outside the
//!   graph, so a rebuilt graph keeps them (the same `Arc` per id).
//! - [`AgentGraph::route`]: hard rules first (licensed in the lead's state
//!   for its vertical's line, inside the schedule, under capacity, never a
//!   captive agent of the consumer's current carrier, not offered this lead
//!   before), then the agency's strategy (weighted score, round-robin,
//!   least-loaded); the chosen agent's capacity is reserved by
//!   compare-and-swap, so capacity is never exceeded under concurrency.
//!   Every eligible candidate comes back with each factor's contribution;
//!   the contributions add up to the score exactly (integers).
//!
//! No I/O, no lock: a route reads the graph and the atomics only. The loop
//! over an agency's agents is bounded by
//! [`spec::AGENTS_PER_AGENCY_MAX`], and only the agents licensed in the
//! lead's state are visited.

pub mod assign;
pub mod spec;

use crate::lead::{UsState, Vertical, Zip};
use crate::localtime::LocalTime;
use crate::spec::{ScheduleWindow, SpecError};
use crate::zips::{LatLon, ZipCentroids};
use chrono_tz::Tz;
use dashmap::DashMap;
use spec::{lines_license, AgencySpec, LinkKind, RoutingSpec, Strategy, Weights, TIERS};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

/// The ranking factors, in the order of [`Candidate::factors`].
pub const FACTORS: [&str; 7] = [
    "distance",
    "specialization",
    "performance",
    "workload",
    "language",
    "quality",
    "affinity",
];

/// Most candidates a route returns (ranked, with their factors).
pub const RANKED_MAX: usize = 32;

/// Most a factor's value can be; a contribution is weight × value.
pub const FACTOR_VALUE_MAX: i64 = 1_000;

/// Why an agent of the agency was not a candidate, in the order of
/// [`RouteOutcome::excluded`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Excluded {
    /// Not taking leads.
    Inactive = 0,
    /// Not licensed in the lead's state for the vertical's line.
    NotLicensed = 1,
    /// Outside the agent's schedule.
    OutsideSchedule = 2,
    /// Open assignments at capacity.
    AtCapacity = 3,
    /// Captive of the carrier the consumer already has.
    CaptiveOfCurrentCarrier = 4,
    /// Offered this lead before.
    AlreadyOffered = 5,
}

/// Number of [`Excluded`] reasons.
pub const EXCLUDED_REASONS: usize = 6;

/// Most agents the exchange routes to: the workload slots are preallocated
/// (4 bytes each, 4 MiB in all), contiguous, so a route reads counters
/// without chasing a pointer per agent.
pub const WORKLOAD_SLOTS: usize = 1 << 20;

/// Open assignments per agent and round-robin cursors per agency: atomics
/// outside the graph, kept across graph rebuilds. An agent keeps its slot
/// for the life of the process (slots are never reused, so a rebuilt graph
/// sees the same count).
#[derive(Debug)]
pub struct Workloads {
    slots: Box<[AtomicU32]>,
    slot_by_id: DashMap<Arc<str>, u32>,
    /// Slots handed out; also the next free one.
    used: AtomicU32,
    cursors: DashMap<Arc<str>, Arc<AtomicU64>>,
}

impl Default for Workloads {
    fn default() -> Self {
        Workloads {
            slots: (0..WORKLOAD_SLOTS).map(|_| AtomicU32::new(0)).collect(),
            slot_by_id: DashMap::new(),
            used: AtomicU32::new(0),
            cursors: DashMap::new(),
        }
    }
}

impl Workloads {
    /// The slot of `agent`, handed out on first sight; `None` when every
    /// slot is taken.
    fn slot_of(&self, agent: &Arc<str>) -> Option<u32> {
        match self.slot_by_id.entry(agent.clone()) {
            dashmap::Entry::Occupied(e) => Some(*e.get()),
            dashmap::Entry::Vacant(e) => {
                // Relaxed: the entry's shard lock orders hand-outs for one
                // id; distinct ids only need distinct numbers.
                let slot = self.used.fetch_add(1, Ordering::Relaxed);
                if slot as usize >= WORKLOAD_SLOTS {
                    self.used.fetch_sub(1, Ordering::Relaxed);
                    return None;
                }
                e.insert(slot);
                Some(slot)
            }
        }
    }

    fn cursor_of(&self, agency: &Arc<str>) -> Arc<AtomicU64> {
        self.cursors.entry(agency.clone()).or_default().clone()
    }

    /// Adds one open assignment to `agent` without a capacity check: for
    /// replay, which re-applies what was decided under the check. False
    /// when every slot is taken.
    pub fn add(&self, agent: &str) -> bool {
        let Some(slot) = self.slot_of(&Arc::from(agent)) else {
            return false;
        };
        // AcqRel: as `AgentGraph::reserve`.
        self.slots[slot as usize].fetch_add(1, Ordering::AcqRel);
        true
    }

    /// Removes one open assignment from `agent` (an offer declined or
    /// expired, an assignment closed). Never below zero: false when there
    /// was none, which is a bug the caller reports.
    pub fn sub(&self, agent: &str) -> bool {
        let Some(slot) = self.slot_by_id.get(agent).map(|s| *s) else {
            return false;
        };
        // AcqRel: as `AgentGraph::release`.
        self.slots[slot as usize]
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Every agent's open count that is not zero, by id (images, tests).
    pub fn nonzero(&self) -> Vec<(Arc<str>, u32)> {
        let mut out: Vec<(Arc<str>, u32)> = self
            .slot_by_id
            .iter()
            .map(|e| {
                (
                    e.key().clone(),
                    self.slots[*e.value() as usize].load(Ordering::Acquire),
                )
            })
            .filter(|(_, n)| *n != 0)
            .collect();
        out.sort_unstable();
        out
    }

    /// True when `agent` has a slot or one is still free.
    pub fn has_room_for(&self, agent: &str) -> bool {
        // Relaxed: a check for the admin API's preview; `slot_of` is the
        // hand-out that counts.
        self.slot_by_id.contains_key(agent)
            || (self.used.load(Ordering::Relaxed) as usize) < WORKLOAD_SLOTS
    }

    /// Open assignments of `agent` (0 for an unknown one).
    pub fn open(&self, agent: &str) -> u32 {
        // Relaxed: a reading for people and tests; decisions use the CAS.
        self.slot_by_id
            .get(agent)
            .map_or(0, |s| self.slots[*s as usize].load(Ordering::Relaxed))
    }
}

/// One compiled agent.
#[derive(Debug)]
pub struct Agent {
    /// Id.
    pub id: Arc<str>,
    /// Index of its agency in the graph.
    pub agency: u32,
    /// Lines of authority per state (mask of `Line::bit`), by state index.
    lines_by_state: Box<[u8]>,
    /// Interned carrier id (index into the graph's carriers) + 1; 0: none.
    captive_carrier: u32,
    specializations: u8,
    /// Office location (the ZIP's Census centroid), if known.
    pub location: Option<LatLon>,
    /// Languages as bits of the graph's interned languages (the first 64;
    /// others never match, a bound stated in the spec).
    languages: u64,
    /// Most open assignments.
    pub capacity: u32,
    tz: Tz,
    schedule: Option<[u32; 7]>,
    /// The performance factor's value per vertical and tier: (2 ×
    /// conversion with such leads + rating + response time) / 4, each per
    /// mille, computed once here.
    performance: [[u16; TIERS]; Vertical::COUNT],
    quality_tier: u8,
    /// Team (index into the graph's teams), if any.
    pub team: Option<u32>,
    /// Manager (agent index), if any.
    pub manager: Option<u32>,
    links: Box<[(u32, LinkKind, u16)]>,
    active: bool,
    /// Workload slot.
    slot: u32,
}

/// What a route reads of every agent it visits, packed (48 bytes) in an
/// array parallel to `AgentGraph::agents`, so the loop over thousands of
/// agents streams through memory instead of touching a 200-byte record
/// each (measured: that miss was a quarter of a route).
#[derive(Debug, Clone, Copy)]
struct Hot {
    languages: u64,
    location: LatLon,
    captive_carrier: u32,
    slot: u32,
    capacity: u32,
    /// Index into `AgentGraph::schedules`; `NONE` for always.
    schedule: u32,
    /// Team index; `NONE` for none.
    team: u32,
    /// Index into `AgentGraph::zones`.
    zone: u16,
    has_location: bool,
    active: bool,
    specializations: u8,
    quality_tier: u8,
    has_links: bool,
}

const NONE: u32 = u32::MAX;

/// The agents of an agency licensed in one state: (agent index, lines of
/// authority there), ascending by agent.
type Licensed = Box<[(u32, u8)]>;

/// One agency's compiled policy and agents.
#[derive(Debug)]
pub struct Agency {
    /// Policy.
    pub policy: AgencySpec,
    /// Agents licensed in each state (any line) with their lines there,
    /// by state index, ascending by agent (agents are sorted by id within
    /// an agency): the route reads the licence without touching the agent.
    by_state: Box<[Licensed]>,
    /// Every agent index of the agency, ascending.
    pub agents: Box<[u32]>,
    cursor: Arc<AtomicU64>,
}

/// The compiled agent graph.
#[derive(Debug)]
pub struct AgentGraph {
    /// Agents, grouped by agency, by id within one.
    pub agents: Vec<Agent>,
    by_id: HashMap<Arc<str>, u32>,
    /// Agencies.
    pub agencies: Vec<Agency>,
    agency_by_id: HashMap<Arc<str>, u32>,
    /// Team ids, by team index.
    pub teams: Vec<Arc<str>>,
    /// Each team's manager (agent index), by team index.
    team_managers: Vec<Option<u32>>,
    /// Captive carriers named by agents (lower case), interned.
    carriers: Vec<Box<str>>,
    /// Languages named by agents (lower case), interned.
    languages: Vec<Box<str>>,
    workloads: Arc<Workloads>,
    /// The route's view of each agent, by agent index.
    hot: Vec<Hot>,
    /// The performance factor per vertical and tier, by agent index.
    performance: Vec<[[u16; TIERS]; Vertical::COUNT]>,
    /// Distinct weekly schedules (hour masks).
    schedules: Vec<[u32; 7]>,
    /// Distinct time zones.
    zones: Vec<Tz>,
}

thread_local! {
    static CANDIDATES: std::cell::RefCell<Vec<Scored>> = const {
        std::cell::RefCell::new(Vec::new())
    };
}

/// The index of `name` in `names`, added if new.
fn intern(names: &mut Vec<Box<str>>, name: &str) -> u32 {
    match names.iter().position(|x| &**x == name) {
        Some(i) => i as u32,
        None => {
            names.push(name.into());
            (names.len() - 1) as u32
        }
    }
}

/// A lead to route.
#[derive(Debug, Clone, Copy)]
pub struct RouteRequest<'a> {
    /// The buying agency (a buyer account id).
    pub agency_id: &'a str,
    /// Vertical.
    pub vertical: Vertical,
    /// State.
    pub state: UsState,
    /// ZIP.
    pub zip: Zip,
    /// The consumer's current carrier (lower case), if any.
    pub current_carrier: Option<&'a str>,
    /// The consumer's language (ISO 639-1), if known.
    pub language: Option<&'a str>,
    /// Lead score tier, 0 (best) to 3.
    pub score_tier: u8,
    /// The agent who referred the lead, if any (graph affinity).
    pub referring_agent: Option<&'a str>,
    /// Agents already offered this lead (skipped).
    pub offered: &'a [u32],
    /// Now, Unix ms.
    pub now_ms: i64,
}

/// An eligible agent, scored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Agent index.
    pub agent: u32,
    /// Sum of `factors`.
    pub score: i64,
    /// Each factor's contribution (weight × value), in [`FACTORS`] order.
    pub factors: [i64; FACTORS.len()],
    /// Open assignments when scored.
    pub open: u32,
}

/// A candidate while ranking: the score only.
#[derive(Debug, Clone, Copy)]
struct Scored {
    score: i64,
    agent: u32,
    open: u32,
}

/// What a route found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteOutcome {
    /// The agent the lead was assigned to (its capacity reserved), if any.
    pub assigned: Option<u32>,
    /// The first [`RANKED_MAX`] eligible agents, in the strategy's order.
    pub candidates: Vec<Candidate>,
    /// How many agents were eligible.
    pub eligible: u32,
    /// Agents of the agency left out, by [`Excluded`] reason.
    pub excluded: [u32; EXCLUDED_REASONS],
}

/// Why a route could not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// The agency has no agents.
    UnknownAgency,
    /// `score_tier` is above 3.
    BadTier,
}

/// What the factors of one route share: the lead's place and the agency's
/// policy and referrer.
struct Context<'a> {
    req: &'a RouteRequest<'a>,
    /// The lead's centroid and the cosine of its latitude.
    lead_at: Option<(LatLon, f64)>,
    referrer: Option<u32>,
    /// The consumer's carrier as an interned id + 1 (0: none or unknown to
    /// every agent, so no agent is captive of it).
    current_carrier: u32,
    /// The consumer's language as a bit of the interned languages (0: none).
    language: u64,
    /// 1 / (`distance_max_km` in microdegrees of latitude)².
    inv_max_sq: f64,
}

/// Squared distance between two points, in (microdegrees of latitude)²:
/// equirectangular (longitude scaled by the cosine of the lead's latitude,
/// `cos_lat`, computed once per route), accurate to a fraction of a percent
/// under a few hundred km, and with no square root or trigonometry per
/// agent (this runs once per candidate).
fn distance_sq(a: LatLon, b: LatLon, cos_lat: f64) -> f64 {
    let dy = f64::from(a.lat_e6 - b.lat_e6);
    let mut dx = f64::from(a.lon_e6 - b.lon_e6).abs();
    if dx > 180e6 {
        dx = 360e6 - dx;
    }
    let dx = dx * cos_lat;
    dx * dx + dy * dy
}

/// Microdegrees of latitude per km.
const E6_DEG_PER_KM: f64 = 1e6 * 180.0 / (std::f64::consts::PI * 6_371.008_8);

impl AgentGraph {
    /// Compiles `spec`, taking each agent's workload counter and each
    /// agency's cursor from `workloads` (kept across rebuilds).
    pub fn build(spec: &RoutingSpec, workloads: &Arc<Workloads>) -> Result<AgentGraph, SpecError> {
        spec.validate()?;
        let zips = ZipCentroids::embedded();
        let mut order: Vec<usize> = (0..spec.agents.len()).collect();
        order.sort_by(|&a, &b| {
            let (a, b) = (&spec.agents[a], &spec.agents[b]);
            (a.agency_id.as_str(), a.id.as_str()).cmp(&(b.agency_id.as_str(), b.id.as_str()))
        });
        let mut g = AgentGraph {
            agents: Vec::with_capacity(spec.agents.len()),
            by_id: HashMap::with_capacity(spec.agents.len()),
            agencies: Vec::new(),
            agency_by_id: HashMap::new(),
            teams: Vec::new(),
            team_managers: Vec::new(),
            carriers: Vec::new(),
            languages: Vec::new(),
            workloads: workloads.clone(),
            hot: Vec::new(),
            performance: Vec::new(),
            schedules: Vec::new(),
            zones: Vec::new(),
        };
        let mut team_by_id: HashMap<&str, u32> = HashMap::new();
        for &i in &order {
            let a = &spec.agents[i];
            let agency = match g.agency_by_id.get(a.agency_id.as_str()) {
                Some(&x) => x,
                None => {
                    let policy = spec
                        .agencies
                        .iter()
                        .find(|p| p.id == a.agency_id)
                        .cloned()
                        .unwrap_or_else(|| AgencySpec::default_for(&a.agency_id));
                    let id: Arc<str> = Arc::from(a.agency_id.as_str());
                    g.agencies.push(Agency {
                        policy,
                        by_state: vec![Box::default(); UsState::COUNT].into_boxed_slice(),
                        agents: Box::default(),
                        cursor: workloads.cursor_of(&id),
                    });
                    let x = (g.agencies.len() - 1) as u32;
                    g.agency_by_id.insert(id, x);
                    x
                }
            };
            let mut lines_by_state = vec![0u8; UsState::COUNT].into_boxed_slice();
            for l in &a.licences {
                lines_by_state[l.state.index()] |= l.line.bit();
            }
            let mut success = [[0u16; TIERS]; Vertical::COUNT];
            let base = a.performance.conversion_bps / 10;
            for row in success.iter_mut() {
                *row = [base; TIERS];
            }
            for s in &a.performance.success {
                success[s.vertical.index()][s.tier as usize] = s.conversion_bps / 10;
            }
            let response_permille = match a.performance.median_response_s {
                0 => 0,
                s => 1_000u16.saturating_sub((u64::from(s) * 1_000 / 3_600).min(1_000) as u16),
            };
            let team = a.team_id.as_deref().map(|t| {
                *team_by_id.entry(t).or_insert_with(|| {
                    g.teams.push(Arc::from(t));
                    (g.teams.len() - 1) as u32
                })
            });
            let id: Arc<str> = Arc::from(a.id.as_str());
            g.by_id.insert(id.clone(), g.agents.len() as u32);
            g.agents.push(Agent {
                slot: workloads.slot_of(&id).ok_or_else(|| SpecError {
                    path: format!("agents[{i}]"),
                    message: format!("the exchange routes to at most {WORKLOAD_SLOTS} agents"),
                })?,
                id,
                agency,
                lines_by_state,
                captive_carrier: a
                    .captive_carrier
                    .as_deref()
                    .map_or(0, |c| intern(&mut g.carriers, &c.to_lowercase()) + 1),
                specializations: a
                    .specializations
                    .iter()
                    .fold(0u8, |m, v| m | (1 << v.index())),
                location: a
                    .zip
                    .and_then(|z| zips.centroid_or_prefix(z).map(|(p, _)| p)),
                languages: a.languages.iter().fold(0u64, |m, l| {
                    match intern(&mut g.languages, &l.to_lowercase()) {
                        bit @ 0..64 => m | 1 << bit,
                        _ => m,
                    }
                }),
                capacity: a.capacity,
                tz: a.time_zone.parse().map_err(|_| SpecError {
                    path: format!("agents[{i}].time_zone"),
                    message: "is not an IANA time zone".into(),
                })?,
                schedule: ScheduleWindow::week_mask(&a.schedule),
                performance: success.map(|row| {
                    row.map(|conv| {
                        ((2 * u32::from(conv)
                            + u32::from(a.performance.rating_centi * 2)
                            + u32::from(response_permille))
                            / 4) as u16
                    })
                }),
                quality_tier: a.quality_tier,
                team,
                manager: None,
                links: Box::default(),
                active: a.active,
            });
        }
        // References by index, now that every agent has one.
        for &i in &order {
            let a = &spec.agents[i];
            let x = g.by_id[a.id.as_str()] as usize;
            g.agents[x].manager = a.manager_id.as_deref().map(|m| g.by_id[m]);
            g.agents[x].links = a
                .links
                .iter()
                .map(|l| (g.by_id[l.to.as_str()], l.kind, l.strength_bps))
                .collect();
        }
        for a in &g.agents {
            let zone = match g.zones.iter().position(|z| *z == a.tz) {
                Some(z) => z,
                None => {
                    g.zones.push(a.tz);
                    g.zones.len() - 1
                }
            };
            let schedule = match &a.schedule {
                None => NONE,
                Some(days) => match g.schedules.iter().position(|d| d == days) {
                    Some(x) => x as u32,
                    None => {
                        g.schedules.push(*days);
                        (g.schedules.len() - 1) as u32
                    }
                },
            };
            g.hot.push(Hot {
                languages: a.languages,
                location: a.location.unwrap_or(LatLon {
                    lat_e6: 0,
                    lon_e6: 0,
                }),
                captive_carrier: a.captive_carrier,
                slot: a.slot,
                capacity: a.capacity,
                schedule,
                team: a.team.unwrap_or(NONE),
                zone: u16::try_from(zone).map_err(|_| SpecError {
                    path: "agents".into(),
                    message: "at most 65536 distinct time zones".into(),
                })?,
                has_location: a.location.is_some(),
                active: a.active,
                specializations: a.specializations,
                quality_tier: a.quality_tier,
                has_links: !a.links.is_empty(),
            });
            g.performance.push(a.performance);
        }
        let mut members: Vec<Vec<u32>> = vec![Vec::new(); g.agencies.len()];
        let mut by_state: Vec<Vec<Vec<(u32, u8)>>> =
            vec![vec![Vec::new(); UsState::COUNT]; g.agencies.len()];
        for (x, a) in g.agents.iter().enumerate() {
            members[a.agency as usize].push(x as u32);
            for (s, lines) in a.lines_by_state.iter().enumerate() {
                if *lines != 0 {
                    by_state[a.agency as usize][s].push((x as u32, *lines));
                }
            }
        }
        g.team_managers = g
            .teams
            .iter()
            .map(|t| {
                spec.teams
                    .iter()
                    .find(|x| *x.id == **t)
                    .and_then(|x| x.manager_id.as_deref())
                    .map(|m| g.by_id[m])
            })
            .collect();
        for ((agency, m), s) in g.agencies.iter_mut().zip(members).zip(by_state) {
            agency.agents = m.into_boxed_slice();
            agency.by_state = s.into_iter().map(Vec::into_boxed_slice).collect();
        }
        Ok(g)
    }

    /// Open assignments of agent `x` now.
    pub fn open(&self, x: u32) -> u32 {
        // Relaxed: a reading; reservations go through the CAS in `reserve`.
        self.workloads.slots[self.agents[x as usize].slot as usize].load(Ordering::Relaxed)
    }

    /// Takes one unit of agent `x`'s capacity if it is under capacity. The
    /// only way the counter rises, so it never exceeds the capacity.
    pub fn reserve(&self, x: u32) -> bool {
        let a = &self.agents[x as usize];
        // AcqRel on success: a reservation is ordered with the release of
        // the one before it (the agent's count is one shared resource);
        // Relaxed on failure: nothing was taken.
        self.workloads.slots[a.slot as usize]
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < a.capacity).then_some(n + 1)
            })
            .is_ok()
    }

    /// Gives back one unit of agent `x`'s capacity (an offer rejected or
    /// expired, an assignment closed). Never goes below zero: a release
    /// without a reservation is a bug, refused and reported as false.
    pub fn release(&self, x: u32) -> bool {
        // AcqRel: pairs with `reserve`.
        self.workloads.slots[self.agents[x as usize].slot as usize]
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }

    /// An agent's index by id.
    pub fn agent_index(&self, id: &str) -> Option<u32> {
        self.by_id.get(id).copied()
    }

    /// An agency by id.
    pub fn agency(&self, id: &str) -> Option<&Agency> {
        self.agency_by_id
            .get(id)
            .map(|&x| &self.agencies[x as usize])
    }

    /// The reason agent `h` cannot take the lead, if any (capacity is
    /// checked with the workload, not here).
    fn rule_out(&self, h: &Hot, lines: u8, cx: &Context<'_>, local: LocalTime) -> Option<Excluded> {
        if !h.active {
            return Some(Excluded::Inactive);
        }
        if !lines_license(cx.req.vertical, lines) {
            return Some(Excluded::NotLicensed);
        }
        if h.schedule != NONE
            && self.schedules[h.schedule as usize][local.weekday as usize] & (1 << local.hour) == 0
        {
            return Some(Excluded::OutsideSchedule);
        }
        if h.captive_carrier != 0 && h.captive_carrier == cx.current_carrier {
            return Some(Excluded::CaptiveOfCurrentCarrier);
        }
        None
    }

    /// Each factor's value (0 to [`FACTOR_VALUE_MAX`]) for agent index `x`.
    fn values(&self, x: u32, a: &Hot, cx: &Context<'_>, open: u32) -> [i64; FACTORS.len()] {
        let req = cx.req;
        let distance = match (cx.lead_at, a.has_location) {
            (Some((lead, cos_lat)), true) => {
                let office = a.location;
                // Falls off with the square of the distance: 1000 at the
                // lead, 750 at half of `distance_max_km`, 0 from it on.
                let share = distance_sq(lead, office, cos_lat) * cx.inv_max_sq;
                FACTOR_VALUE_MAX - ((share * 1_000.0) as i64).min(FACTOR_VALUE_MAX)
            }
            _ => 0,
        };
        let specialization = if a.specializations & (1 << req.vertical.index()) != 0 {
            FACTOR_VALUE_MAX
        } else {
            0
        };
        let performance =
            i64::from(self.performance[x as usize][req.vertical.index()][req.score_tier as usize]);
        // u32 arithmetic: open ≤ capacity ≤ 10000, so open × 1000 fits.
        let workload =
            FACTOR_VALUE_MAX - i64::from(open.min(a.capacity) * 1_000 / a.capacity.max(1));
        let language = if a.languages & cx.language != 0 {
            FACTOR_VALUE_MAX
        } else {
            0
        };
        let quality = FACTOR_VALUE_MAX
            - i64::from(a.quality_tier.abs_diff(req.score_tier)) * FACTOR_VALUE_MAX
                / (TIERS as i64 - 1);
        let affinity = match cx.referrer {
            None => 0,
            Some(r) if r == x => FACTOR_VALUE_MAX,
            Some(r) => {
                let ra = &self.agents[r as usize];
                let link = |from: &Agent, to: u32| {
                    from.links
                        .iter()
                        .filter(|(t, _, _)| *t == to)
                        .map(|(_, _, s)| i64::from(*s) / 10)
                        .max()
                        .unwrap_or(0)
                };
                let team = if a.team != NONE && self.hot[r as usize].team == a.team {
                    FACTOR_VALUE_MAX / 2
                } else {
                    0
                };
                let back = if a.has_links {
                    link(&self.agents[x as usize], r)
                } else {
                    0
                };
                team.max(link(ra, x)).max(back)
            }
        };
        [
            distance,
            specialization,
            performance,
            workload,
            language,
            quality,
            affinity,
        ]
    }

    /// Each factor's contribution: value × weight.
    fn factors(
        &self,
        x: u32,
        a: &Hot,
        cx: &Context<'_>,
        weights: &[i64; FACTORS.len()],
        open: u32,
    ) -> [i64; FACTORS.len()] {
        let mut factors = self.values(x, a, cx, open);
        for (f, w) in factors.iter_mut().zip(weights) {
            *f *= w;
        }
        factors
    }

    /// Routes one lead: rules out the agents the hard rules forbid, orders
    /// the rest by the agency's strategy, and reserves capacity on the
    /// first that still has some (a racing route may have taken the last
    /// unit: then the next one). Deterministic given the same graph,
    /// workloads and cursor.
    pub fn route(&self, req: &RouteRequest<'_>) -> Result<RouteOutcome, RouteError> {
        if req.score_tier as usize >= TIERS {
            return Err(RouteError::BadTier);
        }
        let agency_x = *self
            .agency_by_id
            .get(req.agency_id)
            .ok_or(RouteError::UnknownAgency)?;
        let agency = &self.agencies[agency_x as usize];
        let policy = &agency.policy;
        let lead_at = ZipCentroids::embedded()
            .centroid_or_prefix(req.zip)
            .map(|(p, _)| (p, (f64::from(p.lat_e6) / 1e6).to_radians().cos()));
        let referrer = req
            .referring_agent
            .and_then(|r| self.agent_index(r))
            .filter(|&r| self.agents[r as usize].agency == agency_x);
        let cx = Context {
            req,
            lead_at,
            referrer,
            inv_max_sq: (f64::from(policy.distance_max_km) * E6_DEG_PER_KM).powi(-2),
            current_carrier: req.current_carrier.map_or(0, |c| {
                self.carriers
                    .iter()
                    .position(|x| x.eq_ignore_ascii_case(c))
                    .map_or(0, |i| i as u32 + 1)
            }),
            language: req.language.map_or(0, |l| {
                self.languages
                    .iter()
                    .take(64)
                    .position(|x| x.eq_ignore_ascii_case(l))
                    .map_or(0, |i| 1 << i)
            }),
        };
        let weights = weights_of(&policy.weights);
        let licensed = &agency.by_state[req.state.index()];
        let mut excluded = [0u32; EXCLUDED_REASONS];
        // Agents of the agency not licensed in the state at all.
        excluded[Excluded::NotLicensed as usize] = (agency.agents.len() - licensed.len()) as u32;
        // Time zones repeat across agents: convert once per zone.
        let mut zone_times: Vec<Option<LocalTime>> = vec![None; self.zones.len()];
        // The candidate list is reused across routes on a thread (it holds
        // up to an agency's licensed agents; only the head is returned).
        let mut candidates = CANDIDATES.with(|c| std::mem::take(&mut *c.borrow_mut()));
        candidates.clear();
        for &(x, lines) in licensed.iter() {
            let a = &self.hot[x as usize];
            let local = *zone_times[a.zone as usize]
                .get_or_insert_with(|| LocalTime::at(self.zones[a.zone as usize], req.now_ms));
            let reason = if req.offered.contains(&x) {
                Some(Excluded::AlreadyOffered)
            } else {
                self.rule_out(a, lines, &cx, local)
            };
            // Relaxed: the figure scores and orders; the reservation below
            // is the check that counts.
            let open = self.workloads.slots[a.slot as usize].load(Ordering::Relaxed);
            let reason = reason.or((open >= a.capacity).then_some(Excluded::AtCapacity));
            if let Some(r) = reason {
                excluded[r as usize] += 1;
                continue;
            }
            let factors = self.factors(x, a, &cx, &weights, open);
            candidates.push(Scored {
                score: factors.iter().sum(),
                agent: x,
                open,
            });
        }
        // Agent indices follow ids within an agency, so the index breaks
        // ties as the id would, without touching the strings.
        let capacity = |c: &Scored| u64::from(self.hot[c.agent as usize].capacity);
        let order = |a: &Scored, b: &Scored| match policy.strategy {
            Strategy::Weighted | Strategy::RoundRobin => {
                b.score.cmp(&a.score).then(a.agent.cmp(&b.agent))
            }
            // open / capacity ascending, by cross-multiplication (exact).
            Strategy::LeastLoaded => (u64::from(a.open) * capacity(b))
                .cmp(&(u64::from(b.open) * capacity(a)))
                .then(a.agent.cmp(&b.agent)),
        };
        let eligible = candidates.len() as u32;
        let head = RANKED_MAX.min(candidates.len());
        if policy.strategy == Strategy::RoundRobin {
            if !candidates.is_empty() {
                // Candidates are in agent id order (the state index is):
                // start at the agency's cursor, which moves one agent per
                // route, so equal agents take turns.
                // Relaxed: the cursor only spreads load; any interleaving
                // of two routes is a valid turn order.
                let turn = agency.cursor.fetch_add(1, Ordering::Relaxed);
                let n = agency.agents.len() as u64;
                let start = agency.agents[(turn % n) as usize];
                let split = candidates.partition_point(|c| c.agent < start);
                candidates.rotate_left(split);
            }
        } else if head > 0 {
            // Only the head is ranked fully (linear selection, then a
            // short sort); the tail is sorted only if no head agent can
            // take the lead.
            if candidates.len() > head {
                candidates.select_nth_unstable_by(head - 1, order);
            }
            candidates[..head].sort_by(order);
        }
        let reserve = |c: &Scored| self.reserve(c.agent).then_some(c.agent);
        let mut assigned = candidates[..head].iter().find_map(reserve);
        if assigned.is_none() && candidates.len() > head {
            if policy.strategy != Strategy::RoundRobin {
                candidates[head..].sort_by(order);
            }
            assigned = candidates[head..].iter().find_map(reserve);
        }
        // The head's factors, computed again from the same figures (the
        // list carries scores only, 16 bytes a candidate, to select fast).
        let ranked = candidates[..head]
            .iter()
            .map(|c| Candidate {
                agent: c.agent,
                score: c.score,
                factors: self.factors(c.agent, &self.hot[c.agent as usize], &cx, &weights, c.open),
                open: c.open,
            })
            .collect();
        CANDIDATES.with(|c| *c.borrow_mut() = candidates);
        Ok(RouteOutcome {
            assigned,
            candidates: ranked,
            eligible,
            excluded,
        })
    }
}

impl AgentGraph {
    /// Who an assignment of agent `x` escalates to: its team's manager,
    /// else its own manager (never `x` itself).
    pub fn escalation_target(&self, x: u32) -> Option<u32> {
        let a = &self.agents[x as usize];
        a.team
            .and_then(|t| self.team_managers[t as usize])
            .filter(|&m| m != x)
            .or(a.manager.filter(|&m| m != x))
    }

    /// Whether agent `x` may take the lead of `req` under the hard rules
    /// (licence, schedule, capacity, captive carrier; `offered` is not
    /// consulted): an escalation goes through the same rules as a route.
    pub fn fits(&self, x: u32, req: &RouteRequest<'_>) -> Result<(), Excluded> {
        let a = &self.hot[x as usize];
        let lines = self.agents[x as usize].lines_by_state[req.state.index()];
        let cx = Context {
            req,
            lead_at: None,
            referrer: None,
            inv_max_sq: 0.0,
            current_carrier: req.current_carrier.map_or(0, |c| {
                self.carriers
                    .iter()
                    .position(|x| x.eq_ignore_ascii_case(c))
                    .map_or(0, |i| i as u32 + 1)
            }),
            language: 0,
        };
        let local = LocalTime::at(self.zones[a.zone as usize], req.now_ms);
        if let Some(r) = self.rule_out(a, lines, &cx, local) {
            return Err(r);
        }
        if self.open(x) >= a.capacity {
            return Err(Excluded::AtCapacity);
        }
        Ok(())
    }

    /// The workload counters this graph reads.
    pub fn workloads(&self) -> &Arc<Workloads> {
        &self.workloads
    }
}

fn weights_of(w: &Weights) -> [i64; FACTORS.len()] {
    [
        w.distance,
        w.specialization,
        w.performance,
        w.workload,
        w.language,
        w.quality,
        w.affinity,
    ]
    .map(i64::from)
}

#[cfg(test)]
mod lifecycle_tests;
#[cfg(test)]
mod tests;
