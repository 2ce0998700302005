//! What readers and journalists see, computed once for the JSON API and the
//! web pages, with no HTTP in it: a service's recent counts and status, its
//! report series with the detector's baseline and threshold, its problem
//! and country breakdown, the open incidents and the anomaly feed
//! ([`feed`]). Each answer is kept for `web.read_cache_ms` (see [`cache`]),
//! so a flood of readers on one status page costs the store a few reads a
//! second, not one per view. Times come in as parameters (`now`, a Unix
//! minute); failures as a [`ReadError`], which `http` answers as
//! problem+json and `web` as a page.

pub mod cache;
pub mod feed;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Serialize;

use self::cache::TtlCache;
use crate::config::{ApiSettings, WebSettings};
use crate::domain::time::rfc3339_minute;
use crate::domain::{Anomaly, Company, Registry, Service, Share, Status};
use crate::store::{AnyStore, FeedStore, Retention, Store, StoreError};
use crate::telemetry::Metrics;

pub use self::feed::{Filter, parse_cursor};

pub const MINUTES_PER_DAY: usize = 1440;
const RECENT_MINUTES: usize = 15;
const HOUR_MINUTES: usize = 60;

pub type OpenIncidents = Arc<HashMap<String, Anomaly>>;

/// Why a read has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// What was asked is malformed or past a limit; `parameter` names the
    /// query parameter where one is to blame.
    #[error("{message}")]
    Invalid {
        parameter: Option<String>,
        message: String,
    },
    #[error("no service {0:?}")]
    ServiceNotFound(String),
    #[error("no company {0:?}")]
    CompanyNotFound(String),
    #[error("no anomaly {0:?}")]
    AnomalyNotFound(String),
    /// The store could not answer (logged and counted where it happened);
    /// worth retrying after `retry_after_secs`.
    #[error("the store cannot answer right now")]
    Unavailable { retry_after_secs: u64 },
    /// A stored document does not parse (logged where it was found).
    #[error("a stored document does not parse")]
    Corrupt,
}

impl ReadError {
    pub fn invalid(message: impl Into<String>) -> Self {
        ReadError::Invalid {
            parameter: None,
            message: message.into(),
        }
    }

    /// A refusal that names the query parameter `name`.
    pub fn parameter(name: &str, message: impl Into<String>) -> Self {
        ReadError::Invalid {
            parameter: Some(name.to_string()),
            message: message.into(),
        }
    }
}

/// Reports counted over the last 15 minutes, hour and (when read) day.
#[derive(Debug, Clone, Copy, Default)]
pub struct Recent {
    pub m15: u64,
    pub h1: u64,
    pub h24: Option<u64>,
}

/// How far back [`Reader::recent_counts`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    /// 15 minutes and an hour: what a list of every service needs.
    Hour,
    /// And 24 hours.
    Day,
}

#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub t: String,
    /// Start of the step, in Unix minutes.
    #[serde(skip)]
    pub minute: i64,
    pub reports: u64,
    /// Expected count (the detector's baseline); null where the detector
    /// has not judged these minutes (before it ran, or older than the
    /// minute buckets' retention).
    pub baseline: Option<f64>,
    /// Alert threshold: the count at which the detector's short window would
    /// alert, spread over its minutes and summed per step.
    pub upper: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Series {
    pub service: String,
    pub window_secs: i64,
    pub step_secs: i64,
    pub points: Vec<Point>,
}

#[derive(Debug, Clone)]
pub struct Breakdown {
    pub service: String,
    pub window_secs: i64,
    pub from: String,
    pub reports: u64,
    pub distinct_reporters: u64,
    pub distinct_networks: u64,
    pub problems: Vec<Share>,
    pub countries: Vec<Share>,
}

/// One cache per kind of answer.
struct Caches {
    open: TtlCache<OpenIncidents, StoreError>,
    recent: TtlCache<Arc<Vec<Recent>>, StoreError>,
    series: TtlCache<Arc<Series>, ReadError>,
    breakdown: TtlCache<Arc<Breakdown>, ReadError>,
}

