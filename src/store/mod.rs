//! Storage of report counts behind one trait, with two implementations that
//! pass one conformance suite (`tests/api/conformance.rs`):
//!
//! - [`RedisStore`], the production store: minute buckets, 15-minute rollups and
//!   HyperLogLogs under hash-tagged keys (see [`keys`]); a batch of reports is
//!   one pipeline with one atomic script call per service and minute.
//! - [`EmbeddedStore`], in-process, the default when no Redis URL is configured
//!   so that `cargo run` works on a fresh machine; not durable.
//!
//! Only this module knows Redis commands and key names.

pub mod embedded;
mod embedded_feed;
pub mod feed;
mod feed_lua;
pub mod keys;
pub mod redis;
mod redis_feed;

use std::collections::BTreeMap;
use std::future::Future;

use uuid::Uuid;

pub use self::embedded::EmbeddedStore;
pub use self::feed::{
    AnomalyRecord, ExpectedMinute, FeedEvent, FeedRange, FeedStore, Lease, ServiceCommit,
    parse_event_id,
};
pub use self::redis::RedisStore;
use crate::config::{IntakeSettings, StoreSettings};
use crate::domain::{Country, NetworkKey, Problem, ReporterKey};

/// One report on its way into the store.
#[derive(Debug, Clone)]
pub struct ReportWrite {
    pub id: Uuid,
    /// Canonical service id.
    pub service: String,
    /// When it was received, Unix seconds; its bucket is `at / 60`.
    pub at: i64,
    pub problem: Problem,
    pub country: Option<Country>,
    pub reporter: ReporterKey,
    /// The network it came from: one network counts at most
    /// [`Retention::counted_per_network`] reports per clock window
    /// ([`Retention::network_window`]).
    pub network: NetworkKey,
    /// A retry carrying the same key gets the stored answer, not a new count.
    pub idempotency_key: Option<String>,
    /// What was asked, as a short fingerprint kept with that answer, so a
    /// key reused for another request can be told from a retry.
    pub request: String,
}

impl ReportWrite {
    pub fn minute(&self) -> i64 {
        self.at.div_euclid(60)
    }
}

/// The store's answer for one report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub id: Uuid,
    /// False when the reporter already has a counted report for the service
    /// within the dedup window, or its network has its fill of them.
    pub counted: bool,
    /// Unix minute of the bucket the report went into.
    pub minute: i64,
    /// The fingerprint of the request this answer was first given to
    /// (empty for answers stored before fingerprints).
    pub request: String,
}

/// A validated line of a history import: `count` reports in `minute`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRow {
    pub service: String,
    pub minute: i64,
    pub count: u64,
    pub problem: Option<Problem>,
    pub country: Option<Country>,
}

/// Counts by problem type and by country over a window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Breakdown {
    pub problems: BTreeMap<String, u64>,
    pub countries: BTreeMap<String, u64>,
}

impl Breakdown {
    /// Adds `count` to a problem (`kind` `p`) or a country (`c`), the kinds
    /// of [`keys::parse_breakdown_field`].
    pub fn add(&mut self, kind: char, name: &str, count: u64) {
        let map = if kind == 'p' {
            &mut self.problems
        } else {
            &mut self.countries
        };
        *map.entry(name.to_string()).or_default() += count;
    }
}

/// How long each kind of data is kept, and how much of it one reporter or
/// network counts; from `[store]` and `[intake]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub minute_ttl_secs: i64,
    pub rollup_ttl_secs: i64,
    pub reporters_ttl_secs: i64,
    pub dedup_window_secs: i64,
    /// Counted reports one network adds to a service per clock window of
    /// `dedup_window_secs`.
    pub counted_per_network: u64,
    pub idempotency_ttl_secs: i64,
    /// Feed events kept for resuming streams.
    pub event_backlog: usize,
}

impl Retention {
    pub fn new(store: &StoreSettings, intake: &IntakeSettings) -> Self {
        let secs = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        Retention {
            minute_ttl_secs: secs(store.minute_ttl_secs),
            rollup_ttl_secs: secs(store.rollup_ttl_secs),
            reporters_ttl_secs: secs(store.reporters_ttl_secs),
            dedup_window_secs: secs(intake.dedup_window_secs),
            counted_per_network: intake.max_counted_per_network.max(1),
            idempotency_ttl_secs: secs(intake.idempotency_ttl_secs),
            event_backlog: store.event_backlog.max(1),
        }
    }

    /// When the hourly minute-bucket hashes holding `minute` expire (Unix secs).
    pub fn minute_expiry(&self, minute: i64) -> i64 {
        minute.div_euclid(keys::MINUTES_PER_HOUR) * 3600 + self.minute_ttl_secs
    }

    /// When the daily rollup hash holding `minute` expires (Unix secs).
    pub fn rollup_expiry(&self, minute: i64) -> i64 {
        minute.div_euclid(keys::MINUTES_PER_DAY) * 86_400 + self.rollup_ttl_secs
    }

    /// The clock window of `dedup_window_secs` (counted from the Unix epoch)
    /// holding the start of `minute`, and until when its per-network counts
    /// are kept (Unix secs): a minute past its end and its minute's, so a
    /// report received at the end and written a moment later still finds
    /// them. One network adds at most `counted_per_network` reports to a
    /// service per window. Clock windows, not one started by each network's
    /// first report, so a service's counts are one hash per window rather
    /// than a key per network (BENCHMARKS.md, "Networks").
    pub fn network_window(&self, minute: i64) -> (i64, i64) {
        let window = (minute * 60).div_euclid(self.dedup_window_secs);
        let end = ((window + 1) * self.dedup_window_secs).max((minute + 1) * 60);
        (window, end + 60)
    }

