//! Settings and their three layers.
//!
//! `config/default.toml` is compiled in and documents every setting; an optional
//! `--config FILE` is merged on top, and `OUTAGEWATCH_<SECTION>__<KEY>` environment
//! variables override both. The merged table is deserialized with
//! `deny_unknown_fields`, so a typo or a value of the wrong type stops start-up
//! with a message that names the setting.

use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The built-in defaults; also the list of every setting that exists.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Prefix of environment variables that override settings.
pub const ENV_PREFIX: &str = "OUTAGEWATCH_";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid configuration in {origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("setting {setting}: {message}")]
    Invalid {
        setting: &'static str,
        message: String,
    },
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub http: HttpSettings,
    pub store: StoreSettings,
    pub intake: IntakeSettings,
    pub import: ImportSettings,
    pub api: ApiSettings,
    pub web: WebSettings,
    pub demo: DemoSettings,
    pub detect: DetectSettings,
    pub worker: WorkerSettings,
    pub admin: AdminSettings,
    pub log: LogSettings,
    pub registry: RegistrySettings,
}

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

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// Empty means the embedded store.
    pub redis_url: String,
    /// Limit of one connection attempt to Redis.
    pub connect_timeout_ms: u64,
    /// Budget of one intake request waiting for its write to be acknowledged.
    pub write_timeout_ms: u64,
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
    /// Key material of the reporter hash; empty means random per process.
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
    /// Most streams open at once; past it, 503.
    pub max_streams: usize,
    /// Most streams open at once from one address (IPv6: its /64).
    pub max_streams_per_address: usize,
    /// Most rows of one history.csv export.
    pub max_export_rows: usize,
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
    pub seed: u64,
}

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

/// The detector's rules; `outagewatch backtest` and the worker use the same
/// values. The README's methodology section explains each.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DetectSettings {
    /// Judging windows, shortest first; all are judged every tick and the
    /// one with the strongest evidence among those meeting their floors
    /// decides (the strongest of all when none does).
    pub window_short_mins: u32,
    pub window_mid_mins: u32,
    pub window_long_mins: u32,
    /// How much of a longer window's fewer independent tests per day it is
    /// credited (0 to 1): its surprise gains this times ln(len / short).
    pub window_credit: f64,
    /// The sustained window's length in hours, at most 24 (0: off).
    pub sustained_hours: u32,
    /// It is compared with the median of the same hours on this many past
    /// days...
    pub sustained_days: u32,
    /// ...in the series' own spread of that comparison, learned from every
    /// hour of this many past days...
    pub sustained_spread_days: u32,
    /// ...and hits at this many robust standard deviations...
    pub sustained_z: f64,
    /// ...and at least this ratio to the usual (`min_ratio` is the minute
    /// windows').
    pub sustained_min_ratio: f64,
    /// Same-time-of-week samples looked at (weeks back).
    pub season_weeks: u32,
    /// Same-time-of-day samples looked at when weeks are missing (days back).
    pub season_days: u32,
    /// Each seasonal sample is the rate over a span centred on the window's
    /// time, scaled to the window: the window itself, widened, up to
    /// `season_span_max_mins`, until it expects at least this many reports
    /// at the series' mean rate over the last week (0: the window itself);
    /// weekly samples still short of it at their widest are pooled with
    /// daily ones.
    pub season_min_reports: f64,
    pub season_span_max_mins: u32,
    /// Fewest unmasked samples a seasonal median needs.
    pub min_season_samples: u32,
    /// Recent hours that set the current level against the seasonal shape.
    pub level_hours: u32,
    /// The level correction is bounded to [1/x, x] of the seasonal value.
    pub level_clamp: f64,
    /// The expected count is at least this fraction of the series' mean
    /// over the last week (sparse series have seasonal medians of zero).
    pub mean_floor: f64,
    /// Hours of history needed before a series is judged at all.
    pub min_history_hours: u32,
    /// Negative-binomial dispersion (variance = mean + dispersion * mean^2)
    /// assumed before a series has its own estimate, and its weight in
    /// pseudo-observations when the two are blended.
    pub dispersion_prior: f64,
    pub dispersion_prior_weight: f64,
    /// Half-life of the dispersion and calibration estimates.
    pub memory_hours: f64,
    /// Tail quantile of a series' own surprise used for calibration.
    pub calibration_quantile: f64,
    /// A window is a hit when its calibrated p-value is below this...
    pub alert_p: f64,
    /// ...and it has at least this ratio to the expected count...
    pub min_ratio: f64,
    /// ...and this many reports above it...
    pub min_excess: f64,
    /// ...and reports from this many distinct networks (where known).
    pub min_networks: u64,
    /// `problem` when `confirm_hits` of the last `confirm_ticks` ticks hit.
    pub confirm_hits: u32,
    pub confirm_ticks: u32,
    /// Minutes without a hit before an incident is resolved.
    pub quiet_mins: u32,
    /// A hit this soon after a resolution reopens the same incident (a hit
    /// of the kind of the last day's bursts does for a day:
    /// `detect::recurrence`; the sustained window's alone, after an
    /// incident that blinded it, for `sustained_hours`: `detect::lifecycle`).
    pub reopen_mins: u32,
    /// Incident time is kept out of the baseline for at most this long; a
    /// longer rise becomes the new normal.
    pub mask_max_hours: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    /// Bearer token; empty disables admin endpoints.
    pub token: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// Human-readable or JSON lines.
    pub format: LogFormat,
    /// Default filter; RUST_LOG overrides it.
    pub level: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySettings {
    /// Empty means the registry compiled into the binary.
    pub path: String,
}

