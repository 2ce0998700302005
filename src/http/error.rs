//! API errors as RFC 9457 `application/problem+json`, each with a stable
//! machine-readable `code`. The table below is the one place a code gets
//! its HTTP status and title, one line a code; each boundary's error names
//! its code through [`ErrorCode`], and handlers answer it with `?` or one
//! conversion, never with a match of their own. 5xx bodies stay generic and
//! their cause is logged once where it happened.
//!
//! The [`ErrorCode`] impls for `ReportError`, `IntakeError`, `WriteError`,
//! `ReadError` and `StoreError` are here rather than beside those types:
//! they live in layers below `http`, which may not name `Code` (it carries
//! HTTP statuses, which `domain`, `store`, `intake` and `read` know nothing
//! of).

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde_json::{Map, Value, json};

use crate::domain::ReportError;
use crate::intake::{IntakeError, WriteError};
use crate::read::ReadError;
use crate::store::StoreError;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// Writes [`Code`] and its row lookup from the table: `Variant => STATUS,
/// "code", "Title";`.
macro_rules! codes {
    ($($variant:ident => $status:ident, $code:literal, $title:literal;)+) => {
        /// Every error code the API answers with.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Code {
            $($variant,)+
        }

        impl Code {
            /// Every code, in the table's order.
            pub const ALL: &[Code] = &[$(Code::$variant,)+];

            fn row(self) -> (StatusCode, &'static str, &'static str) {
                match self {
                    $(Code::$variant => (StatusCode::$status, $code, $title),)+
                }
            }
        }
    };
}

// The `code` strings are the API's contract and the OpenAPI document's
// `Problem.code` enum (generated from `Code::ALL` in `http/doc.rs`): add a line,
// never rename one.
codes! {
    MalformedBody => BAD_REQUEST, "malformed_body", "Malformed request body";
    InvalidParameter => BAD_REQUEST, "invalid_parameter", "Invalid query parameter";
    InvalidIdempotencyKey => BAD_REQUEST, "invalid_idempotency_key", "Invalid Idempotency-Key header";
    IdempotencyKeyReused => UNPROCESSABLE_ENTITY, "idempotency_key_reused", "Idempotency-Key used for another request";
    IdempotencyKeyInFlight => CONFLICT, "idempotency_key_in_flight", "A request with this Idempotency-Key is in flight";
    Unauthorized => UNAUTHORIZED, "unauthorized", "Missing or wrong bearer token";
    AdminDisabled => FORBIDDEN, "admin_disabled", "Admin endpoints are disabled";
    CrossSite => FORBIDDEN, "cross_site", "Cross-site post refused";
    NotFound => NOT_FOUND, "not_found", "Not found";
    MethodNotAllowed => METHOD_NOT_ALLOWED, "method_not_allowed", "Method not allowed";
    ServiceNotFound => NOT_FOUND, "service_not_found", "No such service";
    CompanyNotFound => NOT_FOUND, "company_not_found", "No such company";
    AnomalyNotFound => NOT_FOUND, "anomaly_not_found", "No such anomaly";
    PayloadTooLarge => PAYLOAD_TOO_LARGE, "payload_too_large", "Request body too large";
    BodyTimeout => REQUEST_TIMEOUT, "body_timeout", "Request body too slow";
    UnsupportedMediaType => UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "Unsupported content type";
    UnknownService => UNPROCESSABLE_ENTITY, "unknown_service", "Unknown service";
    ProblemNotAllowed => UNPROCESSABLE_ENTITY, "problem_not_allowed", "Problem type not accepted for this service";
    InvalidCountry => UNPROCESSABLE_ENTITY, "invalid_country", "Invalid country";
    ClientIdTooLong => UNPROCESSABLE_ENTITY, "client_id_too_long", "client_id too long";
    RateLimited => TOO_MANY_REQUESTS, "rate_limited", "Too many reports from this address";
    Overloaded => SERVICE_UNAVAILABLE, "overloaded", "Intake is overloaded";
    TooManyStreams => SERVICE_UNAVAILABLE, "too_many_streams", "Too many open streams";
    TooManyStreamsFromAddress => TOO_MANY_REQUESTS, "too_many_streams_from_address", "Too many open streams from this address";
    TooManyConnections => TOO_MANY_REQUESTS, "too_many_connections", "Too many connections from this address";
    StoreUnavailable => SERVICE_UNAVAILABLE, "store_unavailable", "Storage is unavailable";
    Internal => INTERNAL_SERVER_ERROR, "internal", "Internal error";
}

