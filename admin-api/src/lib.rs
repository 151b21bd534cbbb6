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
//! - `GET /healthz` and `GET /openapi.json`;
//! - API keys (`/v1/keys`, [`keys`], [`store`]): 256-bit secrets shown once
//!   and stored as SHA-256, roles, tenants, revoke, rotate with an overlap,
//!   and the first admin key at first start ([`bootstrap_admin_key`]).
//!   Every change is an `Event::Admin` record in the journal, applied once
//!   durable ([`Admin::commit`]), and kept in snapshots.
//! - lead routing: agents and teams (`/v1/agents`, `/v1/teams`) and each
//!   agency's policy (`/v1/agencies/{id}/routing`) are the engine's
//!   (`MarketChange::PutAgent`, `PutTeam`, `PutAgency`); assignments
//!   (`/v1/assignments`) are the engine's decisions, journaled as
//!   `Event::Routing` records ([`Admin::commit_routing`]), kept by the
//!   store with their history and sent as `assignment.*` webhooks.
//!
//! ```
//! # async fn demo() {
//! use leadex_admin_api::{router, Admin, AdminSettings, AdminStore, Health};
//! use std::sync::Arc;
//! let journal = Arc::new(leadex_engine::MemoryJournal::default());
//! let market = leadex_engine::spec::MarketplaceSpec::default();
//! let clock = Arc::new(leadex_engine::SystemClock);
//! let engine = Arc::new(leadex_engine::Engine::new(Default::default(), &market, clock).unwrap());
//! let admin = Arc::new(Admin::new(
//!     Arc::new(AdminStore::default()),
//!     engine,
//!     journal,
//!     Arc::new(|| 1_700_000_000_000),
//!     std::time::Duration::from_secs(5),
//! ));
//! let app = router(AdminSettings::default(), Arc::new(|| Health::default()), admin, Default::default());
//! # drop(app);
//! # }
//! ```

pub mod admin;
mod agents;
mod api_keys;
mod assignments;
mod audit;
pub mod crm;
pub mod error;
pub mod json;
pub mod keys;
mod leads;
mod market;
pub mod records;
pub mod reports;
pub mod routing;
pub mod store;
pub mod webhook;
pub mod webhooks;

pub use admin::{Admin, Principal};
pub use store::AdminStore;

use crate::error::{ApiError, ErrorBody, ErrorCode};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
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

