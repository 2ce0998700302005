//! Services and companies: the registry joined with recent counts, report
//! series for charts, and problem/country breakdowns. The numbers come from
//! [`crate::read`], shared with the web pages.

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::doc::{
    BadRequest, CompanyId, CompanyNotFound, Limit, ServiceId, ServiceNotFound, Unavailable,
};
use super::{ApiError, AppState, Code, sorted_json};
use crate::domain::time::now_minute;
use crate::domain::{Anomaly, Company, Service, Share, Status};
use crate::read::{self, OpenIncidents, Recent, Span, status_of};

type Query = web::Query<HashMap<String, String>>;

/// A service as the API shows it.
#[derive(Serialize, ToSchema)]
#[schema(as = Service)]
pub struct ServiceView<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub company: &'a str,
    pub category: String,
    pub aliases: &'a [String],
    pub problems: Vec<&'static str>,
    /// `ok`, `possible` or `problem` (the severity of the open incident);
    /// null when the store cannot answer.
    #[schema(required = true)]
    pub status: Option<Status>,
    /// Counted reports in the last 15 minutes; null when the store is unreachable.
    #[schema(required = true)]
    pub reports_15m: Option<u64>,
    #[schema(required = true)]
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

/// The query of `GET /api/v1/services` (read as a map: the handler takes
/// these names).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ListQuery {
    /// `next_cursor` of the previous page (the last service id it listed); empty: the first page
    cursor: Option<String>,
    category: Option<String>,
}

/// A page of services
#[derive(Serialize, ToSchema)]
pub struct ServicePage<'a> {
    pub items: Vec<ServiceView<'a>>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// `GET /api/v1/services?category&limit&cursor`, sorted by id.
#[utoipa::path(
    get,
    path = "/api/v1/services",
    tag = "services",
    operation_id = "listServices",
    summary = "List services",
    description = "Services sorted by id, with status and recent counts.",
    params(Limit, ListQuery),
    responses((status = 200, description = "A page of services", body = ServicePage), BadRequest)
)]
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
    sorted_json(ServicePage { items, next_cursor })
}

/// A service with its open incident.
#[derive(Serialize, ToSchema)]
pub struct ServiceDetail<'a> {
    #[serde(flatten)]
    pub service: ServiceView<'a>,
    #[schema(required = false)]
    pub open_incident: Option<&'a Anomaly>,
}

/// `GET /api/v1/services/{id}`; ids and aliases in any case.
#[utoipa::path(
    get,
    path = "/api/v1/services/{id}",
    tag = "services",
    operation_id = "getService",
    summary = "One service",
    description = "The service (id or alias, any case) with its status and open incident.",
    params(ServiceId),
    responses((status = 200, description = "The service", body = ServiceDetail), ServiceNotFound)
)]
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
    let detail = ServiceDetail {
        service: ServiceView::new(service, counts[0], &open),
        open_incident: open.as_ref().and_then(|o| o.get(&service.id)),
    };
    sorted_json(detail)
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

/// The query of `GET /api/v1/services/{id}/series`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct SeriesQuery {
    /// Duration: 90m, 24h, 7d; at most the rollup retention less a day (store.rollup_ttl_secs, 35 days by default)
    #[param(pattern = r"^[1-9][0-9]{0,6}[mhd]$", default = "24h")]
    window: Option<String>,
    /// Duration down to 1m, at most window; default about 100-300 points; window / step at most api.max_series_points (2880); a multiple of 15m for windows reaching past the minute buckets (store.minute_ttl_secs less an hour, 47 h by default)
    #[param(pattern = r"^[1-9][0-9]{0,6}[mhd]$")]
    step: Option<String>,
}

/// `GET /api/v1/services/{id}/series?window=24h&step=15m`: one point per step,
/// the last one being the current, partial step.
#[utoipa::path(
    get,
    path = "/api/v1/services/{id}/series",
    tag = "services",
    operation_id = "getSeries",
    summary = "Report counts per step",
    description = "Counts per step with the detector's expected count (`baseline`) and alert threshold (`upper`). The last point is the current, partial step.",
    params(ServiceId, SeriesQuery),
    responses((status = 200, description = "The series", body = read::Series), BadRequest, ServiceNotFound, Unavailable)
)]
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

/// The query of `GET /api/v1/services/{id}/breakdown`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct BreakdownQuery {
    #[param(pattern = r"^[1-9][0-9]{0,6}[mhd]$", default = "1h")]
    window: Option<String>,
}

/// The problems and countries of a service's counted reports.
// Fields in the order of their names, as the answer has always had them.
#[derive(Serialize, ToSchema)]
pub struct Breakdown {
    countries: Vec<CountryShare>,
    /// Distinct networks (IPv4 /24, IPv6 /48 by default) the reports came from over the window, estimated like distinct_reporters. One network counts at most intake.max_counted_per_network reports per service per clock window of the dedup window, counted from the Unix epoch (with the default hour, 14:00-15:00 UTC, ...).
    distinct_networks: u64,
    /// Distinct reporters (a client_id, or else address and User-Agent) over the window, estimated (HyperLogLog, about 1% error) with Redis.
    distinct_reporters: u64,
    #[schema(format = DateTime)]
    from: String,
    problems: Vec<ProblemShare>,
    reports: u64,
    service: String,
    window_secs: i64,
}

