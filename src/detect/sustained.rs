//! The sustained window: a rise that lasts hours rather than minutes.
//!
//! A service that is half broken all afternoon draws reports at twice its
//! usual rate for many hours without any five minutes standing out. The
//! minute windows, whose baselines follow the current level, cannot see it;
//! this window compares the last `sustained_hours` with the same hours on
//! each of the last `sustained_days` days, in log terms, and measures the
//! difference in the series' own spread of that comparison (a robust z:
//! median and median absolute deviation of the same comparison at every hour
//! of the last `sustained_spread_days` days). How far a day strays from the
//! days before differs a lot between series (news-driven ones stray far), so
//! this spread is learned, not assumed.
//!
//! Its surprise is put on the minute windows' scale by the normal
//! distribution's shape: the alert's surprise times (z / sustained_z)², so
//! the window hits at `sustained_z` robust deviations and grows as a normal
//! log-likelihood does beyond.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};

use super::baseline::{Baseline, BaselineKind, DAY, History, median};
use super::tail;
use crate::config::DetectSettings;

/// Reports added to both sides of the log ratio, so that a sparse series
/// going from 1 to 3 reports is not a tripling.
const PSEUDO_REPORTS: f64 = 5.0;
/// Smallest spread of the log ratio (5 %): a series that has been eerily
/// regular is not held to a tighter standard than this.
const MIN_SPREAD: f64 = 0.05;
/// Fewest hourly comparisons the spread is learned from (two days).
const MIN_SPREAD_SAMPLES: usize = 48;
const HOUR: i64 = 3600;

/// The series' usual log ratio and its spread, relearned every hour.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// When it was learned (the end of the window then judged).
    pub at: i64,
    /// Median log ratio: a series that grows sits a little above its past
    /// days all the time.
    pub centre: f64,
    /// Median absolute deviation of the log ratio, scaled to a standard
    /// deviation.
    pub scale: f64,
}

/// What one comparison found: the window's count, the median of the same
/// hours on past days, and the log ratio of the two.
struct Comparison {
    observed: f64,
    usual: f64,
    log_ratio: f64,
}

fn window_len(s: &DetectSettings) -> i64 {
    i64::from(s.sustained_hours) * HOUR
}

/// The count of `[end - len, end)` outside incidents, scaled to the whole
/// window; `None` when less than half of it is outside incidents. An outage
/// already reported is not also a sustained rise for the next hours.
fn clean_count(h: &impl History, end: i64, len: i64) -> Option<f64> {
    let w = h.window(end, len)?;
    (w.clean_secs > 0 && w.clean_secs * 2 >= w.secs)
        .then(|| w.clean * w.secs as f64 / w.clean_secs as f64)
}

/// The window ending at `end` against the same hours on past days (at least
/// `min_season_samples` of them).
fn compare(h: &impl History, end: i64, s: &DetectSettings) -> Option<Comparison> {
    let len = window_len(s);
    let observed = clean_count(h, end, len)?;
    let mut days: Vec<f64> = (1..=i64::from(s.sustained_days))
        .filter_map(|k| clean_count(h, end - k * DAY, len))
        .collect();
    if days.len() < s.min_season_samples.max(1) as usize {
        return None;
    }
    let usual = median(&mut days);
    Some(Comparison {
        observed,
        usual,
        log_ratio: ((observed + PSEUDO_REPORTS) / (usual + PSEUDO_REPORTS)).ln(),
    })
}

/// Relearns the spread once an hour (and when missing), at `phase` seconds
/// past the hour: the comparison at every hour of the last
/// `sustained_spread_days` days. An hour changes it little, and relearning
/// costs a few hundred window sums; a caller judging many series spreads
/// them over the hour with different phases.
pub fn refresh(
    spread: &mut Option<Spread>,
    h: &impl History,
    end: i64,
    phase: i64,
    s: &DetectSettings,
) {
    let hour = |t: i64| (t - phase).div_euclid(HOUR);
    if s.sustained_hours == 0 || spread.is_some_and(|sp| hour(sp.at) == hour(end)) {
        return;
    }
    let samples = i64::from(s.sustained_spread_days) * 24;
    let mut ratios: Vec<f64> = (1..=samples)
        .filter_map(|k| compare(h, end - k * HOUR, s).map(|c| c.log_ratio))
        .collect();
    if ratios.len() < MIN_SPREAD_SAMPLES {
        *spread = None;
        return;
    }
    let centre = median(&mut ratios);
    let mut deviations: Vec<f64> = ratios.iter().map(|r| (r - centre).abs()).collect();
    // 1.4826 turns a median absolute deviation into a normal's deviation.
    let scale = (median(&mut deviations) * 1.4826).max(MIN_SPREAD);
    *spread = Some(Spread {
        at: end,
        centre,
        scale,
    });
}

