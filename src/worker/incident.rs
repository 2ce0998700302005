//! Incident documents as the worker keeps them up to date: one minute at a
//! time while open, shares and headline refreshed each tick, company events
//! formed from overlapping incidents of one company.

use std::collections::BTreeMap;

use crate::domain::anomaly::{self, Anomaly, AnomalyStatus, Group, Share, TimelinePoint};
use crate::domain::time::rfc3339;
use crate::domain::{Registry, Service, Status};
use crate::store::{AnomalyRecord, Breakdown, Distinct};

/// Most entries of `top_problems` and `top_countries`.
const TOP: usize = 5;

pub fn open(service: &Service, started_unix: i64) -> Anomaly {
    Anomaly {
        id: anomaly::anomaly_id(&service.id, started_unix),
        service: service.id.clone(),
        company: service.company.clone(),
        status: AnomalyStatus::Open,
        severity: Status::Possible,
        started_at: rfc3339(started_unix),
        peak_at: rfc3339(started_unix),
        peak_reports: 0,
        ended_at: None,
        reports: 0,
        baseline: 0.0,
        ratio: 0.0,
        p_value: 1.0,
        distinct_reporters: 0,
        distinct_networks: 0,
        top_problems: Vec::new(),
        top_countries: Vec::new(),
        headline: String::new(),
        bursts: 1,
        group: None,
        started_unix,
        updated_unix: started_unix,
        timeline: Vec::new(),
    }
}

/// One judged minute of an open incident.
pub struct Minute {
    pub minute: i64,
    pub reports: u64,
    pub expected: f64,
    pub p_value: f64,
    /// Distinct reporters and networks of the window that made it a hit.
    pub distinct: Option<Distinct>,
}

/// Adds one judged minute to an open incident; the timeline keeps the
/// newest `max_timeline` minutes, the totals count them all.
pub fn record_minute(doc: &mut Anomaly, m: Minute, max_timeline: usize) {
    let Minute {
        minute,
        reports,
        expected,
        p_value,
        distinct,
    } = m;
    // Both figures of one window: the one with the most networks.
    if let Some(d) = distinct
        && d.networks > doc.distinct_networks
    {
        doc.distinct_reporters = d.reporters;
        doc.distinct_networks = d.networks;
    }
    if doc.peak_reports == 0 {
        // A document stored before `peak_reports` existed.
        doc.peak_reports = doc.timeline.iter().map(|p| p.reports).max().unwrap_or(0);
    }
    if doc.timeline.len() >= max_timeline.max(1) {
        doc.timeline.remove(0);
    }
    let t = minute * 60;
    // Against the stored peak: the busiest minute may be older than the
    // timeline keeps.
    if reports > doc.peak_reports || doc.reports == 0 {
        doc.peak_at = rfc3339(t);
        doc.peak_reports = reports;
    }
    doc.timeline.push(TimelinePoint {
        t: rfc3339(t),
        reports,
        expected: (expected * 100.0).round() / 100.0,
    });
    doc.reports += reports;
    doc.baseline += expected;
    doc.ratio = (doc.reports as f64 / doc.baseline.max(0.5) * 10.0).round() / 10.0;
    doc.p_value = doc.p_value.min(p_value);
    doc.updated_unix = t + 60;
}

/// Closes the incident at `ended` (the end of its last hit): the quiet
/// minutes the lifecycle waited through are not part of it.
pub fn resolve(doc: &mut Anomaly, ended: i64, now: i64) {
    let ended_at = rfc3339(ended);
    // Timeline times are RFC 3339 in UTC with seconds, so they sort as text.
    let keep = doc.timeline.partition_point(|p| p.t < ended_at);
    for p in doc.timeline.drain(keep..) {
        doc.reports = doc.reports.saturating_sub(p.reports);
        doc.baseline = (doc.baseline - p.expected).max(0.0);
    }
    doc.ratio = (doc.reports as f64 / doc.baseline.max(0.5) * 10.0).round() / 10.0;
    doc.status = AnomalyStatus::Resolved;
    doc.ended_at = Some(ended_at);
    doc.updated_unix = now;
}

