//! Reporters that cannot be multiplied: a quiet service with four weeks of
//! history imported, reports posted from one address, one network or many
//! networks, the worker stepped by hand, against a real Redis. A client can
//! make up client_ids and addresses inside its own network at will; the
//! counts (at most `intake.max_counted_per_network` per network and clock
//! window of `intake.dedup_window_secs`) and the
//! detector's floor (`detect.min_networks`) rest on networks.

use futures_util::StreamExt;
use outagewatch::config::Settings;
use outagewatch::detect::Event;
use serde_json::{Value, json};

use crate::helpers::{RedisServer, TestApp, address, test_settings};

const SERVICE: &str = "fastmail";

/// 29 days of a quiet service ending at `now`: one report in about three
/// minutes of ten, the rest none.
fn quiet_history(now: i64) -> String {
    let last = now.div_euclid(60) - 1;
    let mut out = String::new();
    for minute in (last - 29 * 1440)..=last {
        if (minute.wrapping_mul(2_654_435_761)).rem_euclid(10) < 3 {
            out.push_str(&format!(
                "{{\"service\":\"{SERVICE}\",\"at\":{},\"count\":1,\"problem\":\"app\"}}\n",
                minute * 60
            ));
        }
    }
    out
}

/// The app on `redis` with `tweak` applied, the quiet history imported, and
/// a worker that has judged the history without opening anything.
async fn quiet_service(
    redis: &RedisServer,
    tweak: impl FnOnce(&mut Settings),
) -> (TestApp, outagewatch::worker::Worker) {
    let mut settings = test_settings(Some(&redis.url()));
    tweak(&mut settings);
    let app = TestApp::spawn(settings).await;
    let now = chrono::Utc::now().timestamp();
    let (status, body) = app.import(quiet_history(now)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rejected_count"], 0, "{body}");
    let mut worker = app.worker();
    let tick = worker.step(now).await.expect("tick");
    assert!(tick.events.is_empty(), "{tick:?}");
    (app, worker)
}

/// How many of the posted reports counted, and how many one network may
/// count over the clock windows of `intake.dedup_window_secs` their buckets
/// fell in: its cap in each window, or fewer where fewer posts fell there
/// (a run that crosses a window's end sees two).
struct Counted {
    counted: usize,
    allowed: usize,
}

/// Posts one login report per `(address, client_id)`, 64 at a time; all
/// must be accepted.
async fn post_all(app: &TestApp, posts: Vec<(String, Option<String>)>) -> Counted {
    let answers: Vec<(u16, Value)> = futures_util::stream::iter(posts)
        .map(|(from, client_id)| async move {
            let mut body = json!({"service": SERVICE, "problem": "login"});
            if let Some(id) = client_id {
                body["client_id"] = json!(id);
            }
            app.report_from(&from, &body).await
        })
        .buffer_unordered(64)
        .collect()
        .await;
    assert!(answers.iter().all(|(s, _)| *s == 202), "{answers:?}");
    let window = app.settings.intake.dedup_window_secs as i64;
    let cap = app.settings.intake.max_counted_per_network as usize;
    let mut per_window: std::collections::BTreeMap<i64, usize> = Default::default();
    for (_, body) in &answers {
        let bucket = body["bucket"].as_str().expect("bucket");
        let at = chrono::DateTime::parse_from_rfc3339(bucket).expect("rfc3339");
        *per_window
            .entry(at.timestamp().div_euclid(window))
            .or_default() += 1;
    }
    Counted {
        counted: answers
            .iter()
            .filter(|(_, body)| body["counted"] == true)
            .count(),
        allowed: per_window.values().map(|&posts| posts.min(cap)).sum(),
    }
}

/// Steps the worker past the minute of the reports; the events of that
/// tick and what the breakdown of the last 15 minutes says.
async fn judged(app: &TestApp, worker: &mut outagewatch::worker::Worker) -> (Vec<Event>, Value) {
    let after = chrono::Utc::now().timestamp();
    let tick = worker.step(after + 60).await.expect("tick");
    let events = tick
        .events
        .into_iter()
        .filter(|(s, _)| s == SERVICE)
        .map(|(_, e)| e)
        .collect();
    let (status, breakdown) = app
        .get(&format!("/api/v1/services/{SERVICE}/breakdown?window=15m"))
        .await;
    assert_eq!(status, 200, "{breakdown}");
    (events, breakdown)
}

/// A HyperLogLog estimate within 3% of `exact`.
fn about(estimate: &Value, exact: u64) -> bool {
    let e = estimate.as_u64().unwrap_or(0) as f64;
    (e - exact as f64).abs() <= 0.03 * exact as f64
}

fn feed_of_service(feed: &Value) -> Vec<Value> {
    feed["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|a| a["service"] == SERVICE)
        .cloned()
        .collect()
}

#[tokio::test]
async fn five_thousand_client_ids_from_one_address_count_five_and_open_nothing() {
    let redis = RedisServer::start().expect("redis-server");
    // The per-address rate limit stays off (as in every test app): it
    // would refuse most of these, and the counting must hold without it.
    let (app, mut worker) = quiet_service(&redis, |_| {}).await;
    let cap = app.settings.intake.max_counted_per_network as usize;
    let posts = (0..5_000)
        .map(|k| ("203.0.113.9".to_string(), Some(format!("made-up-{k}"))))
        .collect();
    let posted = post_all(&app, posts).await;
    assert_eq!(
        posted.counted, posted.allowed,
        "one network counts {cap} an hour"
    );
    assert!((cap..=2 * cap).contains(&posted.counted));
    let (events, breakdown) = judged(&app, &mut worker).await;
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(breakdown["distinct_networks"], 1, "{breakdown}");
    assert!(
        about(&breakdown["distinct_reporters"], 5_000),
        "{breakdown}"
    );
    let (_, feed) = app.get("/api/v1/anomalies").await;
    assert!(feed_of_service(&feed).is_empty(), "{feed}");
    app.stop().await;
}

#[tokio::test]
async fn two_hundred_addresses_of_one_network_count_five_and_open_nothing() {
    let redis = RedisServer::start().expect("redis-server");
    let (app, mut worker) = quiet_service(&redis, |_| {}).await;
    let cap = app.settings.intake.max_counted_per_network as usize;
    // No client_id: each address is a reporter of its own.
    let posts = (1..=200)
        .map(|k| (format!("198.51.100.{k}"), None))
        .collect();
    let posted = post_all(&app, posts).await;
    assert_eq!(posted.counted, posted.allowed);
    assert!((cap..=2 * cap).contains(&posted.counted));
    let (events, breakdown) = judged(&app, &mut worker).await;
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(breakdown["distinct_networks"], 1, "{breakdown}");
    assert!(about(&breakdown["distinct_reporters"], 200), "{breakdown}");
    app.stop().await;
}

/// The floor on its own: with the per-network cap lifted, 300 counted
/// reports of one IPv6 /48 are a 100-fold rise of a quiet service, and
/// still open nothing: they come from one network.
#[tokio::test]
async fn one_network_opens_nothing_even_when_all_its_reports_count() {
    let redis = RedisServer::start().expect("redis-server");
    let (app, mut worker) = quiet_service(&redis, |s| {
        s.intake.max_counted_per_network = 1_000_000;
    })
    .await;
    let posts = (1..=300)
        .map(|k| (format!("2001:db8:7:{k:x}::1"), None))
        .collect();
    assert_eq!(post_all(&app, posts).await.counted, 300);
    let (events, breakdown) = judged(&app, &mut worker).await;
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(breakdown["distinct_networks"], 1, "{breakdown}");
    app.stop().await;
}

#[tokio::test]
async fn three_hundred_reports_from_three_hundred_networks_open_one_incident() {
    let redis = RedisServer::start().expect("redis-server");
    let (app, mut worker) = quiet_service(&redis, |_| {}).await;
    let posts = (0..300)
        .map(|i| (address(i), Some(format!("person-{i}"))))
        .collect();
    assert_eq!(post_all(&app, posts).await.counted, 300);
    let (events, breakdown) = judged(&app, &mut worker).await;
    assert_eq!(events, [Event::Opened], "{breakdown}");
    assert!(about(&breakdown["distinct_networks"], 300), "{breakdown}");
    let (_, feed) = app.get("/api/v1/anomalies").await;
    let incidents = feed_of_service(&feed);
    assert_eq!(incidents.len(), 1, "{feed}");
    let incident = &incidents[0];
    assert!(about(&incident["distinct_networks"], 300), "{incident}");
    assert!(about(&incident["distinct_reporters"], 300), "{incident}");
    app.stop().await;
}
