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
    let hour_later = (midnight + chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%SZ");
    // `from` is moved back to a whole step (at most a day before midnight
    // for a 2-day step), so 2 days exceed the span of that hour.
    for query in [
        format!("from={from}&step={days}d"),
        format!("from={from}&step={}d", days / 2),
        format!("from={from}&to={hour_later}&step=2d"),
    ] {
        let path = format!("/api/v1/services/whatsapp/history.csv?{query}");
        let (status, body) = app.get(&path).await;
        assert_eq!(status, 400, "{query}: {body}");
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

/// A browser's form post of a WhatsApp login report by `client_id`, with
/// `headers`; redirects are not followed (the 303 back to the status page
/// is the answer looked at).
async fn form_post(
    app: &TestApp,
    client_id: String,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let mut request = client
        .post(app.url("/api/v1/reports"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "text/html")
        .body(format!(
            "service=whatsapp&problem=login&client_id={client_id}"
        ));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("request")
}

/// A page on another site with a hidden form that submits itself to the
/// report endpoint would turn its every visitor into a genuine, distinct
/// reporter. A browser says where a post comes from (`Sec-Fetch-Site`, and
/// `Origin`): from another site it is refused with 403 and counts nothing;
/// from the site's own page it is thanked as before; an app that posts
/// directly (neither header) is unaffected.
#[tokio::test]
async fn a_form_post_from_another_site_is_refused_and_counts_nothing() {
    let app = TestApp::embedded().await;
    let own = app.url("");
    let refused: [&[(&str, &str)]; 5] = [
        &[
            ("sec-fetch-site", "cross-site"),
            ("origin", "https://evil.example"),
        ],
        &[
            ("sec-fetch-site", "same-site"),
            ("origin", "https://x.127.0.0.1"),
        ],
        &[("origin", "https://evil.example")],
        &[("origin", "null")],
        &[("sec-fetch-site", "cross-site")],
    ];
    for (k, headers) in refused.iter().enumerate() {
        let response = form_post(&app, format!("visitor-{k}"), headers).await;
        assert_eq!(response.status().as_u16(), 403, "{headers:?}");
        let kind = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(kind, "application/problem+json", "{headers:?}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["code"], "cross_site", "{body}");
    }
    assert_eq!(app.series_total("whatsapp", "10m").await, 0);

    let accepted: [&[(&str, &str)]; 3] = [
        &[("sec-fetch-site", "same-origin"), ("origin", own.as_str())],
        &[("origin", own.as_str())],
        &[],
    ];
    for (k, headers) in accepted.iter().enumerate() {
        let response = form_post(&app, format!("visitor-{}", 10 + k), headers).await;
        assert_eq!(response.status().as_u16(), 303, "{headers:?}");
    }
    assert_eq!(app.series_total("whatsapp", "10m").await, 3);
    app.stop().await;
}

/// Pages may not be framed (the report buttons cannot be clickjacked under
/// another site's page), run no inline script, and no answer is sniffed as
/// another type.
#[tokio::test]
async fn pages_carry_a_content_security_policy_and_every_answer_nosniff() {
    let app = TestApp::embedded().await;
    for path in ["/", "/status/whatsapp", "/anomalies", "/api/docs"] {
        let response = app.client.get(app.url(path)).send().await.expect("request");
        assert_eq!(response.status().as_u16(), 200, "{path}");
        let headers = response.headers().clone();
        let policy = headers["content-security-policy"]
            .to_str()
            .unwrap()
            .to_string();
        for part in [
            "frame-ancestors 'none'",
            "script-src 'self';",
            "form-action 'self'",
        ] {
            assert!(policy.contains(part), "{path}: {policy}");
        }
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert!(headers.contains_key("referrer-policy"), "{path}");
        let page = response.text().await.unwrap();
        let inline = page.matches("<script").count() - page.matches("<script src=").count();
        assert_eq!(inline, 0, "{path}: a script the policy would block");
    }
    for path in ["/api/v1/services", "/embed/whatsapp.svg", "/static/site.js"] {
        let response = app.client.get(app.url(path)).send().await.expect("request");
        assert_eq!(
            response.headers()["x-content-type-options"],
            "nosniff",
            "{path}"
        );
    }
    app.stop().await;
}

/// Behind a proxy, the client writes what it likes at the left of
/// X-Forwarded-For: a made-up address there each time used to be a new
/// address each time (a fresh rate-limit allowance, a fresh reporter). The
/// address the proxy appended is the one that counts.
#[tokio::test]
async fn a_made_up_forwarded_address_is_not_a_new_client() {
    let mut settings = crate::helpers::test_settings(None);
    settings.intake.rate_limit_per_minute = 60;
    settings.intake.rate_limit_burst = 3;
    // The test client plays the proxy.
    settings.http.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    let app = TestApp::spawn(settings).await;
    let mut statuses = Vec::new();
    for k in 0..6 {
        let response = app
            .client
            .post(app.url("/api/v1/reports"))
            .header("x-forwarded-for", format!("203.0.113.{k}, 198.51.100.7"))
            .json(&serde_json::json!({"service": "whatsapp", "problem": "login"}))
            .send()
            .await
            .expect("request");
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [202, 202, 202, 429, 429, 429]);
    // Without a client_id the reporter is the address: one reporter.
    assert_eq!(app.series_total("whatsapp", "10m").await, 1);
    app.stop().await;
}

/// Replicas on one Redis that each hash reporters under their own random
/// key let a reporter without a client_id count once per replica (and again
/// after every restart): with Redis an empty reporter secret stops
/// start-up, naming the setting. The embedded store still starts.
#[tokio::test]
async fn with_redis_an_empty_reporter_secret_stops_start_up() {
    let redis = crate::helpers::RedisServer::start().expect("redis-server");
    let mut settings = crate::helpers::test_settings(Some(&redis.url()));
    settings.intake.reporter_secret = String::new();
    let error = match outagewatch::app::Application::build(settings).await {
        Ok(_) => panic!("started without a reporter secret"),
        Err(e) => format!("{e:#}"),
    };
    assert!(error.contains("intake.reporter_secret"), "{error}");
    let mut embedded = crate::helpers::test_settings(None);
    embedded.intake.reporter_secret = String::new();
    let app = TestApp::spawn(embedded).await;
    app.stop().await;
}

/// A client that sends its body a byte at a time, slower than the deadline
/// allows, gets 408 and its connection back, instead of holding it for as
/// long as it likes; a body that arrives in time is answered as usual.
#[tokio::test]
async fn a_body_sent_a_byte_at_a_time_is_cut_at_the_deadline() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut settings = crate::helpers::test_settings(None);
    settings.http.body_timeout_secs = 1;
    let app = TestApp::spawn(settings).await;
    let address = app.url("").trim_start_matches("http://").to_string();
    let body = r#"{"service":"whatsapp","problem":"login","client_id":"slow"}"#;
    let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /api/v1/reports HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    // One byte every 300 ms (the whole body would take 18 s), while the
    // answer is read in full, however it is split.
    let (mut reader, mut writer) = socket.into_split();
    let trickle = tokio::spawn(async move {
        for byte in body.bytes() {
            if writer.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
    });
    let mut answer = Vec::new();
    let read_all = async {
        let mut buf = [0u8; 4096];
        // The problem+json body ends the answer.
        while !answer.ends_with(b"}") {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), read_all).await;
    trickle.abort();
    let elapsed = started.elapsed();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(answer.contains("body_timeout"), "{answer}");
    assert!(
        answer.contains("within 1 s"),
        "the setting, not what was left: {answer}"
    );
    assert!(elapsed < std::time::Duration::from_secs(5), "{elapsed:?}");
    assert_eq!(app.series_total("whatsapp", "10m").await, 0);
    // In time, the same report counts.
    let (status, _) = app.report(&serde_json::from_str(body).unwrap()).await;
    assert_eq!(status, 202);
    app.stop().await;
}

/// POSTs a report for WhatsApp with an Idempotency-Key; its status and body.
async fn keyed(app: &TestApp, key: &str, client: &str, problem: &str) -> (u16, serde_json::Value) {
    let response = app
        .client
        .post(app.url("/api/v1/reports"))
        .header("idempotency-key", key)
        .json(&serde_json::json!({"service": "whatsapp", "problem": problem, "client_id": client}))
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// An Idempotency-Key is the reporter's and bound to its request: a retry
/// gets the first answer; the same key with another report is 422, not the
/// first answer; another client's same key is its own and counts.
#[tokio::test]
async fn an_idempotency_key_is_bound_to_its_reporter_and_request() {
    let app = TestApp::embedded().await;
    let (status, first) = keyed(&app, "k-1", "alice", "login").await;
    assert_eq!(status, 202, "{first}");
    let (status, retry) = keyed(&app, "k-1", "alice", "login").await;
    assert_eq!((status, &retry["id"]), (202, &first["id"]), "{retry}");
    let (status, other) = keyed(&app, "k-1", "alice", "messaging").await;
    assert_eq!(status, 422, "{other}");
    assert_eq!(other["code"], "idempotency_key_reused");
    let (status, bob) = keyed(&app, "k-1", "bob", "login").await;
    assert_eq!(status, 202, "{bob}");
    assert_ne!(bob["id"], first["id"]);
    assert_eq!(bob["counted"], true);
    assert_eq!(app.series_total("whatsapp", "10m").await, 2);
    app.stop().await;
}

/// While a request with a key is still being written (Redis stalled), a
/// second one with the same key gets 409 with Retry-After instead of
/// waiting, and once Redis answers the retry counts once.
#[tokio::test]
async fn a_second_request_with_a_key_in_flight_gets_409() {
    let mut redis = crate::helpers::RedisServer::start().expect("redis-server");
    let app = TestApp::with_redis(&redis).await;
    redis.pause().expect("pause redis");
    let (a, b) = tokio::join!(
        keyed(&app, "k-2", "carol", "login"),
        keyed(&app, "k-2", "carol", "login")
    );
    redis.resume().expect("resume redis");
    let mut statuses = [a.0, b.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [409, 503], "{a:?} {b:?}");
    let conflict = if a.0 == 409 { &a.1 } else { &b.1 };
    assert_eq!(conflict["code"], "idempotency_key_in_flight", "{conflict}");
    let (status, retry) = keyed(&app, "k-2", "carol", "login").await;
    assert_eq!(status, 202, "{retry}");
    assert_eq!(app.series_total("whatsapp", "10m").await, 1);
    app.stop().await;
}

/// One client opening event streams until the server is full would shut
/// every other reader out: one address holds at most
/// `web.max_streams_per_address`, the next gets 429, and a closed stream
/// frees its place.
#[tokio::test]
async fn one_address_cannot_take_every_event_stream() {
    let mut settings = crate::helpers::test_settings(None);
    settings.web.max_streams_per_address = 2;
    // A closed stream is noticed at its next write.
    settings.web.stream_keepalive_secs = 1;
    let app = TestApp::spawn(settings).await;
    let open = || app.client.get(app.url("/api/v1/anomalies/stream")).send();
    let first = open().await.expect("stream");
    let second = open().await.expect("stream");
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    let refused = open().await.expect("request");
    assert_eq!(refused.status().as_u16(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "too_many_streams_from_address", "{body}");
    drop(first);
    let third = crate::helpers::eventually(
        "the closed stream's place to be free",
        std::time::Duration::from_secs(10),
        || async {
            let r = open().await.ok()?;
            (r.status().as_u16() == 200).then_some(r)
        },
    )
    .await;
    drop((second, third));
    app.stop().await;
}

/// With `web.public_url` set, the site is that origin (any spelling of it:
/// default port, trailing path), whatever Host the request names: a page
/// that rebinds its own name to this server's address (Host and Origin
/// both its own) is refused, and so is a page that claims same-origin
/// with another Origin.
#[tokio::test]
async fn with_a_public_url_only_its_own_pages_post_reports() {
    let mut settings = crate::helpers::test_settings(None);
    settings.web.public_url = "https://outagewatch.example/".into();
    let app = TestApp::spawn(settings).await;
    let cases: [(&[(&str, &str)], u16); 4] = [
        (&[("origin", "https://OUTAGEWATCH.example:443")], 303),
        (
            &[
                ("origin", "https://outagewatch.example"),
                ("sec-fetch-site", "same-origin"),
            ],
            303,
        ),
        (
            &[("origin", "http://evil.example"), ("host", "evil.example")],
            403,
        ),
        (
            &[
                ("origin", "http://evil.example"),
                ("sec-fetch-site", "same-origin"),
            ],
            403,
        ),
    ];
    for (k, (headers, status)) in cases.iter().enumerate() {
        let response = form_post(&app, format!("p-{k}"), headers).await;
        assert_eq!(response.status().as_u16(), *status, "{headers:?}");
    }
    assert_eq!(app.series_total("whatsapp", "10m").await, 2);
    app.stop().await;
}

/// Sends `GET path` on `socket` and reads one whole answer, lower-cased.
async fn get_on(socket: &mut tokio::net::TcpStream, path: &str) -> String {
    use tokio::io::AsyncWriteExt;
    let request = format!("GET {path} HTTP/1.1\r\nHost: outagewatch\r\n\r\n");
    socket.write_all(request.as_bytes()).await.expect("send");
    read_answer(socket).await
}

/// Reads one whole answer (head and a Content-Length body), lower-cased.
async fn read_answer(socket: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = std::time::Duration::from_secs(5);
    loop {
        let text = String::from_utf8_lossy(&answer).to_lowercase();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|n| n.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= length {
                return text;
            }
        }
        match tokio::time::timeout(deadline, socket.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => answer.extend_from_slice(&buf[..n]),
            other => panic!("no whole answer ({other:?}): {text:?}"),
        }
    }
}

/// Whether the server closed `socket` (a read sees its end) within 5 s.
async fn closed(socket: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 64];
    let read = socket.read(&mut buf);
    matches!(
        tokio::time::timeout(std::time::Duration::from_secs(5), read).await,
        Ok(Ok(0) | Err(_))
    )
}

/// One address holds at most `http.max_connections_per_address`
/// connections: one more is answered at once, before it sends anything,
/// with 429 `too_many_connections` and closed; once one of the others
/// closes, a new one is served again.
#[tokio::test]
async fn one_address_cannot_hold_every_connection() {
    let mut settings = crate::helpers::test_settings(None);
    // 127.0.0.1 is a client here, not a trusted proxy.
    settings.http.trusted_proxies = Vec::new();
    settings.http.max_connections_per_address = 3;
    let app = TestApp::spawn(settings).await;
    let address = app.url("").trim_start_matches("http://").to_string();
    let connect = || tokio::net::TcpStream::connect(address.clone());
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut socket = connect().await.expect("connect");
        assert!(
            get_on(&mut socket, "/healthz")
                .await
                .starts_with("http/1.1 200")
        );
        held.push(socket);
    }
    let mut fourth = connect().await.expect("connect");
    let answer = read_answer(&mut fourth).await;
    assert!(answer.starts_with("http/1.1 429"), "{answer}");
    assert!(answer.contains("too_many_connections"), "{answer}");
    assert!(answer.contains("retry-after: "), "{answer}");
    assert!(closed(&mut fourth).await, "the fourth is closed");
    // The three are still served.
    assert!(
        get_on(&mut held[0], "/healthz")
            .await
            .starts_with("http/1.1 200")
    );
    drop(held.remove(0));
    crate::helpers::eventually(
        "a connection served once one closed",
        std::time::Duration::from_secs(5),
        || async {
            let mut socket = connect().await.ok()?;
            get_on(&mut socket, "/healthz")
                .await
                .starts_with("http/1.1 200")
                .then_some(())
        },
    )
    .await;
    app.stop().await;
}

/// An app whose connections may live a second (and stay idle for 30), and
/// one connection to it.
async fn connected_with_age_of_a_second() -> (TestApp, tokio::net::TcpStream) {
    let mut settings = crate::helpers::test_settings(None);
    settings.http.max_connection_secs = 1;
    settings.http.keep_alive_secs = 30;
    let app = TestApp::spawn(settings).await;
    let address = app.url("").trim_start_matches("http://").to_string();
    let socket = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    (app, socket)
}

/// A keep-alive connection older than `http.max_connection_secs` is closed
/// after its next answer.
#[tokio::test]
async fn a_connection_is_closed_once_it_is_past_its_age() {
    let (app, mut socket) = connected_with_age_of_a_second().await;
    let first = get_on(&mut socket, "/healthz").await;
    assert!(!first.contains("connection: close"), "{first}");
    // Polls on the same connection until it is old enough (within 5 s).
    let started = std::time::Instant::now();
    let last = loop {
        let answer = get_on(&mut socket, "/healthz").await;
        assert!(answer.starts_with("http/1.1 200"), "{answer}");
        if answer.contains("connection: close") {
            break answer;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{answer}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(500),
        "{last}"
    );
    assert!(closed(&mut socket).await, "closed after that answer");
    app.stop().await;
}

/// A client that starts a second request head and never finishes it (which
/// actix-web's head timeout does not cover) is cut off at the connection's
/// deadline: its age, then a grace period as long again (at most a minute).
#[tokio::test]
async fn an_unfinished_second_request_does_not_hold_its_connection() {
    use tokio::io::AsyncWriteExt;
    let (app, mut socket) = connected_with_age_of_a_second().await;
    let started = std::time::Instant::now();
    assert!(
        get_on(&mut socket, "/healthz")
            .await
            .starts_with("http/1.1 200")
    );
    socket.write_all(b"GET /heal").await.expect("send");
    assert!(closed(&mut socket).await, "cut at the deadline");
    let after = started.elapsed();
    assert!(
        after >= std::time::Duration::from_millis(1_500),
        "{after:?}"
    );
    app.stop().await;
}
