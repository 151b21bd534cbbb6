//! The marketplace through the admin API: sellers (and their sources and
//! seller API keys), buyers, campaigns (create, change, pause, resume),
//! budget top-ups and credit limits with the campaign's ledger, and live
//! cap and budget status.
//!
//! Every change is an `Event::Market` record the engine applies by
//! compiling a new snapshot and swapping it in, so the next ping sees it;
//! validation is the engine's own ([`leadex_engine::spec`]), so a campaign
//! the API accepts is one the engine compiles, and the error names the
//! field (`caps.daily.leads`).

use crate::admin::{not_found, Principal};
use crate::audit;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::json::{ApiJson, ApiQuery};
use crate::keys::Role;
use crate::records::{LedgerEntry, LedgerKind, Source};
use crate::store::{AdminChange, AdminPayload};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use leadex_engine::event::MarketChange;
use leadex_engine::spec::{
    BuyerSpec, CampaignSpec, CampaignStatus, MarketplaceSpec, SellerSpec, SpecError,
    MONEY_CENTS_MAX,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// A spec error as an API error: the field is the path inside the record
/// (`campaigns[3].caps.daily.leads` becomes `caps.daily.leads`).
pub(crate) fn spec_error(e: SpecError) -> ApiError {
    let field = match e.path.split_once('.') {
        Some((_, rest)) => rest.to_string(),
        None => e.path.clone(),
    };
    let message = format!("{field}: {}", e.message);
    ApiError::invalid(field, message)
}

/// Checks a change against the marketplace in force.
pub(crate) fn preview(
    state: &AppState,
    change: &MarketChange,
) -> Result<std::sync::Arc<MarketplaceSpec>, ApiError> {
    state
        .admin
        .engine
        .preview_market_change(change)
        .map_err(spec_error)
}

// ---------------------------------------------------------------- sellers

/// A seller as shown: never its key hashes.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SellerView {
    /// Seller id.
    id: String,
    /// Name.
    name: String,
    /// Minimum payout per lead after margin, cents.
    floor_cents: u64,
    /// Operator margin, basis points.
    margin_bps: u32,
    /// Verticals allowed (empty: all).
    verticals: Vec<String>,
    /// Trading.
    active: bool,
    /// Seller API keys in force (count).
    api_keys: usize,
}

impl From<&SellerSpec> for SellerView {
    fn from(s: &SellerSpec) -> SellerView {
        SellerView {
            id: s.id.clone(),
            name: s.name.clone(),
            floor_cents: s.floor_cents,
            margin_bps: s.margin_bps,
            verticals: s.verticals.iter().map(crate::records::wire_name).collect(),
            active: s.active,
            api_keys: s.api_key_sha256.len(),
        }
    }
}

/// A seller to create or replace (its seller API keys are kept; create
/// them with `POST /v1/sellers/{id}/keys`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SellerInput {
    /// Seller id (creation only; must match the path on replace).
    #[schema(pattern = "^[A-Za-z0-9._-]+$", min_length = 1, max_length = 64)]
    id: String,
    /// Name.
    #[serde(default)]
    name: String,
    /// Minimum payout per lead after margin, cents.
    #[serde(default)]
    #[schema(maximum = 1000000000)]
    floor_cents: u64,
    /// Operator margin, basis points (below 10000).
    #[serde(default)]
    #[schema(maximum = 9999)]
    margin_bps: u32,
    /// Verticals allowed (empty: all): auto, home, renters, life, health,
    /// medicare, commercial.
    #[serde(default)]
    verticals: Vec<leadex_engine::lead::Vertical>,
    /// Trading (default true).
    #[serde(default = "yes")]
    active: bool,
}

fn yes() -> bool {
    true
}

fn seller_spec(input: SellerInput, keys: Vec<String>) -> SellerSpec {
    SellerSpec {
        id: input.id,
        name: input.name,
        api_key_sha256: keys,
        floor_cents: input.floor_cents,
        margin_bps: input.margin_bps,
        verticals: input.verticals,
        active: input.active,
    }
}

/// Creates a seller (admin).
#[utoipa::path(post, path = "/v1/sellers", tag = "sellers", request_body = SellerInput,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = SellerView),
        (status = 400, description = "Bad body or field", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 409, description = "The id is taken", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
        (status = 503, description = "Not made durable", body = ErrorBody),
    ))]
