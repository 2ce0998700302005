//! The detector over one in-memory series, row by row: what `outagewatch
//! backtest` runs, and what tests use to check the detector end to end. It is
//! causal by construction: a row's verdict is computed before later rows exist.
//!
//! Its score ranks rows by the evidence for a `problem`, not for a single
//! hit: the lifecycle only calls a problem once `confirm_hits` of the last
//! `confirm_ticks` ticks hit, so the score is built from the surprise that
//! many of those ticks reached. A lone spike is a `possible` in the product
//! and scores as one; a rise that holds for a few ticks scores in full.

use std::collections::VecDeque;

use super::baseline::{History, WindowSum};
use super::discovery::is_candidate;
use super::judge::{self, Judgement, SeriesState};
use super::lifecycle::Event;
use crate::config::DetectSettings;

/// Counts at a regular step, with prefix sums so any window is O(1).
#[derive(Debug, Clone)]
pub struct ArrayHistory {
    start: i64,
    step: i64,
    /// Prefix sums of all counts, of counts outside incidents, and of the
    /// number of buckets outside incidents; one longer than the series.
    total: Vec<f64>,
    clean: Vec<f64>,
    clean_n: Vec<i64>,
}

impl ArrayHistory {
    pub fn new(start: i64, step: i64) -> Self {
        ArrayHistory {
            start,
            step,
            total: vec![0.0],
            clean: vec![0.0],
            clean_n: vec![0],
        }
    }

    pub fn len(&self) -> usize {
        self.total.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Start of the bucket after the last one.
    pub fn end(&self) -> i64 {
        self.start + self.len() as i64 * self.step
    }

    /// Appends a bucket; `masked` keeps it out of baselines (incident time,
    /// or a gap in the data).
    pub fn push(&mut self, count: f64, masked: bool) {
        let n = self.len();
        self.total.push(self.total[n] + count);
        let (c, k) = if masked { (0.0, 0) } else { (count, 1) };
        self.clean.push(self.clean[n] + c);
        self.clean_n.push(self.clean_n[n] + k);
    }

    /// Changes whether the last bucket is masked.
    pub fn mask_last(&mut self, masked: bool) {
        let n = self.len();
        if n == 0 {
            return;
        }
        let count = self.total[n] - self.total[n - 1];
        self.total.pop();
        self.clean.pop();
        self.clean_n.pop();
        self.push(count, masked);
    }

    /// Index of the first bucket starting at or after `t`.
    fn index(&self, t: i64) -> i64 {
        (t - self.start + self.step - 1).div_euclid(self.step)
    }
}

impl History for ArrayHistory {
    fn window(&self, end: i64, len: i64) -> Option<WindowSum> {
        let (i0, i1) = (self.index(end - len), self.index(end));
        if i0 < 0 || i1 > self.len() as i64 || i1 <= i0 {
            return None;
        }
        let (i0, i1) = (i0 as usize, i1 as usize);
        Some(WindowSum {
            total: self.total[i1] - self.total[i0],
            clean: self.clean[i1] - self.clean[i0],
            secs: (i1 - i0) as i64 * self.step,
            clean_secs: (self.clean_n[i1] - self.clean_n[i0]) * self.step,
        })
    }
}

/// What the detector says of one row.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub judgement: Judgement,
    pub hit: bool,
    pub event: Option<Event>,
    /// In [0, 1]: 0.5 where the evidence for a problem reaches the alert
    /// threshold (see [`SeriesDetector::conclude`]), higher for stronger
    /// evidence; rows of an incident already known score half, unless they
    /// escalate it.
    pub score: f64,
}

pub struct SeriesDetector<'a> {
    history: ArrayHistory,
    state: SeriesState,
    settings: &'a DetectSettings,
    /// The decisive surprise of the last `confirm_ticks` rows, newest last.
    recent: VecDeque<f64>,
    /// The greatest evidence scored in full during the current incident
    /// (or the one that may still reopen).
    scored_peak: Option<f64>,
}

impl<'a> SeriesDetector<'a> {
    pub fn new(start: i64, step: i64, settings: &'a DetectSettings) -> Self {
        SeriesDetector {
            history: ArrayHistory::new(start, step),
            state: SeriesState::default(),
            settings,
            recent: VecDeque::new(),
            scored_peak: None,
        }
    }

    /// A missing bucket: it counts as nothing and is kept out of baselines.
    pub fn push_gap(&mut self) {
        self.history.push(0.0, true);
    }

    /// The next row's count, judged on its own (the backtest): a hit is a
    /// calibrated p-value under `alert_p` with the floors met.
    pub fn push(&mut self, count: f64) -> Verdict {
        let judgement = self.observe(count);
        let hit = is_candidate(&judgement, self.settings);
        self.conclude(judgement, hit, true)
    }

