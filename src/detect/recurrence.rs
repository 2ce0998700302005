//! What recurs becomes expected.
//!
//! Incidents are kept out of what the baseline learns, which is right for
//! the rare outage and wrong for a pattern: a service that now bursts eight
//! times a day, or that has settled at a new level, would be news every
//! time. So the detector remembers its *episodes*: runs of ticks that the
//! model alone would call hits (whatever the lifecycle made of them), each
//! with the peak ratio to the expected count every window reached.
//!
//! A rise is *of the kind* of an episode when its ratio in every minute
//! window is at most [`KIN_RATIO`] times that episode's peak there: twice
//! as big as anything seen is a new kind. Once earlier episodes of its kind
//! came on each of the last [`MEMORY_DAYS`] days (rolling 24-hour periods
//! back from now: the pattern has held for a day), a rise of that kind is
//! judged as a mixture: with the share of those days that the service spent
//! in such episodes, the rise is the pattern again. Its p-value is the
//! model's plus that share, so a burst like the recent ones is
//! unremarkable, and one far bigger than any of them is still judged by the
//! model alone. One earlier outage never makes the next one expected: a
//! second outage tomorrow is news; after two a day apart, a third of their
//! kind is the pattern.
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
/// A rise up to this many times an episode's peak ratio is of its kind.
pub const KIN_RATIO: f64 = 2.0;

/// A run of ticks the model called hits, none more than the quiet period
/// after the one before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    /// Unix seconds: the end of its first and of its last tick.
    pub start: i64,
    pub end: i64,
    /// Peak observed/expected ratio of each window during the episode.
    pub peak: [f64; WINDOWS],
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Recurrence {
    episodes: VecDeque<Episode>,
}

impl Recurrence {
    /// Records the tick ending at `end`: `candidate` says whether the model
    /// alone called it a hit, `ratios` are the windows' ratios (0 where a
    /// window was not judged). A candidate within `quiet_secs` of the last
    /// episode's end extends it.
    pub fn observe(&mut self, end: i64, candidate: bool, ratios: [f64; WINDOWS], quiet_secs: i64) {
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
                for (peak, r) in last.peak.iter_mut().zip(ratios) {
                    *peak = peak.max(r);
                }
            }
            _ => {
                if self.episodes.len() >= MAX_EPISODES {
                    self.episodes.pop_front();
                }
                self.episodes.push_back(Episode {
                    start: end,
                    end,
                    peak: ratios,
                });
            }
        }
    }

    /// The earlier episodes (not the one under way at `end`) of the kind
    /// of a rise with these ratios: in every minute window, at most
    /// [`KIN_RATIO`] times the episode's peak. The minute windows say what
    /// kind of rise it is (a burst's shape); the sustained window's ratio
    /// keeps growing while a new pattern fills the hours it compares, so it
    /// would make each day of the pattern look like a new kind.
    fn kin(
        &self,
        end: i64,
        ratios: [f64; WINDOWS],
        quiet_secs: i64,
    ) -> impl Iterator<Item = &Episode> {
        let ongoing = self
            .episodes
            .back()
            .filter(|e| end - e.end <= quiet_secs)
            .map(|e| e.start);
        self.episodes
            .iter()
            .filter(move |e| Some(e.start) != ongoing)
            .filter(move |e| (0..COUNT_WINDOWS).all(|i| ratios[i] <= KIN_RATIO * e.peak[i]))
    }

    /// The share of the remembered days spent in earlier episodes of this
    /// rise's kind, once such episodes came on each of the last
    /// [`MEMORY_DAYS`] days; 0 otherwise. Added to the model's p-value.
    pub fn share(&self, end: i64, ratios: [f64; WINDOWS], step_secs: i64, quiet_secs: i64) -> f64 {
        let mut days = [false; MEMORY_DAYS as usize];
        let mut secs = 0;
        for e in self.kin(end, ratios, quiet_secs) {
            let (from, to) = (e.start - step_secs, e.end);
            secs += to - from;
            for (k, seen) in days.iter_mut().enumerate() {
                let day_end = end - k as i64 * DAY;
                *seen |= from < day_end && to > day_end - DAY;
            }
        }
        if !days.iter().all(|&d| d) {
            return 0.0;
        }
        secs as f64 / (MEMORY_DAYS * DAY) as f64
    }

    /// Whether a rise with these ratios is of the kind of any remembered
    /// earlier episode.
    pub fn remembers(&self, end: i64, ratios: [f64; WINDOWS], quiet_secs: i64) -> bool {
        self.kin(end, ratios, quiet_secs).next().is_some()
    }

    /// Whether a rise with these ratios is of the kind of an earlier
    /// episode that ended within the last day.
    pub fn recent_kin(&self, end: i64, ratios: [f64; WINDOWS], quiet_secs: i64) -> bool {
        self.kin(end, ratios, quiet_secs)
            .any(|e| end - e.end <= DAY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEP: i64 = 300;
    const QUIET: i64 = 900;

    /// A burst's ratios in the three minute windows, `short` in the shortest.
    fn rise(short: f64) -> [f64; WINDOWS] {
        [short, short * 0.44, short * 0.11, 20.0]
    }

    /// Half-hour bursts at 90x in window 0, at `hours` past the start.
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
        let share = more.share(26 * 3600, rise(95.0), STEP, QUIET);
        // Nine half-hour episodes in two days of memory.
        assert!(
            (share - 9.0 * 1800.0 / (2.0 * 86_400.0)).abs() < 1e-9,
            "{share}"
        );
        // A rise far bigger than any of them is a new kind.
        assert_eq!(more.share(26 * 3600, rise(200.0), STEP, QUIET), 0.0);
    }

    #[test]
    fn one_earlier_outage_never_makes_the_next_expected() {
        let r = bursts([0]);
        assert_eq!(r.share(26 * 3600, rise(90.0), STEP, QUIET), 0.0);
        assert!(r.recent_kin(20 * 3600, rise(90.0), QUIET));
        assert!(
            !r.recent_kin(26 * 3600, rise(90.0), QUIET),
            "over a day ago"
        );
        // Two, a day apart, make a third of their kind expected.
        assert!(bursts([0, 24]).share(30 * 3600, rise(90.0), STEP, QUIET) > 0.0);
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
        // Once over, the next rise of its kind is the pattern again.
        let later = now + 3 * 3600;
        assert!(r.share(later, [3.0; WINDOWS], STEP, QUIET) > 0.1);
    }

    #[test]
    fn episodes_are_forgotten_after_a_week() {
        let r = {
            let mut r = bursts([0, 30]);
            r.observe(9 * DAY, false, [1.0; WINDOWS], QUIET);
            r
        };
        assert!(r.episodes.is_empty());
    }
}
