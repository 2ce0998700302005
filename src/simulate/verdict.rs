//! The must-holds of an evaluation, each a one-line verdict: what the
//! detector is for (outages found, fast, few false incidents, the Meta
//! replay as one event with the right size) and what it must not do on the
//! hard cases (keep alerting on bursts that became normal, or on a level
//! that moved). `simulate evaluate` fails when any of them does.

use super::evaluate::Evaluation;

/// The share of outages that must reach `problem`.
pub const MIN_DETECTION: f64 = 0.95;
/// The median delay from onset to `problem`, at most.
pub const MAX_MEDIAN_DELAY_MINS: f64 = 5.0;
/// False incidents per 1,000 service-days, at most.
pub const MAX_FALSE_PER_1000: f64 = 1.0;
/// Incidents a lasting change of level may open, at most: the change
/// itself may be worth one.
pub const MAX_LEVEL_INCIDENTS: usize = 1;
/// How far WhatsApp's incident total may be from what was injected.
pub const MAX_WHATSAPP_ERROR: f64 = 0.2;

#[derive(Debug, Clone)]
pub struct Verdict {
    /// A stable name for scripts (the JSON's key).
    pub key: &'static str,
    /// What must hold and what was seen, for people.
    pub text: String,
    pub pass: bool,
}

fn verdict(key: &'static str, pass: bool, text: String) -> Verdict {
    Verdict { key, text, pass }
}

/// The must-holds that apply to this evaluation (a hard case's only when
/// it was injected, the replay's only when it ran).
pub fn verdicts(e: &Evaluation) -> Vec<Verdict> {
    let mut out = Vec::new();
    let h = &e.hard;
    if !h.recurring.is_empty() {
        let late = h.recurring_late();
        out.push(verdict(
            "recurring_none_after_day_2",
            late == 0,
            format!("recurring bursts: no incident opened after the pattern's second day ({late})"),
        ));
    }
    for (key, name, cases) in [
        ("steps_at_most_1_each", "lasting steps", &h.steps),
        ("growth_at_most_1_each", "gradual growth", &h.growth),
    ] {
        if cases.is_empty() {
            continue;
        }
        let most = cases.iter().map(|c| c.incidents.len()).max().unwrap_or(0);
        out.push(verdict(
            key,
            most <= MAX_LEVEL_INCIDENTS,
            format!("{name}: at most {MAX_LEVEL_INCIDENTS} incident each (most {most})"),
        ));
    }
    let rate = e.detected() as f64 / e.outages.len().max(1) as f64;
    out.push(verdict(
        "detection_at_least_95_percent",
        rate >= MIN_DETECTION,
        format!(
            "detection >= {:.0}%: {}/{} = {:.1}%",
            MIN_DETECTION * 100.0,
            e.detected(),
            e.outages.len(),
            rate * 100.0
        ),
    ));
    let delay = e.median_delay();
    out.push(verdict(
        "median_delay_at_most_5_min",
        delay.is_some_and(|d| d <= MAX_MEDIAN_DELAY_MINS),
        format!(
            "median delay <= {MAX_MEDIAN_DELAY_MINS} min: {}",
            delay.map_or("none detected".to_string(), |d| format!("{d:.1} min"))
        ),
    ));
    let per_1000 = e.false_per_1000_service_days();
    out.push(verdict(
        "false_at_most_1_per_1000_service_days",
        per_1000 <= MAX_FALSE_PER_1000,
        format!("false incidents <= {MAX_FALSE_PER_1000} per 1,000 service-days: {per_1000:.2}"),
    ));
    // The replay is there when WhatsApp, the last of its five, is.
    if let Some((total, injected)) = e.whatsapp {
        let n = e.meta_event.len();
        out.push(verdict(
            "meta_one_event_of_5",
            n == 5,
            format!("Meta replay one company event of 5 services: {n}"),
        ));
        let error = total as f64 / injected.max(1) as f64 - 1.0;
        out.push(verdict(
            "whatsapp_within_20_percent",
            error.abs() <= MAX_WHATSAPP_ERROR,
            format!(
                "WhatsApp incident total within {:.0}% of injected: {total} vs {injected} ({:+.1}%)",
                MAX_WHATSAPP_ERROR * 100.0,
                error * 100.0
            ),
        ));
    }
    out
}
