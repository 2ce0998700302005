//! Services and companies: the registry joined with recent counts, report
//! series for charts, and problem/country breakdowns.

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use chrono::Utc;
use serde::Serialize;
use serde_json::json;

use super::{ApiError, AppState, Code};
use crate::domain::{Anomaly, Company, Service};
use crate::intake::minute_start;
use crate::store::{FeedStore, Store};

type Query = web::Query<HashMap<String, String>>;

const MINUTES_PER_DAY: usize = 1440;
const RECENT_MINUTES: usize = 15;

/// A service as the API shows it.
#[derive(Serialize)]
pub struct ServiceView<'a> {
    id: &'a str,
    name: &'a str,
    company: &'a str,
    category: String,
    aliases: &'a [String],
    problems: Vec<&'static str>,
    /// `ok`, `possible` or `problem` (the severity of the open incident);
    /// null when the store cannot answer.
    status: Option<&'static str>,
    /// Counted reports in the last 15 minutes; null when the store is unreachable.
    reports_15m: Option<u64>,
    reports_24h: Option<u64>,
}

impl<'a> ServiceView<'a> {
    fn new(s: &'a Service, recent: Option<(u64, u64)>, status: Option<&'static str>) -> Self {
        ServiceView {
            id: &s.id,
            name: &s.name,
            company: &s.company,
            category: s.category.to_string(),
            aliases: &s.aliases,
            problems: s.problems.iter().map(|p| p.as_str()).collect(),
            status,
            reports_15m: recent.map(|r| r.0),
            reports_24h: recent.map(|r| r.1),
        }
    }
}

fn now_minute() -> i64 {
    Utc::now().timestamp().div_euclid(60)
}

/// Reports in the last 15 minutes and 24 hours of each service, in one round
/// trip; `None` for all when the store cannot answer (the list still serves).
async fn recent_counts(state: &AppState, services: &[&Service]) -> Vec<Option<(u64, u64)>> {
    let ids: Vec<&str> = services.iter().map(|s| s.id.as_str()).collect();
    let from = now_minute() - MINUTES_PER_DAY as i64 + 1;
    match state.store.minute_totals(&ids, from, MINUTES_PER_DAY).await {
        Ok(series) => series
            .iter()
            .map(|m| {
                Some((
                    m[MINUTES_PER_DAY - RECENT_MINUTES..].iter().sum(),
                    m.iter().sum(),
                ))
            })
            .collect(),
        Err(e) => {
            state.metrics.store_error("minute_totals", &e);
            tracing::warn!(error = %e, "recent counts unavailable");
            vec![None; services.len()]
        }
    }
}

/// The open incident of each service, from the feed; `None` when the store
/// cannot answer.
async fn open_incidents(state: &AppState) -> Option<HashMap<String, Anomaly>> {
    match state.store.open_anomalies().await {
        Ok(open) => Some(
            open.into_iter()
                .filter_map(|(s, doc)| Some((s, serde_json::from_str(&doc).ok()?)))
                .collect(),
        ),
        Err(e) => {
            state.metrics.store_error("open_anomalies", &e);
            tracing::warn!(error = %e, "open incidents unavailable");
            None
        }
    }
}

/// A service's status given the open incidents.
fn status_of(open: &Option<HashMap<String, Anomaly>>, service: &str) -> Option<&'static str> {
    let open = open.as_ref()?;
    Some(match open.get(service).map(|a| a.severity.as_str()) {
        Some("problem") => "problem",
        Some(_) => "possible",
        None => "ok",
    })
}

fn find_service<'a>(state: &'a AppState, id: &str) -> Result<&'a Service, ApiError> {
    state
        .registry
        .find(id)
        .ok_or_else(|| ApiError::new(Code::ServiceNotFound, format!("no service {id:?}")))
}