    /// When the distinct-reporter and -network estimates of `minute`
    /// expire (Unix secs).
    pub fn reporters_expiry(&self, minute: i64) -> i64 {
        minute * 60 + self.reporters_ttl_secs
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("store timed out")]
    Timeout,
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("unexpected answer from the store: {0}")]
    Protocol(String),
    /// Written, but fewer replicas than `store.ack_replicas` had it by the
    /// deadline: the write may stand, or be lost with its master.
    #[error("written, but {acked} of the {wanted} replicas asked for acknowledged it in time")]
    Unreplicated { acked: i64, wanted: u32 },
}

impl From<::redis::RedisError> for StoreError {
    fn from(e: ::redis::RedisError) -> Self {
        if e.is_timeout() {
            StoreError::Timeout
        } else if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
            StoreError::Unavailable(e.to_string())
        } else {
            StoreError::Protocol(e.to_string())
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Distinct reporters and distinct networks they reported from, over a
/// range of minutes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Distinct {
    pub reporters: u64,
    pub networks: u64,
}

/// What intake, the read API and (later) the detector need from storage.
/// Minutes are Unix minutes; ranges are `[from, from + count)`.
pub trait Store: Send + Sync + 'static {
    /// Dedups and counts a batch atomically per service and minute; one answer
    /// per report, in order. The outer error fails the whole batch; an inner
    /// one only that report's group. Nothing is acknowledged that the store
    /// has not taken.
    fn record(
        &self,
        batch: &[ReportWrite],
    ) -> impl Future<Output = StoreResult<Vec<StoreResult<Receipt>>>> + Send;

    /// Adds imported counts into the buckets of their minutes.
    fn import(&self, rows: &[ImportRow], now: i64) -> impl Future<Output = StoreResult<()>> + Send;

    /// Counted reports per minute for each service, in one round trip.
    fn minute_totals(
        &self,
        services: &[&str],
        minutes: Buckets,
    ) -> impl Future<Output = StoreResult<Vec<Vec<u64>>>> + Send;

    /// Counted reports per 15 minutes (quarters: a Unix minute / 15).
    fn quarter_totals(
        &self,
        service: &str,
        quarters: Buckets,
    ) -> impl Future<Output = StoreResult<Vec<u64>>> + Send;

    /// Problems and countries of the 5-minute slots overlapping the range.
    fn breakdown(
        &self,
        service: &str,
        minutes: Buckets,
    ) -> impl Future<Output = StoreResult<Breakdown>> + Send;

    /// Estimated distinct reporters and networks over the range.
    fn distinct(
        &self,
        service: &str,
        minutes: Buckets,
    ) -> impl Future<Output = StoreResult<Distinct>> + Send;

    /// Succeeds when the store can serve requests.
    fn ping(&self) -> impl Future<Output = StoreResult<()>> + Send;
}

/// Consecutive buckets of a series: the first one's number (a Unix minute,
/// or for quarters a Unix minute / 15) and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buckets {
    pub first: i64,
    pub count: usize,
}

impl Buckets {
    pub fn new(first: i64, count: usize) -> Self {
        Buckets { first, count }
    }
}

/// The configured store, chosen at start-up.
pub enum AnyStore {
    Redis(RedisStore),
    Embedded(EmbeddedStore),
}

impl AnyStore {
    pub fn from_settings(store: &StoreSettings, intake: &IntakeSettings) -> StoreResult<Self> {
        let retention = Retention::new(store, intake);
        if !store.uses_redis() {
            Ok(AnyStore::Embedded(EmbeddedStore::new(
                retention,
                store.embedded_max_entries,
            )))
        } else {
            Ok(AnyStore::Redis(RedisStore::new(store, retention)?))
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            AnyStore::Redis(_) => "redis",
            AnyStore::Embedded(_) => "embedded",
        }
    }
}

/// Implements a store trait for [`AnyStore`]: each method, named once with
/// its arguments and what it answers, calls the chosen store's.
macro_rules! forward {
    ($store:ident: $(fn $name:ident($($arg:ident: $ty:ty),*) -> $out:ty;)+) => {
        impl $store for AnyStore {
            $(
                async fn $name(&self, $($arg: $ty),*) -> StoreResult<$out> {
                    match self {
                        AnyStore::Redis(s) => s.$name($($arg),*).await,
                        AnyStore::Embedded(s) => s.$name($($arg),*).await,
                    }
                }
            )+
        }
    };
}
use forward;

forward! { Store:
    fn record(batch: &[ReportWrite]) -> Vec<StoreResult<Receipt>>;
    fn import(rows: &[ImportRow], now: i64) -> ();
    fn minute_totals(services: &[&str], minutes: Buckets) -> Vec<Vec<u64>>;
    fn quarter_totals(service: &str, quarters: Buckets) -> Vec<u64>;
    fn breakdown(service: &str, minutes: Buckets) -> Breakdown;
    fn distinct(service: &str, minutes: Buckets) -> Distinct;
    fn ping() -> ();
}
