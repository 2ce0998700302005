//! Report intake: validate and normalise a report, identify its reporter, and
//! hand it to the group-commit writer. The HTTP layer only parses and maps.

pub mod limiter;
pub mod reporter;
pub mod writer;

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use uuid::Uuid;

pub use self::limiter::{Allowance, RateLimiter};
pub use self::reporter::ReporterHasher;
pub use self::writer::{WriteError, Writer, WriterTask};
use crate::config::IntakeSettings;
use crate::domain::report::ValidReport;
use crate::domain::time::minute_start;
use crate::domain::{RawReport, Registry, ReportError};
use crate::store::ReportWrite;
use crate::telemetry::Metrics;

/// Who sent a report, as far as intake may know.
pub struct Origin<'a> {
    pub addr: IpAddr,
    pub user_agent: &'a str,
    /// Unix seconds when the request arrived.
    pub at: i64,
    pub idempotency_key: Option<String>,
}

/// What the client is told after a successful write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub id: Uuid,
    pub service: String,
    pub counted: bool,
    pub bucket: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error(transparent)]
    Invalid(#[from] ReportError),
    #[error(transparent)]
    Write(#[from] WriteError),
    /// The Idempotency-Key was first used for another request.
    #[error("this Idempotency-Key was used for another request; use a new key for a new report")]
    IdempotencyKeyReused,
    /// A request with the same Idempotency-Key is still being written.
    #[error("a request with this Idempotency-Key is still in flight; retry shortly")]
    IdempotencyKeyInFlight,
}

pub struct Intake {
    registry: Arc<Registry>,
    writer: Writer,
    hasher: ReporterHasher,
    metrics: Arc<Metrics>,
    max_client_id_len: usize,
    max_idempotency_key_len: usize,
    /// Per-address limit of report posts; `None` when disabled.
    limiter: Option<RateLimiter>,
    /// Idempotency keys (scoped) of the requests being written here.
    in_flight: Mutex<HashSet<String>>,
}

/// Holds a scoped idempotency key in flight until dropped.
struct InFlight<'a> {
    keys: &'a Mutex<HashSet<String>>,
    key: String,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
    }
}

impl Intake {
    pub fn new(
        registry: Arc<Registry>,
        writer: Writer,
        metrics: Arc<Metrics>,
        settings: &IntakeSettings,
    ) -> Self {
        Intake {
            registry,
            writer,
            hasher: ReporterHasher::with_prefixes(
                &settings.reporter_secret,
                settings.network_prefix_v4,
                settings.network_prefix_v6,
            ),
            metrics,
            max_client_id_len: settings.max_client_id_len,
            max_idempotency_key_len: settings.max_idempotency_key_len,
            limiter: RateLimiter::new(settings.rate_limit_per_minute, settings.rate_limit_burst),
            in_flight: Mutex::new(HashSet::new()),
        }
    }

    /// The per-address limit of report posts (`intake.rate_limit_*`), if
    /// any; the handler checks it before reading a body.
    pub fn limiter(&self) -> Option<&RateLimiter> {
        self.limiter.as_ref()
    }

    /// `intake.max_idempotency_key_len`.
    pub fn max_idempotency_key_len(&self) -> usize {
        self.max_idempotency_key_len
    }

    /// Validates, writes and waits for the store's receipt.
    pub async fn submit(
        &self,
        raw: RawReport,
        origin: Origin<'_>,
    ) -> Result<Accepted, IntakeError> {
        let result = self.submit_inner(raw, origin).await;
        // A refusal is counted by whoever answers it, under its code.
        if let Ok(accepted) = &result {
            self.metrics.reports_accepted.inc();
            if accepted.counted {
                self.metrics.reports_counted.inc();
            }
        }
        result
    }

    async fn submit_inner(
        &self,
        raw: RawReport,
        origin: Origin<'_>,
    ) -> Result<Accepted, IntakeError> {
        let report: ValidReport<'_> = raw.validate(&self.registry, self.max_client_id_len)?;
        // A client_id separates people behind one address; the network
        // (which no client can make up) bounds what they count together.
        let reporter = match &report.client_id {
            Some(client_id) => self.hasher.for_client_id(client_id),
            None => {
                let day = origin.at.div_euclid(86_400);
                self.hasher.for_address(origin.addr, origin.user_agent, day)
            }
        };
        let network = self.hasher.for_network(origin.addr);
        // An Idempotency-Key is the reporter's own (another client that
        // guesses it neither replays this answer nor blocks this report),
        // and bound to what was asked: the same key with another report is
        // refused, not answered with the first one's receipt.
        // Only a keyed report can be replayed, so only it is fingerprinted
        // (nothing added to the path of the others).
        let idempotency_key = origin
            .idempotency_key
            .map(|key| fingerprint(&[&report.service.id, &reporter.0, &key]));
        let request = match idempotency_key {
            Some(_) => fingerprint(&[
                report.problem.as_str(),
                report.country.as_ref().map_or("", |c| c.as_str()),
            ]),
            None => String::new(),
        };
        let _in_flight = match &idempotency_key {
            Some(key) => Some(self.hold(key)?),
            None => None,
        };
        let write = ReportWrite {
            id: Uuid::now_v7(),
            service: report.service.id.clone(),
            at: origin.at,
            problem: report.problem,
            country: report.country,
            reporter,
            network,
            idempotency_key,
            request: request.clone(),
        };
        let receipt = self.writer.write(write).await?;
        if !receipt.request.is_empty() && receipt.request != request {
            return Err(IntakeError::IdempotencyKeyReused);
        }
        Ok(Accepted {
            id: receipt.id,
            service: report.service.id.clone(),
            counted: receipt.counted,
            bucket: minute_start(receipt.minute),
        })
    }

    /// Marks a scoped idempotency key in flight, or refuses a second
    /// request with it while the first is being written (on this process;
    /// replicas each keep their own).
    fn hold(&self, key: &str) -> Result<InFlight<'_>, IntakeError> {
        let mut keys = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if !keys.insert(key.to_string()) {
            return Err(IntakeError::IdempotencyKeyInFlight);
        }
        Ok(InFlight {
            keys: &self.in_flight,
            key: key.to_string(),
        })
    }
}

/// A short fixed-length digest of `parts` (hex, 128 bits).
fn fingerprint(parts: &[&str]) -> String {
    let mut hasher = blake3::Hasher::new();
    for part in parts {
        hasher.update(&(part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize().to_hex()[..32].to_string()
}
