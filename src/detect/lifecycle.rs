//! The life of an incident, one tick at a time.
//!
//! `possible` on the first hit, `problem` once `confirm_hits` of the last
//! `confirm_ticks` ticks hit, resolved after `quiet_mins` without a hit; a
//! hit within `reopen_mins` of the resolution reopens the same incident
//! rather than starting a new one (a relapse). So does a hit of the
//! sustained window alone within `sustained_hours`: that window leaves
//! incident time out of its count, so it goes blind while an incident fills
//! half of it and sees the same rise again only once the incident has left
//! it; the reopened incident keeps its masking limit, so the window then
//! goes on seeing the rise. And so does, within a day of the resolution, a
//! hit of the kind of the bursts that ended in the last day (see
//! [`super::recurrence`]): the bursts of a new pattern are one incident,
//! not one each. The state is a small serializable value: the worker keeps
//! it in the store, so a restarted worker carries on.

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

/// What a tick's rise is, for reopening the last incident.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rise {
    /// Of the kind of the bursts that ended within the last day.
    pub kin: bool,
    /// Decided by the sustained window, with no minute window's hit.
    pub sustained: bool,
}

impl Rise {
    /// How long after a resolution a hit of this rise is a relapse.
    fn relapse_secs(self, s: &DetectSettings) -> i64 {
        let mins = i64::from(s.reopen_mins) * 60;
        if self.sustained {
            mins.max(i64::from(s.sustained_hours) * 3600)
        } else {
            mins
        }
    }
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
    /// Where the last incident's masking limit began, while it may still
    /// reopen: the sustained window seeing the rise again continues it.
    #[serde(default)]
    pub last_since: Option<i64>,
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
    /// surprise, used to track the peak; `rise` says what the tick's rise is.
    pub fn tick(
        &mut self,
        now: i64,
        hit: bool,
        surprise: f64,
        rise: Rise,
        s: &DetectSettings,
    ) -> Option<Event> {
        let window_mask = if s.confirm_ticks >= 32 {
            u32::MAX
        } else {
            (1u32 << s.confirm_ticks.max(1)) - 1
        };
        match &mut self.open {
            None => {
                // Nothing reopens later than this (a day for a rise of
                // the kind of the last bursts).
                let longest = DAY.max(Rise::default().relapse_secs(s));
                if self.last_resolved.is_some_and(|(at, _)| now - at > longest) {
                    self.forget_last();
                }
                if !hit {
                    return None;
                }
                let relapse = self.relapse(now, rise, s);
                let reopen = self.last_resolved.filter(|_| rise.kin || relapse);
                let peak = if reopen.is_some() {
                    self.last_peak.unwrap_or(0.0).max(surprise)
                } else {
                    surprise
                };
                let severity = match reopen {
                    Some(_) => self.last_severity.unwrap_or(Severity::Possible),
                    None => Severity::Possible,
                };
                // The sustained window seeing the same rise again does not
                // restart the masking limit: the rise has been kept out of
                // the baselines as long as an incident may be, and from
                // here on the window sees it rather than going blind again.
                let since = match self.last_since {
                    Some(since) if rise.sustained && relapse => since,
                    _ => now,
                };
                self.open = Some(OpenIncident {
                    started_at: reopen.map_or(now, |(_, started)| started),
                    since: Some(since),
                    severity,
                    last_hit_at: now,
                    recent_hits: 1,
                    peak_surprise: peak,
                });
                self.forget_last();
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
                    self.last_since = Some(open.masked_from());
                    self.open = None;
                    return Some(Event::Resolved);
                }
                None
            }
        }
    }

    fn forget_last(&mut self) {
        self.last_resolved = None;
        self.last_peak = None;
        self.last_severity = None;
        self.last_since = None;
    }

    fn confirm(&mut self) -> Option<Event> {
        let open = self.open.as_mut()?;
        open.severity = Severity::Problem;
        Some(Event::Confirmed)
    }

    /// Whether a hit of `rise` at `now` that reopens the last incident is a
    /// relapse of it (within `reopen_mins` of its resolution, or
    /// `sustained_hours` for the sustained window), not a new burst of its
    /// kind.
    pub fn relapse(&self, now: i64, rise: Rise, s: &DetectSettings) -> bool {
        self.last_resolved
            .is_some_and(|(at, _)| now - at <= rise.relapse_secs(s))
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
        assert_eq!(l.tick(0, false, 0.0, Rise::default(), &s), None);
        assert_eq!(
            l.tick(60, true, 20.0, Rise::default(), &s),
            Some(Event::Opened)
        );
        assert_eq!(l.open.as_ref().unwrap().severity, Severity::Possible);
        assert_eq!(
            l.tick(120, true, 30.0, Rise::default(), &s),
            Some(Event::Confirmed)
        );
        let mut t = 120;
        let mut events = vec![];
        while l.open.is_some() {
            t += 60;
            events.extend(l.tick(t, false, 0.0, Rise::default(), &s));
        }
        assert_eq!(events, vec![Event::Resolved]);
        assert_eq!(t - 120, i64::from(s.quiet_mins) * 60);
    }

    #[test]
    fn a_relapse_soon_after_reopens_the_same_incident() {
        let s = settings();
        let mut l = Lifecycle::default();
        l.tick(0, true, 20.0, Rise::default(), &s);
        let mut t = 0;
        while l.open.is_some() {
            t += 60;
            l.tick(t, false, 0.0, Rise::default(), &s);
        }
        assert_eq!(
            l.tick(t + 60, true, 20.0, Rise::default(), &s),
            Some(Event::Reopened)
        );
        assert_eq!(l.open.as_ref().unwrap().started_at, 0);
        // Long after a resolution, a hit is a new incident.
        let mut l2 = Lifecycle::default();
        l2.tick(0, true, 20.0, Rise::default(), &s);
        let mut t = 0;
        while l2.open.is_some() {
            t += 60;
            l2.tick(t, false, 0.0, Rise::default(), &s);
        }
        let later = t + i64::from(s.reopen_mins) * 60 + 60;
        assert_eq!(
            l2.tick(later, true, 20.0, Rise::default(), &s),
            Some(Event::Opened)
        );
    }

    #[test]
    fn a_confirmed_problem_that_relapses_is_still_a_problem() {
        let s = settings();
        let mut l = Lifecycle::default();
        l.tick(0, true, 20.0, Rise::default(), &s);
        assert_eq!(
            l.tick(60, true, 20.0, Rise::default(), &s),
            Some(Event::Confirmed)
        );
        let mut t = 60;
        while l.open.is_some() {
            t += 60;
            l.tick(t, false, 0.0, Rise::default(), &s);
        }
        assert_eq!(
            l.tick(t + 60, true, 20.0, Rise::default(), &s),
            Some(Event::Reopened)
        );
        assert_eq!(l.open.as_ref().unwrap().severity, Severity::Problem);
        assert_eq!(
            l.tick(t + 120, true, 20.0, Rise::default(), &s),
            None,
            "not confirmed a second time"
        );
    }

    /// Runs an incident from a hit at 0 to its resolution; returns when.
    fn resolved(l: &mut Lifecycle, s: &DetectSettings) -> i64 {
        l.tick(0, true, 20.0, Rise::default(), s);
        let mut t = 0;
        while l.open.is_some() {
            t += 60;
            l.tick(t, false, 0.0, Rise::default(), s);
        }
        t
    }

    #[test]
    fn a_relapse_is_within_reopen_mins_to_the_second() {
        let s = settings();
        let reopen = i64::from(s.reopen_mins) * 60;
        for (after, event) in [(reopen, Event::Reopened), (reopen + 1, Event::Opened)] {
            let mut l = Lifecycle::default();
            let t = resolved(&mut l, &s);
            assert!(l.relapse(t + after, Rise::default(), &s) == (event == Event::Reopened));
            assert_eq!(
                l.tick(t + after, true, 20.0, Rise::default(), &s),
                Some(event)
            );
        }
    }

    /// The sustained window cannot see the hours an incident masked, so its
    /// hit within `sustained_hours` of the resolution is the same rise seen
    /// again (a lasting step), while a burst then is a new incident.
    #[test]
    fn the_sustained_window_seeing_the_rise_again_is_a_relapse() {
        let s = settings();
        let hours = i64::from(s.sustained_hours) * 3600;
        assert!(hours > i64::from(s.reopen_mins) * 60);
        let sustained = Rise {
            kin: false,
            sustained: true,
        };
        let cases = [
            (sustained, hours, Event::Reopened),
            (Rise::default(), hours, Event::Opened),
            (sustained, hours + 1, Event::Opened),
        ];
        for (rise, after, event) in cases {
            let mut l = Lifecycle::default();
            let t = resolved(&mut l, &s);
            assert_eq!(
                l.tick(t + after, true, 20.0, rise, &s),
                Some(event),
                "{rise:?} {after}"
            );
            let open = l.open.as_ref().unwrap();
            assert_eq!(open.started_at == 0, event == Event::Reopened);
            // Reopened so, it keeps the masking limit it had: the rise is
            // no longer masked, so the window goes on seeing it.
            let masked_from = if event == Event::Reopened {
                0
            } else {
                t + after
            };
            assert_eq!(open.masked_from(), masked_from, "{rise:?} {after}");
        }
    }
}
