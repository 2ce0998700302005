//! The anomaly feed as readers query it: filters, newest first, paged by an
//! opaque cursor `<start>_<id>`, and one anomaly with its timeline.

use std::collections::HashMap;

use super::{ReadError, Reader};
use crate::domain::{Anomaly, AnomalyStatus, Status};
use crate::store::{FeedRange, FeedStore};

/// The feed's filters, validated.
#[derive(Debug, Default)]
pub struct Filter {
    pub service: Option<String>,
    pub company: Option<String>,
    pub status: Option<AnomalyStatus>,
    pub severity: Option<Status>,
}

impl Filter {
    /// Whether `a` passes every filter that is set.
    pub fn keeps(&self, a: &Anomaly) -> bool {
        self.service.as_ref().is_none_or(|s| &a.service == s)
            && self.company.as_ref().is_none_or(|c| &a.company == c)
            && self.status.is_none_or(|s| a.status == s)
            && self.severity.is_none_or(|s| a.severity == s)
    }
}

/// The query parameters `GET /api/v1/anomalies` understands; any other is
/// refused, so a misspelt filter is not silently no filter.
const FEED_PARAMETERS: [&str; 8] = [
    "service", "company", "status", "severity", "since", "until", "limit", "cursor",
];

fn time_param(query: &HashMap<String, String>, name: &str) -> Result<Option<i64>, ReadError> {
    query
        .get(name)
        .map(|t| {
            chrono::DateTime::parse_from_rfc3339(t)
                .map(|d| d.timestamp())
                .map_err(|_| {
                    ReadError::parameter(
                        name,
                        format!("{name} must be an RFC 3339 time like 2024-03-05T15:00:00Z"),
                    )
                })
        })
        .transpose()
}

/// A cursor as the feed gives it (the OpenAPI document's pattern
/// `^[0-9]{1,18}_[\s\S]+$`): the start in Unix seconds and the id of the
/// last item of the previous page.
pub fn parse_cursor(text: &str) -> Option<(i64, String)> {
    let (t, id) = text.split_once('_')?;
    let digits = (1..=18).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit());
    (digits && !id.is_empty()).then_some(())?;
    Some((t.parse().ok()?, id.to_string()))
}

impl Reader {
    /// A list's page size: `api.default_page_size` unless `limit` says
    /// otherwise, within `api.max_page_size`.
    pub fn page_limit(&self, limit: Option<&str>) -> Result<usize, ReadError> {
        let max = self.limits.max_page_size;
        match limit {
            None => Ok(self.limits.default_page_size),
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| {
                    ReadError::parameter(
                        "limit",
                        format!("limit must be a whole number from 1 to {max}"),
                    )
                }),
        }
    }

    /// The filters of `query` (`service`, `company`, `status`, `severity`).
    pub fn parse_filter(&self, query: &HashMap<String, String>) -> Result<Filter, ReadError> {
        let service = match query.get("service") {
            Some(s) => Some(self.find_service(s)?.id.clone()),
            None => None,
        };
        let company = match query.get("company") {
            Some(c) => Some(self.find_company(c)?.id.clone()),
            None => None,
        };
        let status = match query.get("status").map(String::as_str) {
            None => None,
            Some("open") => Some(AnomalyStatus::Open),
            Some("resolved") => Some(AnomalyStatus::Resolved),
            Some(other) => {
                return Err(ReadError::parameter(
                    "status",
                    format!("status must be open or resolved, got {other:?}"),
                ));
            }
        };
        let severity = match query.get("severity") {
            None => None,
            Some(text) => Some(Status::parse_severity(text).ok_or_else(|| {
                ReadError::parameter(
                    "severity",
                    format!("severity must be possible or problem, got {text:?}"),
                )
            })?),
        };
        Ok(Filter {
            service,
            company,
            status,
            severity,
        })
    }

    /// A page of the feed as asked by `query`: `limit`, `cursor`, `since`,
    /// `until` and the filters.
    pub async fn page_of(
        &self,
        query: &HashMap<String, String>,
    ) -> Result<(Vec<Anomaly>, Option<String>), ReadError> {
        let mut unknown: Vec<&str> = query
            .keys()
            .map(String::as_str)
            .filter(|k| !FEED_PARAMETERS.contains(k))
            .collect();
        unknown.sort_unstable();
        if let Some(first) = unknown.first() {
            let first: String = first.chars().take(64).collect();
            return Err(ReadError::parameter(
                &first,
                format!(
                    "unknown query parameter {:?}; this endpoint takes {}",
                    unknown.join(", "),
                    FEED_PARAMETERS.join(", ")
                ),
            ));
        }
        let filter = self.parse_filter(query)?;
        let limit = self.page_limit(query.get("limit").map(String::as_str))?;
        let range = FeedRange {
            after: match query.get("cursor") {
                Some(c) => Some(parse_cursor(c).ok_or_else(|| {
                    ReadError::parameter("cursor", "cursor is not one this API gave")
                })?),
                None => None,
            },
            since: time_param(query, "since")?,
            until: time_param(query, "until")?,
            limit,
        };
        if let (Some(since), Some(until)) = (range.since, range.until)
            && since > until
        {
            return Err(ReadError::parameter(
                "until",
                "since must not be after until",
            ));
        }
        self.page(&filter, range).await
    }

    /// Up to `range.limit` anomalies that pass `filter`, newest first,
    /// without timelines, and the cursor of the next page. Reads at most
    /// `api.max_feed_scan` documents.
    pub async fn page(
        &self,
        filter: &Filter,
        mut range: FeedRange,
    ) -> Result<(Vec<Anomaly>, Option<String>), ReadError> {
        let limit = range.limit;
        range.limit = limit.max(50);
        let mut items: Vec<Anomaly> = Vec::new();
        let mut more = false;
        let mut scanned = 0usize;
        loop {
            let page = self
                .store
                .anomalies(&range)
                .await
                .map_err(|e| self.unavailable("feed", e))?;
            let exhausted = page.len() < range.limit;
            scanned += page.len();
            for (t, id, doc) in page {
                range.after = Some((t, id));
                // A corrupt one is logged, counted and left out.
                let Some(mut a) = self.metrics.stored::<Anomaly>("anomaly", &doc) else {
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
            if scanned >= self.limits.max_feed_scan {
                // A narrow filter over a long feed: answer what was found
                // and let the client go on from where the scan stopped.
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

    /// One anomaly with its minute-by-minute timeline.
    pub async fn anomaly(&self, id: &str) -> Result<Anomaly, ReadError> {
        let doc = self
            .store
            .anomaly(id)
            .await
            .map_err(|e| self.unavailable("feed", e))?
            .ok_or_else(|| ReadError::AnomalyNotFound(id.to_string()))?;
        self.metrics
            .stored("anomaly", &doc)
            .ok_or(ReadError::Corrupt)
    }
}