/// A problem's share of the reports.
#[derive(Serialize, ToSchema)]
pub struct ProblemShare {
    count: u64,
    problem: String,
    share: f64,
}

/// A country's share of the reports.
#[derive(Serialize, ToSchema)]
pub struct CountryShare {
    count: u64,
    country: String,
    share: f64,
}

/// `GET /api/v1/services/{id}/breakdown?window=1h`: problems and countries
/// of the counted reports, with shares of the total. Resolution is 5 minutes.
#[utoipa::path(
    get,
    path = "/api/v1/services/{id}/breakdown",
    tag = "services",
    operation_id = "getBreakdown",
    summary = "Problems and countries",
    description = "Problems and countries of the counted reports over a window, with shares.",
    params(ServiceId, BreakdownQuery),
    responses((status = 200, description = "The breakdown", body = Breakdown), BadRequest, ServiceNotFound, Unavailable)
)]
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
    let count = |s: &Share| (s.count, s.name.clone(), s.share);
    Ok(HttpResponse::Ok().json(Breakdown {
        countries: b
            .countries
            .iter()
            .map(count)
            .map(|(count, country, share)| CountryShare {
                count,
                country,
                share,
            })
            .collect(),
        distinct_networks: b.distinct_networks,
        distinct_reporters: b.distinct_reporters,
        from: b.from.clone(),
        problems: b
            .problems
            .iter()
            .map(count)
            .map(|(count, problem, share)| ProblemShare {
                count,
                problem,
                share,
            })
            .collect(),
        reports: b.reports,
        service: b.service.clone(),
        window_secs: b.window_secs,
    }))
}

/// The query of `GET /api/v1/services/{id}/history.csv`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct HistoryQuery {
    #[param(format = DateTime)]
    from: Option<String>,
    #[param(format = DateTime)]
    to: Option<String>,
    /// Duration down to 1m, like 15m, 24h or 7d; at most the span from `from` to `to`; the span / step at most web.max_export_rows (100000) rows; a multiple of 15m for spans reaching past the minute buckets
    #[param(pattern = r"^[1-9][0-9]{0,6}[mhd]$", default = "1h")]
    step: Option<String>,
}

/// `GET /api/v1/services/{id}/history.csv?from&to&step`: counts per step
/// for analysis, as `timestamp,reports,baseline,upper` (the last two empty
/// where the detector's numbers are not kept). `from` and `to` are RFC 3339
/// (default: the last 7 days), `step` a duration (default 1h).
#[utoipa::path(
    get,
    path = "/api/v1/services/{id}/history.csv",
    tag = "services",
    operation_id = "exportHistory",
    summary = "Export counts as CSV",
    description = "Columns `timestamp,reports,baseline,upper` (the last two empty where not kept). Defaults: the last 7 days per hour.",
    params(ServiceId, HistoryQuery),
    responses((status = 200, description = "CSV", body = String, content_type = "text/csv"), BadRequest, ServiceNotFound, Unavailable)
)]
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

/// Companies and their service ids.
#[derive(Serialize, ToSchema)]
pub struct CompanyList<'a> {
    items: Vec<CompanyEntry<'a>>,
    /// Always null: one page.
    #[schema(schema_with = null, required = true)]
    next_cursor: Option<String>,
}

/// The schema of `null`.
fn null() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::Null)
        .build()
}

/// A company and its service ids.
#[derive(Serialize, ToSchema)]
pub struct CompanyEntry<'a> {
    id: &'a str,
    name: &'a str,
    services: Vec<&'a str>,
}

/// `GET /api/v1/companies`.
#[utoipa::path(
    get,
    path = "/api/v1/companies",
    tag = "services",
    operation_id = "listCompanies",
    summary = "List companies",
    description = "Companies and their service ids.",
    responses((status = 200, description = "Companies", body = CompanyList))
)]
pub async fn companies(state: web::Data<AppState>) -> HttpResponse {
    let items: Vec<CompanyEntry> = state
        .registry
        .companies()
        .iter()
        .map(|c| {
            let services: Vec<&str> = state
                .registry
                .services_of(&c.id)
                .map(|s| s.id.as_str())
                .collect();
            CompanyEntry {
                id: &c.id,
                name: &c.name,
                services,
            }
        })
        .collect();
    HttpResponse::Ok().json(CompanyList {
        items,
        next_cursor: None,
    })
}

/// A company with its services and its worst status.
// Fields in the order of their names (the services' keys are sorted too).
#[derive(Serialize, ToSchema)]
#[schema(as = Company)]
pub struct CompanyView<'a> {
    id: &'a str,
    name: &'a str,
    services: Vec<ServiceView<'a>>,
    /// The worst status of its services; null when the store cannot say.
    #[schema(required = true)]
    status: Option<Status>,
}

/// `GET /api/v1/companies/{id}`: the company's services side by side.
#[utoipa::path(
    get,
    path = "/api/v1/companies/{id}",
    tag = "services",
    operation_id = "getCompany",
    summary = "One company",
    description = "The company's services side by side and its worst status.",
    params(CompanyId),
    responses((status = 200, description = "The company", body = CompanyView), CompanyNotFound)
)]
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
    let status = open
        .as_ref()
        .map(|_| read::worst(views.iter().filter_map(|v| v.status)));
    // Through a `Value`: the services' keys sorted, as they always were.
    sorted_json(CompanyView {
        id: &company.id,
        name: &company.name,
        services: views,
        status,
    })
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
