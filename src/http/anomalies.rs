//! The anomaly feed: `GET /api/v1/anomalies` (filters, newest first, paged
//! by an opaque cursor) and `GET /api/v1/anomalies/{id}` (with the
//! minute-by-minute timeline).

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::{ApiError, AppState, Code};
use crate::domain::{Anomaly, AnomalyStatus};
use crate::store::{FeedRange, FeedStore};

type Query = web::Query<HashMap<String, String>>;

/// The feed's filters, validated.
#[derive(Debug, Default)]
pub struct Filter {
    pub service: Option<String>,
    pub company: Option<String>,
    pub status: Option<AnomalyStatus>,
    pub severity: Option<String>,
}

impl Filter {
    pub fn keeps(&self, a: &Anomaly) -> bool {
        self.service.as_ref().is_none_or(|s| &a.service == s)
            && self.company.as_ref().is_none_or(|c| &a.company == c)
            && self.status.is_none_or(|s| a.status == s)
            && self.severity.as_ref().is_none_or(|s| &a.severity == s)
    }
}

/// A 400 naming the query parameter `name` in its `parameter` member.
fn bad(name: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(Code::InvalidParameter, message).with("parameter", json!(name))
}

/// The query parameters `GET /api/v1/anomalies` understands; any other is
/// refused, so a misspelt filter is not silently no filter.
const FEED_PARAMETERS: [&str; 8] = [
    "service", "company", "status", "severity", "since", "until", "limit", "cursor",
];

fn time_param(query: &HashMap<String, String>, name: &str) -> Result<Option<i64>, ApiError> {
    query
        .get(name)
        .map(|t| {
            chrono::DateTime::parse_from_rfc3339(t)
                .map(|d| d.timestamp())
                .map_err(|_| {
                    bad(
                        name,
                        format!("{name} must be an RFC 3339 time like 2024-03-05T15:00:00Z"),
                    )
                })
        })
        .transpose()
}

pub fn parse_filter(state: &AppState, query: &HashMap<String, String>) -> Result<Filter, ApiError> {
    let service = match query.get("service") {
        Some(s) => Some(
            state
                .registry
                .find(s)
                .ok_or_else(|| ApiError::new(Code::ServiceNotFound, format!("no service {s:?}")))?
                .id
                .clone(),
        ),
        None => None,
    };
    let company = match query.get("company") {
        Some(c) => Some(super::read::find_company(state, c)?.id.clone()),
        None => None,
    };
    let status = match query.get("status").map(String::as_str) {
        None => None,
        Some("open") => Some(AnomalyStatus::Open),
        Some("resolved") => Some(AnomalyStatus::Resolved),
        Some(other) => {
            return Err(bad(
                "status",
                format!("status must be open or resolved, got {other:?}"),
            ));
        }
    };
    let severity = match query.get("severity").map(String::as_str) {
        None => None,
        Some(s @ ("possible" | "problem")) => Some(s.to_string()),
        Some(other) => {
            return Err(bad(
                "severity",
                format!("severity must be possible or problem, got {other:?}"),
            ));
        }
    };
    Ok(Filter {
        service,
        company,
        status,
        severity,
    })
}

/// The cursor is `<start>_<id>` of the last item of the previous page.
/// A cursor as the feed gives it (the OpenAPI document's pattern
/// `^[0-9]{1,18}_[\s\S]+$`): a start in Unix seconds and an anomaly id.
pub fn parse_cursor(text: &str) -> Option<(i64, String)> {
    let (t, id) = text.split_once('_')?;
    let digits = (1..=18).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit());
    (digits && !id.is_empty()).then_some(())?;
    Some((t.parse().ok()?, id.to_string()))
}

