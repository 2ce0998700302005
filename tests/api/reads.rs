//! Read endpoints: services, companies, series, breakdown, operations.

use serde_json::{Value, json};

use crate::helpers::{RedisServer, TestApp, address};

#[tokio::test]
async fn services_list_pages_with_a_cursor_and_shows_recent_counts() {
    let app = TestApp::embedded().await;
    app.report(&json!({"service": "discord", "problem": "login", "client_id": "a"}))
        .await;
    let (status, first) = app.get("/api/v1/services?limit=50").await;
    assert_eq!(status, 200);
    let cursor = first["next_cursor"]
        .as_str()
        .expect("more pages")
        .to_string();
    let (_, second) = app
        .get(&format!("/api/v1/services?limit=1000&cursor={cursor}"))
        .await;
    assert!(second["next_cursor"].is_null());
    let all: Vec<&Value> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["items"].as_array().unwrap())
        .collect();
    assert!(all.len() >= 60);
    let ids: Vec<&str> = all.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "sorted, no repeats across pages"
    );
    let discord = all.iter().find(|s| s["id"] == "discord").unwrap();
    assert_eq!(discord["reports_15m"], 1);
    assert_eq!(discord["reports_24h"], 1);
    assert_eq!(discord["status"], "ok");
    let (_, social) = app.get("/api/v1/services?category=social").await;
    assert!(
        social["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["category"] == "social")
    );
    app.stop().await;
}

#[tokio::test]
async fn one_service_by_alias_and_company_with_its_services() {
    let app = TestApp::embedded().await;
    let (status, wa) = app.get("/api/v1/services/WA").await;
    assert_eq!(status, 200);
    assert_eq!(wa["id"], "whatsapp");
    assert_eq!(wa["company"], "meta");
    assert!(wa["open_incident"].is_null());
    let (status, meta) = app.get("/api/v1/companies/meta").await;
    assert_eq!(status, 200);
    let services: Vec<&str> = meta["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        services,
        [
            "facebook",
            "instagram",
            "messenger",
            "threads",
            "whatsapp",
            "whatsapp-business-api"
        ]
    );
    assert_eq!(meta["status"], "ok");
    app.stop().await;
}

