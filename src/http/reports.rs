//! `POST /api/v1/reports`: a JSON body or an HTML form post (a browser's
//! form post, refused, is answered as a page by the pages' own route, `web/form.rs`).

use std::net::IpAddr;
use std::time::Instant;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::doc::{BadRequest, PayloadTooLarge, Problem, Unavailable, UnsupportedMediaType};
use super::{ApiError, Code, Edge, json_response, media_type, read_body, wants_html};
use crate::domain::RawReport;
use crate::intake::{Accepted, Allowance, Intake, Origin};
use crate::telemetry::Metrics;

/// The answer to a stored report.
#[derive(Serialize, ToSchema)]
#[schema(as = Accepted)]
pub struct AcceptedBody {
    #[schema(format = Uuid)]
    id: String,
    service: String,
    counted: bool,
    #[schema(format = DateTime)]
    bucket: String,
}

impl From<Accepted> for AcceptedBody {
    fn from(a: Accepted) -> Self {
        AcceptedBody {
            id: a.id.to_string(),
            service: a.service,
            counted: a.counted,
            bucket: a.bucket.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }
    }
}

enum BodyKind {
    Json,
    Form,
}

/// The report's own header.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct IdempotencyKey {
    /// A retried POST with the same key counts once and gets the first answer (within intake.idempotency_ttl_secs). The key is the reporter's own (another client's same key is another key) and bound to the report: the same key with another problem or country is 422 idempotency_key_reused; while the first is still being written, 409 idempotency_key_in_flight
    #[param(
        rename = "Idempotency-Key",
        nullable = false,
        pattern = r"^[\x21-\x7e]{1,128}$"
    )]
    key: Option<String>,
}

/// Report a problem with a service
///
/// Counts one report. 202 means the report is stored. A reporter's first report
/// per service per dedup window counts, while its network (IPv4 /24, IPv6 /48)
/// has counted fewer than intake.max_counted_per_network (5) for the service in
/// the clock window of that length, counted from the Unix epoch (with the
/// default hour, 14:00-15:00 UTC, ...); other reports are accepted with
/// `counted: false`. An HTML form post from a browser (Accept: text/html) is
/// answered 303 back to the status page. A post from another site's page (a
/// browser's `Sec-Fetch-Site` or `Origin` says so) is refused with 403 and
/// counts nothing; apps that post directly send neither header and are
/// unaffected.
#[utoipa::path(
    post, path = "/api/v1/reports", tag = "reports", operation_id = "postReport",
    params(IdempotencyKey),
    request_body(content(
        (RawReport = "application/json"),
        (RawReport = "application/x-www-form-urlencoded")
    )),
    responses(
        (status = 202, description = "Stored", body = AcceptedBody),
        (status = 303, description = "Stored (form post from a page): back to the status page", headers(("Location" = String))),
        BadRequest,
        (status = 403, description = "A browser's post from another site's page (`cross_site`): `Sec-Fetch-Site` other than same-origin or none, or an `Origin` other than that of web.public_url (else the request's Host)", body = Problem, content_type = "application/problem+json"),
        (status = 408, description = "The body did not arrive within http.body_timeout_secs (`body_timeout`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A request with the same Idempotency-Key is still being written (`idempotency_key_in_flight`); retry after Retry-After", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
        PayloadTooLarge,
        UnsupportedMediaType,
        (status = 422, description = "Report refused: unknown service, problem not offered by it, bad country, client_id too long, an Idempotency-Key first used for another report (`unknown_service`, `problem_not_allowed`, `invalid_country`, `client_id_too_long`, `idempotency_key_reused`)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many reports from this address (`rate_limited`); see Retry-After and RateLimit-* headers", body = Problem, content_type = "application/problem+json", headers(
            ("Retry-After" = u64, description = "Seconds to wait before retrying"),
            ("RateLimit-Limit" = u64, description = "Burst size of the per-address limit"),
            ("RateLimit-Remaining" = u64, description = "Reports left in the burst"),
            ("RateLimit-Reset" = u64, description = "Seconds until the burst refills by one")
        )),
        Unavailable
    )
)]
pub async fn post_report(
    req: HttpRequest,
    mut payload: web::Payload,
    intake: web::Data<Intake>,
    edge: web::Data<Edge>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, ApiError> {
    let addr = edge.client(&req);
    let cross_site = cross_site(&req, &edge.public_url);
    let limiter = intake.limiter();
    let allowance = match limiter {
        Some(limiter) if !cross_site => Some(limiter.check(addr, Instant::now())),
        _ => None,
    };
    let result = match allowance {
        _ if cross_site => Err(ApiError::new(
            Code::CrossSite,
            "reports come from this site's own pages or from apps, not from another site's page",
        )),
        Some(Err(refused)) => Err(ApiError::new(
            Code::RateLimited,
            format!(
                "this address sent more than {} reports per minute (burst {}); retry in {} s",
                limiter.map_or(0, |l| l.per_minute()),
                refused.limit,
                refused.reset_secs
            ),
        )
        .retry_after(refused.reset_secs)),
        _ => handle(&req, &mut payload, &intake, &edge, addr).await,
    };
    if let Err(e) = &result {
        // Every refusal, the intake's and those before it (limit, body,
        // type, header), under its code.
        metrics
            .reports_rejected
            .with_label_values(&[e.code.as_str()])
            .inc();
    }
    let Some(Ok(allowance) | Err(allowance)) = allowance else {
        return result;
    };
    let headers = rate_limit_headers(allowance);
    match result {
        Ok(mut response) => {
            for (name, value) in headers {
                if let Ok(value) = header::HeaderValue::from_str(&value) {
                    response
                        .headers_mut()
                        .insert(header::HeaderName::from_static(name), value);
                }
            }
            Ok(response)
        }
        Err(mut e) => {
            e.headers.extend(headers);
            Err(e)
        }
    }
}

/// `RateLimit-*` headers (draft-ietf-httpapi-ratelimit-headers, the widely
/// implemented three-header form).
fn rate_limit_headers(a: Allowance) -> Vec<(&'static str, String)> {
    vec![
        ("ratelimit-limit", a.limit.to_string()),
        ("ratelimit-remaining", a.remaining.to_string()),
        ("ratelimit-reset", a.reset_secs.to_string()),
    ]
}

async fn handle(
    req: &HttpRequest,
    payload: &mut web::Payload,
    intake: &Intake,
    edge: &Edge,
    addr: IpAddr,
) -> Result<HttpResponse, ApiError> {
    let kind = match media_type(req.headers()).as_deref() {
        Some("application/json") => BodyKind::Json,
        Some("application/x-www-form-urlencoded") => BodyKind::Form,
        other => {
            return Err(ApiError::new(
                Code::UnsupportedMediaType,
                format!(
                    "Content-Type {} is not accepted; send application/json or application/x-www-form-urlencoded",
                    other.map_or("(none)".to_string(), |t| format!("{t:?}"))
                ),
            ));
        }
    };
    let idempotency_key = idempotency_key(req, intake.max_idempotency_key_len())?;
    let deadline = std::time::Duration::from_secs(edge.body_timeout_secs);
    let body = read_body(req, payload, edge.max_body_bytes, deadline).await?;
    let raw: RawReport = match kind {
        BodyKind::Json => serde_json::from_slice(&body)
            .map_err(|e| ApiError::new(Code::MalformedBody, format!("invalid JSON report: {e}")))?,
        BodyKind::Form => serde_urlencoded::from_bytes(&body)
            .map_err(|e| ApiError::new(Code::MalformedBody, format!("invalid form report: {e}")))?,
    };
    let raw_problem = raw.problem.clone();
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let origin = Origin {
        addr,
        user_agent: &user_agent,
        at: chrono::Utc::now().timestamp(),
        idempotency_key,
    };
    let accepted = intake
        .submit(raw, origin)
        .await
        .map_err(|e| ApiError::from_intake(e, edge.retry_after_secs))?;
    if matches!(kind, BodyKind::Form) && wants_html(req.headers()) {
        // The status page's form without JavaScript: back to the page, which
        // thanks the person.
        let location = format!(
            "/status/{}?{}",
            accepted.service,
            serde_urlencoded::to_string([
                ("reported", raw_problem.as_str()),
                ("counted", if accepted.counted { "1" } else { "0" }),
            ])
            .unwrap_or_default()
        );
        return Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, location))
            .finish());
    }
    Ok(json_response(
        StatusCode::ACCEPTED,
        &AcceptedBody::from(accepted),
    ))
}

