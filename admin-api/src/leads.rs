//! Purchased leads: the buyer's lead list and detail (contact PII only for
//! the buyer that bought the lead and for admins), returns, and the CRM
//! pipeline on a purchase (status, notes, contact attempts).

use crate::admin::{not_found, Principal};
use crate::audit;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::json::{ApiJson, ApiQuery};
use crate::keys::{generate_id, Role};
use crate::records::*;
use crate::store::{AdminChange, AdminPayload};
use crate::AppState;
use axum::extract::{Path, State};
use axum::Json;
use leadex_engine::event::MarketChange;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Longest note or free text, characters.
pub const TEXT_CHARS_MAX: usize = 2_000;

/// A lead as one account sees it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LeadView {
    /// Lead id.
    lead_id: String,
    /// Seller (admins only).
    #[serde(skip_serializing_if = "Option::is_none")]
    seller_id: Option<String>,
    /// Sale time, Unix ms.
    sold_at_ms: i64,
    /// Vertical.
    vertical: String,
    /// State.
    state: String,
    /// ZIP.
    zip: String,
    /// The non-PII attributes and consent, as posted.
    #[schema(value_type = Object)]
    attributes: serde_json::Value,
    /// Contact PII: only for the buyer that bought the lead, and admins.
    #[schema(value_type = Option<Object>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    contact: Option<serde_json::Value>,
    /// The caller's purchases of it (admins: all).
    purchases: Vec<Purchase>,
}

fn view(record: &LeadRecord, caller: &Principal) -> LeadView {
    let purchases: Vec<Purchase> = record
        .purchases
        .iter()
        .filter(|p| caller.sees(&p.buyer_id))
        .cloned()
        .collect();
    let a = &record.lead.ping.attributes;
    LeadView {
        lead_id: record.lead_id.clone(),
        seller_id: caller.is_admin().then(|| record.seller_id.clone()),
        sold_at_ms: record.sold_at_ms,
        vertical: wire_name(&a.vertical),
        state: a.state.as_str().to_string(),
        zip: a.zip.to_string(),
        attributes: serde_json::to_value(&record.lead.ping).unwrap_or_default(),
        // Agents and managers of the buying account work the lead, so
        // they see the contact too; sellers never reach here.
        contact: (!purchases.is_empty())
            .then(|| serde_json::to_value(&record.lead.contact).unwrap_or_default()),
        purchases,
    }
}

/// Lead list filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct LeadQuery {
    /// Only leads sold at or after, Unix ms.
    from_ms: Option<i64>,
    /// Only leads sold before, Unix ms.
    to_ms: Option<i64>,
    /// Only this vertical.
    vertical: Option<String>,
    /// Only this campaign's purchases.
    campaign_id: Option<String>,
    /// Only purchases in this status: new, contacted, quoted, bound, lost.
    #[param(value_type = Option<LeadStatus>)]
    status: Option<String>,
    /// Only returned (true) or kept (false) purchases.
    returned: Option<bool>,
    /// Only this account's (admins; tenant keys see their own only).
    buyer_id: Option<String>,
    /// Newest first, at most this many (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Only leads sold before this lead (the last id of the previous page).
    before: Option<String>,
}

/// A page of leads.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LeadPage {
    /// Leads, newest first.
    leads: Vec<LeadView>,
    /// Pass as `before` for the next page; absent on the last page.
    next_before: Option<String>,
}