/// The settings that are secrets: never printed.
const SECRETS: [(&str, &str); 2] = [("admin", "token"), ("intake", "reporter_secret")];

impl Settings {
    /// The effective settings as TOML that loads back with `--config`, with
    /// the secrets left out (a comment at the top names each one that is
    /// set, to be supplied again) and the password of `store.redis_url`
    /// removed.
    pub fn to_redacted_toml(&self) -> String {
        let mut table = toml::Table::try_from(self).expect("settings are plain TOML values");
        let mut notes = Vec::new();
        for (section, key) in SECRETS {
            let Some(toml::Value::Table(t)) = table.get_mut(section) else {
                continue;
            };
            if t.remove(key)
                .is_some_and(|v| v.as_str().is_some_and(|s| !s.is_empty()))
            {
                let env = format!("{ENV_PREFIX}{}__{}", section, key).to_ascii_uppercase();
                notes.push(format!(
                    "# {section}.{key} is set and not shown: supply it again ({env})"
                ));
            }
        }
        if let Some((url, true)) = without_password(&self.store.redis_url)
            && let Some(toml::Value::Table(store)) = table.get_mut("store")
        {
            store.insert("redis_url".into(), toml::Value::String(url));
            notes.push("# store.redis_url has a password, not shown: add it again".into());
        }
        let mut out = String::from("# outagewatch: the effective settings\n");
        for note in notes {
            out.push_str(&note);
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&toml::to_string(&table).expect("a table prints"));
        out
    }
}

/// A URL without the password of its user info or of its query (`pass=`,
/// `password=`, as unix-socket Redis URLs carry it), and whether it had one.
fn without_password(url: &str) -> Option<(String, bool)> {
    let (url, query) = url.split_once('?').unwrap_or((url, ""));
    let params: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    let kept: Vec<&str> = params
        .iter()
        .copied()
        .filter(|p| !matches!(p.split('=').next(), Some("pass" | "password")))
        .collect();
    let query = if kept.is_empty() {
        String::new()
    } else {
        format!("?{}", kept.join("&"))
    };
    let (url, had) = without_userinfo_password(url)?;
    Some((format!("{url}{query}"), had || kept.len() < params.len()))
}

fn without_userinfo_password(url: &str) -> Option<(String, bool)> {
    let (scheme, rest) = url.split_once("://")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return Some((url.to_string(), false));
    };
    let Some((user, _password)) = userinfo.split_once(':') else {
        return Some((url.to_string(), false));
    };
    let at = if user.is_empty() {
        String::new()
    } else {
        format!("{user}@")
    };
    Some((format!("{scheme}://{at}{host}{path}"), true))
}

