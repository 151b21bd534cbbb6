//! The assignment lifecycle: offers, acceptance, rejection, expiry,
//! escalation, closing, rollback, replay, and the workload invariant under
//! concurrent operations (a property test).

use super::assign::*;
use super::spec::{AgencySpec, AgentSpec, RoutingSpec, TeamSpec};
use crate::event::{Event, MarketChange};
use crate::spec::EngineSettings;
use crate::testing::{agent, market, route_lead};
use crate::{Engine, ManualClock};
use proptest::prelude::*;
use std::sync::Arc;

const T0: i64 = 1_795_453_200_000;

fn engine_with(spec: RoutingSpec) -> (Arc<Engine>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0));
    let e = Engine::new(
        EngineSettings::default(),
        &market(&["acme"], vec![]),
        clock.clone(),
    )
    .unwrap();
    e.router().replace(spec).unwrap();
    (Arc::new(e), clock)
}

/// `n` agents a0… of capacity `cap`, a team t1 of all of them managed by
/// `boss` (capacity 5), and a policy escalating after `escalate_after`.
fn agency(n: usize, cap: u32, escalate_after: u8) -> RoutingSpec {
    let mut agents: Vec<AgentSpec> = (0..n)
        .map(|i| AgentSpec {
            team_id: Some("t1".into()),
            ..agent(&format!("a{i}"), "acme", cap)
        })
        .collect();
    agents.push(agent("boss", "acme", 5));
    RoutingSpec {
        agents,
        agencies: vec![AgencySpec {
            escalate_after,
            strategy: super::spec::Strategy::RoundRobin,
            ..AgencySpec::default_for("acme")
        }],
        teams: vec![TeamSpec {
            id: "t1".into(),
            agency_id: "acme".into(),
            manager_id: Some("boss".into()),
        }],
    }
}

/// Decides, then commits (as a durable journal would), recording the event.
fn step(
    e: &Engine,
    journal: &mut Vec<Event>,
    ticket: Result<RoutingTicket, RoutingError>,
) -> RoutingRecord {
    let t = ticket.unwrap();
    journal.push(t.event());
    e.router().commit(&t);
    t.record
}

/// An image without the round-robin cursors: a rolled-back route keeps
/// the turn it took (turns only spread load), so live cursors can be ahead
/// of what the journal says.
fn without_cursors(mut image: RoutingImage) -> RoutingImage {
    image.cursors.clear();
    image
}

fn open(e: &Engine, id: &str) -> u32 {
    e.router().workloads().open(id)
}

#[test]
fn offered_accepted_closed_moves_the_workload_once_each() {
    let (e, _) = engine_with(agency(3, 2, 3));
    let mut j = Vec::new();
    let r = step(&e, &mut j, e.route_lead("acme", route_lead(), None, None));
    let id = r.assignment_id;
    let RoutingChange::Created { offer: Some(o), .. } = &r.change else {
        panic!("not offered: {r:?}")
    };
    assert_eq!(open(&e, &o.agent_id), 1);
    assert_eq!(o.expires_at_ms, T0 + 300_000);
    step(
        &e,
        &mut j,
        e.decide_assignment(id, Action::Accept(Some(&o.agent_id))),
    );
    assert_eq!(open(&e, &o.agent_id), 1, "acceptance keeps the unit");
    assert_eq!(e.router().assignment(id).unwrap().status, Status::Accepted);
    assert_eq!(
        e.decide_assignment(id, Action::Reject(None)).unwrap_err(),
        RoutingError::NotOffered("accepted")
    );
    step(&e, &mut j, e.decide_assignment(id, Action::Close(None)));
    assert_eq!(open(&e, &o.agent_id), 0);
    assert!(e.router().assignment(id).is_none());
    assert_eq!(
        e.decide_assignment(id, Action::Close(None)).unwrap_err(),
        RoutingError::NotFound
    );
    e.router().check_workloads().unwrap();
}

