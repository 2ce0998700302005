//! Settings and their three layers.
//!
//! `config/default.toml` is compiled in and documents every setting; an optional
//! `--config FILE` is merged on top, and `OUTAGEWATCH_<SECTION>__<KEY>` environment
//! variables override both. The merged table is deserialized with
//! `deny_unknown_fields`, so a typo or a value of the wrong type stops start-up
//! with a message that names the setting.
//!
//! Each section's settings sit with their checks in the file of the part
//! that owns them: `http.rs`, `store.rs`, `intake.rs` (intake and import),
//! `web.rs` (api, web and demo), `detect.rs`, `worker.rs` and `admin.rs`
//! (admin, log and registry). `Settings::validate` runs each part's
//! checks and the few rules that tie two parts together; `load.rs` layers
//! the tables and `print.rs` prints the effective settings without secrets.

use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

mod admin;
mod detect;
mod http;
mod intake;
mod load;
mod print;
mod store;
mod web;
mod worker;

pub use self::admin::{AdminSettings, LogFormat, LogSettings, RegistrySettings};
pub use self::detect::DetectSettings;
pub use self::http::HttpSettings;
pub use self::intake::{ImportSettings, IntakeSettings};
pub use self::store::StoreSettings;
pub use self::web::{ApiSettings, DemoSettings, WebSettings};
pub use self::worker::WorkerSettings;

/// The built-in defaults; also the list of every setting that exists.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// Prefix of environment variables that override settings.
pub const ENV_PREFIX: &str = "OUTAGEWATCH_";

/// Why the settings could not be loaded; every message names the file,
/// variable or setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The `--config` file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// A table is not TOML, or does not fit the settings (an unknown key,
    /// a value of the wrong type).
    #[error("invalid configuration in {origin}: {message}")]
    Parse { origin: String, message: String },
    /// An `OUTAGEWATCH_` variable names no setting or has the wrong type.
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    /// A value of the right type that the checks refuse.
    #[error("setting {setting}: {message}")]
    Invalid {
        setting: &'static str,
        message: String,
    },
}

/// Every setting, one field a section of `config/default.toml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `[http]`: the listener and its connection limits.
    pub http: HttpSettings,
    /// `[store]`: Redis or the embedded store, retention, time budgets.
    pub store: StoreSettings,
    /// `[intake]`: taking single reports in.
    pub intake: IntakeSettings,
    /// `[import]`: taking NDJSON history in.
    pub import: ImportSettings,
    /// `[api]`: the read API's limits.
    pub api: ApiSettings,
    /// `[web]`: pages, feeds and the live stream.
    pub web: WebSettings,
    /// `[demo]`: simulated traffic for a first run.
    pub demo: DemoSettings,
    /// `[detect]`: the detector's rules.
    pub detect: DetectSettings,
    /// `[worker]`: the detection tick.
    pub worker: WorkerSettings,
    /// `[admin]`: the admin endpoints' token.
    pub admin: AdminSettings,
    /// `[log]`: log format and level.
    pub log: LogSettings,
    /// `[registry]`: which services registry is loaded.
    pub registry: RegistrySettings,
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
        let mut merged = load::parse_table(DEFAULT_TOML, "config/default.toml")?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.display().to_string(),
                source,
            })?;
            let overlay = load::parse_table(&text, &path.display().to_string())?;
            load::merge(&mut merged, overlay);
        }
        load::apply_env(&mut merged, env)?;
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

    /// Each part's checks, then the rules between parts; the first setting
    /// refused is the error. Demo, admin and registry settings have no
    /// checks: any value of the right type is one they can run with.
    fn validate(&self) -> Result<(), ConfigError> {
        self.http.validate()?;
        self.store.validate()?;
        // With the store: its retention is its own setting, only the floor
        // comes from the API, whose windows it has to keep.
        self.store
            .validate_retention(self.api.max_breakdown_window_secs)?;
        self.intake.validate()?;
        self.import.validate()?;
        self.api.validate()?;
        self.web.validate()?;
        self.detect.validate()?;
        self.worker.validate()?;
        self.log.validate()
    }

    /// `http.bind` as an address.
    pub fn bind_addr(&self) -> SocketAddr {
        // Checked by `validate`.
        self.http
            .bind
            .parse()
            .unwrap_or_else(|_| unreachable!("validated"))
    }
}

fn invalid(setting: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        message: message.into(),
    }
}

/// The first of `settings` that is 0, refused.
fn all_positive(settings: &[(&'static str, u64)]) -> Result<(), ConfigError> {
    match settings.iter().find(|(_, value)| *value == 0) {
        Some(&(setting, _)) => Err(invalid(setting, "must be greater than 0")),
        None => Ok(()),
    }
}

/// `value` as a listen address, or the error that names `setting`.
fn socket_addr(setting: &'static str, value: &str) -> Result<SocketAddr, ConfigError> {
    value
        .parse()
        .map_err(|e| invalid(setting, format!("{value:?} is not host:port ({e})")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An environment of `pairs`, for [`Settings::load_from`].
    pub(super) fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
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
                // Past it, the stream's semaphore could not be made.
                &[("OUTAGEWATCH_WEB__MAX_STREAMS", "2000000")],
                "web.max_streams",
            ),
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
                &[("OUTAGEWATCH_INTAKE__REPORTER_SECRET", "  short secret  ")],
                "intake.reporter_secret",
            ),
            (
                &[("OUTAGEWATCH_STORE__REDIS_URL", "mysql://x")],
                "store.redis_url",
            ),
            (
                // One Redis or a cluster, not both.
                &[
                    ("OUTAGEWATCH_STORE__REDIS_URL", "redis://10.0.0.1:6379"),
                    (
                        "OUTAGEWATCH_STORE__REDIS_CLUSTER_NODES",
                        "redis://10.0.0.2:6379,redis://10.0.0.3:6379",
                    ),
                ],
                "store.redis_cluster_nodes",
            ),
            (
                &[(
                    "OUTAGEWATCH_STORE__REDIS_CLUSTER_NODES",
                    "redis://a:1,mysql://b",
                )],
                "store.redis_cluster_nodes",
            ),
            (
                &[("OUTAGEWATCH_STORE__ACK_REPLICAS", "9")],
                "store.ack_replicas",
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
}