/// `GET /api/v1/services?category&limit&cursor`, sorted by id.
pub async fn list(state: web::Data<AppState>, query: Query) -> Result<HttpResponse, ApiError> {
    let limit = page_limit(&state, &query)?;
    let after = query.get("cursor").map(String::as_str).unwrap_or("");
    let category = query.get("category").map(|c| c.to_ascii_lowercase());
    let mut matching = state
        .registry
        .services()
        .iter()
        .filter(|s| {
            category
                .as_deref()
                .is_none_or(|c| s.category.to_string() == c)
        })
        .filter(|s| s.id.as_str() > after);
    let page: Vec<&Service> = matching.by_ref().take(limit).collect();
    let next_cursor = match (matching.next(), page.last()) {
        (Some(_), Some(last)) => Some(last.id.clone()),
        _ => None,
    };
    let (counts, open) = tokio::join!(recent_counts(&state, &page), open_incidents(&state));
    let items: Vec<ServiceView> = page
        .iter()
        .zip(counts)
        .map(|(s, c)| ServiceView::new(s, c, status_of(&open, &s.id)))
        .collect();
    Ok(HttpResponse::Ok().json(json!({"items": items, "next_cursor": next_cursor})))
}

/// `GET /api/v1/services/{id}`; ids and aliases in any case.
pub async fn one(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let service = find_service(&state, &path)?;
    let one = [service];
    let (counts, open) = tokio::join!(recent_counts(&state, &one), open_incidents(&state));
    let view = ServiceView::new(service, counts[0], status_of(&open, &service.id));
    let mut body = serde_json::to_value(view).map_err(|e| {
        tracing::error!(error = %e, "serializing a service");
        ApiError::new(Code::Internal, "internal error")
    })?;
    let incident = open.as_ref().and_then(|o| o.get(&service.id)).map(|a| {
        let mut a = a.clone();
        a.timeline.clear();
        a
    });
    body["open_incident"] = serde_json::to_value(incident).unwrap_or_default();
    Ok(HttpResponse::Ok().json(body))
}

#[derive(Serialize)]
struct Point {
    t: String,
    reports: u64,
    /// Expected count (the detector's baseline); null where the detector
    /// has not judged these minutes (before it ran, or older than the
    /// minute buckets' retention).
    baseline: Option<f64>,
    /// Alert threshold: the count at which the detector's short window would
    /// alert, spread over its minutes and summed per step.
    upper: Option<f64>,
}

/// `GET /api/v1/services/{id}/series?window=24h&step=15m`: one point per step,
/// the last one being the current, partial step. Minute buckets serve windows
/// inside their retention; older windows use the 15-minute rollups.
pub async fn series(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: Query,
) -> Result<HttpResponse, ApiError> {
    let service = find_service(&state, &path)?;
    let window = duration_param(&query, "window", 24 * 60)?;
    let step = match query.get("step") {
        Some(_) => duration_param(&query, "step", 0)?,
        None => default_step(window),
    };
    if step > window {
        return Err(ApiError::new(
            Code::InvalidParameter,
            "step must not exceed window",
        ));
    }
    let retention_minutes = state.retention.rollup_ttl_secs / 60;
    if window > retention_minutes {
        return Err(ApiError::new(
            Code::InvalidParameter,
            format!(
                "window exceeds the retention of {} days",
                retention_minutes / 1440
            ),
        ));
    }
    let points = (window + step - 1) / step;
    let points = points as usize;
    if points > state.settings.api.max_series_points {
        return Err(ApiError::new(
            Code::InvalidParameter,
            format!(
                "window / step gives {points} points; the limit is {} (api.max_series_points)",
                state.settings.api.max_series_points
            ),
        ));
    }
    let now = Utc::now().timestamp();
    let end = (now.div_euclid(60).div_euclid(step) + 1) * step;
    let start = end - points as i64 * step;
    // Minute buckets expire a whole hour at a time, so they cover the last
    // minute_ttl minus one hour whatever the clock; further back, rollups.
    let minute_span = state.retention.minute_ttl_secs / 60 - 60;
    let mut expected: Vec<Option<(f64, f64)>> = vec![None; points];
    let counts: Vec<u64> = if end - start <= minute_span {
        let count = points * step as usize;
        let ids = [service.id.as_str()];
        let (minutes, per_minute) = tokio::join!(
            state.store.minute_totals(&ids, start, count),
            state.store.expected(&service.id, start, count),
        );
        let minutes = minutes.map_err(|e| store_error(&state, "minute_totals", e))?;
        // Without the detector's numbers the counts still serve.
        let per_minute = per_minute.unwrap_or_else(|e| {
            state.metrics.store_error("expected", &e);
            vec![None; count]
        });
        for (slot, chunk) in expected.iter_mut().zip(per_minute.chunks(step as usize)) {
            let known: Vec<(f64, f64)> = chunk.iter().flatten().copied().collect();
            if !known.is_empty() {
                // Minutes the worker has not judged yet count at the mean.
                let scale = chunk.len() as f64 / known.len() as f64;
                let (e, u) = known
                    .iter()
                    .fold((0.0, 0.0), |(e, u), (ke, ku)| (e + ke, u + ku));
                *slot = Some((round2(e * scale), round2(u * scale)));
            }
        }
        minutes[0]
            .chunks(step as usize)
            .map(|c| c.iter().sum())
            .collect()
    } else if step % 15 == 0 {
        let quarters = state
            .store
            .quarter_totals(&service.id, start / 15, points * (step / 15) as usize)
            .await
            .map_err(|e| store_error(&state, "quarter_totals", e))?;
        quarters
            .chunks((step / 15) as usize)
            .map(|c| c.iter().sum())
            .collect()
    } else {
        return Err(ApiError::new(
            Code::InvalidParameter,
            format!(
                "windows longer than {} h are served from 15-minute rollups and need a step that is a multiple of 15m",
                minute_span / 60
            ),
        ));
    };
    let points: Vec<Point> = counts
        .into_iter()
        .zip(expected)
        .enumerate()
        .map(|(i, (reports, expected))| Point {
            t: rfc3339_minute(start + i as i64 * step),
            reports,
            baseline: expected.map(|e| e.0),
            upper: expected.map(|e| e.1),
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "service": service.id,
        "window_secs": window * 60,
        "step_secs": step * 60,
        "points": points,
    })))
}

