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

    /// Moves `agency`'s round-robin cursor to at least `next` (replay of a
    /// journaled turn: the turn after it is the next one).
    pub fn advance_cursor(&self, agency: &str, next: u64) {
        // Relaxed: as the cursor's other uses; fetch_max keeps it monotonic.
        self.cursor_of(&Arc::from(agency))
            .fetch_max(next, Ordering::Relaxed);
    }

    /// Every agency's round-robin cursor that is not zero, by id.
    pub fn cursors(&self) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> = self
            .cursors
            .iter()
            // Relaxed: a reading for images and tests.
            .map(|e| (e.key().to_string(), e.value().load(Ordering::Relaxed)))
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

/// An agent's figures as the factors read them, packed (48 bytes) in an
/// array parallel to `AgentGraph::agents`: copied into the roster entries
/// at build, read again for the head's explanation.
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

/// One agent licensed in one state, as the route loop reads it: every
/// field a hard rule or a per-lead factor needs, packed (48 bytes, one
/// entry per agent and licensed state), in a list per agency and state
/// ascending by agent, so the loop streams through one array and touches
/// nothing else but the workload counter and the agent's fixed part of
/// the score (`AgentGraph::statics`).
#[derive(Debug, Clone, Copy)]
struct Entry {
    agent: u32,
    slot: u32,
    /// Interned carrier id + 1; 0: none.
    captive_carrier: u32,
    /// Index into `AgentGraph::windows`; 0: always available.
    window: u32,
    /// At most [`spec::CAPACITY_MAX`].
    capacity: u16,
    /// Bit `v` (below `WINDOWED`) set when the lines held in this state
    /// license vertical `v` (see [`lines_license`]); `WINDOWED`, `ACTIVE`,
    /// `LOCATED`, `LINKED`.
    gate: u16,
    /// Team index; `NONE` for none.
    team: u32,
    languages: u64,
    /// Office latitude and longitude in microdegrees (integers, exact in
    /// an f64), so the distance needs no conversion per agent.
    lat: f64,
    lon: f64,
}

const _: () = assert!(std::mem::size_of::<Entry>() == 48);

/// The agent has a schedule.
const WINDOWED: u16 = 1 << 7;
const ACTIVE: u16 = 1 << 8;
const LOCATED: u16 = 1 << 9;
const LINKED: u16 = 1 << 10;

