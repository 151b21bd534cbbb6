//! The route loop against a plain reference: the rules and factors computed
//! agent by agent from the compiled records (the first, unoptimized route),
//! over random agencies, workloads and leads. Every outcome must be equal.

use super::spec::*;
use super::*;
use crate::spec::{ScheduleWindow, Weekday};

/// The squared distance as first written (integer differences).
fn reference_distance_sq(a: LatLon, b: LatLon, cos_lat: f64) -> f64 {
    let dy = f64::from(a.lat_e6 - b.lat_e6);
    let mut dx = f64::from(a.lon_e6 - b.lon_e6).abs();
    if dx > 180e6 {
        dx = 360e6 - dx;
    }
    let dx = dx * cos_lat;
    dx * dx + dy * dy
}

/// The reference route: every agent licensed in the state visited, every
/// factor computed, every candidate sorted. Reserves like `route`.
fn reference_route(g: &AgentGraph, req: &RouteRequest<'_>) -> Result<RouteOutcome, RouteError> {
    if req.score_tier as usize >= TIERS {
        return Err(RouteError::BadTier);
    }
    let agency_x = *g
        .agency_by_id
        .get(req.agency_id)
        .ok_or(RouteError::UnknownAgency)?;
    let agency = &g.agencies[agency_x as usize];
    let policy = &agency.policy;
    let lead_at = ZipCentroids::embedded()
        .centroid_or_prefix(req.zip)
        .map(|(p, _)| (p, (f64::from(p.lat_e6) / 1e6).to_radians().cos()));
    let referrer = req
        .referring_agent
        .and_then(|r| g.agent_index(r))
        .filter(|&r| g.agents[r as usize].agency == agency_x);
    let inv_max_sq = (f64::from(policy.distance_max_km) * E6_DEG_PER_KM).powi(-2);
    let current_carrier = req.current_carrier.map_or(0, |c| {
        g.carriers
            .iter()
            .position(|x| x.eq_ignore_ascii_case(c))
            .map_or(0, |i| i as u32 + 1)
    });
    let language: u64 = req.language.map_or(0, |l| {
        g.languages
            .iter()
            .take(64)
            .position(|x| x.eq_ignore_ascii_case(l))
            .map_or(0, |i| 1 << i)
    });
    let w = weights_of(&policy.weights);
    let mut excluded = [0u32; EXCLUDED_REASONS];
    let mut cands: Vec<Candidate> = Vec::new();
    for &x in agency.agents.iter() {
        let a = &g.agents[x as usize];
        let lines = a.lines_by_state[req.state.index()];
        if lines == 0 {
            excluded[Excluded::NotLicensed as usize] += 1;
            continue;
        }
        let local = LocalTime::at(a.tz, req.now_ms);
        let open = g.workloads.slots[a.slot as usize].load(Ordering::Relaxed);
        let reason = if req.offered.contains(&x) {
            Some(Excluded::AlreadyOffered)
        } else if !a.active {
            Some(Excluded::Inactive)
        } else if !lines_license(req.vertical, lines) {
            Some(Excluded::NotLicensed)
        } else if a
            .schedule
            .is_some_and(|s| s[local.weekday as usize] & (1 << local.hour) == 0)
        {
            Some(Excluded::OutsideSchedule)
        } else if a.captive_carrier != 0 && a.captive_carrier == current_carrier {
            Some(Excluded::CaptiveOfCurrentCarrier)
        } else if open >= a.capacity {
            Some(Excluded::AtCapacity)
        } else {
            None
        };
        if let Some(r) = reason {
            excluded[r as usize] += 1;
            continue;
        }
        let distance = match (lead_at, a.location) {
            (Some((lead, cos_lat)), Some(office)) => {
                let share = reference_distance_sq(lead, office, cos_lat) * inv_max_sq;
                FACTOR_VALUE_MAX - ((share * 1_000.0) as i64).min(FACTOR_VALUE_MAX)
            }
            _ => 0,
        };
        let specialization = if a.specializations & (1 << req.vertical.index()) != 0 {
            FACTOR_VALUE_MAX
        } else {
            0
        };
        let performance = i64::from(a.performance[req.vertical.index()][req.score_tier as usize]);
        let workload =
            FACTOR_VALUE_MAX - i64::from(open.min(a.capacity) * 1_000 / a.capacity.max(1));
        let lang = if a.languages & language != 0 {
            FACTOR_VALUE_MAX
        } else {
            0
        };
        let quality = FACTOR_VALUE_MAX
            - i64::from(a.quality_tier.abs_diff(req.score_tier)) * FACTOR_VALUE_MAX
                / (TIERS as i64 - 1);
        let affinity = match referrer {
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
                let team = if a.team.is_some() && g.agents[r as usize].team == a.team {
                    FACTOR_VALUE_MAX / 2
                } else {
                    0
                };
                team.max(link(&g.agents[r as usize], x)).max(link(a, r))
            }
        };
        let mut factors = [
            distance,
            specialization,
            performance,
            workload,
            lang,
            quality,
            affinity,
        ];
        for (f, w) in factors.iter_mut().zip(&w) {
            *f *= w;
        }
        cands.push(Candidate {
            agent: x,
            score: factors.iter().sum(),
            factors,
            open,
        });
    }
    let cap = |c: &Candidate| u64::from(g.agents[c.agent as usize].capacity);
    let mut taken_turn = None;
    match policy.strategy {
        Strategy::Weighted => {
            cands.sort_by(|a, b| b.score.cmp(&a.score).then(a.agent.cmp(&b.agent)))
        }
        Strategy::LeastLoaded => cands.sort_by(|a, b| {
            (u64::from(a.open) * cap(b))
                .cmp(&(u64::from(b.open) * cap(a)))
                .then(a.agent.cmp(&b.agent))
        }),
        Strategy::RoundRobin => {
            if !cands.is_empty() {
                let turn = agency.cursor.fetch_add(1, Ordering::Relaxed);
                taken_turn = Some(turn);
                let n = agency.agents.len() as u64;
                let start = agency.agents[(turn % n) as usize];
                let split = cands.partition_point(|c| c.agent < start);
                cands.rotate_left(split);
            }
        }
    }
    let assigned = cands
        .iter()
        .find_map(|c| g.reserve(c.agent).then_some(c.agent));
    let eligible = cands.len() as u32;
    cands.truncate(RANKED_MAX);
    Ok(RouteOutcome {
        assigned,
        candidates: cands,
        eligible,
        excluded,
        turn: taken_turn,
    })
}

