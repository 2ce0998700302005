//! What detection keeps in the store, beside the report counts: each
//! service's detector state (guarded by a lease, so one worker acts on a
//! service at a time), the expected count and alert threshold per minute for
//! charts, and the anomaly feed (documents, an index by start time, the open
//! incident of each service).
//!
//! Anomaly ids are derived from the service and the first minute of the
//! incident, so a worker that takes over a service, or restarts, writes the
//! same incident under the same id instead of opening a duplicate.

use std::collections::HashMap;
use std::future::Future;

use super::{AnyStore, Buckets, StoreResult, forward};

/// What became of a worker's claim on a service's lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    /// It held the lease and still does.
    Renewed,
    /// The lease was free (or had lapsed) and is now its: whatever it
    /// remembers of the service may be stale.
    Taken,
    /// Another worker holds it.
    Refused,
}

impl Lease {
    pub fn held(self) -> bool {
        self != Lease::Refused
    }
}

/// The expected count and alert threshold of one minute.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExpectedMinute {
    pub minute: i64,
    pub expected: f64,
    pub upper: f64,
}

/// What a worker writes for one service at the end of a tick.
#[derive(Debug, Clone)]
pub struct ServiceCommit {
    pub service: String,
    /// The worker's serialized state for the service.
    pub state: String,
    pub expected: Vec<ExpectedMinute>,
}

/// An anomaly document as the feed stores it.
#[derive(Debug, Clone)]
pub struct AnomalyRecord {
    pub id: String,
    pub service: String,
    pub started_unix: i64,
    /// When the worker last changed it; an older version never replaces a
    /// newer one.
    pub updated_unix: i64,
    pub open: bool,
    /// The JSON document served by the API.
    pub doc: String,
    /// The document without its timeline: what feed events carry.
    pub summary: String,
}

/// What happened to an incident, as the live stream tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEvent {
    /// `<milliseconds>-<sequence>`, increasing (a Redis stream id).
    pub id: String,
    /// `opened` (also when a resolved incident reopens), `updated` or
    /// `resolved`.
    pub kind: String,
    /// The anomaly document without its timeline.
    pub doc: String,
}

/// The order of event ids; `None` for text that is not one.
pub fn parse_event_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    (digits(ms) && digits(seq)).then_some(())?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// Where a page of the feed starts: newest first, strictly after `after`
/// (a `(started_unix, id)` from the previous page), started within
/// `[since, until]`.
#[derive(Debug, Clone, Default)]
pub struct FeedRange {
    pub after: Option<(i64, String)>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// At most this many documents.
    pub limit: usize,
}

pub trait FeedStore: Send + Sync + 'static {
    /// Takes or renews the lease of each service for `holder`.
    fn acquire_leases(
        &self,
        services: &[&str],
        holder: &str,
        ttl_ms: u64,
    ) -> impl Future<Output = StoreResult<Vec<Lease>>> + Send;

    /// Gives up leases `holder` holds (graceful stop), so another worker
    /// takes over at once.
    fn release_leases(
        &self,
        services: &[&str],
        holder: &str,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Says `holder` is alive for `ttl_ms` more (0: it is leaving) and
    /// answers the workers alive now, sorted: how workers share the
    /// services between them.
    fn workers(
        &self,
        holder: &str,
        ttl_ms: u64,
    ) -> impl Future<Output = StoreResult<Vec<String>>> + Send;

    /// The stored worker state of each service.
    fn load_states(
        &self,
        services: &[&str],
    ) -> impl Future<Output = StoreResult<Vec<Option<String>>>> + Send;

    /// Writes state and expected counts of each service whose lease `holder`
    /// still holds; false where it does not (nothing is written for those).
    fn commit(
        &self,
        holder: &str,
        commits: &[ServiceCommit],
    ) -> impl Future<Output = StoreResult<Vec<bool>>> + Send;

    /// Stores anomaly documents and keeps the index and open set in step;
    /// each document that changed adds a [`FeedEvent`].
    fn put_anomalies(
        &self,
        records: &[AnomalyRecord],
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// A page of the feed: `(started_unix, id, doc)`, newest first.
    fn anomalies(
        &self,
        range: &FeedRange,
    ) -> impl Future<Output = StoreResult<Vec<(i64, String, String)>>> + Send;

    fn anomaly(&self, id: &str) -> impl Future<Output = StoreResult<Option<String>>> + Send;

    /// Up to `limit` feed events after the one with id `after`, oldest
    /// first; `after` = `0-0` reads from the oldest kept.
    fn events_after(
        &self,
        after: &str,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Vec<FeedEvent>>> + Send;

    /// The id of the newest feed event, if any.
    fn last_event_id(&self) -> impl Future<Output = StoreResult<Option<String>>> + Send;

    /// The open anomaly document of each service that has one.
    fn open_anomalies(&self) -> impl Future<Output = StoreResult<HashMap<String, String>>> + Send;

    /// Expected count and threshold per minute, `None` where none was written.
    fn expected(
        &self,
        service: &str,
        minutes: Buckets,
    ) -> impl Future<Output = StoreResult<Vec<Option<(f64, f64)>>>> + Send;

    /// A number that changes whenever history is imported, so workers know
    /// to reload the history they cache.
    fn history_epoch(&self) -> impl Future<Output = StoreResult<u64>> + Send;

    fn bump_history_epoch(&self) -> impl Future<Output = StoreResult<()>> + Send;
}

forward! { FeedStore:
    fn acquire_leases(services: &[&str], holder: &str, ttl_ms: u64) -> Vec<Lease>;
    fn release_leases(services: &[&str], holder: &str) -> ();
    fn workers(holder: &str, ttl_ms: u64) -> Vec<String>;
    fn load_states(services: &[&str]) -> Vec<Option<String>>;
    fn commit(holder: &str, commits: &[ServiceCommit]) -> Vec<bool>;
    fn put_anomalies(records: &[AnomalyRecord]) -> ();
    fn anomalies(range: &FeedRange) -> Vec<(i64, String, String)>;
    fn anomaly(id: &str) -> Option<String>;
    fn events_after(after: &str, limit: usize) -> Vec<FeedEvent>;
    fn last_event_id() -> Option<String>;
    fn open_anomalies() -> HashMap<String, String>;
    fn expected(service: &str, minutes: Buckets) -> Vec<Option<(f64, f64)>>;
    fn history_epoch() -> u64;
    fn bump_history_epoch() -> ();
}