#[test]
fn a_rejection_offers_the_next_agent_and_escalation_goes_to_the_team_manager() {
    let (e, clock) = engine_with(agency(3, 2, 3));
    let mut j = Vec::new();
    let r = step(&e, &mut j, e.route_lead("acme", route_lead(), None, None));
    let id = r.assignment_id;
    let first = e.router().assignment(id).unwrap().agent_id.unwrap();
    // The wrong agent cannot answer for the one offered.
    assert_eq!(
        e.decide_assignment(id, Action::Reject(Some("nobody")))
            .unwrap_err(),
        RoutingError::WrongAgent
    );
    let r = step(
        &e,
        &mut j,
        e.decide_assignment(id, Action::Reject(Some(&first))),
    );
    let RoutingChange::Declined {
        next: Some(second),
        expired: false,
        ..
    } = &r.change
    else {
        panic!("{r:?}")
    };
    assert_ne!(second.agent_id, first);
    assert_eq!(open(&e, &first), 0);
    assert_eq!(open(&e, &second.agent_id), 1);
    // Not due yet: the sweeper sees nothing; then the offer lapses.
    assert!(e.router().due_offers(e.now_ms(), 10).is_empty());
    clock.advance_ms(300_000);
    assert_eq!(e.router().due_offers(e.now_ms(), 10), vec![id]);
    let r = step(&e, &mut j, e.decide_assignment(id, Action::Expire));
    // Third failure reaches escalate_after (3): the team's manager.
    let RoutingChange::Declined {
        next: Some(third),
        expired: true,
        ..
    } = &r.change
    else {
        panic!("{r:?}")
    };
    assert!(!third.escalated);
    let r = step(&e, &mut j, e.decide_assignment(id, Action::Reject(None)));
    let RoutingChange::Declined {
        next: Some(boss), ..
    } = &r.change
    else {
        panic!("{r:?}")
    };
    assert_eq!((boss.agent_id.as_str(), boss.escalated), ("boss", true));
    let s = e.router().assignment(id).unwrap();
    assert_eq!((s.failures, s.escalated, s.offered.len()), (3, true, 4));
    // The manager turns it down too: unassigned, every unit given back.
    let r = step(
        &e,
        &mut j,
        e.decide_assignment(id, Action::Reject(Some("boss"))),
    );
    assert!(matches!(
        r.change,
        RoutingChange::Declined { next: None, .. }
    ));
    assert!(e.router().assignment(id).is_none());
    assert!(e.router().workloads().nonzero().is_empty());
    e.router().check_workloads().unwrap();
}

#[test]
fn a_rolled_back_decision_changes_nothing_and_a_busy_one_keeps_others_out() {
    let (e, _) = engine_with(agency(2, 1, 3));
    let mut j = Vec::new();
    let r = step(&e, &mut j, e.route_lead("acme", route_lead(), None, None));
    let id = r.assignment_id;
    let before = without_cursors(e.router().image());
    let t = e.decide_assignment(id, Action::Reject(None)).unwrap();
    assert_eq!(
        e.decide_assignment(id, Action::Accept(None)).unwrap_err(),
        RoutingError::Busy
    );
    assert!(
        e.router().due_offers(i64::MAX, 10).is_empty(),
        "busy offers are not expired"
    );
    e.router().rollback(&t);
    assert_eq!(without_cursors(e.router().image()), before);
    let fresh = e.route_lead("acme", route_lead(), None, None).unwrap();
    e.router().rollback(&fresh);
    assert_eq!(without_cursors(e.router().image()), before);
    e.router().check_workloads().unwrap();
}

#[test]
fn replay_of_the_records_rebuilds_the_same_routing_state() {
    let (e, clock) = engine_with(agency(4, 2, 2));
    let mut j = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(step(&e, &mut j, e.route_lead("acme", route_lead(), None, None)).assignment_id);
    }
    step(
        &e,
        &mut j,
        e.decide_assignment(ids[0], Action::Accept(None)),
    );
    step(
        &e,
        &mut j,
        e.decide_assignment(ids[1], Action::Reject(None)),
    );
    step(
        &e,
        &mut j,
        e.decide_assignment(ids[1], Action::Reject(None)),
    );
    step(&e, &mut j, e.decide_assignment(ids[2], Action::Close(None)));
    clock.advance_ms(300_001);
    for id in e.router().due_offers(e.now_ms(), 10) {
        step(&e, &mut j, e.decide_assignment(id, Action::Expire));
    }
    let (replica, _) = engine_with(RoutingSpec::default());
    replica
        .router()
        .replace(e.router().spec().as_ref().clone())
        .unwrap();
    for ev in &j {
        assert!(replica.apply(ev), "{ev:?}");
    }
    // A journal holding every record twice replays the same.
    for ev in &j {
        assert!(!replica.apply(ev), "applied twice: {ev:?}");
    }
    assert_eq!(replica.router().image(), e.router().image());
    assert_eq!(
        replica.router().workloads().nonzero(),
        e.router().workloads().nonzero()
    );
    replica.router().check_workloads().unwrap();
    // And an image restored into a third router is the same again.
    let (third, _) = engine_with(RoutingSpec::default());
    third.router().restore(&e.router().image()).unwrap();
    assert_eq!(third.router().image(), e.router().image());
    assert_eq!(
        third.router().workloads().nonzero(),
        e.router().workloads().nonzero()
    );
}

