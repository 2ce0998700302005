//! The life of an incident, one tick at a time.
//!
//! `possible` on the first hit, `problem` once `confirm_hits` of the last
//! `confirm_ticks` ticks hit, resolved after `quiet_mins` without a hit; a
//! hit within `reopen_mins` of the resolution reopens the same incident
//! rather than starting a new one (a relapse). So does a hit of the
//! sustained window alone within `sustained_hours` of an incident that
//! masked at least half of that window: the window leaves incident time
//! out of its count, so such an incident blinds it, and it sees the same
//! rise again only once the incident has left it. The reopened incident
//! keeps the masking limit it had, so what it masks ends where the first
//! opening's would have, and the window goes on seeing the rise. And so
//! does, within a day of the resolution, a
//! hit of the kind of the bursts that ended in the last day (see
//! [`super::recurrence`]): the bursts of a new pattern are one incident,
//! not one each. The state is a small serializable value: the worker keeps
//! it in the store, so a restarted worker carries on.

use serde::{Deserialize, Serialize};

use super::baseline::DAY;
use crate::config::DetectSettings;
use crate::domain::Status;

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
    /// A rise of the minute windows, of no remembered kind.
    pub const BURST: Rise = Rise {
        kin: false,
        sustained: false,
    };
    /// A rise the sustained window alone sees.
    pub const SUSTAINED: Rise = Rise {
        kin: false,
        sustained: true,
    };
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
    pub last_severity: Option<Status>,
    /// Where the last incident's masking limit began, when it masked at
    /// least half of the sustained window (blinding it), while it may still
    /// reopen: the window's hit is then the same rise seen again.
    #[serde(default)]
    pub last_blinded: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenIncident {
    pub started_at: i64,
    /// When it was last opened or reopened: what it masks begins here, and
    /// so does its masking limit, so a pattern reopened day after day is
    /// masked no longer than separate incidents would be (states stored
    /// before it have none).
    #[serde(default)]
    pub since: Option<i64>,
    /// Where its masking limit began, when before `since`: reopened by the
    /// sustained window seeing the same rise again, it keeps the limit of
    /// the opening that blinded the window.
    #[serde(default)]
    pub limit_from: Option<i64>,
    pub severity: Status,
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

    fn limit_from(&self) -> i64 {
        self.limit_from.unwrap_or(self.masked_from())
    }

    /// Where the time kept out of baselines ends at the latest (the
    /// masking limit).
    pub fn masked_until(&self, s: &DetectSettings) -> i64 {
        self.limit_from() + i64::from(s.mask_max_hours) * 3600
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
                let longest = DAY.max(self.relapse_secs(Rise::BURST, s));
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
                    Some(_) => self.last_severity.unwrap_or(Status::Possible),
                    None => Status::Possible,
                };
                // The sustained window seeing the same rise again does not
                // restart the masking limit: the rise has been kept out of
                // the baselines as long as an incident may be, and from
                // here on the window sees it rather than going blind again.
                let limit_from = self.last_blinded.filter(|_| rise.sustained && relapse);
                self.open = Some(OpenIncident {
                    started_at: reopen.map_or(now, |(_, started)| started),
                    since: Some(now),
                    limit_from,
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
                if open.severity == Status::Possible
                    && open.recent_hits.count_ones() >= s.confirm_hits
                {
                    return self.confirm();
                }
                if now - open.last_hit_at >= i64::from(s.quiet_mins) * 60 {
                    self.last_resolved = Some((now, open.started_at));
                    self.last_peak = Some(open.peak_surprise);
                    self.last_severity = Some(open.severity);
                    // What it masked: from its masking limit's start (the
                    // blinding opening's, for a reopening that kept it).
                    let limit_from = open.limit_from();
                    let masked = now.min(open.masked_until(s)) - limit_from;
                    let blinded =
                        s.sustained_hours > 0 && 2 * masked >= i64::from(s.sustained_hours) * 3600;
                    self.last_blinded = blinded.then_some(limit_from);
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
        self.last_blinded = None;
    }

    fn confirm(&mut self) -> Option<Event> {
        let open = self.open.as_mut()?;
        open.severity = Status::Problem;
        Some(Event::Confirmed)
    }

    /// Whether a hit of `rise` at `now` that reopens the last incident is a
    /// relapse of it (within `reopen_mins` of its resolution, or
    /// `sustained_hours` for the sustained window alone after an incident
    /// that blinded it), not a new burst of its kind.
    pub fn relapse(&self, now: i64, rise: Rise, s: &DetectSettings) -> bool {
        self.last_resolved
            .is_some_and(|(at, _)| now - at <= self.relapse_secs(rise, s))
    }

    /// How long after the last resolution a hit of `rise` is a relapse.
    fn relapse_secs(&self, rise: Rise, s: &DetectSettings) -> i64 {
        let mins = i64::from(s.reopen_mins) * 60;
        if rise.sustained && self.last_blinded.is_some() {
            mins.max(i64::from(s.sustained_hours) * 3600)
        } else {
            mins
        }
    }

    /// Whether time `now` belongs to an incident within its masking limit.
    pub fn masks(&self, now: i64, s: &DetectSettings) -> bool {
        self.open.as_ref().is_some_and(|o| now < o.masked_until(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn settings() -> DetectSettings {
        Settings::defaults().detect
    }

    /// Runs an incident of `rise` hit every minute from 0 to `last_hit`,
    /// then to its resolution; returns when it resolved.
    fn resolved(l: &mut Lifecycle, last_hit: i64, rise: Rise, s: &DetectSettings) -> i64 {
        let mut t = 0;
        while t <= last_hit || l.open.is_some() {
            l.tick(t, t <= last_hit, 20.0, rise, s);
            t += 60;
        }
        t - 60
    }

    #[test]
    fn possible_then_problem_then_resolved_after_the_quiet_period() {
        let s = settings();
        let mut l = Lifecycle::default();
        assert_eq!(l.tick(0, false, 0.0, Rise::BURST, &s), None);
        let opened = l.tick(60, true, 20.0, Rise::BURST, &s);
        assert_eq!(opened, Some(Event::Opened));
        assert_eq!(l.open.as_ref().unwrap().severity, Status::Possible);
        let confirmed = l.tick(120, true, 30.0, Rise::BURST, &s);
        assert_eq!(confirmed, Some(Event::Confirmed));
        let mut t = 120;
        let mut events = vec![];
        while l.open.is_some() {
            t += 60;
            events.extend(l.tick(t, false, 0.0, Rise::BURST, &s));
        }
        assert_eq!(events, vec![Event::Resolved]);
        assert_eq!(t - 120, i64::from(s.quiet_mins) * 60);
    }

    /// A hit within `reopen_mins` of the resolution (to the second) reopens
    /// the same incident; later, it is a new one.
    #[test]
    fn a_relapse_soon_after_reopens_the_same_incident() {
        let s = settings();
        let reopen = i64::from(s.reopen_mins) * 60;
        for (after, event) in [
            (60, Event::Reopened),
            (reopen, Event::Reopened),
            (reopen + 1, Event::Opened),
        ] {
            let mut l = Lifecycle::default();
            let t = resolved(&mut l, 0, Rise::BURST, &s);
            assert_eq!(
                l.relapse(t + after, Rise::BURST, &s),
                event == Event::Reopened
            );
            assert_eq!(l.tick(t + after, true, 20.0, Rise::BURST, &s), Some(event));
            assert_eq!(
                l.open.as_ref().unwrap().started_at == 0,
                event == Event::Reopened
            );
        }
    }

    #[test]
    fn a_confirmed_problem_that_relapses_is_still_a_problem() {
        let s = settings();
        let mut l = Lifecycle::default();
        let t = resolved(&mut l, 60, Rise::BURST, &s);
        assert_eq!(l.last_severity, Some(Status::Problem));
        let reopened = l.tick(t + 60, true, 20.0, Rise::BURST, &s);
        assert_eq!(reopened, Some(Event::Reopened));
        assert_eq!(l.open.as_ref().unwrap().severity, Status::Problem);
        let again = l.tick(t + 120, true, 20.0, Rise::BURST, &s);
        assert_eq!(again, None, "not confirmed a second time");
    }

    /// An incident that masked half the sustained window blinded it, so the
    /// window's own hit within `sustained_hours` of the resolution is the
    /// same rise seen again (a lasting step): it reopens the incident with
    /// the masking limit it had. A burst then, a hit later, or the window's
    /// hit after an incident too short to blind it, is a new incident.
    #[test]
    fn the_sustained_window_seeing_the_rise_again_is_a_relapse() {
        let s = settings();
        let hours = i64::from(s.sustained_hours) * 3600;
        let limit = i64::from(s.mask_max_hours) * 3600;
        assert!(hours > i64::from(s.reopen_mins) * 60);
        // Hit for half the window, or for 10 minutes.
        let (blinding, short) = (hours / 2, 600);
        let cases = [
            (blinding, Rise::SUSTAINED, hours, Event::Reopened),
            (blinding, Rise::BURST, hours, Event::Opened),
            (blinding, Rise::SUSTAINED, hours + 1, Event::Opened),
            (short, Rise::SUSTAINED, hours / 2, Event::Opened),
        ];
        for (last_hit, rise, after, event) in cases {
            let mut l = Lifecycle::default();
            let t = resolved(&mut l, last_hit, Rise::SUSTAINED, &s);
            let at = t + after;
            assert_eq!(
                l.tick(at, true, 20.0, rise, &s),
                Some(event),
                "{last_hit} {rise:?} {after}"
            );
            let open = l.open.as_ref().unwrap();
            assert_eq!(open.started_at == 0, event == Event::Reopened);
            // What it masks begins at its reopening and ends where the
            // first opening's limit did, so a reopening past that masks
            // nothing and the window goes on seeing the rise.
            assert_eq!(open.masked_from(), at);
            let until = if event == Event::Reopened {
                limit
            } else {
                at + limit
            };
            assert_eq!(open.masked_until(&s), until, "{last_hit} {rise:?} {after}");
            assert_eq!(l.masks(at, &s), at < until);
        }
    }

    /// A reopened incident is judged blinding by everything its limit
    /// covered: a second relapse keeps the first opening's limit too.
    #[test]
    fn a_second_sustained_relapse_keeps_the_first_limit() {
        let s = settings();
        let hours = i64::from(s.sustained_hours) * 3600;
        let mut l = Lifecycle::default();
        let t = resolved(&mut l, hours / 2, Rise::SUSTAINED, &s);
        let mut at = t + hours - 60;
        assert_eq!(
            l.tick(at, true, 20.0, Rise::SUSTAINED, &s),
            Some(Event::Reopened)
        );
        while l.open.is_some() {
            at += 60;
            l.tick(at, false, 0.0, Rise::SUSTAINED, &s);
        }
        assert_eq!(l.last_blinded, Some(0));
        assert_eq!(
            l.tick(at + 60, true, 20.0, Rise::SUSTAINED, &s),
            Some(Event::Reopened)
        );
        assert_eq!(l.open.as_ref().unwrap().limit_from, Some(0));
    }

    #[test]
    fn a_state_stored_before_the_sustained_relapse_still_loads() {
        let mut l = Lifecycle::default();
        let s = settings();
        l.tick(0, true, 20.0, Rise::BURST, &s);
        let mut json = serde_json::to_value(&l).unwrap();
        json.as_object_mut().unwrap().remove("last_blinded");
        json["open"].as_object_mut().unwrap().remove("limit_from");
        let loaded: Lifecycle = serde_json::from_value(json).unwrap();
        assert_eq!(loaded, l);
    }
}
