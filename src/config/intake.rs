//! `[intake]` and `[import]`: the two ways reports come in, one at a time
//! through the report endpoint and in bulk as NDJSON history.

use serde::{Deserialize, Serialize};

use super::{ConfigError, all_positive, invalid};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IntakeSettings {
    /// One counted report per reporter and service within this window.
    pub dedup_window_secs: u64,
    /// Longest accepted client_id, bytes.
    pub max_client_id_len: usize,
    /// Longest accepted Idempotency-Key header, bytes.
    pub max_idempotency_key_len: usize,
    /// How long a stored answer is replayed to retries with the same key.
    pub idempotency_ttl_secs: u64,
    /// Key material of the reporter and network hashes; empty means random
    /// per process, else at least 16 characters besides spaces.
    pub reporter_secret: String,
    /// Reports waiting for the group-commit writer before intake answers 503.
    pub queue_capacity: usize,
    /// Most reports in one group commit.
    pub max_batch: usize,
    /// Retry-After of 503 answers.
    pub retry_after_secs: u64,
    /// Reports one client address (IPv6: one /64) may send per minute,
    /// sustained; 0 disables the limit.
    pub rate_limit_per_minute: u64,
    /// Reports one address may send at once before the per-minute rate applies.
    pub rate_limit_burst: u64,
    /// The network a report comes from: its address cut to this many
    /// leading bits (IPv4).
    pub network_prefix_v4: u8,
    /// The same for IPv6 addresses.
    pub network_prefix_v6: u8,
    /// Counted reports one network may add to a service per clock window
    /// of `dedup_window_secs` from the Unix epoch (with an hour, 14:00-15:00
    /// UTC, ...); past it, reports from
    /// there are accepted but not counted.
    pub max_counted_per_network: u64,
}

/// Shortest `intake.reporter_secret` accepted.
const MIN_SECRET_CHARS: usize = 16;

impl IntakeSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        all_positive(&[
            ("intake.dedup_window_secs", self.dedup_window_secs),
            ("intake.idempotency_ttl_secs", self.idempotency_ttl_secs),
            ("intake.queue_capacity", self.queue_capacity as u64),
            ("intake.max_batch", self.max_batch as u64),
            (
                "intake.max_counted_per_network",
                self.max_counted_per_network,
            ),
        ])?;
        let prefixes = [
            ("intake.network_prefix_v4", self.network_prefix_v4, 8, 32),
            ("intake.network_prefix_v6", self.network_prefix_v6, 16, 128),
        ];
        for (setting, bits, min, max) in prefixes {
            if !(min..=max).contains(&bits) {
                return Err(invalid(
                    setting,
                    format!("must be a prefix length from {min} to {max} bits"),
                ));
            }
        }
        // It keys the hash of addresses and networks: one short enough to
        // guess lets whoever reads the store try every IPv4 /24 against it.
        let secret = self.reporter_secret.chars().filter(|c| !c.is_whitespace());
        if !self.reporter_secret.is_empty() && secret.count() < MIN_SECRET_CHARS {
            return Err(invalid(
                "intake.reporter_secret",
                format!(
                    "must be empty (a random key of the process) or at least \
                     {MIN_SECRET_CHARS} characters besides spaces"
                ),
            ));
        }
        if self.max_batch > 4096 {
            // One Lua call takes the batch of a service as arguments; Lua's
            // stack limits how many values one call may unpack.
            return Err(invalid("intake.max_batch", "must be at most 4096"));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ImportSettings {
    /// Largest import body, bytes.
    pub max_body_bytes: u64,
    /// Longest NDJSON line, bytes; longer lines are rejected.
    pub max_line_bytes: usize,
    /// Largest `count` on one line.
    pub max_count: u64,
    /// Lines buffered between writes to the store.
    pub flush_lines: usize,
    /// Rejected lines listed in the answer (all are counted).
    pub max_rejections_listed: usize,
    /// Tolerated clock skew of `at` into the future.
    pub max_future_skew_secs: i64,
}

impl ImportSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        all_positive(&[("import.flush_lines", self.flush_lines as u64)])?;
        if self.max_future_skew_secs < 0 {
            return Err(invalid(
                "import.max_future_skew_secs",
                "must not be negative",
            ));
        }
        Ok(())
    }
}
