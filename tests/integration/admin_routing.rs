//! Lead routing through the admin API over real sockets: agents (with
//! licences), a team and an agency policy made through the API are the
//! engine's; leads routed by the engine become assignments the account's
//! keys reject (offered to the next agent, then unassigned), accept and
//! close, with tenancy (404), agent and status (409) refusals, webhooks
//! for each step, and the same state across restarts. Agents of an older
//! journal (admin records only) are routable after a restart.
//!
//! The hot path's `POST /v1/route` and the sweeper that routes the backlog
//! of sold leads are other parts of the server: this test routes through
//! the engine (`Engine::route_lead`) and journals the decision, as they
//! will. The server's feed of those records to the admin store is not
//! wired yet either, so the test restarts the server before it reads
//! them: replay applies them to the store.

use crate::admin_flow::{call, receiver, start_admin};
use crate::support::*;
use leadex_admin_api::records::{Agent, Licence};
use leadex_admin_api::store::{record, AdminChange, AdminPayload};
use leadex_engine::lead::Vertical;
use leadex_engine::routing::assign::{journal_ticket, RouteLead};
use leadex_engine::testing::market;
use leadex_engine::Event;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Wall-clock bound of every wait for an asynchronous effect.
const WAIT_MS_MAX: u64 = 10_000;

/// A lead of `vertical` from Beverly Hills, as routing sees it.
pub(crate) fn lead(vertical: Vertical) -> RouteLead {
    RouteLead {
        vertical,
        ..leadex_engine::testing::route_lead()
    }
}

/// Routes a lead for `agency` through the engine and journals the
/// decision, as the server's routing will: the assignment's id once its
/// record is durable.
pub(crate) async fn route(
    server: &leadex::run::Running,
    agency: &str,
    lead: RouteLead,
    reference: &str,
) -> String {
    let ticket = server
        .engine
        .route_lead(agency, lead, None, Some(reference.into()))
        .expect("the agency has agents");
    let (tx, rx) = tokio::sync::oneshot::channel();
    journal_ticket(
        &server.engine,
        &*server.storage.journal(),
        ticket,
        move |r| {
            let _ = tx.send(r.map(|t| t.record.assignment_id.to_string()));
        },
    );
    rx.await
        .expect("the journal answers")
        .expect("the decision is durable")
}

/// An agent of account `acme` created by an older build: an admin record
/// only, as journals written before the engine kept agents hold them.
fn legacy_agent(id: &str, state: &str) -> Event {
    let agent = Agent {
        id: id.into(),
        tenant: "acme".into(),
        name: id.into(),
        email: String::new(),
        licences: vec![Licence {
            state: state.into(),
            line: "personal_lines".into(),
        }],
        appointments: Vec::new(),
        captive_carrier: None,
        languages: Vec::new(),
        capacity: 4,
        time_zone: "America/New_York".into(),
        schedule: Vec::new(),
        zip: None,
        manager_id: None,
        team_id: None,
        active: true,
        specializations: Vec::new(),
        performance: Default::default(),
        quality_tier: 0,
        links: Vec::new(),
    };
    Event::Admin(record(
        &AdminPayload::one(AdminChange::AgentPut { agent }),
        1_700_000_000_000,
    ))
}

struct Api<'a> {
    c: &'a HttpClient,
    admin: SocketAddr,
}

impl Api<'_> {
    async fn must(
        &self,
        key: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
        want: u16,
    ) -> Value {
        let (status, v) = call(self.c, self.admin, method, path, key, body).await;
        assert_eq!(status, want, "{method} {path}: {v}");
        v
    }

    /// Expects the error `code` with status `want`.
    async fn refused(
        &self,
        key: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
        want: u16,
        code: &str,
    ) {
        let v = self.must(key, method, path, body, want).await;
        assert_eq!(v["error"]["code"], code, "{method} {path}: {v}");
    }
}

