//! One minute of a tick, for every service the worker holds: each judged
//! ([`judge::observe`]), the hits decided across all of them (false
//! discovery, then each candidate's distinct networks), then each moved on
//! ([`judge::advance`]) and its incident document kept in step. The
//! detector's own two halves do the judging and the learning; what is the
//! worker's is the store (networks, cached history), the quarantine after
//! a store outage, and the documents.

use super::cache::{Cached, history_of, stagger};
use super::{ServiceState, Worker, incident};
use crate::config::DetectSettings;
use crate::detect::baseline::HOUR;
use crate::detect::discovery::Discovery;
use crate::detect::judge::{self, Advanced, Decided, Judgement};
use crate::detect::lifecycle::Event;
use crate::domain::Service;
use crate::domain::Status;
use crate::domain::anomaly::AnomalyStatus;
use crate::store::keys::MINUTES_PER_QUARTER;
use crate::store::{Buckets, Distinct, ExpectedMinute, Store, StoreResult};

/// What one minute did to one service.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Concluded {
    pub(super) hit: bool,
    pub(super) event: Option<Event>,
    /// The chart's expected count and threshold for the minute, from the
    /// short window (none without one: null on charts).
    pub(super) expected: Option<ExpectedMinute>,
}

/// The worker's decision on one service's minute.
#[derive(Debug, Clone, Copy)]
struct Decision {
    decided: Decided,
    /// The distinct reporters and networks of the decisive window, when
    /// they were counted.
    distinct: Option<Distinct>,
}

impl Worker {
    /// Judges `minute` for every held service not yet past it and moves
    /// each on; the services judged, with what it did to each.
    pub(super) async fn judge_minute(
        &mut self,
        held: &[String],
        minute: i64,
    ) -> StoreResult<Vec<(String, Concluded)>> {
        let d = self.detect.clone();
        let end = (minute + 1) * 60;
        let horizon = end - self.quarters_kept() * MINUTES_PER_QUARTER * 60;
        let mut judged: Vec<(String, Judgement)> = Vec::new();
        for s in held {
            let Some(c) = self.cache.get_mut(s) else {
                continue;
            };
            if c.state.last_minute.is_some_and(|m| m >= minute) {
                continue;
            }
            let history = history_of(c, end, &d);
            // Each service relearns its sustained spread at its own minute
            // of the hour, so they do not all in one tick.
            let phase = stagger(s, HOUR);
            let judgement = judge::observe(&mut c.state.detector, &history, end, 60, phase, &d);
            judged.push((s.clone(), judgement));
        }
        let discovery = Discovery::of(judged.iter().map(|(_, j)| Some(j)));
        let quarantined = self
            .quarantine
            .is_some_and(|(from, until)| end > from && minute * 60 < until);
        let mut concluded = Vec::with_capacity(judged.len());
        for (s, judgement) in judged {
            let decision = self
                .decide(&s, &judgement, &discovery, quarantined, minute)
                .await?;
            let (Some(service), Some(c)) = (self.registry.service(&s), self.cache.get_mut(&s))
            else {
                continue;
            };
            let judged_minute = Judged {
                minute,
                judgement: &judgement,
                decision,
                horizon,
                max_timeline: self.settings.max_timeline_minutes,
            };
            concluded.push((s, conclude(c, service, judged_minute, &d)));
        }
        Ok(concluded)
    }

    /// A hit is a discovery outside the quarantine with enough distinct
    /// networks. Networks are counted only when the tick could be a hit or
    /// an episode: both need the floor.
    async fn decide(
        &self,
        service: &str,
        judgement: &Judgement,
        discovery: &Discovery,
        quarantined: bool,
        minute: i64,
    ) -> StoreResult<Decision> {
        let d = &self.detect;
        let candidate = !quarantined && discovery.is_discovery(judgement, d);
        let mut distinct = None;
        if let Some(w) = judgement.decisive()
            && (candidate || judge::may_be_episode(judgement, d))
        {
            let minutes = w.floor_minutes(d);
            let from = minute + 1 - minutes as i64;
            let counted = self
                .store
                .distinct(service, Buckets::new(from, minutes))
                .await;
            // A hit must wait for the count (the tick fails and is judged
            // again); an episode alone is not worth the minute.
            distinct = if candidate {
                Some(counted?)
            } else {
                counted.ok()
            };
        }
        let supported = distinct.is_some_and(|n| n.networks >= d.min_networks);
        Ok(Decision {
            decided: Decided {
                hit: candidate && supported,
                supported,
                learn: !quarantined,
            },
            distinct,
        })
    }
}