pub(crate) async fn create_seller(
    State(state): State<AppState>,
    caller: Principal,
    ApiJson(input): ApiJson<SellerInput>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let turn = state.admin.begin().await;
    if state.admin.has_seller(&input.id) {
        return Err(
            ApiError::new(ErrorCode::Conflict, "a seller with this id exists").with_field("id"),
        );
    }
    let spec = seller_spec(input, Vec::new());
    let change = MarketChange::PutSeller(spec.clone());
    preview(&state, &change)?;
    let view = SellerView::from(&spec);
    let payload = AdminPayload::default().audited(audit::entry(
        &caller,
        "POST /v1/sellers",
        format!("seller {}", spec.id),
        None::<&()>,
        Some(&view),
    ));
    state.admin.commit_market(turn, change, payload).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// Replaces a seller (admin).
#[utoipa::path(put, path = "/v1/sellers/{id}", tag = "sellers", request_body = SellerInput,
    security(("bearer" = [])), params(("id" = String, Path, description = "Seller id")),
    responses(
        (status = 200, description = "Replaced", body = SellerView),
        (status = 400, description = "Bad body or field", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 404, description = "No such seller", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
        (status = 503, description = "Not made durable", body = ErrorBody),
    ))]
pub(crate) async fn put_seller(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<SellerInput>,
) -> Result<Json<SellerView>, ApiError> {
    caller.require(Role::Admin)?;
    let turn = state.admin.begin().await;
    let market = state.admin.engine.marketplace();
    let old = market
        .sellers
        .iter()
        .find(|s| s.id == id)
        .ok_or_else(|| not_found("seller"))?;
    if input.id != id {
        return Err(ApiError::invalid("id", "must match the path"));
    }
    let spec = seller_spec(input, old.api_key_sha256.clone());
    let change = MarketChange::PutSeller(spec.clone());
    preview(&state, &change)?;
    let view = SellerView::from(&spec);
    let payload = AdminPayload::default().audited(audit::entry(
        &caller,
        "PUT /v1/sellers/{id}",
        format!("seller {id}"),
        Some(&SellerView::from(old)),
        Some(&view),
    ));
    state.admin.commit_market(turn, change, payload).await?;
    Ok(Json(view))
}

/// Lists sellers (admin: all; seller keys: their own).
#[utoipa::path(get, path = "/v1/sellers", tag = "sellers", security(("bearer" = [])),
    responses(
        (status = 200, description = "Sellers", body = Vec<SellerView>),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "Not an admin or seller key", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
    ))]
pub(crate) async fn list_sellers(
    State(state): State<AppState>,
    caller: Principal,
) -> Result<Json<Vec<SellerView>>, ApiError> {
    caller.require_any(&[Role::Seller])?;
    let market = state.admin.engine.marketplace();
    Ok(Json(
        market
            .sellers
            .iter()
            .filter(|s| caller.sees(&s.id))
            .map(SellerView::from)
            .collect(),
    ))
}

/// One seller.
#[utoipa::path(get, path = "/v1/sellers/{id}", tag = "sellers", security(("bearer" = [])),
    params(("id" = String, Path, description = "Seller id")),
    responses(
        (status = 200, description = "The seller", body = SellerView),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "Not an admin or seller key", body = ErrorBody),
        (status = 404, description = "No such seller", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
    ))]
pub(crate) async fn get_seller(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<String>,
) -> Result<Json<SellerView>, ApiError> {
    caller.require_any(&[Role::Seller])?;
    caller.scope(&id, "seller")?;
    let market = state.admin.engine.marketplace();
    let s = market
        .sellers
        .iter()
        .find(|s| s.id == id)
        .ok_or_else(|| not_found("seller"))?;
    Ok(Json(SellerView::from(s)))
}

/// A seller API key just created: shown once.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SellerKey {
    /// Seller.
    seller_id: String,
    /// The key for the seller API (`Authorization: Bearer <key>` on
    /// `/v1/ping` and `/v1/post`); only its SHA-256 is kept.
    key: String,
}