/// xorshift64*: a fixed sequence, so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

const STATES: [&str; 4] = ["CA", "TX", "NY", "FL"];
const LINES: [Line; 6] = [
    Line::Property,
    Line::Casualty,
    Line::PersonalLines,
    Line::Commercial,
    Line::Life,
    Line::Health,
];
const ZIPS: [&str; 8] = [
    "90210", "94105", "10001", "73301", "33101", "96701", "00001", "99950",
];
const ZONES: [&str; 5] = [
    "America/Los_Angeles",
    "America/New_York",
    "America/Chicago",
    "Pacific/Honolulu",
    "UTC",
];
const CARRIERS: [&str; 3] = ["state farm", "allstate", "geico"];
const LANGUAGES: [&str; 4] = ["en", "es", "fr", "zh"];
const DAYS: [Weekday; 7] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
    Weekday::Sat,
    Weekday::Sun,
];

fn random_spec(rng: &mut Rng, n: usize) -> RoutingSpec {
    let agencies = ["a0", "a1", "a2"];
    let mut agents: Vec<AgentSpec> = (0..n)
        .map(|i| {
            let agency = rng.pick(&agencies);
            AgentSpec {
                id: format!("ag-{:04}-{i}", rng.below(10_000)),
                agency_id: agency.into(),
                licences: (0..rng.below(10))
                    .map(|_| LicenceSpec {
                        state: UsState::parse(rng.pick(&STATES)).unwrap(),
                        line: rng.pick(&LINES),
                    })
                    .collect(),
                appointments: vec![],
                captive_carrier: rng.chance(20).then(|| (rng.pick(&CARRIERS)).to_string()),
                specializations: Vertical::ALL
                    .iter()
                    .copied()
                    .filter(|_| rng.chance(30))
                    .collect(),
                zip: rng.chance(85).then(|| Zip::parse(rng.pick(&ZIPS)).unwrap()),
                languages: LANGUAGES
                    .iter()
                    .filter(|_| rng.chance(40))
                    .map(|l| l.to_string())
                    .collect(),
                capacity: {
                    let most = if rng.chance(10) { 10_000 } else { 4 };
                    1 + rng.below(most) as u32
                },
                time_zone: (rng.pick(&ZONES)).into(),
                schedule: if rng.chance(40) {
                    (0..1 + rng.below(3))
                        .map(|_| {
                            let from = rng.below(23) as u8;
                            ScheduleWindow {
                                days: {
                                    let one = rng.pick(&DAYS);
                                    let mut d: Vec<Weekday> =
                                        DAYS.iter().copied().filter(|_| rng.chance(60)).collect();
                                    d.push(one);
                                    d
                                },
                                from_hour: from,
                                to_hour: from + 1 + rng.below(u64::from(24 - from)) as u8,
                            }
                        })
                        .collect()
                } else {
                    vec![]
                },
                performance: PerformanceSpec {
                    conversion_bps: rng.below(10_001) as u16,
                    median_response_s: if rng.chance(20) {
                        0
                    } else {
                        rng.below(8_000) as u32
                    },
                    rating_centi: rng.below(501) as u16,
                    success: (0..rng.below(4))
                        .map(|_| SuccessSpec {
                            vertical: rng.pick(&Vertical::ALL),
                            tier: rng.below(4) as u8,
                            conversion_bps: rng.below(10_001) as u16,
                        })
                        .collect(),
                },
                quality_tier: rng.below(4) as u8,
                manager_id: None,
                team_id: rng.chance(70).then(|| format!("t{}", rng.below(4))),
                links: vec![],
                active: rng.chance(90),
            }
        })
        .collect();
    // Links within an agency.
    for i in 0..agents.len() {
        if !rng.chance(15) {
            continue;
        }
        for _ in 0..1 + rng.below(4) {
            let j = rng.below(agents.len() as u64) as usize;
            if j != i && agents[j].agency_id == agents[i].agency_id {
                let to = agents[j].id.clone();
                agents[i].links.push(LinkSpec {
                    to,
                    kind: if rng.chance(50) {
                        LinkKind::Referral
                    } else {
                        LinkKind::Mentorship
                    },
                    strength_bps: 1 + rng.below(10_000) as u16,
                });
            }
        }
    }
    let chosen: Vec<&str> = agencies
        .iter()
        .copied()
        .filter(|_| rng.chance(80))
        .collect();
    let policies = chosen
        .into_iter()
        .map(|id| {
            // Small weights make near ties: scores a unit apart, which
            // the bars must not cut.
            let most = if rng.chance(30) { 3 } else { 100 };
            let mut w = || {
                if rng.chance(15) {
                    0
                } else if rng.chance(5) {
                    u16::MAX
                } else {
                    rng.below(most) as u16
                }
            };
            let weights = Weights {
                distance: w(),
                specialization: w(),
                performance: w(),
                workload: w(),
                language: w(),
                quality: w(),
                affinity: w(),
            };
            AgencySpec {
                strategy: match rng.below(3) {
                    0 => Strategy::Weighted,
                    1 => Strategy::RoundRobin,
                    _ => Strategy::LeastLoaded,
                },
                weights,
                distance_max_km: 1 + rng.below(5_000) as u32,
                ..AgencySpec::default_for(id)
            }
        })
        .collect();
    RoutingSpec {
        agents,
        agencies: policies,
        teams: vec![],
    }
}

