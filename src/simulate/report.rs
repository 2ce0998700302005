//! What `simulate evaluate` prints: the outage table and summary lines as
//! before, the same figures for the ordinary services alone (comparable
//! with runs made before the hard cases), a section per hard case, and a
//! verdict per must-hold; optionally all of it as one JSON object.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;

use super::evaluate::{self, Evaluation, OutageResult, SeenIncident, found, median_delay};
use super::hard_score::{self, LevelScore};
use super::model::Scenario;
use super::{json, verdict};
use crate::config::DetectSettings;
use crate::domain::time::rfc3339;

/// Incidents listed per service in a hard case's section; the rest are
/// counted.
const LISTED: usize = 5;

/// Runs the detector over the scenario, prints the scores, writes them to
/// `json_out` if given, and says whether every must-hold held.
pub fn print_evaluation(
    sc: &Scenario,
    detect: &DetectSettings,
    evaluate_from: i64,
    json_out: Option<&Path>,
) -> anyhow::Result<bool> {
    let started = Instant::now();
    let e = evaluate::evaluate(sc, detect, evaluate_from);
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{} services ({} with hard cases), {:.0} service-days evaluated, {} outages injected ({seconds:.1} s)",
        sc.services.len(),
        sc.hard.len(),
        e.service_days,
        e.outages.len(),
    );
    print_outages(&e.outages);
    print_summary(sc, &e);
    if !sc.hard.is_empty() {
        print_hard_cases(sc, &e);
    }
    let verdicts = verdict::verdicts(&e);
    println!("verdicts:");
    for v in &verdicts {
        println!("  {} {}", if v.pass { "PASS" } else { "FAIL" }, v.text);
    }
    let pass = verdicts.iter().all(|v| v.pass);
    if let Some(path) = json_out {
        let doc = json::evaluation(sc, &e, &verdicts, seconds);
        let text = serde_json::to_string_pretty(&doc)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(pass)
}

fn fmt_after(v: Option<i64>) -> String {
    v.map_or("missed".to_string(), |m| format!("+{m} min"))
}

fn print_outages(outages: &[OutageResult]) {
    println!(
        "  {:<12} {:>9} {:>6} {:>6} {:>9} {:>9} {:>9}",
        "service", "normal/min", "x", "min", "injected", "possible", "problem"
    );
    for o in outages {
        println!(
            "  {:<12} {:>9.2} {:>6.1} {:>6} {:>9} {:>9} {:>9}",
            o.service,
            o.per_minute,
            o.multiplier,
            o.minutes,
            o.injected,
            fmt_after(o.possible_after),
            fmt_after(o.problem_after)
        );
    }
}

fn print_summary(sc: &Scenario, e: &Evaluation) {
    let detected = e.detected();
    println!(
        "detected (reached problem): {detected}/{} = {:.1}%",
        e.outages.len(),
        detected as f64 * 100.0 / e.outages.len().max(1) as f64
    );
    match e.median_delay() {
        Some(d) => println!("median delay from onset to problem: {d:.1} min"),
        None => println!("median delay from onset to problem: none detected"),
    }
    println!(
        "false incidents: {} = {:.2} per 1,000 service-days",
        e.false_incidents.len(),
        e.false_per_1000_service_days()
    );
    for f in e.false_incidents.iter().take(10) {
        let tag = hard_score::tag(sc, f).map_or(String::new(), |t| format!(" [{t}]"));
        println!("  false{tag}: {}", incident_line(sc, f));
    }
    if e.false_incidents.len() > 10 {
        println!("  ... and {} more", e.false_incidents.len() - 10);
    }
    if !sc.hard.is_empty() {
        let ordinary: Vec<&OutageResult> = e.ordinary_outages().collect();
        let false_n = e.ordinary_false();
        println!(
            "ordinary services alone (as before the hard cases): detected {}/{}, median delay {}, \
             {false_n} false = {:.2} per 1,000 service-days",
            found(ordinary.iter().copied()),
            ordinary.len(),
            median_delay(ordinary.iter().copied())
                .map_or("none".to_string(), |d| format!("{d:.1} min")),
            false_n as f64 * 1000.0 / e.ordinary_service_days.max(1e-9)
        );
    }
    if !e.meta_event.is_empty() {
        println!(
            "Meta replay: {} services in one company event: {}",
            e.meta_event.len(),
            e.meta_event.join(", ")
        );
    }
    if let Some((total, injected)) = e.whatsapp {
        println!(
            "WhatsApp incident total {total} reports vs {injected} injected ({:+.1}%)",
            (total as f64 / injected.max(1) as f64 - 1.0) * 100.0
        );
    }
}

