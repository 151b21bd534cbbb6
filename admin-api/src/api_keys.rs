//! `/v1/keys`: create, list, revoke and rotate API keys (admin keys only).

use crate::admin::Principal;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::json::{ApiJson, ApiJsonOrDefault};
use crate::keys::{generate_id, generate_secret, ApiKey, Role, Tier};
use crate::store::{AdminChange, AdminPayload};
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Longest overlap of a rotation: the old key works this long at most.
pub const ROTATION_OVERLAP_S_MAX: u64 = 30 * 24 * 3600;
/// Overlap of a rotation when none is given: one day.
pub const ROTATION_OVERLAP_S_DEFAULT: u64 = 24 * 3600;
/// Longest key name.
pub const NAME_CHARS_MAX: usize = 100;

/// A new key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// A label for people, 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    pub name: String,
    /// What the key may do.
    pub role: Role,
    /// The account the key is bound to: required for every role but
    /// `admin`, refused for `admin`. A buyer id for `buyer`, `manager` and
    /// `agent` keys, a seller id for `seller` keys.
    #[schema(pattern = "^[A-Za-z0-9._-]+$", min_length = 1, max_length = 64)]
    pub tenant: Option<String>,
    /// Rate-limit tier (default `standard`: 120 requests per minute).
    #[serde(default)]
    pub tier: Tier,
}

/// A rotation.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    /// How long the old key keeps working, seconds (default 86400, at most
    /// 2592000).
    #[schema(maximum = 2592000)]
    pub overlap_seconds: Option<u64>,
}

/// A key as listed: never its secret nor its hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    /// Key id.
    pub id: String,
    /// Label.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Bound account.
    pub tenant: Option<String>,
    /// Creation, Unix ms.
    pub created_at_ms: i64,
    /// Revocation, Unix ms.
    pub revoked_at_ms: Option<i64>,
    /// End of validity (after a rotation), Unix ms.
    pub expires_at_ms: Option<i64>,
    /// Rate-limit tier.
    pub tier: Tier,
}

impl From<ApiKey> for KeyView {
    fn from(k: ApiKey) -> KeyView {
        KeyView {
            id: k.id,
            name: k.name,
            role: k.role,
            tenant: k.tenant,
            created_at_ms: k.created_at_ms,
            revoked_at_ms: k.revoked_at_ms,
            expires_at_ms: k.expires_at_ms,
            tier: k.tier,
        }
    }
}

/// A key just created: the only time its secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    /// The key.
    pub key: KeyView,
    /// The secret, shown once; send it as `Authorization: Bearer <secret>`.
    pub secret: String,
}

fn validate(admin: &crate::Admin, new: &NewKey) -> Result<(), ApiError> {
    validate_shape(new)?;
    if let Some(tenant) = &new.tenant {
        let exists = match new.role {
            Role::Seller => admin.has_seller(tenant),
            _ => admin.has_buyer(tenant),
        };
        if !exists {
            return Err(ApiError::invalid(
                "tenant",
                if new.role == Role::Seller {
                    "no such seller"
                } else {
                    "no such buyer"
                },
            ));
        }
    }
    Ok(())
}

fn validate_shape(new: &NewKey) -> Result<(), ApiError> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > NAME_CHARS_MAX {
        return Err(ApiError::invalid("name", "must be 1 to 100 characters"));
    }
    match (&new.tenant, new.role.is_tenant_bound()) {
        (None, true) => Err(ApiError::invalid(
            "tenant",
            "is required for this role (the account the key is bound to)",
        )),
        (Some(_), false) => Err(ApiError::invalid("tenant", "must be absent for admin keys")),
        (Some(t), true) if t.trim().is_empty() || t.len() > 200 => {
            Err(ApiError::invalid("tenant", "must be 1 to 200 characters"))
        }
        _ => Ok(()),
    }
}

/// A new key record for `new` (not yet journaled) and its secret.
pub(crate) fn new_key(
    now_ms: i64,
    name: String,
    role: Role,
    tenant: Option<String>,
    tier: Tier,
    secret: Option<String>,
) -> (ApiKey, String) {
    let (secret, secret_sha256) = match secret {
        Some(s) => {
            let hash = crate::keys::secret_hash(&s);
            (s, hash)
        }
        None => generate_secret(),
    };
    let key = ApiKey {
        id: generate_id("k_"),
        name,
        role,
        tenant,
        secret_sha256,
        created_at_ms: now_ms,
        revoked_at_ms: None,
        expires_at_ms: None,
        tier,
    };
    (key, secret)
}

