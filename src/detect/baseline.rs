//! The expected count of a judging window: seasonal, robust, level-corrected.
//!
//! The seasonal value is the median of the same window at the same time of
//! week over past weeks (a median, so one past outage cannot lift it), or of
//! the same time of day over past days for a series younger than a few weeks.
//! Each sample is the rate over an hour or more centred on the same time; a
//! sparse series' samples are wider, so that each holds enough reports for
//! its median not to be mostly counting noise (and one that is still sparse
//! at its widest pools the same time of day on the last week's days with
//! its weeks).
//! Windows that overlap a past incident are left out. Because audiences grow
//! and shrink, the seasonal value is scaled by how the last few hours compare
//! with the same hours in those samples, within bounds. A series with no
//! usable seasonal samples is judged on its recent level alone.

use crate::config::DetectSettings;

pub const HOUR: i64 = 3_600;
pub const DAY: i64 = 24 * HOUR;
pub const WEEK: i64 = 7 * DAY;

/// Counts of one series over `[end - len, end)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowSum {
    /// All counts in the window.
    pub total: f64,
    /// Counts outside incidents.
    pub clean: f64,
    /// Seconds of the window covered by buckets (`len` rounded to buckets).
    pub secs: i64,
    /// Seconds of the window outside incidents.
    pub clean_secs: i64,
}

impl WindowSum {
    /// The rate per second outside incidents, when at least half of the
    /// window is outside them (less would be a guess from a sliver).
    pub fn clean_rate(&self) -> Option<f64> {
        (self.clean_secs > 0 && self.clean_secs * 2 >= self.secs)
            .then(|| self.clean / self.clean_secs as f64)
    }
}

