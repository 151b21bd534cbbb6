//! Hard rules, factors, strategies, explanations and capacity under
//! concurrency.

use super::spec::*;
use super::*;
use crate::spec::Weekday;

/// Monday 2026-11-23 17:00 UTC: noon in New York.
const NOON_NY_MS: i64 = 1_795_453_200_000;

fn agent(id: &str) -> AgentSpec {
    AgentSpec {
        id: id.into(),
        agency_id: "acme".into(),
        licences: vec![LicenceSpec {
            state: UsState::parse("CA").unwrap(),
            line: Line::PersonalLines,
        }],
        appointments: vec![],
        captive_carrier: None,
        specializations: vec![],
        zip: None,
        languages: vec![],
        capacity: 10,
        time_zone: "America/Los_Angeles".into(),
        schedule: vec![],
        performance: PerformanceSpec::default(),
        quality_tier: 0,
        manager_id: None,
        team_id: None,
        links: vec![],
        active: true,
    }
}

fn graph(agents: Vec<AgentSpec>, policy: Option<AgencySpec>) -> (AgentGraph, Arc<Workloads>) {
    let w = Arc::new(Workloads::default());
    let spec = RoutingSpec {
        agents,
        agencies: policy.into_iter().collect(),
        teams: vec![],
    };
    (AgentGraph::build(&spec, &w).unwrap(), w)
}

fn lead() -> RouteRequest<'static> {
    RouteRequest {
        agency_id: "acme",
        vertical: Vertical::Auto,
        state: UsState::parse("CA").unwrap(),
        zip: Zip::parse("90210").unwrap(),
        current_carrier: None,
        language: None,
        score_tier: 0,
        referring_agent: None,
        offered: &[],
        now_ms: NOON_NY_MS,
    }
}

fn ids(g: &AgentGraph, out: &RouteOutcome) -> Vec<String> {
    out.candidates
        .iter()
        .map(|c| g.agents[c.agent as usize].id.to_string())
        .collect()
}

fn assigned(g: &AgentGraph, out: &RouteOutcome) -> Option<String> {
    out.assigned.map(|x| g.agents[x as usize].id.to_string())
}

fn policy(strategy: Strategy, weights: Weights) -> AgencySpec {
    AgencySpec {
        strategy,
        weights,
        ..AgencySpec::default_for("acme")
    }
}

/// Weights with only `factor` counting.
fn only(factor: &str) -> Weights {
    let mut w = Weights {
        distance: 0,
        specialization: 0,
        performance: 0,
        workload: 0,
        language: 0,
        quality: 0,
        affinity: 0,
    };
    match factor {
        "distance" => w.distance = 1,
        "specialization" => w.specialization = 1,
        "performance" => w.performance = 1,
        "workload" => w.workload = 1,
        "language" => w.language = 1,
        "quality" => w.quality = 1,
        "affinity" => w.affinity = 1,
        _ => unreachable!(),
    }
    w
}

#[test]
fn only_agents_licensed_in_the_state_for_the_line_are_candidates() {
    let mut tx = agent("tx");
    tx.licences[0].state = UsState::parse("TX").unwrap();
    let mut life = agent("life-only");
    life.licences[0].line = Line::Life;
    let (g, _) = graph(vec![agent("ca"), tx, life], None);
    let out = g.route(&lead()).unwrap();
    assert_eq!(ids(&g, &out), ["ca"]);
    assert_eq!(out.excluded[Excluded::NotLicensed as usize], 2);
    // A home lead needs property or personal lines: `ca` has personal lines.
    let home = RouteRequest {
        vertical: Vertical::Home,
        ..lead()
    };
    assert_eq!(
        assigned(&g, &g.route(&home).unwrap()).as_deref(),
        Some("ca")
    );
    // Nobody is licensed for life in CA but `life-only`.
    let life_lead = RouteRequest {
        vertical: Vertical::Life,
        ..lead()
    };
    let out = g.route(&life_lead).unwrap();
    assert_eq!(assigned(&g, &out).as_deref(), Some("life-only"));
}

#[test]
fn agents_outside_their_schedule_are_not_candidates() {
    // Noon in New York is 9:00 in Los Angeles.
    let mut morning = agent("morning");
    morning.schedule = vec![ScheduleWindow {
        days: vec![Weekday::Mon],
        from_hour: 9,
        to_hour: 10,
    }];
    let mut afternoon = agent("afternoon");
    afternoon.schedule = vec![ScheduleWindow {
        days: vec![Weekday::Mon],
        from_hour: 13,
        to_hour: 17,
    }];
    let mut weekend = agent("weekend");
    weekend.schedule = vec![ScheduleWindow {
        days: vec![Weekday::Sat, Weekday::Sun],
        from_hour: 0,
        to_hour: 24,
    }];
    let (g, _) = graph(vec![morning, afternoon, weekend], None);
    let out = g.route(&lead()).unwrap();
    assert_eq!(ids(&g, &out), ["morning"]);
    assert_eq!(out.excluded[Excluded::OutsideSchedule as usize], 2);
}

