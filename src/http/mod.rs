//! The HTTP API: routes by resource, problem+json errors, metrics middleware.
//! Handlers parse, call one function, and map the result.

pub mod admin;
pub mod anomalies;
pub mod connections;
pub mod counts;
pub mod doc;
pub mod error;
pub mod ops;
pub mod reports;
pub mod route;
pub mod services;
pub mod stream;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use ipnet::IpNet;

pub use self::error::{ApiError, Code, ErrorCode};
pub use self::route::Route;
use crate::config::Settings;
use crate::domain::Registry;
use crate::intake::{Intake, RateLimiter};
use crate::read::Reader;
use crate::store::{AnyStore, Retention};
use crate::telemetry::Metrics;

/// Shared by every worker.
pub struct AppState {
    pub settings: Settings,
    pub registry: Arc<Registry>,
    pub store: Arc<AnyStore>,
    pub retention: Retention,
    pub intake: Intake,
    /// Per-address limit of report posts; `None` when disabled.
    pub limiter: Option<RateLimiter>,
    pub metrics: Arc<Metrics>,
    /// What readers see, with its short-lived caches, shared by the API and
    /// the pages.
    pub reader: Reader,
    /// Feed events for the live streams.
    pub hub: stream::Hub,
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

pub fn routes(cfg: &mut web::ServiceConfig) {
    for route in table() {
        route.register(cfg);
    }
    cfg.default_service(web::to(not_found));
}

/// No route answered: 405 where the path is served with another method
/// (each path takes one: POST for the two that store, GET for the rest),
/// else 404.
async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let path = req.path();
    if req.resource_map().has_resource(path) {
        let allow = if path == "/api/v1/reports" || path == "/api/v1/admin/import" {
            "POST"
        } else {
            "GET"
        };
        let mut e = ApiError::new(
            Code::MethodNotAllowed,
            format!("{path} takes {allow}, not {}", req.method()),
        );
        e.headers.push(("allow", allow.to_string()));
        return Err(e);
    }
    Err(ApiError::new(
        Code::NotFound,
        format!("no route for {} {path}", req.method()),
    ))
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
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.metrics.clone());
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

/// The client's address: the peer's, unless the peer is one of
/// `http.trusted_proxies`; then the rightmost X-Forwarded-For address that
/// is not (what the client wrote further left proves nothing). Used only as
/// hash input and for the per-address limit, never stored or logged.
pub fn client_addr(req: &HttpRequest, proxies: &[IpNet]) -> IpAddr {
    // A dual-stack listener sees an IPv4 peer as ::ffff:a.b.c.d.
    let peer = req
        .peer_addr()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip().to_canonical());
    let trusted = |ip: &IpAddr| proxies.iter().any(|p| p.contains(ip));
    if !trusted(&peer) {
        if req.headers().contains_key("x-forwarded-for") && is_local(&peer) {
            warn_of_an_untrusted_proxy();
        }
        return peer;
    }
    // Walk back from the nearest hop: each trusted proxy appended the
    // address it saw; the first that is not a proxy is the client. An entry
    // that is not an address ends the walk at the proxy after it.
    let entries: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    let mut client = peer;
    for entry in entries.iter().rev() {
        match forwarded_ip(entry) {
            Some(ip) => {
                client = ip;
                if !trusted(&ip) {
                    break;
                }
            }
            None => break,
        }
    }
    client
}

/// A private, loopback or link-local address: where a reverse proxy in
/// front of outagewatch sits, and no client on the internet does.
fn is_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_private() || v4.is_loopback() || v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.is_unique_local() || v6.is_unicast_link_local(),
    }
}

/// Unix seconds of the last warning of an untrusted proxy (0: none yet).
static UNTRUSTED_PROXY_WARNED: AtomicI64 = AtomicI64::new(0);