#[tokio::test]
async fn unknown_ids_and_bad_parameters_get_problem_json() {
    let app = TestApp::embedded().await;
    let cases = [
        ("/api/v1/services/myspace", 404, "service_not_found"),
        ("/api/v1/services/myspace/series", 404, "service_not_found"),
        (
            "/api/v1/services/myspace/breakdown",
            404,
            "service_not_found",
        ),
        ("/api/v1/companies/enron", 404, "company_not_found"),
        ("/api/v1/nothing", 404, "not_found"),
        (
            // A parameter given twice is ambiguous: refused, not one of them picked.
            "/api/v1/services/x/series?window=1h&window=2h",
            400,
            "invalid_parameter",
        ),
        (
            "/api/v1/anomalies?limit=5&limit=6",
            400,
            "invalid_parameter",
        ),
        (
            "/api/v1/services?category=chat&category=social",
            400,
            "invalid_parameter",
        ),
        (
            "/api/v1/services/x/series?window=abc",
            400,
            "invalid_parameter",
        ),
        (
            "/api/v1/services/x/series?window=1%C3%A9",
            400,
            "invalid_parameter",
        ),
        (
            "/api/v1/services/x/breakdown?window=%C3%A9",
            400,
            "invalid_parameter",
        ),
        (
            "/api/v1/services/x/series?window=48h&step=5m",
            400,
            "invalid_parameter",
        ),
        (
            "/api/v1/services/x/series?window=1h&step=2h",
            400,
            "invalid_parameter",
        ),
        (
            "/api/v1/services/x/series?window=30d&step=1m",
            400,
            "invalid_parameter",
        ),
        (
            "/api/v1/services/x/series?window=365d&step=1d",
            400,
            "invalid_parameter",
        ),
        (
            // The retention's oldest day may be partly expired.
            "/api/v1/services/x/series?window=36d&step=1d",
            400,
            "invalid_parameter",
        ),
        (
            "/api/v1/services/x/series?window=7d&step=7m",
            400,
            "invalid_parameter",
        ),
        (
            "/api/v1/services/x/breakdown?window=30d",
            400,
            "invalid_parameter",
        ),
        ("/api/v1/services?limit=0", 400, "invalid_parameter"),
        ("/api/v1/services?limit=many", 400, "invalid_parameter"),
    ];
    for (path, status, code) in cases {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{path}");
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "application/problem+json",
            "{path}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], code, "{path}: {body}");
    }
    // A served path with the wrong method: 405 with Allow.
    for (method, path, allow) in [
        (reqwest::Method::POST, "/api/v1/anomalies", "GET"),
        (reqwest::Method::DELETE, "/api/v1/services/whatsapp", "GET"),
        (reqwest::Method::GET, "/api/v1/reports", "POST"),
        (reqwest::Method::POST, "/status/reports", "GET"),
        (reqwest::Method::GET, "/api/v1/admin/import", "POST"),
        (reqwest::Method::PUT, "/feeds/services/whatsapp.atom", "GET"),
    ] {
        let response = app
            .client
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 405, "{method} {path}");
        assert_eq!(response.headers()["allow"], allow, "{method} {path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["code"], "method_not_allowed",
            "{method} {path}: {body}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn series_steps_sum_minutes_and_older_windows_use_rollups() {
    let redis = RedisServer::start().expect("redis-server");
    let app = TestApp::with_redis(&redis).await;
    for i in 0..7 {
        app.report_from(
            &address(i),
            &json!({"service": "zoom", "problem": "connection", "client_id": format!("z{i}")}),
        )
        .await;
    }
    let (status, body) = app
        .get("/api/v1/services/zoom/series?window=24h&step=15m")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["step_secs"], 900);
    let points = body["points"].as_array().unwrap();
    assert_eq!(points.len(), 96);
    assert_eq!(
        points.last().unwrap()["reports"],
        7,
        "the current step holds them"
    );
    assert!(
        points
            .iter()
            .all(|p| p["baseline"].is_null() && p["upper"].is_null())
    );
    let (status, week) = app
        .get("/api/v1/services/zoom/series?window=7d&step=1h")
        .await;
    assert_eq!(status, 200, "{week}");
    assert_eq!(week["points"].as_array().unwrap().len(), 168);
    let total: u64 = week["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["reports"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 7);
    app.stop().await;
}

#[tokio::test]
async fn breakdown_gives_problem_and_country_shares() {
    let app = TestApp::embedded().await;
    for (i, (problem, country)) in [
        ("login", "BR"),
        ("login", "BR"),
        ("login", "IN"),
        ("app", ""),
    ]
    .iter()
    .enumerate()
    {
        // Two people on each of two networks.
        app.report_from(&address(i / 2), &json!({"service": "whatsapp", "problem": problem, "country": country, "client_id": i.to_string()}))
            .await;
    }
    let (status, body) = app
        .get("/api/v1/services/whatsapp/breakdown?window=1h")
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["reports"], 4);
    assert_eq!(body["distinct_reporters"], 4);
    assert_eq!(body["distinct_networks"], 2);
    assert_eq!(
        body["problems"][0],
        json!({"problem": "login", "count": 3, "share": 0.75})
    );
    assert_eq!(
        body["problems"][1],
        json!({"problem": "app", "count": 1, "share": 0.25})
    );
    assert_eq!(
        body["countries"][0],
        json!({"country": "BR", "count": 2, "share": 0.5})
    );
    app.stop().await;
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = TestApp::embedded().await;
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let (status, ready) = app.get("/readyz").await;
    assert_eq!((status, ready["store"].as_str()), (200, Some("embedded")));
    app.report(&json!({"service": "x", "problem": "feed"}))
        .await;
    let metrics = app.metrics_text().await;
    for needle in [
        "outagewatch_reports_accepted_total 1",
        "outagewatch_reports_counted_total 1",
        r#"route="/api/v1/reports",status="202""#,
        "outagewatch_write_batch_size_count 1",
        "outagewatch_write_batch_duration_seconds_count 1",
    ] {
        assert!(metrics.contains(needle), "{needle} missing from\n{metrics}");
    }
    assert!(!metrics.contains("127.0.0.1"), "no addresses in metrics");
    app.stop().await;
}

/// A stored anomaly that does not parse is never taken for another value:
/// the feed and the service's status leave it out, asked for by id it is a
/// 500, and each reading of it is logged and counted.
#[tokio::test]
async fn a_corrupt_stored_anomaly_is_left_out_and_counted() {
    use outagewatch::store::{AnomalyRecord, FeedStore};
    let app = TestApp::embedded().await;
    let now = chrono::Utc::now().timestamp();
    let corrupt = AnomalyRecord {
        id: "whatsapp-corrupt".into(),
        service: "whatsapp".into(),
        started_unix: now,
        updated_unix: now,
        open: true,
        doc: "{not json".into(),
        summary: "{}".into(),
    };
    app.store.put_anomalies(&[corrupt]).await.expect("store");
    let (status, feed) = app.get("/api/v1/anomalies").await;
    assert_eq!(status, 200, "{feed}");
    assert_eq!(feed["items"], json!([]), "{feed}");
    let (status, service) = app.get("/api/v1/services/whatsapp").await;
    assert_eq!(status, 200, "{service}");
    assert_eq!(service["status"], "ok", "{service}");
    let (status, one) = app.get("/api/v1/anomalies/whatsapp-corrupt").await;
    assert_eq!(status, 500, "{one}");
    assert_eq!(one["code"], "internal", "{one}");
    let metrics = app.metrics_text().await;
    let counted: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix(r#"outagewatch_corrupt_documents_total{kind="anomaly"} "#))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert_eq!(counted, 3, "feed, open incidents, by id:\n{metrics}");
    app.stop().await;
}
