//! Lead routing through the admin API: an agency's routing policy
//! (`/v1/agencies/{id}/routing`, the engine's `AgencySpec`) and the
//! assignments of leads to its agents (`/v1/assignments`): the list, one
//! assignment with its history, and the agent's answers (accept, reject,
//! close).
//!
//! A transition is the engine's decision (`Engine::decide_assignment`:
//! the next agent's capacity reserved by compare-and-swap), journaled as
//! an `Event::Routing` record and answered only once it is durable, the
//! engine has committed it and the store has applied it. Tenancy is
//! checked on the store's record first: another account's assignment is
//! 404, as one that does not exist.

use crate::admin::{not_found, Principal};
use crate::audit;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::json::{ApiJson, ApiJsonOrDefault, ApiQuery};
use crate::keys::Role;
use crate::market::preview;
use crate::records::*;
use crate::store::AdminPayload;
use crate::AppState;
use axum::extract::{Path, State};
use axum::Json;
use leadex_engine::event::MarketChange;
use leadex_engine::routing::assign::{Action, AssignmentId, RoutingError};
use leadex_engine::routing::spec::{AgencySpec, Strategy, Weights};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// The roles of an account that work its assignments (admins always may).
const ACCOUNT_ROLES: &[Role] = &[Role::Buyer, Role::Manager, Role::Agent];

// ----------------------------------------------------------- the policy

/// The account `id` when it exists and the caller may manage it (buyer or
/// manager key of it, or an admin); else 404 or 403.
fn agency_of(state: &AppState, caller: &Principal, id: &str) -> Result<(), ApiError> {
    caller.require_any(&[Role::Buyer, Role::Manager])?;
    caller.scope(id, "account")?;
    if !state.admin.has_buyer(id) {
        return Err(not_found("account"));
    }
    Ok(())
}

/// The policy in force for agency `id`, or the defaults.
fn policy_in_force(state: &AppState, id: &str) -> AgencySpec {
    state
        .admin
        .engine
        .router()
        .spec()
        .agencies
        .iter()
        .find(|a| a.id == id)
        .cloned()
        .unwrap_or_else(|| AgencySpec::default_for(id))
}

/// An agency's routing policy. Every member may be left out: the default
/// is used (the policy is replaced whole).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AgencyRoutingInput {
    /// How the agent is picked among those that pass the hard rules
    /// (default `weighted`).
    #[serde(default)]
    strategy: Strategy,
    /// Points per factor (members left out take their defaults).
    #[serde(default)]
    weights: Weights,
    /// Distance at which the distance factor reaches 0, km (1 to 5000;
    /// default 500).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 5000)]
    distance_max_km: Option<u32>,
    /// Seconds an agent has to accept an offer (10 to 86400; default 300).
    #[serde(default)]
    #[schema(minimum = 10, maximum = 86400)]
    offer_timeout_s: Option<u32>,
    /// Failed offers (rejected or expired) before the lead goes to the
    /// manager (1 to 20; default 3).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 20)]
    escalate_after: Option<u8>,
    /// Campaigns of the account whose leads are routed to its agents after
    /// the sale, or `*` for every campaign of the account (default none).
    #[serde(default)]
    #[schema(max_items = 1000)]
    route_campaigns: Vec<String>,
}

/// Whether campaign `campaign_id` exists and is bought by account
/// `account` (by it, or by an account below it: a sale is routed to the
/// agency of the buyer's top-level account).
fn campaign_of_account(state: &AppState, account: &str, campaign_id: &str) -> bool {
    let market = state.admin.engine.marketplace();
    let Some(campaign) = market.campaigns.iter().find(|c| c.id == campaign_id) else {
        return false;
    };
    let mut buyer = campaign.buyer_id.as_str();
    // Bounded: parent chains are acyclic (the marketplace validates it),
    // and no longer than the number of buyers.
    for _ in 0..=market.buyers.len() {
        if buyer == account {
            return true;
        }
        match market
            .buyers
            .iter()
            .find(|b| b.id == buyer)
            .and_then(|b| b.parent_id.as_deref())
        {
            Some(parent) => buyer = parent,
            None => return false,
        }
    }
    false
}