/// A service's judged minute with the worker's decision on it.
struct Judged<'a> {
    minute: i64,
    judgement: &'a Judgement,
    decision: Decision,
    /// Past incidents ending before this are no longer kept as masks.
    horizon: i64,
    max_timeline: usize,
}

/// Moves a cached service on by its judged minute and keeps its incident
/// document in step.
fn conclude(c: &mut Cached, service: &Service, m: Judged<'_>, d: &DetectSettings) -> Concluded {
    let Judged {
        minute,
        judgement,
        decision,
        horizon,
        max_timeline,
    } = m;
    let end = (minute + 1) * 60;
    let open_before = c.state.detector.lifecycle.open.as_ref();
    let before = Before {
        last_hit: open_before.map(|o| o.last_hit_at),
        masked: open_before.map(|o| (o.masked_from(), o.masked_until(d))),
    };
    let advanced = judge::advance(
        &mut c.state.detector,
        judgement,
        end,
        60,
        decision.decided,
        d,
    );
    c.state.last_minute = Some(minute);
    let decisive = judgement.decisive();
    let expected = judgement.windows[0].map(|w| {
        let factor = c.state.detector.tail[0].factor(d.calibration_quantile);
        let scale = 60.0 / w.len_secs as f64;
        ExpectedMinute {
            minute,
            expected: w.baseline.expected * scale,
            upper: w.upper(d, factor) * scale,
        }
    });
    let hit = decision.decided.hit;
    let recorded = incident::Minute {
        minute,
        reports: c.minute_count(minute),
        expected: decisive.map_or(0.0, |w| w.baseline.expected * 60.0 / w.len_secs as f64),
        p_value: decisive.map_or(1.0, |w| w.p_calibrated),
        distinct: decision.distinct.filter(|_| hit),
    };
    follow_incident(
        &mut c.state,
        service,
        advanced,
        before,
        recorded,
        max_timeline,
    );
    c.state.masks.retain(|&(_, b)| b > horizon);
    Concluded {
        hit,
        event: advanced.event,
        expected,
    }
}

/// The open incident as it was before the minute.
struct Before {
    last_hit: Option<i64>,
    /// What it masked, `[from, until)`.
    masked: Option<(i64, i64)>,
}

/// Keeps the incident document in step with the lifecycle after a minute:
/// a reopened one marked so, a new one given its document, an open one
/// the minute, a resolved one its end (and its time kept out of
/// baselines).
fn follow_incident(
    state: &mut ServiceState,
    service: &Service,
    advanced: Advanced,
    before: Before,
    m: incident::Minute,
    max_timeline: usize,
) {
    let (minute, end) = (m.minute, (m.minute + 1) * 60);
    if advanced.event == Some(Event::Reopened)
        && let Some(doc) = state.incident.as_mut()
    {
        // The time before it stays masked as the episode it was; the open
        // incident masks itself from its reopening on. A reopening later
        // than a relapse is a new burst of its kind.
        incident::reopen(doc, !advanced.relapse);
    }
    if let Some(open) = &state.detector.lifecycle.open {
        // A new incident (opened, or confirmed at once when one hit is
        // enough) gets its document.
        let has_doc = state.incident.as_ref().is_some_and(|doc| {
            doc.status == AnomalyStatus::Open && doc.started_unix == open.started_at
        });
        if !has_doc {
            state.incident = Some(incident::open(service, open.started_at));
        }
        if let Some(doc) = state.incident.as_mut() {
            if open.severity == Status::Problem {
                doc.severity = Status::Problem;
            }
            incident::record_minute(doc, m, max_timeline);
        }
    }
    if advanced.event == Some(Event::Resolved)
        && let Some(doc) = state.incident.as_mut()
    {
        // It ended with the minute of its last hit (the lifecycle resolves
        // `quiet_mins` later, or at the first minute judged after a pause).
        let ended = before
            .last_hit
            .map_or(end, |t| t + 60)
            .max(doc.started_unix + 60);
        incident::resolve(doc, ended, end);
        // The baselines leave out the quiet minutes too, up to the one that
        // resolved it, as the backtest does (a fading tail of an outage is
        // not the service's normal).
        if let Some((from, until)) = before.masked {
            state.masks.push((from, (minute * 60).min(until)));
        }
    }
}
