//! Fixtures shared by the test files: imported history, spikes of live
//! reports, an app with an open incident.

use futures_util::StreamExt;
use outagewatch::detect::Event;
use serde_json::json;

use crate::helpers::{RedisServer, TestApp, address};

/// 29 days of minute counts for `service` ending at `now`: a daily wave
/// around 3 reports a minute.
pub fn history(service: &str, now: i64) -> String {
    shaped_history(service, now, |_| 1.0)
}

/// The history's daily wave at `minute`: 1 to 5 reports a minute, 5 at 06:00
/// UTC and 1 at 18:00.
pub fn wave(minute: i64) -> f64 {
    let hour = (minute.rem_euclid(1440) / 60) as f64;
    3.0 + 2.0 * (hour / 24.0 * std::f64::consts::TAU).sin()
}

/// Like [`history`], each minute's count times `level(minute)`.
pub fn shaped_history(service: &str, now: i64, level: impl Fn(i64) -> f64) -> String {
    let last = now.div_euclid(60) - 1;
    let mut out = String::new();
    for minute in (last - 29 * 1440)..=last {
        // A fixed pseudo-random wobble, so the series is not flat.
        let wobble = ((minute * 7919).rem_euclid(5)) as f64 - 2.0;
        let count = ((wave(minute) + wobble * 0.5) * level(minute))
            .round()
            .max(0.0) as u64;
        if count > 0 {
            out.push_str(&format!(
                "{{\"service\":\"{service}\",\"at\":{},\"count\":{count},\"problem\":\"app\"}}\n",
                minute * 60
            ));
        }
    }
    out
}

/// `reports` login reports for `service`, each from its own network and
/// reporter (`tag-i`), all answered 202.
pub async fn spike(app: &TestApp, service: &str, reports: usize, tag: &str) {
    let answers: Vec<u16> = futures_util::stream::iter(0..reports)
        .map(|i| async move {
            let (status, _) = app
                .report_from(&address(i), &json!({"service": service, "problem": "login", "country": "BR", "client_id": format!("{tag}-{i}")}))
                .await;
            status
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert!(answers.iter().all(|s| *s == 202), "{answers:?}");
}

/// An app with 29 days of WhatsApp history and an open incident.
pub async fn app_with_incident(redis: &RedisServer) -> (TestApp, outagewatch::worker::Worker, i64) {
    let app = TestApp::with_redis(redis).await;
    let now = chrono::Utc::now().timestamp();
    let (status, body) = app.import(history("whatsapp", now)).await;
    assert_eq!(status, 200, "{body}");
    let mut worker = app.worker();
    worker.step(now).await.expect("tick");
    spike(&app, "whatsapp", 150, "web").await;
    // The minute after the spike's, read after it: the import may have
    // taken the clock past `now`'s minute (this was a flake at its turn).
    let after = chrono::Utc::now().timestamp();
    let tick = worker.step(after + 60).await.expect("tick");
    assert!(
        tick.events
            .contains(&("whatsapp".to_string(), Event::Opened)),
        "{tick:?}"
    );
    (app, worker, now)
}