impl DetectSettings {
    /// The surprise (-ln p) at which a window hits: -ln `alert_p`.
    pub fn alert_surprise(&self) -> f64 {
        -self.alert_p.ln()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |setting: &'static str, message: &str| {
            Err(ConfigError::Invalid {
                setting,
                message: message.into(),
            })
        };
        if self.window_short_mins == 0
            || self.window_mid_mins < self.window_short_mins
            || self.window_long_mins < self.window_mid_mins
        {
            return invalid(
                "detect.window_short_mins",
                "windows must be positive and short <= mid <= long",
            );
        }
        let unit_open = |v: f64| v > 0.0 && v < 1.0;
        if !unit_open(self.calibration_quantile) {
            return invalid("detect.calibration_quantile", "must be between 0 and 1");
        }
        if !(0.0..=1.0).contains(&self.window_credit) {
            return invalid("detect.window_credit", "must be between 0 and 1");
        }
        if !unit_open(self.alert_p) {
            return invalid("detect.alert_p", "must be between 0 and 1");
        }
        if self.confirm_hits == 0
            || self.confirm_hits > self.confirm_ticks
            || self.confirm_ticks > 32
        {
            return invalid(
                "detect.confirm_hits",
                "must be at least 1 and at most detect.confirm_ticks, which is at most 32",
            );
        }
        if self.sustained_hours > 24 {
            return invalid(
                "detect.sustained_hours",
                "must be at most 24 (it is compared with the same hours on past days)",
            );
        }
        if self.sustained_hours > 0 {
            if !(self.sustained_z > 0.0 && self.sustained_z.is_finite()) {
                return invalid("detect.sustained_z", "must be greater than 0");
            }
            if (self.sustained_days as u64) < u64::from(self.min_season_samples.max(1)) {
                return invalid(
                    "detect.sustained_days",
                    "must be at least detect.min_season_samples (the days its median needs)",
                );
            }
            if self.sustained_spread_days < 2 {
                return invalid(
                    "detect.sustained_spread_days",
                    "must be at least 2 (the spread is learned from two days or more)",
                );
            }
        }
        if self.memory_hours.is_nan() || self.memory_hours <= 0.0 {
            return invalid("detect.memory_hours", "must be greater than 0");
        }
        if self.level_clamp.is_nan() || self.level_clamp < 1.0 {
            return invalid("detect.level_clamp", "must be at least 1");
        }
        let non_negative = [
            ("detect.mean_floor", self.mean_floor),
            ("detect.season_min_reports", self.season_min_reports),
            ("detect.dispersion_prior", self.dispersion_prior),
            (
                "detect.dispersion_prior_weight",
                self.dispersion_prior_weight,
            ),
            ("detect.min_ratio", self.min_ratio),
            ("detect.sustained_min_ratio", self.sustained_min_ratio),
            ("detect.min_excess", self.min_excess),
        ];
        for (setting, value) in non_negative {
            if !(value >= 0.0 && value.is_finite()) {
                return invalid(setting, "must be a number of at least 0");
            }
        }
        if self.season_weeks == 0 && self.season_days == 0 {
            return invalid(
                "detect.season_weeks",
                "season_weeks and season_days cannot both be 0",
            );
        }
        let at_least_one = [
            ("detect.level_hours", self.level_hours),
            ("detect.min_history_hours", self.min_history_hours),
            ("detect.min_season_samples", self.min_season_samples),
            ("detect.quiet_mins", self.quiet_mins),
        ];
        for (setting, value) in at_least_one {
            if value == 0 {
                return invalid(setting, "must be at least 1");
            }
        }
        if self.dispersion_prior_weight <= 0.0 {
            return invalid(
                "detect.dispersion_prior_weight",
                "must be greater than 0 (a new series' dispersion is the prior's)",
            );
        }
        Ok(())
    }
}

