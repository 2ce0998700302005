//! The detector over whole weeks of minutes, for the shapes of traffic that
//! decide whether its incidents can be trusted: a new pattern that recurs,
//! a lasting step, a long outage. Each test runs [`SeriesDetector`] minute
//! by minute, as the simulator does, and counts the lifecycle's events.

use super::lifecycle::Event;
use super::series::SeriesDetector;
use crate::config::{DetectSettings, Settings};

const DAY_MINUTES: usize = 1440;

/// A small deterministic generator, so the tests need no seed file.
struct Draws(u64);

impl Draws {
    fn uniform(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Poisson by inversion (the means here are small).
    fn poisson(&mut self, mean: f64) -> f64 {
        let (mut k, mut p) = (0.0, (-mean).exp());
        let (mut cdf, u) = (p, self.uniform());
        while u > cdf && k < 10_000.0 {
            k += 1.0;
            p *= mean / k;
            cdf += p;
        }
        k
    }
}

/// About `per_minute` reports a minute with a daily wave.
fn usual(minute: usize, per_minute: f64) -> f64 {
    let phase = minute as f64 / DAY_MINUTES as f64 * std::f64::consts::TAU;
    per_minute * (1.0 + 0.5 * phase.sin())
}

/// Runs the detector over `days` of minutes whose mean is `rate(minute)`,
/// and returns the minute of every event.
fn events(days: usize, s: &DetectSettings, rate: impl Fn(usize) -> f64) -> Vec<(usize, Event)> {
    let mut draws = Draws(7);
    let mut d = SeriesDetector::new(0, 60, s);
    let mut out = Vec::new();
    for m in 0..days * DAY_MINUTES {
        let count = draws.poisson(rate(m));
        if let Some(e) = d.push(count).event {
            out.push((m, e));
        }
    }
    out
}

/// The events of `days` of about `per_minute` reports a minute, `factor`
/// times that from minute `step` on, under the default settings.
fn stepped(days: usize, per_minute: f64, step: usize, factor: f64) -> Vec<(usize, Event)> {
    let s = Settings::defaults().detect;
    events(days, &s, |m| {
        usual(m, per_minute) * if m >= step { factor } else { 1.0 }
    })
}

/// The minutes of every `event` from `from` on.
fn minutes_of(event: Event, events: &[(usize, Event)], from: usize) -> Vec<usize> {
    events
        .iter()
        .filter(|(m, e)| *m >= from && *e == event)
        .map(|(m, _)| *m)
        .collect()
}

fn opened_from(events: &[(usize, Event)], from: usize) -> Vec<usize> {
    minutes_of(Event::Opened, events, from)
}

#[test]
fn a_recurring_burst_pattern_is_one_incident_and_news_on_its_first_two_days_only() {
    let s = Settings::defaults().detect;
    let start = 21 * DAY_MINUTES;
    // From day 21, eight half-hour bursts a day at 50x, at times that
    // differ from day to day.
    let mut bursts = Vec::new();
    let mut draws = Draws(11);
    for day in 21..33 {
        for _ in 0..8 {
            let at = day * DAY_MINUTES + (draws.uniform() * (DAY_MINUTES - 30) as f64) as usize;
            bursts.push(at);
        }
    }
    let events = events(33, &s, |m| {
        let burst = bursts.iter().any(|&b| (b..b + 30).contains(&m));
        usual(m, 1.0) * if burst { 50.0 } else { 1.0 }
    });
    let opened = opened_from(&events, start);
    assert_eq!(opened.len(), 1, "one feed entry: {opened:?}");
    let news_after_day_two: Vec<usize> = events
        .iter()
        .filter(|(m, e)| {
            *m >= start + 2 * DAY_MINUTES && matches!(e, Event::Opened | Event::Reopened)
        })
        .map(|(m, _)| *m)
        .collect();
    assert!(news_after_day_two.is_empty(), "{news_after_day_two:?}");
}

#[test]
fn a_fifty_fold_step_that_stays_opens_one_incident() {
    let step = 21 * DAY_MINUTES + 600;
    let events = stepped(30, 0.5, step, 50.0);
    let opened = opened_from(&events, 0);
    assert_eq!(opened.len(), 1, "{opened:?}");
    assert!(opened[0] >= step && opened[0] < step + 10, "{opened:?}");
}

#[test]
fn a_six_hour_outage_stays_one_incident() {
    let s = Settings::defaults().detect;
    let onset = 21 * DAY_MINUTES + 300;
    let end = onset + 6 * 60;
    let events = events(23, &s, |m| {
        usual(m, 2.0) * if (onset..end).contains(&m) { 6.0 } else { 1.0 }
    });
    let opened = opened_from(&events, 0);
    assert!(opened.len() == 1 && opened[0] < onset + 5, "{events:?}");
    // Open from its first minutes to its end: resolved once, after it.
    let resolved: Vec<usize> = events
        .iter()
        .filter(|(_, e)| *e == Event::Resolved)
        .map(|(m, _)| *m)
        .collect();
    assert_eq!(resolved.len(), 1, "{events:?}");
    assert!(resolved[0] >= end, "{events:?}");
}

#[test]
fn a_quiet_services_twenty_five_extra_reports_in_half_an_hour_are_a_problem() {
    let s = Settings::defaults().detect;
    // About 30 reports a day; then 25 more within 30 minutes.
    let onset = 21 * DAY_MINUTES + 700;
    let events = events(22, &s, |m| {
        let extra = if (onset..onset + 30).contains(&m) {
            25.0 / 30.0
        } else {
            0.0
        };
        usual(m, 0.02) + extra
    });
    let confirmed = minutes_of(Event::Confirmed, &events, onset);
    assert!(
        confirmed.first().is_some_and(|&m| m < onset + 40),
        "{events:?}"
    );
    let before: Vec<&(usize, Event)> = events.iter().filter(|(m, _)| *m < onset).collect();
    assert!(before.is_empty(), "nothing before it: {before:?}");
}

/// A quiet service's surge of hours is a `problem` by the end of the hour
/// after it: about 70 reports a day, then three hours at 5x (never more
/// than about 15 in an hour where 3 are usual), at six hours of the day.
/// Found at five of them; the one left out starts near the day's lowest
/// hour, where 5x is 20 extra reports in three hours (the 12-hour window
/// at 2x this detector had before found three of the six).
#[test]
fn a_quiet_services_surge_of_three_hours_at_five_times_its_usual_is_a_problem() {
    let s = Settings::defaults().detect;
    let mut missed = Vec::new();
    for k in 0..6 {
        let onset = (21 + k) * DAY_MINUTES + k * 230;
        let end = onset + 180;
        let events = events(22 + k, &s, |m| {
            usual(m, 0.05) * if (onset..end).contains(&m) { 5.0 } else { 1.0 }
        });
        let found = minutes_of(Event::Confirmed, &events, onset)
            .first()
            .copied();
        if found.is_none_or(|m| m >= end + 60) {
            missed.push(onset % DAY_MINUTES);
        }
    }
    assert!(missed.len() <= 1, "missed at minutes of the day {missed:?}");
}

/// A step the sustained window finds within 6 hours (4.5x on a service of
/// about 40 reports a day, never enough in an hour for the minute windows)
/// stays one incident: the window goes blind while the incident fills half
/// of it, and when it sees the rise again that reopens the incident, once,
/// for the rest of the day (the masking limit is not started again).
#[test]
fn a_step_on_a_quiet_service_opens_one_incident_and_reopens_it_at_most_once() {
    let step = 21 * DAY_MINUTES + 400;
    let events = stepped(23, 0.03, step, 4.5);
    let opened = opened_from(&events, 0);
    let found = step..step + 6 * 60;
    assert!(
        opened.len() == 1 && found.contains(&opened[0]),
        "{events:?}"
    );
    let reopened = events.iter().filter(|(_, e)| *e == Event::Reopened);
    assert!(reopened.count() <= 1, "{events:?}");
}
