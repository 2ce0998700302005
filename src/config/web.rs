//! `[api]`, `[web]` and `[demo]`: what readers get to see, through the
//! read API and the pages, how much of the store a flood of them may cost,
//! and the simulated traffic that fills both for a first run.

use serde::{Deserialize, Serialize};

use super::{ConfigError, all_positive, invalid};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSettings {
    /// Most points of one /series answer.
    pub max_series_points: usize,
    /// Largest /breakdown window.
    pub max_breakdown_window_secs: u64,
    /// Page size of list endpoints without `limit`.
    pub default_page_size: usize,
    /// Largest accepted `limit`.
    pub max_page_size: usize,
    /// Most anomalies one feed request reads while filtering; past it the
    /// page may be short and `next_cursor` continues the scan.
    pub max_feed_scan: usize,
}

impl ApiSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        all_positive(&[
            (
                "api.max_breakdown_window_secs",
                self.max_breakdown_window_secs,
            ),
            ("api.max_series_points", self.max_series_points as u64),
            ("api.default_page_size", self.default_page_size as u64),
            ("api.max_feed_scan", self.max_feed_scan as u64),
        ])?;
        if self.max_page_size < self.default_page_size {
            return Err(invalid(
                "api.max_page_size",
                "must be at least api.default_page_size",
            ));
        }
        Ok(())
    }
}

/// Pages, charts, feeds and the live stream: what readers and journalists
/// see, and how much of the store a flood of them may cost.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebSettings {
    /// Where readers reach this site (`https://outagewatch.example`), for
    /// the absolute links and ids of Atom feeds; empty takes the request's
    /// Host header.
    pub public_url: String,
    /// How long a computed answer (counts, series, breakdown, open
    /// incidents) is reused; 0 reads the store on every request.
    pub read_cache_ms: u64,
    /// Most cached answers per kind.
    pub read_cache_entries: usize,
    /// Cache-Control max-age of pages and feeds.
    pub page_max_age_secs: u64,
    /// Cache-Control max-age of `/embed/{id}.svg`.
    pub embed_max_age_secs: u64,
    /// How often open pages fetch fresh data.
    pub page_refresh_secs: u64,
    /// Entries of the Atom feeds.
    pub feed_entries: usize,
    /// How often the stream looks for new events in the store.
    pub stream_poll_ms: u64,
    /// A comment line keeps idle streams open through proxies this often.
    pub stream_keepalive_secs: u64,
    /// Most streams open at once (at most 1,000,000); past it, 503.
    pub max_streams: usize,
    /// Most streams open at once from one address (IPv6: its /64).
    pub max_streams_per_address: usize,
    /// Most rows of one history.csv export.
    pub max_export_rows: usize,
}

/// The most `web.max_streams` may be: each stream holds a connection,
/// and the server's own limits come long before.
const MAX_STREAMS: usize = 1_000_000;

impl WebSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let url = &self.public_url;
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            return Err(invalid(
                "web.public_url",
                format!("{url:?} must start with http:// or https://"),
            ));
        }
        if self.max_streams > MAX_STREAMS {
            return Err(invalid(
                "web.max_streams",
                format!("{} is more than {MAX_STREAMS}", self.max_streams),
            ));
        }
        all_positive(&[
            ("web.feed_entries", self.feed_entries as u64),
            ("web.stream_poll_ms", self.stream_poll_ms),
            ("web.stream_keepalive_secs", self.stream_keepalive_secs),
            ("web.max_export_rows", self.max_export_rows as u64),
            (
                "web.max_streams_per_address",
                self.max_streams_per_address as u64,
            ),
        ])
    }
}

/// `serve --demo`: simulated history and live traffic with outages, so a
/// newcomer sees charts and incidents within minutes.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DemoSettings {
    /// Run the demo traffic inside `serve` (the `--demo` flag sets it).
    pub enabled: bool,
    /// Simulated services: the five Meta services, then the registry's next.
    pub services: usize,
    /// Days of history imported at start (the baselines' memory).
    pub history_days: u32,
    /// The first Meta-style outage starts this long after the start of the
    /// minute the demo starts in (outages begin on whole minutes).
    pub first_outage_after_secs: u64,
    /// A Meta-style outage this often, and a single-service one between.
    pub outage_every_mins: u64,
    /// How long the Meta-style outages last at most.
    pub outage_minutes: u32,
    /// Seed of the simulated traffic: the same seed, the same history and
    /// outages.
    pub seed: u64,
}
