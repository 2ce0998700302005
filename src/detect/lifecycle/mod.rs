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
mod tests;
