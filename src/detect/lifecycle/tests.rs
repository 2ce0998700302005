//! Unit tests of an incident's life: opening, confirming and resolving,
//! what reopens the last incident (a relapse, a confirmed problem's, the
//! sustained window seeing the rise again) and with which masking limit,
//! and that older stored states load.

use super::*;
use crate::config::Settings;

fn settings() -> DetectSettings {
    Settings::defaults().detect
}

/// Runs an incident of `rise` hit every minute from 0 to `last_hit`,
/// then to its resolution; returns when it resolved.
fn resolved(l: &mut Lifecycle, last_hit: i64, rise: Rise, s: &DetectSettings) -> i64 {
    let mut t = 0;
    while t <= last_hit || l.open.is_some() {
        l.tick(t, t <= last_hit, 20.0, rise, s);
        t += 60;
    }
    t - 60
}

#[test]
fn possible_then_problem_then_resolved_after_the_quiet_period() {
    let s = settings();
    let mut l = Lifecycle::default();
    assert_eq!(l.tick(0, false, 0.0, Rise::BURST, &s), None);
    let opened = l.tick(60, true, 20.0, Rise::BURST, &s);
    assert_eq!(opened, Some(Event::Opened));
    assert_eq!(l.open.as_ref().unwrap().severity, Status::Possible);
    let confirmed = l.tick(120, true, 30.0, Rise::BURST, &s);
    assert_eq!(confirmed, Some(Event::Confirmed));
    let mut t = 120;
    let mut events = vec![];
    while l.open.is_some() {
        t += 60;
        events.extend(l.tick(t, false, 0.0, Rise::BURST, &s));
    }
    assert_eq!(events, vec![Event::Resolved]);
    assert_eq!(t - 120, i64::from(s.quiet_mins) * 60);
}

/// A hit within `reopen_mins` of the resolution (to the second) reopens
/// the same incident; later, it is a new one.
#[test]
fn a_relapse_soon_after_reopens_the_same_incident() {
    let s = settings();
    let reopen = i64::from(s.reopen_mins) * 60;
    for (after, event) in [
        (60, Event::Reopened),
        (reopen, Event::Reopened),
        (reopen + 1, Event::Opened),
    ] {
        let mut l = Lifecycle::default();
        let t = resolved(&mut l, 0, Rise::BURST, &s);
        assert_eq!(
            l.relapse(t + after, Rise::BURST, &s),
            event == Event::Reopened
        );
        assert_eq!(l.tick(t + after, true, 20.0, Rise::BURST, &s), Some(event));
        assert_eq!(
            l.open.as_ref().unwrap().started_at == 0,
            event == Event::Reopened
        );
    }
}

#[test]
fn a_confirmed_problem_that_relapses_is_still_a_problem() {
    let s = settings();
    let mut l = Lifecycle::default();
    let t = resolved(&mut l, 60, Rise::BURST, &s);
    assert_eq!(l.last_severity, Some(Status::Problem));
    let reopened = l.tick(t + 60, true, 20.0, Rise::BURST, &s);
    assert_eq!(reopened, Some(Event::Reopened));
    assert_eq!(l.open.as_ref().unwrap().severity, Status::Problem);
    let again = l.tick(t + 120, true, 20.0, Rise::BURST, &s);
    assert_eq!(again, None, "not confirmed a second time");
}

/// An incident that masked half the sustained window blinded it, so the
/// window's own hit within `sustained_hours` of the resolution is the
/// same rise seen again (a lasting step): it reopens the incident with
/// the masking limit it had. A burst then, a hit later, or the window's
/// hit after an incident too short to blind it, is a new incident.
#[test]
fn the_sustained_window_seeing_the_rise_again_is_a_relapse() {
    let s = settings();
    let hours = i64::from(s.sustained_hours) * 3600;
    let limit = i64::from(s.mask_max_hours) * 3600;
    assert!(hours > i64::from(s.reopen_mins) * 60);
    // Hit for half the window, or for 10 minutes.
    let (blinding, short) = (hours / 2, 600);
    let cases = [
        (blinding, Rise::SUSTAINED, hours, Event::Reopened),
        (blinding, Rise::BURST, hours, Event::Opened),
        (blinding, Rise::SUSTAINED, hours + 1, Event::Opened),
        (short, Rise::SUSTAINED, hours / 2, Event::Opened),
    ];
    for (last_hit, rise, after, event) in cases {
        let mut l = Lifecycle::default();
        let t = resolved(&mut l, last_hit, Rise::SUSTAINED, &s);
        let at = t + after;
        assert_eq!(
            l.tick(at, true, 20.0, rise, &s),
            Some(event),
            "{last_hit} {rise:?} {after}"
        );
        let open = l.open.as_ref().unwrap();
        assert_eq!(open.started_at == 0, event == Event::Reopened);
        // What it masks begins at its reopening and ends where the
        // first opening's limit did, so a reopening past that masks
        // nothing and the window goes on seeing the rise.
        assert_eq!(open.masked_from(), at);
        let until = if event == Event::Reopened {
            limit
        } else {
            at + limit
        };
        assert_eq!(open.masked_until(&s), until, "{last_hit} {rise:?} {after}");
        assert_eq!(l.masks(at, &s), at < until);
    }
}

/// A reopened incident is judged blinding by everything its limit
/// covered: a second relapse keeps the first opening's limit too.
#[test]
fn a_second_sustained_relapse_keeps_the_first_limit() {
    let s = settings();
    let hours = i64::from(s.sustained_hours) * 3600;
    let mut l = Lifecycle::default();
    let t = resolved(&mut l, hours / 2, Rise::SUSTAINED, &s);
    let mut at = t + hours - 60;
    assert_eq!(
        l.tick(at, true, 20.0, Rise::SUSTAINED, &s),
        Some(Event::Reopened)
    );
    while l.open.is_some() {
        at += 60;
        l.tick(at, false, 0.0, Rise::SUSTAINED, &s);
    }
    assert_eq!(l.last_blinded, Some(0));
    assert_eq!(
        l.tick(at + 60, true, 20.0, Rise::SUSTAINED, &s),
        Some(Event::Reopened)
    );
    assert_eq!(l.open.as_ref().unwrap().limit_from, Some(0));
}

#[test]
fn a_state_stored_before_the_sustained_relapse_still_loads() {
    let mut l = Lifecycle::default();
    let s = settings();
    l.tick(0, true, 20.0, Rise::BURST, &s);
    let mut json = serde_json::to_value(&l).unwrap();
    json.as_object_mut().unwrap().remove("last_blinded");
    json["open"].as_object_mut().unwrap().remove("limit_from");
    let loaded: Lifecycle = serde_json::from_value(json).unwrap();
    assert_eq!(loaded, l);
}