/// Reopens a resolved incident: a relapse of the same burst, or (`burst`)
/// a new burst of its kind, which makes it a recurring one.
pub fn reopen(doc: &mut Anomaly, burst: bool) {
    doc.status = AnomalyStatus::Open;
    doc.ended_at = None;
    if burst {
        doc.bursts += 1;
    }
}

/// The largest entries of `counts` as shares of `total` (the breakdown's
/// reports), each count restated as that share of the incident's
/// `reports`: the breakdown is kept per 5 minutes, so its slots can reach
/// past the incident's minutes, and its raw counts could exceed the
/// incident's total.
fn shares(counts: &BTreeMap<String, u64>, total: u64, reports: u64) -> Vec<Share> {
    let mut v: Vec<(&String, &u64)> = counts.iter().filter(|(_, c)| **c > 0).collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    v.into_iter()
        .take(TOP)
        .map(|(name, &count)| {
            let share = if total > 0 {
                (count as f64 / total as f64).min(1.0)
            } else {
                0.0
            };
            Share {
                name: name.clone(),
                count: (share * reports as f64).round() as u64,
                share: (share * 1000.0).round() / 1000.0,
            }
        })
        .collect()
}

/// Problems and countries of the incident so far, and its headline.
pub fn refresh(doc: &mut Anomaly, service: &Service, breakdown: Option<&Breakdown>) {
    if let Some(b) = breakdown {
        // Every counted report has a problem; not all name a country.
        let total: u64 = b.problems.values().sum();
        doc.top_problems = shares(&b.problems, total, doc.reports);
        doc.top_countries = shares(&b.countries, total, doc.reports);
    }
    // A service registered without a display name is named by its id.
    let name = if service.name.is_empty() {
        &service.id
    } else {
        &service.name
    };
    let top = doc.top_problems.first();
    doc.headline = if doc.bursts > 1 {
        anomaly::recurring_headline(
            name,
            doc.started_unix,
            doc.bursts,
            doc.reports,
            doc.baseline,
            top,
        )
    } else {
        // From the start to the end of the last minute recorded.
        let last = doc
            .timeline
            .last()
            .and_then(|p| chrono::DateTime::parse_from_rfc3339(&p.t).ok())
            .map_or(doc.started_unix, |t| t.timestamp() + 60);
        let minutes = (last - doc.started_unix) / 60;
        anomaly::headline(name, doc.reports, minutes.max(1), doc.baseline, top)
    };
}

/// Gives overlapping open incidents of one company a shared group. A group
/// keeps its id (the company and the first start) while any member is open,
/// and only grows.
pub fn group_by_company(docs: &mut [&mut Anomaly], registry: &Registry) {
    let mut by_company: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, d) in docs.iter().enumerate() {
        if d.status == AnomalyStatus::Open {
            by_company.entry(d.company.clone()).or_default().push(i);
        }
    }
    for (company, members) in by_company {
        if members.len() < 2 {
            continue;
        }
        let existing = members
            .iter()
            .filter_map(|&i| docs[i].group.clone())
            .min_by(|a, b| a.id.cmp(&b.id));
        let start = members
            .iter()
            .map(|&i| docs[i].started_unix)
            .min()
            .unwrap_or(0);
        let mut services: Vec<String> = existing
            .as_ref()
            .map(|g| g.services.clone())
            .unwrap_or_default();
        for &i in &members {
            if !services.contains(&docs[i].service) {
                services.push(docs[i].service.clone());
            }
        }
        let mut names: Vec<String> = services
            .iter()
            .map(|s| registry.service(s).map_or(s.clone(), |s| s.name.clone()))
            .collect();
        names.sort();
        services.sort();
        let company_name = registry
            .company(&company)
            .map_or(company.clone(), |c| c.name.clone());
        let group = Group {
            id: existing.map_or_else(|| anomaly::anomaly_id(&company, start), |g| g.id),
            company: company.clone(),
            services,
            headline: anomaly::group_headline(&company_name, &names),
        };
        for &i in &members {
            docs[i].group = Some(group.clone());
        }
    }
}

/// What the store keeps of an anomaly document.
pub fn record(doc: &Anomaly) -> Option<AnomalyRecord> {
    match serde_json::to_string(doc) {
        Ok(json) => Some(AnomalyRecord {
            id: doc.id.clone(),
            service: doc.service.clone(),
            started_unix: doc.started_unix,
            updated_unix: doc.updated_unix,
            open: doc.status == AnomalyStatus::Open,
            doc: json,
            summary: summary_json(doc),
        }),
        Err(e) => {
            tracing::error!(error = %e, id = %doc.id, "anomaly not serializable");
            None
        }
    }
}