/// The routing policy of an agency (a buyer account): the one in force,
/// or the defaults when none was set.
#[utoipa::path(get, path = "/v1/agencies/{id}/routing", operation_id = "get_agency_routing",
    tag = "routing", security(("bearer" = [])),
    params(("id" = String, Path, description = "Buyer account id")),
    responses(
        (status = 200, description = "The policy in force", body = AgencySpec),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "Not an admin, buyer or manager key", body = ErrorBody),
        (status = 404, description = "No such account visible to the caller", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
    ))]
pub(crate) async fn get_routing(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<String>,
) -> Result<Json<AgencySpec>, ApiError> {
    agency_of(&state, &caller, &id)?;
    Ok(Json(policy_in_force(&state, &id)))
}

/// Sets the routing policy of an agency (admin, or buyer or manager of the
/// account): the next lead routed for it uses it.
#[utoipa::path(put, path = "/v1/agencies/{id}/routing", operation_id = "put_agency_routing",
    tag = "routing", request_body = AgencyRoutingInput, security(("bearer" = [])),
    params(("id" = String, Path, description = "Buyer account id")),
    responses(
        (status = 200, description = "Stored; in force", body = AgencySpec),
        (status = 400, description = "Bad body or field", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "Not an admin, buyer or manager key", body = ErrorBody),
        (status = 404, description = "No such account visible to the caller", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
        (status = 503, description = "Not made durable", body = ErrorBody),
    ))]
pub(crate) async fn put_routing(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<AgencyRoutingInput>,
) -> Result<Json<AgencySpec>, ApiError> {
    agency_of(&state, &caller, &id)?;
    let defaults = AgencySpec::default_for(&id);
    let spec = AgencySpec {
        id: id.clone(),
        strategy: input.strategy,
        weights: input.weights,
        distance_max_km: input.distance_max_km.unwrap_or(defaults.distance_max_km),
        offer_timeout_s: input.offer_timeout_s.unwrap_or(defaults.offer_timeout_s),
        escalate_after: input.escalate_after.unwrap_or(defaults.escalate_after),
        route_campaigns: input.route_campaigns,
    };
    let turn = state.admin.begin().await;
    for (i, c) in spec.route_campaigns.iter().enumerate() {
        if c != "*" && !campaign_of_account(&state, &id, c) {
            return Err(ApiError::invalid(
                format!("route_campaigns[{i}]"),
                "no such campaign in the account (name a campaign id, or *)",
            ));
        }
    }
    let change = MarketChange::PutAgency(spec.clone());
    preview(&state, &change)?;
    let before = policy_in_force(&state, &id);
    let payload = AdminPayload::default().audited(audit::entry(
        &caller,
        "PUT /v1/agencies/{id}/routing",
        format!("agency {id}"),
        Some(&before),
        Some(&spec),
    ));
    state.admin.commit_market(turn, change, payload).await?;
    Ok(Json(spec))
}

// ---------------------------------------------------------- assignments

/// Assignment list filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AssignmentQuery {
    /// Only this account's (admins; tenant keys see their own only).
    buyer_id: Option<String>,
    /// Only in this status: offered, accepted, unassigned, closed.
    #[param(value_type = Option<AssignmentStatus>)]
    status: Option<String>,
    /// Only those offered to or held by this agent (a closed one: held
    /// last).
    agent_id: Option<String>,
    /// Only the assignment of this lead.
    lead_id: Option<String>,
    /// Newest first, at most this many (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Only assignments created before this one (the last id of the
    /// previous page).
    before: Option<String>,
}

/// A page of assignments.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AssignmentPage {
    /// Assignments, newest first.
    assignments: Vec<Assignment>,
    /// Pass as `before` for the next page; absent on the last page.
    next_before: Option<String>,
}