#[test]
fn a_captive_agent_of_the_consumers_carrier_is_never_a_candidate() {
    let mut captive = agent("captive-sf");
    captive.captive_carrier = Some("State Farm".into());
    let (g, _) = graph(vec![captive, agent("independent")], None);
    let insured = RouteRequest {
        current_carrier: Some("state farm"),
        ..lead()
    };
    let out = g.route(&insured).unwrap();
    assert_eq!(ids(&g, &out), ["independent"]);
    assert_eq!(out.excluded[Excluded::CaptiveOfCurrentCarrier as usize], 1);
    // With another carrier, the captive agent may take it.
    let other = RouteRequest {
        current_carrier: Some("geico"),
        ..lead()
    };
    assert_eq!(g.route(&other).unwrap().candidates.len(), 2);
}

#[test]
fn capacity_is_never_exceeded_and_releases_free_it() {
    let mut one = agent("one");
    one.capacity = 2;
    let (g, w) = graph(vec![one], None);
    assert_eq!(
        assigned(&g, &g.route(&lead()).unwrap()).as_deref(),
        Some("one")
    );
    assert_eq!(
        assigned(&g, &g.route(&lead()).unwrap()).as_deref(),
        Some("one")
    );
    let full = g.route(&lead()).unwrap();
    assert_eq!(full.assigned, None);
    assert_eq!(full.excluded[Excluded::AtCapacity as usize], 1);
    assert_eq!(w.open("one"), 2);
    assert!(g.release(0));
    assert!(g.release(0));
    assert!(!g.release(0), "never below zero");
    assert_eq!(w.open("one"), 0);
}

#[test]
fn an_agent_offered_the_lead_before_is_skipped_and_inactive_ones_too() {
    let mut off = agent("off");
    off.active = false;
    let (g, _) = graph(vec![agent("a"), agent("b"), off], None);
    let a = g.agent_index("a").unwrap();
    let req = RouteRequest {
        offered: &[a],
        ..lead()
    };
    let out = g.route(&req).unwrap();
    assert_eq!(ids(&g, &out), ["b"]);
    assert_eq!(out.excluded[Excluded::AlreadyOffered as usize], 1);
    assert_eq!(out.excluded[Excluded::Inactive as usize], 1);
}

#[test]
fn each_factor_ranks_the_agent_it_favours_first() {
    // Distance: an office in Beverly Hills beats one in San Francisco.
    let mut near = agent("near");
    near.zip = Zip::parse("90212");
    let mut far = agent("far");
    far.zip = Zip::parse("94103");
    let (g, _) = graph(
        vec![far, near],
        Some(policy(Strategy::Weighted, only("distance"))),
    );
    assert_eq!(ids(&g, &g.route(&lead()).unwrap()), ["near", "far"]);

    let mut spec = agent("auto-specialist");
    spec.specializations = vec![Vertical::Auto];
    let (g, _) = graph(
        vec![agent("generalist"), spec],
        Some(policy(Strategy::Weighted, only("specialization"))),
    );
    assert_eq!(ids(&g, &g.route(&lead()).unwrap())[0], "auto-specialist");

    // Performance: past success with auto leads of tier 0.
    let mut good = agent("good");
    good.performance.success = vec![SuccessSpec {
        vertical: Vertical::Auto,
        tier: 0,
        conversion_bps: 3_000,
    }];
    good.performance.rating_centi = 480;
    let mut poor = agent("poor");
    poor.performance.conversion_bps = 500;
    let (g, _) = graph(
        vec![poor, good],
        Some(policy(Strategy::Weighted, only("performance"))),
    );
    assert_eq!(ids(&g, &g.route(&lead()).unwrap())[0], "good");

    // Workload: the one with more free capacity.
    let (g, _) = graph(
        vec![agent("busy"), agent("free")],
        Some(policy(Strategy::Weighted, only("workload"))),
    );
    let busy = g.agent_index("busy").unwrap();
    for _ in 0..5 {
        assert!(g.reserve(busy));
    }
    assert_eq!(ids(&g, &g.route(&lead()).unwrap())[0], "free");

    let mut es = agent("spanish");
    es.languages = vec!["en".into(), "es".into()];
    let (g, _) = graph(
        vec![agent("english"), es],
        Some(policy(Strategy::Weighted, only("language"))),
    );
    let spanish_lead = RouteRequest {
        language: Some("es"),
        ..lead()
    };
    assert_eq!(ids(&g, &g.route(&spanish_lead).unwrap())[0], "spanish");

    // Quality: tier-3 leads to the tier-3 agent, tier-0 to the tier-0 one.
    let mut junior = agent("junior");
    junior.quality_tier = 3;
    let (g, _) = graph(
        vec![agent("senior"), junior],
        Some(policy(Strategy::Weighted, only("quality"))),
    );
    assert_eq!(ids(&g, &g.route(&lead()).unwrap())[0], "senior");
    let weak = RouteRequest {
        score_tier: 3,
        ..lead()
    };
    assert_eq!(ids(&g, &g.route(&weak).unwrap())[0], "junior");

    // Affinity: the referrer's teammate, then an agent it refers to.
    let mut referrer = agent("referrer");
    referrer.team_id = Some("west".into());
    referrer.links = vec![LinkSpec {
        to: "linked".into(),
        kind: LinkKind::Referral,
        strength_bps: 8_000,
    }];
    referrer.active = false;
    let mut mate = agent("mate");
    mate.team_id = Some("west".into());
    let (g, _) = graph(
        vec![agent("stranger"), agent("linked"), mate, referrer],
        Some(policy(Strategy::Weighted, only("affinity"))),
    );
    let referred = RouteRequest {
        referring_agent: Some("referrer"),
        ..lead()
    };
    assert_eq!(
        ids(&g, &g.route(&referred).unwrap()),
        ["linked", "mate", "stranger"],
        "link 800 > team 500 > none"
    );
}