/// The sustained window's judgement at `end`: observed count, the usual
/// count (the past days' median moved by the series' usual log ratio), the
/// one-sided normal p-value of its robust z, and the surprise on the minute
/// windows' scale.
pub struct Judged {
    pub len_secs: i64,
    pub observed: f64,
    pub baseline: Baseline,
    pub scale: f64,
    pub p_value: f64,
    pub surprise: f64,
}

pub fn judge(
    h: &impl History,
    spread: Option<&Spread>,
    end: i64,
    s: &DetectSettings,
) -> Option<Judged> {
    if s.sustained_hours == 0 {
        return None;
    }
    let spread = spread?;
    let c = compare(h, end, s)?;
    let z = (c.log_ratio - spread.centre) / spread.scale;
    let p_value = Normal::standard().sf(z);
    let alert = -s.alert_p.ln();
    let surprise = if z > 0.0 {
        (alert * (z / s.sustained_z).powi(2)).min(tail::MAX_SURPRISE)
    } else {
        0.0
    };
    let expected = (c.usual + PSEUDO_REPORTS) * spread.centre.exp() - PSEUDO_REPORTS;
    Some(Judged {
        len_secs: window_len(s),
        observed: c.observed,
        baseline: Baseline {
            expected: expected.max(0.0),
            kind: BaselineKind::Daily,
        },
        scale: spread.scale,
        p_value,
        surprise,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::detect::ArrayHistory;

    /// Three weeks of 5-minute counts with a daily wave and day-to-day
    /// swings of about 10 %, then `tail` more days shaped by `level`.
    fn series(level: impl Fn(usize) -> f64) -> ArrayHistory {
        let mut h = ArrayHistory::new(0, 300);
        for i in 0..(24 * 288) {
            let day = i / 288;
            let swing = 1.0 + 0.1 * ((day * 7919 % 13) as f64 / 6.0 - 1.0);
            let wave = 1.0 + 0.5 * (i as f64 * std::f64::consts::TAU / 288.0).sin();
            h.push((40.0 * wave * swing * level(i)).round(), false);
        }
        h
    }

    fn z_at_end(h: &ArrayHistory, s: &DetectSettings) -> (f64, f64) {
        let mut spread = None;
        refresh(&mut spread, h, h.end(), 0, s);
        let j = judge(h, spread.as_ref(), h.end(), s).unwrap();
        (j.surprise, j.observed / j.baseline.expected)
    }

    #[test]
    fn a_day_long_doubling_hits_and_an_ordinary_day_does_not() {
        let s = Settings::defaults().detect;
        let alert = -s.alert_p.ln();
        let (quiet, ratio) = z_at_end(&series(|_| 1.0), &s);
        assert!(quiet < alert / 4.0, "an ordinary day: {quiet}");
        assert!((0.8..1.25).contains(&ratio), "{ratio}");
        // The last 12 hours at 1.8x.
        let (risen, ratio) = z_at_end(&series(|i| if i >= 24 * 288 - 144 { 1.8 } else { 1.0 }), &s);
        assert!(risen > alert, "a 12-hour rise of 1.8x: {risen}");
        assert!(ratio > 1.6, "{ratio}");
    }

    #[test]
    fn the_spread_is_learned_hourly_and_needs_two_days() {
        let s = Settings::defaults().detect;
        let h = series(|_| 1.0);
        let mut spread = None;
        refresh(&mut spread, &h, h.end(), 0, &s);
        let first = spread.unwrap();
        refresh(&mut spread, &h, h.end() + 1800, 0, &s);
        assert_eq!(spread, Some(first), "kept within the hour");
        // Relearned in the next hour (here from a history that ends before
        // it, so from fewer comparisons).
        refresh(&mut spread, &h, h.end() + HOUR, 0, &s);
        assert_ne!(spread, Some(first), "relearned an hour later");
        // With a phase of 45 minutes the hour turns 45 minutes later.
        let mut spread = None;
        refresh(&mut spread, &h, h.end(), 2700, &s);
        let phased = spread.unwrap();
        refresh(&mut spread, &h, h.end() + 2400, 2700, &s);
        assert_eq!(spread, Some(phased));
        refresh(&mut spread, &h, h.end() + 2700, 2700, &s);
        assert_ne!(spread, Some(phased));
        let mut young = ArrayHistory::new(0, 300);
        for _ in 0..(4 * 288) {
            young.push(10.0, false);
        }
        let mut spread = None;
        refresh(&mut spread, &young, young.end(), 0, &s);
        assert!(spread.is_none(), "too few comparisons on a 4-day series");
    }
}