/// Creates a seller API key (for pings and posts): admin, or the seller.
#[utoipa::path(post, path = "/v1/sellers/{id}/keys", tag = "sellers", security(("bearer" = [])),
    params(("id" = String, Path, description = "Seller id")),
    responses(
        (status = 201, description = "Created; the key is shown once", body = SellerKey),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "Not an admin or seller key", body = ErrorBody),
        (status = 404, description = "No such seller", body = ErrorBody),
        (status = 409, description = "The seller has the most keys allowed (8)", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
        (status = 503, description = "Not made durable", body = ErrorBody),
    ))]
pub(crate) async fn create_seller_key(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require_any(&[Role::Seller])?;
    caller.scope(&id, "seller")?;
    let turn = state.admin.begin().await;
    let market = state.admin.engine.marketplace();
    let mut spec = market
        .sellers
        .iter()
        .find(|s| s.id == id)
        .ok_or_else(|| not_found("seller"))?
        .clone();
    if spec.api_key_sha256.len() >= 8 {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "the seller has 8 keys, the most allowed",
        ));
    }
    let (secret, hash) = crate::keys::generate_secret();
    spec.api_key_sha256.push(hash);
    let change = MarketChange::PutSeller(spec);
    preview(&state, &change)?;
    let payload = AdminPayload::default().audited(audit::entry(
        &caller,
        "POST /v1/sellers/{id}/keys",
        format!("seller {id}"),
        None::<&()>,
        Some(&serde_json::json!({"seller_key": "created"})),
    ));
    state.admin.commit_market(turn, change, payload).await?;
    Ok((
        StatusCode::CREATED,
        Json(SellerKey {
            seller_id: id,
            key: secret,
        }),
    )
        .into_response())
}

/// A source to create or replace.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SourceInput {
    /// Source id, as pings carry it in `source_id`.
    #[schema(pattern = "^[A-Za-z0-9._-]+$", min_length = 1, max_length = 64)]
    id: String,
    /// Name.
    #[serde(default)]
    name: String,
    /// Sends traffic (default true).
    #[serde(default = "yes")]
    active: bool,
}

/// Creates or replaces a source of a seller (admin, or the seller).
#[utoipa::path(post, path = "/v1/sellers/{id}/sources", tag = "sellers", request_body = SourceInput,
    security(("bearer" = [])), params(("id" = String, Path, description = "Seller id")),
    responses(
        (status = 200, description = "Stored", body = Source),
        (status = 400, description = "Bad body or field", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "Not an admin or seller key", body = ErrorBody),
        (status = 404, description = "No such seller", body = ErrorBody),
        (status = 409, description = "The source id belongs to another seller", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
        (status = 503, description = "Not made durable", body = ErrorBody),
    ))]
pub(crate) async fn put_source(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<SourceInput>,
) -> Result<Json<Source>, ApiError> {
    caller.require_any(&[Role::Seller])?;
    caller.scope(&id, "seller")?;
    let turn = state.admin.begin().await;
    if !state.admin.has_seller(&id) {
        return Err(not_found("seller"));
    }
    crate::crm::check_id("id", &input.id)?;
    let before = state
        .admin
        .store
        .read(|s| s.sources.get(&input.id).cloned());
    if before.as_ref().is_some_and(|b| b.seller_id != id) {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "the source id belongs to another seller",
        )
        .with_field("id"));
    }
    let source = Source {
        id: input.id,
        seller_id: id,
        name: input.name,
        active: input.active,
    };
    let payload = AdminPayload::one(AdminChange::SourcePut {
        source: source.clone(),
    })
    .audited(audit::entry(
        &caller,
        "POST /v1/sellers/{id}/sources",
        format!("source {}", source.id),
        before.as_ref(),
        Some(&source),
    ));
    state.admin.commit(turn, payload).await?;
    Ok(Json(source))
}

/// A seller's sources.
#[utoipa::path(get, path = "/v1/sellers/{id}/sources", tag = "sellers", security(("bearer" = [])),
    params(("id" = String, Path, description = "Seller id")),
    responses(
        (status = 200, description = "Sources", body = Vec<Source>),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "Not an admin or seller key", body = ErrorBody),
        (status = 404, description = "No such seller", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
    ))]
pub(crate) async fn list_sources(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<String>,
) -> Result<Json<Vec<Source>>, ApiError> {
    caller.require_any(&[Role::Seller])?;
    caller.scope(&id, "seller")?;
    if !state.admin.has_seller(&id) {
        return Err(not_found("seller"));
    }
    Ok(Json(state.admin.store.read(|s| {
        s.sources
            .values()
            .filter(|x| x.seller_id == id)
            .cloned()
            .collect()
    })))
}

