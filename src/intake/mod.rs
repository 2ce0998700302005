//! Report intake: validate and normalise a report, identify its reporter, and
//! hand it to the group-commit writer. The HTTP layer only parses and maps.

pub mod limiter;
pub mod reporter;
pub mod writer;

use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use uuid::Uuid;

pub use self::limiter::{Allowance, RateLimiter};
pub use self::reporter::ReporterHasher;
pub use self::writer::{WriteError, Writer, WriterTask};
use crate::config::IntakeSettings;
use crate::domain::report::ValidReport;
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
}

pub struct Intake {
    registry: Arc<Registry>,
    writer: Writer,
    hasher: ReporterHasher,
    metrics: Arc<Metrics>,
    max_client_id_len: usize,
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
            hasher: ReporterHasher::new(&settings.reporter_secret),
            metrics,
            max_client_id_len: settings.max_client_id_len,
        }
    }

    /// Validates, writes and waits for the store's receipt.
    pub async fn submit(
        &self,
        raw: RawReport,
        origin: Origin<'_>,
    ) -> Result<Accepted, IntakeError> {
        let result = self.submit_inner(raw, origin).await;
        match &result {
            Ok(accepted) => {
                self.metrics.reports_accepted.inc();
                if accepted.counted {
                    self.metrics.reports_counted.inc();
                }
            }
            Err(e) => self
                .metrics
                .reports_rejected
                .with_label_values(&[reason(e)])
                .inc(),
        }
        result
    }

    async fn submit_inner(
        &self,
        raw: RawReport,
        origin: Origin<'_>,
    ) -> Result<Accepted, IntakeError> {
        let report: ValidReport<'_> = raw.validate(&self.registry, self.max_client_id_len)?;
        let reporter = match &report.client_id {
            Some(client_id) => self.hasher.for_client_id(client_id),
            None => self.hasher.for_address(
                origin.addr,
                origin.user_agent,
                origin.at.div_euclid(86_400),
            ),
        };
        let write = ReportWrite {
            id: Uuid::now_v7(),
            service: report.service.id.clone(),
            at: origin.at,
            problem: report.problem,
            country: report.country,
            reporter,
            idempotency_key: origin.idempotency_key,
        };
        let receipt = self.writer.write(write).await?;
        Ok(Accepted {
            id: receipt.id,
            service: report.service.id.clone(),
            counted: receipt.counted,
            bucket: minute_start(receipt.minute),
        })
    }
}

pub fn minute_start(minute: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(minute * 60, 0)
        .single()
        .unwrap_or_default()
}

/// The stable code of a failure, also its metric label.
pub fn reason(e: &IntakeError) -> &'static str {
    match e {
        IntakeError::Invalid(ReportError::UnknownService(_)) => "unknown_service",
        IntakeError::Invalid(ReportError::ProblemNotAllowed { .. }) => "problem_not_allowed",
        IntakeError::Invalid(ReportError::InvalidCountry(_)) => "invalid_country",
        IntakeError::Invalid(ReportError::ClientIdTooLong { .. }) => "client_id_too_long",
        IntakeError::Write(WriteError::QueueFull) => "overloaded",
        IntakeError::Write(WriteError::TimedOut | WriteError::Unavailable) => "store_unavailable",
    }
}
