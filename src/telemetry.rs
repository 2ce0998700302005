//! Logging (tracing, human or JSON) and the Prometheus metrics of one app.
//!
//! Metrics live on the app's own [`prometheus::Registry`], not the global one,
//! so tests can run several apps in one process. Labels are bounded: route
//! templates, rejection reasons and store operations, never raw paths or ids.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber; RUST_LOG, when set, overrides `log.level`.
pub fn init_tracing(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match settings.format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // A second initialisation (tests) keeps the first subscriber.
    let _ = result;
}

pub struct Metrics {
    registry: Registry,
    pub reports_accepted: IntCounter,
    pub reports_counted: IntCounter,
    pub reports_rejected: IntCounterVec,
    pub reports_imported: IntCounter,
    pub http_duration: HistogramVec,
    pub write_batch_size: Histogram,
    pub write_batch_seconds: Histogram,
    pub store_errors: IntCounterVec,
    pub worker_tick_seconds: Histogram,
    pub worker_tick_failures: IntCounter,
    pub worker_services_held: IntGauge,
    pub anomaly_events: IntCounterVec,
    pub corrupt_documents: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
                .expect("valid metric");
            registry
                .register(Box::new(h.clone()))
                .expect("unique metric");
            h
        };
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "outagewatch_http_request_duration_seconds",
                "HTTP request latency by method, route template and status",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["method", "route", "status"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(http_duration.clone()))
            .expect("unique metric");
        let services_held = IntGauge::new(
            "outagewatch_worker_services_held",
            "Services whose lease this process's detection worker holds",
        )
        .expect("valid metric");
        registry
            .register(Box::new(services_held.clone()))
            .expect("unique metric");
        Metrics {
            worker_tick_seconds: histogram(
                "outagewatch_worker_tick_duration_seconds",
                "Duration of one detection tick, store round trips included",
                vec![0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
            ),
            worker_tick_failures: counter(
                "outagewatch_worker_tick_failures_total",
                "Detection ticks that failed (the next tick starts again from the store)",
            ),
            worker_services_held: services_held,
            anomaly_events: counter_vec(
                "outagewatch_anomaly_events_total",
                "Incident lifecycle events: opened, confirmed, reopened, resolved",
                &["event"],
            ),
            reports_accepted: counter("outagewatch_reports_accepted_total", "Reports answered 202"),
            reports_counted: counter(
                "outagewatch_reports_counted_total",
                "Accepted reports that were counted (first from their reporter in the dedup window)",
            ),
            reports_rejected: counter_vec(
                "outagewatch_reports_rejected_total",
                "Reports not accepted, by reason code",
                &["reason"],
            ),
            reports_imported: counter(
                "outagewatch_reports_imported_total",
                "Reports added by history import",
            ),
            http_duration,
            write_batch_size: histogram(
                "outagewatch_write_batch_size",
                "Reports per group commit",
                vec![
                    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0,
                    4096.0,
                ],
            ),
            write_batch_seconds: histogram(
                "outagewatch_write_batch_duration_seconds",
                "Latency of one group commit to the store",
                vec![
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                    0.5, 1.0,
                ],
            ),
            store_errors: counter_vec(
                "outagewatch_store_errors_total",
                "Failed store operations, by operation and kind",
                &["op", "kind"],
            ),
            corrupt_documents: counter_vec(
                "outagewatch_corrupt_documents_total",
                "Documents read back from the store that do not parse, by kind",
                &["kind"],
            ),
            registry,
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let encoder = TextEncoder::new();
        // Encoding our own well-formed families into a Vec cannot fail.
        let _ = encoder.encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }

    /// A document read back from the store (an anomaly, a worker's state),
    /// of `kind`: the one policy for all of them, so a corrupt one is never
    /// silently taken for another value. One that does not parse is logged
    /// and counted, and `None`; what the caller does then (leave it out,
    /// answer 500, start afresh) it says where it does it.
    pub fn stored<T: serde::de::DeserializeOwned>(&self, kind: &str, doc: &str) -> Option<T> {
        match serde_json::from_str(doc) {
            Ok(value) => Some(value),
            Err(e) => {
                tracing::error!(kind, error = %e, bytes = doc.len(), "a stored document does not parse");
                self.corrupt_documents.with_label_values(&[kind]).inc();
                None
            }
        }
    }

    /// Counts a failed store operation `op` in
    /// `outagewatch_store_errors_total{op, kind}` without logging it: for
    /// a failure that repeats and is logged when it starts (a poll), that
    /// is the answer itself (a readiness probe), or that the caller does
    /// without (the detector's numbers beside a series). Any other is
    /// logged and counted by `store_failed!`.
    pub fn store_error(&self, op: &str, err: &crate::store::StoreError) {
        let kind = match err {
            crate::store::StoreError::Timeout => "timeout",
            crate::store::StoreError::Unavailable(_) => "unavailable",
            crate::store::StoreError::Protocol(_) => "protocol",
            crate::store::StoreError::Unreplicated { .. } => "unreplicated",
        };
        self.store_errors.with_label_values(&[op, kind]).inc();
    }
}

/// Logs a failed store operation once, at warn, with its operation and
/// cause chain, and counts it as [`Metrics::store_error`] does: one call,
/// so the log and the metric never disagree. A macro rather than a method
/// so that the line keeps its caller's module as its target (what
/// `RUST_LOG` filters on) and its own fields before the message:
/// `store_failed!(metrics, "record", &err, reports = n, "group commit failed")`.
macro_rules! store_failed {
    ($metrics:expr, $op:expr, $error:expr, $($fields_and_message:tt)+) => {{
        let (op, error): (&str, &$crate::store::StoreError) = ($op, $error);
        $metrics.store_error(op, error);
        ::tracing::warn!(error = %$crate::telemetry::Chain(error), op, $($fields_and_message)+);
    }};
}
pub(crate) use store_failed;

/// An error and its sources, as `outer: inner: innermost`.
pub struct Chain<'a>(pub &'a dyn std::error::Error);

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
