//! Services and companies: the registry joined with recent counts, report
//! series for charts, and problem/country breakdowns. The numbers come from
//! [`crate::read`], shared with the web pages.

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use serde::Serialize;
use serde_json::json;

use super::{ApiError, AppState, Code};
use crate::domain::time::now_minute;
use crate::domain::{Company, Service, Share, Status};
use crate::read::{self, OpenIncidents, Recent, Span, status_of};

type Query = web::Query<HashMap<String, String>>;

/// A service as the API shows it.
#[derive(Serialize)]
pub struct ServiceView<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub company: &'a str,
    pub category: String,
    pub aliases: &'a [String],
    pub problems: Vec<&'static str>,
    /// `ok`, `possible` or `problem` (the severity of the open incident);
    /// null when the store cannot answer.
    pub status: Option<Status>,
    /// Counted reports in the last 15 minutes; null when the store is unreachable.
    pub reports_15m: Option<u64>,
    pub reports_24h: Option<u64>,
}

impl<'a> ServiceView<'a> {
    pub fn new(s: &'a Service, recent: Option<Recent>, open: &Option<OpenIncidents>) -> Self {
        ServiceView {
            id: &s.id,
            name: &s.name,
            company: &s.company,
            category: s.category.to_string(),
            aliases: &s.aliases,
            problems: s.problems.iter().map(|p| p.as_str()).collect(),
            status: status_of(open, &s.id),
            reports_15m: recent.map(|r| r.m15),
            reports_24h: recent.and_then(|r| r.h24),
        }
    }
}

/// `GET /api/v1/services?category&limit&cursor`, sorted by id.
pub async fn list(state: web::Data<AppState>, query: Query) -> Result<HttpResponse, ApiError> {
    let limit = state
        .reader
        .page_limit(query.get("limit").map(String::as_str))?;
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
    let (counts, open) = tokio::join!(
        state.reader.recent_counts(&page, Span::Day, now_minute()),
        state.reader.open_incidents()
    );
    let items: Vec<ServiceView> = page
        .iter()
        .zip(counts)
        .map(|(s, c)| ServiceView::new(s, c, &open))
        .collect();
    Ok(HttpResponse::Ok().json(json!({"items": items, "next_cursor": next_cursor})))
}

/// `GET /api/v1/services/{id}`; ids and aliases in any case.
pub async fn one(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let service = state.reader.find_service(&path)?;
    let one = [service];
    let (counts, open) = tokio::join!(
        state.reader.recent_counts(&one, Span::Day, now_minute()),
        state.reader.open_incidents()
    );
    let view = ServiceView::new(service, counts[0], &open);
    let mut body = serde_json::to_value(view).map_err(|e| {
        tracing::error!(error = %e, "serializing a service");
        ApiError::new(Code::Internal, "internal error")
    })?;
    let incident = open.as_ref().and_then(|o| o.get(&service.id));
    body["open_incident"] = serde_json::to_value(incident).unwrap_or_default();
    Ok(HttpResponse::Ok().json(body))
}

/// The `window` and `step` of a series request, in minutes.
pub fn series_params(query: &HashMap<String, String>) -> Result<(i64, i64), ApiError> {
    let window = duration_param(query, "window", 24 * 60)?;
    let step = match query.get("step") {
        Some(_) => duration_param(query, "step", 0)?,
        None => default_step(window),
    };
    Ok((window, step))
}

/// `GET /api/v1/services/{id}/series?window=24h&step=15m`: one point per step,
/// the last one being the current, partial step.
pub async fn series(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: Query,
) -> Result<HttpResponse, ApiError> {
    let service = state.reader.find_service(&path)?;
    let (window, step) = series_params(&query)?;
    let series = state
        .reader
        .series(service, window, step, now_minute())
        .await?;
    Ok(HttpResponse::Ok().json(&*series))
}

/// `GET /api/v1/services/{id}/breakdown?window=1h`: problems and countries
/// of the counted reports, with shares of the total. Resolution is 5 minutes.
pub async fn breakdown(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: Query,
) -> Result<HttpResponse, ApiError> {
    let service = state.reader.find_service(&path)?;
    let window = duration_param(&query, "window", 60)?;
    let b = state
        .reader
        .breakdown(service, window, now_minute())
        .await?;
    let rows = |shares: &[Share], key: &str| {
        shares
            .iter()
            .map(|s| json!({ key: s.name, "count": s.count, "share": s.share }))
            .collect::<Vec<_>>()
    };
    Ok(HttpResponse::Ok().json(json!({
        "service": b.service,
        "window_secs": b.window_secs,
        "from": b.from,
        "reports": b.reports,
        "distinct_reporters": b.distinct_reporters,
        "distinct_networks": b.distinct_networks,
        "problems": rows(&b.problems, "problem"),
        "countries": rows(&b.countries, "country"),
    })))
}

