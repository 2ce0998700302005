//! Unit tests of the tick's judging and advancing: what teaches a pattern
//! of recurring bursts and what does not, and that older stored states load.

use super::*;

/// A pattern's rises that calibration has learned (calibrated below
/// the alert, raw above it) keep the pattern remembered; a rise the raw
/// tail calls a hit but of no remembered kind starts nothing.
#[test]
fn a_learned_burst_of_a_remembered_kind_keeps_the_pattern_alive() {
    use crate::config::Settings;
    use crate::detect::baseline::DAY;
    let s = Settings::defaults().detect;
    let alert = s.alert_surprise();
    let quiet = i64::from(s.quiet_mins) * 60;
    let burst = |calibrated: f64| {
        let mut w = WindowJudgement::for_test(300, 100.0, 2.0, calibrated);
        w.raw_surprise = 3.0 * alert;
        let mut windows = [None; WINDOWS];
        windows[0] = Some(w);
        Judgement {
            windows,
            chosen: Some(0),
            rise: Rise::BURST,
        }
    };
    let counts = counts(&burst(0.0).windows);
    let share_at = |learned_at: Option<i64>, remembered: bool| {
        let mut state = SeriesState::default();
        if remembered {
            for at in [DAY / 2, 3 * DAY / 2, 7 * DAY / 4, 2 * DAY] {
                advance(&mut state, &burst(2.0 * alert), at, 300, HIT, &s);
            }
        }
        if let Some(at) = learned_at {
            let learned = Decided { hit: false, ..HIT };
            advance(&mut state, &burst(alert / 2.0), at, 300, learned, &s);
        }
        state
            .recurrence
            .share(3 * DAY + DAY / 4, counts, 300, quiet)
    };
    assert!(share_at(Some(12 * DAY / 5), true) > 0.0, "kept alive");
    assert_eq!(share_at(None, true), 0.0, "lapsed without it");
    assert_eq!(
        share_at(Some(12 * DAY / 5), false),
        0.0,
        "no pattern to keep"
    );
}

/// A hit in a window that enough networks reported.
const HIT: Decided = Decided {
    hit: true,
    supported: true,
    learn: false,
};

/// Bursts that one network made (too few distinct networks for a hit)
/// are no episodes: they teach no pattern that could later hide a real
/// outage of their size.
#[test]
fn bursts_of_too_few_networks_teach_no_pattern() {
    use crate::config::Settings;
    use crate::detect::baseline::DAY;
    let s = Settings::defaults().detect;
    let alert = s.alert_surprise();
    let quiet = i64::from(s.quiet_mins) * 60;
    let mut w = WindowJudgement::for_test(300, 100.0, 2.0, 2.0 * alert);
    w.raw_surprise = 2.0 * alert;
    let mut windows = [None; WINDOWS];
    windows[0] = Some(w);
    let burst = Judgement {
        windows,
        chosen: Some(0),
        rise: Rise::BURST,
    };
    assert!(may_be_episode(&burst, &s));
    let taught = |supported: bool| {
        let mut state = SeriesState::default();
        for at in [DAY / 2, 3 * DAY / 2, 7 * DAY / 4, 2 * DAY] {
            let decided = Decided {
                hit: supported,
                supported,
                learn: false,
            };
            advance(&mut state, &burst, at, 300, decided, &s);
        }
        let counts = counts(&burst.windows);
        state
            .recurrence
            .share(2 * DAY + DAY / 4, counts, 300, quiet)
    };
    assert!(taught(true) > 0.0, "supported bursts are a pattern");
    assert_eq!(taught(false), 0.0, "one network's bursts are none");
}

#[test]
fn a_state_stored_before_the_sustained_window_still_loads() {
    let mut json: serde_json::Value = serde_json::to_value(SeriesState::default()).unwrap();
    json.as_object_mut().unwrap().remove("sustained");
    let state: SeriesState = serde_json::from_value(json).unwrap();
    assert_eq!(state, SeriesState::default());
    assert!(state.sustained.is_none());
}
