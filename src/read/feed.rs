//! The anomaly feed as readers query it: filters, newest first, paged by an
//! opaque cursor `<start>_<id>`, and one anomaly with its timeline.

use std::collections::BTreeMap;

use serde::Deserialize;
use utoipa::IntoParams;

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

/// The feed's filters as a query names them, checked by
/// [`Reader::filter`]; the feed, the stream and the feed page take them.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FilterQuery {
    pub service: Option<String>,
    pub company: Option<String>,
    #[param(inline, value_type = Option<AnomalyStatus>)]
    pub status: Option<String>,
    #[param(schema_with = crate::domain::anomaly::severity_schema)]
    pub severity: Option<String>,
}

/// The page size of a list, checked by [`Reader::page_limit`].
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Limit {
    /// Page size: api.default_page_size (100) when absent, at most api.max_page_size (1000)
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000, default = 100)]
    pub limit: Option<String>,
}

/// The query of `GET /api/v1/anomalies`: the filters, the page size, a
/// time window and a cursor. Any other parameter is refused, so that a
/// misspelt filter is not silently no filter.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    #[serde(flatten)]
    #[param(ignore)]
    pub filter: FilterQuery,
    #[serde(flatten)]
    #[param(ignore)]
    pub limit: Limit,
    /// Only anomalies that started at or after this time (RFC 3339); an incident that started earlier and is still open is not included
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// Only anomalies that started at or before this time (RFC 3339); not before since
    #[param(format = DateTime)]
    pub until: Option<String>,
    #[param(pattern = r"^[0-9]{1,18}_[\s\S]+$")]
    pub cursor: Option<String>,
    /// Whatever else the query named. Last: serde gives each flattened
    /// field, in order, the parameters the earlier ones did not take.
    #[serde(flatten)]
    #[param(ignore)]
    pub others: BTreeMap<String, String>,
}

/// The names of the parameters `P` takes, as the document lists them.
fn names<P: IntoParams>() -> Vec<String> {
    P::into_params(|| None)
        .into_iter()
        .map(|p| p.name)
        .collect()
}

fn time_param(value: &Option<String>, name: &str) -> Result<Option<i64>, ReadError> {
    value
        .as_ref()
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

    /// The filters `query` asks for, checked: known services and
    /// companies, a status and a severity there are.
    pub fn filter(&self, query: &FilterQuery) -> Result<Filter, ReadError> {
        let service = match &query.service {
            Some(s) => Some(self.find_service(s)?.id.clone()),
            None => None,
        };
        let company = match &query.company {
            Some(c) => Some(self.find_company(c)?.id.clone()),
            None => None,
        };
        let status = match query.status.as_deref() {
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
        let severity = match &query.severity {
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

    /// A page of the feed as `query` asks for it.
    pub async fn page_of(
        &self,
        query: &FeedQuery,
    ) -> Result<(Vec<Anomaly>, Option<String>), ReadError> {
        if let Some(first) = query.others.keys().next() {
            let mut known = names::<FilterQuery>();
            known.extend(names::<Limit>());
            known.extend(names::<FeedQuery>());
            let unknown: Vec<&str> = query.others.keys().map(String::as_str).collect();
            let first: String = first.chars().take(64).collect();
            return Err(ReadError::parameter(
                &first,
                format!(
                    "unknown query parameter {:?}; this endpoint takes {}",
                    unknown.join(", "),
                    known.join(", ")
                ),
            ));
        }
        let filter = self.filter(&query.filter)?;
        let limit = self.page_limit(query.limit.limit.as_deref())?;
        let range = FeedRange {
            after: match &query.cursor {
                Some(c) => Some(parse_cursor(c).ok_or_else(|| {
                    ReadError::parameter("cursor", "cursor is not one this API gave")
                })?),
                None => None,
            },
            since: time_param(&query.since, "since")?,
            until: time_param(&query.until, "until")?,
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