#[test]
fn contributions_add_up_to_the_score_and_follow_the_weights() {
    let mut a = agent("a");
    a.zip = Zip::parse("90001");
    a.specializations = vec![Vertical::Auto];
    a.languages = vec!["es".into()];
    a.performance.conversion_bps = 1_234;
    a.performance.median_response_s = 600;
    a.performance.rating_centi = 321;
    let mut b = agent("b");
    b.zip = Zip::parse("92101");
    b.quality_tier = 2;
    let weights = Weights::default();
    let (g, _) = graph(vec![a, b], Some(policy(Strategy::Weighted, weights)));
    let req = RouteRequest {
        language: Some("es"),
        score_tier: 1,
        ..lead()
    };
    let out = g.route(&req).unwrap();
    let w = weights_of(&weights);
    assert_eq!(out.candidates.len(), 2);
    for c in &out.candidates {
        assert_eq!(c.score, c.factors.iter().sum::<i64>());
        for (f, w) in c.factors.iter().zip(w) {
            assert_eq!(f % w.max(1), 0, "{c:?}");
            assert!((0..=w * FACTOR_VALUE_MAX).contains(f), "{c:?}");
        }
    }
    // The first is the higher score.
    assert!(out.candidates[0].score >= out.candidates[1].score);
}

#[test]
fn round_robin_spreads_leads_over_equal_agents_within_one() {
    let agents: Vec<AgentSpec> = (0..7).map(|i| agent(&format!("agent-{i}"))).collect();
    let (g, w) = graph(
        agents,
        Some(policy(Strategy::RoundRobin, Weights::default())),
    );
    let mut got: HashMap<String, u32> = HashMap::new();
    for _ in 0..1_000 {
        let out = g.route(&lead()).unwrap();
        let x = out.assigned.unwrap();
        *got.entry(g.agents[x as usize].id.to_string()).or_default() += 1;
        // Released at once, so capacity never decides.
        assert!(g.release(x));
    }
    let (lo, hi) = (got.values().min().unwrap(), got.values().max().unwrap());
    assert_eq!(got.len(), 7);
    assert!(hi - lo <= 1, "{got:?}");
    assert!((0..7).all(|i| w.open(&format!("agent-{i}")) == 0));
}

#[test]
fn least_loaded_takes_the_lowest_share_of_capacity() {
    let mut big = agent("big");
    big.capacity = 10;
    let mut small = agent("small");
    small.capacity = 2;
    let (g, _) = graph(
        vec![big, small],
        Some(policy(Strategy::LeastLoaded, Weights::default())),
    );
    // 0/10 and 0/2: a tie, by id.
    assert_eq!(
        assigned(&g, &g.route(&lead()).unwrap()).as_deref(),
        Some("big")
    );
    // 1/10 < 0/2? No: 0/2 is lower.
    assert_eq!(
        assigned(&g, &g.route(&lead()).unwrap()).as_deref(),
        Some("small")
    );
    // 1/10 < 1/2.
    assert_eq!(
        assigned(&g, &g.route(&lead()).unwrap()).as_deref(),
        Some("big")
    );
}

