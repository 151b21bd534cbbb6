//! The seller flow of acceptance point 1, over a real socket.

use super::support::*;
use leadex_engine::lead::SaleType;
use leadex_engine::spec::EngineSettings;
use leadex_engine::testing::{campaign, market};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_post_repost_expiry_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let m = market(
        &["a", "b"],
        vec![
            campaign("a-ex", "a", SaleType::Exclusive, 2500),
            campaign("b-ex", "b", SaleType::Exclusive, 2000),
        ],
    );
    let settings = EngineSettings {
        price_lock_ms: 1_000,
        ..Default::default()
    };
    let server = start(dir.path(), m, settings).await;
    let c = client();
    let addr = server.addr;

    let (status, ping) = post(&c, addr, "/v1/ping", Some(KEY), &ping_json().to_string()).await;
    assert_eq!(status, 200, "{ping}");
    assert_eq!(ping["bids"][0]["price_cents"], 2500);
    assert_eq!(ping["bids"][0]["sale_type"], "exclusive");
    assert!(ping["expires_at"].as_str().unwrap().ends_with('Z'));

    let mut body = lead_json("2127340123");
    body["ping_id"] = ping["ping_id"].clone();
    body["bid_ids"] = json!([ping["bids"][0]["bid_id"]]);
    let (status, sold) = post(&c, addr, "/v1/post", Some(KEY), &body.to_string()).await;
    assert_eq!(status, 200, "{sold}");
    assert_eq!(sold["status"], "sold");
    assert_eq!(sold["total_price_cents"], 2500);

    let (status, again) = post(&c, addr, "/v1/post", Some(KEY), &body.to_string()).await;
    assert_eq!(
        (status, again["error"]["code"].as_str()),
        (409, Some("ping_already_used")),
        "{again}"
    );

    // A different consumer so the expiry check is not masked by dedupe.
    let mut p2 = ping_json();
    p2["age"] = json!(40);
    let (status, ping2) = post(&c, addr, "/v1/ping", Some(KEY), &p2.to_string()).await;
    assert_eq!(status, 200, "{ping2}");
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let mut late = lead_json("2127340124");
    late["age"] = json!(40);
    late["ping_id"] = ping2["ping_id"].clone();
    late["bid_ids"] = json!([ping2["bids"][0]["bid_id"]]);
    let (status, expired) = post(&c, addr, "/v1/post", Some(KEY), &late.to_string()).await;
    assert_eq!(
        (status, expired["error"]["code"].as_str()),
        (410, Some("ping_expired")),
        "{expired}"
    );

    let (status, bad) = post(&c, addr, "/v1/ping", Some(KEY), "{").await;
    assert_eq!(
        (status, bad["error"]["code"].as_str()),
        (400, Some("invalid_json")),
        "{bad}"
    );

    let (status, missing) = post(
        &c,
        addr,
        "/v1/ping",
        Some(KEY),
        r#"{"vertical":"auto","state":"CA"}"#,
    )
    .await;
    assert_eq!(
        (status, missing["error"]["code"].as_str()),
        (400, Some("missing_field")),
        "{missing}"
    );
    assert_eq!(missing["error"]["field"], "zip");

    let (status, unauth) = post(
        &c,
        addr,
        "/v1/ping",
        Some("wrong-key"),
        &ping_json().to_string(),
    )
    .await;
    assert_eq!(
        (status, unauth["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, _) = post(&c, addr, "/v1/ping", None, &ping_json().to_string()).await;
    assert_eq!(status, 401);

    let big = format!(
        "{{\"vertical\":\"auto\",\"zip\":\"90210\",\"state\":\"CA\",\"landing_page\":\"{}\"}}",
        "x".repeat(70_000)
    );
    let (status, large) = post(&c, addr, "/v1/ping", Some(KEY), &big).await;
    assert_eq!(
        (status, large["error"]["code"].as_str()),
        (413, Some("body_too_large"))
    );

    let (status, health) = get(&c, addr, "/healthz").await;
    assert_eq!(status, 200, "{health}");
    let (status, metrics) = get(&c, addr, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(metric(&metrics, "leadex_leads_sold_total"), 1);
    assert_eq!(metric(&metrics, "leadex_spend_cents_total"), 2500);
    assert!(metrics.contains("leadex_requests_total{route=\"/v1/ping\",status=\"200\"}"));
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sales_survive_a_clean_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut c1 = campaign("only", "a", SaleType::Exclusive, 1000);
    c1.budget_cents = 3000;
    let m = market(&["a"], vec![c1]);
    let server = start(dir.path(), m.clone(), EngineSettings::default()).await;
    let c = client();
    for i in 0..2 {
        let (status, v) = post(
            &c,
            server.addr,
            "/v1/leads",
            Some(KEY),
            &lead_json(&phone(i)).to_string(),
        )
        .await;
        assert_eq!((status, v["status"].as_str()), (200, Some("sold")), "{v}");
    }
    server.shutdown().await.unwrap();
    let server = start(dir.path(), m, EngineSettings::default()).await;
    assert_eq!(
        server.engine.campaign_counters("only").unwrap().spent_cents,
        2000
    );
    let (_, v) = post(
        &c,
        server.addr,
        "/v1/leads",
        Some(KEY),
        &lead_json(&phone(0)).to_string(),
    )
    .await;
    assert_eq!(v["status"], "unsold", "dedupe survives the restart: {v}");
    assert_eq!(v["no_sale_reason"], "duplicate_lead");
    let (_, v) = post(
        &c,
        server.addr,
        "/v1/leads",
        Some(KEY),
        &lead_json(&phone(2)).to_string(),
    )
    .await;
    assert_eq!(v["status"], "sold");
    let (_, v) = post(
        &c,
        server.addr,
        "/v1/leads",
        Some(KEY),
        &lead_json(&phone(3)).to_string(),
    )
    .await;
    assert_eq!(v["status"], "unsold", "budget for exactly 3 leads: {v}");
    server.shutdown().await.unwrap();
}

#[test]
fn invalid_config_is_refused_before_binding_naming_the_key() {
    // Hold the port the config names: if the binary bound before validating,
    // it would fail on the bind instead of on the config.
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let cases = [
        (
            "LEADEX_SERVER__BODY_LIMIT_BYTES",
            "70000",
            "server.body_limit_bytes",
        ),
        ("LEADEX_ENGINE__PRICE_LOCK_MS", "5", "engine.price_lock_ms"),
        ("LEADEX_STORAGE__BACKEND", "mongodb", "storage.backend"),
        ("LEADEX_SERVER__NO_SUCH_KEY", "1", "no_such_key"),
    ];
    for (name, value, key) in cases {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_leadex"))
            .env("LEADEX_SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .env(name, value)
            .output()
            .expect("the binary runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}={value}: {stderr}");
        assert!(
            stderr.contains(key),
            "{name}={value} must name {key}: {stderr}"
        );
        assert!(!stderr.contains("binding"), "{stderr}");
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_leadex"))
        .args(["--config", "/nonexistent/leadex.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/leadex.toml"));
    drop(holder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_serves_on_its_own_port() {
    let dir = tempfile::tempdir().unwrap();
    let m = market(
        &["a"],
        vec![campaign("a-ex", "a", SaleType::Exclusive, 2500)],
    );
    let server = start(dir.path(), m, EngineSettings::default()).await;
    assert_ne!(server.admin_addr, server.addr);
    let c = client();
    let (status, body) = get(&c, server.admin_addr, "/healthz").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (status, v["status"].as_str(), v["campaigns"].as_u64()),
        (200, Some("ok"), Some(1)),
        "{v}"
    );
    let (status, body) = get(&c, server.admin_addr, "/openapi.json").await;
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{doc}");
    let (status, body) = get(&c, server.admin_addr, "/v1/no-such-route").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{v}"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_survive_restarts_by_replay_and_by_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let m = market(
        &["a"],
        vec![campaign("a-ex", "a", SaleType::Exclusive, 2500)],
    );
    let server = start(dir.path(), m.clone(), EngineSettings::default()).await;
    let root = server
        .first_admin_key
        .clone()
        .expect("first start makes an admin key");
    let c = client();
    let admin = server.admin_addr;
    let (status, created) = post(
        &c,
        admin,
        "/v1/keys",
        Some(&root),
        r#"{"name":"acme","role":"buyer","tenant":"a"}"#,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let buyer_id = created["key"]["id"].as_str().unwrap().to_owned();
    let list = |addr| {
        let c = c.clone();
        let root = root.clone();
        async move {
            let req = hyper::Request::get(format!("http://{addr}/v1/keys"))
                .header("authorization", format!("Bearer {root}"))
                .body(http_body_util::Full::new(hyper::body::Bytes::new()))
                .unwrap();
            let resp = c.request(req).await.unwrap();
            let status = resp.status().as_u16();
            let bytes = http_body_util::BodyExt::collect(resp.into_body())
                .await
                .unwrap()
                .to_bytes();
            (
                status,
                serde_json::from_slice::<serde_json::Value>(&bytes).unwrap(),
            )
        }
    };
    let (_, before) = list(admin).await;
    // Kill the snapshots: the restart replays the journal.
    server.shutdown().await.unwrap();
    std::fs::remove_dir_all(dir.path().join("snapshots")).unwrap();
    let server = start(dir.path(), m.clone(), EngineSettings::default()).await;
    assert!(server.first_admin_key.is_none(), "the admin key came back");
    assert_eq!(server.restored.snapshot, None);
    let (status, after) = list(server.admin_addr).await;
    assert_eq!((status, &after), (200, &before));
    // The restart's shutdown wrote a snapshot: the next start loads it.
    server.shutdown().await.unwrap();
    let server = start(dir.path(), m, EngineSettings::default()).await;
    assert!(
        server.restored.snapshot.is_some() && server.restored.events == 0,
        "{:?}",
        server.restored
    );
    let (status, after) = list(server.admin_addr).await;
    assert_eq!((status, &after), (200, &before));
    assert!(after.to_string().contains(&buyer_id));
    server.shutdown().await.unwrap();
}