thread_local! {
    /// Set: `route` fills the capacity of every head agent before it
    /// reserves, as racing routes could; the units taken, per agent.
    static RACE: std::cell::RefCell<Option<Vec<(u32, u32)>>> = const { std::cell::RefCell::new(None) };
}

/// Called by `route` (tests only) between ranking and reserving.
pub(super) fn race(g: &AgentGraph, head: &[Scored]) {
    RACE.with(|r| {
        if let Some(taken) = r.borrow_mut().as_mut() {
            for c in head {
                let mut n = 0;
                while g.reserve(c.agent) {
                    n += 1;
                }
                taken.push((c.agent, n));
            }
        }
    });
}

/// What the compared routes went through, to check the cases are covered.
#[derive(Default)]
struct Seen {
    excluded: [u64; EXCLUDED_REASONS],
    /// Routes with more eligible agents than the head holds.
    overflowing: u64,
    assigned: u64,
}

/// The agency's round-robin cursor, to replay a route.
fn cursor(g: &AgentGraph, req: &RouteRequest<'_>) -> Option<u64> {
    g.agency(req.agency_id)
        .map(|a| a.cursor.load(Ordering::Relaxed))
}

fn set_cursor(g: &AgentGraph, req: &RouteRequest<'_>, at: Option<u64>) {
    if let (Some(a), Some(c)) = (g.agency(req.agency_id), at) {
        a.cursor.store(c, Ordering::Relaxed);
    }
}