/// Everything a read needs: the registry, the store, its retention, the
/// API's limits and the short-lived caches.
pub struct Reader {
    pub registry: Arc<Registry>,
    store: Arc<AnyStore>,
    pub retention: Retention,
    metrics: Arc<Metrics>,
    limits: ApiSettings,
    retry_after_secs: u64,
    caches: Caches,
}

pub fn now_minute() -> i64 {
    Utc::now().timestamp().div_euclid(60)
}

/// A service's status given the open incidents: its open incident's
/// severity, else `ok`; `None` when the store could not say.
pub fn status_of(open: &Option<OpenIncidents>, service: &str) -> Option<Status> {
    let open = open.as_ref()?;
    Some(open.get(service).map_or(Status::Ok, |a| a.severity))
}

/// The worst of several statuses; `ok` of none.
pub fn worst(statuses: impl IntoIterator<Item = Status>) -> Status {
    statuses.into_iter().max().unwrap_or(Status::Ok)
}

impl Reader {
    /// `retry_after_secs`: what a reader is told to wait when the store
    /// cannot answer.
    pub fn new(
        registry: Arc<Registry>,
        store: Arc<AnyStore>,
        retention: Retention,
        metrics: Arc<Metrics>,
        api: &ApiSettings,
        web: &WebSettings,
        retry_after_secs: u64,
    ) -> Self {
        let ttl = Duration::from_millis(web.read_cache_ms);
        let n = web.read_cache_entries;
        Reader {
            registry,
            store,
            retention,
            metrics,
            limits: api.clone(),
            retry_after_secs,
            caches: Caches {
                open: TtlCache::new(ttl, 1),
                recent: TtlCache::new(ttl, n),
                series: TtlCache::new(ttl, n),
                breakdown: TtlCache::new(ttl, n),
            },
        }
    }

    /// Logs and counts a store failure of `op`; what the reader is told.
    pub fn unavailable(&self, op: &str, e: StoreError) -> ReadError {
        self.metrics.store_error(op, &e);
        tracing::warn!(error = %e, op, "store read failed");
        ReadError::Unavailable {
            retry_after_secs: self.retry_after_secs,
        }
    }

    pub fn find_service(&self, id: &str) -> Result<&Service, ReadError> {
        self.registry
            .find(id)
            .ok_or_else(|| ReadError::ServiceNotFound(id.to_string()))
    }

    pub fn find_company(&self, id: &str) -> Result<&Company, ReadError> {
        self.registry
            .company(id)
            .ok_or_else(|| ReadError::CompanyNotFound(id.to_string()))
    }

    /// Recent counts of each service up to minute `now`, in one round trip;
    /// `None` for all when the store cannot answer (lists still serve).
    pub async fn recent_counts(
        &self,
        services: &[&Service],
        span: Span,
        now: i64,
    ) -> Vec<Option<Recent>> {
        let ids: Vec<&str> = services.iter().map(|s| s.id.as_str()).collect();
        let minutes = match span {
            Span::Hour => HOUR_MINUTES,
            Span::Day => MINUTES_PER_DAY,
        };
        let key = format!(
            "{minutes}:{}",
            blake3::hash(ids.join(",").as_bytes()).to_hex()
        );
        let loaded = self
            .caches
            .recent
            .get(&key, Instant::now(), || async {
                let from = now - minutes as i64 + 1;
                let series = self.store.minute_totals(&ids, from, minutes).await?;
                Ok(Arc::new(
                    series
                        .iter()
                        .map(|m| Recent {
                            m15: m[minutes - RECENT_MINUTES..].iter().sum(),
                            h1: m[minutes - HOUR_MINUTES..].iter().sum(),
                            h24: (span == Span::Day).then(|| m.iter().sum()),
                        })
                        .collect(),
                ))
            })
            .await;
        match loaded {
            Ok(counts) => counts.iter().copied().map(Some).collect(),
            Err(e) => {
                self.metrics.store_error("minute_totals", &e);
                tracing::warn!(error = %e, "recent counts unavailable");
                vec![None; services.len()]
            }
        }
    }