#[test]
fn the_round_robin_turn_order_resumes_after_a_replay() {
    let (e, _) = engine_with(agency(5, 3, 3));
    let mut j = Vec::new();
    let mut agents = Vec::new();
    for _ in 0..7 {
        let r = step(&e, &mut j, e.route_lead("acme", route_lead(), None, None));
        let RoutingChange::Created { offer: Some(o), .. } = &r.change else {
            panic!("{r:?}")
        };
        assert!(o.turn.is_some(), "a round-robin offer carries its turn");
        agents.push(o.agent_id.clone());
    }
    // Six agents (a0…a4 and boss) in id order, in turn.
    assert_eq!(agents, ["a0", "a1", "a2", "a3", "a4", "boss", "a0"]);
    let (replica, _) = engine_with(e.router().spec().as_ref().clone());
    for ev in &j {
        replica.apply(ev);
    }
    assert_eq!(replica.router().image(), e.router().image());
    let next = |e: &Engine| {
        let t = e.route_lead("acme", route_lead(), None, None).unwrap();
        let agent = t
            .outcome
            .as_ref()
            .unwrap()
            .assigned
            .map(|x| t.graph.agents[x as usize].id.to_string());
        e.router().rollback(&t);
        agent
    };
    assert_eq!(next(&replica), next(&e));
    assert_eq!(
        next(&e).as_deref(),
        Some("a2"),
        "a1 then a2: the turns go on"
    );
}

#[test]
fn a_sale_by_a_campaign_whose_delivery_is_route_waits_in_the_backlog_until_routed() {
    let (e, _) = engine_with(agency(2, 3, 3));
    let change = MarketChange::PutAgency(AgencySpec {
        route_campaigns: vec!["c1".into()],
        ..AgencySpec::default_for("acme")
    });
    e.preview_market_change(&change).unwrap();
    assert!(e.router().put(&change));
    let lead = crate::testing::lead_with_phone("5555550100");
    let id = crate::LeadId(42);
    assert!(e.router().note_sale(id, "acme", "c1", &lead, T0));
    assert!(!e.router().note_sale(id, "acme", "c1", &lead, T0), "once");
    assert!(!e
        .router()
        .note_sale(crate::LeadId(43), "acme", "c2", &lead, T0));
    let pending = e.router().backlog(10);
    assert_eq!(pending.len(), 1);
    let mut j = Vec::new();
    let r = step(&e, &mut j, e.route_pending(&pending[0]));
    assert_eq!(r.assignment_id, AssignmentId(42));
    assert!(e.router().backlog(10).is_empty());
    // Routed once: the sale seen again (replay from another partition)
    // does not queue it again.
    assert!(!e.router().note_sale(id, "acme", "c1", &lead, T0));
}

#[test]
fn a_routing_change_is_validated_and_rebuilds_only_the_agent_graph() {
    let (e, _) = engine_with(agency(1, 1, 3));
    let snapshot = e.snapshot();
    let bad = MarketChange::PutAgent(Box::new(AgentSpec {
        capacity: 0,
        ..agent("x", "acme", 1)
    }));
    let err = e.preview_market_change(&bad).unwrap_err();
    assert_eq!(err.path, "agents[2].capacity");
    assert!(!e.router().put(&bad));
    assert!(e
        .router()
        .put(&MarketChange::PutAgent(Box::new(agent("x", "acme", 1)))));
    assert!(e.router().graph().agent_index("x").is_some());
    assert!(
        Arc::ptr_eq(&snapshot, &e.snapshot()),
        "the marketplace was not recompiled"
    );
}

