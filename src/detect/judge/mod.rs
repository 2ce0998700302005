//! One series at one tick: the expected count of each judging window, the
//! window to judge on, its p-value under the series' own dispersion, and the
//! calibrated surprise that makes one threshold fit every series.
//!
//! This file is the tick: [`observe`] (through [`judge`]) judges every window
//! and picks the one that decides, [`advance`] moves the series on once the
//! hit is decided. What one window's judgement holds and answers (its floors,
//! the count that would alert) is [`WindowJudgement`], in `window.rs`; the
//! tick's unit tests are in `tests.rs`.

mod window;

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

pub use self::window::WindowJudgement;
use self::window::credit;
use super::baseline::{self, History};
use super::estimate::{Dispersion, SurpriseTail, decay};
use super::lifecycle::{Event, Lifecycle, Rise};
use super::recurrence::Recurrence;
use super::sustained::{self, Learned};
use super::tail;
use crate::config::DetectSettings;

/// The minute windows (short, mid, long), judged on counts.
pub const COUNT_WINDOWS: usize = 3;
/// Every judging window: the minute windows and the sustained one.
pub const WINDOWS: usize = COUNT_WINDOWS + 1;
/// Index of the sustained window in [`Judgement::windows`].
pub const SUSTAINED: usize = COUNT_WINDOWS;

/// Everything the detector remembers of one series between ticks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeriesState {
    pub dispersion: [Dispersion; COUNT_WINDOWS],
    pub tail: [SurpriseTail; COUNT_WINDOWS],
    pub lifecycle: Lifecycle,
    /// What the sustained window learned (states stored before it had
    /// none, and learn it on their next tick).
    #[serde(default)]
    pub sustained: Option<Learned>,
    /// Recent episodes, so that what recurs becomes expected (states
    /// stored before it start with none).
    #[serde(default)]
    pub recurrence: Recurrence,
    /// Ticks not yet learned from, oldest first: a tick is learned from
    /// once it has left the shortest window, so the first minutes of a rise
    /// are not learned as spread while they are still being judged (a young
    /// series would otherwise raise its own threshold faster than an outage
    /// climbs: an 8x rise on a fresh state went unseen for 10 minutes).
    #[serde(default)]
    pub unlearned: VecDeque<Unlearned>,
}

/// What a tick teaches, kept until it may be learned from: each minute
/// window's observed and expected count and raw surprise.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Unlearned {
    end: i64,
    windows: [Option<[f64; 3]>; COUNT_WINDOWS],
}

impl Unlearned {
    fn of(end: i64, j: &Judgement) -> Self {
        Unlearned {
            end,
            windows: std::array::from_fn(|i| {
                j.windows[i].map(|w| [w.observed, w.baseline.expected, w.raw_surprise])
            }),
        }
    }
}

/// The tick's judgement: every window that has a baseline, and which one
/// decides.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub windows: [Option<WindowJudgement>; WINDOWS],
    pub chosen: Option<usize>,
    /// What the deciding rise is, for reopening the last incident.
    pub rise: Rise,
}

impl Judgement {
    pub fn decisive(&self) -> Option<&WindowJudgement> {
        self.chosen.and_then(|i| self.windows[i].as_ref())
    }
}

/// The minute windows' lengths in seconds, each a whole number of steps.
pub fn window_lengths(step_secs: i64, s: &DetectSettings) -> [i64; COUNT_WINDOWS] {
    [s.window_short_mins, s.window_mid_mins, s.window_long_mins].map(|m| {
        let steps = ((i64::from(m) * 60) as f64 / step_secs as f64)
            .round()
            .max(1.0) as i64;
        steps * step_secs
    })
}

