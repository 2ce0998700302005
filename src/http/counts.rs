//! A service's counts: report series for charts (with the detector's
//! expected count and threshold), problem and country breakdowns, and the
//! CSV export for analysis, each span bounded before anything is read.
//! The numbers come from [`crate::read`], shared with the web pages.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::doc::{BadRequest, ServiceId, ServiceNotFound, Unavailable};
use super::{ApiError, Code};
use crate::domain::Share;
use crate::domain::time::now_minute;
use crate::read::{self, Reader};

/// The query of `GET /api/v1/services/{id}/series`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SeriesQuery {
    /// Duration: 90m, 24h, 7d; at most the rollup retention less a day (store.rollup_ttl_secs, 35 days by default)
    #[param(pattern = r"^[1-9][0-9]{0,6}[mhd]$", default = "24h")]
    window: Option<String>,
    /// Duration down to 1m, at most window; default about 100-300 points; window / step at most api.max_series_points (2880); a multiple of 15m for windows reaching past the minute buckets (store.minute_ttl_secs less an hour, 47 h by default)
    #[param(pattern = r"^[1-9][0-9]{0,6}[mhd]$")]
    step: Option<String>,
}

/// Report counts per step
///
/// Counts per step with the detector's expected count (`baseline`) and alert
/// threshold (`upper`). The last point is the current, partial step.
#[utoipa::path(
    get, path = "/api/v1/services/{id}/series", tag = "services", operation_id = "getSeries",
    params(ServiceId, SeriesQuery),
    responses((status = 200, description = "The series", body = read::Series), BadRequest, ServiceNotFound, Unavailable)
)]
pub async fn series(
    reader: web::Data<Reader>,
    path: web::Path<String>,
    query: web::Query<SeriesQuery>,
) -> Result<HttpResponse, ApiError> {
    let service = reader.find_service(&path)?;
    let window = duration_param(&query.window, "window", 24 * 60)?;
    let step = match &query.step {
        Some(_) => duration_param(&query.step, "step", 0)?,
        None => default_step(window),
    };
    let series = reader.series(service, window, step, now_minute()).await?;
    Ok(HttpResponse::Ok().json(&*series))
}

/// The query of `GET /api/v1/services/{id}/breakdown`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
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

/// Problems and countries
///
/// Problems and countries of the counted reports over a window, with shares of
/// the total. Resolution is 5 minutes.
#[utoipa::path(
    get, path = "/api/v1/services/{id}/breakdown", tag = "services", operation_id = "getBreakdown",
    params(ServiceId, BreakdownQuery),
    responses((status = 200, description = "The breakdown", body = Breakdown), BadRequest, ServiceNotFound, Unavailable)
)]
pub async fn breakdown(
    reader: web::Data<Reader>,
    path: web::Path<String>,
    query: web::Query<BreakdownQuery>,
) -> Result<HttpResponse, ApiError> {
    let service = reader.find_service(&path)?;
    let window = duration_param(&query.window, "window", 60)?;
    let b = reader.breakdown(service, window, now_minute()).await?;
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
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    #[param(format = DateTime)]
    from: Option<String>,
    #[param(format = DateTime)]
    to: Option<String>,
    /// Duration down to 1m, like 15m, 24h or 7d; at most the span from `from` to `to`; the span / step at most web.max_export_rows (100000) rows; a multiple of 15m for spans reaching past the minute buckets
    #[param(pattern = r"^[1-9][0-9]{0,6}[mhd]$", default = "1h")]
    step: Option<String>,
}

/// Export counts as CSV
///
/// Counts per step for analysis, as `timestamp,reports,baseline,upper` (the
/// last two empty where the detector's numbers are not kept). `from` and `to`
/// are RFC 3339 (default: the last 7 days), `step` a duration (default 1h).
#[utoipa::path(
    get, path = "/api/v1/services/{id}/history.csv", tag = "services", operation_id = "exportHistory",
    params(ServiceId, HistoryQuery),
    responses((status = 200, description = "CSV", body = String, content_type = "text/csv"), BadRequest, ServiceNotFound, Unavailable)
)]
pub async fn history_csv(
    reader: web::Data<Reader>,
    path: web::Path<String>,
    query: web::Query<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let service = reader.find_service(&path)?;
    let now = now_minute();
    let minute_of = |value: &Option<String>, name: &str, default: i64| -> Result<i64, ApiError> {
        match value {
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
    let step = duration_param(&query.step, "step", 60)?;
    let to = minute_of(&query.to, "to", now + 1)?.min(now + 1);
    let from = minute_of(&query.from, "from", to - 7 * 1440)?.div_euclid(step) * step;
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
    let oldest = now - reader.retention().rollup_ttl_secs / 60;
    if from < oldest {
        return Err(ApiError::new(
            Code::InvalidParameter,
            format!(
                "from is older than the retention of {} days",
                reader.retention().rollup_ttl_secs / 86400
            ),
        ));
    }
    let points = ((to - from + step - 1) / step) as usize;
    let max = reader.max_export_rows();
    if points > max {
        return Err(ApiError::new(
            Code::InvalidParameter,
            format!(
                "the export would have {points} rows; the limit is {max} (web.max_export_rows)"
            ),
        ));
    }
    let rows = reader.counts(service, from, points, step, now).await?;
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

/// The parameter `name`, a duration like `90m`, `24h` or `7d`, in whole
/// minutes.
fn duration_param(
    value: &Option<String>,
    name: &str,
    default_minutes: i64,
) -> Result<i64, ApiError> {
    let Some(text) = value else {
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
