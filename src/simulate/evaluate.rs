//! Runs the detector over a simulated scenario, minute by minute and across
//! all services at once (false-discovery control per minute, as the worker
//! does), and scores it against the injected outages: detection rate, delay
//! from onset to `problem`, false incidents per 1,000 service-days, the Meta
//! replay's company event and WhatsApp's incident total ([`super::score`]),
//! and the hard cases ([`super::hard_score`]).

use crate::config::DetectSettings;
use crate::detect::baseline::median;
use crate::detect::discovery::Discovery;
use crate::detect::lifecycle::Event;
use crate::detect::{Judgement, SeriesDetector};
use crate::domain::Status;

use super::hard::Kind;
use super::hard_score::HardScore;
use super::model::Scenario;

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
    /// The deciding window's minutes and baseline, e.g. `5 min Daily`, to
    /// tally which part of the detector opens a case's incidents.
    pub window: String,
}

#[derive(Debug, Clone)]
pub struct OutageResult {
    pub service: String,
    /// The hard case the outage belongs to (`new`, `quiet`), if any.
    pub case: Option<&'static str>,
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
    /// Days of services in which an incident with no outage is false.
    pub service_days: f64,
    /// The same, of the services that carry no hard case (the figures of
    /// earlier runs).
    pub ordinary_service_days: f64,
    /// Whether each service carries a hard case, by index.
    pub is_hard: Vec<bool>,
    /// Services of Meta with incidents overlapping the replay.
    pub meta_event: Vec<String>,
    /// WhatsApp's incident total and the injected count of its outage.
    pub whatsapp: Option<(u64, u64)>,
    pub hard: HardScore,
}

impl Evaluation {
    pub fn detected(&self) -> usize {
        found(self.outages.iter())
    }

    pub fn median_delay(&self) -> Option<f64> {
        median_delay(self.outages.iter())
    }

    pub fn false_per_1000_service_days(&self) -> f64 {
        self.false_incidents.len() as f64 * 1000.0 / self.service_days.max(1e-9)
    }

    /// The outages of services that carry no hard case.
    pub fn ordinary_outages(&self) -> impl Iterator<Item = &OutageResult> + Clone {
        self.outages.iter().filter(|o| o.case.is_none())
    }

    /// The false incidents of services that carry no hard case.
    pub fn ordinary_false(&self) -> usize {
        self.false_incidents
            .iter()
            .filter(|f| !self.is_hard[f.service])
            .count()
    }
}

/// How many of `outages` reached `problem`.
pub fn found<'a>(outages: impl Iterator<Item = &'a OutageResult>) -> usize {
    outages.filter(|o| o.problem_after.is_some()).count()
}

/// The median of `outages`' delays from onset to `problem`.
pub fn median_delay<'a>(outages: impl Iterator<Item = &'a OutageResult>) -> Option<f64> {
    let mut d: Vec<f64> = outages
        .filter_map(|o| o.problem_after)
        .map(|m| m as f64)
        .collect();
    (!d.is_empty()).then(|| median(&mut d))
}

pub fn evaluate(sc: &Scenario, s: &DetectSettings, evaluate_from: i64) -> Evaluation {
    let traffic: Vec<_> = (0..sc.services.len()).map(|i| sc.traffic(i)).collect();
    let first = first_minutes(sc, &traffic);
    let mut detectors: Vec<SeriesDetector> = first
        .iter()
        .map(|&m0| SeriesDetector::new(sc.start + m0 as i64 * 60, 60, s))
        .collect();
    let mut open: Vec<Option<SeenIncident>> = vec![None; sc.services.len()];
    let mut seen: Vec<SeenIncident> = Vec::new();
    for m in 0..sc.minutes {
        let at = sc.start + m as i64 * 60;
        let judgements: Vec<Option<Judgement>> = detectors
            .iter_mut()
            .enumerate()
            .map(|(i, d)| (m >= first[i]).then(|| d.observe(traffic[i].counts[m] as f64)))
            .collect();
        // A service without data yet is judged and finds nothing, as in the
        // worker, which judges every service it holds.
        let discovery = Discovery::of(judgements.iter().map(Option::as_ref));
        for (i, j) in judgements.into_iter().enumerate() {
            let Some(j) = j else {
                continue;
            };
            // Every simulated report has its own reporter on its own
            // network; like the worker, the networks of the decisive window
            // are counted, or of the last window_long_mins for the
            // sustained window.
            let supported = j.decisive().is_some_and(|w| {
                let minutes = w.floor_minutes(s);
                let recent = &traffic[i].counts[(m + 1).saturating_sub(minutes)..=m];
                recent.iter().sum::<u64>() >= s.min_networks
            });
            let hit = supported && discovery.is_discovery(&j, s);
            let (why, window) = j.decisive().map_or_else(Default::default, |w| {
                let [minutes, observed, expected, kind, dispersion, p, calibrated] = w.explain();
                let why = format!(
                    "{minutes} min window: {observed} vs {expected} expected ({kind}), \
                     dispersion {dispersion}, p {p}, calibrated {calibrated}"
                );
                (why, format!("{minutes} min {kind}"))
            });
            let verdict = detectors[i].conclude(j, hit, supported);
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
                        window,
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
                if severity == Some(Status::Problem) && inc.confirmed.is_none() {
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
    super::score::score(sc, &traffic, seen, evaluate_from)
}

/// The minute each service's data begins. The worker knows nothing of a
/// service before its first report (`BucketHistory`'s data start), so a new
/// service's detector starts there; every other service has reports from
/// its first minutes and starts at the scenario's first minute, as it
/// always did (its figures stay those of earlier runs).
fn first_minutes(sc: &Scenario, traffic: &[super::model::Traffic]) -> Vec<usize> {
    (0..sc.services.len())
        .map(|i| match sc.hard_case(i).map(|h| &h.kind) {
            Some(Kind::New { .. }) => traffic[i]
                .counts
                .iter()
                .position(|&c| c > 0)
                .unwrap_or(sc.minutes),
            _ => 0,
        })
        .collect()
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
