//! What recurs becomes expected.
//!
//! Incidents are kept out of what the baseline learns, which is right for
//! the rare outage and wrong for a pattern: a service that now bursts eight
//! times a day, or that has settled at a new level, would be news every
//! time. So the detector remembers its *episodes*: runs of ticks that the
//! model alone would call hits (whatever the lifecycle made of them), each
//! with the greatest count every window reached.
//!
//! A rise is *of the pattern's kind* when its count in every minute
//! window is at most [`KIN_FACTOR`] times the greatest count any earlier
//! episode reached there: a pattern's bursts vary in size, length and the
//! hour they fall on, so its kind is what all of them together reached,
//! not any one burst; three times the biggest of them is a new kind.
//! Counts, not ratios to the expected count: once a pattern is expected
//! its bursts are learned by the baseline, and a burst's ratio then
//! depends on where earlier bursts happened to fall. Once earlier episodes
//! came on each of the last [`MEMORY_DAYS`] days (rolling 24-hour periods
//! back from now: the pattern has held for a day), at least
//! [`MIN_EPISODES`] in all, a rise of their kind is judged as a mixture:
//! with the share of those days that the service spent in such episodes,
//! the rise is the pattern again. Its p-value is the model's plus that
//! share, so a burst like the recent ones is unremarkable, and one far
//! bigger than any of them is still judged by the model alone. One or two
//! earlier outages never make the next one expected: a pattern is bursts
//! that came repeatedly, on two days.
//!
//! Episodes are the minute windows' hits (the kind is theirs too): a hit
//! of the sustained window lasts hours and would glue a day of bursts into
//! one episode under way, which is never its own precedent. The tail
//! calibration learns a pattern's bursts as well, until their calibrated
//! p-values hover around the alert: a hit one day, a near miss the next,
//! and a day of near misses would end the pattern. So a rise of a
//! remembered kind that the model calls a hit before calibration extends
//! the episodes too; a rise of no remembered kind needs the calibrated hit
//! to start one.
//!
//! The lifecycle asks one more thing: whether a hit is of the kind of an
//! episode that ended within the last day, so that the bursts of a new
//! pattern reopen one incident rather than each opening its own (each
//! still masked from the baseline like a separate incident, and scored by
//! the backtest as news).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::baseline::DAY;
use super::judge::{COUNT_WINDOWS, WINDOWS};

/// How long episodes are remembered, in days; a pattern is episodes of
/// one kind on each of them.
pub const MEMORY_DAYS: i64 = 2;
/// Most episodes remembered (the oldest go first): a dozen bursts a day
/// and some to spare.
pub const MAX_EPISODES: usize = 48;
/// A rise up to this many times the greatest count of the remembered
/// episodes is of their kind.
pub const KIN_FACTOR: f64 = 3.0;
/// Fewest earlier episodes, over the last [`MEMORY_DAYS`] days and some on
/// each, that make a pattern: one or two outages are never one.
pub const MIN_EPISODES: usize = 4;

/// A run of ticks the model called hits, none more than the quiet period
/// after the one before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    /// Unix seconds: the end of its first and of its last tick.
    pub start: i64,
    pub end: i64,
    /// Greatest count each window reached during the episode (states
    /// stored before counts were kept had ratios here, under `peak`: they
    /// are dropped, and those episodes make no kind).
    #[serde(default)]
    pub peak_counts: [f64; WINDOWS],
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Recurrence {
    episodes: VecDeque<Episode>,
}

