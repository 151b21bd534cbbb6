//! Error codes of the seller API and the one error type of this crate.
//!
//! A code is a stable, machine-readable contract: sellers branch on it, so
//! codes are only ever added, never renamed. The message is for humans and
//! may change; internal details never go into it (they belong in the log).

use crate::write::write_json_str;
use std::borrow::Cow;
use std::fmt;

/// Every error the seller API can answer, with its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The body is not JSON, not an object, too deeply nested, or not UTF-8.
    InvalidJson,
    /// A required field is absent (or `null`).
    MissingField,
    /// A field has the wrong type, is out of range, or contradicts another.
    InvalidField,
    /// A key this API version does not know.
    UnknownField,
    /// The body is over the size limit.
    BodyTooLarge,
    /// `Content-Type` is not `application/json`.
    UnsupportedMediaType,
    /// No valid `Authorization: Bearer <key>`.
    Unauthorized,
    /// The key may not use this route.
    Forbidden,
    /// No such route.
    NotFound,
    /// The route exists but not for this method.
    MethodNotAllowed,
    /// The post names a ping the exchange does not hold for this seller.
    PingNotFound,
    /// The ping's price lock is over.
    PingExpired,
    /// The ping was already posted.
    PingAlreadyUsed,
    /// The post's attributes differ from its ping's.
    PostMismatch,
    /// Every accepted buyer already bought this consumer in its dedupe window.
    DuplicateLead,
    /// No accepted bid can still be honoured.
    BidUnavailable,
    /// The exchange is at capacity; retry with backoff.
    Overloaded,
    /// The sale could not be made durable; nothing was charged.
    PersistenceUnavailable,
    /// The request did not arrive, or could not be answered, in time.
    Timeout,
    /// A bug on our side; details are in the exchange's log.
    Internal,
}

impl ErrorCode {
    /// Every code, in documentation order.
    pub const ALL: [ErrorCode; 20] = [
        ErrorCode::InvalidJson,
        ErrorCode::MissingField,
        ErrorCode::InvalidField,
        ErrorCode::UnknownField,
        ErrorCode::BodyTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::PingNotFound,
        ErrorCode::PingExpired,
        ErrorCode::PingAlreadyUsed,
        ErrorCode::PostMismatch,
        ErrorCode::DuplicateLead,
        ErrorCode::BidUnavailable,
        ErrorCode::Overloaded,
        ErrorCode::PersistenceUnavailable,
        ErrorCode::Timeout,
        ErrorCode::Internal,
    ];

    /// The stable snake_case code, e.g. `"missing_field"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::MissingField => "missing_field",
            ErrorCode::InvalidField => "invalid_field",
            ErrorCode::UnknownField => "unknown_field",
            ErrorCode::BodyTooLarge => "body_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::PingNotFound => "ping_not_found",
            ErrorCode::PingExpired => "ping_expired",
            ErrorCode::PingAlreadyUsed => "ping_already_used",
            ErrorCode::PostMismatch => "post_mismatch",
            ErrorCode::DuplicateLead => "duplicate_lead",
            ErrorCode::BidUnavailable => "bid_unavailable",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::PersistenceUnavailable => "persistence_unavailable",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Internal => "internal",
        }
    }

    /// Parses a code from [`ErrorCode::as_str`] form.
    pub fn parse(code: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == code)
    }

    /// The HTTP status that carries this code.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidJson
            | ErrorCode::MissingField
            | ErrorCode::InvalidField
            | ErrorCode::UnknownField => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound | ErrorCode::PingNotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::PingAlreadyUsed | ErrorCode::DuplicateLead | ErrorCode::BidUnavailable => {
                409
            }
            ErrorCode::PingExpired => 410,
            ErrorCode::BodyTooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::PostMismatch => 422,
            ErrorCode::Internal => 500,
            ErrorCode::Overloaded | ErrorCode::PersistenceUnavailable | ErrorCode::Timeout => 503,
        }
    }

    /// True when the same request may succeed if sent again later (after a
    /// backoff): the fault is the exchange's load or storage, not the request.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::Overloaded | ErrorCode::PersistenceUnavailable | ErrorCode::Timeout
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused request: a stable code, a human message, and the field at fault
/// (a dotted path such as `contact.phone`) when there is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ProtocolError {
    /// Machine-readable code; decides the HTTP status.
    pub code: ErrorCode,
    /// Human-readable explanation, safe to show to the seller.
    pub message: String,
    /// The field at fault, as a dotted path.
    pub field: Option<Cow<'static, str>>,
}