/// Lists the leads the caller's account bought (admins: any account's).
#[utoipa::path(get, path = "/v1/leads", operation_id = "list_leads", tag = "leads", security(("bearer" = [])),
    params(LeadQuery),
    responses(
        (status = 200, description = "Leads, newest first", body = LeadPage),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "A seller key", body = ErrorBody),
        (status = 404, description = "Another account asked for", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Principal,
    query: ApiQuery<LeadQuery>,
) -> Result<Json<LeadPage>, ApiError> {
    caller.require_any(&[Role::Buyer, Role::Manager, Role::Agent])?;
    let q = query.0;
    let limit = crate::json::limit(q.limit)?;
    let account = caller.account(q.buyer_id.as_deref())?;
    let status: Option<LeadStatus> = q
        .status
        .as_deref()
        .map(|s| {
            crate::json::wire_enum(s).ok_or_else(|| {
                ApiError::invalid("status", "must be new, contacted, quoted, bound or lost")
            })
        })
        .transpose()?;
    // Parsed once, not per lead; a name that is no vertical matches nothing.
    let vertical: Option<Option<leadex_engine::lead::Vertical>> =
        q.vertical.as_ref().map(|v| crate::json::wire_enum(v));
    let page = state.admin.store.read(|s| {
        // A cursor naming a lead the caller cannot see is as unknown as one
        // naming no lead (an empty page): answering the page before it
        // would tell a foreign account that the lead exists, and lead ids
        // are sequential.
        let end = match &q.before {
            Some(b) => s
                .lead_order
                .iter()
                .rposition(|id| {
                    id == b
                        && s.leads
                            .get(id)
                            .is_some_and(|r| r.purchases.iter().any(|p| caller.sees(&p.buyer_id)))
                })
                .unwrap_or(0),
            None => s.lead_order.len(),
        };
        let mut leads = Vec::new();
        let mut last = None;
        for id in s.lead_order[..end].iter().rev() {
            let Some(r) = s.leads.get(id) else { continue };
            if q.from_ms.is_some_and(|f| r.sold_at_ms < f) {
                break; // sale order is time order
            }
            if q.to_ms.is_some_and(|t| r.sold_at_ms >= t) {
                continue;
            }
            if vertical.is_some_and(|want| want != Some(r.lead.ping.attributes.vertical)) {
                continue;
            }
            let matches = r.purchases.iter().any(|p| {
                account.as_ref().is_none_or(|a| &p.buyer_id == a)
                    && caller.sees(&p.buyer_id)
                    && q.campaign_id.as_ref().is_none_or(|c| &p.campaign_id == c)
                    && status.is_none_or(|st| p.status == st)
                    && q.returned.is_none_or(|ret| p.returned.is_some() == ret)
            });
            if !matches {
                continue;
            }
            if leads.len() == limit {
                last = leads.last().map(|l: &LeadView| l.lead_id.clone());
                break;
            }
            leads.push(view(r, &caller));
        }
        LeadPage {
            leads,
            next_before: last,
        }
    });
    Ok(Json(page))
}

/// The record of a lead the caller's account bought, else 404.
fn visible(state: &AppState, caller: &Principal, id: &str) -> Result<LeadRecord, ApiError> {
    let r = state
        .admin
        .store
        .lead(id)
        .ok_or_else(|| not_found("lead"))?;
    if r.purchases.iter().any(|p| caller.sees(&p.buyer_id)) {
        Ok(r)
    } else {
        Err(not_found("lead"))
    }
}

/// One lead the caller's account bought, with its CRM records.
#[utoipa::path(get, path = "/v1/leads/{id}", operation_id = "get_lead", tag = "leads", security(("bearer" = [])),
    params(("id" = String, Path, description = "Lead id")),
    responses(
        (status = 200, description = "The lead", body = LeadView),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "A seller key", body = ErrorBody),
        (status = 404, description = "No such lead bought by the account", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
    ))]
pub(crate) async fn get(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<String>,
) -> Result<Json<LeadView>, ApiError> {
    caller.require_any(&[Role::Buyer, Role::Manager, Role::Agent])?;
    Ok(Json(view(&visible(&state, &caller, &id)?, &caller)))
}

/// The purchase the caller acts on: its own account's (admins name the
/// account with `buyer_id`, needed only for shared leads).
pub(crate) fn purchase_of<'a>(
    record: &'a LeadRecord,
    caller: &Principal,
    buyer_id: Option<&str>,
) -> Result<&'a Purchase, ApiError> {
    let mut mine = record
        .purchases
        .iter()
        .filter(|p| caller.sees(&p.buyer_id) && buyer_id.is_none_or(|b| p.buyer_id == b));
    let first = mine.next().ok_or_else(|| not_found("lead"))?;
    if mine.next().is_some() {
        return Err(ApiError::invalid(
            "buyer_id",
            "the lead was shared: name the account",
        ));
    }
    Ok(first)
}

/// A return.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReturnRequest {
    /// Why.
    reason: ReturnReason,
    /// Free text (at most 2000 characters).
    #[serde(default)]
    #[schema(max_length = 2000)]
    note: String,
    /// The account returning (admins, for shared leads).
    #[serde(default)]
    buyer_id: Option<String>,
}

/// Returns a purchased lead: within the campaign's return window and under
/// its maximum return percentage, once. The price paid goes back to the
/// campaign's budget exactly, in the same journal record as the return.
#[utoipa::path(post, path = "/v1/leads/{id}/return", tag = "leads", request_body = ReturnRequest,
    security(("bearer" = [])), params(("id" = String, Path, description = "Lead id")),
    responses(
        (status = 200, description = "Returned; the budget is credited", body = Purchase),
        (status = 400, description = "Bad body or field", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "Not an admin or buyer key", body = ErrorBody),
        (status = 404, description = "No such lead bought by the account", body = ErrorBody),
        (status = 409, description = "Returned already, window closed, or the maximum return percentage reached", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
        (status = 503, description = "Not made durable", body = ErrorBody),
    ))]
