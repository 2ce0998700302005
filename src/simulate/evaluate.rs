//! Runs the detector over a simulated scenario, minute by minute and across
//! all services at once (false-discovery control per minute, as the worker
//! does), and scores it against the injected outages: detection rate, delay
//! from onset to `problem`, false incidents per 1,000 service-days, the Meta
//! replay's company event and WhatsApp's incident total.

use crate::config::DetectSettings;
use crate::detect::SeriesDetector;
use crate::detect::lifecycle::{Event, Severity};
use crate::detect::series::{fdr_cutoff, is_candidate};

use super::model::{META_REPLAY, Scenario};

/// An incident as the evaluation saw it.
#[derive(Debug, Clone)]
pub struct SeenIncident {
    pub service: usize,
    pub opened: i64,
    pub confirmed: Option<i64>,
    pub ended: Option<i64>,
    pub reports: u64,
    /// Why it opened: the deciding window's minutes, observed and expected
    /// counts, dispersion and calibrated p-value.
    pub why: String,
}

#[derive(Debug, Clone)]
pub struct OutageResult {
    pub service: String,
    pub start: i64,
    pub minutes: i64,
    pub multiplier: f64,
    pub per_minute: f64,
    pub injected: u64,
    /// Minutes from onset to `possible` and to `problem`.
    pub possible_after: Option<i64>,
    pub problem_after: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct Evaluation {
    pub outages: Vec<OutageResult>,
    pub false_incidents: Vec<SeenIncident>,
    pub service_days: f64,
    /// Services of Meta with incidents overlapping the replay.
    pub meta_event: Vec<String>,
    /// WhatsApp's incident total and the injected count of its outage.
    pub whatsapp: Option<(u64, u64)>,
}

impl Evaluation {
    pub fn detected(&self) -> usize {
        self.outages
            .iter()
            .filter(|o| o.problem_after.is_some())
            .count()
    }

    pub fn median_delay(&self) -> Option<f64> {
        let mut d: Vec<i64> = self
            .outages
            .iter()
            .filter_map(|o| o.problem_after)
            .collect();
        if d.is_empty() {
            return None;
        }
        d.sort_unstable();
        let n = d.len();
        Some(if n % 2 == 1 {
            d[n / 2] as f64
        } else {
            (d[n / 2 - 1] + d[n / 2]) as f64 / 2.0
        })
    }