/// Lists the assignments of the caller's account (admins: any account's).
#[utoipa::path(get, path = "/v1/assignments", operation_id = "list_assignments", tag = "routing",
    security(("bearer" = [])), params(AssignmentQuery),
    responses(
        (status = 200, description = "Assignments, newest first", body = AssignmentPage),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "A seller key", body = ErrorBody),
        (status = 404, description = "Another account asked for", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Principal,
    query: ApiQuery<AssignmentQuery>,
) -> Result<Json<AssignmentPage>, ApiError> {
    caller.require_any(ACCOUNT_ROLES)?;
    let q = query.0;
    let limit = crate::json::limit(q.limit)?;
    let account = caller.account(q.buyer_id.as_deref())?;
    let status: Option<AssignmentStatus> = q
        .status
        .as_deref()
        .map(|s| {
            crate::json::wire_enum(s).ok_or_else(|| {
                ApiError::invalid("status", "must be offered, accepted, unassigned or closed")
            })
        })
        .transpose()?;
    let page = state.admin.store.read(|s| {
        // A cursor naming an assignment the caller cannot see is as
        // unknown as one naming none (an empty page), so that a foreign
        // account cannot tell which ids exist.
        let end = match &q.before {
            Some(b) => match s.assignments.get(b).filter(|a| caller.sees(&a.tenant)) {
                Some(a) => Some((a.created_at_ms, a.id.clone())),
                None => {
                    return AssignmentPage {
                        assignments: Vec::new(),
                        next_before: None,
                    }
                }
            },
            None => None,
        };
        let older = match &end {
            Some(end) => s.assignment_order.range(..end.clone()),
            None => s.assignment_order.range(..),
        };
        let mut assignments: Vec<Assignment> = Vec::new();
        let mut last = None;
        for (_, id) in older.rev() {
            let Some(a) = s.assignments.get(id) else {
                continue;
            };
            let matches = caller.sees(&a.tenant)
                && account.as_ref().is_none_or(|t| &a.tenant == t)
                && status.is_none_or(|st| a.status == st)
                && q.agent_id
                    .as_ref()
                    .is_none_or(|x| a.agent_id.as_ref() == Some(x))
                && q.lead_id
                    .as_ref()
                    .is_none_or(|x| a.lead_id.as_ref() == Some(x));
            if !matches {
                continue;
            }
            if assignments.len() == limit {
                last = assignments.last().map(|a| a.id.clone());
                break;
            }
            assignments.push(a.clone());
        }
        AssignmentPage {
            assignments,
            next_before: last,
        }
    });
    Ok(Json(page))
}

/// The store's record of assignment `id` if the caller sees its account,
/// else 404 (for a malformed id too).
fn visible(state: &AppState, caller: &Principal, id: &str) -> Result<Assignment, ApiError> {
    AssignmentId::parse(id).ok_or_else(|| not_found("assignment"))?;
    let a = state
        .admin
        .store
        .assignment(id)
        .ok_or_else(|| not_found("assignment"))?;
    caller.scope(&a.tenant, "assignment")?;
    Ok(a)
}

/// One assignment with its history.
#[utoipa::path(get, path = "/v1/assignments/{id}", operation_id = "get_assignment", tag = "routing",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Assignment id")),
    responses(
        (status = 200, description = "The assignment", body = Assignment),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "A seller key", body = ErrorBody),
        (status = 404, description = "No such assignment", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
    ))]
pub(crate) async fn get(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<String>,
) -> Result<Json<Assignment>, ApiError> {
    caller.require_any(ACCOUNT_ROLES)?;
    Ok(Json(visible(&state, &caller, &id)?))
}

/// Who answers: the agent, when the caller names it (then the assignment
/// must be offered to or held by that agent).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Decision {
    /// The agent answering (an agent id of the account).
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9._-]+$", min_length = 1, max_length = 64)]
    agent_id: Option<String>,
}

/// What a route does to the assignment.
#[derive(Debug, Clone, Copy)]
enum Answer {
    Accept,
    Reject,
    Close,
}

/// A routing refusal as an API error.
fn routing_error(e: RoutingError) -> ApiError {
    let code = match e {
        RoutingError::NotFound => ErrorCode::NotFound,
        RoutingError::Busy => ErrorCode::AssignmentBusy,
        RoutingError::NotOffered(_) => ErrorCode::AssignmentNotOffered,
        RoutingError::WrongAgent => ErrorCode::WrongAgent,
        RoutingError::Overloaded(_) => ErrorCode::Overloaded,
        // Not answers of a decision (routing a new lead only).
        RoutingError::UnknownAgency | RoutingError::BadTier => ErrorCode::Conflict,
    };
    let message = match e {
        RoutingError::NotFound => "no such open assignment".to_string(),
        other => other.to_string(),
    };
    ApiError::new(code, message)
}