fn kinds(a: &Value) -> Vec<String> {
    a["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routed_leads_are_rejected_accepted_and_closed_through_the_admin_api_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let seed = market(&[], vec![]);
    let server = start_admin(dir.path(), seed.clone()).await;
    let root = server.first_admin_key.clone().expect("first admin key");
    let c = client();
    let api = Api {
        c: &c,
        admin: server.admin_addr,
    };
    for buyer in ["acme", "bravo"] {
        api.must(&root, "POST", "/v1/buyers", Some(json!({"id": buyer})), 201)
            .await;
    }
    let mut keys = Vec::new();
    for (role, tenant) in [("buyer", "acme"), ("agent", "acme"), ("buyer", "bravo")] {
        let k = api
            .must(
                &root,
                "POST",
                "/v1/keys",
                Some(
                    json!({"name": format!("{role} {tenant}"), "role": role, "tenant": tenant,
                    "tier": "enterprise"}),
                ),
                201,
            )
            .await;
        keys.push(k["secret"].as_str().unwrap().to_owned());
    }
    let [buyer, agent, bravo] = [&keys[0], &keys[1], &keys[2]];

    // Agents with licences: a1 and a2 take CA auto leads; their manager m1
    // is licensed in NY only, so an escalation to it cannot be offered.
    for (id, state, manager) in [
        ("m1", "NY", None),
        ("a1", "CA", Some("m1")),
        ("a2", "CA", Some("m1")),
    ] {
        api.must(
            buyer,
            "POST",
            "/v1/agents",
            Some(
                json!({"id": id, "name": id, "capacity": 3, "manager_id": manager,
                "team_id": null, "languages": ["en"], "specializations": ["auto"],
                "licences": [{"state": state, "line": "personal_lines"}]}),
            ),
            200,
        )
        .await;
    }
    api.must(
        buyer,
        "POST",
        "/v1/teams",
        Some(json!({"id": "t1", "name": "Team 1", "manager_id": "m1"})),
        200,
    )
    .await;
    let policy = api
        .must(
            buyer,
            "PUT",
            "/v1/agencies/acme/routing",
            Some(json!({"strategy": "round_robin", "offer_timeout_s": 600, "escalate_after": 2})),
            200,
        )
        .await;
    assert_eq!(policy["strategy"], "round_robin", "{policy}");
    api.refused(
        bravo,
        "GET",
        "/v1/agencies/acme/routing",
        None,
        404,
        "not_found",
    )
    .await;
    let (hook_addr, received) = receiver().await;
    let events = [
        "assignment.created",
        "assignment.accepted",
        "assignment.rejected",
        "assignment.expired",
        "assignment.escalated",
        "assignment.closed",
        "assignment.unassigned",
    ];
    let hook = api
        .must(
            buyer,
            "POST",
            "/v1/webhooks",
            Some(json!({"url": format!("http://{hook_addr}/hook"), "events": events})),
            201,
        )
        .await;
    let hook_path = format!("/v1/webhooks/{}", hook["webhook"]["id"].as_str().unwrap());

    // Two leads routed by the engine, and an agent an older build stored
    // as an admin record only.
    let first = route(&server, "acme", lead(Vertical::Auto), "crm-1").await;
    let second = route(&server, "acme", lead(Vertical::Auto), "crm-2").await;
    server
        .storage
        .journal()
        .append(vec![legacy_agent("legacy-ny", "NY")], None)
        .unwrap();
    server.shutdown().await.unwrap();

    let server = start_admin(dir.path(), seed.clone()).await;
    let api = Api {
        c: &c,
        admin: server.admin_addr,
    };
    assert!(
        server
            .engine
            .router()
            .spec()
            .agents
            .iter()
            .any(|a| a.id == "legacy-ny" && a.agency_id == "acme"),
        "the older build's agent is the engine's"
    );
    api.must(agent, "GET", "/v1/agents/legacy-ny", None, 200)
        .await;
    let page = api.must(agent, "GET", "/v1/assignments", None, 200).await;
    let listed: Vec<&str> = page["assignments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        listed,
        [second.as_str(), first.as_str()],
        "newest first: {page}"
    );
    let one = |id: &str| format!("/v1/assignments/{id}");
    let a = api.must(agent, "GET", &one(&first), None, 200).await;
    assert_eq!(
        (a["status"].as_str(), a["reference"].as_str()),
        (Some("offered"), Some("crm-1")),
        "{a}"
    );
    let holder = a["agent_id"].as_str().unwrap().to_owned();
    let b = api.must(agent, "GET", &one(&second), None, 200).await;
    assert_ne!(b["agent_id"], a["agent_id"], "round robin: {a} {b}");

    // Another account: 404 everywhere, an empty list.
    let foreign = api.must(bravo, "GET", "/v1/assignments", None, 200).await;
    assert_eq!(foreign["assignments"], json!([]), "{foreign}");
    for (method, path) in [
        ("GET", one(&first)),
        ("POST", format!("{}/accept", one(&first))),
        ("POST", format!("{}/reject", one(&first))),
        ("POST", format!("{}/close", one(&second))),
    ] {
        api.refused(bravo, method, &path, None, 404, "not_found")
            .await;
    }
    // Ids that are no assignment's.
    for id in ["nope".to_string(), format!("a_{}", "f".repeat(32))] {
        api.refused(
            agent,
            "POST",
            &format!("/v1/assignments/{id}/accept"),
            None,
            404,
            "not_found",
        )
        .await;
    }

    // The first: rejected by the wrong agent (refused), by its agent
    // (offered to the other), then by that one: the second failure
    // escalates to the manager, who is not licensed in CA: unassigned.
    let other = if holder == "a1" { "a2" } else { "a1" };
    let reject = format!("{}/reject", one(&first));
    api.refused(
        agent,
        "POST",
        &reject,
        Some(json!({"agent_id": other})),
        409,
        "wrong_agent",
    )
    .await;
    let a = api
        .must(
            agent,
            "POST",
            &reject,
            Some(json!({"agent_id": holder})),
            200,
        )
        .await;
    assert_eq!(
        (a["status"].as_str(), a["agent_id"].as_str()),
        (Some("offered"), Some(other)),
        "{a}"
    );
    let a = api.must(agent, "POST", &reject, None, 200).await;
    assert_eq!(
        (a["status"].as_str(), a["failures"].as_u64()),
        (Some("unassigned"), Some(2)),
        "{a}"
    );
    assert_eq!(
        kinds(&a),
        [
            "created",
            "offered",
            "rejected",
            "offered",
            "rejected",
            "unassigned"
        ]
    );
    for action in ["accept", "reject", "close"] {
        api.refused(
            agent,
            "POST",
            &format!("{}/{action}", one(&first)),
            None,
            409,
            "assignment_not_offered",
        )
        .await;
    }

    // The second: accepted, then closed (not by another agent).
    let b_holder = b["agent_id"].as_str().unwrap().to_owned();
    let b = api
        .must(
            buyer,
            "POST",
            &format!("{}/accept", one(&second)),
            Some(json!({})),
            200,
        )
        .await;
    assert_eq!(
        (b["status"].as_str(), b["agent_id"].as_str()),
        (Some("accepted"), Some(b_holder.as_str())),
        "{b}"
    );
    api.refused(
        buyer,
        "POST",
        &format!("{}/close", one(&second)),
        Some(json!({"agent_id": "m1"})),
        409,
        "wrong_agent",
    )
    .await;
    let b = api
        .must(
            agent,
            "POST",
            &format!("{}/close", one(&second)),
            Some(json!({"agent_id": b_holder})),
            200,
        )
        .await;
    assert_eq!(b["status"], "closed", "{b}");
    assert_eq!(kinds(&b), ["created", "offered", "accepted", "closed"]);
    assert_eq!(server.engine.router().open_count(), 0);
    server.engine.router().check_workloads().unwrap();
    let closed = api
        .must(agent, "GET", "/v1/assignments?status=closed", None, 200)
        .await;
    assert_eq!(
        closed["assignments"].as_array().unwrap().len(),
        1,
        "{closed}"
    );
    let by_agent = api
        .must(
            agent,
            "GET",
            &format!("/v1/assignments?agent_id={b_holder}&limit=1"),
            None,
            200,
        )
        .await;
    assert_eq!(
        by_agent["assignments"][0]["id"],
        json!(second),
        "{by_agent}"
    );

    // A webhook per step, each once: two created, two rejected, one
    // unassigned, one accepted, one closed.
    let deadline = Instant::now() + Duration::from_millis(WAIT_MS_MAX);
    while received.lock().len() < 7 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut got: Vec<String> = received
        .lock()
        .iter()
        .map(|(_, body)| {
            let v: Value = serde_json::from_str(body).unwrap();
            v["type"].as_str().unwrap().to_owned()
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            "assignment.accepted",
            "assignment.closed",
            "assignment.created",
            "assignment.created",
            "assignment.rejected",
            "assignment.rejected",
            "assignment.unassigned",
        ]
    );

    // Across a restart: the same assignments, nothing sent twice. (A
    // delivery is at least once: one whose outcome is not journaled yet
    // is sent again after a restart, so wait until none is pending.)
    let deadline = Instant::now() + Duration::from_secs(10);
    while api.must(buyer, "GET", &hook_path, None, 200).await["pending"] != 0 {
        assert!(Instant::now() < deadline, "deliveries stay pending");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = api.must(&root, "GET", "/v1/assignments", None, 200).await;
    server.shutdown().await.unwrap();
    let server = start_admin(dir.path(), seed).await;
    let api = Api {
        c: &c,
        admin: server.admin_addr,
    };
    let after = api.must(&root, "GET", "/v1/assignments", None, 200).await;
    assert_eq!(after, before);
    let policy_after = api
        .must(buyer, "GET", "/v1/agencies/acme/routing", None, 200)
        .await;
    assert_eq!(policy_after, policy);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(received.lock().len(), 7, "no delivery is sent twice");
    server.shutdown().await.unwrap();
}
