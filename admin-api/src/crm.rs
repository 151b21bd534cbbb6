//! CRM records after the sale: quotes, policies created from an accepted
//! quote, commissions computed on policy creation from the account's
//! multi-tier plan (broker, manager override, affiliate; first-year and
//! renewal rates), and their status (pending → approved → paid).

use crate::admin::{not_found, Principal};
use crate::audit;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::json::{ApiJson, ApiQuery};
use crate::keys::{generate_id, Role};
use crate::records::*;
use crate::store::{AdminChange, AdminPayload};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use leadex_engine::spec::MONEY_CENTS_MAX;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Most rules in a commission plan.
pub const PLAN_RULES_MAX: usize = 10;

/// Checks an id chosen by a client by the marketplace's rule
/// ([`leadex_engine::spec::check_id`]).
pub(crate) fn check_id(field: &str, id: &str) -> Result<(), ApiError> {
    leadex_engine::spec::check_id(field.to_string(), id)
        .map_err(|e| ApiError::invalid(e.path, e.message))
}

fn short_text(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.trim().is_empty() || value.chars().count() > max {
        return Err(ApiError::invalid(
            field,
            format!("must be 1 to {max} characters"),
        ));
    }
    Ok(())
}

/// The commission lines a plan gives for a policy: one per rule, each
/// `premium_cents * rate_bps / 10000` rounded down (never more than the
/// rate gives; the sum never passes the plan's total rate).
pub fn compute_commissions(
    plan: &CommissionPlan,
    policy: &Policy,
    year: PolicyYear,
    payee_of: impl Fn(CommissionTier) -> Option<String>,
    now_ms: i64,
) -> Result<Vec<Commission>, ApiError> {
    let mut lines = Vec::with_capacity(plan.rules.len());
    for (i, rule) in plan.rules.iter().enumerate() {
        let payee = rule.payee.clone().or_else(|| payee_of(rule.tier)).ok_or_else(|| {
            ApiError::invalid(
                "agent_id",
                format!("the plan's rule {i} ({:?}) pays the policy's agent or its manager: give an agent that has one", rule.tier).to_lowercase(),
            )
        })?;
        let rate_bps = match year {
            PolicyYear::FirstYear => rule.first_year_bps,
            PolicyYear::Renewal => rule.renewal_bps,
        };
        // At most 1e9 cents times 1e4 bps: far inside u64.
        let amount_cents = policy.premium_cents * u64::from(rate_bps) / 10_000;
        lines.push(Commission {
            id: generate_id("cm_"),
            tenant: policy.tenant.clone(),
            policy_id: policy.id.clone(),
            tier: rule.tier,
            payee,
            year,
            premium_cents: policy.premium_cents,
            rate_bps,
            amount_cents,
            status: CommissionStatus::Pending,
            created_at_ms: now_ms,
            approved_at_ms: None,
            paid_at_ms: None,
        });
    }
    Ok(lines)
}

// ----------------------------------------------------------------- quotes

/// A quote to give.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct QuoteInput {
    /// The lead (bought by the caller's account).
    lead_id: String,
    /// Carrier (1 to 100 characters; stored lower case).
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    carrier: String,
    /// Yearly premium, cents (1 to 1000000000).
    #[schema(minimum = 1, maximum = 1000000000)]
    premium_cents: u64,
    /// Coverage described (1 to 500 characters).
    #[schema(min_length = 1, max_length = 500, pattern = "\\S")]
    coverage: String,
    /// The account (admins, for shared leads).
    #[serde(default)]
    buyer_id: Option<String>,
}

/// Gives a quote on a purchased lead (the lead moves to `quoted`).
#[utoipa::path(post, path = "/v1/quotes", tag = "crm", request_body = QuoteInput, security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = Quote),
        (status = 400, description = "Bad body or field", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "A seller key", body = ErrorBody),
        (status = 404, description = "No such lead bought by the account", body = ErrorBody),
        (status = 409, description = "The lead was returned", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
        (status = 503, description = "Not made durable", body = ErrorBody),
    ))]