/// A page of the feed as asked by `query`: `limit`, `cursor`, `since`,
/// `until` and the filters.
pub async fn page_of(
    state: &AppState,
    query: &HashMap<String, String>,
) -> Result<(Vec<Anomaly>, Option<String>), ApiError> {
    let mut unknown: Vec<&str> = query
        .keys()
        .map(String::as_str)
        .filter(|k| !FEED_PARAMETERS.contains(k))
        .collect();
    unknown.sort_unstable();
    if let Some(first) = unknown.first() {
        let first: String = first.chars().take(64).collect();
        return Err(bad(
            &first,
            format!(
                "unknown query parameter {:?}; this endpoint takes {}",
                unknown.join(", "),
                FEED_PARAMETERS.join(", ")
            ),
        ));
    }
    let filter = parse_filter(state, query)?;
    let api = &state.settings.api;
    let limit = match query.get("limit") {
        None => api.default_page_size,
        Some(t) => t
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=api.max_page_size).contains(n))
            .ok_or_else(|| {
                bad(
                    "limit",
                    format!("limit must be from 1 to {}", api.max_page_size),
                )
            })?,
    };
    let range = FeedRange {
        after: match query.get("cursor") {
            Some(c) => Some(
                parse_cursor(c).ok_or_else(|| bad("cursor", "cursor is not one this API gave"))?,
            ),
            None => None,
        },
        since: time_param(query, "since")?,
        until: time_param(query, "until")?,
        limit,
    };
    if let (Some(since), Some(until)) = (range.since, range.until)
        && since > until
    {
        return Err(bad("until", "since must not be after until"));
    }
    page(state, &filter, range).await
}

/// Up to `range.limit` anomalies that pass `filter`, newest first, without
/// timelines, and the cursor of the next page. Reads at most
/// `api.max_feed_scan` documents.
pub async fn page(
    state: &AppState,
    filter: &Filter,
    mut range: FeedRange,
) -> Result<(Vec<Anomaly>, Option<String>), ApiError> {
    let limit = range.limit;
    range.limit = limit.max(50);
    let mut items: Vec<Anomaly> = Vec::new();
    let mut more = false;
    let mut scanned = 0usize;
    loop {
        let page = state
            .store
            .anomalies(&range)
            .await
            .map_err(|e| super::read::store_error(state, "feed", e))?;
        let exhausted = page.len() < range.limit;
        scanned += page.len();
        for (t, id, doc) in page {
            range.after = Some((t, id));
            let Ok(mut a) = serde_json::from_str::<Anomaly>(&doc) else {
                continue;
            };
            if !filter.keeps(&a) {
                continue;
            }
            if items.len() == limit {
                more = true;
                break;
            }
            a.timeline.clear();
            items.push(a);
        }
        if more || exhausted {
            break;
        }
        if scanned >= state.settings.api.max_feed_scan {
            // A narrow filter over a long feed: answer what was found and
            // let the client go on from where the scan stopped.
            more = true;
            break;
        }
    }
    let next_cursor = match (more, items.len() == limit) {
        (false, _) => None,
        (true, true) => items.last().map(|a| format!("{}_{}", a.started_unix, a.id)),
        (true, false) => range.after.as_ref().map(|(t, id)| format!("{t}_{id}")),
    };
    Ok((items, next_cursor))
}

/// `GET /api/v1/anomalies`.
pub async fn list(state: web::Data<AppState>, query: Query) -> Result<HttpResponse, ApiError> {
    let (items, next_cursor) = page_of(&state, &query).await?;
    Ok(HttpResponse::Ok().json(json!({"items": items, "next_cursor": next_cursor})))
}

/// `GET /api/v1/anomalies/{id}`.
pub async fn one(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let doc = state
        .store
        .anomaly(&path)
        .await
        .map_err(|e| super::read::store_error(&state, "feed", e))?
        .ok_or_else(|| {
            ApiError::new(
                Code::AnomalyNotFound,
                format!("no anomaly {:?}", path.as_str()),
            )
        })?;
    let anomaly: Anomaly = serde_json::from_str(&doc).map_err(|e| {
        tracing::error!(error = %e, id = %path, "stored anomaly does not parse");
        ApiError::new(Code::Internal, "internal error")
    })?;
    Ok(HttpResponse::Ok().json(anomaly))
}