    /// Appends the next row's count and judges the windows ending with it;
    /// [`SeriesDetector::conclude`] must follow with the hit decision (made
    /// across many series by the caller, with false-discovery control).
    pub fn observe(&mut self, count: f64) -> Judgement {
        let at = self.history.end();
        let step = self.history.step;
        self.history.push(count, false);
        judge::observe(
            &mut self.state,
            &self.history,
            at + step,
            step,
            0,
            self.settings,
        )
    }

    /// Learns from the row, advances the incident lifecycle and scores the
    /// row. The score is the evidence for a problem: the `confirm_hits`-th
    /// largest decisive surprise of the last `confirm_ticks` rows, the level
    /// at which the lifecycle would have confirmed. Within an incident only
    /// a row that first reaches the alert, or doubles the evidence scored so
    /// far, scores in full.
    /// `supported`: enough distinct reporters for a hit or an episode
    /// (true where they are not known).
    pub fn conclude(&mut self, judgement: Judgement, hit: bool, supported: bool) -> Verdict {
        let s = self.settings;
        let step = self.history.step;
        let at = self.history.end() - step;
        let decisive = judgement.decisive().copied();
        let surprise = decisive.map_or(0.0, |w| w.surprise);
        let decided = judge::Decided {
            hit,
            supported,
            learn: true,
        };
        // A relapse is the incident going on; a rise of its kind later in
        // the day reopens it for the feed but is scored as news, like a new
        // incident.
        let judge::Advanced { event, relapse } =
            judge::advance(&mut self.state, &judgement, at + step, step, decided, s);
        self.history.mask_last(self.state.lifecycle.masks(at, s));

        // Only rows that meet the floors count as evidence, as only they
        // can be the hits that confirm a problem.
        let floors = decisive.is_some_and(|w| w.floors_met(s));
        let evidence = self.evidence(if floors { surprise } else { 0.0 });
        let alert = s.alert_surprise();
        // A resolved incident that may still reopen is still the same one:
        // it scores again when its evidence first reaches the alert (when
        // it becomes a problem) or doubles.
        let lifecycle = &self.state.lifecycle;
        let incident = lifecycle.open.is_some() || lifecycle.last_peak.is_some();
        let news = match event {
            Some(Event::Opened) => true,
            Some(Event::Reopened) => !relapse,
            _ => false,
        };
        if !incident || news {
            self.scored_peak = None;
        }
        let escalates = self
            .scored_peak
            .is_none_or(|peak| evidence > 2.0 * peak || (peak < alert && evidence >= alert));
        let full = escalates && floors;
        if full && incident {
            self.scored_peak = Some(evidence);
        }
        let mut score = evidence / (evidence + alert);
        if !full {
            score *= 0.5;
        }
        Verdict {
            judgement,
            hit,
            event,
            score,
        }
    }

    /// Remembers the row's surprise and returns the `confirm_hits`-th largest
    /// of the last `confirm_ticks` (0 until there are that many rows).
    fn evidence(&mut self, surprise: f64) -> f64 {
        let ticks = self.settings.confirm_ticks.max(1) as usize;
        let hits = (self.settings.confirm_hits.max(1) as usize).min(ticks);
        self.recent.push_back(surprise);
        while self.recent.len() > ticks {
            self.recent.pop_front();
        }
        let mut sorted: Vec<f64> = self.recent.iter().copied().collect();
        sorted.sort_by(|a, b| b.total_cmp(a));
        sorted.get(hits - 1).copied().unwrap_or(0.0)
    }

    pub fn state(&self) -> &SeriesState {
        &self.state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::detect::WindowJudgement;

    #[test]
    fn rows_that_fail_the_floors_are_not_evidence_for_a_problem() {
        let s = Settings::defaults().detect;
        let mut d = SeriesDetector::new(0, 300, &s);
        let judged = |w: WindowJudgement| Judgement {
            windows: [Some(w), None, None, None],
            chosen: Some(0),
            rise: crate::detect::lifecycle::Rise::BURST,
        };
        // Two very surprising rows at 1.2x (under the ratio floor), then an
        // unsurprising one that meets the floors: nothing here is a problem.
        let mut scores = Vec::new();
        for w in [
            WindowJudgement::for_test(300, 120.0, 100.0, 60.0),
            WindowJudgement::for_test(300, 120.0, 100.0, 60.0),
            WindowJudgement::for_test(300, 40.0, 10.0, 2.0),
        ] {
            d.observe(w.observed);
            scores.push(d.conclude(judged(w), false, true).score);
        }
        assert!(scores.iter().all(|&x| x < 0.5), "{scores:?}");
        // The same surprise with the floors met is, from the second row
        // (where the lifecycle confirms it).
        let mut d = SeriesDetector::new(0, 300, &s);
        let mut scores = Vec::new();
        for _ in 0..2 {
            let w = WindowJudgement::for_test(300, 300.0, 100.0, 60.0);
            d.observe(w.observed);
            scores.push(d.conclude(judged(w), true, true).score);
        }
        assert!(scores[0] < 0.5 && scores[1] > 0.5, "{scores:?}");
    }
}