impl Recurrence {
    /// Records the tick ending at `end`: `candidate` says whether the model
    /// alone called it a hit, `counts` are the windows' observed counts (0
    /// where a window was not judged). A candidate within `quiet_secs` of
    /// the last episode's end extends it.
    pub fn observe(&mut self, end: i64, candidate: bool, counts: [f64; WINDOWS], quiet_secs: i64) {
        while self
            .episodes
            .front()
            .is_some_and(|e| e.end <= end - MEMORY_DAYS * DAY)
        {
            self.episodes.pop_front();
        }
        if !candidate {
            return;
        }
        match self.episodes.back_mut() {
            Some(last) if end - last.end <= quiet_secs => {
                last.end = end;
                for (peak, c) in last.peak_counts.iter_mut().zip(counts) {
                    *peak = peak.max(c);
                }
            }
            _ => {
                if self.episodes.len() >= MAX_EPISODES {
                    self.episodes.pop_front();
                }
                self.episodes.push_back(Episode {
                    start: end,
                    end,
                    peak_counts: counts,
                });
            }
        }
    }

    /// The earlier episodes: all remembered but the one under way at `end`
    /// (and those stored before counts were kept, which say nothing).
    fn earlier(&self, end: i64, quiet_secs: i64) -> impl Iterator<Item = &Episode> + Clone {
        let ongoing = self
            .episodes
            .back()
            .filter(|e| end - e.end <= quiet_secs)
            .map(|e| e.start);
        self.episodes
            .iter()
            .filter(move |e| Some(e.start) != ongoing)
            .filter(|e| e.peak_counts.iter().any(|&c| c > 0.0))
    }