pub(crate) async fn create_quote(
    State(state): State<AppState>,
    caller: Principal,
    ApiJson(input): ApiJson<QuoteInput>,
) -> Result<(StatusCode, Json<Quote>), ApiError> {
    caller.require_any(&[Role::Buyer, Role::Manager, Role::Agent])?;
    short_text("carrier", &input.carrier, 100)?;
    short_text("coverage", &input.coverage, 500)?;
    if input.premium_cents == 0 || input.premium_cents > MONEY_CENTS_MAX {
        return Err(ApiError::invalid(
            "premium_cents",
            "must be 1 to 1000000000",
        ));
    }
    let turn = state.admin.begin().await;
    let record = state
        .admin
        .store
        .lead(&input.lead_id)
        .ok_or_else(|| not_found("lead"))?;
    let purchase = crate::leads::purchase_of(&record, &caller, input.buyer_id.as_deref())?;
    if purchase.returned.is_some() {
        return Err(ApiError::new(ErrorCode::Conflict, "the lead was returned"));
    }
    let quote = Quote {
        id: generate_id("q_"),
        tenant: purchase.buyer_id.clone(),
        lead_id: input.lead_id,
        carrier: input.carrier.trim().to_lowercase(),
        premium_cents: input.premium_cents,
        coverage: input.coverage,
        status: QuoteStatus::Open,
        author: caller.key.id.clone(),
        created_at_ms: state.admin.now_ms(),
    };
    let payload = AdminPayload::one(AdminChange::QuoteCreated {
        quote: quote.clone(),
    })
    .audited(audit::entry(
        &caller,
        "POST /v1/quotes",
        format!("quote {}", quote.id),
        None::<&()>,
        Some(&quote),
    ));
    state.admin.commit(turn, payload).await?;
    Ok((StatusCode::CREATED, Json(quote)))
}

/// CRM list filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct CrmQuery {
    /// Only this lead's.
    lead_id: Option<String>,
    /// Only this account's (admins; tenant keys see their own only).
    buyer_id: Option<String>,
    /// Most items (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// Lists quotes.
#[utoipa::path(get, path = "/v1/quotes", tag = "crm", params(CrmQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "Quotes", body = Vec<Quote>),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "A seller key", body = ErrorBody),
        (status = 404, description = "Another account asked for", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
    ))]
pub(crate) async fn list_quotes(
    State(state): State<AppState>,
    caller: Principal,
    query: ApiQuery<CrmQuery>,
) -> Result<Json<Vec<Quote>>, ApiError> {
    caller.require_any(&[Role::Buyer, Role::Manager, Role::Agent])?;
    let q = query.0;
    let limit = crate::json::limit(q.limit)?;
    let account = caller.account(q.buyer_id.as_deref())?;
    Ok(Json(state.admin.store.read(|s| {
        of_account(s.quotes.values(), account.as_deref())
            .filter(|x| q.lead_id.as_ref().is_none_or(|l| &x.lead_id == l))
            .take(limit)
            .cloned()
            .collect()
    })))
}

/// One quote.
#[utoipa::path(get, path = "/v1/quotes/{id}", tag = "crm", security(("bearer" = [])),
    params(("id" = String, Path, description = "Quote id")),
    responses(
        (status = 200, description = "The quote", body = Quote),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "A seller key", body = ErrorBody),
        (status = 404, description = "No such quote", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
    ))]
pub(crate) async fn get_quote(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<String>,
) -> Result<Json<Quote>, ApiError> {
    caller.require_any(&[Role::Buyer, Role::Manager, Role::Agent])?;
    let quote = state
        .admin
        .store
        .read(|s| s.quotes.get(&id).cloned())
        .ok_or_else(|| not_found("quote"))?;
    caller.scope(&quote.tenant, "quote")?;
    Ok(Json(quote))
}

/// Marks an open quote declined.
#[utoipa::path(post, path = "/v1/quotes/{id}/decline", tag = "crm", security(("bearer" = [])),
    params(("id" = String, Path, description = "Quote id")),
    responses(
        (status = 200, description = "Declined", body = Quote),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "A seller key", body = ErrorBody),
        (status = 404, description = "No such quote", body = ErrorBody),
        (status = 409, description = "The quote is not open", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
        (status = 503, description = "Not made durable", body = ErrorBody),
    ))]
pub(crate) async fn decline_quote(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<String>,
) -> Result<Json<Quote>, ApiError> {
    caller.require_any(&[Role::Buyer, Role::Manager, Role::Agent])?;
    let turn = state.admin.begin().await;
    let mut quote = state
        .admin
        .store
        .read(|s| s.quotes.get(&id).cloned())
        .ok_or_else(|| not_found("quote"))?;
    caller.scope(&quote.tenant, "quote")?;
    if quote.status != QuoteStatus::Open {
        return Err(ApiError::new(ErrorCode::Conflict, "the quote is not open"));
    }
    let before = quote.status;
    quote.status = QuoteStatus::Declined;
    let payload =
        AdminPayload::one(AdminChange::QuoteDeclined { id: id.clone() }).audited(audit::entry(
            &caller,
            "POST /v1/quotes/{id}/decline",
            format!("quote {id}"),
            Some(&before),
            Some(&quote.status),
        ));
    state.admin.commit(turn, payload).await?;
    Ok(Json(quote))
}