    /// The open incident of each service, from the feed; `None` when the
    /// store cannot answer.
    pub async fn open_incidents(&self) -> Option<OpenIncidents> {
        let loaded = self
            .caches
            .open
            .get("open", Instant::now(), || async {
                let open = self.store.open_anomalies().await?;
                Ok::<_, StoreError>(Arc::new(
                    open.into_iter()
                        .filter_map(|(s, doc)| {
                            // A corrupt one is logged, counted and left out.
                            let mut a: Anomaly = self.metrics.stored("anomaly", &doc)?;
                            a.timeline.clear();
                            Some((s, a))
                        })
                        .collect(),
                ))
            })
            .await;
        match loaded {
            Ok(open) => Some(open),
            Err(e) => {
                self.metrics.store_error("open_anomalies", &e);
                tracing::warn!(error = %e, "open incidents unavailable");
                None
            }
        }
    }

    /// Counts per `step` minutes over the `window` minutes up to minute
    /// `now` with the detector's expected count and threshold, the last
    /// point being the current, partial step. Minute buckets serve windows
    /// inside their retention; older windows use the 15-minute rollups.
    pub async fn series(
        &self,
        service: &Service,
        window: i64,
        step: i64,
        now: i64,
    ) -> Result<Arc<Series>, ReadError> {
        if step > window {
            return Err(ReadError::invalid("step must not exceed window"));
        }
        // The oldest day of the retention may already be partly expired: a
        // window reaching into it would show expired counts as zero reports.
        let longest = self.retention.rollup_ttl_secs / 60 - 1440;
        if window > longest {
            return Err(ReadError::invalid(format!(
                "window is at most {} days (store.rollup_ttl_secs less a day)",
                longest / 1440
            )));
        }
        let points = ((window + step - 1) / step) as usize;
        if points > self.limits.max_series_points {
            return Err(ReadError::invalid(format!(
                "window / step gives {points} points; the limit is {} (api.max_series_points)",
                self.limits.max_series_points
            )));
        }
        let key = format!("{}:{window}:{step}", service.id);
        self.caches
            .series
            .get(&key, Instant::now(), || async move {
                let end = (now.div_euclid(step) + 1) * step;
                let start = end - points as i64 * step;
                Ok(Arc::new(Series {
                    service: service.id.clone(),
                    window_secs: window * 60,
                    step_secs: step * 60,
                    points: self.counts(service, start, points, step, now).await?,
                }))
            })
            .await
    }