    /// Whether a rise with these counts is of the kind of `episodes`: in
    /// every minute window, at most [`KIN_FACTOR`] times the greatest count
    /// any of them reached there (false when there are none). The minute
    /// windows say what kind of rise it is (a burst's size at each scale); the
    /// sustained window keeps growing while a new pattern fills the hours
    /// it sums, so it would make each day of the pattern look like a new
    /// kind.
    fn of_kind<'e>(episodes: impl Iterator<Item = &'e Episode>, counts: [f64; WINDOWS]) -> bool {
        let mut envelope: Option<[f64; WINDOWS]> = None;
        for e in episodes {
            let top = envelope.get_or_insert([0.0; WINDOWS]);
            for (t, p) in top.iter_mut().zip(e.peak_counts) {
                *t = t.max(p);
            }
        }
        envelope.is_some_and(|top| (0..COUNT_WINDOWS).all(|i| counts[i] <= KIN_FACTOR * top[i]))
    }

    /// The share of the remembered days spent in earlier episodes, once
    /// at least [`MIN_EPISODES`] of them came, some on each of the last
    /// [`MEMORY_DAYS`] days, and the rise is of their kind; 0 otherwise.
    /// Added to the model's p-value.
    pub fn share(&self, end: i64, counts: [f64; WINDOWS], step_secs: i64, quiet_secs: i64) -> f64 {
        let earlier = self.earlier(end, quiet_secs);
        if !Self::of_kind(earlier.clone(), counts) {
            return 0.0;
        }
        let mut days = [false; MEMORY_DAYS as usize];
        let (mut secs, mut count) = (0, 0);
        for e in earlier {
            count += 1;
            let (from, to) = (e.start - step_secs, e.end);
            secs += to - from;
            for (k, seen) in days.iter_mut().enumerate() {
                let day_end = end - k as i64 * DAY;
                *seen |= from < day_end && to > day_end - DAY;
            }
        }
        if count < MIN_EPISODES || !days.iter().all(|&d| d) {
            return 0.0;
        }
        secs as f64 / (MEMORY_DAYS * DAY) as f64
    }

    /// Whether a rise with these counts is of the kind of the remembered
    /// earlier episodes.
    pub fn remembers(&self, end: i64, counts: [f64; WINDOWS], quiet_secs: i64) -> bool {
        Self::of_kind(self.earlier(end, quiet_secs), counts)
    }

    /// Whether a rise with these counts is of the kind of the earlier
    /// episodes that ended within the last day.
    pub fn recent_kin(&self, end: i64, counts: [f64; WINDOWS], quiet_secs: i64) -> bool {
        Self::of_kind(
            self.earlier(end, quiet_secs).filter(|e| end - e.end <= DAY),
            counts,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEP: i64 = 300;
    const QUIET: i64 = 900;

    /// A burst's counts in the three minute windows, `short` in the shortest.
    fn rise(short: f64) -> [f64; WINDOWS] {
        [short, short * 0.44, short * 0.11, 20.0]
    }

    /// Half-hour bursts of 90 reports in window 0, at `hours` past the start.
    fn bursts(hours: impl IntoIterator<Item = i64>) -> Recurrence {
        let mut r = Recurrence::default();
        for h in hours {
            let from = h * 3600;
            for k in 0..6 {
                r.observe(from + k * STEP, true, [90.0, 40.0, 10.0, 0.0], QUIET);
            }
            r.observe(from + 6 * STEP, false, [1.0; WINDOWS], QUIET);
        }
        r
    }

    #[test]
    fn bursts_of_one_day_are_not_yet_a_pattern_and_a_day_later_they_are() {
        let first_day = [1, 4, 7, 10, 13, 16, 19, 22];
        assert_eq!(
            bursts(first_day).share(23 * 3600, rise(95.0), STEP, QUIET),
            0.0
        );
        let more = bursts(first_day.into_iter().chain([25]));
        let share = more.share(29 * 3600, rise(95.0), STEP, QUIET);
        // Nine half-hour episodes in two days of memory.
        assert!(
            (share - 9.0 * 1800.0 / (2.0 * 86_400.0)).abs() < 1e-9,
            "{share}"
        );
        // Up to three times the biggest of them is of their kind; a rise
        // far bigger than any of them is a new kind.
        assert!(more.share(29 * 3600, rise(260.0), STEP, QUIET) > 0.0);
        assert_eq!(more.share(29 * 3600, rise(300.0), STEP, QUIET), 0.0);
    }

    #[test]
    fn one_or_two_earlier_outages_never_make_the_next_expected() {
        let r = bursts([0]);
        assert_eq!(r.share(26 * 3600, rise(90.0), STEP, QUIET), 0.0);
        assert!(r.recent_kin(20 * 3600, rise(90.0), QUIET));
        assert!(
            !r.recent_kin(26 * 3600, rise(90.0), QUIET),
            "over a day ago"
        );
        // Two a day apart are not a pattern either; four on two days are.
        assert_eq!(
            bursts([0, 24]).share(30 * 3600, rise(90.0), STEP, QUIET),
            0.0
        );
        assert!(bursts([0, 6, 24, 30]).share(31 * 3600, rise(90.0), STEP, QUIET) > 0.0);
    }

    #[test]
    fn the_episode_under_way_is_not_its_own_precedent() {
        let mut r = Recurrence::default();
        // One episode lasting 30 hours: while under way it is not a pattern.
        for k in 0..(30 * 12) {
            r.observe(k * STEP, true, [3.0; WINDOWS], QUIET);
        }
        let now = 30 * 12 * STEP;
        assert_eq!(r.share(now, [3.0; WINDOWS], STEP, QUIET), 0.0);
        // Once over, it is one outage: never a pattern on its own.
        let later = now + 3 * 3600;
        assert_eq!(r.share(later, [3.0; WINDOWS], STEP, QUIET), 0.0);
    }

    #[test]
    fn episodes_are_forgotten_after_two_days() {
        let r = {
            let mut r = bursts([0, 30]);
            r.observe(9 * DAY, false, [1.0; WINDOWS], QUIET);
            r
        };
        assert!(r.episodes.is_empty());
    }

    #[test]
    fn episodes_stored_with_ratios_load_and_count_for_nothing() {
        let json = r#"{"episodes":[{"start":0,"end":600,"peak":[90.0,40.0,10.0,2.0]}]}"#;
        let r: Recurrence = serde_json::from_str(json).unwrap();
        assert_eq!(r.episodes[0].peak_counts, [0.0; WINDOWS]);
        assert!(!r.remembers(3600, rise(1.0), QUIET));
    }
}