/// What a detector may read of a series' past. Implemented over an in-memory
/// array by the backtest and over stored buckets by the worker.
pub trait History {
    /// Sums over the buckets starting in `[end - len, end)`, or `None` when
    /// any of that is before the series began.
    fn window(&self, end: i64, len: i64) -> Option<WindowSum>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaselineKind {
    Weekly,
    Daily,
    Recent,
    /// The sustained window's: the same hours on past days, moved by the
    /// series' usual ratio to them.
    Sustained,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Baseline {
    /// Expected count of the window.
    pub expected: f64,
    pub kind: BaselineKind,
}

/// The expected count of `[end - len, end)`, or `None` for a series with too
/// little clean history.
pub fn expected(h: &impl History, end: i64, len: i64, s: &DetectSettings) -> Option<Baseline> {
    let level_len = i64::from(s.level_hours) * HOUR;
    let level_end = end - len;
    // The series' mean rate over the last week: a floor, so a sparse series
    // whose seasonal value is zero still expects a little, and what sets how
    // wide a sparse series' seasonal samples must be.
    let mean_rate = h
        .window(level_end, WEEK)
        .or_else(|| h.window(level_end, i64::from(s.min_history_hours) * HOUR))
        .filter(|w| w.clean_secs > 0)
        .map_or(0.0, |w| w.clean / w.clean_secs as f64);
    let mean_floor = s.mean_floor * mean_rate * len as f64;
    let span = sample_span(len, mean_rate, s);
    let sample = |period: i64, count: u32| {
        seasonal_samples(h, end, len, span, level_end, level_len, period, count)
    };
    let (mut ww, mut wl) = sample(WEEK, s.season_weeks);
    let seasonal = if ww.len() >= s.min_season_samples as usize {
        // Samples that are still sparse at their widest are too few at 4:
        // the same time of day on the other days of the last week joins them.
        if mean_rate * (span as f64) < s.season_min_reports {
            let (dw, dl) = sample(DAY, s.season_days.min(6));
            ww.extend(dw);
            wl.extend(dl);
        }
        Some(((median(&mut ww), median(&mut wl)), BaselineKind::Weekly))
    } else {
        let (mut dw, mut dl) = sample(DAY, s.season_days);
        (dw.len() >= s.min_season_samples as usize)
            .then(|| ((median(&mut dw), median(&mut dl)), BaselineKind::Daily))
    };
    let recent = h.window(level_end, level_len);
    let recent_rate = recent.and_then(|r| r.clean_rate());
    let baseline = match (seasonal, recent_rate) {
        (Some(((window, level), kind)), rate) => {
            let factor = match rate {
                Some(rate) if level > 0.0 => {
                    (rate * level_len as f64 / level).clamp(1.0 / s.level_clamp, s.level_clamp)
                }
                _ => 1.0,
            };
            Some(Baseline {
                expected: window * factor,
                kind,
            })
        }
        (None, Some(rate)) => {
            let history = h.window(end - len, i64::from(s.min_history_hours) * HOUR)?;
            (history.clean_secs > 0).then_some(Baseline {
                expected: rate * len as f64,
                kind: BaselineKind::Recent,
            })
        }
        (None, None) => None,
    }?;
    Some(Baseline {
        expected: baseline.expected.max(mean_floor),
        ..baseline
    })
}

/// The window's and the level hours' clean samples `period` apart.
#[allow(clippy::too_many_arguments)]
fn seasonal_samples(
    h: &impl History,
    end: i64,
    len: i64,
    span: i64,
    level_end: i64,
    level_len: i64,
    period: i64,
    count: u32,
) -> (Vec<f64>, Vec<f64>) {
    let mut windows = Vec::with_capacity(count as usize);
    let mut levels = Vec::with_capacity(count as usize);
    let pad = (span - len) / 2;
    for k in 1..=i64::from(count) {
        let Some(w) = h.window(end + pad - k * period, span) else {
            break;
        };
        // Scaled by what the buckets cover: a span of whole minutes over
        // 5-minute buckets covers up to a bucket more than the span.
        if w.clean_secs == w.secs && w.secs > 0 {
            windows.push(w.total * len as f64 / w.secs as f64);
        }
        if let Some(rate) = h
            .window(level_end - k * period, level_len)
            .and_then(|l| l.clean_rate())
        {
            levels.push(rate * level_len as f64);
        }
    }
    (windows, levels)
}

/// Length of each seasonal sample, centred on the window and scaled to it:
/// the window, widened until each sample expects `season_min_reports`,
/// since a 5-minute count of a quiet service is too noisy (and its median
/// too low) to be a baseline on its own. (A floor of an hour for every
/// series changed nothing measured: BENCHMARKS.md.)
fn sample_span(len: i64, mean_rate: f64, s: &DetectSettings) -> i64 {
    let min = len;
    let max = min.max(i64::from(s.season_span_max_mins) * 60);
    if s.season_min_reports <= 0.0 || mean_rate <= 0.0 {
        return min;
    }
    let needed = s.season_min_reports / mean_rate;
    if needed >= max as f64 {
        return max;
    }
    // Whole minutes.
    ((needed / 60.0).ceil() as i64 * 60).clamp(min, max)
}

/// Median (mean of the middle two for an even count); 0 for no values.
pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    #[test]
    fn sparse_series_get_wider_seasonal_samples_within_bounds() {
        let s = Settings::defaults().detect;
        let hour = 3600;
        let per_min = |r: f64| r / 60.0;
        // Busy: 60 reports take 12 minutes at 5 a minute, and 5 at 30.
        assert_eq!(sample_span(300, per_min(5.0), &s), 12 * 60);
        assert_eq!(sample_span(300, per_min(30.0), &s), 300);
        // 1 a minute: an hour.
        assert_eq!(sample_span(300, per_min(1.0), &s), hour);
        // 0.5 a minute: 60 reports take two hours.
        assert_eq!(sample_span(300, per_min(0.5), &s), 2 * hour);
        // Very sparse: capped.
        let max = i64::from(s.season_span_max_mins) * 60;
        assert_eq!(sample_span(300, per_min(0.01), &s), max);
        // Never shorter than the window itself.
        assert_eq!(sample_span(4 * hour, per_min(0.01), &s), 4 * hour);
        let off = DetectSettings {
            season_min_reports: 0.0,
            ..s
        };
        assert_eq!(sample_span(300, per_min(0.01), &off), 300);
    }

    #[test]
    fn a_steady_series_on_coarse_buckets_expects_its_own_rate() {
        // 0.7 a minute in 5-minute buckets: the widened sample (86 minutes)
        // is not a whole number of buckets.
        let s = Settings::defaults().detect;
        let mut h = crate::detect::ArrayHistory::new(0, 300);
        for _ in 0..(35 * 288) {
            h.push(3.5, false);
        }
        let b = expected(&h, h.end(), 300, &s).unwrap();
        assert!((b.expected - 3.5).abs() < 0.01, "{b:?}");
    }
}