/// What every handler gets.
#[derive(Clone)]
pub struct AppState {
    health: HealthSource,
    admin: Arc<Admin>,
    webhooks: Arc<webhooks::WebhookSettings>,
    limiter: Arc<keys::RateLimiter>,
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
        description = "Buyers, sellers, campaigns, keys, CRM records and webhooks. Every error is `{\"error\":{\"code\",\"message\",\"field\"?}}` with a stable code (see ErrorCode). Integer fields take JSON integers written without a fraction or exponent (`5`, not `5.0` or `5e0`); a body that breaks a rule of its schema, or one the schema cannot express (cross-field rules, ids that must exist), is answered 400."
    ),
    paths(
        healthz,
        openapi_json,
        api_keys::create,
        api_keys::list,
        api_keys::revoke,
        api_keys::rotate,
        market::create_seller,
        market::list_sellers,
        market::get_seller,
        market::put_seller,
        market::create_seller_key,
        market::put_source,
        market::list_sources,
        market::create_buyer,
        market::list_buyers,
        market::get_buyer,
        market::put_buyer,
        market::create_campaign,
        market::list_campaigns,
        market::get_campaign,
        market::put_campaign,
        market::pause,
        market::resume,
        market::change_budget,
        market::ledger,
        leads::list,
        leads::get,
        leads::return_lead,
        leads::set_status,
        leads::add_note,
        leads::add_attempt,
        crm::create_quote,
        crm::list_quotes,
        crm::get_quote,
        crm::decline_quote,
        crm::create_policy,
        crm::list_policies,
        crm::get_policy,
        crm::list_commissions,
        crm::approve,
        crm::pay,
        crm::get_plan,
        crm::put_plan,
        agents::put_agent,
        agents::list_agents,
        agents::get_agent,
        agents::put_team,
        agents::list_teams,
        assignments::get_routing,
        assignments::put_routing,
        assignments::list,
        assignments::get,
        assignments::accept,
        assignments::reject,
        assignments::close,
        webhooks::create,
        webhooks::list,
        webhooks::get,
        webhooks::delete,
        webhooks::deliveries,
        audit::list,
        reports::campaigns,
        reports::sellers,
        reports::funnel
    ),
    components(schemas(
        ErrorBody,
        ErrorCode,
        HealthAnswer,
        Health,
        keys::Role,
        api_keys::NewKey,
        api_keys::Rotation,
        api_keys::KeyView,
        api_keys::CreatedKey,
        keys::Tier,
        market::SellerView,
        market::SellerInput,
        market::SellerKey,
        market::SourceInput,
        market::CampaignView,
        market::CampaignLive,
        market::CapUse,
        market::BudgetChange,
        market::Ledger,
        leads::LeadView,
        leads::LeadPage,
        leads::ReturnRequest,
        leads::StatusChange,
        leads::NoteInput,
        leads::AttemptInput,
        crm::QuoteInput,
        crm::PolicyInput,
        crm::PolicyCreated,
        agents::AgentInput,
        agents::TeamInput,
        assignments::AgencyRoutingInput,
        assignments::AssignmentPage,
        assignments::Decision,
        records::Assignment,
        records::AssignmentStatus,
        records::Transition,
        records::TransitionKind,
        leadex_engine::routing::spec::AgencySpec,
        leadex_engine::routing::spec::Strategy,
        leadex_engine::routing::spec::Weights,
        leadex_engine::routing::spec::PerformanceSpec,
        leadex_engine::routing::spec::SuccessSpec,
        leadex_engine::routing::spec::LinkSpec,
        leadex_engine::routing::spec::LinkKind,
        webhooks::WebhookView,
        webhooks::WebhookInput,
        webhooks::CreatedWebhook,
        audit::AuditPage,
        reports::CampaignReport,
        reports::CampaignRow,
        reports::SellerReport,
        reports::SellerRow,
        reports::FunnelReport,
        reports::FunnelRow
    )),
    modifiers(&BearerAuth, &SharedAnswers),
    tags(
        (name = "service", description = "Health and this document"),
        (name = "keys", description = "API keys: created with a secret shown once, stored hashed"),
        (name = "sellers", description = "Sellers, their sources and seller API keys"),
        (name = "buyers", description = "Buyer accounts (with parent accounts)"),
        (name = "campaigns", description = "Campaigns: configuration, pause and resume, budget, ledger, live status"),
        (name = "leads", description = "Purchased leads, returns, and the CRM pipeline"),
        (name = "crm", description = "Quotes, policies, commissions and commission plans"),
        (name = "agents", description = "Agents and teams of a buyer account"),
        (name = "routing", description = "Agency routing policies, and the assignments of leads to agents with their history"),
        (name = "webhooks", description = "Webhook subscriptions and their delivery logs"),
        (name = "audit", description = "The audit log of every mutation"),
        (name = "reports", description = "Per campaign, per seller, and the funnel by vertical and day")
    )
)]
pub struct ApiDoc;

/// Declares the `bearer` security scheme the routes name.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Declares the answers that come from the shared layers and extractors
/// rather than from a handler, on every operation they apply to, so that
/// no route can forget one: every operation answers 503 past
/// `admin.request_timeout_ms` (the deadline layer); an operation with a
/// request body (`ApiJson`) answers 400 for a body that is not the JSON it
/// takes, 413 for one larger than `admin.body_limit_bytes` and 415 for one
/// sent without a JSON content type; an operation that needs a key
/// (`Principal`) answers 401 without a valid one and 429 past the key's
/// rate limit. A response a route declares itself is kept.
struct SharedAnswers;

impl utoipa::Modify for SharedAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let mut answers = vec![(
                    "503",
                    "The request did not finish within admin.request_timeout_ms",
                )];
                if operation.request_body.is_some() {
                    answers.extend([
                        ("400", "Bad body or field"),
                        ("413", "The body is larger than admin.body_limit_bytes"),
                        ("415", "The body is not sent as application/json"),
                    ]);
                }
                if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
                    answers.extend([
                        ("401", "No valid key"),
                        ("429", "Rate limit of the key; see Retry-After"),
                    ]);
                }
                for (status, description) in answers {
                    operation
                        .responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| error(description).into());
                }
            }
        }
    }
}

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
/// health for `GET /healthz`; `admin` holds the state and the journal;
/// `webhooks` says which webhook targets are allowed.
pub fn router(
    settings: AdminSettings,
    health: HealthSource,
    admin: Arc<Admin>,
    webhooks: webhooks::WebhookSettings,
) -> Router {
    frame(
        routes(Router::new()),
        settings,
        AppState {
            health,
            admin,
            webhooks: Arc::new(webhooks),
            limiter: Arc::new(keys::RateLimiter::default()),
        },
    )
}

