//! POST /api/v1/reports over real HTTP: answers, counting rules, bad input.

use std::collections::HashMap;

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, address, on_each_backend};

#[tokio::test]
async fn posted_report_shows_up_in_the_series_on_the_embedded_store() {
    let app = TestApp::embedded().await;
    let (status, body) = app
        .report(&json!({"service": "WhatsApp", "problem": "login", "country": "br"}))
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["service"], "whatsapp");
    assert_eq!(body["counted"], true);
    let id = uuid::Uuid::parse_str(body["id"].as_str().unwrap()).unwrap();
    assert_eq!(id.get_version_num(), 7);
    assert!(body["bucket"].as_str().unwrap().ends_with(":00Z"));
    assert_eq!(app.series_total("whatsapp", "10m").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn html_form_post_is_accepted_like_json() {
    let app = TestApp::embedded().await;
    let response = app
        .client
        .post(app.url("/api/v1/reports"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("service=ig&problem=feed&country=&client_id=form-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["service"], "instagram");
    assert_eq!(body["counted"], true);
    app.stop().await;
}

#[tokio::test]
async fn repeat_from_the_same_reporter_is_accepted_but_not_counted() {
    let app = TestApp::embedded().await;
    let report = json!({"service": "x", "problem": "feed", "client_id": "same"});
    assert_eq!(app.report(&report).await.1["counted"], true);
    assert_eq!(app.report(&report).await.1["counted"], false);
    // Without client_id the reporter is address + User-Agent: the same here.
    let anonymous = json!({"service": "x", "problem": "feed"});
    assert_eq!(app.report(&anonymous).await.1["counted"], true);
    assert_eq!(app.report(&anonymous).await.1["counted"], false);
    assert_eq!(app.series_total("x", "5m").await, 2);
    app.stop().await;
}

#[tokio::test]
async fn retry_with_the_same_idempotency_key_gets_the_same_answer() {
    let app = TestApp::embedded().await;
    let send = || {
        app.client
            .post(app.url("/api/v1/reports"))
            .header("idempotency-key", "retry-1")
            .json(&json!({"service": "slack", "problem": "messaging"}))
            .send()
    };
    let first: Value = send().await.unwrap().json().await.unwrap();
    let second: Value = send().await.unwrap().json().await.unwrap();
    assert_eq!(first, second);
    assert_eq!(app.series_total("slack", "5m").await, 1);
    app.stop().await;
}

struct Bad {
    content_type: Option<&'static str>,
    body: String,
    headers: Vec<(&'static str, String)>,
    status: u16,
    code: &'static str,
}

fn bad(
    content_type: Option<&'static str>,
    body: impl Into<String>,
    status: u16,
    code: &'static str,
) -> Bad {
    Bad {
        content_type,
        body: body.into(),
        headers: Vec::new(),
        status,
        code,
    }
}

#[tokio::test]
async fn each_bad_input_gets_its_status_and_a_problem_json_body() {
    let app = TestApp::embedded().await;
    let json = Some("application/json");
    let mut cases = vec![
        bad(json, "{not json", 400, "malformed_body"),
        bad(json, r#"{"service":"x"}"#, 400, "malformed_body"),
        bad(
            json,
            r#"{"service":1,"problem":"login"}"#,
            400,
            "malformed_body",
        ),
        bad(
            Some("application/x-www-form-urlencoded"),
            "problem=login",
            400,
            "malformed_body",
        ),
        bad(
            json,
            format!(
                r#"{{"service":"x","problem":"feed","pad":"{}"}}"#,
                "a".repeat(5000)
            ),
            413,
            "payload_too_large",
        ),
        bad(
            Some("text/plain"),
            r#"{"service":"x","problem":"feed"}"#,
            415,
            "unsupported_media_type",
        ),
        bad(
            None,
            r#"{"service":"x","problem":"feed"}"#,
            415,
            "unsupported_media_type",
        ),
        bad(
            json,
            r#"{"service":"myspace","problem":"login"}"#,
            422,
            "unknown_service",
        ),
        bad(
            json,
            r#"{"service":"chase","problem":"feed"}"#,
            422,
            "problem_not_allowed",
        ),
        bad(
            json,
            r#"{"service":"chase","problem":"hacked"}"#,
            422,
            "problem_not_allowed",
        ),
        bad(
            json,
            r#"{"service":"x","problem":"feed","country":"XX"}"#,
            422,
            "invalid_country",
        ),
        bad(
            json,
            r#"{"service":"x","problem":"feed","country":"USA"}"#,
            422,
            "invalid_country",
        ),
        bad(
            json,
            format!(
                r#"{{"service":"x","problem":"feed","client_id":"{}"}}"#,
                "c".repeat(129)
            ),
            422,
            "client_id_too_long",
        ),
    ];
    let mut long_key = bad(
        json,
        r#"{"service":"x","problem":"feed"}"#,
        400,
        "invalid_idempotency_key",
    );
    long_key.headers.push(("idempotency-key", "k".repeat(129)));
    cases.push(long_key);
    for case in cases {
        let mut request = app
            .client
            .post(app.url("/api/v1/reports"))
            .body(case.body.clone());
        if let Some(ct) = case.content_type {
            request = request.header("content-type", ct);
        }
        for (name, value) in &case.headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string());
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let what = format!("{} {:?}", case.code, &case.body[..case.body.len().min(60)]);
        assert_eq!(status, case.status, "{what}: {body}");
        assert_eq!(
            content_type.as_deref(),
            Some("application/problem+json"),
            "{what}"
        );
        assert_eq!(body["code"], case.code, "{what}: {body}");
        assert_eq!(body["status"], case.status, "{what}");
        assert!(
            body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{what}"
        );
    }
    let (_, body) = app
        .report(&json!({"service": "chase", "problem": "feed"}))
        .await;
    let allowed: Vec<&str> = body["allowed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        allowed.contains(&"login") && !allowed.contains(&"feed"),
        "{body}"
    );
    assert_eq!(
        app.series_total("x", "5m").await,
        0,
        "nothing rejected was counted"
    );
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains(r#"outagewatch_reports_rejected_total{reason="invalid_country"} 2"#),
        "{metrics}"
    );
    app.stop().await;
}

/// The issue's acceptance check: 10,000 reports over 20 services from
/// distinct client_ids (on as many networks), against a real Redis.
// A test body (run by `on_each_backend!`): unwraps as in a test.
#[allow(clippy::unwrap_used)]
async fn ten_thousand_distinct_reports_sum_to_the_counted_answers_in_redis(backend: Backend) {
    let app = TestApp::on(&backend).await;
    let services: Vec<String> = {
        let (_, body) = app.get("/api/v1/services?limit=20").await;
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(services.len(), 20);
    let send_all = |ids: Vec<usize>| {
        let app = &app;
        let services = &services;
        futures_util::stream::iter(ids)
            .map(move |i| async move {
                let service = &services[i % services.len()];
                let (status, body) = app
                    .report_from(&address(i), &json!({"service": service, "problem": "other", "client_id": format!("client-{i}")}))
                    .await;
                assert_eq!(status, 202, "{body}");
                (service.clone(), body["counted"].as_bool().unwrap())
            })
            .buffer_unordered(64)
            .collect::<Vec<_>>()
    };
    let answers = send_all((0..10_000).collect()).await;
    let mut counted: HashMap<String, u64> = HashMap::new();
    for (service, c) in &answers {
        *counted.entry(service.clone()).or_default() += u64::from(*c);
    }
    assert_eq!(
        counted.values().sum::<u64>(),
        10_000,
        "distinct client_ids all count"
    );
    // Repeats within the dedup window are answered but not added.
    let repeats = send_all((0..2_000).step_by(2).collect()).await;
    assert!(repeats.iter().all(|(_, c)| !c), "repeats are not counted");
    for service in &services {
        assert_eq!(
            app.series_total(service, "10m").await,
            counted[service],
            "{service}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn one_address_past_its_burst_gets_429_with_retry_after_and_others_are_unaffected() {
    let mut settings = crate::helpers::test_settings(None);
    settings.intake.rate_limit_per_minute = 60;
    settings.intake.rate_limit_burst = 3;
    // Lets the test speak for two client addresses.
    settings.http.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    let app = TestApp::spawn(settings).await;
    let post = |from: &'static str, n: usize| {
        app.client
            .post(app.url("/api/v1/reports"))
            .header("x-forwarded-for", from)
            .json(&json!({"service": "whatsapp", "problem": "login", "client_id": format!("{from}-{n}")}))
            .send()
    };
    for (n, left) in ["2", "1", "0"].into_iter().enumerate() {
        let response = post("198.51.100.7", n).await.unwrap();
        assert_eq!(response.status().as_u16(), 202);
        assert_eq!(response.headers()["ratelimit-limit"], "3");
        assert_eq!(response.headers()["ratelimit-remaining"], left);
    }
    let refused = post("198.51.100.7", 3).await.unwrap();
    assert_eq!(refused.status().as_u16(), 429);
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(refused.headers()["ratelimit-remaining"], "0");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited");
    assert_eq!(body["status"], 429);
    // A browser's form post past the limit: the same answer, as a page.
    let page = app
        .client
        .post(app.url("/api/v1/reports"))
        .header("x-forwarded-for", "198.51.100.7")
        .header("accept", "text/html")
        .form(&[("service", "whatsapp"), ("problem", "login")])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 429);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.headers().contains_key("retry-after"));
    assert_eq!(page.headers()["ratelimit-remaining"], "0");

    let other = post("203.0.113.9", 0).await.unwrap();
    assert_eq!(
        other.status().as_u16(),
        202,
        "another address has its own bucket"
    );
    assert_eq!(
        app.series_total("whatsapp", "10m").await,
        4,
        "the refused report is not counted"
    );
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains(r#"outagewatch_reports_rejected_total{reason="rate_limited"} 2"#),
        "{metrics}"
    );
    app.stop().await;
}

on_each_backend!(ten_thousand_distinct_reports_sum_to_the_counted_answers_in_redis);