/// A proxy left out of `http.trusted_proxies` makes every report its own
/// network's, and one network counts at most `intake.max_counted_per_network`
/// reports per service and hour: nothing could open an incident, silently.
/// So say so, at most once an hour (without the address: logs carry none).
fn warn_of_an_untrusted_proxy() {
    let now = chrono::Utc::now().timestamp();
    if once_an_hour(&UNTRUSTED_PROXY_WARNED, now) {
        tracing::warn!(
            "a request from a private or loopback address carried X-Forwarded-For, and that \
             address is not in http.trusted_proxies: if it is a reverse proxy, add it, or every \
             report counts as the proxy's one network (at most intake.max_counted_per_network \
             per service and hour)"
        );
    }
}

/// True when `last` (Unix seconds) is an hour or more before `now`, and
/// then `now` becomes the last time.
fn once_an_hour(last: &AtomicI64, now: i64) -> bool {
    let before = last.load(Ordering::Relaxed);
    now - before >= 3600
        && last
            .compare_exchange(before, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

/// An X-Forwarded-For entry's address: bare, or with a port as some
/// proxies write it (`203.0.113.1:5555`, `[2001:db8::1]:443`).
fn forwarded_ip(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let ip = entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))?;
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    /// The client address behind `proxies`, of a request from `peer` with
    /// these X-Forwarded-For header lines.
    fn client(proxies: &[&str], peer: &str, forwarded: &[&str]) -> String {
        let proxies: Vec<IpNet> = proxies.iter().map(|p| p.parse().unwrap()).collect();
        let peer = std::net::SocketAddr::new(peer.parse().unwrap(), 4000);
        let mut req = TestRequest::default().peer_addr(peer);
        for line in forwarded {
            req = req.append_header(("x-forwarded-for", *line));
        }
        client_addr(&req.to_http_request(), &proxies).to_string()
    }

    /// The warning of a proxy left untrusted is for private peers (where
    /// proxies sit), once an hour, not for every request.
    #[test]
    fn an_untrusted_proxy_is_told_once_an_hour() {
        for (peer, local) in [
            ("10.1.2.3", true),
            ("192.168.0.9", true),
            ("127.0.0.1", true),
            ("fd00::1", true),
            ("198.51.100.7", false),
            ("2001:db8::1", false),
        ] {
            assert_eq!(is_local(&peer.parse().unwrap()), local, "{peer}");
        }
        let last = AtomicI64::new(0);
        let t = 1_800_000_000;
        assert!(once_an_hour(&last, t));
        assert!(!once_an_hour(&last, t + 3599));
        assert!(once_an_hour(&last, t + 3600));
    }

    #[test]
    fn the_client_is_the_rightmost_address_no_trusted_proxy_wrote() {
        let proxies = ["10.0.0.0/8", "::1/128"];
        // No proxy believed, or a peer that is not one: the peer.
        assert_eq!(client(&[], "10.0.0.1", &["198.51.100.7"]), "10.0.0.1");
        assert_eq!(
            client(&proxies, "192.0.2.1", &["198.51.100.7"]),
            "192.0.2.1"
        );
        // What the client wrote left of its own address proves nothing.
        let spoofed = ["203.0.113.66, 198.51.100.7"];
        assert_eq!(client(&proxies, "10.0.0.1", &spoofed), "198.51.100.7");
        // Two proxies, and the header on two lines.
        let chain = ["203.0.113.66", "198.51.100.7, 10.2.0.1"];
        assert_eq!(client(&proxies, "::1", &chain), "198.51.100.7");
        // A proxy without the header, or nothing but proxies in it.
        assert_eq!(client(&proxies, "10.0.0.1", &[]), "10.0.0.1");
        assert_eq!(client(&proxies, "10.0.0.1", &["10.0.0.9"]), "10.0.0.9");
        // Ports, as some proxies write them, and IPv4 as IPv6.
        let ported = ["198.51.100.7:5555, 10.0.0.2:80"];
        assert_eq!(client(&proxies, "10.0.0.1", &ported), "198.51.100.7");
        assert_eq!(
            client(&proxies, "::ffff:10.0.0.1", &["[2001:db8::1]:443"]),
            "2001:db8::1"
        );
        // An entry that is no address ends the walk at the proxy after it.
        assert_eq!(
            client(&proxies, "10.0.0.1", &["198.51.100.7, junk"]),
            "10.0.0.1"
        );
    }
}
