//! `[store]`: where reports are counted (Redis, or the embedded store when
//! no URL is set), how long each kind of bucket is kept, and the time
//! budgets of talking to it.

use serde::{Deserialize, Serialize};

use super::{ConfigError, all_positive, invalid};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// One Redis; empty (and no cluster nodes) means the embedded store.
    pub redis_url: String,
    /// Seed nodes of a Redis Cluster (`redis://host:port` each; a few are
    /// enough, the rest are discovered). Set instead of `redis_url`.
    pub redis_cluster_nodes: Vec<String>,
    /// Limit of one connection attempt to Redis.
    pub connect_timeout_ms: u64,
    /// Budget of one intake request waiting for its write to be acknowledged.
    pub write_timeout_ms: u64,
    /// With N >= 1 a batch of reports is acknowledged (202) only once N
    /// replicas of every master it wrote to have it (Redis `WAIT`, within
    /// the write budget); else 503, as a write that may stand.
    pub ack_replicas: u32,
    /// Limit of one read (series, breakdown, readiness ping).
    pub read_timeout_ms: u64,
    /// Retention of minute buckets (totals, problems, countries).
    pub minute_ttl_secs: u64,
    /// Retention of 15-minute rollups, the baseline history.
    pub rollup_ttl_secs: u64,
    /// Retention of per-minute distinct-reporter estimates.
    pub reporters_ttl_secs: u64,
    /// Feed events (opened, updated, resolved) kept for clients resuming
    /// the live stream with Last-Event-ID.
    pub event_backlog: usize,
    /// The embedded store keeps at most this many dedup markers,
    /// idempotency answers, distinct reporters and networks and per-network
    /// counts (each, across services).
    pub embedded_max_entries: usize,
}

/// The most replicas a write may wait for.
const MAX_ACK_REPLICAS: u32 = 8;

impl StoreSettings {
    /// Whether the settings name Redis (one node or a cluster) rather than
    /// the embedded store.
    pub fn uses_redis(&self) -> bool {
        !self.redis_url.is_empty() || !self.redis_cluster_nodes.is_empty()
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !self.redis_url.is_empty() {
            if !self.redis_cluster_nodes.is_empty() {
                return Err(invalid(
                    "store.redis_cluster_nodes",
                    "set either store.redis_url (one Redis) or store.redis_cluster_nodes (a cluster), not both",
                ));
            }
            redis::Client::open(self.redis_url.as_str())
                .map_err(|e| invalid("store.redis_url", e.to_string()))?;
        }
        if !self.redis_cluster_nodes.is_empty() {
            redis::cluster::ClusterClient::new(self.redis_cluster_nodes.clone())
                .map_err(|e| invalid("store.redis_cluster_nodes", e.to_string()))?;
        }
        if self.ack_replicas > MAX_ACK_REPLICAS {
            return Err(invalid(
                "store.ack_replicas",
                format!("{} is more than {MAX_ACK_REPLICAS}", self.ack_replicas),
            ));
        }
        all_positive(&[
            ("store.connect_timeout_ms", self.connect_timeout_ms),
            ("store.write_timeout_ms", self.write_timeout_ms),
            ("store.read_timeout_ms", self.read_timeout_ms),
            ("store.event_backlog", self.event_backlog as u64),
            (
                "store.embedded_max_entries",
                self.embedded_max_entries as u64,
            ),
        ])
    }

    /// The retention floors: what the store keeps must cover the longest
    /// window the API serves, `api.max_breakdown_window_secs`.
    pub(super) fn validate_retention(
        &self,
        max_breakdown_window_secs: u64,
    ) -> Result<(), ConfigError> {
        // Buckets expire a whole hour (minutes) or day (rollups) at a time;
        // these floors keep every window the API serves inside retention.
        if self.minute_ttl_secs < 90_000 || self.minute_ttl_secs < max_breakdown_window_secs + 3600
        {
            return Err(invalid(
                "store.minute_ttl_secs",
                "must be at least 90000 (25 h: 24 h counts plus the hour being written) and api.max_breakdown_window_secs + 3600",
            ));
        }
        if self.rollup_ttl_secs < self.minute_ttl_secs + 86_400 {
            return Err(invalid(
                "store.rollup_ttl_secs",
                "must be at least store.minute_ttl_secs + 86400",
            ));
        }
        if self.reporters_ttl_secs < max_breakdown_window_secs + 60 {
            return Err(invalid(
                "store.reporters_ttl_secs",
                "must be at least api.max_breakdown_window_secs + 60",
            ));
        }
        Ok(())
    }
}
