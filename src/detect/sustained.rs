//! The sustained window: a rise that lasts hours rather than minutes.
//!
//! A service that is half broken all afternoon draws reports at several
//! times its usual rate for hours without any five minutes standing out. The
//! minute windows, whose baselines follow the current level, cannot see it;
//! this window compares the last `sustained_hours` with the same hours on
//! each of the last `sustained_days` days, in log terms, and measures the
//! difference in the series' own spread of that comparison (a robust z:
//! median and median absolute deviation of the same comparison at every hour
//! of the last `sustained_spread_days` days, the deviation taken over the
//! comparisons above the median only). How far a day strays from the
//! days before differs a lot between series (news-driven ones stray far), so
//! this spread is learned, not assumed. Time inside incidents is left out of
//! every count: an outage already reported is not also a sustained rise for
//! the next hours. But the usual is never below yesterday's same hours with
//! their incidents: a rise already there yesterday is not new, so a lasting
//! step, or a pattern of bursts that no longer opens incidents, is the usual
//! within a day rather than the four days the median of a week takes.
//!
//! Its surprise is put on the minute windows' scale by the normal
//! distribution's shape: the alert's surprise times (z / sustained_z)², so
//! the window hits at `sustained_z` robust deviations and grows as a normal
//! log-likelihood does beyond.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};

use super::baseline::{Baseline, BaselineKind, DAY, HOUR, History, median};
use super::tail;
use crate::config::DetectSettings;

/// Reports added to both sides of the log ratio, so that a sparse series
/// going from 1 to 3 reports is not a tripling.
const PSEUDO_REPORTS: f64 = 5.0;
/// Smallest spread of the log ratio (5 %): a series that has been eerily
/// regular is not held to a tighter standard than this.
const MIN_SPREAD: f64 = 0.05;
/// Fewest hourly comparisons the spread is learned from: two days' worth,
/// or half of `sustained_spread_days` if that is less.
const MIN_SPREAD_SAMPLES: usize = 48;
/// `1.4826 × median absolute deviation` estimates a normal's deviation.
const MAD_TO_SD: f64 = 1.4826;

/// The series' usual log ratio and its spread.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Median log ratio: a series that grows sits a little above its past
    /// days all the time.
    pub centre: f64,
    /// Robust standard deviation of the log ratio.
    pub scale: f64,
}

/// What the sustained window has learned, and when it last tried: a series
/// too young (or too often in incidents) for a spread tries again an hour
/// later, not every tick.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Learned {
    pub at: i64,
    pub spread: Option<Spread>,
}

fn window_len(s: &DetectSettings) -> i64 {
    i64::from(s.sustained_hours) * HOUR
}

/// The counts of one window: outside incidents (scaled to the whole
/// window; `None` when less than half of it is outside incidents), and all
/// of them, incidents included (scaled to the whole window).
#[derive(Debug, Clone, Copy)]
struct Counts {
    clean: Option<f64>,
    all: f64,
}

fn counts(h: &impl History, end: i64, len: i64) -> Option<Counts> {
    let w = h.window(end, len)?;
    Some(Counts {
        clean: w.clean_rate().map(|rate| rate * len as f64),
        all: w.total * len as f64 / w.secs.max(1) as f64,
    })
}

fn log_ratio(observed: f64, usual: f64) -> f64 {
    ((observed + PSEUDO_REPORTS) / (usual + PSEUDO_REPORTS)).ln()
}

/// The usual count of a window, given the window's counts `k` days back
/// for `k` in 1..=`sustained_days`: the median of their counts outside
/// incidents, when at least `min_season_samples` of them are known, and at
/// least yesterday's count with its incidents. A rise that was already
/// there yesterday is not new: a lasting step, or a pattern of bursts,
/// becomes the usual within a day (the median alone took four).
fn usual(days_back: impl Fn(i64) -> Option<Counts>, s: &DetectSettings) -> Option<f64> {
    let past: Vec<Option<Counts>> = (1..=i64::from(s.sustained_days)).map(days_back).collect();
    let mut days: Vec<f64> = past.iter().filter_map(|d| (*d)?.clean).collect();
    let median = (days.len() >= s.min_season_samples.max(1) as usize).then(|| median(&mut days))?;
    let yesterday = past.first().copied().flatten();
    Some(yesterday.map_or(median, |y| median.max(y.all)))
}

