//! The audit log: every mutation with its actor, time, route, and the
//! record before and after, carried in the same journal record as the
//! change itself; `GET /v1/audit` for admins.

use crate::admin::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::records::AuditEntry;
use crate::AppState;
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// An audit entry for a mutation by `caller` (its `id` and time are the
/// journal record's, set when it applies).
pub(crate) fn entry<B: Serialize + ?Sized, A: Serialize + ?Sized>(
    caller: &Principal,
    route: &str,
    target: String,
    before: Option<&B>,
    after: Option<&A>,
) -> AuditEntry {
    AuditEntry {
        id: String::new(),
        at_ms: 0,
        actor: caller.key.id.clone(),
        role: caller.key.role,
        tenant: caller.key.tenant.clone(),
        route: route.to_string(),
        target,
        before: before.and_then(|b| serde_json::to_value(b).ok()),
        after: after.and_then(|a| serde_json::to_value(a).ok()),
    }
}

/// Filters of the audit log.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditQuery {
    /// Only this actor (key id).
    actor: Option<String>,
    /// Only entries whose target starts with this, e.g. `campaign c1`.
    target: Option<String>,
    /// Only entries at or after, Unix ms.
    from_ms: Option<i64>,
    /// Newest first, at most this many (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// A page of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditPage {
    /// Entries, newest first.
    entries: Vec<AuditEntry>,
}

/// The audit log (admin keys only).
#[utoipa::path(get, path = "/v1/audit", operation_id = "list_audit", tag = "audit", security(("bearer" = [])),
    params(AuditQuery),
    responses(
        (status = 200, description = "Entries, newest first", body = AuditPage),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 429, description = "Rate limit", body = ErrorBody),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Principal,
    query: crate::json::ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    caller.require(crate::keys::Role::Admin)?;
    let q = query.0;
    let limit = crate::json::limit(q.limit)?;
    let entries = state.admin.store.read(|s| {
        s.audit
            .iter()
            .rev()
            .filter(|e| q.actor.as_ref().is_none_or(|a| &e.actor == a))
            .filter(|e| {
                q.target
                    .as_ref()
                    .is_none_or(|t| e.target.starts_with(t.as_str()))
            })
            .filter(|e| q.from_ms.is_none_or(|f| e.at_ms >= f))
            .take(limit)
            .cloned()
            .collect()
    });
    Ok(Json(AuditPage { entries }))
}