// ----------------------------------------------------------------- buyers

/// Creates a buyer account (admin).
#[utoipa::path(post, path = "/v1/buyers", tag = "buyers", request_body = BuyerSpec,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = BuyerSpec),
        (status = 400, description = "Bad body or field (an unknown parent, a cycle)", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 409, description = "The id is taken", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
        (status = 503, description = "Not made durable", body = ErrorBody),
    ))]
pub(crate) async fn create_buyer(
    State(state): State<AppState>,
    caller: Principal,
    ApiJson(buyer): ApiJson<BuyerSpec>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let turn = state.admin.begin().await;
    if state.admin.has_buyer(&buyer.id) {
        return Err(
            ApiError::new(ErrorCode::Conflict, "a buyer with this id exists").with_field("id"),
        );
    }
    let change = MarketChange::PutBuyer(buyer.clone());
    preview(&state, &change)?;
    let payload = AdminPayload::default().audited(audit::entry(
        &caller,
        "POST /v1/buyers",
        format!("buyer {}", buyer.id),
        None::<&()>,
        Some(&buyer),
    ));
    state.admin.commit_market(turn, change, payload).await?;
    Ok((StatusCode::CREATED, Json(buyer)).into_response())
}

/// Replaces a buyer account (admin).
#[utoipa::path(put, path = "/v1/buyers/{id}", tag = "buyers", request_body = BuyerSpec,
    security(("bearer" = [])), params(("id" = String, Path, description = "Buyer id")),
    responses(
        (status = 200, description = "Replaced", body = BuyerSpec),
        (status = 400, description = "Bad body or field", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 404, description = "No such buyer", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
        (status = 503, description = "Not made durable", body = ErrorBody),
    ))]
pub(crate) async fn put_buyer(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<String>,
    ApiJson(buyer): ApiJson<BuyerSpec>,
) -> Result<Json<BuyerSpec>, ApiError> {
    caller.require(Role::Admin)?;
    let turn = state.admin.begin().await;
    let market = state.admin.engine.marketplace();
    let old = market
        .buyers
        .iter()
        .find(|b| b.id == id)
        .ok_or_else(|| not_found("buyer"))?;
    if buyer.id != id {
        return Err(ApiError::invalid("id", "must match the path"));
    }
    let change = MarketChange::PutBuyer(buyer.clone());
    preview(&state, &change)?;
    let payload = AdminPayload::default().audited(audit::entry(
        &caller,
        "PUT /v1/buyers/{id}",
        format!("buyer {id}"),
        Some(old),
        Some(&buyer),
    ));
    state.admin.commit_market(turn, change, payload).await?;
    Ok(Json(buyer))
}

/// Lists buyer accounts (admin: all; tenant keys: their own).
#[utoipa::path(get, path = "/v1/buyers", tag = "buyers", security(("bearer" = [])),
    responses(
        (status = 200, description = "Buyers", body = Vec<BuyerSpec>),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "A seller key", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
    ))]
pub(crate) async fn list_buyers(
    State(state): State<AppState>,
    caller: Principal,
) -> Result<Json<Vec<BuyerSpec>>, ApiError> {
    caller.require_any(&[Role::Buyer, Role::Manager, Role::Agent])?;
    let market = state.admin.engine.marketplace();
    Ok(Json(
        market
            .buyers
            .iter()
            .filter(|b| caller.sees(&b.id))
            .cloned()
            .collect(),
    ))
}

/// One buyer account.
#[utoipa::path(get, path = "/v1/buyers/{id}", tag = "buyers", security(("bearer" = [])),
    params(("id" = String, Path, description = "Buyer id")),
    responses(
        (status = 200, description = "The buyer", body = BuyerSpec),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "A seller key", body = ErrorBody),
        (status = 404, description = "No such buyer", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
    ))]
pub(crate) async fn get_buyer(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<String>,
) -> Result<Json<BuyerSpec>, ApiError> {
    caller.require_any(&[Role::Buyer, Role::Manager, Role::Agent])?;
    caller.scope(&id, "buyer")?;
    let market = state.admin.engine.marketplace();
    market
        .buyers
        .iter()
        .find(|b| b.id == id)
        .cloned()
        .map(Json)
        .ok_or_else(|| not_found("buyer"))
}

