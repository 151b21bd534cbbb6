//! The admin API end to end over real sockets: a buyer and a campaign
//! created through the API bid on the next ping, the sale shows in the
//! buyer's lead list, quote → policy → commissions, a signed webhook
//! reaches a local receiver, and everything survives a restart; returns
//! credit the budget exactly once and refuse past the window and the
//! maximum percentage.

use crate::support::*;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use leadex_config::Loaded;
use leadex_engine::spec::{EngineSettings, MarketplaceSpec};
use leadex_engine::testing::market;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Calls the admin API as `key`: the status and the JSON answer
/// (`Null` when the answer is not JSON).
pub(crate) async fn call(
    c: &HttpClient,
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let authorization = format!("Bearer {key}");
    let (status, json, _) = send(c, addr, method, path, Some(&authorization), body.as_ref()).await;
    (status, json)
}

/// Sends one request with any `authorization` header value (or none):
/// the status, the JSON answer (`Null` when not JSON) and the raw text.
pub(crate) async fn send(
    c: &HttpClient,
    addr: SocketAddr,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value, String) {
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let body = body.map(Value::to_string).unwrap_or_default();
    let resp = c
        .request(req.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    )
}

/// Starts the server with webhooks to loopback allowed (the receiver is
/// local) and an admin key from `LEADEX_ADMIN_KEY`'s code path.
pub(crate) async fn start_admin(dir: &Path, market: MarketplaceSpec) -> leadex::run::Running {
    let mut config = config(dir, EngineSettings::default());
    config.admin.webhook_allow_private = true;
    config.admin.webhook_backoff_base_ms = 50;
    let loaded = Loaded {
        config,
        marketplace: market,
        source: "test".into(),
    };
    leadex::run::start(loaded).await.expect("server starts")
}

/// A webhook receiver: every request's headers and body.
type Received = Arc<parking_lot::Mutex<Vec<(axum::http::HeaderMap, String)>>>;

