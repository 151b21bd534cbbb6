//! # leadex-admin-api
//!
//! The admin API of leadex: everything outside the hot path that buyers and
//! operators manage (buyers, sellers, campaigns, API keys, CRM records,
//! webhooks, audit), on its own port (`admin.listen`, `127.0.0.1:8081` by
//! default), served by axum with tower-http layers, and described by an
//! OpenAPI 3.1 document generated from the code (utoipa) at
//! `GET /openapi.json`.
//!
//! This crate is being built in steps (issue 5). What is here today is the
//! service frame every route will share:
//! - the error model ([`error`]): every error, including unknown routes,
//!   wrong methods, bad JSON, oversized bodies, timeouts and panics, is a
//!   JSON body `{"error":{"code","message","field"?}}` with a stable code,
//!   the same shape as the seller API's;
//! - [`json::ApiJson`], the body extractor with those errors;
//! - the layers: a request deadline, a body limit, tracing, gzip
//!   compression and panic capture;
//! - `GET /healthz` and `GET /openapi.json`.
//!
//! ```
//! # async fn demo() {
//! use leadex_admin_api::{router, AdminSettings, Health};
//! let app = router(AdminSettings::default(), std::sync::Arc::new(|| Health::default()));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! # drop((app, listener));
//! # }
//! ```

pub mod error;
pub mod json;

use crate::error::{ApiError, ErrorBody, ErrorCode};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use utoipa::{OpenApi, ToSchema};

/// Service settings (from `[admin]` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminSettings {
    /// Deadline for one request, ms; past it the answer is 503 `timeout`.
    pub request_timeout_ms: u64,
    /// Largest request body, bytes; past it the answer is 413.
    pub body_limit_bytes: usize,
}

impl Default for AdminSettings {
    fn default() -> Self {
        AdminSettings {
            request_timeout_ms: 10_000,
            body_limit_bytes: 1 << 20,
        }
    }
}

/// Health of the server behind the admin API, as `GET /healthz` shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Health {
    /// The journal takes writes (sales, and later admin changes).
    pub journal_ok: bool,
    /// Snapshots are being taken (false while the snapshot store fails).
    pub snapshots_ok: bool,
    /// Campaigns in the marketplace.
    pub campaigns: u64,
    /// Pings held under a price lock.
    pub pending_pings: u64,
}

/// Reads the server's health; cheap (atomics).
pub type HealthSource = Arc<dyn Fn() -> Health + Send + Sync>;

#[derive(Clone)]
struct AppState {
    health: HealthSource,
}

/// The `GET /healthz` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthAnswer {
    /// `ok`, or `degraded` when the journal does not take writes.
    pub status: &'static str,
    /// The figures.
    #[serde(flatten)]
    pub health: Health,
}

/// Liveness and storage health; no key needed (for load balancers).
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "service",
    responses(
        (status = 200, description = "Serving; the journal takes writes", body = HealthAnswer),
        (status = 503, description = "Serving, but the journal does not take writes", body = HealthAnswer),
    )
)]
async fn healthz(State(state): State<AppState>) -> Response {
    let health = (state.health)();
    let (code, status) = if health.journal_ok {
        (axum::http::StatusCode::OK, "ok")
    } else {
        (axum::http::StatusCode::SERVICE_UNAVAILABLE, "degraded")
    };
    (code, Json(HealthAnswer { status, health })).into_response()
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "service",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json"))
)]
async fn openapi_json() -> Response {
    Json(ApiDoc::openapi()).into_response()
}

/// The OpenAPI document: every route, body, response and error.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "leadex admin API",
        description = "Buyers, sellers, campaigns, keys, CRM records and webhooks. Every error is `{\"error\":{\"code\",\"message\",\"field\"?}}` with a stable code (see ErrorCode)."
    ),
    paths(healthz, openapi_json),
    components(schemas(ErrorBody, ErrorCode, HealthAnswer, Health)),
    tags((name = "service", description = "Health and this document"))
)]
pub struct ApiDoc;

/// The OpenAPI document as JSON.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

async fn deadline(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            ErrorCode::Timeout,
            format!("the request did not finish within {} ms", limit.as_millis()),
        )
        .into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "this route does not take this method",
    )
}

fn panic_answer(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("admin API handler panicked");
    ApiError::new(ErrorCode::Internal, "internal error; it has been logged").into_response()
}

/// The admin API's router with every layer. `health` reads the server's
/// health for `GET /healthz`.
pub fn router(settings: AdminSettings, health: HealthSource) -> Router {
    frame(routes(Router::new()), settings, health)
}

/// Puts `routes` in the service frame: state, JSON fallbacks, body limit,
/// deadline, compression, panic capture, tracing.
fn frame(routes: Router<AppState>, settings: AdminSettings, health: HealthSource) -> Router {
    routes
        .with_state(AppState { health })
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(settings.body_limit_bytes))
        .layer(axum::middleware::from_fn_with_state(
            Duration::from_millis(settings.request_timeout_ms),
            deadline,
        ))
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_answer,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

fn routes(router: Router<AppState>) -> Router<AppState> {
    router
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi_json))
}

/// Serves `router` on `listener` until `shutdown` completes, then lets
/// requests in flight finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests;