// -------------------------------------------------------------- campaigns

/// Live money and cap status of a campaign.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CampaignLive {
    /// Lifetime spend less refunds, cents.
    spent_cents: u64,
    /// Prepaid budget plus credit limit less spend, cents (negative while
    /// the credit is in use is impossible: spend never passes the limit).
    available_cents: i64,
    /// Prepaid budget less spend, cents (negative: credit in use).
    balance_cents: i64,
    /// Leads bought, lifetime.
    leads_bought: u64,
    /// Leads returned.
    leads_returned: u64,
    /// Use of each cap in the current period: hourly, daily, weekly,
    /// monthly leads, then the same for spend in cents.
    cap_use: CapUse,
}

/// Use of the caps in the current periods.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CapUse {
    /// Leads this hour.
    hourly_leads: u32,
    /// Leads today.
    daily_leads: u32,
    /// Leads this week.
    weekly_leads: u32,
    /// Leads this month.
    monthly_leads: u32,
    /// Spend this hour, cents.
    hourly_spend_cents: u32,
    /// Spend today, cents.
    daily_spend_cents: u32,
    /// Spend this week, cents.
    weekly_spend_cents: u32,
    /// Spend this month, cents.
    monthly_spend_cents: u32,
}

/// A campaign with its live status.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CampaignView {
    /// The configuration.
    campaign: CampaignSpec,
    /// Live money and caps.
    live: CampaignLive,
}

fn campaign_view(state: &AppState, spec: &CampaignSpec) -> CampaignView {
    let reading = state.admin.engine.campaign_counters(&spec.id);
    let tally = state
        .admin
        .store
        .read(|s| s.tallies.get(&spec.id).copied().unwrap_or_default());
    let (spent, periods) = reading.map_or((0, [0u32; 8]), |r| (r.spent_cents, r.period_use));
    let limit = (spec.budget_cents + spec.credit_limit_cents) as i64;
    CampaignView {
        campaign: spec.clone(),
        live: CampaignLive {
            spent_cents: spent,
            available_cents: limit - spent as i64,
            balance_cents: spec.budget_cents as i64 - spent as i64,
            leads_bought: tally.bought,
            leads_returned: tally.returned,
            // Slots: even = leads, odd = spend, per period (see counters.rs).
            cap_use: CapUse {
                hourly_leads: periods[0],
                hourly_spend_cents: periods[1],
                daily_leads: periods[2],
                daily_spend_cents: periods[3],
                weekly_leads: periods[4],
                weekly_spend_cents: periods[5],
                monthly_leads: periods[6],
                monthly_spend_cents: periods[7],
            },
        },
    }
}

/// The campaign `id` if the caller sees its buyer, else 404.
fn campaign_of(state: &AppState, caller: &Principal, id: &str) -> Result<CampaignSpec, ApiError> {
    let market = state.admin.engine.marketplace();
    let c = market
        .campaigns
        .iter()
        .find(|c| c.id == id)
        .ok_or_else(|| not_found("campaign"))?;
    caller.scope(&c.buyer_id, "campaign")?;
    Ok(c.clone())
}

/// Creates a campaign: admin, or the buyer for its own account. Budget and
/// credit limit start as given by an admin; a buyer's new campaign starts
/// with neither (an admin tops it up).
#[utoipa::path(post, path = "/v1/campaigns", tag = "campaigns", request_body = CampaignSpec,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created; the next ping sees it", body = CampaignView),
        (status = 400, description = "Bad body or field (the field is named)", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "Not an admin or buyer key", body = ErrorBody),
        (status = 404, description = "No such buyer visible to the caller", body = ErrorBody),
        (status = 409, description = "The id is taken", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
        (status = 503, description = "Not made durable", body = ErrorBody),
    ))]
