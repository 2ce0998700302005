//! `[http]`: the listener and the limits every connection and request
//! lives within, checked before the server binds.

use serde::{Deserialize, Serialize};

use super::{ConfigError, all_positive, socket_addr};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Listen address; port 0 picks a free port (tests).
    pub bind: String,
    /// Worker threads; 0 means one per core.
    pub workers: usize,
    /// Body limit of the report endpoint, bytes.
    pub max_body_bytes: usize,
    /// Reverse proxies (CIDRs) whose X-Forwarded-For is believed: the
    /// client is the rightmost address there that is not one of them.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// A report's body must have arrived this long after its head, and an
    /// import's body may not pause longer than this (408 otherwise).
    pub body_timeout_secs: u64,
    /// Connections one client address (IPv6: one /64) may hold open;
    /// trusted proxies are not counted.
    pub max_connections_per_address: usize,
    /// A keep-alive connection this old is closed after its next answer,
    /// and any connection shut down a grace period later (as long again,
    /// at most a minute).
    pub max_connection_secs: u64,
    /// A connection that receives nothing for this long is closed.
    pub keep_alive_secs: u64,
    /// A connection's first request head must arrive within this.
    pub head_timeout_secs: u64,
    /// Grace period for in-flight requests on shutdown.
    pub shutdown_timeout_secs: u64,
}

impl HttpSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        socket_addr("http.bind", &self.bind)?;
        all_positive(&[
            ("http.max_body_bytes", self.max_body_bytes as u64),
            ("http.body_timeout_secs", self.body_timeout_secs),
            (
                "http.max_connections_per_address",
                self.max_connections_per_address as u64,
            ),
            ("http.max_connection_secs", self.max_connection_secs),
            ("http.keep_alive_secs", self.keep_alive_secs),
            ("http.head_timeout_secs", self.head_timeout_secs),
        ])
    }
}