    pub fn false_per_1000_service_days(&self) -> f64 {
        self.false_incidents.len() as f64 * 1000.0 / self.service_days.max(1e-9)
    }
}

/// Minutes after an outage ends during which an incident still belongs to it.
const AFTERMATH_MINUTES: i64 = 60;

pub fn evaluate(sc: &Scenario, s: &DetectSettings, evaluate_from: i64) -> Evaluation {
    let traffic: Vec<_> = (0..sc.services.len()).map(|i| sc.traffic(i)).collect();
    let mut detectors: Vec<SeriesDetector> = (0..sc.services.len())
        .map(|_| SeriesDetector::new(sc.start, 60, s))
        .collect();
    let mut open: Vec<Option<SeenIncident>> = vec![None; sc.services.len()];
    let mut seen: Vec<SeenIncident> = Vec::new();
    for m in 0..sc.minutes {
        let at = sc.start + m as i64 * 60;
        let judgements: Vec<_> = detectors
            .iter_mut()
            .enumerate()
            .map(|(i, d)| d.observe(traffic[i].counts[m] as f64))
            .collect();
        let ps: Vec<f64> = judgements
            .iter()
            .map(|j| j.decisive().map_or(1.0, |w| w.p_calibrated))
            .collect();
        let cutoff = fdr_cutoff(&ps, s.fdr_q);
        for (i, j) in judgements.into_iter().enumerate() {
            // Every simulated report has its own reporter; like the worker,
            // the reporters of the window are counted, or of the last
            // window_long_mins for the sustained window.
            let hit = is_candidate(&j, s)
                && j.decisive().is_some_and(|w| {
                    let minutes = w.reporter_minutes(s);
                    let recent = &traffic[i].counts[(m + 1).saturating_sub(minutes)..=m];
                    let reporters: u64 = recent.iter().sum();
                    w.p_calibrated <= cutoff && reporters >= s.min_reporters
                });
            let why = j.decisive().map_or(String::new(), |w| {
                let [minutes, observed, expected, kind, dispersion, p, calibrated] = w.explain();
                format!(
                    "{minutes} min window: {observed} vs {expected} expected ({kind}), \
                     dispersion {dispersion}, p {p}, calibrated {calibrated}"
                )
            });
            let verdict = detectors[i].conclude(j, hit);
            let count = traffic[i].counts[m];
            match verdict.event {
                Some(Event::Opened) => {
                    open[i] = Some(SeenIncident {
                        service: i,
                        opened: at,
                        confirmed: None,
                        ended: None,
                        reports: 0,
                        why,
                    });
                }
                Some(Event::Reopened) => {
                    if let Some(last) = seen.iter().rposition(|x| x.service == i) {
                        let mut inc = seen.remove(last);
                        inc.ended = None;
                        open[i] = Some(inc);
                    }
                }
                _ => {}
            }
            if let Some(inc) = open[i].as_mut() {
                inc.reports += count;
                let severity = detectors[i]
                    .state()
                    .lifecycle
                    .open
                    .as_ref()
                    .map(|o| o.severity);
                if severity == Some(Severity::Problem) && inc.confirmed.is_none() {
                    inc.confirmed = Some(at);
                }
                if verdict.event == Some(Event::Resolved) {
                    // As the worker does: the incident ends with its last
                    // hit; the quiet minutes waited through are not in it.
                    let quiet = (s.quiet_mins as usize).min(m + 1);
                    let after_last_hit: u64 = traffic[i].counts[m + 1 - quiet..=m].iter().sum();
                    inc.reports = inc.reports.saturating_sub(after_last_hit);
                    inc.ended = Some(at + 60 - quiet as i64 * 60);
                    seen.extend(open[i].take());
                }
            }
        }
    }
    seen.extend(open.into_iter().flatten());
    score(sc, &traffic, seen, evaluate_from)
}

fn score(
    sc: &Scenario,
    traffic: &[super::model::Traffic],
    seen: Vec<SeenIncident>,
    evaluate_from: i64,
) -> Evaluation {
    let end_of_data = sc.start + sc.minutes as i64 * 60;
    let overlaps = |inc: &SeenIncident, from: i64, to: i64| {
        inc.opened < to && inc.ended.unwrap_or(end_of_data) > from
    };
    let mut outages = Vec::new();
    for o in &sc.outages {
        let service = &sc.services[o.service];
        let window_end = o.start + (o.minutes + AFTERMATH_MINUTES) * 60;
        let matching: Vec<&SeenIncident> = seen
            .iter()
            .filter(|inc| inc.service == o.service && overlaps(inc, o.start, window_end))
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
            start: o.start,
            minutes: o.minutes,
            multiplier: o.multiplier,
            per_minute: service.per_minute,
            injected,
            possible_after: first(|inc| Some(inc.opened)),
            problem_after: first(|inc| inc.confirmed),
        });
    }
    let false_incidents: Vec<SeenIncident> = seen
        .iter()
        .filter(|inc| inc.opened >= evaluate_from)
        .filter(|inc| {
            !sc.outages.iter().any(|o| {
                o.service == inc.service
                    && overlaps(inc, o.start, o.start + (o.minutes + AFTERMATH_MINUTES) * 60)
            })
        })
        .cloned()
        .collect();
    let service_days =
        sc.services.len() as f64 * (end_of_data - evaluate_from).max(0) as f64 / 86_400.0;
    // The Meta replay: the Meta services with an incident open while all
    // five outages run (the shortest, WhatsApp's, bounds that time).
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
                .filter(|inc| inc.service == o.service && overlaps(inc, start, end))
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
    Evaluation {
        outages,
        false_incidents,
        service_days,
        meta_event,
        whatsapp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::domain::Registry;
    use crate::simulate::model::Spec;

    #[test]
    fn the_meta_replay_is_one_company_event_and_outages_are_found_quickly() {
        let registry = Registry::builtin().unwrap();
        let spec = Spec {
            services: 10,
            days: 9,
            quiet_days: 7,
            outages: 3,
            meta: true,
            seed: 3,
            start: 1_790_000_000,
        };
        let sc = Scenario::synthetic(&registry, &spec);
        let detect = Settings::defaults().detect;
        let e = evaluate(&sc, &detect, spec.start + 7 * 86_400);
        assert_eq!(
            e.meta_event,
            ["facebook", "instagram", "messenger", "threads", "whatsapp"]
        );
        let (total, injected) = e.whatsapp.unwrap();
        let error = (total as f64 / injected as f64 - 1.0).abs();
        assert!(error < 0.2, "WhatsApp {total} vs {injected}");
        for o in &e.outages {
            let delay = o.problem_after.unwrap_or(i64::MAX);
            // Every outage here adds well over a hundred reports.
            assert!(delay <= 15, "{o:?}");
        }
        assert!(e.false_incidents.is_empty(), "{:?}", e.false_incidents);
    }
}