/// One agency's compiled policy and agents.
#[derive(Debug)]
pub struct Agency {
    /// Policy.
    pub policy: AgencySpec,
    /// Agents licensed in each state (any line), by state index,
    /// ascending by agent (agents are sorted by id within an agency): the
    /// route reads these entries without touching the agent.
    roster: Box<[Box<[Entry]>]>,
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
    /// Distinct (zone, schedule) pairs of agents with a schedule, indexed
    /// by `Entry::window` (0, unused, is "always").
    windows: Vec<(u16, u32)>,
    /// The contributions that depend on the agent, the vertical and the
    /// tier only (specialization + performance + quality, weighted by the
    /// agent's agency), by `vertical × TIERS + tier`, then by agent index.
    statics: Box<[Box<[u32]>]>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
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
    /// The round-robin turn this route took (the agency cursor's value),
    /// for round-robin agencies with a candidate: journaled with the
    /// offer, so a restart resumes the turn order.
    pub turn: Option<u64>,
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

/// Squared distance from `a` to (`lat`, `lon`), microdegrees, in
/// (microdegrees of latitude)²: equirectangular (longitude scaled by the
/// cosine of the lead's latitude, `cos_lat`, computed once per route),
/// accurate to a fraction of a percent under a few hundred km, and with no
/// square root or trigonometry per agent (this runs once per candidate).
/// The coordinates are integers, so the differences are exact.
#[inline(always)]
fn distance_sq(a: LatLon, lat: f64, lon: f64, cos_lat: f64) -> f64 {
    let dy = f64::from(a.lat_e6) - lat;
    let mut dx = (f64::from(a.lon_e6) - lon).abs();
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
            windows: vec![(0, NONE)],
            statics: Box::default(),
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
                        roster: Box::default(),
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
        let mut window_of: HashMap<(u16, u32), u32> = HashMap::new();
        let mut roster: Vec<Vec<Vec<Entry>>> =
            vec![vec![Vec::new(); UsState::COUNT]; g.agencies.len()];
        for (x, a) in g.agents.iter().enumerate() {
            members[a.agency as usize].push(x as u32);
            let h = &g.hot[x];
            let window = match a.schedule {
                None => 0,
                Some(_) => *window_of.entry((h.zone, h.schedule)).or_insert_with(|| {
                    g.windows.push((h.zone, h.schedule));
                    (g.windows.len() - 1) as u32
                }),
            };
            for (s, lines) in a.lines_by_state.iter().enumerate() {
                if *lines == 0 {
                    continue;
                }
                let verticals = Vertical::ALL
                    .iter()
                    .filter(|v| lines_license(**v, *lines))
                    .fold(0u16, |m, v| m | 1 << v.index());
                roster[a.agency as usize][s].push(Entry {
                    agent: x as u32,
                    slot: h.slot,
                    captive_carrier: h.captive_carrier,
                    window,
                    // Validated: at most CAPACITY_MAX (10000).
                    capacity: h.capacity as u16,
                    gate: verticals
                        | (if window != 0 { WINDOWED } else { 0 })
                        | (if h.active { ACTIVE } else { 0 })
                        | (if h.has_location { LOCATED } else { 0 })
                        | (if h.has_links { LINKED } else { 0 }),
                    team: h.team,
                    languages: h.languages,
                    lat: f64::from(h.location.lat_e6),
                    lon: f64::from(h.location.lon_e6),
                });
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
        for ((agency, m), s) in g.agencies.iter_mut().zip(members).zip(roster) {
            agency.agents = m.into_boxed_slice();
            agency.roster = s.into_iter().map(Vec::into_boxed_slice).collect();
        }
        g.statics = (0..Vertical::COUNT * TIERS)
            .map(|vt| {
                let (v, t) = (vt / TIERS, vt % TIERS);
                g.agents
                    .iter()
                    .enumerate()
                    .map(|(x, a)| {
                        let w = weights_of(&g.agencies[a.agency as usize].policy.weights);
                        let values = g.static_values(x as u32, v, t as u8);
                        // At most 3 × 65535 × 1000: fits.
                        (w[1] * values[0] + w[2] * values[1] + w[5] * values[2]) as u32
                    })
                    .collect()
            })
            .collect();
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

    /// The values of the factors that depend on the agent, the vertical
    /// and the tier only: specialization, performance, quality.
    fn static_values(&self, x: u32, vertical: usize, tier: u8) -> [i64; 3] {
        let a = &self.hot[x as usize];
        let specialization = if a.specializations & (1 << vertical) != 0 {
            FACTOR_VALUE_MAX
        } else {
            0
        };
        let performance = i64::from(self.performance[x as usize][vertical][tier as usize]);
        let quality = FACTOR_VALUE_MAX
            - i64::from(a.quality_tier.abs_diff(tier)) * FACTOR_VALUE_MAX / (TIERS as i64 - 1);
        [specialization, performance, quality]
    }

    /// The affinity factor's value of agent `x` (of team `team`, with links
    /// when `linked`) with the referrer: the referrer itself 1000, a link
    /// from or to it its strength, same team 500.
    fn affinity_value(&self, x: u32, team: u32, linked: bool, referrer: Option<u32>) -> i64 {
        match referrer {
            None => 0,
            Some(r) if r == x => FACTOR_VALUE_MAX,
            Some(r) => {
                let link = |from: &Agent, to: u32| {
                    from.links
                        .iter()
                        .filter(|(t, _, _)| *t == to)
                        .map(|(_, _, s)| i64::from(*s) / 10)
                        .max()
                        .unwrap_or(0)
                };
                let team = if team != NONE && self.hot[r as usize].team == team {
                    FACTOR_VALUE_MAX / 2
                } else {
                    0
                };
                let back = if linked {
                    link(&self.agents[x as usize], r)
                } else {
                    0
                };
                team.max(link(&self.agents[r as usize], x)).max(back)
            }
        }
    }

    /// Each factor's value (0 to [`FACTOR_VALUE_MAX`]) for agent index `x`.
    fn values(&self, x: u32, cx: &Context<'_>, open: u32) -> [i64; FACTORS.len()] {
        let req = cx.req;
        let a = &self.hot[x as usize];
        let distance = if a.has_location {
            distance_value(
                cx.lead_at,
                cx.inv_max_sq,
                f64::from(a.location.lat_e6),
                f64::from(a.location.lon_e6),
            )
        } else {
            0
        };
        let [specialization, performance, quality] =
            self.static_values(x, req.vertical.index(), req.score_tier);
        let language = if a.languages & cx.language != 0 {
            FACTOR_VALUE_MAX
        } else {
            0
        };
        [
            distance,
            specialization,
            performance,
            workload_value(open, a.capacity),
            language,
            quality,
            self.affinity_value(x, a.team, a.has_links, cx.referrer),
        ]
    }

    /// Each factor's contribution: value × weight.
    fn factors(
        &self,
        x: u32,
        cx: &Context<'_>,
        weights: &[i64; FACTORS.len()],
        open: u32,
    ) -> [i64; FACTORS.len()] {
        let mut factors = self.values(x, cx, open);
        for (f, w) in factors.iter_mut().zip(weights) {
            *f *= w;
        }
        factors
    }

    /// Visits the agents of `roster` (one agency, the lead's state), counts
    /// each one a hard rule leaves out in `excluded`, and hands the
    /// eligible ones to `sink`, in roster (agent) order; returns how many
    /// were eligible. With `SCORED`, each comes with its score: the sum of
    /// [`Self::factors`], computed without the array (the per-lead
    /// constants from `p`, the rest from the same functions), and an agent
    /// whose score cannot clear the sink's bar is only counted: first
    /// against its fixed part plus the most the others can add, then
    /// against all but the distance plus the most it can add; the distance
    /// is computed for the rest only. Without `SCORED` (strategies that do
    /// not order by score) the score is 0. Not inlined: on its own the
    /// loop keeps its figures in registers (measured: 12.2 → 11.2 µs).
    #[inline(never)]
    fn scan<const SCORED: bool>(
        &self,
        roster: &[Entry],
        cx: &Context<'_>,
        p: &Points,
        scratch: &mut Scratch,
        excluded: &mut [u32; EXCLUDED_REASONS],
        sink: &mut impl Sink,
    ) -> u32 {
        let req = cx.req;
        let statics: &[u32] = &self.statics[req.vertical.index() * TIERS + req.score_tier as usize];
        let slots: &[AtomicU32] = &self.workloads.slots;
        // The gate bits an agent passes the licence, activity and schedule
        // rules with at a glance (a schedule is looked at in `rule_out`).
        let gate_mask = p.vertical_bit | WINDOWED | ACTIVE;
        let gate_want = p.vertical_bit | ACTIVE;
        let located = if cx.lead_at.is_some() { LOCATED } else { 0 };
        let distance_max = p.distance * FACTOR_VALUE_MAX;
        let mut bar = sink.bar();
        let mut eligible = 0;
        for e in roster {
            if p.any_offered
                || e.gate & gate_mask != gate_want
                || e.captive_carrier == p.captive_carrier
            {
                if let Some(r) = self.rule_out(e, p, req, scratch) {
                    excluded[r as usize] += 1;
                    continue;
                }
            }
            // Relaxed: the figure scores and orders; the reservation is the
            // check that counts.
            let open = slots[e.slot as usize].load(Ordering::Relaxed);
            let capacity = u32::from(e.capacity);
            if open >= capacity {
                excluded[Excluded::AtCapacity as usize] += 1;
                continue;
            }
            eligible += 1;
            let x = e.agent;
            let mut score = 0;
            if SCORED {
                score = i64::from(statics[x as usize]);
                if score + p.rest_max <= bar {
                    continue;
                }
                score += p.workload * workload_value(open, capacity);
                if e.languages & cx.language != 0 {
                    score += p.language;
                }
                if cx.referrer.is_some() {
                    let linked = e.gate & LINKED != 0;
                    let affinity = if p.referrer_links || linked || Some(x) == cx.referrer {
                        self.affinity_value(x, e.team, linked, cx.referrer)
                    } else if e.team != NONE && e.team == p.referrer_team {
                        FACTOR_VALUE_MAX / 2
                    } else {
                        0
                    };
                    score += p.affinity * affinity;
                }
                if e.gate & located != 0 {
                    if score + distance_max <= bar {
                        continue;
                    }
                    score += p.distance * distance_value(cx.lead_at, cx.inv_max_sq, e.lat, e.lon);
                }
                if score <= bar {
                    continue;
                }
            }
            bar = sink.take(Scored {
                score,
                agent: x,
                open,
            });
        }
        eligible
    }

    /// The hard rule (other than capacity) that leaves out the agent of
    /// `e`, if any, in the order they are counted.
    #[inline(always)]
    fn rule_out(
        &self,
        e: &Entry,
        p: &Points,
        req: &RouteRequest<'_>,
        scratch: &mut Scratch,
    ) -> Option<Excluded> {
        if p.any_offered && req.offered.contains(&e.agent) {
            Some(Excluded::AlreadyOffered)
        } else if e.gate & ACTIVE == 0 {
            Some(Excluded::Inactive)
        } else if e.gate & p.vertical_bit == 0 {
            Some(Excluded::NotLicensed)
        } else if e.window != 0 && !self.window_open(e.window, req.now_ms, scratch) {
            Some(Excluded::OutsideSchedule)
        } else if e.captive_carrier == p.captive_carrier {
            Some(Excluded::CaptiveOfCurrentCarrier)
        } else {
            None
        }
    }

    /// Whether window `w` (a time zone and a schedule) is open at `now_ms`,
    /// computed once per route and window (and the local time once per
    /// route and zone).
    #[inline(always)]
    fn window_open(&self, w: u32, now_ms: i64, scratch: &mut Scratch) -> bool {
        match scratch.windows[w as usize] {
            (route, open) if route == scratch.route => open,
            _ => self.window_open_slow(w, now_ms, scratch),
        }
    }

    #[cold]
    fn window_open_slow(&self, w: u32, now_ms: i64, scratch: &mut Scratch) -> bool {
        let (zone, schedule) = self.windows[w as usize];
        let local = match scratch.zone_times[zone as usize] {
            (route, local) if route == scratch.route => local,
            _ => {
                let local = LocalTime::at(self.zones[zone as usize], now_ms);
                scratch.zone_times[zone as usize] = (scratch.route, local);
                local
            }
        };
        let open =
            self.schedules[schedule as usize][local.weekday as usize] & (1 << local.hour) != 0;
        scratch.windows[w as usize] = (scratch.route, open);
        open
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
        let p = Points::of(&weights, &cx, self);
        let roster = &agency.roster[req.state.index()];
        let mut excluded = [0u32; EXCLUDED_REASONS];
        // Agents of the agency not licensed in the state at all.
        excluded[Excluded::NotLicensed as usize] = (agency.agents.len() - roster.len()) as u32;
        // Scratch space reused across routes on a thread.
        let mut scratch = SCRATCH.with(|c| std::mem::take(&mut *c.borrow_mut()));
        scratch.start(self);
        // Agent indices follow ids within an agency, so the index breaks
        // ties as the id would, without touching the strings.
        let capacity = |c: &Scored| u64::from(self.hot[c.agent as usize].capacity);
        let by_score = |a: &Scored, b: &Scored| b.score.cmp(&a.score).then(a.agent.cmp(&b.agent));
        let order = |a: &Scored, b: &Scored| match policy.strategy {
            Strategy::Weighted | Strategy::RoundRobin => by_score(a, b),
            // open / capacity ascending, by cross-multiplication (exact).
            Strategy::LeastLoaded => (u64::from(a.open) * capacity(b))
                .cmp(&(u64::from(b.open) * capacity(a)))
                .then(a.agent.cmp(&b.agent)),
        };
        let mut all = std::mem::take(&mut scratch.all);
        let mut head = std::mem::take(&mut scratch.head);
        all.clear();
        head.clear();
        let weighted = policy.strategy == Strategy::Weighted;
        let mut taken_turn = None;
        let eligible = if policy.strategy == Strategy::RoundRobin {
            let eligible =
                self.scan::<false>(roster, &cx, &p, &mut scratch, &mut excluded, &mut all);
            if !all.is_empty() {
                // Candidates are in agent id order (the state index is):
                // start at the agency's cursor, which moves one agent per
                // route, so equal agents take turns.
                // Relaxed: the cursor only spreads load; any interleaving
                // of two routes is a valid turn order.
                let turn = agency.cursor.fetch_add(1, Ordering::Relaxed);
                taken_turn = Some(turn);
                let n = agency.agents.len() as u64;
                let start = agency.agents[(turn % n) as usize];
                let split = all.partition_point(|c| c.agent < start);
                all.rotate_left(split);
            }
            head.extend_from_slice(&all[..RANKED_MAX.min(all.len())]);
            eligible
        } else {
            // Only the head is kept, in order, as the agents go by.
            if weighted {
                let mut ranked = Ranked {
                    head: &mut head,
                    order: by_score,
                    by_score: true,
                };
                let n =
                    self.scan::<true>(roster, &cx, &p, &mut scratch, &mut excluded, &mut ranked);
                ranked.finish();
                n
            } else {
                let mut ranked = Ranked {
                    head: &mut head,
                    order,
                    by_score: false,
                };
                let n =
                    self.scan::<false>(roster, &cx, &p, &mut scratch, &mut excluded, &mut ranked);
                ranked.finish();
                n
            }
        };
        let reserve = |c: &Scored| self.reserve(c.agent).then_some(c.agent);
        #[cfg(test)]
        equivalence::race(self, &head);
        let mut assigned = head.iter().find_map(reserve);
        if assigned.is_none() && eligible as usize > head.len() {
            // No head agent could take the lead (racing routes took their
            // last units): the rest, in order. Round-robin has them; the
            // other strategies visit the agents again for them (this is
            // rare: only a race gets here).
            if policy.strategy != Strategy::RoundRobin {
                let mut ignored = [0u32; EXCLUDED_REASONS];
                let mut rest = Rest {
                    head: &head,
                    all: &mut all,
                };
                if weighted {
                    self.scan::<true>(roster, &cx, &p, &mut scratch, &mut ignored, &mut rest);
                } else {
                    self.scan::<false>(roster, &cx, &p, &mut scratch, &mut ignored, &mut rest);
                }
                all.sort_by(order);
                assigned = all.iter().find_map(reserve);
            } else {
                assigned = all[head.len()..].iter().find_map(reserve);
            }
        }
        // The head's factors, computed again from the same figures (the
        // scan carries the score only, and only when it orders by it).
        let ranked = head
            .iter()
            .map(|c| {
                let factors = self.factors(c.agent, &cx, &weights, c.open);
                let score = factors.iter().sum();
                debug_assert!(!weighted || score == c.score);
                Candidate {
                    agent: c.agent,
                    score,
                    factors,
                    open: c.open,
                }
            })
            .collect();
        scratch.all = all;
        scratch.head = head;
        SCRATCH.with(|c| *c.borrow_mut() = scratch);
        Ok(RouteOutcome {
            assigned,
            candidates: ranked,
            eligible,
            excluded,
            turn: taken_turn,
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
        let a = &self.agents[x as usize];
        if !a.active {
            return Err(Excluded::Inactive);
        }
        if !lines_license(req.vertical, a.lines_by_state[req.state.index()]) {
            return Err(Excluded::NotLicensed);
        }
        if let Some(days) = &a.schedule {
            let local = LocalTime::at(a.tz, req.now_ms);
            if days[local.weekday as usize] & (1 << local.hour) == 0 {
                return Err(Excluded::OutsideSchedule);
            }
        }
        let captive = a.captive_carrier;
        if captive != 0
            && req
                .current_carrier
                .is_some_and(|c| self.carriers[captive as usize - 1].eq_ignore_ascii_case(c))
        {
            return Err(Excluded::CaptiveOfCurrentCarrier);
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

/// The distance factor's value of an office at (`lat`, `lon`), microdegrees,
/// for a lead at `lead_at` (its centroid and the cosine of its latitude):
/// falls off with the square of the distance, 1000 at the lead, 750 at
/// half of `distance_max_km`, 0 from it on (`inv_max_sq` is 1 /
/// (`distance_max_km` in microdegrees of latitude)²). 0 with no lead
/// location.
#[inline(always)]
fn distance_value(lead_at: Option<(LatLon, f64)>, inv_max_sq: f64, lat: f64, lon: f64) -> i64 {
    match lead_at {
        Some((lead, cos_lat)) => {
            let share = distance_sq(lead, lat, lon, cos_lat) * inv_max_sq;
            FACTOR_VALUE_MAX - ((share * 1_000.0) as i64).min(FACTOR_VALUE_MAX)
        }
        None => 0,
    }
}

/// The workload factor's value: the free share of capacity, per mille.
#[inline(always)]
fn workload_value(open: u32, capacity: u32) -> i64 {
    if open == 0 {
        FACTOR_VALUE_MAX
    } else {
        // u32 arithmetic: open ≤ capacity ≤ 10000, so open × 1000 fits.
        FACTOR_VALUE_MAX - i64::from(open.min(capacity) * 1_000 / capacity.max(1))
    }
}

/// Where a scan hands the eligible agents.
trait Sink {
    /// A score at or below which a candidate would not be kept (only
    /// counted); `i64::MIN` when every one is kept.
    fn bar(&self) -> i64;
    /// Takes one candidate; returns the bar after it.
    fn take(&mut self, c: Scored) -> i64;
}

/// Every candidate, in scan order (round-robin).
impl Sink for Vec<Scored> {
    #[inline(always)]
    fn bar(&self) -> i64 {
        i64::MIN
    }
    #[inline(always)]
    fn take(&mut self, c: Scored) -> i64 {
        self.push(c);
        i64::MIN
    }
}

/// The first [`RANKED_MAX`] candidates in `order`, kept as the agents go
/// by in a binary heap with the last of them at the root (sorted once at
/// the end). Agents come by ascending index, so a candidate that ties the
/// root on the order's key comes after it, as the order wants: it is left
/// out like a lower one.
struct Ranked<'a, F> {
    head: &'a mut Vec<Scored>,
    order: F,
    /// The order is by score first: a full head's last score is the bar.
    by_score: bool,
}

impl<F: Fn(&Scored, &Scored) -> std::cmp::Ordering> Ranked<'_, F> {
    /// The head, in order.
    fn finish(self) {
        self.head.sort_by(&self.order);
    }
}

impl<F: Fn(&Scored, &Scored) -> std::cmp::Ordering> Sink for Ranked<'_, F> {
    #[inline(always)]
    fn bar(&self) -> i64 {
        match self.head.first() {
            Some(last) if self.by_score && self.head.len() == RANKED_MAX => last.score,
            _ => i64::MIN,
        }
    }
    #[inline(always)]
    fn take(&mut self, c: Scored) -> i64 {
        let order = &self.order;
        // `a` comes after `b` in the order.
        let after = |a: &Scored, b: &Scored| order(a, b) == std::cmp::Ordering::Greater;
        if self.head.len() < RANKED_MAX {
            // Sift up: a parent comes after its children.
            self.head.push(c);
            let h = &mut **self.head;
            let mut i = h.len() - 1;
            while i > 0 {
                let parent = (i - 1) / 2;
                if !after(&h[i], &h[parent]) {
                    break;
                }
                h.swap(i, parent);
                i = parent;
            }
        } else if after(&self.head[0], &c) {
            // Replace the root and sift down.
            let h = &mut **self.head;
            let mut i = 0;
            loop {
                let l = 2 * i + 1;
                if l >= RANKED_MAX {
                    break;
                }
                let r = l + 1;
                let child = if r < RANKED_MAX && after(&h[r], &h[l]) {
                    r
                } else {
                    l
                };
                if !after(&h[child], &c) {
                    break;
                }
                h[i] = h[child];
                i = child;
            }
            h[i] = c;
        }
        self.bar()
    }
}

/// The candidates not in `head` (the fallback when no head agent could be
/// reserved).
struct Rest<'a> {
    head: &'a [Scored],
    all: &'a mut Vec<Scored>,
}

impl Sink for Rest<'_> {
    fn bar(&self) -> i64 {
        i64::MIN
    }
    fn take(&mut self, c: Scored) -> i64 {
        if !self.head.iter().any(|h| h.agent == c.agent) {
            self.all.push(c);
        }
        i64::MIN
    }
}

/// A thread's scratch space for routes, reused.
#[derive(Default)]
struct Scratch {
    /// Every eligible candidate (round-robin; the rare fallback).
    all: Vec<Scored>,
    /// The ranked head, at most [`RANKED_MAX`].
    head: Vec<Scored>,
    /// Routes on this thread so far: the caches below hold a figure for
    /// the route of this number only (no clearing per route).
    route: u64,
    /// Per window of the graph: (route, open).
    windows: Vec<(u64, bool)>,
    /// Per zone of the graph: (route, local time).
    zone_times: Vec<(u64, LocalTime)>,
}

impl Scratch {
    /// Starts a route on `g`.
    fn start(&mut self, g: &AgentGraph) {
        self.route += 1;
        if self.windows.len() < g.windows.len() {
            self.windows.resize(g.windows.len(), (0, false));
        }
        if self.zone_times.len() < g.zones.len() {
            self.zone_times
                .resize(g.zones.len(), (0, LocalTime::default()));
        }
    }
}

/// Per route: the weights of the factors computed per agent, and the
/// contributions and ids that depend on the lead only.
struct Points {
    distance: i64,
    /// The most the factors other than specialization, performance and
    /// quality can add.
    rest_max: i64,
    workload: i64,
    /// The language contribution when the agent speaks it.
    language: i64,
    affinity: i64,
    vertical_bit: u16,
    /// The consumer's carrier as in `Entry::captive_carrier`; `NONE` when
    /// no agent can be captive of it.
    captive_carrier: u32,
    /// The referrer's team (`NONE` for none or no referrer).
    referrer_team: u32,
    /// The referrer has links (the affinity then reads them).
    referrer_links: bool,
    any_offered: bool,
}

impl Points {
    fn of(w: &[i64; FACTORS.len()], cx: &Context<'_>, g: &AgentGraph) -> Points {
        Points {
            distance: w[0],
            rest_max: (w[0] + w[3] + w[4] + w[6]) * FACTOR_VALUE_MAX,
            workload: w[3],
            language: w[4] * FACTOR_VALUE_MAX,
            affinity: w[6],
            vertical_bit: 1 << cx.req.vertical.index(),
            captive_carrier: match cx.current_carrier {
                0 => NONE,
                c => c,
            },
            referrer_team: cx.referrer.map_or(NONE, |r| g.hot[r as usize].team),
            referrer_links: cx
                .referrer
                .is_some_and(|r| !g.agents[r as usize].links.is_empty()),
            any_offered: !cx.req.offered.is_empty(),
        }
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

#[cfg(test)]
mod equivalence;
