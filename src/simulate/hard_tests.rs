//! The hard cases' traffic has the property each is named for, and adding
//! them leaves the ordinary services as they were.

use super::evaluate::SeenIncident;
use super::hard::{self, HardCase, HardSpec, Kind};
use super::hard_score::RecurringScore;
use super::model::{Scenario, Spec};
use crate::domain::Registry;

const DAY: i64 = 86_400;

/// Three weeks and a day, a week of warm-up, one service of each case
/// (three quiet ones).
fn scenario() -> Scenario {
    let registry = Registry::builtin().unwrap();
    let mut sc = Scenario::synthetic(&registry, &spec());
    let one = HardSpec {
        recurring: 1,
        steps: 1,
        growth: 1,
        new: 1,
        gaps: 1,
        quiet: 3,
    };
    hard::add(&mut sc, &one, 7);
    sc
}

fn spec() -> Spec {
    Spec {
        services: 4,
        days: 22,
        quiet_days: 7,
        outages: 2,
        meta: false,
        seed: 11,
        start: 1_790_000_000,
    }
}

/// The scenario's hard case of the kind named `name` (see [`Kind::name`]).
fn case<'a>(sc: &'a Scenario, name: &str) -> &'a HardCase {
    sc.hard
        .iter()
        .find(|h| h.kind.name() == name)
        .unwrap_or_else(|| panic!("no {name} case"))
}

/// The index of the minute starting at `t`.
fn minute(sc: &Scenario, t: i64) -> usize {
    ((t - sc.start) / 60) as usize
}

#[test]
fn adding_hard_cases_leaves_the_ordinary_services_and_outages_as_they_were() {
    let registry = Registry::builtin().unwrap();
    let plain = Scenario::synthetic(&registry, &spec());
    let sc = scenario();
    assert_eq!(sc.services.len(), plain.services.len() + 8);
    for (a, b) in plain.outages.iter().zip(&sc.outages) {
        assert_eq!(
            (a.service, a.start, a.minutes),
            (b.service, b.start, b.minutes)
        );
    }
    for i in 0..plain.services.len() {
        assert_eq!(plain.traffic(i).counts, sc.traffic(i).counts, "service {i}");
    }
    let ids: Vec<&str> = sc.services[4..].iter().map(|s| s.id.as_str()).collect();
    assert!(ids.iter().all(|id| id.starts_with("hard-")), "{ids:?}");
}

#[test]
fn a_recurring_burst_service_bursts_4_to_12_times_a_day_from_its_start_and_never_before() {
    let sc = scenario();
    let h = case(&sc, "recur");
    let Kind::Recurring { from, .. } = h.kind else {
        unreachable!()
    };
    let injected = sc.traffic(h.service).injected;
    let i0 = minute(&sc, from);
    assert!(injected[..i0].iter().all(|&x| x == 0), "no burst before D");
    // Bursts are runs of extra reports; a lull of under 25 minutes inside
    // one (bursts are at least 30 apart) does not split it.
    let mut starts = Vec::new();
    let mut last = None;
    for (m, &x) in injected.iter().enumerate().skip(i0) {
        if x > 0 {
            if last.is_none_or(|l| m - l >= 25) {
                starts.push(m);
            }
            last = Some(m);
        }
    }
    let days = (sc.minutes - i0) / 1440;
    assert!(days >= 7, "a week or more of the pattern: {days} days");
    for d in 0..days {
        let day = i0 + d * 1440..i0 + (d + 1) * 1440;
        let n = starts.iter().filter(|&&m| day.contains(&m)).count();
        assert!((4..=12).contains(&n), "day {} has {n} bursts", d + 1);
    }
}

#[test]
fn a_step_multiplies_the_level_by_its_factor() {
    let sc = scenario();
    let h = case(&sc, "step");
    let Kind::Step { at, factor } = h.kind else {
        unreachable!()
    };
    let counts = sc.traffic(h.service).counts;
    // Whole weeks on either side, so the daily and weekly cycles cancel.
    let i0 = minute(&sc, at);
    let week = 7 * 1440;
    assert!(i0 >= week && i0 + week <= sc.minutes, "a week each side");
    let before: u64 = counts[i0 - week..i0].iter().sum();
    let after: u64 = counts[i0..i0 + week].iter().sum();
    let ratio = after as f64 / before as f64;
    assert!((3.0..=50.0).contains(&factor), "{factor}");
    assert!((ratio / factor - 1.0).abs() < 0.25, "{ratio} vs {factor}");
}

#[test]
fn a_new_service_has_no_reports_before_its_start() {
    let sc = scenario();
    let h = case(&sc, "new");
    let Kind::New { first } = h.kind else {
        unreachable!()
    };
    let counts = sc.traffic(h.service).counts;
    let i0 = minute(&sc, first);
    assert!(first >= sc.start + 7 * DAY, "after the warm-up");
    assert!(counts[..i0].iter().all(|&c| c == 0));
    assert!(
        counts[i0..i0 + 60].iter().sum::<u64>() > 0,
        "then it has reports"
    );
    let outage = sc.outages.iter().find(|o| o.service == h.service).unwrap();
    assert!(
        outage.start >= first + 3 * DAY,
        "its outage comes 3 days in"
    );
}

#[test]
fn a_gap_has_no_reports_for_its_hour_and_traffic_as_usual_around_it() {
    let sc = scenario();
    let h = case(&sc, "gap");
    let Kind::Gap { from, minutes } = h.kind else {
        unreachable!()
    };
    let counts = sc.traffic(h.service).counts;
    let i0 = minute(&sc, from);
    let i1 = i0 + minutes as usize;
    assert_eq!(minutes, 60);
    assert!(counts[i0..i1].iter().all(|&c| c == 0));
    assert!(counts[i0 - 60..i0].iter().sum::<u64>() > 0);
    assert!(counts[i1..i1 + 60].iter().sum::<u64>() > 0);
}

#[test]
fn a_quiet_services_outage_adds_10_to_40_reports_within_its_minutes() {
    let sc = scenario();
    let quiet: Vec<_> = sc
        .hard
        .iter()
        .filter(|h| h.kind.name() == "quiet")
        .collect();
    assert_eq!(quiet.len(), 3);
    for h in quiet {
        let Kind::Quiet { start, extra } = &h.kind else {
            unreachable!()
        };
        let rate = sc.services[h.service].per_minute;
        assert!((0.005..=0.05).contains(&rate), "{rate}");
        assert!((15..=180).contains(&extra.len()));
        let injected = sc.traffic(h.service).injected;
        let i0 = minute(&sc, *start);
        let total: u64 = injected.iter().sum();
        let inside: u64 = injected[i0..i0 + extra.len()].iter().sum();
        assert!((10..=40).contains(&total), "{total}");
        assert_eq!(inside, total, "all of them inside the outage");
    }
}

#[test]
fn a_recurring_services_incidents_are_counted_by_day_of_its_pattern() {
    let at = |day: i64, hour: i64| SeenIncident {
        service: 0,
        opened: 1_000_000 + day * DAY + hour * 3600,
        confirmed: None,
        ended: None,
        reports: 0,
        why: String::new(),
        window: String::new(),
    };
    let r = RecurringScore {
        service: "hard-recur-1".into(),
        from: 1_000_000,
        bursts: 40,
        incidents: vec![at(0, 1), at(0, 9), at(1, 23), at(2, 0), at(6, 5)],
    };
    assert_eq!(r.opened_by_day(), [2, 1, 2]);
    assert_eq!(r.late().count(), 2);
}