async fn decide(
    state: AppState,
    caller: Principal,
    id: String,
    answer: Answer,
    decision: Decision,
) -> Result<Json<Assignment>, ApiError> {
    caller.require_any(ACCOUNT_ROLES)?;
    let known = visible(&state, &caller, &id)?;
    let assignment_id = AssignmentId::parse(&id).ok_or_else(|| not_found("assignment"))?;
    if let Some(agent) = &decision.agent_id {
        leadex_engine::spec::check_id("agent_id".into(), agent)
            .map_err(crate::market::spec_error)?;
    }
    if !known.status.is_open() {
        return Err(ApiError::new(
            ErrorCode::AssignmentNotOffered,
            format!("the assignment is {}", wire_name(&known.status)),
        ));
    }
    let named = decision.agent_id.as_deref();
    let engine = &state.admin.engine;
    let action = match answer {
        Answer::Accept => Action::Accept(named),
        Answer::Reject => Action::Reject(named),
        // The engine checks the named agent under the assignment's lock.
        Answer::Close => Action::Close(named),
    };
    let ticket = engine
        .decide_assignment(assignment_id, action)
        .map_err(routing_error)?;
    state.admin.commit_routing(ticket).await?;
    let after = state
        .admin
        .store
        .assignment(&id)
        .ok_or_else(|| not_found("assignment"))?;
    Ok(Json(after))
}

/// The offered agent accepts the assignment (a buyer, manager or agent key
/// of the account, or an admin).
#[utoipa::path(post, path = "/v1/assignments/{id}/accept", operation_id = "accept_assignment",
    tag = "routing", security(("bearer" = [])),
    request_body(content = Option<Decision>, description = "Optional: the agent answering; no body, `null` or `{}` answers for the agent it is offered to"),
    params(("id" = String, Path, description = "Assignment id")),
    responses(
        (status = 200, description = "Accepted", body = Assignment),
        (status = 400, description = "Bad body or field", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "A seller key", body = ErrorBody),
        (status = 404, description = "No such assignment", body = ErrorBody),
        (status = 409, description = "Not offered (assignment_not_offered), offered to another agent (wrong_agent), or another change is being stored (assignment_busy)", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
        (status = 503, description = "Not made durable", body = ErrorBody),
    ))]
pub(crate) async fn accept(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<String>,
    ApiJsonOrDefault(decision): ApiJsonOrDefault<Decision>,
) -> Result<Json<Assignment>, ApiError> {
    decide(state, caller, id, Answer::Accept, decision).await
}

/// The offered agent rejects the assignment: it is offered to the next
/// candidate (or to the manager after the agency's `escalate_after`
/// failed offers), or unassigned when none is left.
#[utoipa::path(post, path = "/v1/assignments/{id}/reject", operation_id = "reject_assignment",
    tag = "routing", security(("bearer" = [])),
    request_body(content = Option<Decision>, description = "Optional: the agent answering; no body, `null` or `{}` answers for the agent it is offered to"),
    params(("id" = String, Path, description = "Assignment id")),
    responses(
        (status = 200, description = "Rejected; offered on or unassigned", body = Assignment),
        (status = 400, description = "Bad body or field", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "A seller key", body = ErrorBody),
        (status = 404, description = "No such assignment", body = ErrorBody),
        (status = 409, description = "Not offered (assignment_not_offered), offered to another agent (wrong_agent), or another change is being stored (assignment_busy)", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
        (status = 503, description = "Not made durable, or routing is at capacity (overloaded)", body = ErrorBody),
    ))]
pub(crate) async fn reject(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<String>,
    ApiJsonOrDefault(decision): ApiJsonOrDefault<Decision>,
) -> Result<Json<Assignment>, ApiError> {
    decide(state, caller, id, Answer::Reject, decision).await
}

/// Closes an open assignment (worked, or withdrawn while offered): the
/// agent's capacity is given back.
#[utoipa::path(post, path = "/v1/assignments/{id}/close", operation_id = "close_assignment",
    tag = "routing", security(("bearer" = [])),
    request_body(content = Option<Decision>, description = "Optional: the agent closing it (must be the one holding it); no body, `null` or `{}` closes it for whoever holds it"),
    params(("id" = String, Path, description = "Assignment id")),
    responses(
        (status = 200, description = "Closed", body = Assignment),
        (status = 400, description = "Bad body or field", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "A seller key", body = ErrorBody),
        (status = 404, description = "No such assignment", body = ErrorBody),
        (status = 409, description = "Not open (assignment_not_offered), held by another agent (wrong_agent), or another change is being stored (assignment_busy)", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
        (status = 503, description = "Not made durable", body = ErrorBody),
    ))]
pub(crate) async fn close(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<String>,
    ApiJsonOrDefault(decision): ApiJsonOrDefault<Decision>,
) -> Result<Json<Assignment>, ApiError> {
    decide(state, caller, id, Answer::Close, decision).await
}