pub(crate) async fn create_campaign(
    State(state): State<AppState>,
    caller: Principal,
    ApiJson(mut spec): ApiJson<CampaignSpec>,
) -> Result<Response, ApiError> {
    caller.require_any(&[Role::Buyer])?;
    caller.scope(&spec.buyer_id, "buyer")?;
    let turn = state.admin.begin().await;
    if state
        .admin
        .engine
        .marketplace()
        .campaigns
        .iter()
        .any(|c| c.id == spec.id)
    {
        return Err(
            ApiError::new(ErrorCode::Conflict, "a campaign with this id exists").with_field("id"),
        );
    }
    if !caller.is_admin() {
        // Money is added by the operator (a top-up records a payment).
        spec.budget_cents = 0;
        spec.credit_limit_cents = 0;
    }
    let change = MarketChange::PutCampaign(Box::new(spec.clone()));
    preview(&state, &change)?;
    let mut payload = AdminPayload::default();
    let now = state.admin.now_ms();
    for (kind, amount) in [
        (LedgerKind::TopUp, spec.budget_cents),
        (LedgerKind::CreditLimit, spec.credit_limit_cents),
    ] {
        if amount > 0 {
            payload.changes.push(AdminChange::Ledger {
                entry: ledger_entry(&spec, kind, amount as i64, now, &caller),
            });
        }
    }
    let payload = payload.audited(audit::entry(
        &caller,
        "POST /v1/campaigns",
        format!("campaign {}", spec.id),
        None::<&()>,
        Some(&spec),
    ));
    state.admin.commit_market(turn, change, payload).await?;
    Ok((StatusCode::CREATED, Json(campaign_view(&state, &spec))).into_response())
}

fn ledger_entry(
    spec: &CampaignSpec,
    kind: LedgerKind,
    amount_cents: i64,
    now: i64,
    caller: &Principal,
) -> LedgerEntry {
    LedgerEntry {
        id: crate::keys::generate_id("l_"),
        campaign_id: spec.id.clone(),
        buyer_id: spec.buyer_id.clone(),
        at_ms: now,
        kind,
        amount_cents,
        lead_id: None,
        actor: Some(caller.key.id.clone()),
    }
}

/// Replaces a campaign's configuration: admin, or its buyer. Budget and
/// credit limit are not changed here (see `/budget`); the values sent for
/// them are ignored in favour of the ones in force.
#[utoipa::path(put, path = "/v1/campaigns/{id}", tag = "campaigns", request_body = CampaignSpec,
    security(("bearer" = [])), params(("id" = String, Path, description = "Campaign id")),
    responses(
        (status = 200, description = "Replaced; the next ping sees it", body = CampaignView),
        (status = 400, description = "Bad body or field (the field is named)", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "Not an admin or buyer key", body = ErrorBody),
        (status = 404, description = "No such campaign", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
        (status = 503, description = "Not made durable", body = ErrorBody),
    ))]
pub(crate) async fn put_campaign(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<String>,
    ApiJson(mut spec): ApiJson<CampaignSpec>,
) -> Result<Json<CampaignView>, ApiError> {
    caller.require_any(&[Role::Buyer])?;
    let turn = state.admin.begin().await;
    let old = campaign_of(&state, &caller, &id)?;
    if spec.id != id {
        return Err(ApiError::invalid("id", "must match the path"));
    }
    if spec.buyer_id != old.buyer_id {
        return Err(ApiError::invalid(
            "buyer_id",
            "a campaign cannot move to another buyer",
        ));
    }
    spec.budget_cents = old.budget_cents;
    spec.credit_limit_cents = old.credit_limit_cents;
    let change = MarketChange::PutCampaign(Box::new(spec.clone()));
    preview(&state, &change)?;
    let payload = AdminPayload::default().audited(audit::entry(
        &caller,
        "PUT /v1/campaigns/{id}",
        format!("campaign {id}"),
        Some(&old),
        Some(&spec),
    ));
    state.admin.commit_market(turn, change, payload).await?;
    Ok(Json(campaign_view(&state, &spec)))
}

async fn set_status(
    state: AppState,
    caller: Principal,
    id: String,
    status: CampaignStatus,
    route: &str,
) -> Result<Json<CampaignView>, ApiError> {
    caller.require_any(&[Role::Buyer])?;
    let turn = state.admin.begin().await;
    let old = campaign_of(&state, &caller, &id)?;
    let mut spec = old.clone();
    spec.status = status;
    if spec != old {
        let change = MarketChange::PutCampaign(Box::new(spec.clone()));
        preview(&state, &change)?;
        let payload = AdminPayload::default().audited(audit::entry(
            &caller,
            route,
            format!("campaign {id}"),
            Some(&old.status),
            Some(&status),
        ));
        state.admin.commit_market(turn, change, payload).await?;
    }
    Ok(Json(campaign_view(&state, &spec)))
}