/// Relearns the spread once an hour, at `phase` seconds past the hour (and
/// when it has never tried): the comparison at every hour of the last
/// `sustained_spread_days` days. A caller judging many series spreads them
/// over the hour with different phases.
pub fn refresh(
    learned: &mut Option<Learned>,
    h: &impl History,
    end: i64,
    phase: i64,
    s: &DetectSettings,
) {
    let hour = |t: i64| (t - phase).div_euclid(HOUR);
    if s.sustained_hours == 0 || learned.is_some_and(|l| hour(l.at) == hour(end)) {
        return;
    }
    // The comparison k hours back needs the window ending then and the
    // ones a whole number of days before it, all on the same grid of whole
    // hours back from `end`: each is summed once.
    let samples = i64::from(s.sustained_spread_days) * 24;
    let len = window_len(s);
    let windows: Vec<Option<Counts>> = (1..=samples + i64::from(s.sustained_days) * 24)
        .map(|k| counts(h, end - k * HOUR, len))
        .collect();
    let at = |k: i64| windows[k as usize - 1];
    let mut ratios: Vec<f64> = (1..=samples)
        .filter_map(|k| {
            let observed = at(k)?.clean?;
            let usual = usual(|d| at(k + d * 24), s)?;
            Some(log_ratio(observed, usual))
        })
        .collect();
    let needed = MIN_SPREAD_SAMPLES.min(samples as usize / 2);
    let spread = (ratios.len() >= needed.max(1)).then(|| spread_of(&mut ratios));
    *learned = Some(Learned { at: end, spread });
}

/// The centre and robust spread of the comparisons. The spread is measured
/// on the comparisons above the centre: the window judges rises, and a
/// weekday service's quiet weekends (or any series' lulls) say nothing about
/// how far its ordinary days rise. Comparisons at the centre count, as no
/// rise: a series as regular as a clock, whose comparisons all tie, keeps
/// the smallest spread even with a few hours of a rise among them. For a
/// symmetric spread this is the usual median absolute deviation.
fn spread_of(ratios: &mut [f64]) -> Spread {
    let centre = median(ratios);
    let mut deviations: Vec<f64> = ratios
        .iter()
        .filter(|r| **r >= centre)
        .map(|r| r - centre)
        .collect();
    let scale = (median(&mut deviations) * MAD_TO_SD).max(MIN_SPREAD);
    Spread { centre, scale }
}

/// The sustained window's judgement at `end`.
pub struct Judged {
    pub len_secs: i64,
    pub observed: f64,
    /// The past days' median moved by the series' usual log ratio.
    pub baseline: Baseline,
    /// The spread of the log ratio.
    pub scale: f64,
    /// One-sided normal p-value of the robust z.
    pub p_value: f64,
    /// On the minute windows' scale: the alert's times (z / sustained_z)².
    pub surprise: f64,
}