impl Code {
    pub fn status(self) -> StatusCode {
        self.row().0
    }

    /// The stable `code` string, also the label of rejected reports.
    pub fn as_str(self) -> &'static str {
        self.row().1
    }

    pub fn title(self) -> &'static str {
        self.row().2
    }
}

/// An error that answers with one of the table's codes.
pub trait ErrorCode {
    fn code(&self) -> Code;
}

impl ErrorCode for ReportError {
    fn code(&self) -> Code {
        match self {
            ReportError::UnknownService(_) => Code::UnknownService,
            ReportError::ProblemNotAllowed { .. } => Code::ProblemNotAllowed,
            ReportError::InvalidCountry(_) => Code::InvalidCountry,
            ReportError::ClientIdTooLong { .. } => Code::ClientIdTooLong,
        }
    }
}

impl ErrorCode for WriteError {
    fn code(&self) -> Code {
        match self {
            WriteError::QueueFull => Code::Overloaded,
            WriteError::TimedOut | WriteError::Unavailable => Code::StoreUnavailable,
        }
    }
}

impl ErrorCode for IntakeError {
    fn code(&self) -> Code {
        match self {
            IntakeError::Invalid(e) => e.code(),
            IntakeError::Write(e) => e.code(),
            IntakeError::IdempotencyKeyReused => Code::IdempotencyKeyReused,
            IntakeError::IdempotencyKeyInFlight => Code::IdempotencyKeyInFlight,
        }
    }
}

impl ErrorCode for ReadError {
    fn code(&self) -> Code {
        match self {
            ReadError::Invalid { .. } => Code::InvalidParameter,
            ReadError::ServiceNotFound(_) => Code::ServiceNotFound,
            ReadError::CompanyNotFound(_) => Code::CompanyNotFound,
            ReadError::AnomalyNotFound(_) => Code::AnomalyNotFound,
            ReadError::Unavailable { .. } => Code::StoreUnavailable,
            ReadError::Corrupt => Code::Internal,
        }
    }
}

/// A store failure a handler meets itself (readiness, import).
impl ErrorCode for StoreError {
    fn code(&self) -> Code {
        Code::StoreUnavailable
    }
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: Code,
    pub detail: String,
    pub extra: Map<String, Value>,
    pub retry_after_secs: Option<u64>,
    /// Further headers of the answer (rate-limit state).
    pub headers: Vec<(&'static str, String)>,
}

/// Longest `detail` an answer carries, in characters: details quote the
/// caller's input, and a 40,000-character service name is not echoed back.
const MAX_DETAIL_CHARS: usize = 400;

fn clipped(mut detail: String) -> String {
    if let Some((at, _)) = detail.char_indices().nth(MAX_DETAIL_CHARS) {
        detail.truncate(at);
        detail.push('…');
    }
    detail
}

impl ApiError {
    pub fn new(code: Code, detail: impl Into<String>) -> Self {
        ApiError {
            code,
            detail: clipped(detail.into()),
            extra: Map::new(),
            retry_after_secs: None,
            headers: Vec::new(),
        }
    }

    /// An error's own code, its message the detail.
    fn of(e: &(impl ErrorCode + std::fmt::Display)) -> Self {
        ApiError::new(e.code(), e.to_string())
    }

