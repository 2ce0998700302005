//! API errors as RFC 9457 `application/problem+json`, each with a stable
//! machine-readable `code`. One table maps codes to HTTP statuses; 5xx bodies
//! stay generic and their cause is logged once where it happened.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde_json::{Map, Value, json};

use crate::domain::ReportError;
use crate::intake::{IntakeError, WriteError};
use crate::read::ReadError;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// Every error code the API answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    MalformedBody,
    InvalidParameter,
    InvalidIdempotencyKey,
    IdempotencyKeyReused,
    IdempotencyKeyInFlight,
    Unauthorized,
    AdminDisabled,
    CrossSite,
    NotFound,
    MethodNotAllowed,
    ServiceNotFound,
    CompanyNotFound,
    AnomalyNotFound,
    PayloadTooLarge,
    BodyTimeout,
    UnsupportedMediaType,
    UnknownService,
    ProblemNotAllowed,
    InvalidCountry,
    ClientIdTooLong,
    RateLimited,
    Overloaded,
    TooManyStreams,
    TooManyStreamsFromAddress,
    TooManyConnections,
    StoreUnavailable,
    Internal,
}

impl Code {
    /// The table from code to status and title.
    pub fn describe(self) -> (StatusCode, &'static str, &'static str) {
        use StatusCode as S;
        match self {
            Code::MalformedBody => (S::BAD_REQUEST, "malformed_body", "Malformed request body"),
            Code::InvalidParameter => (
                S::BAD_REQUEST,
                "invalid_parameter",
                "Invalid query parameter",
            ),
            Code::InvalidIdempotencyKey => (
                S::BAD_REQUEST,
                "invalid_idempotency_key",
                "Invalid Idempotency-Key header",
            ),
            Code::IdempotencyKeyReused => (
                S::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "Idempotency-Key used for another request",
            ),
            Code::IdempotencyKeyInFlight => (
                S::CONFLICT,
                "idempotency_key_in_flight",
                "A request with this Idempotency-Key is in flight",
            ),
            Code::Unauthorized => (
                S::UNAUTHORIZED,
                "unauthorized",
                "Missing or wrong bearer token",
            ),
            Code::AdminDisabled => (
                S::FORBIDDEN,
                "admin_disabled",
                "Admin endpoints are disabled",
            ),
            Code::CrossSite => (S::FORBIDDEN, "cross_site", "Cross-site post refused"),
            Code::NotFound => (S::NOT_FOUND, "not_found", "Not found"),
            Code::MethodNotAllowed => (
                S::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
            ),
            Code::ServiceNotFound => (S::NOT_FOUND, "service_not_found", "No such service"),
            Code::CompanyNotFound => (S::NOT_FOUND, "company_not_found", "No such company"),
            Code::AnomalyNotFound => (S::NOT_FOUND, "anomaly_not_found", "No such anomaly"),
            Code::PayloadTooLarge => (
                S::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Request body too large",
            ),
            Code::BodyTimeout => (S::REQUEST_TIMEOUT, "body_timeout", "Request body too slow"),
            Code::UnsupportedMediaType => (
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported content type",
            ),
            Code::UnknownService => (
                S::UNPROCESSABLE_ENTITY,
                "unknown_service",
                "Unknown service",
            ),
            Code::ProblemNotAllowed => (
                S::UNPROCESSABLE_ENTITY,
                "problem_not_allowed",
                "Problem type not accepted for this service",
            ),
            Code::InvalidCountry => (
                S::UNPROCESSABLE_ENTITY,
                "invalid_country",
                "Invalid country",
            ),
            Code::ClientIdTooLong => (
                S::UNPROCESSABLE_ENTITY,
                "client_id_too_long",
                "client_id too long",
            ),
            Code::RateLimited => (
                S::TOO_MANY_REQUESTS,
                "rate_limited",
                "Too many reports from this address",
            ),
            Code::Overloaded => (S::SERVICE_UNAVAILABLE, "overloaded", "Intake is overloaded"),
            Code::TooManyStreams => (
                S::SERVICE_UNAVAILABLE,
                "too_many_streams",
                "Too many open streams",
            ),
            Code::TooManyStreamsFromAddress => (
                S::TOO_MANY_REQUESTS,
                "too_many_streams_from_address",
                "Too many open streams from this address",
            ),
            Code::TooManyConnections => (
                S::TOO_MANY_REQUESTS,
                "too_many_connections",
                "Too many connections from this address",
            ),
            Code::StoreUnavailable => (
                S::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "Storage is unavailable",
            ),
            Code::Internal => (S::INTERNAL_SERVER_ERROR, "internal", "Internal error"),
        }
    }

