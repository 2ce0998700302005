//! `simulate evaluate --json FILE`: every figure of an evaluation as one
//! JSON object, so a script can run many seeds and aggregate them. Times
//! are Unix seconds, delays minutes; a missing figure is null.

use serde_json::{Value, json};

use super::evaluate::{Evaluation, OutageResult, SeenIncident, found, median_delay};
use super::hard_score::{self, LevelScore};
use super::model::Scenario;
use super::verdict::Verdict;

fn incident(sc: &Scenario, inc: &SeenIncident) -> Value {
    json!({
        "service": sc.services[inc.service].id,
        "opened": inc.opened,
        "confirmed": inc.confirmed,
        "ended": inc.ended,
        "reports": inc.reports,
        "tag": hard_score::tag(sc, inc),
        "why": inc.why,
        "window": inc.window,
    })
}

fn incidents<'a>(sc: &Scenario, list: impl Iterator<Item = &'a SeenIncident>) -> Vec<Value> {
    list.map(|inc| incident(sc, inc)).collect()
}

/// Detection figures of a set of outages.
fn detection<'a>(outages: impl Iterator<Item = &'a OutageResult> + Clone) -> Value {
    let n = outages.clone().count();
    let detected = found(outages.clone());
    json!({
        "outages": n,
        "detected": detected,
        "detection_rate": detected as f64 / n.max(1) as f64,
        "median_delay_min": median_delay(outages),
    })
}

fn level(sc: &Scenario, c: &LevelScore) -> Value {
    json!({
        "service": c.service,
        "from": c.from,
        "factor": c.factor,
        "days": c.days,
        "found": c.found_after.is_some(),
        "found_after_min": c.found_after,
        "incidents": c.incidents.len(),
        "list": incidents(sc, c.incidents.iter()),
    })
}

pub fn evaluation(sc: &Scenario, e: &Evaluation, verdicts: &[Verdict], seconds: f64) -> Value {
    let h = &e.hard;
    let ordinary_false = e.ordinary_false();
    let overall = detection(e.outages.iter());
    let recurring: Vec<Value> = h
        .recurring
        .iter()
        .map(|r| {
            let [d1, d2, later] = r.opened_by_day();
            json!({
                "service": r.service,
                "from": r.from,
                "bursts": r.bursts,
                "opened_day_1": d1,
                "opened_day_2": d2,
                "opened_day_3_on": later,
                "incidents": r.incidents.len(),
                "late": incidents(sc, r.late()),
            })
        })
        .collect();
    let new: Vec<Value> = h
        .new
        .iter()
        .map(|n| {
            let outage = n.outage.as_ref();
            json!({
                "service": n.service,
                "first": n.first,
                "outage_found": outage.is_some_and(|o| o.problem_after.is_some()),
                "problem_after_min": outage.and_then(|o| o.problem_after),
                "other_incidents": n.others.len(),
            })
        })
        .collect();
    let gaps: Vec<Value> = h
        .gaps
        .iter()
        .map(|g| {
            json!({
                "service": g.service,
                "per_minute": g.per_minute,
                "from": g.from,
                "minutes": g.minutes,
                "incidents": g.incidents.len(),
                "list": incidents(sc, g.incidents.iter()),
            })
        })
        .collect();
    let outage_list: Vec<Value> = e
        .outages
        .iter()
        .map(|o| {
            json!({
                "service": o.service,
                "case": o.case,
                "start": o.start,
                "minutes": o.minutes,
                "multiplier": o.multiplier,
                "per_minute": o.per_minute,
                "injected": o.injected,
                "possible_after_min": o.possible_after,
                "problem_after_min": o.problem_after,
            })
        })
        .collect();
    let verdict_map: serde_json::Map<String, Value> = verdicts
        .iter()
        .map(|v| (v.key.to_string(), json!(v.pass)))
        .collect();
    json!({
        "seed": sc.seed,
        "start": sc.start,
        "minutes": sc.minutes,
        "services": sc.services.len(),
        "hard_services": sc.hard.len(),
        "seconds": seconds,
        "outages": overall["outages"],
        "detected": overall["detected"],
        "detection_rate": overall["detection_rate"],
        "median_delay_min": overall["median_delay_min"],
        "service_days": e.service_days,
        "false_incidents": e.false_incidents.len(),
        "false_per_1000_service_days": e.false_per_1000_service_days(),
        "false": incidents(sc, e.false_incidents.iter()),
        "ordinary": {
            "detection": detection(e.ordinary_outages()),
            "service_days": e.ordinary_service_days,
            "false_incidents": ordinary_false,
            "false_per_1000_service_days":
                ordinary_false as f64 * 1000.0 / e.ordinary_service_days.max(1e-9),
        },
        "quiet": detection(e.outages.iter().filter(|o| o.case == Some("quiet"))),
        "recurring": recurring,
        "steps": h.steps.iter().map(|c| level(sc, c)).collect::<Vec<_>>(),
        "growth": h.growth.iter().map(|c| level(sc, c)).collect::<Vec<_>>(),
        "new": new,
        "gaps": gaps,
        "meta": { "event": e.meta_event, "one_event_of_5": e.meta_event.len() == 5 },
        "whatsapp": e.whatsapp.map(|(total, injected)| json!({
            "total": total,
            "injected": injected,
            "error": total as f64 / injected.max(1) as f64 - 1.0,
        })),
        "outage_list": outage_list,
        "verdicts": verdict_map,
        "pass": verdicts.iter().all(|v| v.pass),
    })
}