/// Runs the reference, then `route` from the same state (cursor put back,
/// reservations released), and checks they agree.
fn compare(g: &AgentGraph, req: &RouteRequest<'_>, seen: &mut Seen) {
    let at = cursor(g, req);
    let want = reference_route(g, req);
    if let Ok(Some(x)) = want.as_ref().map(|o| o.assigned) {
        assert!(g.release(x));
    }
    set_cursor(g, req, at);
    let got = g.route(req);
    if let Ok(Some(x)) = got.as_ref().map(|o| o.assigned) {
        assert!(g.release(x));
    }
    assert_eq!(got, want, "request {req:?}");
    if let Ok(out) = &got {
        for c in &out.candidates {
            assert_eq!(c.factors.iter().sum::<i64>(), c.score);
        }
        for (s, e) in seen.excluded.iter_mut().zip(out.excluded) {
            *s += u64::from(e);
        }
        seen.overflowing += u64::from(out.eligible as usize > RANKED_MAX);
        seen.assigned += u64::from(out.assigned.is_some());
    }
}

/// When no head agent can be reserved any more (racing routes took their
/// last units), the route reports what it ranked and assigns the lead as
/// the reference does with those agents full.
fn compare_raced(g: &AgentGraph, req: &RouteRequest<'_>) {
    let at = cursor(g, req);
    let Ok(first) = reference_route(g, req) else {
        return;
    };
    if let Some(x) = first.assigned {
        assert!(g.release(x));
    }
    set_cursor(g, req, at);
    RACE.with(|r| *r.borrow_mut() = Some(Vec::new()));
    let got = g.route(req).unwrap();
    let taken = RACE.with(|r| r.borrow_mut().take()).unwrap();
    if let Some(x) = got.assigned {
        assert!(g.release(x));
    }
    set_cursor(g, req, at);
    let then = reference_route(g, req).unwrap();
    if let Some(x) = then.assigned {
        assert!(g.release(x));
    }
    for (x, n) in taken {
        for _ in 0..n {
            assert!(g.release(x));
        }
    }
    set_cursor(g, req, at);
    assert_eq!(
        (&got.candidates, got.eligible, got.excluded),
        (&first.candidates, first.eligible, first.excluded),
        "request {req:?}"
    );
    assert_eq!(got.assigned, then.assigned, "request {req:?}");
    if first.eligible as usize > RANKED_MAX {
        assert!(got.assigned.is_some(), "a tail agent takes it");
    }
}

/// A random lead for an agency of `g`.
fn random_request<'a>(rng: &mut Rng, ids: &'a [String], offered: &'a [u32]) -> RouteRequest<'a> {
    let carrier = rng.chance(50).then(|| {
        rng.pick(&[
            "state farm",
            "STATE FARM",
            "allstate",
            "geico",
            "progressive",
        ])
    });
    let language = rng
        .chance(60)
        .then(|| rng.pick(&["en", "es", "ES", "fr", "zh", "de"]));
    let referrer = if rng.chance(60) {
        Some(if rng.chance(90) {
            ids[rng.below(ids.len() as u64) as usize].as_str()
        } else {
            "nobody"
        })
    } else {
        None
    };
    RouteRequest {
        agency_id: rng.pick(&["a0", "a1", "a2", "a3"]),
        vertical: rng.pick(&Vertical::ALL),
        state: UsState::parse(rng.pick(&STATES)).unwrap(),
        zip: Zip::parse(rng.pick(&ZIPS)).unwrap(),
        current_carrier: carrier,
        language,
        score_tier: if rng.chance(3) { 4 } else { rng.below(4) as u8 },
        referring_agent: referrer,
        offered,
        now_ms: 1_795_453_200_000 + rng.below(7 * 24 * 3_600_000) as i64,
    }
}

/// Agents already offered a lead: indices of `g` (some twice) and a few
/// beyond it.
fn random_offered(rng: &mut Rng, agents: usize) -> Vec<u32> {
    let n = if rng.chance(50) { 0 } else { rng.below(8) };
    (0..n)
        .map(|_| {
            if rng.chance(10) {
                u32::MAX - rng.below(3) as u32
            } else {
                rng.below(agents as u64 + 2) as u32
            }
        })
        .collect()
}

/// Takes some units of every agent's capacity.
fn random_workloads(rng: &mut Rng, g: &AgentGraph) {
    for x in 0..g.agents.len() as u32 {
        let cap = g.agents[x as usize].capacity;
        for _ in 0..rng.below(u64::from(cap.min(6)) + 1) {
            g.reserve(x);
        }
    }
}