// --------------------------------------------------------------- policies

/// A policy to create from an open quote.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicyInput {
    /// The accepted quote (open, of the caller's account).
    quote_id: String,
    /// The carrier's policy number (1 to 64 characters).
    #[schema(min_length = 1, max_length = 64, pattern = "\\S")]
    policy_number: String,
    /// First day of cover, `YYYY-MM-DD`.
    #[schema(format = Date)]
    effective_date: String,
    /// The writing agent (of the same account); needed when the plan pays
    /// the broker or manager tier without a named payee.
    #[serde(default)]
    agent_id: Option<String>,
}

/// A policy and the commissions computed for it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PolicyCreated {
    /// The policy.
    policy: Policy,
    /// Commission lines, pending.
    commissions: Vec<Commission>,
}

fn is_date(s: &str) -> bool {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() && s.len() == 10
}

/// Creates a policy from an open quote: the quote is accepted, the lead
/// bound, and the account's commission plan gives the commission lines
/// (first-year rates), all in one journal record.
#[utoipa::path(post, path = "/v1/policies", tag = "crm", request_body = PolicyInput, security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = PolicyCreated),
        (status = 400, description = "Bad body or field", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "A seller key", body = ErrorBody),
        (status = 404, description = "No such quote or agent", body = ErrorBody),
        (status = 409, description = "The quote is not open", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
        (status = 503, description = "Not made durable", body = ErrorBody),
    ))]
pub(crate) async fn create_policy(
    State(state): State<AppState>,
    caller: Principal,
    ApiJson(input): ApiJson<PolicyInput>,
) -> Result<(StatusCode, Json<PolicyCreated>), ApiError> {
    caller.require_any(&[Role::Buyer, Role::Manager, Role::Agent])?;
    short_text("policy_number", &input.policy_number, 64)?;
    if !is_date(&input.effective_date) {
        return Err(ApiError::invalid(
            "effective_date",
            "must be a date, YYYY-MM-DD",
        ));
    }
    let turn = state.admin.begin().await;
    let (quote, plan, agent, manager) = state.admin.store.read(|s| {
        let quote = s.quotes.get(&input.quote_id).cloned();
        let plan = quote
            .as_ref()
            .and_then(|q| s.plans.get(&q.tenant).cloned())
            .unwrap_or_default();
        let agent = input
            .agent_id
            .as_ref()
            .and_then(|a| s.agents.get(a).cloned());
        let manager = agent.as_ref().and_then(|a| a.manager_id.clone());
        (quote, plan, agent, manager)
    });
    let quote = quote.ok_or_else(|| not_found("quote"))?;
    caller.scope(&quote.tenant, "quote")?;
    if quote.status != QuoteStatus::Open {
        return Err(ApiError::new(ErrorCode::Conflict, "the quote is not open"));
    }
    if input.agent_id.is_some() && agent.as_ref().is_none_or(|a| a.tenant != quote.tenant) {
        return Err(not_found("agent"));
    }
    let now = state.admin.now_ms();
    let policy = Policy {
        id: generate_id("p_"),
        tenant: quote.tenant.clone(),
        lead_id: quote.lead_id.clone(),
        quote_id: quote.id.clone(),
        carrier: quote.carrier.clone(),
        policy_number: input.policy_number,
        premium_cents: quote.premium_cents,
        effective_date: input.effective_date,
        agent_id: input.agent_id.clone(),
        created_at_ms: now,
    };
    let commissions = compute_commissions(
        &plan,
        &policy,
        PolicyYear::FirstYear,
        |tier| match tier {
            CommissionTier::Broker => input.agent_id.clone(),
            CommissionTier::Manager => manager.clone(),
            CommissionTier::Affiliate => None,
        },
        now,
    )?;
    let created = PolicyCreated {
        policy: policy.clone(),
        commissions: commissions.clone(),
    };
    let payload = AdminPayload::one(AdminChange::PolicyCreated {
        policy,
        commissions,
    })
    .audited(audit::entry(
        &caller,
        "POST /v1/policies",
        format!("policy {}", created.policy.id),
        None::<&()>,
        Some(&created),
    ));
    state.admin.commit(turn, payload).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Lists policies.
#[utoipa::path(get, path = "/v1/policies", tag = "crm", params(CrmQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "Policies", body = Vec<Policy>),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "A seller key", body = ErrorBody),
        (status = 404, description = "Another account asked for", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
    ))]