    pub fn as_str(self) -> &'static str {
        self.describe().1
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

    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_string(), value);
        self
    }

    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    pub fn unavailable(code: Code, retry_after_secs: u64) -> Self {
        let detail = match code {
            Code::Overloaded => "Too many reports are waiting to be stored; retry shortly.",
            _ => {
                "The store did not confirm the report in time; it may still land. Retry shortly with the same Idempotency-Key and client_id: it will count once."
            }
        };
        ApiError::new(code, detail).retry_after(retry_after_secs)
    }

    pub fn from_intake(e: IntakeError, retry_after_secs: u64) -> Self {
        match e {
            IntakeError::Invalid(report) => report.into(),
            IntakeError::Write(WriteError::QueueFull) => {
                ApiError::unavailable(Code::Overloaded, retry_after_secs)
            }
            IntakeError::Write(_) => {
                ApiError::unavailable(Code::StoreUnavailable, retry_after_secs)
            }
            IntakeError::IdempotencyKeyReused => {
                ApiError::new(Code::IdempotencyKeyReused, e.to_string())
            }
            IntakeError::IdempotencyKeyInFlight => {
                ApiError::new(Code::IdempotencyKeyInFlight, e.to_string()).retry_after(1)
            }
        }
    }
}

impl From<ReportError> for ApiError {
    fn from(e: ReportError) -> Self {
        let detail = e.to_string();
        match e {
            ReportError::UnknownService(_) => ApiError::new(Code::UnknownService, detail),
            ReportError::ProblemNotAllowed { allowed, .. } => {
                let allowed: Vec<&str> = allowed.iter().map(|p| p.as_str()).collect();
                ApiError::new(
                    Code::ProblemNotAllowed,
                    format!("{detail}; allowed: {}", allowed.join(", ")),
                )
                .with("allowed", json!(allowed))
            }
            ReportError::InvalidCountry(_) => ApiError::new(Code::InvalidCountry, detail),
            ReportError::ClientIdTooLong { .. } => ApiError::new(Code::ClientIdTooLong, detail),
        }
    }
}

impl From<ReadError> for ApiError {
    fn from(e: ReadError) -> Self {
        let detail = e.to_string();
        match e {
            ReadError::Invalid { parameter, message } => {
                let error = ApiError::new(Code::InvalidParameter, message);
                match parameter {
                    Some(name) => error.with("parameter", json!(name)),
                    None => error,
                }
            }
            ReadError::ServiceNotFound(_) => ApiError::new(Code::ServiceNotFound, detail),
            ReadError::CompanyNotFound(_) => ApiError::new(Code::CompanyNotFound, detail),
            ReadError::AnomalyNotFound(_) => ApiError::new(Code::AnomalyNotFound, detail),
            ReadError::Unavailable { retry_after_secs } => ApiError::new(
                Code::StoreUnavailable,
                "The store cannot answer right now; retry shortly.",
            )
            .retry_after(retry_after_secs),
            ReadError::Corrupt => ApiError::new(Code::Internal, "internal error"),
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
        let (status, code, title) = self.code.describe();
        let mut body = Map::new();
        body.insert("type".into(), json!("about:blank"));
        body.insert("title".into(), json!(title));
        body.insert("status".into(), json!(status.as_u16()));
        body.insert("code".into(), json!(code));
        body.insert("detail".into(), json!(self.detail));
        body.extend(self.extra.clone());
        Value::Object(body)
    }

    /// The whole HTTP/1.1 answer, written straight to a socket that is
    /// then closed (a connection refused before any request).
    pub fn raw_answer(&self, retry_after_secs: u64) -> Vec<u8> {
        let status = self.code.describe().0;
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
        self.code.describe().0
    }

    fn error_response(&self) -> HttpResponse {
        let (status, body) = (self.code.describe().0, self.body());
        let mut response = HttpResponse::build(status);
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
        response.body(body.to_string())
    }
}
