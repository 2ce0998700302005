//! `[detect]`: the detector's rules, and the checks that keep them a
//! detector (windows in order, probabilities inside (0, 1), floors that are
//! numbers). The worker, `outagewatch backtest` and the benches read the
//! same values.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// The detector's rules; `outagewatch backtest` and the worker use the same
/// values. The README's methodology section explains each.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DetectSettings {
    /// Judging windows, shortest first; all are judged every tick and the
    /// one with the strongest evidence among those meeting their floors
    /// decides (the strongest of all when none does).
    pub window_short_mins: u32,
    /// The middle judging window, at least the short one.
    pub window_mid_mins: u32,
    /// The longest judging window, at least the middle one.
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
    /// The widest span a seasonal sample is widened to, minutes.
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
    /// The prior's weight, pseudo-observations (more than 0).
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
    /// The ticks looked back on for `confirm_hits`, at most 32.
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

impl DetectSettings {
    /// The surprise (-ln p) at which a window hits: -ln `alert_p`.
    pub fn alert_surprise(&self) -> f64 {
        -self.alert_p.ln()
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
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
