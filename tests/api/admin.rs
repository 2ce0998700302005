//! History import through the admin endpoint.

use std::fmt::Write;

use chrono::{Duration, SecondsFormat, Utc};
use serde_json::json;

use crate::helpers::{Backend, RedisServer, TestApp, on_each_backend, test_settings};

#[tokio::test]
async fn import_needs_the_bearer_token_and_is_off_without_one() {
    let app = TestApp::embedded().await;
    let line = "{}\n";
    let response = app
        .client
        .post(app.url("/api/v1/admin/import"))
        .body(line)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let response = app
        .client
        .post(app.url("/api/v1/admin/import"))
        .bearer_auth("wrong")
        .body(line)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    app.stop().await;

    let mut settings = test_settings(None);
    settings.admin.token = String::new();
    let disabled = TestApp::spawn(settings).await;
    let (status, body) = disabled.import(line.into()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("admin_disabled"))
    );
    disabled.stop().await;
}

// A test body (run by `on_each_backend!`): unwraps as in a test.
#[allow(clippy::unwrap_used)]
async fn import_adds_counts_and_lists_rejected_lines_with_reasons(backend: Backend) {
    let app = TestApp::on(&backend).await;
    let at = |ago: Duration| (Utc::now() - ago).to_rfc3339_opts(SecondsFormat::Secs, true);
    let lines = [
        json!({"service": "whatsapp", "at": at(Duration::minutes(5)), "count": 30, "problem": "login", "country": "BR"}).to_string(),
        json!({"service": "WA", "at": at(Duration::minutes(5)), "count": 12}).to_string(),
        String::new(),
        json!({"service": "whatsapp", "at": at(Duration::days(-1)), "count": 1}).to_string(),
        json!({"service": "whatsapp", "at": at(Duration::days(60)), "count": 1}).to_string(),
        json!({"service": "myspace", "at": at(Duration::minutes(5)), "count": 1}).to_string(),
        json!({"service": "whatsapp", "at": at(Duration::minutes(5)), "count": -3}).to_string(),
        "{broken".to_string(),
        format!(r#"{{"service":"whatsapp","pad":"{}"}}"#, "x".repeat(5000)),
    ];
    let (status, body) = app.import(lines.join("\n")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 2);
    assert_eq!(body["reports"], 42);
    assert_eq!(body["rejected_count"], 6);
    let reasons: Vec<(u64, String)> = body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().unwrap(),
                r["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expect = [
        (4, "future"),
        (5, "older than"),
        (6, "unknown service"),
        (7, "count"),
        (8, "malformed"),
        (9, "longer than"),
    ];
    for ((line, reason), (want_line, want)) in reasons.iter().zip(expect) {
        assert_eq!(*line, want_line, "{reasons:?}");
        assert!(reason.contains(want), "line {line}: {reason}");
    }
    assert_eq!(app.series_total("whatsapp", "15m").await, 42);
    let (_, breakdown) = app
        .get("/api/v1/services/whatsapp/breakdown?window=15m")
        .await;
    assert_eq!(breakdown["problems"][0]["count"], 30);
    app.stop().await;
}

#[tokio::test]
async fn four_weeks_of_minute_history_imports_in_one_request() {
    let redis = RedisServer::start().expect("redis-server");
    let mut settings = test_settings(Some(&redis.url()));
    settings.import.flush_lines = 5_000;
    let app = TestApp::spawn(settings).await;
    let now = Utc::now();
    let mut body = String::new();
    let minutes = 28 * 1440;
    for m in 1..=minutes {
        let t = (now - Duration::minutes(m)).to_rfc3339_opts(SecondsFormat::Secs, true);
        writeln!(body, r#"{{"service":"netflix","at":"{t}","count":2}}"#).unwrap();
    }
    let (status, summary) = app.import(body).await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["accepted"], minutes);
    let (status, series) = app
        .get("/api/v1/services/netflix/series?window=28d&step=1d")
        .await;
    assert_eq!(status, 200, "{series}");
    let total: u64 = series["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["reports"].as_u64().unwrap())
        .sum();
    // The oldest day of the window may start after the oldest imported minute.
    assert!(
        total >= 2 * (minutes as u64 - 1440) && total <= 2 * minutes as u64,
        "{total}"
    );
    app.stop().await;
}

on_each_backend!(import_adds_counts_and_lists_rejected_lines_with_reasons);
