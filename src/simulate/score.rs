//! Scores the incidents an evaluation saw against what was injected: each
//! outage found or missed and how fast, the incidents that match no outage
//! (false ones), the Meta replay as one company event and WhatsApp's
//! incident total; the hard cases' own figures are [`super::hard_score`]'s.

use super::evaluate::{Evaluation, OutageResult, SeenIncident};
use super::hard::Kind;
use super::hard_score;
use super::model::{META_REPLAY, Scenario, Traffic};

/// Minutes after an outage ends during which an incident still belongs to it.
pub const AFTERMATH_MINUTES: i64 = 60;

/// An outage the detector should find: a random one, the replay's, a new
/// service's or a quiet service's.
struct Target {
    service: usize,
    start: i64,
    minutes: i64,
    multiplier: f64,
    case: Option<&'static str>,
}

impl Target {
    /// The end of the time in which an incident belongs to the outage.
    fn window_end(&self) -> i64 {
        self.start + (self.minutes + AFTERMATH_MINUTES) * 60
    }
}

fn targets(sc: &Scenario) -> Vec<Target> {
    let outages = sc.outages.iter().map(|o| Target {
        service: o.service,
        start: o.start,
        minutes: o.minutes,
        multiplier: o.multiplier,
        case: sc.hard_case(o.service).map(|h| h.kind.name()),
    });
    let quiet = sc.hard.iter().filter_map(|h| match &h.kind {
        Kind::Quiet { start, extra } => {
            let minutes = extra.len() as i64;
            let reports: u64 = extra.iter().sum();
            // The mean rate over the outage, as a multiple of the normal.
            let normal = sc.services[h.service].per_minute * minutes as f64;
            Some(Target {
                service: h.service,
                start: *start,
                minutes,
                multiplier: 1.0 + reports as f64 / normal.max(1e-9),
                case: Some("quiet"),
            })
        }
        _ => None,
    });
    outages.chain(quiet).collect()
}

/// Whether `inc` was open at some time in `[from, to)`.
pub fn overlaps(sc: &Scenario, inc: &SeenIncident, from: i64, to: i64) -> bool {
    let end_of_data = sc.start + sc.minutes as i64 * 60;
    inc.opened < to && inc.ended.unwrap_or(end_of_data) > from
}

pub fn score(
    sc: &Scenario,
    traffic: &[Traffic],
    seen: Vec<SeenIncident>,
    evaluate_from: i64,
) -> Evaluation {
    let targets = targets(sc);
    let mut outages = Vec::new();
    for o in &targets {
        let service = &sc.services[o.service];
        let window_end = o.window_end();
        let matching: Vec<&SeenIncident> = seen
            .iter()
            .filter(|inc| inc.service == o.service && overlaps(sc, inc, o.start, window_end))
            .collect();
        let first = |f: fn(&SeenIncident) -> Option<i64>| {
            matching
                .iter()
                .filter_map(|inc| f(inc))
                .filter(|t| *t < window_end)
                .min()
                .map(|t| ((t - o.start) / 60).max(0))
        };
        let i0 = ((o.start - sc.start) / 60) as usize;
        let injected = traffic[o.service].injected[i0..(i0 + o.minutes as usize).min(sc.minutes)]
            .iter()
            .sum();
        outages.push(OutageResult {
            service: service.id.clone(),
            case: o.case,
            start: o.start,
            minutes: o.minutes,
            multiplier: o.multiplier,
            per_minute: service.per_minute,
            injected,
            possible_after: first(|inc| Some(inc.opened)),
            problem_after: first(|inc| inc.confirmed),
        });
    }
    let spans: Vec<(i64, i64)> = (0..sc.services.len())
        .map(|i| hard_score::false_span(sc, i, evaluate_from))
        .collect();
    let false_incidents: Vec<SeenIncident> = seen
        .iter()
        .filter(|inc| {
            let (from, to) = spans[inc.service];
            inc.opened >= from && inc.opened < to
        })
        .filter(|inc| {
            !targets
                .iter()
                .any(|o| o.service == inc.service && overlaps(sc, inc, o.start, o.window_end()))
        })
        .cloned()
        .collect();
    let is_hard: Vec<bool> = (0..sc.services.len())
        .map(|i| sc.hard_case(i).is_some())
        .collect();
    let days = |hard: Option<bool>| {
        spans
            .iter()
            .zip(&is_hard)
            .filter(|(_, h)| hard.is_none_or(|want| **h == want))
            .map(|((from, to), _)| (to - from).max(0) as f64 / 86_400.0)
            .sum()
    };
    let (meta_event, whatsapp) = meta_replay(sc, traffic, &seen);
    Evaluation {
        hard: hard_score::score(sc, &seen, &outages),
        outages,
        false_incidents,
        service_days: days(None),
        ordinary_service_days: days(Some(false)),
        is_hard,
        meta_event,
        whatsapp,
    }
}

/// The Meta services with an incident open while all five outages of the
/// replay run (the shortest, WhatsApp's, bounds that time), and WhatsApp's
/// incident total with the count its outage injected.
fn meta_replay(
    sc: &Scenario,
    traffic: &[Traffic],
    seen: &[SeenIncident],
) -> (Vec<String>, Option<(u64, u64)>) {
    let replay: Vec<&super::model::Outage> = sc
        .outages
        .iter()
        .filter(|o| {
            META_REPLAY
                .iter()
                .any(|m| sc.services[o.service].id == m.0 && o.multiplier == m.2)
        })
        .collect();
    let mut meta_event = Vec::new();
    let mut whatsapp = None;
    if let Some(start) = replay.iter().map(|o| o.start).min() {
        let end = replay
            .iter()
            .map(|o| o.start + o.minutes * 60)
            .min()
            .unwrap_or(start);
        for o in &replay {
            let id = &sc.services[o.service].id;
            let incidents: Vec<&SeenIncident> = seen
                .iter()
                .filter(|inc| inc.service == o.service && overlaps(sc, inc, start, end))
                .collect();
            if !incidents.is_empty() {
                meta_event.push(id.clone());
            }
            if id == "whatsapp" {
                let total = incidents.iter().map(|inc| inc.reports).sum();
                let i0 = ((o.start - sc.start) / 60) as usize;
                let injected = traffic[o.service].injected[i0..i0 + o.minutes as usize]
                    .iter()
                    .sum();
                whatsapp = Some((total, injected));
            }
        }
    }
    (meta_event, whatsapp)
}