/// The first half of a tick, for the tick ending at `end` (exclusive):
/// relearns what the detector learns from history alone rather than tick
/// by tick (the sustained window's spread, hourly at `phase` seconds past
/// the hour), then judges every window ([`judge`]). The caller decides the
/// hit, across every series of the tick ([`super::discovery`]), and then
/// calls [`advance`] with it.
pub fn observe(
    state: &mut SeriesState,
    h: &impl History,
    end: i64,
    step_secs: i64,
    phase: i64,
    s: &DetectSettings,
) -> Judgement {
    sustained::refresh(&mut state.sustained, h, end, phase, s);
    judge(h, state, end, step_secs, s)
}

/// Judges the windows ending at `end` (exclusive) from what `h` holds.
pub fn judge(
    h: &impl History,
    state: &SeriesState,
    end: i64,
    step_secs: i64,
    s: &DetectSettings,
) -> Judgement {
    let lengths = window_lengths(step_secs, s);
    let [short, mid, long] = std::array::from_fn(|i| {
        let len = lengths[i];
        let baseline = baseline::expected(h, end, len, s)?;
        let observed = h.window(end, len)?.total;
        let dispersion = state.dispersion[i].value(s.dispersion_prior, s.dispersion_prior_weight);
        let p_value = tail::upper_tail(observed, baseline.expected, dispersion);
        let raw_surprise = tail::surprise(p_value);
        let credit = credit(len, lengths[0], s);
        let surprise = raw_surprise * state.tail[i].factor(s.calibration_quantile) + credit;
        Some(WindowJudgement {
            len_secs: len,
            observed,
            baseline,
            dispersion,
            p_value,
            p_calibrated: (-surprise).exp(),
            surprise,
            novel_surprise: surprise,
            raw_surprise,
            credit,
            sustained: false,
        })
    });
    let sustained =
        sustained::judge(h, state.sustained.as_ref(), end, s).map(WindowJudgement::sustained);
    let mut windows = [short, mid, long, sustained];
    // What recurs is judged as a mixture: the model's p-value plus the
    // share of recent time spent in episodes of its kind.
    let quiet = i64::from(s.quiet_mins) * 60;
    let counts = counts(&windows);
    let share = state.recurrence.share(end, counts, step_secs, quiet);
    if share > 0.0 {
        for w in windows.iter_mut().flatten() {
            w.surprise = tail::surprise((w.p_calibrated + share).min(1.0));
            w.p_calibrated = (-w.surprise).exp();
        }
    }
    // Every window with a baseline is judged; the most surprising of those
    // that meet their floors decides (a sharp burst shows in the short
    // window, a slow rise on a quiet service in the long one, a day-long
    // one in the sustained window), or, when none does, the most surprising
    // (so a day at 1.8x, below the sustained window's floor, cannot hide a
    // burst that meets the minute windows' floors).
    let surprise = |i: usize| windows[i].map_or(0.0, |w| w.surprise);
    let most_surprising = |floors: bool| {
        (0..WINDOWS)
            .filter(|&i| windows[i].is_some_and(|w| !floors || w.floors_met(s)))
            .max_by(|&a, &b| surprise(a).total_cmp(&surprise(b)))
    };
    let chosen = most_surprising(true).or_else(|| most_surprising(false));
    let rise = Rise {
        kin: chosen.is_some() && state.recurrence.recent_kin(end, counts, quiet),
        // A burst, even one the sustained window also sees, is not the
        // long rise that window lost sight of.
        sustained: chosen == Some(SUSTAINED) && !minute_hit(&windows, s, |w| w.surprise),
    };
    Judgement {
        windows,
        chosen,
        rise,
    }
}

/// Whether a minute window reaches the alert, by `surprise`, and meets its
/// floors.
fn minute_hit(
    windows: &[Option<WindowJudgement>; WINDOWS],
    s: &DetectSettings,
    surprise: fn(&WindowJudgement) -> f64,
) -> bool {
    let alert = s.alert_surprise();
    windows[..COUNT_WINDOWS]
        .iter()
        .flatten()
        .any(|w| surprise(w) >= alert && w.floors_met(s))
}

