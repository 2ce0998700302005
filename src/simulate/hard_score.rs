//! The hard cases' own figures. Recurring bursts: the incidents opened on
//! each day of the pattern (from day 3 on, none should be). A lasting step
//! and a slow growth: the incidents from their start (at most one). A gap:
//! the incidents around it, all false. A new service: its outage and any
//! other incident on it. Quiet services' outages are outages like any
//! other and are scored with them.
//!
//! Which time of which service can hold a false incident is decided here
//! too ([`false_span`]): a pattern's service is ordinary until its pattern
//! starts, and a new service until its first report has nothing to judge.

use super::evaluate::{OutageResult, SeenIncident};
use super::hard::Kind;
use super::model::Scenario;
use super::score::{AFTERMATH_MINUTES, overlaps};

const DAY: i64 = 86_400;

/// Hours after a step within which an incident that reaches `problem`
/// counts as the step being found.
const STEP_FOUND_HOURS: i64 = 6;

/// Hours after a gap within which an incident is tagged as the gap's.
const GAP_AFTER_HOURS: i64 = 2;

#[derive(Debug, Clone, Default)]
pub struct HardScore {
    pub recurring: Vec<RecurringScore>,
    pub steps: Vec<LevelScore>,
    pub growth: Vec<LevelScore>,
    pub new: Vec<NewScore>,
    pub gaps: Vec<GapScore>,
}

#[derive(Debug, Clone)]
pub struct RecurringScore {
    pub service: String,
    /// Start of the pattern's first day.
    pub from: i64,
    pub bursts: usize,
    /// Incidents opened from the pattern's start.
    pub incidents: Vec<SeenIncident>,
}

impl RecurringScore {
    /// Incidents opened on the pattern's first day, its second, and later.
    pub fn opened_by_day(&self) -> [usize; 3] {
        let mut days = [0; 3];
        for inc in &self.incidents {
            days[((inc.opened - self.from) / DAY).clamp(0, 2) as usize] += 1;
        }
        days
    }

    /// Incidents opened after the pattern's second day: by then the bursts
    /// are the service's normal, so each of these is a failure.
    pub fn late(&self) -> impl Iterator<Item = &SeenIncident> {
        self.incidents
            .iter()
            .filter(|inc| inc.opened >= self.from + 2 * DAY)
    }
}

/// A lasting change of level: a step, or a growth over `days`.
#[derive(Debug, Clone)]
pub struct LevelScore {
    pub service: String,
    pub from: i64,
    pub factor: f64,
    /// Days over which the level grows (0 for a step).
    pub days: f64,
    /// Minutes from the change to `problem`, if an incident opened within
    /// [`STEP_FOUND_HOURS`] of it reached `problem`.
    pub found_after: Option<i64>,
    /// Incidents opened from the change on.
    pub incidents: Vec<SeenIncident>,
}

#[derive(Debug, Clone)]
pub struct NewScore {
    pub service: String,
    /// When its traffic starts.
    pub first: i64,
    pub outage: Option<OutageResult>,
    /// Incidents that are not its outage's (all false).
    pub others: Vec<SeenIncident>,
}

#[derive(Debug, Clone)]
pub struct GapScore {
    pub service: String,
    pub per_minute: f64,
    pub from: i64,
    pub minutes: i64,
    /// Incidents open in the gap or the [`GAP_AFTER_HOURS`] after it (all
    /// false: gap services have no outages).
    pub incidents: Vec<SeenIncident>,
}

impl HardScore {
    pub fn recurring_late(&self) -> usize {
        self.recurring.iter().map(|r| r.late().count()).sum()
    }
}

/// The time `[from, to)` in which an incident on service `i` that matches
/// no outage is false: after the warm-up, and for a new service from its
/// first traffic; a recurring, step or growth service only until its
/// pattern starts (from then on its incidents are the pattern's figures).
pub fn false_span(sc: &Scenario, i: usize, evaluate_from: i64) -> (i64, i64) {
    let end = sc.start + sc.minutes as i64 * 60;
    match sc.hard_case(i).map(|h| &h.kind) {
        Some(Kind::New { first }) => (evaluate_from.max(*first), end),
        Some(kind) => match kind.pattern_start() {
            Some(start) => (evaluate_from, start.max(evaluate_from)),
            None => (evaluate_from, end),
        },
        None => (evaluate_from, end),
    }
}

/// What a false incident has to do with a hard case: `gap` when it is open
/// in a gap or the hours after it, else its service's case, if any.
pub fn tag(sc: &Scenario, inc: &SeenIncident) -> Option<&'static str> {
    let kind = &sc.hard_case(inc.service)?.kind;
    match kind {
        Kind::Gap { from, minutes } if overlaps(sc, inc, *from, gap_end(*from, *minutes)) => {
            Some("gap")
        }
        Kind::Gap { .. } => Some("gap service"),
        _ => Some(kind.name()),
    }
}

fn gap_end(from: i64, minutes: i64) -> i64 {
    from + minutes * 60 + GAP_AFTER_HOURS * 3600
}

pub fn score(sc: &Scenario, seen: &[SeenIncident], outages: &[OutageResult]) -> HardScore {
    let mut out = HardScore::default();
    for h in &sc.hard {
        let service = sc.services[h.service].id.clone();
        let on_service = || seen.iter().filter(|inc| inc.service == h.service);
        let from_on = |from: i64| -> Vec<SeenIncident> {
            on_service()
                .filter(|inc| inc.opened >= from)
                .cloned()
                .collect()
        };
        let level = |from: i64, factor: f64, days: f64| {
            let incidents = from_on(from);
            let found_after = incidents
                .first()
                .filter(|inc| inc.opened < from + STEP_FOUND_HOURS * 3600)
                .and_then(|inc| inc.confirmed)
                .map(|t| (t - from) / 60);
            LevelScore {
                service: service.clone(),
                from,
                factor,
                days,
                found_after,
                incidents,
            }
        };
        match &h.kind {
            Kind::Recurring { from, bursts } => out.recurring.push(RecurringScore {
                service: service.clone(),
                from: *from,
                bursts: bursts.len(),
                incidents: from_on(*from),
            }),
            Kind::Step { at, factor } => out.steps.push(level(*at, *factor, 0.0)),
            Kind::Growth {
                from,
                minutes,
                factor,
            } => out
                .growth
                .push(level(*from, *factor, *minutes as f64 / 1440.0)),
            Kind::New { first } => {
                let outage = outages.iter().find(|o| o.service == service).cloned();
                let others = on_service()
                    .filter(|inc| {
                        !outage.as_ref().is_some_and(|o| {
                            overlaps(
                                sc,
                                inc,
                                o.start,
                                o.start + (o.minutes + AFTERMATH_MINUTES) * 60,
                            )
                        })
                    })
                    .cloned()
                    .collect();
                out.new.push(NewScore {
                    service: service.clone(),
                    first: *first,
                    outage,
                    others,
                });
            }
            Kind::Gap { from, minutes } => out.gaps.push(GapScore {
                service: service.clone(),
                per_minute: sc.services[h.service].per_minute,
                from: *from,
                minutes: *minutes,
                incidents: on_service()
                    .filter(|inc| overlaps(sc, inc, *from, gap_end(*from, *minutes)))
                    .cloned()
                    .collect(),
            }),
            Kind::Quiet { .. } => {}
        }
    }
    out
}