/// One incident for people: service, when, size, how long, and why it
/// opened.
fn incident_line(sc: &Scenario, inc: &SeenIncident) -> String {
    let open = match inc.ended {
        Some(end) => format!("{:.1} h", (end - inc.opened) as f64 / 3600.0),
        None => "still open at the end".to_string(),
    };
    format!(
        "{} opened {} ({} reports{}, {open}): {}",
        sc.services[inc.service].id,
        rfc3339(inc.opened),
        inc.reports,
        if inc.confirmed.is_some() {
            ", confirmed"
        } else {
            ""
        },
        inc.why
    )
}

/// Lists up to [`LISTED`] incidents under `label`, then counts the rest
/// by the window and baseline that opened them.
fn list<'a>(sc: &Scenario, label: &str, incidents: impl Iterator<Item = &'a SeenIncident>) {
    let all: Vec<&SeenIncident> = incidents.collect();
    for inc in all.iter().take(LISTED) {
        println!("      {label}: {}", incident_line(sc, inc));
    }
    if all.len() > LISTED {
        let mut by_window: std::collections::BTreeMap<&str, usize> = Default::default();
        for inc in &all {
            *by_window.entry(inc.window.as_str()).or_default() += 1;
        }
        let tally: Vec<String> = by_window.iter().map(|(w, n)| format!("{w}: {n}")).collect();
        println!(
            "      ... and {} more; all {} by deciding window: {}",
            all.len() - LISTED,
            all.len(),
            tally.join(", ")
        );
    }
}

fn print_hard_cases(sc: &Scenario, e: &Evaluation) {
    let h = &e.hard;
    let rate = |service: &str| {
        sc.services
            .iter()
            .find(|s| s.id == service)
            .map_or(0.0, |s| s.per_minute)
    };
    println!("hard case: recurring bursts (4-12 a day, 20-40 min at 10x-100x, from day D on)");
    for r in &h.recurring {
        let [d1, d2, later] = r.opened_by_day();
        println!(
            "  {:<15} {:>6.2}/min from {}, {} bursts: opened day 1: {d1}, day 2: {d2}, \
             day 3+: {later}; {} incidents in all",
            r.service,
            rate(&r.service),
            rfc3339(r.from),
            r.bursts,
            r.incidents.len()
        );
        list(sc, "day 3+ (failure)", r.late());
    }
    let level = |title: &str, cases: &[LevelScore]| {
        println!("{title}");
        for c in cases {
            let over = if c.days > 0.0 {
                format!(" over {:.0} days", c.days)
            } else {
                String::new()
            };
            // A step is a change worth finding; a slow growth is not.
            let found = match (c.days > 0.0, c.found_after) {
                (true, _) => String::new(),
                (false, Some(m)) => format!("step found: yes (+{m} min), "),
                (false, None) => "step found: no, ".to_string(),
            };
            println!(
                "  {:<15} {:>6.2}/min x{:.1}{over} from {}: {found}incidents: {}",
                c.service,
                rate(&c.service),
                c.factor,
                rfc3339(c.from),
                c.incidents.len()
            );
            list(sc, "incident", c.incidents.iter());
        }
    };
    level("hard case: lasting step (3x-50x to the end)", &h.steps);
    level(
        "hard case: gradual growth (2x-4x over 2-3 weeks)",
        &h.growth,
    );
    println!("hard case: new service (no history; one outage of 5x-15x 3+ days in)");
    for n in &h.new {
        let outage = n.outage.as_ref();
        println!(
            "  {:<15} {:>6.2}/min from {}: outage {}, other incidents (false): {}",
            n.service,
            rate(&n.service),
            rfc3339(n.first),
            outage.map_or("none".to_string(), |o| format!(
                "x{:.1} {} min: {}",
                o.multiplier,
                o.minutes,
                fmt_after(o.problem_after)
            )),
            n.others.len()
        );
        list(sc, "false", n.others.iter());
    }
    println!("hard case: an hour with no reports (zeros the detector does not know are missing)");
    for g in &h.gaps {
        println!(
            "  {:<15} {:>6.2}/min gap from {} ({} min): incidents in it or the 2 h after (false, gap): {}",
            g.service,
            g.per_minute,
            rfc3339(g.from),
            g.minutes,
            g.incidents.len()
        );
        list(sc, "false [gap]", g.incidents.iter());
    }
    let quiet: Vec<&OutageResult> = e
        .outages
        .iter()
        .filter(|o| o.case == Some("quiet"))
        .collect();
    println!(
        "hard case: quiet services (0.005-0.05/min), outages of 10-40 extra reports over 15-180 min"
    );
    println!(
        "  quiet outages found {}/{}, median delay {}",
        found(quiet.iter().copied()),
        quiet.len(),
        median_delay(quiet.iter().copied()).map_or("none".to_string(), |d| format!("{d:.1} min"))
    );
}
