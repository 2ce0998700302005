//! The judgement of one window ending at a tick: its count against its
//! baseline, its p-value and calibrated surprise, the floors a hit must meet,
//! and the count that would reach the alert. The tick's judging and
//! advancing ([`super`]) build these and decide on them.

use super::super::baseline::Baseline;
use super::super::sustained;
use super::super::tail;
use crate::config::DetectSettings;

/// The judgement of one window ending at the tick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowJudgement {
    pub len_secs: i64,
    pub observed: f64,
    pub baseline: Baseline,
    /// Negative-binomial dispersion; for the sustained window, the spread
    /// of its log ratio.
    pub dispersion: f64,
    /// Upper-tail p-value under the model (for the sustained window, the
    /// normal tail of its robust z).
    pub p_value: f64,
    /// The p-value after the series' calibration and the window's credit
    /// for its length (see [`credit`]); for the sustained window,
    /// `alert_p` raised to (z / sustained_z)², i.e. exactly `alert_p` at its
    /// threshold: a p-value on the scale of the alert, not a probability.
    pub p_calibrated: f64,
    /// `-ln p_calibrated`.
    pub surprise: f64,
    /// The surprise by the model alone, before recurring episodes of this
    /// kind made it less (see [`crate::detect::recurrence`]).
    pub novel_surprise: f64,
    /// `-ln p_value`, what calibration learns from.
    pub(super) raw_surprise: f64,
    /// What the window's length added to its surprise.
    pub(super) credit: f64,
    /// Whether this is the sustained window, whose ratio floor is its own.
    pub(super) sustained: bool,
}

impl WindowJudgement {
    /// The sustained window's judgement among the minute windows': its
    /// surprise is already on their scale, so it is used as calibrated.
    pub(super) fn sustained(j: sustained::Judged) -> Self {
        WindowJudgement {
            len_secs: j.len_secs,
            observed: j.observed,
            baseline: j.baseline,
            dispersion: j.scale,
            p_value: j.p_value,
            p_calibrated: (-j.surprise).exp(),
            surprise: j.surprise,
            novel_surprise: j.surprise,
            raw_surprise: tail::surprise(j.p_value),
            credit: 0.0,
            sustained: true,
        }
    }

    /// A judgement with the given numbers, for tests of what follows it.
    #[cfg(test)]
    pub fn for_test(len_secs: i64, observed: f64, expected: f64, surprise: f64) -> Self {
        WindowJudgement {
            len_secs,
            observed,
            baseline: Baseline {
                expected,
                kind: super::super::baseline::BaselineKind::Weekly,
            },
            dispersion: 0.05,
            p_value: (-surprise).exp(),
            p_calibrated: (-surprise).exp(),
            surprise,
            novel_surprise: surprise,
            raw_surprise: surprise,
            credit: 0.0,
            sustained: false,
        }
    }

    pub fn ratio(&self) -> f64 {
        self.observed / self.baseline.expected.max(1e-9)
    }

    pub fn excess(&self) -> f64 {
        self.observed - self.baseline.expected
    }

    /// Ratio and excess floors (the caller checks distinct networks).
    pub fn floors_met(&self, s: &DetectSettings) -> bool {
        let min_ratio = if self.sustained {
            s.sustained_min_ratio
        } else {
            s.min_ratio
        };
        self.ratio() >= min_ratio && self.excess() >= s.min_excess
    }

    /// Minutes whose distinct networks the floor counts: the window's own,
    /// or the last `window_long_mins` for the sustained one.
    pub fn floor_minutes(&self, s: &DetectSettings) -> usize {
        (self.len_secs / 60).min(i64::from(s.window_long_mins)) as usize
    }

    /// The reasoning behind the judgement, for people: window minutes,
    /// observed, expected, baseline kind, dispersion, p-value, calibrated
    /// p-value (`backtest --explain` writes these as CSV columns).
    pub fn explain(&self) -> [String; 7] {
        [
            (self.len_secs / 60).to_string(),
            self.observed.to_string(),
            format!("{:.2}", self.baseline.expected),
            format!("{:?}", self.baseline.kind),
            format!("{:.4}", self.dispersion),
            format!("{:.3e}", self.p_value),
            format!("{:.3e}", self.p_calibrated),
        ]
    }

    /// The count at which this window would reach the alert threshold.
    pub fn upper(&self, s: &DetectSettings, calibration: f64) -> f64 {
        // Calibrated surprise = raw * factor + credit, so the raw p at the
        // alert is (alert_p * e^credit)^(1 / factor).
        let p = (s.alert_p * self.credit.exp())
            .min(1.0)
            .powf(1.0 / calibration.max(1e-6));
        tail::threshold_count(p, self.baseline.expected, self.dispersion)
    }
}

/// What a window's surprise gains for being longer than the shortest. Judged
/// every tick, a window overlaps its own recent judgements, so in a day a
/// window of length L makes about day / L independent tests where the
/// shortest makes day / short: a false-alarm budget per day spread evenly
/// over the windows lets the longer one a p-value L / short times larger,
/// i.e. ln(L / short) more surprise (`detect.window_credit` of it).
pub(super) fn credit(len: i64, shortest: i64, s: &DetectSettings) -> f64 {
    s.window_credit * (len as f64 / shortest.max(1) as f64).ln().max(0.0)
}
