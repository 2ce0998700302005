//! `[worker]`: the detection tick's pace, its leases on services, and how
//! it catches up after being away.

use serde::{Deserialize, Serialize};

use super::{ConfigError, all_positive, invalid, socket_addr};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    /// Run the detection worker inside `serve`.
    pub enabled: bool,
    /// How often the worker looks for a newly completed minute.
    pub tick_secs: u64,
    /// A worker's hold on a service lapses this long after its last tick.
    pub lease_secs: u64,
    /// Minutes a worker that was away catches up on before it skips ahead.
    pub max_catch_up_minutes: u32,
    /// Stored history is reloaded at least this often (and after imports).
    pub history_refresh_secs: u64,
    /// Minutes an anomaly's timeline keeps (the newest).
    pub max_timeline_minutes: usize,
    /// After the store was unreachable, the minutes of the outage and this
    /// long after it cannot open incidents.
    pub outage_quarantine_secs: u64,
    /// Where `outagewatch worker` serves /metrics and /healthz; empty for
    /// nowhere.
    pub metrics_bind: String,
}

impl WorkerSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !self.metrics_bind.is_empty() {
            socket_addr("worker.metrics_bind", &self.metrics_bind)?;
        }
        all_positive(&[
            ("worker.tick_secs", self.tick_secs),
            ("worker.lease_secs", self.lease_secs),
            ("worker.history_refresh_secs", self.history_refresh_secs),
        ])?;
        if self.max_catch_up_minutes == 0 {
            return Err(invalid(
                "worker.max_catch_up_minutes",
                "must be at least 1 (0 would judge no minute)",
            ));
        }
        if self.lease_secs <= self.tick_secs {
            return Err(invalid(
                "worker.lease_secs",
                "must be greater than worker.tick_secs, or every lease lapses between ticks",
            ));
        }
        Ok(())
    }
}