pub(crate) async fn return_lead(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ReturnRequest>,
) -> Result<Json<Purchase>, ApiError> {
    caller.require_any(&[Role::Buyer])?;
    text("note", &req.note)?;
    let turn = state.admin.begin().await;
    let record = visible(&state, &caller, &id)?;
    let purchase = purchase_of(&record, &caller, req.buyer_id.as_deref())?.clone();
    if purchase.returned.is_some() {
        return Err(ApiError::new(
            ErrorCode::AlreadyReturned,
            "the lead was returned already",
        ));
    }
    let market = state.admin.engine.marketplace();
    let campaign = market
        .campaigns
        .iter()
        .find(|c| c.id == purchase.campaign_id);
    let (window_hours, max_bps) =
        campaign.map_or((0, 0), |c| (c.return_window_hours, c.return_max_bps));
    let now = state.admin.now_ms();
    if now >= record.sold_at_ms + i64::from(window_hours) * 3_600_000 {
        return Err(ApiError::new(
            ErrorCode::ReturnWindowClosed,
            format!("the return window of {window_hours} hours after the sale has closed"),
        ));
    }
    let tally = state.admin.store.read(|s| {
        s.tallies
            .get(&purchase.campaign_id)
            .copied()
            .unwrap_or_default()
    });
    // (returned + 1) / bought <= max_bps / 10000, in integers.
    if (tally.returned + 1) * 10_000 > tally.bought * u64::from(max_bps) {
        return Err(ApiError::new(
            ErrorCode::ReturnLimitReached,
            format!(
                "returns are limited to {}.{:02} % of the campaign's leads ({} of {} returned)",
                max_bps / 100,
                max_bps % 100,
                tally.returned,
                tally.bought
            ),
        ));
    }
    let lead_id = leadex_engine::LeadId::parse(&id).ok_or_else(|| not_found("lead"))?;
    let info = ReturnInfo {
        at_ms: now,
        reason: req.reason,
        note: req.note,
        credited_cents: purchase.price_cents,
    };
    let entry = LedgerEntry {
        id: generate_id("l_"),
        campaign_id: purchase.campaign_id.clone(),
        buyer_id: purchase.buyer_id.clone(),
        at_ms: now,
        kind: LedgerKind::Refund,
        amount_cents: purchase.price_cents as i64,
        lead_id: Some(id.clone()),
        actor: Some(caller.key.id.clone()),
    };
    let mut after = purchase.clone();
    after.returned = Some(info.clone());
    let payload = AdminPayload::one(AdminChange::Returned {
        lead_id: id.clone(),
        buyer_id: purchase.buyer_id.clone(),
        info,
        entry,
    })
    .audited(audit::entry(
        &caller,
        "POST /v1/leads/{id}/return",
        format!("lead {id}"),
        Some(&purchase),
        Some(&after),
    ));
    let change = MarketChange::Refund {
        campaign_id: purchase.campaign_id.clone(),
        lead_id,
        cents: purchase.price_cents,
    };
    state.admin.commit_market(turn, change, payload).await?;
    Ok(Json(after))
}

fn text(field: &str, value: &str) -> Result<(), ApiError> {
    if value.chars().count() > TEXT_CHARS_MAX {
        return Err(ApiError::invalid(field, "must be at most 2000 characters"));
    }
    Ok(())
}

/// A status change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StatusChange {
    /// New status: forward through new → contacted → quoted → bound, or
    /// lost from an open status, or contacted again after lost.
    status: LeadStatus,
    /// The account (admins, for shared leads).
    #[serde(default)]
    buyer_id: Option<String>,
}

/// Moves a purchase through the pipeline.
#[utoipa::path(post, path = "/v1/leads/{id}/status", tag = "leads", request_body = StatusChange,
    security(("bearer" = [])), params(("id" = String, Path, description = "Lead id")),
    responses(
        (status = 200, description = "Changed", body = Purchase),
        (status = 400, description = "Bad body or field", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "A seller key", body = ErrorBody),
        (status = 404, description = "No such lead bought by the account", body = ErrorBody),
        (status = 409, description = "Not a move the pipeline allows", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
        (status = 503, description = "Not made durable", body = ErrorBody),
    ))]
pub(crate) async fn set_status(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<StatusChange>,
) -> Result<Json<Purchase>, ApiError> {
    caller.require_any(&[Role::Buyer, Role::Manager, Role::Agent])?;
    let turn = state.admin.begin().await;
    let record = visible(&state, &caller, &id)?;
    let purchase = purchase_of(&record, &caller, req.buyer_id.as_deref())?.clone();
    if purchase.status == req.status {
        return Ok(Json(purchase));
    }
    if !purchase.status.may_become(req.status) {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!(
                "a lead cannot move from {} to {}",
                wire_name(&purchase.status),
                wire_name(&req.status)
            ),
        ));
    }
    let mut after = purchase.clone();
    after.status = req.status;
    let payload = AdminPayload::one(AdminChange::LeadStatus {
        lead_id: id.clone(),
        buyer_id: purchase.buyer_id.clone(),
        status: req.status,
    })
    .audited(audit::entry(
        &caller,
        "POST /v1/leads/{id}/status",
        format!("lead {id}"),
        Some(&purchase.status),
        Some(&req.status),
    ));
    state.admin.commit(turn, payload).await?;
    Ok(Json(after))
}