/// Pauses a campaign (idempotent): it stops bidding at the next ping.
#[utoipa::path(post, path = "/v1/campaigns/{id}/pause", tag = "campaigns", security(("bearer" = [])),
    params(("id" = String, Path, description = "Campaign id")),
    responses(
        (status = 200, description = "Paused", body = CampaignView),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "Not an admin or buyer key", body = ErrorBody),
        (status = 404, description = "No such campaign", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
        (status = 503, description = "Not made durable", body = ErrorBody),
    ))]
pub(crate) async fn pause(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<String>,
) -> Result<Json<CampaignView>, ApiError> {
    set_status(
        state,
        caller,
        id,
        CampaignStatus::Paused,
        "POST /v1/campaigns/{id}/pause",
    )
    .await
}

/// Resumes a campaign (idempotent).
#[utoipa::path(post, path = "/v1/campaigns/{id}/resume", tag = "campaigns", security(("bearer" = [])),
    params(("id" = String, Path, description = "Campaign id")),
    responses(
        (status = 200, description = "Active", body = CampaignView),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "Not an admin or buyer key", body = ErrorBody),
        (status = 404, description = "No such campaign", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
        (status = 503, description = "Not made durable", body = ErrorBody),
    ))]
pub(crate) async fn resume(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<String>,
) -> Result<Json<CampaignView>, ApiError> {
    set_status(
        state,
        caller,
        id,
        CampaignStatus::Active,
        "POST /v1/campaigns/{id}/resume",
    )
    .await
}

/// Campaign list filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct CampaignQuery {
    /// Only this buyer's (admins; tenant keys see their own only).
    buyer_id: Option<String>,
}

/// Lists campaigns with their live status.
#[utoipa::path(get, path = "/v1/campaigns", tag = "campaigns", security(("bearer" = [])),
    params(CampaignQuery),
    responses(
        (status = 200, description = "Campaigns", body = Vec<CampaignView>),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "A seller or agent key", body = ErrorBody),
        (status = 404, description = "Another account asked for", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
    ))]
pub(crate) async fn list_campaigns(
    State(state): State<AppState>,
    caller: Principal,
    query: ApiQuery<CampaignQuery>,
) -> Result<Json<Vec<CampaignView>>, ApiError> {
    caller.require_any(&[Role::Buyer, Role::Manager])?;
    let account = caller.account(query.0.buyer_id.as_deref())?;
    let market = state.admin.engine.marketplace();
    Ok(Json(
        market
            .campaigns
            .iter()
            .filter(|c| account.as_ref().is_none_or(|a| &c.buyer_id == a))
            .map(|c| campaign_view(&state, c))
            .collect(),
    ))
}

/// One campaign with its live budget and cap status.
#[utoipa::path(get, path = "/v1/campaigns/{id}", tag = "campaigns", security(("bearer" = [])),
    params(("id" = String, Path, description = "Campaign id")),
    responses(
        (status = 200, description = "The campaign", body = CampaignView),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "A seller or agent key", body = ErrorBody),
        (status = 404, description = "No such campaign", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
    ))]
pub(crate) async fn get_campaign(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<String>,
) -> Result<Json<CampaignView>, ApiError> {
    caller.require_any(&[Role::Buyer, Role::Manager])?;
    let c = campaign_of(&state, &caller, &id)?;
    Ok(Json(campaign_view(&state, &c)))
}

/// A budget change: a top-up, a new credit limit, or both.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BudgetChange {
    /// Money added to the prepaid budget, cents (1 to 1000000000).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1000000000)]
    top_up_cents: Option<u64>,
    /// The new credit limit, cents (0 to 100000000000).
    #[serde(default)]
    #[schema(maximum = 100000000000_u64)]
    credit_limit_cents: Option<u64>,
}

/// Tops up a campaign's budget and/or sets its credit limit (admin): one
/// ledger line each; the next post can spend it.
#[utoipa::path(post, path = "/v1/campaigns/{id}/budget", tag = "campaigns", request_body = BudgetChange,
    security(("bearer" = [])), params(("id" = String, Path, description = "Campaign id")),
    responses(
        (status = 200, description = "Changed", body = CampaignView),
        (status = 400, description = "Bad body or field", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 404, description = "No such campaign", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
        (status = 503, description = "Not made durable", body = ErrorBody),
    ))]