/// Whether a browser says this post comes from another site's page: a
/// hidden form there that submits itself would make each of its visitors a
/// genuine, distinct reporter. Browsers send `Sec-Fetch-Site` (and `Origin`
/// on posts); apps and scripts that post directly send neither, or their
/// own, and are not what this guards against. JSON posts from other
/// origins never get here: they need a CORS preflight, which is refused.
fn cross_site(req: &HttpRequest, public_url: &str) -> bool {
    let headers = req.headers();
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    // Browsers send Sec-Fetch-Site over HTTPS and to localhost only;
    // "none" is typed or bookmarked, not sent by a page.
    if value("sec-fetch-site").is_some_and(|site| !matches!(site, "same-origin" | "none")) {
        return true;
    }
    let Some(origin) = value("origin") else {
        return false;
    };
    match (origin_of(origin), origin_of(public_url)) {
        // The configured site, whatever Host the request names (a page
        // that rebinds its own name to this server's address has its own
        // origin).
        (Some(origin), Some(site)) => origin != site,
        // Without one, the host the request names (behind a TLS proxy the
        // scheme is not ours to see).
        (Some((scheme, host)), None) => {
            let named = value("host").and_then(|h| origin_of(&format!("{scheme}://{h}")));
            named.is_none_or(|(_, named)| named != host)
        }
        // "null" (a sandboxed frame, a data: page) or nonsense.
        (None, _) => true,
    }
}

/// A URL's origin as (scheme, host[:port]), lower-cased, the scheme's
/// default port dropped and any path ignored; `None` when it is not an
/// http(s) URL.
fn origin_of(url: &str) -> Option<(String, String)> {
    let (scheme, rest) = url.trim().split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => ":80",
        "https" => ":443",
        _ => return None,
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority(host.strip_suffix(default_port).unwrap_or(host));
    (!host.is_empty()).then_some((scheme, host))
}

/// A Host header's or URL's host[:port], lower-cased.
fn authority(host: &str) -> String {
    host.trim().to_ascii_lowercase()
}

/// Visible ASCII, 1 to `max` bytes.
fn idempotency_key(req: &HttpRequest, max: usize) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > max || !bytes.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(ApiError::new(
            Code::InvalidIdempotencyKey,
            format!("Idempotency-Key must be 1 to {max} visible ASCII characters"),
        ));
    }
    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
}