#[test]
fn route_equals_the_reference_on_random_agencies() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut seen = Seen::default();
    for _ in 0..300 {
        let n = 1 + rng.below(250) as usize;
        let spec = random_spec(&mut rng, n);
        let g = AgentGraph::build(&spec, &Arc::new(Workloads::default())).unwrap();
        random_workloads(&mut rng, &g);
        let ids: Vec<String> = spec.agents.iter().map(|a| a.id.clone()).collect();
        for _ in 0..60 {
            let offered = random_offered(&mut rng, g.agents.len());
            let req = random_request(&mut rng, &ids, &offered);
            compare(&g, &req, &mut seen);
            // Workloads move between routes, so capacity decides too.
            if rng.chance(30) {
                let x = rng.below(g.agents.len() as u64) as u32;
                if rng.chance(50) {
                    g.reserve(x);
                } else {
                    g.release(x);
                }
            }
        }
    }
    assert!(
        seen.excluded.iter().all(|&n| n > 0),
        "every rule left some out"
    );
    assert!(seen.assigned > 1_000);
}

#[test]
fn route_equals_the_reference_on_large_agencies() {
    // Agencies of a few thousand agents: the head is a small part of the
    // eligible, and the bars rise as the scan goes.
    let mut rng = Rng(42);
    let mut seen = Seen::default();
    for _ in 0..3 {
        let spec = random_spec(&mut rng, 3_000);
        let g = AgentGraph::build(&spec, &Arc::new(Workloads::default())).unwrap();
        random_workloads(&mut rng, &g);
        let ids: Vec<String> = spec.agents.iter().map(|a| a.id.clone()).collect();
        for i in 0..150 {
            let offered = random_offered(&mut rng, g.agents.len());
            let req = random_request(&mut rng, &ids, &offered);
            if i % 3 == 0 {
                compare_raced(&g, &req);
            } else {
                compare(&g, &req, &mut seen);
            }
            // Keep some assignments: workloads grow over the run.
            if let Ok(out) = g.route(&req) {
                if rng.chance(50) {
                    if let Some(x) = out.assigned {
                        g.release(x);
                    }
                }
            }
        }
    }
    assert!(seen.overflowing > 100, "{}", seen.overflowing);
}

#[test]
fn scores_a_unit_above_the_bar_are_kept() {
    // Every agent at the lead's ZIP with no open assignment: the bounds
    // the scan prunes with are reached exactly, and scores differ by
    // units, so a bar off by one would drop a head agent.
    let mut rng = Rng(7);
    let mut seen = Seen::default();
    for round in 0..40 {
        let agents: Vec<AgentSpec> = (0..300)
            .map(|i| AgentSpec {
                id: format!("n-{i:03}"),
                agency_id: "a0".into(),
                licences: vec![LicenceSpec {
                    state: UsState::parse("CA").unwrap(),
                    line: Line::PersonalLines,
                }],
                appointments: vec![],
                captive_carrier: None,
                specializations: vec![],
                zip: Zip::parse("90210"),
                languages: if rng.chance(50) {
                    vec!["es".into()]
                } else {
                    vec![]
                },
                capacity: 5,
                time_zone: "UTC".into(),
                schedule: vec![],
                performance: PerformanceSpec {
                    // Performance (conversion_bps / 20 here) rises by a
                    // unit now and then.
                    conversion_bps: (2_000 + 20 * (i / 40 + rng.below(2) as u32)) as u16,
                    ..PerformanceSpec::default()
                },
                quality_tier: 0,
                manager_id: None,
                team_id: None,
                links: vec![],
                active: true,
            })
            .collect();
        let one = |on: bool| u16::from(on);
        let policy = AgencySpec {
            weights: Weights {
                distance: 1,
                specialization: 0,
                performance: 1,
                workload: 1,
                language: one(round % 2 == 1),
                quality: 0,
                affinity: 0,
            },
            ..AgencySpec::default_for("a0")
        };
        let spec = RoutingSpec {
            agents,
            agencies: vec![policy],
            teams: vec![],
        };
        let g = AgentGraph::build(&spec, &Arc::new(Workloads::default())).unwrap();
        let req = RouteRequest {
            agency_id: "a0",
            vertical: Vertical::Auto,
            state: UsState::parse("CA").unwrap(),
            zip: Zip::parse("90210").unwrap(),
            current_carrier: None,
            language: Some("es"),
            score_tier: 0,
            referring_agent: None,
            offered: &[],
            now_ms: 1_795_453_200_000,
        };
        compare(&g, &req, &mut seen);
    }
    assert_eq!(seen.overflowing, 40);
}