/// Whether the tick may be part of an episode (see [`advance`]): a minute
/// window is a hit by the model alone or before calibration. The worker then
/// counts the tick's distinct networks, which an episode needs too.
pub fn may_be_episode(j: &Judgement, s: &DetectSettings) -> bool {
    minute_hit(&j.windows, s, |w| w.novel_surprise) || minute_hit(&j.windows, s, |w| w.raw_surprise)
}

/// What the caller decided about a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decided {
    /// The tick is a hit (model, floors, false-discovery control, networks).
    pub hit: bool,
    /// Enough distinct networks reported in the decisive window for a hit
    /// or an episode (always, where networks are not known).
    pub supported: bool,
    /// The caller lets the tick teach the baselines (the worker does not in
    /// the quarantine after a store outage); a tick inside an incident
    /// never does.
    pub learn: bool,
}

/// What [`advance`] did to a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Advanced {
    pub event: Option<Event>,
    /// The tick was a relapse of the last incident (see
    /// [`Lifecycle::relapse`]): the incident going on, not news; a
    /// reopening that is not one is a new burst of its kind.
    pub relapse: bool,
}

/// Each window's observed count (0 where it was not judged).
fn counts(windows: &[Option<WindowJudgement>; WINDOWS]) -> [f64; WINDOWS] {
    std::array::from_fn(|i| windows[i].map_or(0.0, |w| w.observed))
}

/// The second half of a tick, after the hit decision on the tick ending at
/// `end`: remembers it as part of an episode when the model alone calls a
/// minute window a hit (or, for a rise of a remembered kind, when the model
/// before calibration does) and enough networks reported it (one client
/// cannot teach a pattern that would hide a later outage), advances the
/// lifecycle, and learns (spread around the baseline and the tail of
/// surprise, per minute window) from the ticks outside incidents that have
/// now left the shortest window. The worker, the backtest and the
/// simulator all go through [`observe`] and here.
pub fn advance(
    state: &mut SeriesState,
    j: &Judgement,
    end: i64,
    step_secs: i64,
    decided: Decided,
    s: &DetectSettings,
) -> Advanced {
    let Decided {
        hit,
        supported,
        learn,
    } = decided;
    let at = end - step_secs;
    // Both from the state before the tick: whether its time is an
    // incident's, and whether a hit now continues the last one.
    let learn = learn && !state.lifecycle.masks(at, s);
    let relapse = state.lifecycle.relapse(at, j.rise, s);
    // Episodes are the minute windows' hits: kinship is theirs alone, and
    // the sustained window's hit lasts hours, so it would glue a day of
    // bursts into one episode under way, never its own precedent.
    let hit_by = |surprise: fn(&WindowJudgement) -> f64| minute_hit(&j.windows, s, surprise);
    let counts = counts(&j.windows);
    let quiet = i64::from(s.quiet_mins) * 60;
    // Calibration learns a pattern's bursts until they hover around the
    // alert: a remembered pattern goes on being remembered on the model's
    // uncalibrated word (a rise of its kind that the raw tail calls a hit).
    let episode = supported
        && (hit_by(|w| w.novel_surprise)
            || (hit_by(|w| w.raw_surprise) && state.recurrence.remembers(end, counts, quiet)));
    state.recurrence.observe(end, episode, counts, quiet);
    let surprise = j.decisive().map_or(0.0, |w| w.surprise);
    let event = state.lifecycle.tick(at, hit, surprise, j.rise, s);
    if learn {
        state.unlearned.push_back(Unlearned::of(end, j));
    }
    let decay = decay(step_secs, s.memory_hours);
    let delay = i64::from(s.window_short_mins) * 60;
    while let Some(u) = state.unlearned.front().copied() {
        if u.end > end - delay {
            break;
        }
        state.unlearned.pop_front();
        for (i, w) in u.windows.iter().enumerate() {
            let Some([observed, expected, raw_surprise]) = *w else {
                continue;
            };
            state.dispersion[i].observe(observed, expected, decay);
            state.tail[i].observe(raw_surprise, decay);
        }
    }
    Advanced { event, relapse }
}

#[cfg(test)]
mod tests;
