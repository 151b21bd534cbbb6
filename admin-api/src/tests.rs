//! The service frame over the router (no socket): JSON errors everywhere,
//! the layers, and the OpenAPI document.

use super::*;
use crate::json::ApiJson;
use axum::body::Body;
use axum::http::{header, Request as HttpRequest, StatusCode};
use axum::routing::post;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

fn admin_over(
    journal: Arc<dyn leadex_engine::Journal>,
    now: Arc<std::sync::atomic::AtomicI64>,
) -> Arc<Admin> {
    let market = leadex_engine::testing::market(&["acme"], vec![]);
    let clock = Arc::new(leadex_engine::ManualClock::new(1_700_000_000_000));
    let engine = leadex_engine::Engine::new(Default::default(), &market, clock).unwrap();
    Arc::new(Admin::new(
        Arc::new(AdminStore::default()),
        Arc::new(engine),
        journal,
        Arc::new(move || now.load(std::sync::atomic::Ordering::Relaxed)),
        Duration::from_secs(5),
    ))
}

fn admin() -> Arc<Admin> {
    admin_over(
        Arc::new(leadex_engine::MemoryJournal::default()),
        Arc::new(std::sync::atomic::AtomicI64::new(1_700_000_000_000)),
    )
}

fn healthy() -> HealthSource {
    Arc::new(|| Health {
        journal_ok: true,
        snapshots_ok: true,
        campaigns: 3,
        pending_pings: 1,
    })
}

/// The real router plus a test route that takes a JSON body and one that
/// sleeps or panics, under the same layers.
fn app(settings: AdminSettings) -> Router {
    #[derive(serde::Deserialize)]
    struct Body {
        #[allow(dead_code)]
        name: String,
        #[allow(dead_code)]
        count: u32,
    }
    let extra = Router::new()
        .route(
            "/test/json",
            post(|ApiJson(_b): ApiJson<Body>| async { "ok" }),
        )
        .route(
            "/test/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .route(
            "/test/panic",
            get(|| async {
                #[allow(clippy::panic)]
                if true {
                    panic!("boom");
                }
                "never"
            }),
        );
    let state = AppState {
        health: healthy(),
        admin: admin(),
        webhooks: Arc::new(webhooks::WebhookSettings::default()),
        limiter: Arc::new(keys::RateLimiter::default()),
    };
    frame(routes(Router::new()).merge(extra), settings, state)
}

async fn call(app: Router, req: HttpRequest<Body>) -> (StatusCode, Value) {
    let resp = app.oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)));
    (status, value)
}

fn json_post(path: &str, body: &str) -> HttpRequest<Body> {
    HttpRequest::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("(none)")
}