pub(crate) async fn receiver() -> (SocketAddr, Received) {
    let got: Received = Arc::default();
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let sink = sink.clone();
            async move {
                sink.lock().push((headers, body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, got)
}

async fn sell(c: &HttpClient, addr: SocketAddr, phone: &str) -> Value {
    sell_lead(c, addr, lead_json(phone)).await
}

/// Sells `lead` (a post body without `ping_id` and `bid_ids`) as the test
/// seller: pings its attributes, then posts it against the first bid.
pub(crate) async fn sell_lead(c: &HttpClient, addr: SocketAddr, lead: Value) -> Value {
    let mut ping_body = lead.clone();
    ping_body
        .as_object_mut()
        .expect("a lead is a JSON object")
        .remove("contact");
    let (status, ping) = post(c, addr, "/v1/ping", Some(KEY), &ping_body.to_string()).await;
    assert_eq!(status, 200, "{ping}");
    assert!(
        ping["bids"].as_array().is_some_and(|b| !b.is_empty()),
        "a bid: {ping}"
    );
    let mut body = lead;
    body["ping_id"] = ping["ping_id"].clone();
    body["bid_ids"] = json!([ping["bids"][0]["bid_id"]]);
    let (status, sold) = post(c, addr, "/v1/post", Some(KEY), &body.to_string()).await;
    assert_eq!((status, &sold["status"]), (200, &json!("sold")), "{sold}");
    sold
}

/// Waits until the sale feed has put `n` leads in the buyer's list.
pub(crate) async fn leads(c: &HttpClient, admin: SocketAddr, key: &str, n: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, page) = call(c, admin, "GET", "/v1/leads", key, None).await;
        assert_eq!(status, 200, "{page}");
        if page["leads"].as_array().unwrap().len() >= n || Instant::now() > deadline {
            return page;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The campaign, seller and funnel reports of today, as admin.
async fn reports_now(c: &HttpClient, admin: SocketAddr, key: &str) -> [Value; 3] {
    let mut out = [Value::Null, Value::Null, Value::Null];
    for (slot, path) in out.iter_mut().zip(["campaigns", "sellers", "funnel"]) {
        let (status, v) = call(c, admin, "GET", &format!("/v1/reports/{path}"), key, None).await;
        assert_eq!(status, 200, "{path}: {v}");
        *slot = v;
    }
    out
}

/// Waits until the feed has counted `pings` pings answered with bids
/// (counted once durable, through the admin feed), then reads the reports.
async fn reports(c: &HttpClient, admin: SocketAddr, key: &str, pings: u64) -> [Value; 3] {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = reports_now(c, admin, key).await;
        if now[2]["totals"]["pings_with_bids"].as_u64() >= Some(pings) || Instant::now() > deadline
        {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn campaign_json(id: &str, window_hours: u32, max_bps: u32) -> Value {
    json!({
        "id": id, "buyer_id": "acme", "name": "Acme auto CA", "vertical": "auto",
        "sale_type": "exclusive", "price_cents": 2500, "budget_cents": 100000,
        "filters": {"states": ["CA"]}, "dedupe_window_hours": 0,
        "return_window_hours": window_hours, "return_max_bps": max_bps
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buyer_made_through_the_api_buys_quotes_binds_is_paid_and_notified_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let seed = market(&[], vec![]);
    let server = start_admin(dir.path(), seed.clone()).await;
    let root = server.first_admin_key.clone().expect("first admin key");
    let (c, admin, addr) = (client(), server.admin_addr, server.addr);

    // No campaign yet: no bid.
    let (_, ping) = post(&c, addr, "/v1/ping", Some(KEY), &ping_json().to_string()).await;
    assert_eq!(ping["bids"], json!([]), "{ping}");

    let (status, b) = call(
        &c,
        admin,
        "POST",
        "/v1/buyers",
        &root,
        Some(json!({"id": "acme", "name": "Acme Insurance"})),
    )
    .await;
    assert_eq!(status, 201, "{b}");
    let (status, k) = call(
        &c,
        admin,
        "POST",
        "/v1/keys",
        &root,
        Some(json!({"name": "acme", "role": "buyer", "tenant": "acme"})),
    )
    .await;
    assert_eq!(status, 201, "{k}");
    let buyer = k["secret"].as_str().unwrap().to_owned();
    // Field-level validation names the field.
    let mut bad = campaign_json("acme-auto", 168, 1000);
    bad["caps"] = json!({"daily": {"leads": 0}});
    let (status, e) = call(&c, admin, "POST", "/v1/campaigns", &root, Some(bad)).await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (400, Some("caps.daily.leads")),
        "{e}"
    );
    let (status, camp) = call(
        &c,
        admin,
        "POST",
        "/v1/campaigns",
        &root,
        Some(campaign_json("acme-auto", 168, 1000)),
    )
    .await;
    assert_eq!(status, 201, "{camp}");

    let (hook_addr, received) = receiver().await;
    let (status, hook) = call(&c, admin, "POST", "/v1/webhooks", &buyer,
        Some(json!({"url": format!("http://{hook_addr}/hook"), "events": ["lead.sold", "policy.created"]}))).await;
    assert_eq!(status, 201, "{hook}");
    let secret = hook["secret"].as_str().unwrap().to_owned();

    // The next ping bids from the new campaign; the post sells.
    let sold = sell(&c, addr, "3122340001").await;
    let lead_id = sold["lead_id"].as_str().unwrap().to_owned();
    let page = leads(&c, admin, &buyer, 1).await;
    assert_eq!(page["leads"][0]["lead_id"], json!(lead_id), "{page}");
    assert_eq!(
        page["leads"][0]["contact"]["phone"], "3122340001",
        "the buyer sees the PII"
    );
    assert_eq!(page["leads"][0]["purchases"][0]["price_cents"], 2500);

    // Agents, a plan, a quote, a policy: commissions computed.
    let agent = |id: &str, manager: Option<&str>| {
        json!({"id": id, "name": id, "capacity": 10,
        "licences": [{"state": "CA", "line": "property"}], "manager_id": manager})
    };
    assert_eq!(
        call(
            &c,
            admin,
            "POST",
            "/v1/agents",
            &buyer,
            Some(agent("m1", None))
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(
            &c,
            admin,
            "POST",
            "/v1/agents",
            &buyer,
            Some(agent("a1", Some("m1")))
        )
        .await
        .0,
        200
    );
    let plan = json!({"rules": [
        {"tier": "broker", "first_year_bps": 1500, "renewal_bps": 1000},
        {"tier": "manager", "first_year_bps": 500, "renewal_bps": 500},
        {"tier": "affiliate", "payee": "partner", "first_year_bps": 300, "renewal_bps": 0}]});
    let (status, p) = call(
        &c,
        admin,
        "PUT",
        "/v1/commission-plans/acme",
        &buyer,
        Some(plan),
    )
    .await;
    assert_eq!(status, 200, "{p}");
    let (status, quote) = call(&c, admin, "POST", "/v1/quotes", &buyer,
        Some(json!({"lead_id": lead_id, "carrier": "Acme Mutual", "premium_cents": 120000, "coverage": "100/300/100"}))).await;
    assert_eq!(status, 201, "{quote}");
    let (status, policy) = call(&c, admin, "POST", "/v1/policies", &buyer,
        Some(json!({"quote_id": quote["id"], "policy_number": "AM-1", "effective_date": "2026-12-01", "agent_id": "a1"}))).await;
    assert_eq!(status, 201, "{policy}");
    let lines: Vec<(String, u64)> = policy["commissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["payee"].as_str().unwrap().to_owned(),
                l["amount_cents"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        vec![
            ("a1".into(), 18_000),
            ("m1".into(), 6_000),
            ("partner".into(), 3_600)
        ]
    );
    let (_, detail) = call(
        &c,
        admin,
        "GET",
        &format!("/v1/leads/{lead_id}"),
        &buyer,
        None,
    )
    .await;
    assert_eq!(detail["purchases"][0]["status"], "bound", "{detail}");

    // Both webhooks arrive, signed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while received.lock().len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = received.lock().clone();
    let mut events: Vec<String> = Vec::new();
    for (headers, body) in &got {
        let signature = headers["leadex-signature"].to_str().unwrap();
        let now_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        leadex_admin_api::webhook::verify_signature(
            secret.as_bytes(),
            signature,
            body.as_bytes(),
            now_s,
            300,
        )
        .expect("a valid signature");
        assert!(leadex_admin_api::webhook::verify_signature(
            b"wrong",
            signature,
            body.as_bytes(),
            now_s,
            300
        )
        .is_err());
        events.push(headers["leadex-event"].to_str().unwrap().to_owned());
    }
    events.sort();
    assert_eq!(events, vec!["lead.sold", "policy.created"], "{got:?}");

    let snapshot_of = |c: HttpClient, admin: SocketAddr, buyer: String| async move {
        let mut all = Vec::new();
        for path in [
            "/v1/leads",
            "/v1/policies",
            "/v1/commissions",
            "/v1/campaigns/acme-auto",
            "/v1/agents",
            "/v1/webhooks",
            "/v1/reports/campaigns",
        ] {
            let (status, v) = call(&c, admin, "GET", path, &buyer, None).await;
            assert_eq!(status, 200, "{path}: {v}");
            all.push(v);
        }
        all
    };
    // The receiver has both; the outcomes are journaled just after.
    let hook_path = format!("/v1/webhooks/{}", hook["webhook"]["id"].as_str().unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    while call(&c, admin, "GET", &hook_path, &buyer, None).await.1["pending"] != 0 {
        assert!(Instant::now() < deadline, "deliveries stay pending");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, log) = call(
        &c,
        admin,
        "GET",
        &format!("{hook_path}/deliveries"),
        &buyer,
        None,
    )
    .await;
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .all(|d| d["status"] == "delivered"),
        "{log}"
    );
    reports(&c, admin, &root, 1).await;
    let before = snapshot_of(c.clone(), admin, buyer.clone()).await;
    assert_eq!(before[3]["live"]["spent_cents"], 2500);
    let report = &before[6]["rows"][0];
    assert_eq!(
        (
            &report["campaign_id"],
            &report["bids"],
            &report["wins"],
            &report["spend_cents"]
        ),
        (&json!("acme-auto"), &json!(1), &json!(1), &json!(2500)),
        "{report}"
    );

    // Restart: everything is still there, and the campaign still bids.
    server.shutdown().await.unwrap();
    let server = start_admin(dir.path(), seed).await;
    assert!(server.first_admin_key.is_none());
    let after = snapshot_of(c.clone(), server.admin_addr, buyer.clone()).await;
    assert_eq!(after, before);
    sell(&c, server.addr, "3122340002").await;
    let (status, audit) = call(
        &c,
        server.admin_addr,
        "GET",
        "/v1/audit?target=campaign%20acme-auto",
        &root,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        audit["entries"][0]["route"], "POST /v1/campaigns",
        "{audit}"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn returns_credit_the_budget_exactly_once_and_refuse_past_the_window_and_the_maximum() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_admin(dir.path(), market(&[], vec![])).await;
    let root = server.first_admin_key.clone().unwrap();
    let (c, admin, addr) = (client(), server.admin_addr, server.addr);
    assert_eq!(
        call(
            &c,
            admin,
            "POST",
            "/v1/buyers",
            &root,
            Some(json!({"id": "acme"}))
        )
        .await
        .0,
        201
    );
    // 10 % of leads returnable, for a week.
    assert_eq!(
        call(
            &c,
            admin,
            "POST",
            "/v1/campaigns",
            &root,
            Some(campaign_json("weekly", 168, 1000))
        )
        .await
        .0,
        201
    );
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(
            sell(&c, addr, &phone(i)).await["lead_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    leads(&c, admin, &root, 10).await;
    let spent = |c: HttpClient| {
        let root = root.clone();
        async move {
            let (_, v) = call(&c, admin, "GET", "/v1/campaigns/weekly", &root, None).await;
            v["live"]["spent_cents"].as_u64().unwrap()
        }
    };
    assert_eq!(spent(c.clone()).await, 25_000);
    let ret = json!({"reason": "bad_phone", "note": "disconnected"});
    // Two returns of one lead at once: exactly one credits.
    let path = format!("/v1/leads/{}/return", ids[0]);
    let (a, b) = tokio::join!(
        call(&c, admin, "POST", &path, &root, Some(ret.clone())),
        call(&c, admin, "POST", &path, &root, Some(ret.clone()))
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{a:?} {b:?}");
    let refused = if a.0 == 409 { a.1 } else { b.1 };
    assert_eq!(refused["error"]["code"], "already_returned");
    assert_eq!(spent(c.clone()).await, 22_500, "credited exactly once");
    // 1 of 10 returned: the 10 % maximum is reached.
    let (status, e) = call(
        &c,
        admin,
        "POST",
        &format!("/v1/leads/{}/return", ids[1]),
        &root,
        Some(ret.clone()),
    )
    .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (409, Some("return_limit_reached")),
        "{e}"
    );
    assert_eq!(spent(c.clone()).await, 22_500);
    let (_, ledger) = call(&c, admin, "GET", "/v1/campaigns/weekly/ledger", &root, None).await;
    assert_eq!(ledger["balance_cents"], 100_000 - 22_500, "{ledger}");

    // A campaign with no return window refuses at once.
    assert_eq!(
        call(&c, admin, "POST", "/v1/campaigns/weekly/pause", &root, None)
            .await
            .0,
        200
    );
    assert_eq!(
        call(
            &c,
            admin,
            "POST",
            "/v1/campaigns",
            &root,
            Some(campaign_json("final", 0, 10_000))
        )
        .await
        .0,
        201
    );
    let id = sell(&c, addr, &phone(100)).await["lead_id"]
        .as_str()
        .unwrap()
        .to_owned();
    leads(&c, admin, &root, 11).await;
    let (status, e) = call(
        &c,
        admin,
        "POST",
        &format!("/v1/leads/{id}/return"),
        &root,
        Some(ret),
    )
    .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (409, Some("return_window_closed")),
        "{e}"
    );

    // The reports agree: 11 pings answered, 11 sold, 1 returned.
    let reports = reports(&c, admin, &root, 11).await;
    let [campaigns, sellers, funnel] = &reports;
    let row = |id: &str| {
        campaigns["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["campaign_id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} in {campaigns}"))
    };
    let weekly = row("weekly");
    for (field, want) in [
        ("bids", 10),
        ("wins", 10),
        ("direct", 0),
        ("returned", 1),
        ("sold", 9),
        ("charged_cents", 25_000),
        ("refunded_cents", 2_500),
        ("spend_cents", 22_500),
        ("average_price_cents", 2_500),
        ("win_rate_bps", 10_000),
    ] {
        assert_eq!(weekly[field], want, "{field}: {weekly}");
    }
    assert_eq!(
        (row("final")["bids"].clone(), row("final")["wins"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(campaigns["totals"]["spend_cents"], 25_000, "{campaigns}");
    assert_eq!(campaigns["pings_not_counted"], 0);
    let t = &sellers["totals"];
    assert_eq!(
        (&t["pings_with_bids"], &t["leads"], &t["returned"]),
        (&json!(11), &json!(11), &json!(1)),
        "{sellers}"
    );
    assert_eq!(t["buyer_spend_cents"], 27_500, "{sellers}");
    let f = &funnel["totals"];
    assert_eq!(
        (
            &f["pings_with_bids"],
            &f["bids"],
            &f["leads_sold"],
            &f["returned"]
        ),
        (&json!(11), &json!(11), &json!(11), &json!(1)),
        "{funnel}"
    );
    assert_eq!(funnel["rows"][0]["vertical"], "auto", "{funnel}");

    // After a restart (journal replay, no snapshot) the money is the same.
    server.shutdown().await.unwrap();
    std::fs::remove_dir_all(dir.path().join("snapshots")).unwrap();
    let server = start_admin(dir.path(), market(&[], vec![])).await;
    assert_eq!(
        reports_now(&c, server.admin_addr, &root).await,
        reports,
        "the reports are rebuilt from the journal alike"
    );
    let (_, v) = call(
        &c,
        server.admin_addr,
        "GET",
        "/v1/campaigns/weekly",
        &root,
        None,
    )
    .await;
    assert_eq!(v["live"]["spent_cents"], 22_500, "{v}");
    assert_eq!(v["live"]["leads_returned"], 1);
    server.shutdown().await.unwrap();
}