/// `GET /api/v1/services/{id}/history.csv?from&to&step`: counts per step
/// for analysis, as `timestamp,reports,baseline,upper` (the last two empty
/// where the detector's numbers are not kept). `from` and `to` are RFC 3339
/// (default: the last 7 days), `step` a duration (default 1h).
pub async fn history_csv(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: Query,
) -> Result<HttpResponse, ApiError> {
    let service = state.reader.find_service(&path)?;
    let now = now_minute();
    let minute_of = |name: &str, default: i64| -> Result<i64, ApiError> {
        match query.get(name) {
            None => Ok(default),
            Some(t) => chrono::DateTime::parse_from_rfc3339(t)
                .map(|d| d.timestamp().div_euclid(60))
                .map_err(|_| {
                    ApiError::new(
                        Code::InvalidParameter,
                        format!("{name} must be an RFC 3339 time like 2024-03-05T15:00:00Z"),
                    )
                }),
        }
    };
    let step = duration_param(&query, "step", 60)?;
    let to = minute_of("to", now + 1)?.min(now + 1);
    let from = minute_of("from", to - 7 * 1440)?.div_euclid(step) * step;
    if from >= to {
        return Err(ApiError::new(
            Code::InvalidParameter,
            "from must be before to",
        ));
    }
    // Each row sums its step's minutes: a step longer than the span would
    // read (and allocate for) minutes far past `to`.
    if step > to - from {
        return Err(ApiError::new(
            Code::InvalidParameter,
            format!(
                "step must not exceed the span from `from` to `to` ({} min)",
                to - from
            ),
        ));
    }
    let oldest = now - state.retention.rollup_ttl_secs / 60;
    if from < oldest {
        return Err(ApiError::new(
            Code::InvalidParameter,
            format!(
                "from is older than the retention of {} days",
                state.retention.rollup_ttl_secs / 86400
            ),
        ));
    }
    let points = ((to - from + step - 1) / step) as usize;
    let max = state.settings.web.max_export_rows;
    if points > max {
        return Err(ApiError::new(
            Code::InvalidParameter,
            format!(
                "the export would have {points} rows; the limit is {max} (web.max_export_rows)"
            ),
        ));
    }
    let rows = state
        .reader
        .counts(service, from, points, step, now)
        .await?;
    let mut csv = String::from("timestamp,reports,baseline,upper\n");
    let number = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    for p in rows {
        csv.push_str(&format!(
            "{},{},{},{}\n",
            p.t,
            p.reports,
            number(p.baseline),
            number(p.upper)
        ));
    }
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            actix_web::http::header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{}-reports.csv\"", service.id),
        ))
        .body(csv))
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
    let company: &Company = state.reader.find_company(&path)?;
    let services: Vec<&Service> = state.registry.services_of(&company.id).collect();
    let (counts, open) = tokio::join!(
        state
            .reader
            .recent_counts(&services, Span::Day, now_minute()),
        state.reader.open_incidents()
    );
    let views: Vec<ServiceView> = services
        .iter()
        .zip(counts)
        .map(|(s, c)| ServiceView::new(s, c, &open))
        .collect();
    // The worst status of its services; null when the store cannot say.
    let status = open
        .as_ref()
        .map(|_| read::worst(views.iter().filter_map(|v| v.status)));
    Ok(HttpResponse::Ok().json(json!({
        "id": company.id,
        "name": company.name,
        "status": status,
        "services": views,
    })))
}

/// A duration like `90m`, `24h` or `7d`, in whole minutes.
fn duration_param(
    query: &HashMap<String, String>,
    name: &str,
    default_minutes: i64,
) -> Result<i64, ApiError> {
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

/// A duration as the OpenAPI document's duration parameters state it,
/// `^[1-9][0-9]{0,6}[mhd]$`, in minutes.
pub fn parse_minutes(text: &str) -> Option<i64> {
    let (number, factor) = [("m", 1), ("h", 60), ("d", 1440)]
        .into_iter()
        .find_map(|(unit, factor)| text.strip_suffix(unit).map(|n| (n, factor)))?;
    let digits = number.as_bytes();
    if !(1..=7).contains(&digits.len())
        || digits[0] == b'0'
        || !digits.iter().all(u8::is_ascii_digit)
    {
        return None;
    }
    Some(number.parse::<i64>().ok()? * factor)
}

/// About 100 to 300 points for any window.
fn default_step(window: i64) -> i64 {
    [1, 5, 15, 60, 360, 1440]
        .into_iter()
        .find(|step| window / step <= 300)
        .unwrap_or(1440)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_minutes() {
        assert_eq!(parse_minutes("15m"), Some(15));
        assert_eq!(parse_minutes("24h"), Some(1440));
        assert_eq!(parse_minutes("7d"), Some(10080));
        assert_eq!(parse_minutes("9999999m"), Some(9_999_999));
        for bad in [
            "",
            "m",
            "0m",
            "-5m",
            "+5m",
            "5s",
            "1.5h",
            "h1",
            "1é",
            "é",
            "5 m",
            " 5m",
            "05m",
            "10000000m",
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