/// `GET /api/v1/services/{id}/breakdown?window=1h`: problems and countries
/// of the counted reports, with shares of the total. Resolution is 5 minutes.
pub async fn breakdown(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: Query,
) -> Result<HttpResponse, ApiError> {
    let service = find_service(&state, &path)?;
    let window = duration_param(&query, "window", 60)?;
    let max = state.settings.api.max_breakdown_window_secs as i64 / 60;
    if window > max {
        return Err(ApiError::new(
            Code::InvalidParameter,
            format!("window must be at most {max}m (api.max_breakdown_window_secs)"),
        ));
    }
    // Problems and countries are kept per 5-minute slot: widen the window to
    // whole slots so that totals, breakdown and reporters cover the same span.
    let now = now_minute();
    let from = (now - window + 1).div_euclid(5) * 5;
    let count = (now - from + 1) as usize;
    let ids = [service.id.as_str()];
    let (totals, breakdown, reporters) = tokio::join!(
        state.store.minute_totals(&ids, from, count),
        state.store.breakdown(&service.id, from, count),
        state.store.distinct_reporters(&service.id, from, count),
    );
    let totals = totals.map_err(|e| store_error(&state, "minute_totals", e))?;
    let breakdown = breakdown.map_err(|e| store_error(&state, "breakdown", e))?;
    let reporters = reporters.map_err(|e| store_error(&state, "distinct_reporters", e))?;
    let reports: u64 = totals[0].iter().sum();
    let shares = |map: &std::collections::BTreeMap<String, u64>, key: &str| {
        let mut rows: Vec<(&String, &u64)> = map.iter().collect();
        rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        rows.into_iter()
            .map(|(name, &n)| json!({ key: name, "count": n, "share": round4(n as f64 / reports.max(1) as f64) }))
            .collect::<Vec<_>>()
    };
    Ok(HttpResponse::Ok().json(json!({
        "service": service.id,
        "window_secs": window * 60,
        "from": rfc3339_minute(from),
        "reports": reports,
        "distinct_reporters": reporters,
        "problems": shares(&breakdown.problems, "problem"),
        "countries": shares(&breakdown.countries, "country"),
    })))
}