#[tokio::test]
async fn every_error_is_json_with_a_stable_code() {
    let settings = AdminSettings {
        request_timeout_ms: 200,
        body_limit_bytes: 64,
    };
    let get_req = |p: &str| HttpRequest::get(p).body(Body::empty()).unwrap();
    let cases: Vec<(HttpRequest<Body>, StatusCode, &str)> = vec![
        (get_req("/nope"), StatusCode::NOT_FOUND, "not_found"),
        (
            HttpRequest::delete("/healthz").body(Body::empty()).unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            json_post("/test/json", "{not json"),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            json_post("/test/json", r#"{"name":"a","count":-1}"#),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            json_post("/test/json", r#"{"count":1}"#),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            json_post("/test/json", r#""a string""#),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            HttpRequest::post("/test/json")
                .header(header::CONTENT_TYPE, "text/plain")
                .body(Body::from(r#"{"name":"a","count":1}"#))
                .unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            json_post(
                "/test/json",
                &format!(r#"{{"name":"{}","count":1}}"#, "x".repeat(100)),
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
        (
            get_req("/test/slow"),
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
        ),
        (
            get_req("/test/panic"),
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
        ),
    ];
    for (req, status, expected) in cases {
        let what = format!("{} {}", req.method(), req.uri());
        let (got, v) = call(app(settings), req).await;
        assert_eq!((got, code(&v)), (status, expected), "{what}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what}: {v}"
        );
    }
    // A member of the wrong type or missing is named, as `field`.
    for (body, field, message) in [
        (
            r#"{"name":"a","count":-1}"#,
            "count",
            "count: invalid value: integer `-1`, expected u32",
        ),
        (r#"{"count":1}"#, "name", "name is required"),
    ] {
        let (_, v) = call(app(settings), json_post("/test/json", body)).await;
        assert_eq!(
            (v["error"]["field"].as_str(), v["error"]["message"].as_str()),
            (Some(field), Some(message)),
            "{body}: {v}"
        );
    }
    // A good body passes.
    let resp = app(settings)
        .oneshot(json_post("/test/json", r#"{"name":"a","count":1}"#))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn healthz_reports_and_degrades() {
    let (status, v) = call(
        router(
            AdminSettings::default(),
            healthy(),
            admin(),
            Default::default(),
        ),
        HttpRequest::get("/healthz").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (v["status"].as_str(), v["campaigns"].as_u64()),
        (Some("ok"), Some(3))
    );
    let down: HealthSource = Arc::new(Health::default);
    let (status, v) = call(
        router(AdminSettings::default(), down, admin(), Default::default()),
        HttpRequest::get("/healthz").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(
        (status, v["status"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("degraded"))
    );
}

#[tokio::test]
async fn the_openapi_document_is_3_1_and_lists_every_route() {
    let (status, doc) = call(
        router(
            AdminSettings::default(),
            healthy(),
            admin(),
            Default::default(),
        ),
        HttpRequest::get("/openapi.json")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let documented: std::collections::BTreeSet<String> =
        doc["paths"].as_object().unwrap().keys().cloned().collect();
    // Every route the router serves (the test routes above are not part of it).
    let served: std::collections::BTreeSet<String> = [
        "/healthz",
        "/openapi.json",
        "/v1/keys",
        "/v1/keys/{id}",
        "/v1/keys/{id}/rotate",
        "/v1/sellers",
        "/v1/sellers/{id}",
        "/v1/sellers/{id}/keys",
        "/v1/sellers/{id}/sources",
        "/v1/buyers",
        "/v1/buyers/{id}",
        "/v1/campaigns",
        "/v1/campaigns/{id}",
        "/v1/campaigns/{id}/pause",
        "/v1/campaigns/{id}/resume",
        "/v1/campaigns/{id}/budget",
        "/v1/campaigns/{id}/ledger",
        "/v1/leads",
        "/v1/leads/{id}",
        "/v1/leads/{id}/return",
        "/v1/leads/{id}/status",
        "/v1/leads/{id}/notes",
        "/v1/leads/{id}/attempts",
        "/v1/quotes",
        "/v1/quotes/{id}",
        "/v1/quotes/{id}/decline",
        "/v1/policies",
        "/v1/policies/{id}",
        "/v1/commissions",
        "/v1/commissions/{id}/approve",
        "/v1/commissions/{id}/pay",
        "/v1/commission-plans/{buyer_id}",
        "/v1/agents",
        "/v1/agents/{id}",
        "/v1/teams",
        "/v1/agencies/{id}/routing",
        "/v1/assignments",
        "/v1/assignments/{id}",
        "/v1/assignments/{id}/accept",
        "/v1/assignments/{id}/reject",
        "/v1/assignments/{id}/close",
        "/v1/webhooks",
        "/v1/webhooks/{id}",
        "/v1/webhooks/{id}/deliveries",
        "/v1/audit",
        "/v1/reports/campaigns",
        "/v1/reports/sellers",
        "/v1/reports/funnel",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(documented, served);
    // ...and each of them is served (a route documented but not served
    // answers "no such route"; an unknown record is a 404 of its own).
    for path in &served {
        let path = path.replace("{id}", "k_nope").replace("{buyer_id}", "nope");
        let (status, body) = as_key(
            &router(
                AdminSettings::default(),
                healthy(),
                admin(),
                Default::default(),
            ),
            "GET",
            &path,
            None,
            None,
        )
        .await;
        assert!(
            status != StatusCode::NOT_FOUND || body["error"]["message"] != "no such route",
            "{path} is documented but not served"
        );
    }
    let codes: Vec<&str> = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(codes.len(), ErrorCode::ALL.len(), "{codes:?}");
    // The answers of the shared extractors are on every operation they
    // apply to: ApiJson's on those with a body, Principal's on those that
    // need a key (SharedAnswers).
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let declared = |status: &str| {
                operation["responses"][status]["content"]["application/json"]["schema"]["$ref"]
                    == "#/components/schemas/ErrorBody"
            };
            let what = format!("{method} {path}");
            assert!(
                operation["responses"]["503"].is_object(),
                "{what} does not declare 503"
            );
            if operation.get("requestBody").is_some() {
                for status in ["400", "413", "415"] {
                    assert!(declared(status), "{what} does not declare {status}");
                }
            }
            if operation.get("security").is_some() {
                for status in ["401", "429"] {
                    assert!(declared(status), "{what} does not declare {status}");
                }
            }
        }
    }
    // Operation ids are unique (OpenAPI requires it; client generators
    // name functions after them).
    let mut ids = std::collections::BTreeSet::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for operation in item.as_object().unwrap().values() {
            let id = operation["operationId"].as_str().unwrap();
            assert!(ids.insert(id), "operationId {id} is used twice");
        }
    }
    let rotate = &doc["paths"]["/v1/keys/{id}/rotate"]["post"]["requestBody"];
    assert_ne!(rotate["required"], true, "{rotate}");
}

/// Sends `method path` with `key` (and a JSON body when given).
async fn as_key(
    app: &Router,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = HttpRequest::builder().method(method).uri(path);
    if let Some(k) = key {
        req = req.header(header::AUTHORIZATION, format!("Bearer {k}"));
    }
    let req = match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_owned())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn keys_are_created_shown_once_listed_revoked_and_rotated() {
    let journal = Arc::new(leadex_engine::MemoryJournal::default());
    let now = Arc::new(std::sync::atomic::AtomicI64::new(1_700_000_000_000));
    let admin = admin_over(journal.clone(), now.clone());
    let root = bootstrap_admin_key(admin.clone(), None)
        .await
        .unwrap()
        .expect("generated");
    assert!(
        bootstrap_admin_key(admin.clone(), None)
            .await
            .unwrap()
            .is_none(),
        "only at first start"
    );
    let app = router(
        AdminSettings::default(),
        healthy(),
        admin.clone(),
        Default::default(),
    );

    // No key, a bad key, a malformed header: 401.
    for key in [None, Some("ldx_nope"), Some("")] {
        let (status, v) = as_key(&app, "GET", "/v1/keys", key, None).await;
        assert_eq!(
            (status, code(&v)),
            (StatusCode::UNAUTHORIZED, "unauthorized"),
            "{key:?}"
        );
    }
    // Field errors name the field.
    for (body, field) in [
        (r#"{"name":"b","role":"buyer"}"#, "tenant"),
        (r#"{"name":"a","role":"admin","tenant":"x"}"#, "tenant"),
        (r#"{"name":"","role":"admin"}"#, "name"),
    ] {
        let (status, v) = as_key(&app, "POST", "/v1/keys", Some(&root), Some(body)).await;
        assert_eq!(
            (status, code(&v), v["error"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, "invalid_field", Some(field)),
            "{body}"
        );
    }
    let (status, v) = as_key(
        &app,
        "POST",
        "/v1/keys",
        Some(&root),
        Some(r#"{"name":"b","role":"superuser"}"#),
    )
    .await;
    assert_eq!(
        (status, code(&v), v["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, "invalid_field", Some("role")),
        "{v}"
    );

    // A buyer key: shown once, works, but not on admin routes.
    let (status, created) = as_key(
        &app,
        "POST",
        "/v1/keys",
        Some(&root),
        Some(r#"{"name":"acme ops","role":"buyer","tenant":"acme"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let buyer = created["secret"].as_str().unwrap().to_owned();
    let buyer_id = created["key"]["id"].as_str().unwrap().to_owned();
    let (status, v) = as_key(&app, "GET", "/v1/keys", Some(&buyer), None).await;
    assert_eq!((status, code(&v)), (StatusCode::FORBIDDEN, "forbidden"));
    let (status, list) = as_key(&app, "GET", "/v1/keys", Some(&root), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 2);
    let listed = list.to_string();
    assert!(
        !listed.contains(&buyer) && !listed.contains("secret"),
        "no secret nor hash is listed: {listed}"
    );

    // Rotation: both keys work during the overlap, then only the new one.
    let (status, rotated) = as_key(
        &app,
        "POST",
        &format!("/v1/keys/{buyer_id}/rotate"),
        Some(&root),
        Some(r#"{"overlap_seconds":60}"#),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{rotated}");
    let new_buyer = rotated["secret"].as_str().unwrap().to_owned();
    let (store, t) = (&admin.store, now.load(std::sync::atomic::Ordering::Relaxed));
    assert!(store
        .authenticate(&keys::secret_hash(&buyer), t + 59_999)
        .is_some());
    assert!(store
        .authenticate(&keys::secret_hash(&buyer), t + 60_000)
        .is_none());
    assert!(store
        .authenticate(&keys::secret_hash(&new_buyer), t + 60_000)
        .is_some());
    // Every field of a rotation is optional: no body, `null` and `{}` are
    // the default overlap; a body sent as another type is still 415.
    let new_buyer_id = rotated["key"]["id"].as_str().unwrap().to_owned();
    let rotate = format!("/v1/keys/{new_buyer_id}/rotate");
    for body in [None, Some("null"), Some("{}")] {
        let (status, again) = as_key(&app, "POST", &rotate, Some(&root), body).await;
        assert_eq!(status, StatusCode::CREATED, "{body:?}: {again}");
        let old = store.key(&new_buyer_id).unwrap();
        assert_eq!(old.expires_at_ms, Some(t + 86_400_000), "{body:?}");
    }
    let req = HttpRequest::post(rotate.as_str())
        .header(header::AUTHORIZATION, format!("Bearer {root}"))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("{}"))
        .unwrap();
    let (status, v) = call(app.clone(), req).await;
    assert_eq!(
        (status, code(&v)),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
    );

    // Revoke: at once, idempotent; unknown ids are 404.
    let new_id = rotated["key"]["id"].as_str().unwrap();
    for _ in 0..2 {
        let (status, _) = as_key(
            &app,
            "DELETE",
            &format!("/v1/keys/{new_id}"),
            Some(&root),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    assert!(store
        .authenticate(&keys::secret_hash(&new_buyer), t)
        .is_none());
    let (status, v) = as_key(&app, "DELETE", "/v1/keys/k_nope", Some(&root), None).await;
    assert_eq!((status, code(&v)), (StatusCode::NOT_FOUND, "not_found"));

    // Everything went through the journal: a replay rebuilds the same state.
    let replayed = AdminStore::default();
    for event in journal.events() {
        if let leadex_engine::Event::Admin(record) = event {
            assert!(replayed.apply(&record).unwrap());
        }
    }
    assert_eq!(replayed.image(), admin.store.image());
}

#[tokio::test]
async fn a_change_the_journal_refuses_changes_nothing() {
    struct Refusing;
    impl leadex_engine::Journal for Refusing {
        fn append(
            &self,
            _: Vec<leadex_engine::Event>,
            _: Option<leadex_engine::journal::DurableCallback>,
        ) -> Result<(), leadex_engine::JournalError> {
            Err(leadex_engine::JournalError::Unavailable("down".into()))
        }
    }
    let admin = admin_over(
        Arc::new(Refusing),
        Arc::new(std::sync::atomic::AtomicI64::new(1)),
    );
    let error = bootstrap_admin_key(admin.clone(), None).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::PersistenceUnavailable);
    assert!(admin.store.keys().is_empty());
}

/// Agents, teams and an agency's policy through the API land in the
/// engine; a lead routed by the engine is rejected (offered to the next
/// agent), accepted and closed through the API, each answer after its
/// record is durable, with tenancy (404), agent (409) and status (409)
/// refusals; a replay of the journal rebuilds the same store and routing.
#[tokio::test]
async fn assignments_are_rejected_accepted_and_closed_through_the_engine() {
    let journal = Arc::new(leadex_engine::MemoryJournal::default());
    let now = Arc::new(std::sync::atomic::AtomicI64::new(1_700_000_000_000));
    let admin = admin_over(journal.clone(), now);
    let root = bootstrap_admin_key(admin.clone(), None)
        .await
        .unwrap()
        .unwrap();
    let app = router(
        AdminSettings::default(),
        healthy(),
        admin.clone(),
        Default::default(),
    );
    let must = |status: StatusCode, v: &Value, want: StatusCode| {
        assert_eq!(status, want, "{v}");
    };
    let (status, v) = as_key(
        &app,
        "POST",
        "/v1/buyers",
        Some(&root),
        Some(r#"{"id":"bravo"}"#),
    )
    .await;
    must(status, &v, StatusCode::CREATED);
    let mut keys = std::collections::BTreeMap::new();
    for (name, role, tenant) in [
        ("buyer", "buyer", "acme"),
        ("agent", "agent", "acme"),
        ("bravo", "buyer", "bravo"),
    ] {
        let body = format!(r#"{{"name":"{name}","role":"{role}","tenant":"{tenant}"}}"#);
        let (status, v) = as_key(&app, "POST", "/v1/keys", Some(&root), Some(&body)).await;
        must(status, &v, StatusCode::CREATED);
        keys.insert(name, v["secret"].as_str().unwrap().to_owned());
    }
    let (buyer, agent, bravo) = (
        Some(keys["buyer"].as_str()),
        Some(keys["agent"].as_str()),
        Some(keys["bravo"].as_str()),
    );

    // Agents and a team: in the engine's routing spec, and in the store.
    for body in [
        r#"{"id":"m1","name":"Manager","capacity":5,"licences":[{"state":"CA","line":"personal_lines"}]}"#,
        r#"{"id":"a1","name":"Ann","capacity":5,"manager_id":"m1","specializations":["auto"],
            "performance":{"conversion_bps":1200,"rating_centi":450,
              "success":[{"vertical":"auto","tier":0,"conversion_bps":2000}]},
            "quality_tier":1,"licences":[{"state":"CA","line":"personal_lines"}]}"#,
        r#"{"id":"a2","name":"Bob","capacity":5,"manager_id":"m1",
            "links":[{"to":"a1","kind":"mentorship","strength_bps":5000}],
            "licences":[{"state":"CA","line":"casualty"}]}"#,
    ] {
        let (status, v) = as_key(&app, "POST", "/v1/agents", buyer, Some(body)).await;
        must(status, &v, StatusCode::OK);
    }
    let (status, v) = as_key(
        &app,
        "POST",
        "/v1/teams",
        buyer,
        Some(r#"{"id":"t1","name":"Team","manager_id":"m1"}"#),
    )
    .await;
    must(status, &v, StatusCode::OK);
    let spec = admin.engine.router().spec();
    let a1 = spec.agents.iter().find(|a| a.id == "a1").unwrap();
    assert_eq!(
        (
            a1.agency_id.as_str(),
            a1.quality_tier,
            a1.performance.rating_centi
        ),
        ("acme", 1, 450)
    );
    assert_eq!(spec.teams.len(), 1);
    let (_, v) = as_key(&app, "GET", "/v1/agents/a2", buyer, None).await;
    assert_eq!(v["links"][0]["to"], "a1", "{v}");
    // The engine's validation, field by field.
    for (body, field) in [
        (
            r#"{"id":"a3","name":"C","capacity":1,"performance":{"conversion_bps":20000}}"#,
            "performance.conversion_bps",
        ),
        (
            r#"{"id":"a3","name":"C","capacity":1,"links":[{"to":"ghost","kind":"referral","strength_bps":10}]}"#,
            "links[0].to",
        ),
        (
            r#"{"id":"a3","name":"C","capacity":1,"quality_tier":4}"#,
            "quality_tier",
        ),
        (r#"{"id":"a3","name":"C","capacity":0}"#, "capacity"),
    ] {
        let (status, v) = as_key(&app, "POST", "/v1/agents", buyer, Some(body)).await;
        assert_eq!(
            (status, code(&v), v["error"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, "invalid_field", Some(field)),
            "{body}: {v}"
        );
    }

    // The agency's policy: the defaults, then one set through the API.
    let (status, v) = as_key(&app, "GET", "/v1/agencies/acme/routing", buyer, None).await;
    must(status, &v, StatusCode::OK);
    assert_eq!(
        (v["strategy"].as_str(), v["offer_timeout_s"].as_u64()),
        (Some("weighted"), Some(300))
    );
    let (status, v) = as_key(
        &app,
        "PUT",
        "/v1/agencies/acme/routing",
        buyer,
        Some(r#"{"strategy":"least_loaded","offer_timeout_s":60,"escalate_after":2,"route_campaigns":["*"]}"#),
    )
    .await;
    must(status, &v, StatusCode::OK);
    let policy = &admin.engine.router().spec().agencies[0];
    assert_eq!(
        (
            policy.id.as_str(),
            policy.offer_timeout_s,
            policy.escalate_after
        ),
        ("acme", 60, 2)
    );
    let (_, v) = as_key(&app, "GET", "/v1/agencies/acme/routing", buyer, None).await;
    assert_eq!(v["strategy"], "least_loaded", "{v}");
    for (key, path, body, want, want_code) in [
        (
            bravo,
            "/v1/agencies/acme/routing",
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            agent,
            "/v1/agencies/acme/routing",
            None,
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            Some(root.as_str()),
            "/v1/agencies/nope/routing",
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            buyer,
            "/v1/agencies/acme/routing",
            Some(r#"{"route_campaigns":["nope"]}"#),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            buyer,
            "/v1/agencies/acme/routing",
            Some(r#"{"offer_timeout_s":5}"#),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
    ] {
        let method = if body.is_some() { "PUT" } else { "GET" };
        let (status, v) = as_key(&app, method, path, key, body).await;
        assert_eq!(
            (status, code(&v)),
            (want, want_code),
            "{method} {path} {body:?}: {v}"
        );
    }

    // A lead routed by the engine (the route is another part of the
    // server): journaled and applied through the admin API's commit.
    let lead = leadex_engine::testing::route_lead();
    let ticket = admin
        .engine
        .route_lead("acme", lead, None, Some("crm-1".into()))
        .unwrap();
    let record = admin.commit_routing(ticket).await.unwrap();
    let id = record.assignment_id.to_string();
    let one = format!("/v1/assignments/{id}");
    let (status, v) = as_key(&app, "GET", &one, agent, None).await;
    must(status, &v, StatusCode::OK);
    assert_eq!(
        (v["status"].as_str(), v["reference"].as_str()),
        (Some("offered"), Some("crm-1"))
    );
    let first = v["agent_id"].as_str().unwrap().to_owned();

    // Another account never learns it exists.
    let (_, v) = as_key(&app, "GET", "/v1/assignments", bravo, None).await;
    assert_eq!(v["assignments"], serde_json::json!([]), "{v}");
    for (method, path) in [
        ("GET", one.clone()),
        ("POST", format!("{one}/accept")),
        ("POST", format!("{one}/reject")),
        ("POST", format!("{one}/close")),
        ("GET", "/v1/assignments?buyer_id=acme".to_string()),
    ] {
        let (status, v) = as_key(&app, method, &path, bravo, None).await;
        assert_eq!(
            (status, code(&v)),
            (StatusCode::NOT_FOUND, "not_found"),
            "{method} {path}: {v}"
        );
    }
    let (_, v) = as_key(
        &app,
        "GET",
        &format!("/v1/assignments?before={id}"),
        bravo,
        None,
    )
    .await;
    assert_eq!(
        v["assignments"],
        serde_json::json!([]),
        "a foreign cursor: {v}"
    );

    // Reject, naming the wrong agent, then right: offered to the next one.
    let (status, v) = as_key(
        &app,
        "POST",
        &format!("{one}/reject"),
        agent,
        Some(r#"{"agent_id":"m1-not"}"#),
    )
    .await;
    assert_eq!(
        (status, code(&v)),
        (StatusCode::CONFLICT, "wrong_agent"),
        "{v}"
    );
    let body = format!(r#"{{"agent_id":"{first}"}}"#);
    let (status, v) = as_key(&app, "POST", &format!("{one}/reject"), agent, Some(&body)).await;
    must(status, &v, StatusCode::OK);
    let second = v["agent_id"].as_str().unwrap().to_owned();
    assert_ne!(second, first, "{v}");
    assert_eq!(
        (v["status"].as_str(), v["failures"].as_u64()),
        (Some("offered"), Some(1))
    );
    let kinds: Vec<&str> = v["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["created", "offered", "rejected", "offered"], "{v}");

    // Accept (no body: whoever it is offered to), then it is not offered.
    let (status, v) = as_key(&app, "POST", &format!("{one}/accept"), buyer, None).await;
    must(status, &v, StatusCode::OK);
    assert_eq!(
        (v["status"].as_str(), v["agent_id"].as_str()),
        (Some("accepted"), Some(second.as_str()))
    );
    for action in ["accept", "reject"] {
        let (status, v) = as_key(&app, "POST", &format!("{one}/{action}"), buyer, None).await;
        assert_eq!(
            (status, code(&v)),
            (StatusCode::CONFLICT, "assignment_not_offered"),
            "{action}: {v}"
        );
    }
    let (status, v) = as_key(&app, "POST", &format!("{one}/close"), agent, Some(&body)).await;
    assert_eq!(
        (status, code(&v)),
        (StatusCode::CONFLICT, "wrong_agent"),
        "close by {first}: {v}"
    );
    let (status, v) = as_key(&app, "POST", &format!("{one}/close"), agent, Some("null")).await;
    must(status, &v, StatusCode::OK);
    assert_eq!(v["status"], "closed", "{v}");
    assert_eq!(admin.engine.router().open_count(), 0);
    admin.engine.router().check_workloads().unwrap();
    let (status, v) = as_key(&app, "POST", &format!("{one}/close"), agent, None).await;
    assert_eq!(
        (status, code(&v)),
        (StatusCode::CONFLICT, "assignment_not_offered"),
        "{v}"
    );

    // Lists and ids.
    let (_, v) = as_key(&app, "GET", "/v1/assignments?status=closed", agent, None).await;
    assert_eq!(v["assignments"][0]["id"].as_str(), Some(id.as_str()), "{v}");
    let (_, v) = as_key(&app, "GET", "/v1/assignments?status=offered", agent, None).await;
    assert_eq!(v["assignments"], serde_json::json!([]), "{v}");
    let (status, v) = as_key(&app, "GET", "/v1/assignments?status=lost", agent, None).await;
    assert_eq!(
        (status, code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_field"),
        "{v}"
    );
    for path in [
        "/v1/assignments/a_nope/accept".to_string(),
        format!("/v1/assignments/a_{}/accept", "0".repeat(32)),
    ] {
        let (status, v) = as_key(&app, "POST", &path, buyer, None).await;
        assert_eq!(
            (status, code(&v)),
            (StatusCode::NOT_FOUND, "not_found"),
            "{path}: {v}"
        );
    }

    // A replay of the journal rebuilds the store and the routing spec.
    let market = leadex_engine::testing::market(&["acme"], vec![]);
    let clock = Arc::new(leadex_engine::ManualClock::new(1_700_000_000_000));
    let engine = leadex_engine::Engine::new(Default::default(), &market, clock).unwrap();
    let replayed = AdminStore::default();
    for event in journal.events() {
        engine.apply(&event);
        match &event {
            leadex_engine::Event::Admin(r) => {
                replayed.apply(r).unwrap();
            }
            leadex_engine::Event::Market(r) => {
                replayed.apply_market(r).unwrap();
            }
            leadex_engine::Event::Routing(r) => {
                replayed.apply_routing(r);
            }
            _ => {}
        }
    }
    assert_eq!(replayed.image(), admin.store.image());
    assert_eq!(engine.router().spec(), admin.engine.router().spec());
}