/// A note.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoteInput {
    /// Text, 1 to 2000 characters.
    #[schema(min_length = 1, max_length = 2000, pattern = "\\S")]
    text: String,
    /// The account (admins, for shared leads).
    #[serde(default)]
    buyer_id: Option<String>,
}

/// Adds a note to a purchase.
#[utoipa::path(post, path = "/v1/leads/{id}/notes", tag = "leads", request_body = NoteInput,
    security(("bearer" = [])), params(("id" = String, Path, description = "Lead id")),
    responses(
        (status = 201, description = "Added", body = Note),
        (status = 400, description = "Bad body or field", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "A seller key", body = ErrorBody),
        (status = 404, description = "No such lead bought by the account", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
        (status = 503, description = "Not made durable", body = ErrorBody),
    ))]
pub(crate) async fn add_note(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<NoteInput>,
) -> Result<(axum::http::StatusCode, Json<Note>), ApiError> {
    caller.require_any(&[Role::Buyer, Role::Manager, Role::Agent])?;
    if req.text.trim().is_empty() {
        return Err(ApiError::invalid("text", "must not be empty"));
    }
    text("text", &req.text)?;
    let turn = state.admin.begin().await;
    let record = visible(&state, &caller, &id)?;
    let purchase = purchase_of(&record, &caller, req.buyer_id.as_deref())?;
    let note = Note {
        id: generate_id("n_"),
        at_ms: state.admin.now_ms(),
        author: caller.key.id.clone(),
        text: req.text,
    };
    let payload = AdminPayload::one(AdminChange::NoteAdded {
        lead_id: id.clone(),
        buyer_id: purchase.buyer_id.clone(),
        note: note.clone(),
    })
    .audited(audit::entry(
        &caller,
        "POST /v1/leads/{id}/notes",
        format!("lead {id}"),
        None::<&()>,
        Some(&note),
    ));
    state.admin.commit(turn, payload).await?;
    Ok((axum::http::StatusCode::CREATED, Json(note)))
}

/// A contact attempt.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AttemptInput {
    /// Channel.
    channel: Channel,
    /// Outcome (`reached` moves a new lead to contacted).
    outcome: AttemptOutcome,
    /// Free text (at most 2000 characters).
    #[serde(default)]
    #[schema(max_length = 2000)]
    note: String,
    /// The account (admins, for shared leads).
    #[serde(default)]
    buyer_id: Option<String>,
}

/// Records a contact attempt on a purchase.
#[utoipa::path(post, path = "/v1/leads/{id}/attempts", tag = "leads", request_body = AttemptInput,
    security(("bearer" = [])), params(("id" = String, Path, description = "Lead id")),
    responses(
        (status = 201, description = "Recorded", body = ContactAttempt),
        (status = 400, description = "Bad body or field", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "A seller key", body = ErrorBody),
        (status = 404, description = "No such lead bought by the account", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
        (status = 503, description = "Not made durable", body = ErrorBody),
    ))]
pub(crate) async fn add_attempt(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<AttemptInput>,
) -> Result<(axum::http::StatusCode, Json<ContactAttempt>), ApiError> {
    caller.require_any(&[Role::Buyer, Role::Manager, Role::Agent])?;
    text("note", &req.note)?;
    let turn = state.admin.begin().await;
    let record = visible(&state, &caller, &id)?;
    let purchase = purchase_of(&record, &caller, req.buyer_id.as_deref())?;
    let attempt = ContactAttempt {
        id: generate_id("c_"),
        at_ms: state.admin.now_ms(),
        author: caller.key.id.clone(),
        channel: req.channel,
        outcome: req.outcome,
        note: req.note,
    };
    let payload = AdminPayload::one(AdminChange::AttemptAdded {
        lead_id: id.clone(),
        buyer_id: purchase.buyer_id.clone(),
        attempt: attempt.clone(),
    })
    .audited(audit::entry(
        &caller,
        "POST /v1/leads/{id}/attempts",
        format!("lead {id}"),
        None::<&()>,
        Some(&attempt),
    ));
    state.admin.commit(turn, payload).await?;
    Ok((axum::http::StatusCode::CREATED, Json(attempt)))
}