/// The document without its timeline, for feed events.
fn summary_json(doc: &Anomaly) -> String {
    let summary = Anomaly {
        timeline: Vec::new(),
        ..doc.clone()
    };
    serde_json::to_string(&summary).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_restate_slot_counts_as_parts_of_the_incident() {
        // The 5-minute slots hold 748 reports, the incident's minutes 327.
        let counts = BTreeMap::from([("login".to_string(), 700), ("app".to_string(), 48)]);
        let top = shares(&counts, 748, 327);
        assert_eq!(top[0].name, "login");
        assert_eq!(top[0].share, 0.936);
        assert_eq!(top[0].count, 306);
        assert_eq!(top[1].count, 21);
        assert!(top.iter().map(|s| s.count).sum::<u64>() <= 327);
    }

    /// Records one minute per count from `start`, 2 expected each, keeping
    /// a timeline of 4.
    fn record_minutes(doc: &mut Anomaly, start: i64, counts: &[u64]) {
        for (i, &reports) in counts.iter().enumerate() {
            let m = Minute {
                minute: start / 60 + i as i64,
                reports,
                expected: 2.0,
                p_value: 1e-9,
                distinct: None,
            };
            record_minute(doc, m, 4);
        }
    }

    /// The incident shows the distinct reporters and networks of the hit
    /// window with the most networks; a minute that was no hit (no figures)
    /// changes neither.
    #[test]
    fn an_incident_keeps_its_largest_distinct_figures() {
        let registry = Registry::builtin().unwrap();
        let mut doc = open(registry.service("whatsapp").unwrap(), 1_790_000_000);
        for (i, distinct) in [(40, 30), (120, 90), (80, 95)].into_iter().enumerate() {
            let (reporters, networks) = distinct;
            let m = Minute {
                minute: 29_833_333 + i as i64,
                reports: 50,
                expected: 2.0,
                p_value: 1e-9,
                distinct: Some(Distinct {
                    reporters,
                    networks,
                }),
            };
            record_minute(&mut doc, m, 4);
        }
        record_minutes(&mut doc, 1_790_000_180, &[3]);
        assert_eq!((doc.distinct_reporters, doc.distinct_networks), (80, 95));
    }

    #[test]
    fn a_resolved_incident_ends_with_its_last_hit_and_drops_the_quiet_minutes() {
        let registry = Registry::builtin().unwrap();
        let whatsapp = registry.service("whatsapp").unwrap();
        let start = 1_709_650_920;
        let mut doc = open(whatsapp, start);
        record_minutes(&mut doc, start, &[40, 60, 30, 2, 1]);
        assert_eq!(doc.timeline.len(), 4, "the timeline keeps the newest 4");
        assert_eq!(doc.reports, 133, "totals count every minute");
        assert_eq!(doc.peak_at, rfc3339(start + 60));
        // The last hit was the third minute.
        resolve(&mut doc, start + 180, start + 300);
        assert_eq!(doc.status, AnomalyStatus::Resolved);
        assert_eq!(doc.ended_at.as_deref(), Some(rfc3339(start + 180).as_str()));
        assert_eq!(doc.reports, 130);
        assert_eq!(doc.timeline.len(), 2);
        assert!((doc.baseline - 6.0).abs() < 1e-9);
        refresh(&mut doc, whatsapp, None);
        assert!(
            doc.headline.starts_with("WhatsApp: ~130 reports in 3 min"),
            "{}",
            doc.headline
        );
    }

    #[test]
    fn the_peak_stays_when_the_timeline_drops_it() {
        let registry = Registry::builtin().unwrap();
        let start = 1_709_650_920;
        let mut doc = open(registry.service("whatsapp").unwrap(), start);
        record_minutes(&mut doc, start, &[500, 3, 3, 3, 4]);
        assert_eq!(doc.timeline.len(), 4);
        assert_eq!(doc.peak_at, rfc3339(start));
        assert_eq!(doc.peak_reports, 500);
    }
}