impl Settings {
    /// Defaults, then `file` if given, then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, std::env::vars())
    }

    /// Like [`Settings::load`] with an explicit environment (tests).
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut merged = parse_table(DEFAULT_TOML, "config/default.toml")?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.display().to_string(),
                source,
            })?;
            let overlay = parse_table(&text, &path.display().to_string())?;
            merge(&mut merged, overlay);
        }
        apply_env(&mut merged, env)?;
        let text = toml::to_string(&merged).map_err(|e| ConfigError::Parse {
            origin: "merged settings".into(),
            message: e.to_string(),
        })?;
        let settings: Settings = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            origin: "merged settings (defaults, --config file, environment)".into(),
            message: e.to_string(),
        })?;
        settings.validate()?;
        Ok(settings)
    }

    /// Defaults only, with the environment ignored (tests and benches).
    pub fn defaults() -> Self {
        Self::load_from(None, std::iter::empty()).expect("built-in defaults are valid")
    }

    fn validate(&self) -> Result<(), ConfigError> {
        fn invalid(setting: &'static str, message: impl Into<String>) -> ConfigError {
            ConfigError::Invalid {
                setting,
                message: message.into(),
            }
        }
        self.http.bind.parse::<SocketAddr>().map_err(|e| {
            invalid(
                "http.bind",
                format!("{:?} is not host:port ({e})", self.http.bind),
            )
        })?;
        if !self.worker.metrics_bind.is_empty() {
            self.worker
                .metrics_bind
                .parse::<SocketAddr>()
                .map_err(|e| {
                    invalid(
                        "worker.metrics_bind",
                        format!("{:?} is not host:port ({e})", self.worker.metrics_bind),
                    )
                })?;
        }
        let url = &self.web.public_url;
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            return Err(invalid(
                "web.public_url",
                format!("{url:?} must start with http:// or https://"),
            ));
        }
        if !self.store.redis_url.is_empty() {
            redis::Client::open(self.store.redis_url.as_str())
                .map_err(|e| invalid("store.redis_url", e.to_string()))?;
        }
        let positive = [
            ("http.max_body_bytes", self.http.max_body_bytes as u64),
            ("http.body_timeout_secs", self.http.body_timeout_secs),
            (
                "http.max_connections_per_address",
                self.http.max_connections_per_address as u64,
            ),
            ("http.max_connection_secs", self.http.max_connection_secs),
            ("http.keep_alive_secs", self.http.keep_alive_secs),
            ("http.head_timeout_secs", self.http.head_timeout_secs),
            ("store.connect_timeout_ms", self.store.connect_timeout_ms),
            ("store.write_timeout_ms", self.store.write_timeout_ms),
            ("store.read_timeout_ms", self.store.read_timeout_ms),
            (
                "api.max_breakdown_window_secs",
                self.api.max_breakdown_window_secs,
            ),
            ("intake.dedup_window_secs", self.intake.dedup_window_secs),
            (
                "intake.idempotency_ttl_secs",
                self.intake.idempotency_ttl_secs,
            ),
            ("intake.queue_capacity", self.intake.queue_capacity as u64),
            ("intake.max_batch", self.intake.max_batch as u64),
            (
                "intake.max_counted_per_network",
                self.intake.max_counted_per_network,
            ),
            ("import.flush_lines", self.import.flush_lines as u64),
            ("api.max_series_points", self.api.max_series_points as u64),
            ("api.default_page_size", self.api.default_page_size as u64),
            ("api.max_feed_scan", self.api.max_feed_scan as u64),
            ("worker.tick_secs", self.worker.tick_secs),
            ("web.feed_entries", self.web.feed_entries as u64),
            ("web.stream_poll_ms", self.web.stream_poll_ms),
            ("web.stream_keepalive_secs", self.web.stream_keepalive_secs),
            ("web.max_export_rows", self.web.max_export_rows as u64),
            (
                "web.max_streams_per_address",
                self.web.max_streams_per_address as u64,
            ),
            ("store.event_backlog", self.store.event_backlog as u64),
            (
                "store.embedded_max_entries",
                self.store.embedded_max_entries as u64,
            ),
            ("worker.lease_secs", self.worker.lease_secs),
            (
                "worker.history_refresh_secs",
                self.worker.history_refresh_secs,
            ),
        ];
        for (setting, value) in positive {
            if value == 0 {
                return Err(invalid(setting, "must be greater than 0"));
            }
        }
        if self.worker.max_catch_up_minutes == 0 {
            return Err(invalid(
                "worker.max_catch_up_minutes",
                "must be at least 1 (0 would judge no minute)",
            ));
        }
        if self.worker.lease_secs <= self.worker.tick_secs {
            return Err(invalid(
                "worker.lease_secs",
                "must be greater than worker.tick_secs, or every lease lapses between ticks",
            ));
        }
        self.detect.validate()?;
        let prefixes = [
            (
                "intake.network_prefix_v4",
                self.intake.network_prefix_v4,
                8,
                32,
            ),
            (
                "intake.network_prefix_v6",
                self.intake.network_prefix_v6,
                16,
                128,
            ),
        ];
        for (setting, bits, min, max) in prefixes {
            if !(min..=max).contains(&bits) {
                return Err(invalid(
                    setting,
                    format!("must be a prefix length from {min} to {max} bits"),
                ));
            }
        }
        if self.intake.max_batch > 4096 {
            // One Lua call takes the batch of a service as arguments; Lua's
            // stack limits how many values one call may unpack.
            return Err(invalid("intake.max_batch", "must be at most 4096"));
        }
        // Buckets expire a whole hour (minutes) or day (rollups) at a time;
        // these floors keep every window the API serves inside retention.
        let breakdown = self.api.max_breakdown_window_secs;
        if self.store.minute_ttl_secs < 90_000 || self.store.minute_ttl_secs < breakdown + 3600 {
            return Err(invalid(
                "store.minute_ttl_secs",
                "must be at least 90000 (25 h: 24 h counts plus the hour being written) and api.max_breakdown_window_secs + 3600",
            ));
        }
        if self.store.rollup_ttl_secs < self.store.minute_ttl_secs + 86_400 {
            return Err(invalid(
                "store.rollup_ttl_secs",
                "must be at least store.minute_ttl_secs + 86400",
            ));
        }
        if self.store.reporters_ttl_secs < breakdown + 60 {
            return Err(invalid(
                "store.reporters_ttl_secs",
                "must be at least api.max_breakdown_window_secs + 60",
            ));
        }
        if self.api.max_page_size < self.api.default_page_size {
            return Err(invalid(
                "api.max_page_size",
                "must be at least api.default_page_size",
            ));
        }
        if self.import.max_future_skew_secs < 0 {
            return Err(invalid(
                "import.max_future_skew_secs",
                "must not be negative",
            ));
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| invalid("log.level", e.to_string()))?;
        Ok(())
    }

    pub fn bind_addr(&self) -> SocketAddr {
        // Checked by `validate`.
        self.http
            .bind
            .parse()
            .unwrap_or_else(|_| unreachable!("validated"))
    }
}

