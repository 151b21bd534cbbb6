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
    frame(routes(Router::new()).merge(extra), settings, healthy())
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
        router(AdminSettings::default(), healthy()),
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
        router(AdminSettings::default(), down),
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
        router(AdminSettings::default(), healthy()),
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
    let served: std::collections::BTreeSet<String> = ["/healthz", "/openapi.json"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(documented, served);
    let codes: Vec<&str> = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(codes.len(), ErrorCode::ALL.len(), "{codes:?}");
}
