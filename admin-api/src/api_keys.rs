//! `/v1/keys`: create, list, revoke and rotate API keys (admin keys only).

use crate::admin::Principal;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::json::ApiJson;
use crate::keys::{generate_id, generate_secret, ApiKey, Role};
use crate::store::AdminChange;
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
    pub name: String,
    /// What the key may do.
    pub role: Role,
    /// The account the key is bound to: required for every role but
    /// `admin`, refused for `admin`.
    pub tenant: Option<String>,
}

/// A rotation.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    /// How long the old key keeps working, seconds (default 86400, at most
    /// 2592000).
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

fn invalid(field: &str, message: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidField, message).with_field(field)
}

fn validate(new: &NewKey) -> Result<(), ApiError> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > NAME_CHARS_MAX {
        return Err(invalid("name", "must be 1 to 100 characters"));
    }
    match (&new.tenant, new.role.is_tenant_bound()) {
        (None, true) => Err(invalid(
            "tenant",
            "is required for this role (the account the key is bound to)",
        )),
        (Some(_), false) => Err(invalid("tenant", "must be absent for admin keys")),
        (Some(t), true) if t.trim().is_empty() || t.len() > 200 => {
            Err(invalid("tenant", "must be 1 to 200 characters"))
        }
        _ => Ok(()),
    }
}

/// Creates the key record for `new` and journals it; returns the secret.
pub(crate) async fn create_key(
    admin: &crate::Admin,
    name: String,
    role: Role,
    tenant: Option<String>,
    secret: Option<String>,
) -> Result<CreatedKey, ApiError> {
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
        created_at_ms: admin.now_ms(),
        revoked_at_ms: None,
        expires_at_ms: None,
    };
    admin
        .commit(AdminChange::KeyCreated { key: key.clone() })
        .await?;
    Ok(CreatedKey {
        key: key.into(),
        secret,
    })
}

/// Creates a key; its secret is in the answer and nowhere else.
#[utoipa::path(post, path = "/v1/keys", tag = "keys", request_body = NewKey,
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
    validate(&new)?;
    let created = create_key(
        &state.admin,
        new.name.trim().to_owned(),
        new.role,
        new.tenant,
        None,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// Lists every key (without secrets).
#[utoipa::path(get, path = "/v1/keys", tag = "keys", security(("bearer" = [])),
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
#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "keys", security(("bearer" = [])),
    params(("id" = String, Path, description = "Key id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "No valid key", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody),
        (status = 503, description = "Not made durable", body = ErrorBody),
    ))]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    caller: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Admin)?;
    let key = find(&state, &id)?;
    if key.revoked_at_ms.is_none() {
        let at_ms = state.admin.now_ms();
        state
            .admin
            .commit(AdminChange::KeyRevoked { id, at_ms })
            .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Rotates a key: a new key with the same name, role and tenant, and the
/// old one working for the overlap only (two keys valid meanwhile).
#[utoipa::path(post, path = "/v1/keys/{id}/rotate", tag = "keys", request_body = Rotation,
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
    ApiJson(rotation): ApiJson<Rotation>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let overlap = rotation
        .overlap_seconds
        .unwrap_or(ROTATION_OVERLAP_S_DEFAULT);
    if overlap > ROTATION_OVERLAP_S_MAX {
        return Err(invalid(
            "overlap_seconds",
            "must be at most 2592000 (30 days)",
        ));
    }
    let old = find(&state, &id)?;
    let now = state.admin.now_ms();
    if !old.is_active(now) {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            "no such key (it is revoked or expired)",
        ));
    }
    let created = create_key(&state.admin, old.name, old.role, old.tenant, None).await?;
    let at_ms = now + (overlap * 1000) as i64;
    state
        .admin
        .commit(AdminChange::KeyExpires { id, at_ms })
        .await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}