pub(crate) async fn list_policies(
    State(state): State<AppState>,
    caller: Principal,
    query: ApiQuery<CrmQuery>,
) -> Result<Json<Vec<Policy>>, ApiError> {
    caller.require_any(&[Role::Buyer, Role::Manager, Role::Agent])?;
    let q = query.0;
    let limit = crate::json::limit(q.limit)?;
    let account = caller.account(q.buyer_id.as_deref())?;
    Ok(Json(state.admin.store.read(|s| {
        of_account(s.policies.values(), account.as_deref())
            .filter(|x| q.lead_id.as_ref().is_none_or(|l| &x.lead_id == l))
            .take(limit)
            .cloned()
            .collect()
    })))
}

/// One policy.
#[utoipa::path(get, path = "/v1/policies/{id}", tag = "crm", security(("bearer" = [])),
    params(("id" = String, Path, description = "Policy id")),
    responses(
        (status = 200, description = "The policy", body = Policy),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "A seller key", body = ErrorBody),
        (status = 404, description = "No such policy", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
    ))]
pub(crate) async fn get_policy(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<String>,
) -> Result<Json<Policy>, ApiError> {
    caller.require_any(&[Role::Buyer, Role::Manager, Role::Agent])?;
    let policy = state
        .admin
        .store
        .read(|s| s.policies.get(&id).cloned())
        .ok_or_else(|| not_found("policy"))?;
    caller.scope(&policy.tenant, "policy")?;
    Ok(Json(policy))
}

// ------------------------------------------------------------ commissions

/// Commission list filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct CommissionQuery {
    /// Only this policy's.
    policy_id: Option<String>,
    /// Only this account's (admins; tenant keys see their own only).
    buyer_id: Option<String>,
    /// Most items (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// Lists commissions.
#[utoipa::path(get, path = "/v1/commissions", tag = "crm", params(CommissionQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "Commissions", body = Vec<Commission>),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "A seller or agent key", body = ErrorBody),
        (status = 404, description = "Another account asked for", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
    ))]
pub(crate) async fn list_commissions(
    State(state): State<AppState>,
    caller: Principal,
    query: ApiQuery<CommissionQuery>,
) -> Result<Json<Vec<Commission>>, ApiError> {
    caller.require_any(&[Role::Buyer, Role::Manager])?;
    let q = query.0;
    let limit = crate::json::limit(q.limit)?;
    let account = caller.account(q.buyer_id.as_deref())?;
    Ok(Json(state.admin.store.read(|s| {
        of_account(s.commissions.values(), account.as_deref())
            .filter(|x| q.policy_id.as_ref().is_none_or(|p| &x.policy_id == p))
            .take(limit)
            .cloned()
            .collect()
    })))
}

async fn move_commission(
    state: AppState,
    caller: Principal,
    id: String,
    to: CommissionStatus,
    from: CommissionStatus,
    route: &str,
) -> Result<Json<Commission>, ApiError> {
    caller.require_any(&[Role::Buyer, Role::Manager])?;
    let turn = state.admin.begin().await;
    let mut c = state
        .admin
        .store
        .read(|s| s.commissions.get(&id).cloned())
        .ok_or_else(|| not_found("commission"))?;
    caller.scope(&c.tenant, "commission")?;
    if c.status != from {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!("the commission is {:?}, not {:?}", c.status, from).to_lowercase(),
        ));
    }
    let at_ms = state.admin.now_ms();
    let before = c.status;
    c.status = to;
    match to {
        CommissionStatus::Approved => c.approved_at_ms = Some(at_ms),
        _ => c.paid_at_ms = Some(at_ms),
    }
    let payload = AdminPayload::one(AdminChange::CommissionStatus {
        id: id.clone(),
        status: to,
        at_ms,
    })
    .audited(audit::entry(
        &caller,
        route,
        format!("commission {id}"),
        Some(&before),
        Some(&to),
    ));
    state.admin.commit(turn, payload).await?;
    Ok(Json(c))
}

