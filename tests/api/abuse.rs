//! What one client can do to the numbers and to the server, tried as an
//! attacker would: each test is one attack, and what outagewatch must
//! answer to it.

use crate::helpers::TestApp;

/// The span of a history export is the range asked for: a step of years
/// from today's midnight (one row, the span read far past `to`) took 700 MB
/// of memory for a 58-byte answer. Now it is refused, naming the limit.
#[tokio::test]
async fn a_history_export_cannot_read_past_its_range() {
    let app = TestApp::embedded().await;
    let midnight = chrono::Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    let days = midnight.and_utc().timestamp() / 86_400;
    let from = midnight.format("%Y-%m-%dT%H:%M:%SZ");
    for step in [format!("{days}d"), format!("{}d", days / 2), "1441m".into()] {
        let path = format!("/api/v1/services/whatsapp/history.csv?from={from}&step={step}");
        let (status, body) = app.get(&path).await;
        // Even 1441 minutes is more than the span since today's midnight.
        assert_eq!(status, 400, "{step}: {body}");
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("step must not exceed the span"), "{body}");
    }
    // A step within the span still answers (one minute is, at any hour).
    let path = format!("/api/v1/services/whatsapp/history.csv?from={from}&step=1m");
    assert_eq!(app.get(&path).await.0, 200);
    app.stop().await;
}

/// Made-up methods are one metrics label: 300 requests with 300 methods
/// added 4,500 series to /metrics before.
#[tokio::test]
async fn made_up_methods_do_not_grow_the_metrics() {
    let app = TestApp::embedded().await;
    let series = |text: &str| {
        text.lines()
            .filter(|l| l.starts_with("outagewatch_http_request_duration_seconds_count"))
            .count()
    };
    let send = |method: String, path: &'static str| {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        app.client.request(method, app.url(path)).send()
    };
    send("BREW0".into(), "/api/v1/services")
        .await
        .expect("request");
    let before = series(&app.metrics_text().await);
    for k in 1..300 {
        let path = if k % 2 == 0 {
            "/api/v1/services"
        } else {
            "/nowhere"
        };
        let response = send(format!("BREW{k}"), path).await.expect("request");
        let status = response.status().as_u16();
        assert!(status == 405 || status == 404, "{status}");
    }
    let text = app.metrics_text().await;
    assert!(
        series(&text) <= before + 2,
        "{} series after, {before} before",
        series(&text)
    );
    assert!(
        !text.contains("BREW"),
        "no method of a client's in the labels"
    );
    assert!(text.contains(r#"method="other""#));
    app.stop().await;
}