pub fn judge(
    h: &impl History,
    learned: Option<&Learned>,
    end: i64,
    s: &DetectSettings,
) -> Option<Judged> {
    if s.sustained_hours == 0 {
        return None;
    }
    let spread = learned?.spread?;
    let len = window_len(s);
    let observed = counts(h, end, len)?.clean?;
    let usual = usual(|d| counts(h, end - d * DAY, len), s)?;
    let z = (log_ratio(observed, usual) - spread.centre) / spread.scale;
    let surprise = if z > 0.0 {
        (s.alert_surprise() * (z / s.sustained_z).powi(2)).min(tail::MAX_SURPRISE)
    } else {
        0.0
    };
    let expected = (usual + PSEUDO_REPORTS) * spread.centre.exp() - PSEUDO_REPORTS;
    Some(Judged {
        len_secs: len,
        observed,
        baseline: Baseline {
            expected: expected.max(0.0),
            kind: BaselineKind::Sustained,
        },
        scale: spread.scale,
        p_value: Normal::standard().sf(z),
        surprise,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::detect::ArrayHistory;

    /// Three weeks and three days of 5-minute counts with a daily wave and
    /// day-to-day swings of about 10 %, each shaped by `level(row)`.
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

    /// The sustained judgement at the end of `h`.
    fn judge_end(h: &ArrayHistory, s: &DetectSettings) -> Judged {
        let mut learned = None;
        refresh(&mut learned, h, h.end(), 0, s);
        judge(h, learned.as_ref(), h.end(), s).unwrap()
    }

    /// The sustained window's length in 5-minute rows.
    fn window_rows(s: &DetectSettings) -> usize {
        s.sustained_hours as usize * 12
    }

    #[test]
    fn hours_at_three_times_the_usual_hit_and_an_ordinary_day_does_not() {
        let s = Settings::defaults().detect;
        let alert = s.alert_surprise();
        let quiet = judge_end(&series(|_| 1.0), &s);
        assert!(quiet.surprise < alert / 4.0, "{}", quiet.surprise);
        let ratio = quiet.observed / quiet.baseline.expected;
        assert!((0.8..1.25).contains(&ratio), "{ratio}");
        // The window's last hours at 3x.
        let from = 24 * 288 - window_rows(&s);
        let risen = judge_end(&series(|i| if i >= from { 3.0 } else { 1.0 }), &s);
        assert!(risen.surprise > alert, "{}", risen.surprise);
        let ratio = risen.observed / risen.baseline.expected;
        assert!(ratio > s.sustained_min_ratio, "{ratio}");
    }

    #[test]
    fn a_day_below_the_floor_does_not_hide_a_burst_that_meets_it() {
        use crate::detect::judge::{self, SUSTAINED, SeriesState};
        let s = Settings::defaults().detect;
        // The window's last hours at 1.6x: surprising to the sustained
        // window (this series is regular) but under its floor. Then a burst.
        let last = 24 * 288 - 1;
        let h = series(|i| match i {
            i if i == last => 1.6 * 5.0,
            i if i >= last - window_rows(&s) => 1.6,
            _ => 1.0,
        });
        let mut state = SeriesState::default();
        let j = judge::observe(&mut state, &h, h.end(), 300, 0, &s);
        let day = j.windows[SUSTAINED].unwrap();
        assert!(day.surprise > s.alert_surprise() && !day.floors_met(&s));
        let decisive = j.decisive().unwrap();
        assert_eq!(decisive.len_secs, 300, "the burst's window decides");
        assert!(decisive.floors_met(&s));
        assert!(
            day.surprise > decisive.surprise,
            "the day is the more surprising, yet does not decide"
        );
    }

    #[test]
    fn a_rise_already_there_yesterday_is_not_new() {
        let s = Settings::defaults().detect;
        let alert = s.alert_surprise();
        let rows = 24 * 288;
        // A step to 3x a day and a half ago, kept out of the baselines as
        // an incident for its first 6 hours (as the lifecycle masks it).
        let step = rows - 432;
        let mut h = ArrayHistory::new(0, 300);
        let plain = series(|i| if i >= step { 3.0 } else { 1.0 });
        for i in 0..rows {
            let count = plain.window(300 * (i as i64 + 1), 300).unwrap().total;
            h.push(count, (step..step + 72).contains(&i));
        }
        let today = judge_end(&h, &s);
        assert!(today.surprise < alert, "{}", today.surprise);
        // Without yesterday, the same hours against the week before the
        // step would be a rise.
        let from = rows - window_rows(&s);
        let fresh = judge_end(&series(|i| if i >= from { 3.0 } else { 1.0 }), &s);
        assert!(fresh.surprise > alert, "{}", fresh.surprise);
    }

    #[test]
    fn lulls_do_not_widen_the_spread_of_ordinary_days() {
        // Ordinary comparisons: a normal's quantiles with deviation 0.1.
        let normal = Normal::new(0.0, 0.1).unwrap();
        let ordinary: Vec<f64> = (0..200)
            .map(|i| normal.inverse_cdf((f64::from(i) + 0.5) / 200.0))
            .collect();
        let alone = spread_of(&mut ordinary.clone());
        assert!((alone.scale - 0.1).abs() < 0.005, "{alone:?}");
        // Plus a third as many lulls far below (weekends of a weekday
        // service). A two-sided deviation would read about 0.22.
        let mut with_lulls = ordinary.clone();
        with_lulls.extend(std::iter::repeat_n(-1.0, 108));
        let lulled = spread_of(&mut with_lulls);
        assert!(lulled.scale < 0.16, "{lulled:?}");
        // Comparisons that all tie, and the first 11 hours of a rise.
        let mut regular = vec![0.0; 325];
        regular.extend(std::iter::repeat_n(0.9, 11));
        assert_eq!(spread_of(&mut regular).scale, MIN_SPREAD);
    }

    #[test]
    fn incident_time_is_left_out_of_the_counts() {
        let s = Settings::defaults().detect;
        let h = series(|_| 1.0);
        let ordinary = judge_end(&h, &s).observed;
        // An hour of a huge outage, 3 hours ago, masked as an incident.
        let mut masked = ArrayHistory::new(0, 300);
        let outage = (24 * 288 - 48)..(24 * 288 - 36);
        for i in 0..h.len() {
            let count = h.window(300 * (i as i64 + 1), 300).unwrap().total;
            let inside = outage.contains(&i);
            masked.push(if inside { count + 5_000.0 } else { count }, inside);
        }
        let judged = judge_end(&masked, &s);
        assert!(
            (judged.observed - ordinary).abs() < 0.1 * ordinary,
            "{} vs {ordinary}",
            judged.observed
        );
        assert!(judged.surprise < s.alert_surprise());
    }

    #[test]
    fn the_spread_is_learned_hourly_and_a_young_series_tries_hourly_too() {
        let s = Settings::defaults().detect;
        let h = series(|_| 1.0);
        let mut learned = None;
        refresh(&mut learned, &h, h.end(), 0, &s);
        let first = learned.unwrap();
        assert!(first.spread.is_some());
        refresh(&mut learned, &h, h.end() + 1800, 0, &s);
        assert_eq!(learned, Some(first), "kept within the hour");
        refresh(&mut learned, &h, h.end() + HOUR, 0, &s);
        assert_eq!(
            learned.unwrap().at,
            h.end() + HOUR,
            "relearned an hour later"
        );
        // With a phase of 45 minutes the hour turns 45 minutes later.
        let mut learned = None;
        refresh(&mut learned, &h, h.end(), 2700, &s);
        refresh(&mut learned, &h, h.end() + 2400, 2700, &s);
        assert_eq!(learned.unwrap().at, h.end());
        refresh(&mut learned, &h, h.end() + 2700, 2700, &s);
        assert_eq!(learned.unwrap().at, h.end() + 2700);

        // Four days are too few comparisons: no spread, no judgement, and
        // no new attempt until the next hour.
        let mut young = ArrayHistory::new(0, 300);
        for _ in 0..(4 * 288) {
            young.push(10.0, false);
        }
        let mut learned = None;
        refresh(&mut learned, &young, young.end(), 0, &s);
        let tried = Some(Learned {
            at: young.end(),
            spread: None,
        });
        assert_eq!(learned, tried);
        assert!(judge(&young, learned.as_ref(), young.end(), &s).is_none());
        refresh(&mut learned, &young, young.end() + 1800, 0, &s);
        assert_eq!(learned, tried, "not tried again within the hour");
    }
}
