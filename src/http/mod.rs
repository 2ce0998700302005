//! The HTTP API: routes by resource, problem+json errors, metrics middleware.
//! Handlers parse, call one function, and map the result.

pub mod admin;
pub mod anomalies;
mod client;
pub mod connections;
pub mod counts;
pub mod doc;
pub mod error;
pub mod ops;
pub mod reports;
pub mod route;
pub mod services;
pub mod stream;

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ResourceDef, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;

pub use self::client::client_addr;
pub use self::error::{ApiError, Code, ErrorCode};
pub use self::route::Route;
use crate::config::Settings;
use crate::telemetry::Metrics;

/// The API's own settings, shared by its handlers: who a request is from,
/// how much of its body is read and how fast, and what a refused client is
/// told to wait. Each part the handlers use (the [`Reader`], the
/// [`Intake`], the event [`stream::Hub`], the [`admin::Admin`]) is app data
/// of its own.
///
/// [`Reader`]: crate::read::Reader
/// [`Intake`]: crate::intake::Intake
#[derive(Debug, Clone)]
pub struct Edge {
    /// `http.trusted_proxies`: whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `web.public_url`: this site's origin, against which a post's
    /// `Origin` is checked (empty: the Host the request names).
    pub public_url: String,
    /// `http.max_body_bytes`.
    pub max_body_bytes: usize,
    /// `http.body_timeout_secs`.
    pub body_timeout_secs: u64,
    /// `intake.retry_after_secs`: the Retry-After of a 503 or a refusal.
    pub retry_after_secs: u64,
}

impl Edge {
    pub fn new(settings: &Settings) -> Self {
        Edge {
            trusted_proxies: settings.http.trusted_proxies.clone(),
            public_url: settings.web.public_url.clone(),
            max_body_bytes: settings.http.max_body_bytes,
            body_timeout_secs: settings.http.body_timeout_secs,
            retry_after_secs: settings.intake.retry_after_secs,
        }
    }

    /// Who sent `req`: see [`client_addr`].
    pub fn client(&self, req: &HttpRequest) -> std::net::IpAddr {
        client_addr(req, &self.trusted_proxies)
    }
}

/// The API's routes, each documented by its handler's `#[utoipa::path]`
/// (see [`route`]).
pub fn table() -> Vec<Route> {
    vec![
        Route::of::<reports::__path_post_report>().to(reports::post_report),
        Route::of::<services::__path_list>().to(services::list),
        Route::of::<services::__path_one>().to(services::one),
        Route::of::<counts::__path_series>().to(counts::series),
        Route::of::<counts::__path_breakdown>().to(counts::breakdown),
        Route::of::<counts::__path_history_csv>().to(counts::history_csv),
        Route::of::<services::__path_companies>().to(services::companies),
        Route::of::<services::__path_company>().to(services::company),
        Route::of::<anomalies::__path_list>().to(anomalies::list),
        // Before `/anomalies/{id}`, which would take `stream` for an id.
        Route::of::<stream::__path_stream>().to(stream::stream),
        Route::of::<anomalies::__path_one>().to(anomalies::one),
        Route::of::<admin::__path_import>().to(admin::import),
        Route::of::<ops::__path_healthz>().to(ops::healthz),
        Route::of::<ops::__path_readyz>().to(ops::readyz),
        Route::of::<ops::__path_metrics>().to(ops::metrics),
    ]
}

/// Registers `routes` in their order, and answers every other request:
/// 405 with `Allow` where the path is served with other methods (as the
/// routes say), else 404.
pub fn serve(cfg: &mut web::ServiceConfig, routes: Vec<Route>) {
    let mut served: Vec<(ResourceDef, String)> = Vec::new();
    for route in routes {
        served.push((ResourceDef::new(route.path.as_str()), route.method_name()));
        route.register(cfg);
    }
    let served = Arc::new(served);
    cfg.default_service(web::to(move |req: HttpRequest| {
        let served = served.clone();
        async move { not_found(&req, &served) }
    }));
}

