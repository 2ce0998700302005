//! Incident documents as the worker keeps them up to date: one minute at a
//! time while open, shares and headline refreshed each tick, company events
//! formed from overlapping incidents of one company.

use std::collections::BTreeMap;

use crate::domain::anomaly::{self, Anomaly, AnomalyStatus, Group, Share, TimelinePoint};
use crate::domain::{Registry, Service};
use crate::store::Breakdown;

/// Most entries of `top_problems` and `top_countries`.
const TOP: usize = 5;

pub fn rfc3339(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub fn open(service: &Service, started_unix: i64) -> Anomaly {
    Anomaly {
        id: anomaly::anomaly_id(&service.id, started_unix),
        service: service.id.clone(),
        company: service.company.clone(),
        status: AnomalyStatus::Open,
        severity: "possible".into(),
        started_at: rfc3339(started_unix),
        peak_at: rfc3339(started_unix),
        ended_at: None,
        reports: 0,
        baseline: 0.0,
        ratio: 0.0,
        p_value: 1.0,
        top_problems: Vec::new(),
        top_countries: Vec::new(),
        headline: String::new(),
        group: None,
        started_unix,
        updated_unix: started_unix,
        timeline: Vec::new(),
    }
}

/// Adds one judged minute to an open incident.
pub fn record_minute(doc: &mut Anomaly, minute: i64, reports: u64, expected: f64, p_value: f64) {
    let t = minute * 60;
    let peak = doc.timeline.iter().map(|p| p.reports).max().unwrap_or(0);
    if reports > peak || doc.timeline.is_empty() {
        doc.peak_at = rfc3339(t);
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

pub fn resolve(doc: &mut Anomaly, at: i64) {
    doc.status = AnomalyStatus::Resolved;
    doc.ended_at = Some(rfc3339(at));
    doc.updated_unix = at;
}

pub fn reopen(doc: &mut Anomaly) {
    doc.status = AnomalyStatus::Open;
    doc.ended_at = None;
}

fn shares(counts: &BTreeMap<String, u64>, total: u64) -> Vec<Share> {
    let mut v: Vec<(&String, &u64)> = counts.iter().filter(|(_, c)| **c > 0).collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    v.into_iter()
        .take(TOP)
        .map(|(name, &count)| Share {
            name: name.clone(),
            count,
            share: if total > 0 {
                (count as f64 / total as f64 * 1000.0).round() / 1000.0
            } else {
                0.0
            },
        })
        .collect()
}

/// Problems and countries of the incident so far, and its headline.
pub fn refresh(doc: &mut Anomaly, service: &Service, breakdown: Option<&Breakdown>) {
    if let Some(b) = breakdown {
        let problems: u64 = b.problems.values().sum();
        doc.top_problems = shares(&b.problems, problems.max(doc.reports));
        doc.top_countries = shares(&b.countries, problems.max(doc.reports));
    }
    let minutes = doc.timeline.len() as i64;
    doc.headline = anomaly::headline(
        &service.name,
        doc.reports,
        minutes.max(1),
        doc.baseline,
        doc.top_problems.first(),
    );
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