/// Puts `routes` in the service frame: state, JSON fallbacks, body limit,
/// deadline, compression, panic capture, tracing.
fn frame(routes: Router<AppState>, settings: AdminSettings, state: AppState) -> Router {
    routes
        .with_state(state)
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
        .route("/v1/keys", get(api_keys::list).post(api_keys::create))
        .route("/v1/keys/{id}", axum::routing::delete(api_keys::revoke))
        .route(
            "/v1/keys/{id}/rotate",
            axum::routing::post(api_keys::rotate),
        )
        .route(
            "/v1/sellers",
            get(market::list_sellers).post(market::create_seller),
        )
        .route(
            "/v1/sellers/{id}",
            get(market::get_seller).put(market::put_seller),
        )
        .route("/v1/sellers/{id}/keys", post(market::create_seller_key))
        .route(
            "/v1/sellers/{id}/sources",
            get(market::list_sources).post(market::put_source),
        )
        .route(
            "/v1/buyers",
            get(market::list_buyers).post(market::create_buyer),
        )
        .route(
            "/v1/buyers/{id}",
            get(market::get_buyer).put(market::put_buyer),
        )
        .route(
            "/v1/campaigns",
            get(market::list_campaigns).post(market::create_campaign),
        )
        .route(
            "/v1/campaigns/{id}",
            get(market::get_campaign).put(market::put_campaign),
        )
        .route("/v1/campaigns/{id}/pause", post(market::pause))
        .route("/v1/campaigns/{id}/resume", post(market::resume))
        .route("/v1/campaigns/{id}/budget", post(market::change_budget))
        .route("/v1/campaigns/{id}/ledger", get(market::ledger))
        .route("/v1/leads", get(leads::list))
        .route("/v1/leads/{id}", get(leads::get))
        .route("/v1/leads/{id}/return", post(leads::return_lead))
        .route("/v1/leads/{id}/status", post(leads::set_status))
        .route("/v1/leads/{id}/notes", post(leads::add_note))
        .route("/v1/leads/{id}/attempts", post(leads::add_attempt))
        .route("/v1/quotes", get(crm::list_quotes).post(crm::create_quote))
        .route("/v1/quotes/{id}", get(crm::get_quote))
        .route("/v1/quotes/{id}/decline", post(crm::decline_quote))
        .route(
            "/v1/policies",
            get(crm::list_policies).post(crm::create_policy),
        )
        .route("/v1/policies/{id}", get(crm::get_policy))
        .route("/v1/commissions", get(crm::list_commissions))
        .route("/v1/commissions/{id}/approve", post(crm::approve))
        .route("/v1/commissions/{id}/pay", post(crm::pay))
        .route(
            "/v1/commission-plans/{buyer_id}",
            get(crm::get_plan).put(crm::put_plan),
        )
        .route(
            "/v1/agents",
            get(agents::list_agents).post(agents::put_agent),
        )
        .route("/v1/agents/{id}", get(agents::get_agent))
        .route("/v1/teams", get(agents::list_teams).post(agents::put_team))
        .route(
            "/v1/agencies/{id}/routing",
            get(assignments::get_routing).put(assignments::put_routing),
        )
        .route("/v1/assignments", get(assignments::list))
        .route("/v1/assignments/{id}", get(assignments::get))
        .route("/v1/assignments/{id}/accept", post(assignments::accept))
        .route("/v1/assignments/{id}/reject", post(assignments::reject))
        .route("/v1/assignments/{id}/close", post(assignments::close))
        .route("/v1/webhooks", get(webhooks::list).post(webhooks::create))
        .route(
            "/v1/webhooks/{id}",
            get(webhooks::get).delete(webhooks::delete),
        )
        .route("/v1/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .route("/v1/audit", get(audit::list))
        .route("/v1/reports/campaigns", get(reports::campaigns))
        .route("/v1/reports/sellers", get(reports::sellers))
        .route("/v1/reports/funnel", get(reports::funnel))
}

/// At first start (no admin key works yet), creates the first admin key:
/// `env_secret` (from `LEADEX_ADMIN_KEY`) when given, else a generated one,
/// which is returned so the caller shows it once. Only its hash is
/// journaled. Returns `None` when an admin key exists already or the
/// secret came from the environment.
pub async fn bootstrap_admin_key(
    admin: Arc<Admin>,
    env_secret: Option<String>,
) -> Result<Option<String>, ApiError> {
    if admin.store.has_active_admin(admin.now_ms()) {
        return Ok(None);
    }
    let from_env = env_secret.is_some();
    if env_secret.as_deref().is_some_and(|s| s.trim().len() < 32) {
        return Err(ApiError::invalid(
            "LEADEX_ADMIN_KEY",
            "LEADEX_ADMIN_KEY must be at least 32 characters",
        ));
    }
    let turn = admin.begin().await;
    let (key, secret) = api_keys::new_key(
        admin.now_ms(),
        "first admin key".into(),
        keys::Role::Admin,
        None,
        keys::Tier::Enterprise,
        env_secret,
    );
    admin
        .commit(
            turn,
            store::AdminPayload::one(store::AdminChange::KeyCreated { key }),
        )
        .await?;
    Ok((!from_env).then_some(secret))
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
