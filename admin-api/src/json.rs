//! [`ApiJson`]: axum's JSON extractor with the admin API's errors, so a bad
//! body gets the same JSON error shape (and a stable code) as everything
//! else rather than axum's plain-text rejection.

use crate::error::{ApiError, ErrorCode};
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

/// A JSON request body of type `T`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(rejection_error(&rejection)),
        }
    }
}

fn rejection_error(rejection: &JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "the body must be JSON, sent with content-type: application/json",
        ),
        JsonRejection::JsonDataError(e) => {
            // serde's message names the path, e.g. "caps.daily: invalid type".
            ApiError::new(ErrorCode::InvalidJson, e.body_text())
        }
        JsonRejection::JsonSyntaxError(e) => ApiError::new(ErrorCode::InvalidJson, e.body_text()),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            ErrorCode::BodyTooLarge,
            "the body is larger than this server accepts (admin.body_limit_bytes)",
        ),
        other => ApiError::new(ErrorCode::InvalidJson, other.body_text()),
    }
}

/// Query parameters of type `T`, with the admin API's errors.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(ApiError::new(
                ErrorCode::InvalidField,
                rejection.body_text(),
            )),
        }
    }
}

/// Most items a list answers with.
pub const LIST_LIMIT_MAX: u32 = 1_000;

/// A list's `limit` parameter: 100 when absent, 1 to 1000.
pub fn limit(asked: Option<u32>) -> Result<usize, ApiError> {
    match asked.unwrap_or(100) {
        n @ 1..=LIST_LIMIT_MAX => Ok(n as usize),
        _ => Err(ApiError::invalid("limit", "must be 1 to 1000")),
    }
}