    /// `points` steps of `step` minutes from minute `start` (`now` being
    /// the current minute): counts, and the detector's numbers where the
    /// minute buckets still hold them. Minute buckets expire a whole hour at
    /// a time, so they cover the last minute_ttl less an hour whatever the
    /// clock; further back the 15-minute rollups serve, so the step must be
    /// a multiple of 15 minutes there.
    pub async fn counts(
        &self,
        service: &Service,
        start: i64,
        points: usize,
        step: i64,
        now: i64,
    ) -> Result<Vec<Point>, ReadError> {
        // What the callers checked, held here before any allocation: the
        // span read lies within the retention.
        let span = points as i64 * step;
        if span > self.retention.rollup_ttl_secs / 60 + step {
            return Err(ReadError::invalid(format!(
                "the span read is at most the retention of {} days (store.rollup_ttl_secs)",
                self.retention.rollup_ttl_secs / 86400
            )));
        }
        let minute_span = self.retention.minute_ttl_secs / 60 - 60;
        let in_minutes = now - start < minute_span;
        if !in_minutes && (step % 15 != 0 || start % 15 != 0) {
            return Err(ReadError::invalid(format!(
                "counts older than {} h are kept per 15 minutes: use a step that is a multiple of 15m",
                minute_span / 60
            )));
        }
        let mut expected: Vec<Option<(f64, f64)>> = vec![None; points];
        let counts: Vec<u64> = if in_minutes {
            let count = points * step as usize;
            let ids = [service.id.as_str()];
            let (minutes, per_minute) = tokio::join!(
                self.store.minute_totals(&ids, start, count),
                self.store.expected(&service.id, start, count),
            );
            let minutes = minutes.map_err(|e| self.unavailable("minute_totals", e))?;
            // Without the detector's numbers the counts still serve.
            let per_minute = per_minute.unwrap_or_else(|e| {
                self.metrics.store_error("expected", &e);
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
        } else {
            let quarters = self
                .store
                .quarter_totals(&service.id, start / 15, points * (step / 15) as usize)
                .await
                .map_err(|e| self.unavailable("quarter_totals", e))?;
            quarters
                .chunks((step / 15) as usize)
                .map(|c| c.iter().sum())
                .collect()
        };
        Ok(counts
            .into_iter()
            .zip(expected)
            .enumerate()
            .map(|(i, (reports, expected))| {
                let minute = start + i as i64 * step;
                Point {
                    t: rfc3339_minute(minute),
                    minute,
                    reports,
                    baseline: expected.map(|e| e.0),
                    upper: expected.map(|e| e.1),
                }
            })
            .collect())
    }

    /// Problems and countries of the reports counted over the `window`
    /// minutes up to minute `now`, with shares of the total. Resolution is
    /// 5 minutes.
    pub async fn breakdown(
        &self,
        service: &Service,
        window: i64,
        now: i64,
    ) -> Result<Arc<Breakdown>, ReadError> {
        let max = self.limits.max_breakdown_window_secs as i64 / 60;
        if window > max {
            return Err(ReadError::invalid(format!(
                "window must be at most {max}m (api.max_breakdown_window_secs)"
            )));
        }
        let key = format!("{}:{window}", service.id);
        self.caches
            .breakdown
            .get(&key, Instant::now(), || {
                self.load_breakdown(service, window, now)
            })
            .await
    }

    async fn load_breakdown(
        &self,
        service: &Service,
        window: i64,
        now: i64,
    ) -> Result<Arc<Breakdown>, ReadError> {
        // Problems and countries are kept per 5-minute slot: widen the
        // window to whole slots so that totals, breakdown and reporters
        // cover the same span.
        let from = (now - window + 1).div_euclid(5) * 5;
        let count = (now - from + 1) as usize;
        let ids = [service.id.as_str()];
        let (totals, breakdown, distinct) = tokio::join!(
            self.store.minute_totals(&ids, from, count),
            self.store.breakdown(&service.id, from, count),
            self.store.distinct(&service.id, from, count),
        );
        let totals = totals.map_err(|e| self.unavailable("minute_totals", e))?;
        let breakdown = breakdown.map_err(|e| self.unavailable("breakdown", e))?;
        let distinct = distinct.map_err(|e| self.unavailable("distinct", e))?;
        let reports: u64 = totals[0].iter().sum();
        let shares = |map: &BTreeMap<String, u64>| {
            let mut rows: Vec<(&String, &u64)> = map.iter().collect();
            rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            rows.into_iter()
                .map(|(name, &count)| Share {
                    name: name.clone(),
                    count,
                    share: round4(count as f64 / reports.max(1) as f64),
                })
                .collect()
        };
        Ok(Arc::new(Breakdown {
            service: service.id.clone(),
            window_secs: window * 60,
            from: rfc3339_minute(from),
            reports,
            distinct_reporters: distinct.reporters,
            distinct_networks: distinct.networks,
            problems: shares(&breakdown.problems),
            countries: shares(&breakdown.countries),
        }))
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}