    /// A query string that does not read as the route's parameters.
    pub fn invalid_query(e: impl std::fmt::Display) -> Self {
        ApiError::new(Code::InvalidParameter, format!("invalid query string: {e}"))
    }

    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_string(), value);
        self
    }

    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// Intake's refusal; a write that failed is worth retrying after
    /// `retry_after_secs`.
    pub fn from_intake(e: IntakeError, retry_after_secs: u64) -> Self {
        match e {
            IntakeError::Invalid(report) => report.into(),
            IntakeError::Write(write) => {
                let detail = match write {
                    WriteError::QueueFull => {
                        "Too many reports are waiting to be stored; retry shortly."
                    }
                    WriteError::TimedOut | WriteError::Unavailable => {
                        "The store did not confirm the report in time; it may still land. Retry shortly with the same Idempotency-Key and client_id: it will count once."
                    }
                };
                ApiError::new(write.code(), detail).retry_after(retry_after_secs)
            }
            IntakeError::IdempotencyKeyInFlight => ApiError::of(&e).retry_after(1),
            IntakeError::IdempotencyKeyReused => ApiError::of(&e),
        }
    }
}

impl From<ReportError> for ApiError {
    fn from(e: ReportError) -> Self {
        match &e {
            ReportError::ProblemNotAllowed { allowed, .. } => {
                let allowed: Vec<&str> = allowed.iter().map(|p| p.as_str()).collect();
                ApiError::new(e.code(), format!("{e}; allowed: {}", allowed.join(", ")))
                    .with("allowed", json!(allowed))
            }
            _ => ApiError::of(&e),
        }
    }
}

impl From<ReadError> for ApiError {
    fn from(e: ReadError) -> Self {
        let code = e.code();
        match e {
            ReadError::Invalid { parameter, message } => {
                let error = ApiError::new(code, message);
                match parameter {
                    Some(name) => error.with("parameter", json!(name)),
                    None => error,
                }
            }
            ReadError::Unavailable { retry_after_secs } => {
                ApiError::new(code, "The store cannot answer right now; retry shortly.")
                    .retry_after(retry_after_secs)
            }
            // Logged where it was found; the body says no more.
            ReadError::Corrupt => ApiError::new(code, "internal error"),
            _ => ApiError::of(&e),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.detail)
    }
}

impl ApiError {
    /// The problem+json document.
    fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("type".into(), json!("about:blank"));
        body.insert("title".into(), json!(self.code.title()));
        body.insert("status".into(), json!(self.code.status().as_u16()));
        body.insert("code".into(), json!(self.code.as_str()));
        body.insert("detail".into(), json!(self.detail));
        body.extend(self.extra.clone());
        Value::Object(body)
    }

    /// The whole HTTP/1.1 answer, written straight to a socket that is
    /// then closed (a connection refused before any request).
    pub fn raw_answer(&self, retry_after_secs: u64) -> Vec<u8> {
        let status = self.code.status();
        let body = self.body().to_string();
        format!(
            "HTTP/1.1 {} {}\r\ncontent-type: {PROBLEM_JSON}\r\nretry-after: {retry_after_secs}\r\nx-content-type-options: nosniff\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            body.len()
        )
        .into_bytes()
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.code.status());
        response.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON)));
        if let Some(secs) = self.retry_after_secs {
            response.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        for (name, value) in &self.headers {
            response.insert_header((*name, value.as_str()));
        }
        if self.code == Code::Unauthorized {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        response.body(self.body().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_code_has_a_string_of_its_own() {
        let mut strings: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        strings.sort_unstable();
        strings.dedup();
        assert_eq!(strings.len(), Code::ALL.len());
    }

    #[test]
    fn a_boundary_error_answers_with_its_code_and_its_message() {
        let e: ApiError = ReadError::ServiceNotFound("nope".into()).into();
        assert_eq!(e.code.status(), StatusCode::NOT_FOUND);
        assert_eq!(e.to_string(), r#"service_not_found: no service "nope""#);
        let e = ApiError::from_intake(IntakeError::Write(WriteError::QueueFull), 2);
        assert_eq!((e.code, e.retry_after_secs), (Code::Overloaded, Some(2)));
    }
}
