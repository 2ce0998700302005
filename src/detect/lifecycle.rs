//! The life of an incident, one tick at a time.
//!
//! `possible` on the first hit, `problem` once `confirm_hits` of the last
//! `confirm_ticks` ticks hit, resolved after `quiet_mins` without a hit; a
//! hit within `reopen_mins` of the resolution reopens the same incident
//! rather than starting a new one, and so does, within a day of the
//! resolution, a hit of the kind of the bursts that ended in the last day
//! (see [`super::recurrence`]): the bursts of a new pattern are one
//! incident, not one each. The state is a small serializable value: the
//! worker keeps it in the store, so a restarted worker carries on.

use serde::{Deserialize, Serialize};

use super::baseline::DAY;
use crate::config::DetectSettings;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Possible,
    Problem,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    Opened,
    Confirmed,
    Reopened,
    Resolved,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Lifecycle {
    /// The open incident, if any.
    pub open: Option<OpenIncident>,
    /// When the last incident was resolved, and its start (for reopening).
    pub last_resolved: Option<(i64, i64)>,
    /// The peak surprise of the last incident while it may still reopen.
    #[serde(default)]
    pub last_peak: Option<f64>,
    /// The severity the last incident reached while it may still reopen: a
    /// relapse of a confirmed problem is the same problem, not confirmed anew.
    #[serde(default)]
    pub last_severity: Option<Severity>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenIncident {
    pub started_at: i64,
    /// When it was last opened or reopened: the masking limit runs from
    /// here, so a pattern reopened day after day is masked no longer than
    /// separate incidents would be (states stored before it have none).
    #[serde(default)]
    pub since: Option<i64>,
    pub severity: Severity,
    pub last_hit_at: i64,
    /// Hits of the last ticks, newest in the lowest bit.
    pub recent_hits: u32,
    /// Greatest calibrated surprise so far.
    pub peak_surprise: f64,
}

impl OpenIncident {
    /// Where the time kept out of baselines begins.
    pub fn masked_from(&self) -> i64 {
        self.since.unwrap_or(self.started_at)
    }
}

impl Lifecycle {
    /// Advances by one tick at `now`; `surprise` is the tick's calibrated
    /// surprise, used to track the peak; `kin` says whether the tick's rise
    /// is of the kind of the bursts that ended within the last day.
    pub fn tick(
        &mut self,
        now: i64,
        hit: bool,
        surprise: f64,
        kin: bool,
        s: &DetectSettings,
    ) -> Option<Event> {
        let window_mask = if s.confirm_ticks >= 32 {
            u32::MAX
        } else {
            (1u32 << s.confirm_ticks.max(1)) - 1
        };
        match &mut self.open {
            None => {
                let relapse = i64::from(s.reopen_mins) * 60;
                if self
                    .last_resolved
                    .is_some_and(|(at, _)| now - at > relapse.max(DAY))
                {
                    self.last_resolved = None;
                    self.last_peak = None;
                    self.last_severity = None;
                }
                if !hit {
                    return None;
                }
                let reopen = self
                    .last_resolved
                    .filter(|(at, _)| now - at <= if kin { relapse.max(DAY) } else { relapse });
                let peak = if reopen.is_some() {
                    self.last_peak.unwrap_or(0.0).max(surprise)
                } else {
                    surprise
                };
                let severity = match reopen {
                    Some(_) => self.last_severity.unwrap_or(Severity::Possible),
                    None => Severity::Possible,
                };
                self.open = Some(OpenIncident {
                    started_at: reopen.map_or(now, |(_, started)| started),
                    since: Some(now),
                    severity,
                    last_hit_at: now,
                    recent_hits: 1,
                    peak_surprise: peak,
                });
                self.last_resolved = None;
                self.last_peak = None;
                self.last_severity = None;
                if reopen.is_some() {
                    Some(Event::Reopened)
                } else if s.confirm_hits <= 1 {
                    self.confirm()
                } else {
                    Some(Event::Opened)
                }
            }
            Some(open) => {
                open.recent_hits = ((open.recent_hits << 1) | u32::from(hit)) & window_mask;
                open.peak_surprise = open.peak_surprise.max(surprise);
                if hit {
                    open.last_hit_at = now;
                }
                if open.severity == Severity::Possible
                    && open.recent_hits.count_ones() >= s.confirm_hits
                {
                    return self.confirm();
                }
                if now - open.last_hit_at >= i64::from(s.quiet_mins) * 60 {
                    self.last_resolved = Some((now, open.started_at));
                    self.last_peak = Some(open.peak_surprise);
                    self.last_severity = Some(open.severity);
                    self.open = None;
                    return Some(Event::Resolved);
                }
                None
            }
        }
    }

    fn confirm(&mut self) -> Option<Event> {
        let open = self.open.as_mut()?;
        open.severity = Severity::Problem;
        Some(Event::Confirmed)
    }

    /// Whether a hit at `now` that reopens the last incident is a relapse
    /// of it (within `reopen_mins` of its resolution), not a new burst of
    /// its kind.
    pub fn relapse(&self, now: i64, s: &DetectSettings) -> bool {
        self.last_resolved
            .is_some_and(|(at, _)| now - at <= i64::from(s.reopen_mins) * 60)
    }

    /// Whether time `now` belongs to an incident younger than the masking limit.
    pub fn masks(&self, now: i64, s: &DetectSettings) -> bool {
        self.open
            .as_ref()
            .is_some_and(|o| now - o.masked_from() < i64::from(s.mask_max_hours) * 3600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn settings() -> DetectSettings {
        Settings::defaults().detect
    }

    #[test]
    fn possible_then_problem_then_resolved_after_the_quiet_period() {
        let s = settings();
        let mut l = Lifecycle::default();
        assert_eq!(l.tick(0, false, 0.0, false, &s), None);
        assert_eq!(l.tick(60, true, 20.0, false, &s), Some(Event::Opened));
        assert_eq!(l.open.as_ref().unwrap().severity, Severity::Possible);
        assert_eq!(l.tick(120, true, 30.0, false, &s), Some(Event::Confirmed));
        let mut t = 120;
        let mut events = vec![];
        while l.open.is_some() {
            t += 60;
            events.extend(l.tick(t, false, 0.0, false, &s));
        }
        assert_eq!(events, vec![Event::Resolved]);
        assert_eq!(t - 120, i64::from(s.quiet_mins) * 60);
    }

    #[test]
    fn a_relapse_soon_after_reopens_the_same_incident() {
        let s = settings();
        let mut l = Lifecycle::default();
        l.tick(0, true, 20.0, false, &s);
        let mut t = 0;
        while l.open.is_some() {
            t += 60;
            l.tick(t, false, 0.0, false, &s);
        }
        assert_eq!(l.tick(t + 60, true, 20.0, false, &s), Some(Event::Reopened));
        assert_eq!(l.open.as_ref().unwrap().started_at, 0);
        // Long after a resolution, a hit is a new incident.
        let mut l2 = Lifecycle::default();
        l2.tick(0, true, 20.0, false, &s);
        let mut t = 0;
        while l2.open.is_some() {
            t += 60;
            l2.tick(t, false, 0.0, false, &s);
        }
        let later = t + i64::from(s.reopen_mins) * 60 + 60;
        assert_eq!(l2.tick(later, true, 20.0, false, &s), Some(Event::Opened));
    }

    #[test]
    fn a_confirmed_problem_that_relapses_is_still_a_problem() {
        let s = settings();
        let mut l = Lifecycle::default();
        l.tick(0, true, 20.0, false, &s);
        assert_eq!(l.tick(60, true, 20.0, false, &s), Some(Event::Confirmed));
        let mut t = 60;
        while l.open.is_some() {
            t += 60;
            l.tick(t, false, 0.0, false, &s);
        }
        assert_eq!(l.tick(t + 60, true, 20.0, false, &s), Some(Event::Reopened));
        assert_eq!(l.open.as_ref().unwrap().severity, Severity::Problem);
        assert_eq!(
            l.tick(t + 120, true, 20.0, false, &s),
            None,
            "not confirmed a second time"
        );
    }
}