fn parse_table(text: &str, origin: &str) -> Result<toml::Table, ConfigError> {
    text.parse::<toml::Table>().map_err(|e| ConfigError::Parse {
        origin: origin.to_string(),
        message: e.to_string(),
    })
}

/// Deep-merges `overlay` into `base`; unknown keys survive so that
/// deserialization reports them by name.
fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Applies `OUTAGEWATCH_<SECTION>__<KEY>` variables. The value is read with the
/// type of the default it replaces, so `OUTAGEWATCH_HTTP__WORKERS=4` is a number
/// and a list is comma-separated (`OUTAGEWATCH_HTTP__TRUSTED_PROXIES=10.0.0.0/8,::1/128`).
fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    for (var, raw) in env {
        let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let env_error = |message: String| ConfigError::Env {
            var: var.clone(),
            message,
        };
        let Some((section, key)) = rest.split_once("__") else {
            return Err(env_error(
                "expected OUTAGEWATCH_<SECTION>__<KEY>, e.g. OUTAGEWATCH_HTTP__BIND".into(),
            ));
        };
        let (section, key) = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
        let Some(toml::Value::Table(section_table)) = table.get_mut(&section) else {
            return Err(env_error(format!(
                "there is no settings section [{section}]"
            )));
        };
        let Some(default) = section_table.get(&key) else {
            return Err(env_error(format!("there is no setting {section}.{key}")));
        };
        let value = match default {
            toml::Value::String(_) => toml::Value::String(raw.clone()),
            toml::Value::Integer(_) => toml::Value::Integer(raw.trim().parse().map_err(|_| {
                env_error(format!("{section}.{key} must be an integer, got {raw:?}"))
            })?),
            toml::Value::Float(_) => toml::Value::Float(raw.trim().parse().map_err(|_| {
                env_error(format!("{section}.{key} must be a number, got {raw:?}"))
            })?),
            toml::Value::Boolean(_) => toml::Value::Boolean(raw.trim().parse().map_err(|_| {
                env_error(format!(
                    "{section}.{key} must be true or false, got {raw:?}"
                ))
            })?),
            // A list of strings, comma-separated (http.trusted_proxies).
            toml::Value::Array(_) => toml::Value::Array(
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| toml::Value::String(s.to_string()))
                    .collect(),
            ),
            other => {
                return Err(env_error(format!(
                    "{section}.{key} is a {} and cannot be set from the environment",
                    other.type_str()
                )));
            }
        };
        section_table.insert(key, value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_have_the_documented_values() {
        let s = Settings::defaults();
        assert_eq!(s.http.bind, "127.0.0.1:8080");
        assert_eq!(s.store.redis_url, "");
        assert_eq!(s.admin.token, "");
        assert_eq!(s.http.max_body_bytes, 4096);
        assert_eq!(s.intake.dedup_window_secs, 3600);
        assert_eq!(
            (s.intake.network_prefix_v4, s.intake.network_prefix_v6),
            (24, 48)
        );
        // One network alone cannot meet the excess floor (README, Methodology).
        assert!((s.intake.max_counted_per_network as f64) < s.detect.min_excess);
        assert_eq!(s.detect.min_networks, 5);
    }

    #[test]
    fn environment_overrides_file_and_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[http]\nbind = \"0.0.0.0:9000\"\nworkers = 3\n").unwrap();
        let s = Settings::load_from(
            Some(&path),
            env(&[
                ("OUTAGEWATCH_HTTP__BIND", "127.0.0.1:7000"),
                ("OUTAGEWATCH_STORE__REDIS_URL", "redis://127.0.0.1:1/0"),
                ("OUTAGEWATCH_ADMIN__TOKEN", "s3cret"),
                ("UNRELATED", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(s.http.bind, "127.0.0.1:7000");
        assert_eq!(s.http.workers, 3);
        assert_eq!(s.store.redis_url, "redis://127.0.0.1:1/0");
        assert_eq!(s.admin.token, "s3cret");
    }

    #[test]
    fn config_prints_toml_that_loads_back_without_its_secrets() {
        let s = Settings::load_from(
            None,
            env(&[
                ("OUTAGEWATCH_ADMIN__TOKEN", "s3cret-token"),
                ("OUTAGEWATCH_INTAKE__REPORTER_SECRET", "pepper-secret"),
                (
                    "OUTAGEWATCH_STORE__REDIS_URL",
                    "redis://app:hunter2@10.0.0.5:6379/2",
                ),
                ("OUTAGEWATCH_HTTP__BIND", "127.0.0.1:7777"),
                ("OUTAGEWATCH_HTTP__TRUSTED_PROXIES", "10.0.0.0/8"),
            ]),
        )
        .unwrap();
        let printed = s.to_redacted_toml();
        for secret in ["s3cret-token", "pepper-secret", "hunter2"] {
            assert!(!printed.contains(secret), "{printed}");
        }
        for note in [
            "# admin.token is set",
            "OUTAGEWATCH_INTAKE__REPORTER_SECRET",
            "has a password",
        ] {
            assert!(printed.contains(note), "{printed}");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("printed.toml");
        std::fs::write(&path, &printed).unwrap();
        let back = Settings::load_from(Some(&path), env(&[])).unwrap();
        assert_eq!(back.http.bind, "127.0.0.1:7777");
        assert_eq!(back.http.trusted_proxies, s.http.trusted_proxies);
        assert_eq!(back.store.redis_url, "redis://app@10.0.0.5:6379/2");
        assert_eq!(back.admin.token, "");
        assert_eq!(back.detect.sustained_hours, s.detect.sustained_hours);
        // A unix-socket URL carries it in its query.
        let socket = Settings::load_from(
            None,
            env(&[(
                "OUTAGEWATCH_STORE__REDIS_URL",
                "redis+unix:///tmp/r.sock?db=0&pass=hunter2",
            )]),
        )
        .unwrap()
        .to_redacted_toml();
        assert!(
            !socket.contains("hunter2") && socket.contains("redis+unix:///tmp/r.sock?db=0"),
            "{socket}"
        );
        // Without secrets, what is printed is what was set.
        let plain = Settings::defaults().to_redacted_toml();
        assert!(!plain.contains("is set and not shown"), "{plain}");
    }

    #[test]
    fn a_list_is_comma_separated_in_the_environment() {
        let s = Settings::load_from(
            None,
            env(&[(
                "OUTAGEWATCH_HTTP__TRUSTED_PROXIES",
                " 10.0.0.0/8, ::1/128 ,",
            )]),
        )
        .unwrap();
        let proxies: Vec<String> = s
            .http
            .trusted_proxies
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(proxies, ["10.0.0.0/8", "::1/128"]);
        assert!(Settings::defaults().http.trusted_proxies.is_empty());
    }

    #[test]
    fn bad_settings_name_the_setting() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("OUTAGEWATCH_HTTP__BIND", "nonsense")], "http.bind"),
            (&[("OUTAGEWATCH_HTTP__WORKERS", "four")], "http.workers"),
            (
                &[("OUTAGEWATCH_HTTP__TRUSTED_PROXIES", "10.0.0.0/8,nonsense")],
                "trusted_proxies",
            ),
            (&[("OUTAGEWATCH_HTTP__NOPE", "1")], "http.nope"),
            (
                &[("OUTAGEWATCH_INTAKE__NETWORK_PREFIX_V4", "33")],
                "intake.network_prefix_v4",
            ),
            (
                &[("OUTAGEWATCH_INTAKE__NETWORK_PREFIX_V6", "8")],
                "intake.network_prefix_v6",
            ),
            (
                &[("OUTAGEWATCH_INTAKE__MAX_COUNTED_PER_NETWORK", "0")],
                "intake.max_counted_per_network",
            ),
            (
                &[("OUTAGEWATCH_STORE__REDIS_URL", "mysql://x")],
                "store.redis_url",
            ),
            (
                &[("OUTAGEWATCH_STORE__MINUTE_TTL_SECS", "3600")],
                "store.minute_ttl_secs",
            ),
            (
                &[("OUTAGEWATCH_STORE__ROLLUP_TTL_SECS", "172800")],
                "store.rollup_ttl_secs",
            ),
            (
                &[("OUTAGEWATCH_INTAKE__MAX_BATCH", "0")],
                "intake.max_batch",
            ),
            (
                &[("OUTAGEWATCH_DETECT__SUSTAINED_SPREAD_DAYS", "1")],
                "detect.sustained_spread_days",
            ),
            (
                &[("OUTAGEWATCH_DETECT__SUSTAINED_Z", "0")],
                "detect.sustained_z",
            ),
            (
                &[("OUTAGEWATCH_DETECT__SUSTAINED_DAYS", "2")],
                "detect.sustained_days",
            ),
            (
                &[("OUTAGEWATCH_DETECT__SUSTAINED_HOURS", "25")],
                "detect.sustained_hours",
            ),
            (
                &[("OUTAGEWATCH_DETECT__MIN_HISTORY_HOURS", "0")],
                "detect.min_history_hours",
            ),
            (
                &[("OUTAGEWATCH_DETECT__MIN_SEASON_SAMPLES", "0")],
                "detect.min_season_samples",
            ),
            (
                &[("OUTAGEWATCH_DETECT__QUIET_MINS", "0")],
                "detect.quiet_mins",
            ),
            (
                &[("OUTAGEWATCH_DETECT__DISPERSION_PRIOR_WEIGHT", "0")],
                "detect.dispersion_prior_weight",
            ),
            (
                &[("OUTAGEWATCH_WORKER__MAX_CATCH_UP_MINUTES", "0")],
                "worker.max_catch_up_minutes",
            ),
            (
                &[("OUTAGEWATCH_WORKER__LEASE_SECS", "5")],
                "worker.lease_secs",
            ),
        ];
        for (vars, setting) in cases {
            let err = Settings::load_from(None, env(vars))
                .unwrap_err()
                .to_string();
            assert!(err.contains(setting), "{err:?} should name {setting}");
        }
    }

    #[test]
    fn unknown_key_in_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[store]\nredis_ulr = \"redis://x\"\n").unwrap();
        let err = Settings::load_from(Some(&path), std::iter::empty())
            .unwrap_err()
            .to_string();
        assert!(err.contains("redis_ulr"), "{err}");
    }
}