/// Approves a pending commission (buyer or manager of the account, or an
/// admin).
#[utoipa::path(post, path = "/v1/commissions/{id}/approve", tag = "crm", security(("bearer" = [])),
    params(("id" = String, Path, description = "Commission id")),
    responses(
        (status = 200, description = "Approved", body = Commission),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "A seller or agent key", body = ErrorBody),
        (status = 404, description = "No such commission", body = ErrorBody),
        (status = 409, description = "Not pending", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
        (status = 503, description = "Not made durable", body = ErrorBody),
    ))]
pub(crate) async fn approve(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<String>,
) -> Result<Json<Commission>, ApiError> {
    move_commission(
        state,
        caller,
        id,
        CommissionStatus::Approved,
        CommissionStatus::Pending,
        "POST /v1/commissions/{id}/approve",
    )
    .await
}

/// Marks an approved commission paid.
#[utoipa::path(post, path = "/v1/commissions/{id}/pay", tag = "crm", security(("bearer" = [])),
    params(("id" = String, Path, description = "Commission id")),
    responses(
        (status = 200, description = "Paid", body = Commission),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "A seller or agent key", body = ErrorBody),
        (status = 404, description = "No such commission", body = ErrorBody),
        (status = 409, description = "Not approved", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
        (status = 503, description = "Not made durable", body = ErrorBody),
    ))]
pub(crate) async fn pay(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<String>,
) -> Result<Json<Commission>, ApiError> {
    move_commission(
        state,
        caller,
        id,
        CommissionStatus::Paid,
        CommissionStatus::Approved,
        "POST /v1/commissions/{id}/pay",
    )
    .await
}

/// An account's commission plan (empty when none is set).
#[utoipa::path(get, path = "/v1/commission-plans/{buyer_id}", tag = "crm", security(("bearer" = [])),
    params(("buyer_id" = String, Path, description = "Buyer account")),
    responses(
        (status = 200, description = "The plan", body = CommissionPlan),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "A seller or agent key", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
    ))]
pub(crate) async fn get_plan(
    State(state): State<AppState>,
    caller: Principal,
    Path(buyer_id): Path<String>,
) -> Result<Json<CommissionPlan>, ApiError> {
    caller.require_any(&[Role::Buyer, Role::Manager])?;
    caller.scope(&buyer_id, "account")?;
    if !state.admin.has_buyer(&buyer_id) {
        return Err(not_found("account"));
    }
    Ok(Json(state.admin.store.read(|s| {
        s.plans.get(&buyer_id).cloned().unwrap_or_default()
    })))
}

/// Sets an account's commission plan (its buyer or manager, or an admin);
/// policies created later use it.
#[utoipa::path(put, path = "/v1/commission-plans/{buyer_id}", tag = "crm", request_body = CommissionPlan, security(("bearer" = [])),
    params(("buyer_id" = String, Path, description = "Buyer account")),
    responses(
        (status = 200, description = "Set", body = CommissionPlan),
        (status = 400, description = "Bad body or field", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "A seller or agent key", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
        (status = 503, description = "Not made durable", body = ErrorBody),
    ))]
