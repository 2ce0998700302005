//! What readers and journalists see, computed once for the JSON API and the
//! web pages, with no HTTP in it: a service's recent counts and status, its
//! report series with the detector's baseline and threshold, its problem
//! and country breakdown, the open incidents and the anomaly feed
//! ([`feed`]). Each answer is kept for `web.read_cache_ms` (see [`cache`]),
//! so a flood of readers on one status page costs the store a few reads a
//! second, not one per view. Times come in as parameters (`now`, a Unix
//! minute); failures as a [`ReadError`], which `http` answers as
//! problem+json and `web` as a page.

mod breakdown;
pub mod cache;
pub mod feed;
mod series;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use self::cache::TtlCache;
use crate::config::{ApiSettings, WebSettings};
use crate::domain::{Anomaly, Company, Registry, Service, Status};
use crate::store::{AnyStore, Buckets, FeedStore, Retention, Store, StoreError};
use crate::telemetry::{Metrics, store_failed};

pub use self::breakdown::Breakdown;
pub use self::feed::{FeedQuery, Filter, FilterQuery, Limit, parse_cursor};
pub use self::series::{Point, Series};

pub const MINUTES_PER_DAY: usize = 1440;
const RECENT_MINUTES: usize = 15;
const HOUR_MINUTES: usize = 60;

/// The open incident of each service that has one, by service id, without
/// timelines.
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

/// One cache per kind of answer.
struct Caches {
    open: TtlCache<OpenIncidents, StoreError>,
    recent: TtlCache<Arc<Vec<Recent>>, StoreError>,
    series: TtlCache<Arc<Series>, ReadError>,
    breakdown: TtlCache<Arc<Breakdown>, ReadError>,
}

/// Everything a read needs: the registry, the store, its retention, the
/// API's limits and the short-lived caches. Answers are cached for
/// `web.read_cache_ms` by what was asked, not by `now`: within that time a
/// later `now` gets the answer computed for the first, which is what keeps a
/// flood of readers to a few store reads a second.
pub struct Reader {
    registry: Arc<Registry>,
    store: Arc<AnyStore>,
    retention: Retention,
    metrics: Arc<Metrics>,
    limits: ApiSettings,
    /// `web.max_export_rows`.
    max_export_rows: usize,
    retry_after_secs: u64,
    caches: Caches,
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
            max_export_rows: web.max_export_rows,
            retry_after_secs,
            caches: Caches {
                open: TtlCache::new(ttl, 1),
                recent: TtlCache::new(ttl, n),
                series: TtlCache::new(ttl, n),
                breakdown: TtlCache::new(ttl, n),
            },
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn retention(&self) -> Retention {
        self.retention
    }

    /// `web.max_export_rows`: the most rows one CSV export may have.
    pub fn max_export_rows(&self) -> usize {
        self.max_export_rows
    }

    /// `api.default_page_size`.
    pub fn default_page_size(&self) -> usize {
        self.limits.default_page_size
    }

    /// Logs and counts a store failure of `op`; what the reader is told.
    pub fn unavailable(&self, op: &str, e: StoreError) -> ReadError {
        store_failed!(self.metrics, op, &e, "store read failed");
        ReadError::Unavailable {
            retry_after_secs: self.retry_after_secs,
        }
    }

    /// The service `id` names (its id or an alias, any case).
    pub fn find_service(&self, id: &str) -> Result<&Service, ReadError> {
        self.registry
            .find(id)
            .ok_or_else(|| ReadError::ServiceNotFound(id.to_string()))
    }

    /// The company `id` names.
    pub fn find_company(&self, id: &str) -> Result<&Company, ReadError> {
        self.registry
            .company(id)
            .ok_or_else(|| ReadError::CompanyNotFound(id.to_string()))
    }

    /// [`Reader::recent_counts`] and [`Reader::open_incidents`] read
    /// together: what a list of services shows.
    pub async fn recent_and_open(
        &self,
        services: &[&Service],
        span: Span,
        now: i64,
    ) -> (Vec<Option<Recent>>, Option<OpenIncidents>) {
        tokio::join!(
            self.recent_counts(services, span, now),
            self.open_incidents()
        )
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
                let series = self
                    .store
                    .minute_totals(&ids, Buckets::new(from, minutes))
                    .await?;
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
                store_failed!(
                    self.metrics,
                    "minute_totals",
                    &e,
                    "recent counts unavailable"
                );
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
                store_failed!(
                    self.metrics,
                    "open_anomalies",
                    &e,
                    "open incidents unavailable"
                );
                None
            }
        }
    }
}
