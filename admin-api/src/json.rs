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