impl ProtocolError {
    /// An error without a field.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ProtocolError {
        ProtocolError {
            code,
            message: message.into(),
            field: None,
        }
    }

    /// The same error naming the field at fault.
    pub fn with_field(mut self, field: impl Into<Cow<'static, str>>) -> ProtocolError {
        self.field = Some(field.into());
        self
    }

    /// `missing_field` for `field`, with the message "`field` is required".
    pub fn missing(field: &'static str) -> ProtocolError {
        ProtocolError::new(ErrorCode::MissingField, format!("{field} is required"))
            .with_field(field)
    }

    /// `invalid_field` for `field`.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> ProtocolError {
        ProtocolError::new(ErrorCode::InvalidField, message).with_field(field)
    }

    /// `post_mismatch` for the engine's name of the first attribute that
    /// differs from the ping, reported under its wire name (the engine's
    /// `bmi_tenths` is the wire's `bmi`; other names are the same).
    pub fn post_mismatch(attribute: &'static str) -> ProtocolError {
        let field = match attribute {
            "bmi_tenths" => "bmi",
            other => other,
        };
        let message = format!("{field} differs from the ping's");
        ProtocolError::new(ErrorCode::PostMismatch, message).with_field(field)
    }

    /// The HTTP status of [`ProtocolError::code`].
    pub fn http_status(&self) -> u16 {
        self.code.http_status()
    }

    /// Appends the JSON error body to `out`:
    /// `{"error":{"code":"…","message":"…","field":"…"}}` (no `field` when
    /// there is none).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(48 + self.message.len() + self.field.as_ref().map_or(0, |f| f.len()));
        out.extend_from_slice(b"{\"error\":{\"code\":\"");
        // Codes are snake_case ASCII: nothing to escape.
        out.extend_from_slice(self.code.as_str().as_bytes());
        out.extend_from_slice(b"\",\"message\":");
        write_json_str(out, &self.message);
        if let Some(field) = &self.field {
            out.extend_from_slice(b",\"field\":");
            write_json_str(out, field);
        }
        out.extend_from_slice(b"}}");
    }

    /// Appends the error body and returns its HTTP status; a convenience for
    /// servers that answer in one line.
    pub fn encode_with_status(&self, out: &mut Vec<u8>) -> u16 {
        self.encode(out);
        self.http_status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_snake_case_and_round_trip() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "{s} twice");
            assert!(
                s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{s}"
            );
            assert_eq!(ErrorCode::parse(s), Some(code));
            assert_eq!(code.to_string(), s);
        }
        assert_eq!(ErrorCode::parse("nope"), None);
    }

    #[test]
    fn statuses_are_the_documented_ones() {
        let expected = [
            ("invalid_json", 400),
            ("missing_field", 400),
            ("invalid_field", 400),
            ("unknown_field", 400),
            ("body_too_large", 413),
            ("unsupported_media_type", 415),
            ("unauthorized", 401),
            ("forbidden", 403),
            ("not_found", 404),
            ("method_not_allowed", 405),
            ("ping_not_found", 404),
            ("ping_expired", 410),
            ("ping_already_used", 409),
            ("post_mismatch", 422),
            ("duplicate_lead", 409),
            ("bid_unavailable", 409),
            ("overloaded", 503),
            ("persistence_unavailable", 503),
            ("timeout", 503),
            ("internal", 500),
        ];
        assert_eq!(expected.len(), ErrorCode::ALL.len());
        for (code, status) in expected {
            assert_eq!(
                ErrorCode::parse(code).unwrap().http_status(),
                status,
                "{code}"
            );
        }
        for code in ErrorCode::ALL {
            assert_eq!(code.is_retryable(), code.http_status() == 503, "{code}");
        }
    }

    #[test]
    fn encode_escapes_and_omits_absent_field() {
        let e = ProtocolError::missing("zip");
        let mut out = Vec::new();
        assert_eq!(e.encode_with_status(&mut out), 400);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["error"]["code"], "missing_field");
        assert_eq!(v["error"]["message"], "zip is required");
        assert_eq!(v["error"]["field"], "zip");

        let e = ProtocolError::new(ErrorCode::Internal, "a \"quoted\"\\\n\u{1}message é");
        out.clear();
        e.encode(&mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["error"]["message"], "a \"quoted\"\\\n\u{1}message é");
        assert!(v["error"].get("field").is_none());
        assert_eq!(e.to_string(), format!("internal: {}", e.message));
    }

    #[test]
    fn post_mismatch_uses_wire_names() {
        let e = ProtocolError::post_mismatch("bmi_tenths");
        assert_eq!(
            (e.code, e.field.as_deref(), e.http_status()),
            (ErrorCode::PostMismatch, Some("bmi"), 422)
        );
        assert_eq!(
            ProtocolError::post_mismatch("age").field.as_deref(),
            Some("age")
        );
    }

    #[test]
    fn dynamic_fields_are_kept() {
        let e = ProtocolError::new(ErrorCode::UnknownField, "unknown field x")
            .with_field(String::from("consent.x"));
        assert_eq!(e.field.as_deref(), Some("consent.x"));
        let e = ProtocolError::invalid("age", "too young");
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::InvalidField, Some("age"))
        );
    }
}
