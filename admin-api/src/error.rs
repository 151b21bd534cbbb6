//! Errors of the admin API: a stable `code`, a message for people, and the
//! offending `field` when there is one, in the same JSON shape as the seller
//! API's errors: `{"error":{"code":"…","message":"…","field":"…"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// Stable error codes. Clients branch on these; messages may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the body is not JSON, or not the JSON the route takes.
    InvalidJson,
    /// 400: a field has a wrong value (see `field`).
    InvalidField,
    /// 401: no key, or an unknown or revoked key.
    Unauthorized,
    /// 403: the key's role may not use this route.
    Forbidden,
    /// 404: no such route, or no such record visible to the caller.
    NotFound,
    /// 409: the record exists already, or is in a state that refuses the
    /// change (the message says which).
    Conflict,
    /// 409: the lead's return window has closed.
    ReturnWindowClosed,
    /// 409: the campaign's maximum return percentage is reached.
    ReturnLimitReached,
    /// 409: the lead was returned already.
    AlreadyReturned,
    /// 409: another change of the assignment is being stored; retry.
    AssignmentBusy,
    /// 409: the assignment is not offered (accept, reject) or not open
    /// (close); the message says its status.
    AssignmentNotOffered,
    /// 409: the assignment is offered to or held by another agent than the
    /// one named.
    WrongAgent,
    /// 503: a bounded store of the server is full (open assignments);
    /// retry later.
    Overloaded,
    /// 405: the route exists but not with this method.
    MethodNotAllowed,
    /// 413: the body is larger than `admin.body_limit_bytes`.
    BodyTooLarge,
    /// 415: the body is not `application/json`.
    UnsupportedMediaType,
    /// 429: the key's rate limit is spent; see `Retry-After`.
    RateLimited,
    /// 503: the change could not be made durable; nothing changed.
    PersistenceUnavailable,
    /// 503: the request did not finish within `admin.request_timeout_ms`.
    Timeout,
    /// 500: a bug; logged with the request.
    Internal,
}

impl ErrorCode {
    /// Every code, for documentation and tests.
    pub const ALL: [ErrorCode; 20] = [
        ErrorCode::Conflict,
        ErrorCode::ReturnWindowClosed,
        ErrorCode::ReturnLimitReached,
        ErrorCode::AlreadyReturned,
        ErrorCode::AssignmentBusy,
        ErrorCode::AssignmentNotOffered,
        ErrorCode::WrongAgent,
        ErrorCode::Overloaded,
        ErrorCode::InvalidJson,
        ErrorCode::InvalidField,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::PersistenceUnavailable,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::BodyTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::RateLimited,
        ErrorCode::Timeout,
        ErrorCode::Internal,
    ];

    /// The HTTP status of the code.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::InvalidJson | ErrorCode::InvalidField => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::PersistenceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::Conflict
            | ErrorCode::ReturnWindowClosed
            | ErrorCode::ReturnLimitReached
            | ErrorCode::AlreadyReturned
            | ErrorCode::AssignmentBusy
            | ErrorCode::AssignmentNotOffered
            | ErrorCode::WrongAgent => StatusCode::CONFLICT,
            ErrorCode::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// Stable code.
    pub code: ErrorCode,
    /// For people.
    pub message: String,
    /// The offending field (a JSON path such as `caps.daily.leads`).
    pub field: Option<String>,
    /// Seconds to wait, sent as `Retry-After` (rate limits).
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    /// An error without a field.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            field: None,
            retry_after_s: None,
        }
    }

    /// 400 `invalid_field` naming `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::InvalidField, message).with_field(field)
    }

    /// Names the offending field.
    pub fn with_field(mut self, field: impl Into<String>) -> ApiError {
        self.field = Some(field.into());
        self
    }
}

/// The JSON body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable code.
    pub code: ErrorCode,
    /// For people.
    pub message: String,
    /// The offending field, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                field: self.field,
            },
        };
        let mut response = (self.code.status(), axum::Json(body)).into_response();
        if let Some(s) = self.retry_after_s {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(s),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let s = serde_json::to_value(code).unwrap();
            let s = s.as_str().unwrap().to_owned();
            assert!(
                s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{s}"
            );
            assert!(seen.insert(s));
            assert!(code.status().is_client_error() || code.status().is_server_error());
        }
    }
}
