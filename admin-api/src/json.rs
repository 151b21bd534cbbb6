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

/// A JSON request body of type `T` that may be left out, for bodies whose
/// every field is optional: no body (with or without a content type) and
/// the JSON `null` are `T::default()`. A body that is sent is read as
/// [`ApiJson`] reads it, with the same errors. Declare it in the OpenAPI
/// document as `request_body(content = Option<T>)`: not required, `null`
/// or `T`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJsonOrDefault<T>(pub T);

impl<T, S> FromRequest<S> for ApiJsonOrDefault<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let head = parts.clone();
        let bytes = axum::body::Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    too_large()
                } else {
                    ApiError::new(ErrorCode::InvalidJson, rejection.body_text())
                }
            })?;
        if bytes.is_empty() {
            return Ok(ApiJsonOrDefault(T::default()));
        }
        let req = Request::from_parts(head, axum::body::Body::from(bytes));
        let ApiJson(value) = ApiJson::<Option<T>>::from_request(req, state).await?;
        Ok(ApiJsonOrDefault(value.unwrap_or_default()))
    }
}

fn too_large() -> ApiError {
    ApiError::new(
        ErrorCode::BodyTooLarge,
        "the body is larger than this server accepts (admin.body_limit_bytes)",
    )
}

fn rejection_error(rejection: &JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "the body must be JSON, sent with content-type: application/json",
        ),
        JsonRejection::JsonDataError(e) => data_error(e),
        JsonRejection::JsonSyntaxError(e) => ApiError::new(ErrorCode::InvalidJson, e.body_text()),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => too_large(),
        other => ApiError::new(ErrorCode::InvalidJson, other.body_text()),
    }
}

/// A body that is JSON but not of the expected shape. When serde names
/// the member at fault (a wrong type or value at `caps.daily.leads`, or a
/// missing member), the answer is `invalid_field` with that `field`, as the
/// server's own validation answers; otherwise `invalid_json`.
fn data_error(e: &axum::extract::rejection::JsonDataError) -> ApiError {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(p) = s.downcast_ref::<serde_path_to_error::Error<serde_json::Error>>() {
            let mut message = p.inner().to_string();
            // serde_json appends " at line L column C": not for people here.
            if let Some(at) = message.rfind(" at line ") {
                message.truncate(at);
            }
            let path = p.path().to_string();
            let parent = (path != ".").then_some(path);
            // A missing member is reported at its parent: name the member.
            let missing = message
                .strip_prefix("missing field `")
                .and_then(|m| m.strip_suffix('`'));
            let (field, message) = match (parent, missing) {
                (Some(parent), Some(name)) => {
                    let field = format!("{parent}.{name}");
                    (field.clone(), format!("{field} is required"))
                }
                (None, Some(name)) => (name.to_string(), format!("{name} is required")),
                (Some(parent), None) => (parent.clone(), format!("{parent}: {message}")),
                (None, None) => return ApiError::new(ErrorCode::InvalidJson, message),
            };
            return ApiError::new(ErrorCode::InvalidField, message).with_field(field);
        }
        source = s.source();
    }
    ApiError::new(ErrorCode::InvalidJson, e.body_text())
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

/// The enum `T` a query parameter names by its wire name (serde's name),
/// if it names one.
pub fn wire_enum<T: DeserializeOwned>(name: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).ok()
}

/// A list's `limit` parameter: 100 when absent, 1 to 1000.
pub fn limit(asked: Option<u32>) -> Result<usize, ApiError> {
    match asked.unwrap_or(100) {
        n @ 1..=LIST_LIMIT_MAX => Ok(n as usize),
        _ => Err(ApiError::invalid("limit", "must be 1 to 1000")),
    }
}