/// One operation of the property test.
#[derive(Debug, Clone, Copy)]
enum Op {
    Route,
    Accept(usize),
    Reject(usize),
    Expire,
    Close(usize),
    /// Decide a rejection and roll it back (a journal failure).
    FailedReject(usize),
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Route),
        2 => (0..64usize).prop_map(Op::Accept),
        2 => (0..64usize).prop_map(Op::Reject),
        1 => Just(Op::Expire),
        2 => (0..64usize).prop_map(Op::Close),
        1 => (0..64usize).prop_map(Op::FailedReject),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Under concurrent routing, acceptance, rejection, expiry, closing and
    /// failed journal writes: capacity is never exceeded (watched while it
    /// runs), and afterwards every agent's counter equals the open
    /// assignments it holds; a replay of the committed records gives the
    /// same state.
    #[test]
    fn capacity_holds_and_workloads_equal_open_assignments_under_concurrency(
        threads in proptest::collection::vec(proptest::collection::vec(op(), 1..60), 2..5),
        agents in 2usize..6,
        cap in 1u32..4,
    ) {
        let spec = agency(agents, cap, 2);
        let (e, clock) = engine_with(spec.clone());
        let journal = parking_lot::Mutex::new(Vec::<Event>::new());
        let ids = parking_lot::Mutex::new(Vec::<AssignmentId>::new());
        let done = std::sync::atomic::AtomicBool::new(false);
        let graph = e.router().graph();
        let over = std::thread::scope(|s| {
            let watcher = s.spawn(|| {
                let mut over = None;
                while !done.load(std::sync::atomic::Ordering::Acquire) && over.is_none() {
                    for (x, a) in graph.agents.iter().enumerate() {
                        if graph.open(x as u32) > a.capacity {
                            over = Some(a.id.to_string());
                        }
                    }
                }
                over
            });
            let workers: Vec<_> = threads.iter().map(|ops| {
                let (e, journal, ids, clock) = (&e, &journal, &ids, &clock);
                s.spawn(move || {
                    // Commit under the journal's lock, as a journal's single
                    // writer orders records.
                    let commit = |t: RoutingTicket| {
                        let mut j = journal.lock();
                        j.push(t.event());
                        e.router().commit(&t);
                        t.record.assignment_id
                    };
                    let pick = |k: usize| {
                        let ids = ids.lock();
                        (!ids.is_empty()).then(|| ids[k % ids.len()])
                    };
                    for op in ops {
                        match *op {
                            Op::Route => {
                                if let Ok(t) = e.route_lead("acme", route_lead(), None, None) {
                                    let id = commit(t);
                                    ids.lock().push(id);
                                }
                            }
                            Op::Accept(k) | Op::Reject(k) | Op::Close(k) | Op::FailedReject(k) => {
                                let Some(id) = pick(k) else { continue };
                                let action = match *op {
                                    Op::Accept(_) => Action::Accept(None),
                                    Op::Close(_) => Action::Close(None),
                                    _ => Action::Reject(None),
                                };
                                if let Ok(t) = e.decide_assignment(id, action) {
                                    if matches!(op, Op::FailedReject(_)) {
                                        e.router().rollback(&t);
                                    } else {
                                        commit(t);
                                    }
                                }
                            }
                            Op::Expire => {
                                clock.advance_ms(60_000);
                                for id in e.router().due_offers(e.now_ms(), 8) {
                                    if let Ok(t) = e.decide_assignment(id, Action::Expire) {
                                        commit(t);
                                    }
                                }
                            }
                        }
                    }
                })
            }).collect();
            for w in workers {
                w.join().unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::Release);
            watcher.join().unwrap()
        });
        prop_assert_eq!(over, None, "capacity exceeded");
        prop_assert_eq!(e.router().check_workloads(), Ok(()));
        let (replica, _) = engine_with(spec);
        for ev in journal.lock().iter() {
            prop_assert!(replica.apply(ev), "not applied: {:?}", ev);
        }
        prop_assert_eq!(
            without_cursors(replica.router().image()),
            without_cursors(e.router().image())
        );
        prop_assert_eq!(replica.router().workloads().nonzero(), e.router().workloads().nonzero());
        // The journal's turns never run ahead of the live cursor.
        let live: std::collections::HashMap<String, u64> =
            e.router().workloads().cursors().into_iter().collect();
        for (agency, turn) in replica.router().workloads().cursors() {
            prop_assert!(turn <= live.get(&agency).copied().unwrap_or(0));
        }
    }
}