fn not_found(
    req: &HttpRequest,
    served: &[(ResourceDef, String)],
) -> Result<HttpResponse, ApiError> {
    let path = req.path();
    let mut allow: Vec<&str> = served
        .iter()
        .filter(|(def, _)| def.is_match(path))
        .map(|(_, method)| method.as_str())
        .collect();
    if allow.is_empty() {
        return Err(ApiError::new(
            Code::NotFound,
            format!("no route for {} {path}", req.method()),
        ));
    }
    allow.sort_unstable();
    allow.dedup();
    let allow = allow.join(", ");
    let mut e = ApiError::new(
        Code::MethodNotAllowed,
        format!("{path} takes {allow}, not {}", req.method()),
    );
    e.headers.push(("allow", allow));
    Err(e)
}

/// The metrics label of a request method: the standard ones by name, any
/// other (a client may send any token) as one `other`, so made-up methods
/// cannot add series without bound.
fn method_label(method: &actix_web::http::Method) -> &'static str {
    const STANDARD: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
    ];
    STANDARD
        .into_iter()
        .find(|m| *m == method.as_str())
        .unwrap_or("other")
}

/// Records latency by route template (never the raw path) and logs the request
/// without the client address.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
    let method = method_label(req.method());
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let response = next.call(req).await?;
    let status = response.status();
    let elapsed = started.elapsed();
    if let Some(metrics) = metrics {
        metrics
            .http_duration
            .with_label_values(&[method, route.as_str(), status.as_str()])
            .observe(elapsed.as_secs_f64());
    }
    tracing::debug!(%method, %route, status = status.as_u16(), micros = elapsed.as_micros() as u64, "request");
    Ok(response)
}

/// The next chunk of a body, or 408 `body_timeout` when none comes within
/// `wait`: a client sending a byte every few seconds would otherwise hold
/// its connection (and a worker's attention) for as long as it likes.
pub async fn next_chunk(
    payload: &mut web::Payload,
    wait: std::time::Duration,
    timeout_secs: u64,
) -> Result<Option<bytes::Bytes>, ApiError> {
    let late = || {
        ApiError::new(
            Code::BodyTimeout,
            format!("the body did not arrive within {timeout_secs} s (http.body_timeout_secs)"),
        )
    };
    match tokio::time::timeout(wait, payload.next()).await {
        Err(_) => Err(late()),
        Ok(None) => Ok(None),
        Ok(Some(chunk)) => chunk
            .map(Some)
            .map_err(|e| ApiError::new(Code::MalformedBody, format!("cannot read body: {e}"))),
    }
}

/// Reads a whole body of at most `limit` bytes; 413 past it, before reading
/// when Content-Length already says so; 408 when it has not all arrived
/// within `deadline`.
pub async fn read_body(
    req: &HttpRequest,
    payload: &mut web::Payload,
    limit: usize,
    deadline: std::time::Duration,
) -> Result<Vec<u8>, ApiError> {
    let too_large = || {
        ApiError::new(
            Code::PayloadTooLarge,
            format!("the body limit is {limit} bytes"),
        )
    };
    if let Some(length) = content_length(req)
        && length > limit as u64
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    let until = tokio::time::Instant::now() + deadline;
    let left = || until.saturating_duration_since(tokio::time::Instant::now());
    while let Some(chunk) = next_chunk(payload, left(), deadline.as_secs()).await? {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

pub fn content_length(req: &HttpRequest) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// The request's Content-Type without parameters, lower-cased.
pub fn media_type(headers: &header::HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(
        value
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase(),
    )
}

/// Whether the client asked for a page rather than JSON (a browser's form
/// post without JavaScript).
pub fn wants_html(headers: &header::HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

/// 200 with `body` as JSON, its object keys sorted (through a `Value`), as
/// the API's answers built with `json!` always had them.
pub fn sorted_json(body: impl serde::Serialize) -> Result<HttpResponse, ApiError> {
    let body = serde_json::to_value(body).map_err(|e| {
        tracing::error!(error = %e, "serializing an answer");
        ApiError::new(Code::Internal, "internal error")
    })?;
    Ok(HttpResponse::Ok().json(body))
}

pub fn json_response(
    status: actix_web::http::StatusCode,
    body: &impl serde::Serialize,
) -> HttpResponse {
    HttpResponse::build(status).json(body)
}