pub(crate) async fn put_plan(
    State(state): State<AppState>,
    caller: Principal,
    Path(buyer_id): Path<String>,
    ApiJson(plan): ApiJson<CommissionPlan>,
) -> Result<Json<CommissionPlan>, ApiError> {
    caller.require_any(&[Role::Buyer, Role::Manager])?;
    caller.scope(&buyer_id, "account")?;
    if !state.admin.has_buyer(&buyer_id) {
        return Err(not_found("account"));
    }
    if plan.rules.len() > PLAN_RULES_MAX {
        return Err(ApiError::invalid("rules", "at most 10 rules"));
    }
    for (i, r) in plan.rules.iter().enumerate() {
        if r.first_year_bps > 10_000 || r.renewal_bps > 10_000 {
            return Err(ApiError::invalid(
                format!("rules[{i}]"),
                "rates must be at most 10000 (100 %)",
            ));
        }
        if let Some(p) = &r.payee {
            short_text(&format!("rules[{i}].payee"), p, 100)?;
        }
        if r.tier == CommissionTier::Affiliate && r.payee.is_none() {
            return Err(ApiError::invalid(
                format!("rules[{i}].payee"),
                "an affiliate rule names its payee",
            ));
        }
    }
    for (year, total) in [
        (
            "first_year_bps",
            plan.rules
                .iter()
                .map(|r| u64::from(r.first_year_bps))
                .sum::<u64>(),
        ),
        (
            "renewal_bps",
            plan.rules
                .iter()
                .map(|r| u64::from(r.renewal_bps))
                .sum::<u64>(),
        ),
    ] {
        if total > 10_000 {
            return Err(ApiError::invalid(
                "rules",
                format!("the {year} rates add up to more than 10000 (100 % of the premium)"),
            ));
        }
    }
    let turn = state.admin.begin().await;
    let before = state.admin.store.read(|s| s.plans.get(&buyer_id).cloned());
    let payload = AdminPayload::one(AdminChange::PlanSet {
        tenant: buyer_id.clone(),
        plan: plan.clone(),
    })
    .audited(audit::entry(
        &caller,
        "PUT /v1/commission-plans/{buyer_id}",
        format!("plan {buyer_id}"),
        before.as_ref(),
        Some(&plan),
    ));
    state.admin.commit(turn, payload).await?;
    Ok(Json(plan))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy(premium_cents: u64) -> Policy {
        Policy {
            id: "p".into(),
            tenant: "b".into(),
            lead_id: "l".into(),
            quote_id: "q".into(),
            carrier: "acme".into(),
            policy_number: "1".into(),
            premium_cents,
            effective_date: "2026-12-01".into(),
            agent_id: Some("a1".into()),
            created_at_ms: 0,
        }
    }

    fn rule(tier: CommissionTier, first_year_bps: u32, renewal_bps: u32) -> CommissionRule {
        CommissionRule {
            tier,
            payee: None,
            first_year_bps,
            renewal_bps,
        }
    }

    #[test]
    fn the_domain_example_pays_15_5_and_3_percent_then_renewals() {
        let mut affiliate = rule(CommissionTier::Affiliate, 300, 0);
        affiliate.payee = Some("partner".into());
        let plan = CommissionPlan {
            rules: vec![
                rule(CommissionTier::Broker, 1500, 1000),
                rule(CommissionTier::Manager, 500, 500),
                affiliate,
            ],
        };
        let payee = |t| match t {
            CommissionTier::Broker => Some("a1".to_string()),
            CommissionTier::Manager => Some("m1".to_string()),
            CommissionTier::Affiliate => None,
        };
        let first =
            compute_commissions(&plan, &policy(120_000), PolicyYear::FirstYear, payee, 5).unwrap();
        let amounts: Vec<_> = first
            .iter()
            .map(|c| (c.payee.as_str(), c.amount_cents))
            .collect();
        assert_eq!(
            amounts,
            vec![("a1", 18_000), ("m1", 6_000), ("partner", 3_600)]
        );
        let renewal =
            compute_commissions(&plan, &policy(120_001), PolicyYear::Renewal, payee, 5).unwrap();
        assert_eq!(
            renewal.iter().map(|c| c.amount_cents).collect::<Vec<_>>(),
            vec![12_000, 6_000, 0],
            "rounded down"
        );
        let no_manager = compute_commissions(&plan, &policy(1), PolicyYear::FirstYear, |_| None, 5);
        assert_eq!(no_manager.unwrap_err().field.as_deref(), Some("agent_id"));
    }

    proptest! {
        /// Each line is the exact floor of premium × rate, and the lines
        /// never add up to more than the plan's total rate gives.
        #[test]
        fn lines_are_exact_floors_and_never_exceed_the_total_rate(
            premium in 1u64..=MONEY_CENTS_MAX,
            rates in proptest::collection::vec(0u32..=3_000, 0..4),
        ) {
            let plan = CommissionPlan { rules: rates.iter().map(|r| CommissionRule { tier: CommissionTier::Affiliate, payee: Some("x".into()), first_year_bps: *r, renewal_bps: 0 }).collect() };
            let lines = compute_commissions(&plan, &policy(premium), PolicyYear::FirstYear, |_| None, 0).unwrap();
            let mut sum = 0u128;
            for (line, rate) in lines.iter().zip(&rates) {
                let exact = u128::from(premium) * u128::from(*rate);
                prop_assert!(u128::from(line.amount_cents) * 10_000 <= exact);
                prop_assert!(exact < (u128::from(line.amount_cents) + 1) * 10_000);
                sum += u128::from(line.amount_cents);
            }
            let total_rate: u128 = rates.iter().map(|r| u128::from(*r)).sum();
            prop_assert!(sum * 10_000 <= u128::from(premium) * total_rate);
        }
    }
}