pub(crate) async fn change_budget(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<String>,
    ApiJson(change): ApiJson<BudgetChange>,
) -> Result<Json<CampaignView>, ApiError> {
    caller.require(Role::Admin)?;
    let turn = state.admin.begin().await;
    let old = campaign_of(&state, &caller, &id)?;
    let mut spec = old.clone();
    let now = state.admin.now_ms();
    let mut payload = AdminPayload::default();
    match change.top_up_cents {
        Some(0) => return Err(ApiError::invalid("top_up_cents", "must be at least 1")),
        Some(n) if n > MONEY_CENTS_MAX => {
            return Err(ApiError::invalid(
                "top_up_cents",
                "must be at most 1000000000",
            ))
        }
        Some(n) => {
            spec.budget_cents = spec.budget_cents.saturating_add(n);
            payload.changes.push(AdminChange::Ledger {
                entry: ledger_entry(&spec, LedgerKind::TopUp, n as i64, now, &caller),
            });
        }
        None => {}
    }
    if let Some(limit) = change.credit_limit_cents {
        let delta = limit as i64 - spec.credit_limit_cents as i64;
        spec.credit_limit_cents = limit;
        if delta != 0 {
            payload.changes.push(AdminChange::Ledger {
                entry: ledger_entry(&spec, LedgerKind::CreditLimit, delta, now, &caller),
            });
        }
    }
    if change.top_up_cents.is_none() && change.credit_limit_cents.is_none() {
        return Err(ApiError::invalid(
            "top_up_cents",
            "give top_up_cents, credit_limit_cents or both",
        ));
    }
    let market_change = MarketChange::PutCampaign(Box::new(spec.clone()));
    preview(&state, &market_change)?;
    let payload = payload.audited(audit::entry(
        &caller,
        "POST /v1/campaigns/{id}/budget",
        format!("campaign {id}"),
        Some(&serde_json::json!({"budget_cents": old.budget_cents, "credit_limit_cents": old.credit_limit_cents})),
        Some(&serde_json::json!({"budget_cents": spec.budget_cents, "credit_limit_cents": spec.credit_limit_cents})),
    ));
    state
        .admin
        .commit_market(turn, market_change, payload)
        .await?;
    Ok(Json(campaign_view(&state, &spec)))
}

/// A campaign's ledger.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Ledger {
    /// Campaign.
    campaign_id: String,
    /// Sum of the entries' amounts excluding credit-limit lines: top-ups
    /// less charges plus refunds, cents. For a campaign created through
    /// the API it equals the budget less spend; a campaign seeded from the
    /// config files has no opening line for its seeded budget.
    balance_cents: i64,
    /// Entries, oldest first (at most `limit`, newest kept).
    entries: Vec<LedgerEntry>,
}

/// Ledger page size.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct LedgerQuery {
    /// Most entries, newest kept (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// A campaign's ledger: every top-up, credit-limit change, charge and
/// refund.
#[utoipa::path(get, path = "/v1/campaigns/{id}/ledger", tag = "campaigns", security(("bearer" = [])),
    params(("id" = String, Path, description = "Campaign id"), LedgerQuery),
    responses(
        (status = 200, description = "The ledger", body = Ledger),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "A seller or agent key", body = ErrorBody),
        (status = 404, description = "No such campaign", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
    ))]
pub(crate) async fn ledger(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<String>,
    query: ApiQuery<LedgerQuery>,
) -> Result<Json<Ledger>, ApiError> {
    caller.require_any(&[Role::Buyer, Role::Manager])?;
    campaign_of(&state, &caller, &id)?;
    let limit = crate::json::limit(query.0.limit)?;
    let (balance_cents, entries) = state.admin.store.read(|s| {
        let all = s.ledgers.get(&id).map(Vec::as_slice).unwrap_or(&[]);
        let balance = all
            .iter()
            .filter(|e| e.kind != LedgerKind::CreditLimit)
            .map(|e| e.amount_cents)
            .sum();
        (balance, all[all.len().saturating_sub(limit)..].to_vec())
    });
    Ok(Json(Ledger {
        campaign_id: id,
        balance_cents,
        entries,
    }))
}