/// `GET /api/v1/companies`.
pub async fn companies(state: web::Data<AppState>) -> HttpResponse {
    let items: Vec<serde_json::Value> = state
        .registry
        .companies()
        .iter()
        .map(|c| {
            let services: Vec<&str> = state
                .registry
                .services_of(&c.id)
                .map(|s| s.id.as_str())
                .collect();
            json!({"id": c.id, "name": c.name, "services": services})
        })
        .collect();
    HttpResponse::Ok().json(json!({"items": items, "next_cursor": null}))
}

/// `GET /api/v1/companies/{id}`: the company's services side by side.
pub async fn company(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let company: &Company = state.registry.company(&path).ok_or_else(|| {
        ApiError::new(
            Code::CompanyNotFound,
            format!("no company {:?}", path.as_str()),
        )
    })?;
    let services: Vec<&Service> = state.registry.services_of(&company.id).collect();
    let (counts, open) = tokio::join!(recent_counts(&state, &services), open_incidents(&state));
    let views: Vec<ServiceView> = services
        .iter()
        .zip(counts)
        .map(|(s, c)| ServiceView::new(s, c, status_of(&open, &s.id)))
        .collect();
    // The worst status of its services; null when the store cannot say.
    let status = open.as_ref().map(|_| {
        views
            .iter()
            .filter_map(|v| v.status)
            .max_by_key(|s| match *s {
                "problem" => 2,
                "possible" => 1,
                _ => 0,
            })
            .unwrap_or("ok")
    });
    Ok(HttpResponse::Ok().json(json!({
        "id": company.id,
        "name": company.name,
        "status": status,
        "services": views,
    })))
}

fn store_error(state: &AppState, op: &str, e: crate::store::StoreError) -> ApiError {
    state.metrics.store_error(op, &e);
    tracing::warn!(error = %e, op, "store read failed");
    ApiError::new(
        Code::StoreUnavailable,
        "The store cannot answer right now; retry shortly.",
    )
    .retry_after(state.settings.intake.retry_after_secs)
}

fn page_limit(state: &AppState, query: &Query) -> Result<usize, ApiError> {
    let api = &state.settings.api;
    match query.get("limit") {
        None => Ok(api.default_page_size),
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=api.max_page_size).contains(n))
            .ok_or_else(|| {
                ApiError::new(
                    Code::InvalidParameter,
                    format!(
                        "limit must be a whole number from 1 to {}",
                        api.max_page_size
                    ),
                )
            }),
    }
}

/// A duration like `90m`, `24h` or `7d`, in whole minutes.
fn duration_param(query: &Query, name: &str, default_minutes: i64) -> Result<i64, ApiError> {
    let Some(text) = query.get(name) else {
        return Ok(default_minutes);
    };
    parse_minutes(text).ok_or_else(|| {
        ApiError::new(
            Code::InvalidParameter,
            format!(
                "{name} must be a positive duration in m, h or d, like 15m, 24h or 7d; got {text:?}"
            ),
        )
    })
}

pub fn parse_minutes(text: &str) -> Option<i64> {
    let text = text.trim();
    let (number, factor) = [("m", 1), ("h", 60), ("d", 1440)]
        .into_iter()
        .find_map(|(unit, factor)| text.strip_suffix(unit).map(|n| (n, factor)))?;
    if !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = number.parse().ok().filter(|n| *n > 0 && *n <= 10_000_000)?;
    Some(n * factor)
}

/// About 100 to 300 points for any window.
fn default_step(window: i64) -> i64 {
    [1, 5, 15, 60, 360, 1440]
        .into_iter()
        .find(|step| window / step <= 300)
        .unwrap_or(1440)
}

fn rfc3339_minute(minute: i64) -> String {
    minute_start(minute).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_minutes() {
        assert_eq!(parse_minutes("15m"), Some(15));
        assert_eq!(parse_minutes("24h"), Some(1440));
        assert_eq!(parse_minutes("7d"), Some(10080));
        for bad in [
            "", "m", "0m", "-5m", "+5m", "5s", "1.5h", "h1", "1é", "é", "5 m",
        ] {
            assert_eq!(parse_minutes(bad), None, "{bad}");
        }
    }

    #[test]
    fn default_step_keeps_charts_readable() {
        assert_eq!(default_step(60), 1);
        assert_eq!(default_step(1440), 5);
        assert_eq!(default_step(10080), 60);
    }
}