/// Creates a key; its secret is in the answer and nowhere else.
#[utoipa::path(post, path = "/v1/keys", operation_id = "create_key", tag = "keys", request_body = NewKey,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = CreatedKey),
        (status = 400, description = "Bad body or field", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 503, description = "Not made durable", body = ErrorBody),
    ))]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Principal,
    ApiJson(new): ApiJson<NewKey>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let turn = state.admin.begin().await;
    validate(&state.admin, &new)?;
    let (key, secret) = new_key(
        state.admin.now_ms(),
        new.name.trim().to_owned(),
        new.role,
        new.tenant,
        new.tier,
        None,
    );
    let payload = AdminPayload::one(AdminChange::KeyCreated { key: key.clone() }).audited(
        crate::audit::entry(
            &caller,
            "POST /v1/keys",
            format!("key {}", key.id),
            None::<&()>,
            Some(&KeyView::from(key.clone())),
        ),
    );
    state.admin.commit(turn, payload).await?;
    let created = CreatedKey {
        key: key.into(),
        secret,
    };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// Lists every key (without secrets).
#[utoipa::path(get, path = "/v1/keys", operation_id = "list_keys", tag = "keys", security(("bearer" = [])),
    responses(
        (status = 200, description = "The keys", body = Vec<KeyView>),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Principal,
) -> Result<Json<Vec<KeyView>>, ApiError> {
    caller.require(Role::Admin)?;
    Ok(Json(
        state
            .admin
            .store
            .keys()
            .into_iter()
            .map(KeyView::from)
            .collect(),
    ))
}

fn find(state: &AppState, id: &str) -> Result<ApiKey, ApiError> {
    state
        .admin
        .store
        .key(id)
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no such key"))
}

/// Revokes a key at once (idempotent).
#[utoipa::path(delete, path = "/v1/keys/{id}", operation_id = "revoke_key", tag = "keys", security(("bearer" = [])),
    params(("id" = String, Path, description = "Key id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody),
        (status = 409, description = "The key making the request (revoke it with another admin key)", body = ErrorBody),
        (status = 503, description = "Not made durable", body = ErrorBody),
    ))]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Admin)?;
    let turn = state.admin.begin().await;
    let key = find(&state, &id)?;
    if key.id == caller.key.id {
        // Revoking the key in use would lock out an operator with one key.
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "this is the key making the request; revoke it with another admin key",
        ));
    }
    if key.revoked_at_ms.is_none() {
        let at_ms = state.admin.now_ms();
        let before = KeyView::from(key.clone());
        let payload = AdminPayload::one(AdminChange::KeyRevoked {
            id: id.clone(),
            at_ms,
        })
        .audited(crate::audit::entry(
            &caller,
            "DELETE /v1/keys/{id}",
            format!("key {id}"),
            Some(&before),
            None::<&KeyView>,
        ));
        state.admin.commit(turn, payload).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Rotates a key: a new key with the same name, role and tenant, and the
/// old one working for the overlap only (two keys valid meanwhile).
#[utoipa::path(post, path = "/v1/keys/{id}/rotate", operation_id = "rotate_key", tag = "keys",
    request_body(content = Option<Rotation>, description = "Optional: no body, an empty one or `null` is `{}` (the default overlap)"),
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Key id")),
    responses(
        (status = 201, description = "The new key", body = CreatedKey),
        (status = 400, description = "Bad body or field", body = ErrorBody),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 404, description = "No such key, or it no longer works", body = ErrorBody),
        (status = 503, description = "Not made durable", body = ErrorBody),
    ))]
pub(crate) async fn rotate(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<String>,
    ApiJsonOrDefault(rotation): ApiJsonOrDefault<Rotation>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let overlap = rotation
        .overlap_seconds
        .unwrap_or(ROTATION_OVERLAP_S_DEFAULT);
    if overlap > ROTATION_OVERLAP_S_MAX {
        return Err(ApiError::invalid(
            "overlap_seconds",
            "must be at most 2592000 (30 days)",
        ));
    }
    let turn = state.admin.begin().await;
    let old = find(&state, &id)?;
    let now = state.admin.now_ms();
    if !old.is_active(now) {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            "no such key (it is revoked or expired)",
        ));
    }
    let (key, secret) = new_key(now, old.name, old.role, old.tenant, old.tier, None);
    let at_ms = now + (overlap * 1000) as i64;
    // One record: the new key and the old key's end come together or not.
    let payload = AdminPayload {
        changes: vec![
            AdminChange::KeyCreated { key: key.clone() },
            AdminChange::KeyExpires {
                id: id.clone(),
                at_ms,
            },
        ],
        audit: None,
    }
    .audited(crate::audit::entry(
        &caller,
        "POST /v1/keys/{id}/rotate",
        format!("key {id}"),
        None::<&KeyView>,
        Some(&KeyView::from(key.clone())),
    ));
    state.admin.commit(turn, payload).await?;
    let created = CreatedKey {
        key: key.into(),
        secret,
    };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}