#[test]
fn the_same_state_routes_the_same_way() {
    let agents = || {
        (0..50)
            .map(|i| {
                let mut a = agent(&format!("a{i:02}"));
                a.zip = Zip::parse(&format!("9{:04}", 1000 + i * 37));
                a.performance.conversion_bps = (i * 97 % 1000) as u16;
                a.quality_tier = (i % 4) as u8;
                a
            })
            .collect::<Vec<_>>()
    };
    let (g1, _) = graph(agents(), None);
    let (g2, _) = graph(agents(), None);
    let (a, b) = (g1.route(&lead()).unwrap(), g2.route(&lead()).unwrap());
    assert_eq!(a, b);
}

#[test]
fn workloads_survive_a_rebuild_of_the_graph() {
    let w = Arc::new(Workloads::default());
    let spec = RoutingSpec {
        agents: vec![agent("a")],
        agencies: vec![],
        teams: vec![],
    };
    let g1 = AgentGraph::build(&spec, &w).unwrap();
    assert!(g1.route(&lead()).unwrap().assigned.is_some());
    let mut more = spec.clone();
    more.agents.push(agent("b"));
    let g2 = AgentGraph::build(&more, &w).unwrap();
    assert_eq!(g2.open(g2.agent_index("a").unwrap()), 1);
}

#[test]
fn bad_specs_name_the_field() {
    let w = Arc::new(Workloads::default());
    let mut a = agent("a");
    a.manager_id = Some("nobody".into());
    let e = AgentGraph::build(
        &RoutingSpec {
            agents: vec![a],
            agencies: vec![],
            teams: vec![],
        },
        &w,
    )
    .unwrap_err();
    assert_eq!(e.path, "agents[0].manager_id");
    let mut a = agent("a");
    a.capacity = 0;
    let e = AgentGraph::build(
        &RoutingSpec {
            agents: vec![a],
            agencies: vec![],
            teams: vec![],
        },
        &w,
    )
    .unwrap_err();
    assert_eq!(e.path, "agents[0].capacity");
    let (g, _) = graph(vec![agent("a")], None);
    let bad_tier = RouteRequest {
        score_tier: 4,
        ..lead()
    };
    assert_eq!(g.route(&bad_tier), Err(RouteError::BadTier));
    let nobody = RouteRequest {
        agency_id: "nobody",
        ..lead()
    };
    assert_eq!(g.route(&nobody), Err(RouteError::UnknownAgency));
}

#[test]
fn concurrent_routes_and_releases_never_exceed_capacity_and_counters_equal_open_assignments() {
    use std::sync::atomic::AtomicBool;
    let agents: Vec<AgentSpec> = (0..5)
        .map(|i| {
            let mut a = agent(&format!("a{i}"));
            a.capacity = 3;
            a
        })
        .collect();
    for strategy in [
        Strategy::Weighted,
        Strategy::RoundRobin,
        Strategy::LeastLoaded,
    ] {
        let (g, w) = graph(agents.clone(), Some(policy(strategy, Weights::default())));
        let over = AtomicBool::new(false);
        let held: Vec<Vec<u32>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4u64)
                .map(|t| {
                    let (g, over) = (&g, &over);
                    s.spawn(move || {
                        let mut held = Vec::new();
                        let mut x = t.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                        for _ in 0..2_000 {
                            x ^= x << 13;
                            x ^= x >> 7;
                            x ^= x << 17;
                            if x % 3 == 0 && !held.is_empty() {
                                let i = (x as usize / 3) % held.len();
                                let agent: u32 = held.swap_remove(i);
                                assert!(g.release(agent));
                            } else if let Some(agent) = g.route(&lead()).unwrap().assigned {
                                held.push(agent);
                            }
                            for (x, a) in g.agents.iter().enumerate() {
                                if g.open(x as u32) > a.capacity {
                                    over.store(true, Ordering::Relaxed);
                                }
                            }
                        }
                        held
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(!over.load(Ordering::Relaxed), "{strategy:?}: over capacity");
        for (x, a) in g.agents.iter().enumerate() {
            let holding = held.iter().flatten().filter(|&&h| h == x as u32).count() as u32;
            assert_eq!(g.open(x as u32), holding, "{strategy:?}: {}", a.id);
            assert_eq!(w.open(&a.id), holding);
        }
    }
}
