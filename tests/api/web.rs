//! What readers and journalists see, over HTTP: pages without JavaScript,
//! the embeddable chart, the CSV export, Atom feeds (checked with Python's
//! feedparser, an independent parser), the live event stream, and the
//! OpenAPI document (checked with openapi-spec-validator and against the
//! routes the server answers).

use std::process::Command;
use std::time::Duration;

use reqwest::header;

use crate::fixtures::{app_with_incident, history, spike};
use crate::helpers::{Backend, RedisServer, TestApp, on_each_backend};

/// The Python with feedparser and openapi-spec-validator that the README's
/// test command installs.
fn python() -> String {
    std::env::var("OUTAGEWATCH_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("OUTAGEWATCH_TEST_PYTHON is not set: run the tests with scripts/test.sh, which installs feedparser and openapi-spec-validator")
    })
}

/// Runs a Python snippet with `input` on stdin; its stdout.
fn run_python(script: &str, input: &[u8]) -> String {
    use std::io::Write as _;
    let mut child = Command::new(python())
        .arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write");
    let out = child.wait_with_output().expect("python runs");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn text(app: &TestApp, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let response = app
        .client
        .get(app.url(path))
        .header(header::ACCEPT, "text/html")
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.expect("body"))
}

#[tokio::test]
async fn the_status_page_works_without_javascript() {
    let app = TestApp::embedded().await;
    let (status, headers, page) = text(&app, "/status/whatsapp").await;
    assert_eq!(status, 200, "{page}");
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    for needle in [
        "<h1>WhatsApp",
        r#"class="word">OK<"#,
        r#"<form class="report-form" method="post" action="/api/v1/reports""#,
        r#"name="problem" value="login">Log-in</button>"#,
        "<svg",
        "Most reported problems",
    ] {
        assert!(page.contains(needle), "{needle} in {page}");
    }
    // An alias lives at the canonical address.
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(app.url("/status/WA"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 301);
    assert_eq!(response.headers()[header::LOCATION], "/status/whatsapp");
    let (status, _, page) = text(&app, "/status/no-such-service").await;
    assert_eq!(status, 404);
    assert!(page.contains("No such service"), "{page}");
    // A parameter given twice is ambiguous: refused, as a page.
    for path in [
        "/status/whatsapp?reported=login&reported=login",
        "/anomalies?status=open&status=open",
        "/?q=a&q=b",
    ] {
        let (status, headers, page) = text(&app, path).await;
        assert_eq!(status, 400, "{path}: {page}");
        let kind = headers[header::CONTENT_TYPE].to_str().unwrap();
        assert!(kind.starts_with("text/html"), "{path}: {kind}");
        assert!(
            page.contains("given twice") || page.contains("duplicate"),
            "{path}: {page}"
        );
    }

    // The form post of a browser without JavaScript: stored, then back to
    // the page, which thanks the person and counts the report.
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(app.url("/api/v1/reports"))
        .header(header::ACCEPT, "text/html,application/xhtml+xml")
        .form(&[("service", "whatsapp"), ("problem", "login")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let location = response.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(location, "/status/whatsapp?reported=login&counted=1");
    let (_, headers, page) = text(&app, &location).await;
    assert!(
        page.contains("Thanks: your report (Log-in) is counted."),
        "{page}"
    );
    assert!(
        page.contains(r#"<strong id="reports-15m">1</strong>"#),
        "{page}"
    );
    assert_eq!(headers[header::CACHE_CONTROL], "private, no-store");
    // Only the service's own problem types are thanked for.
    let (_, _, page) = text(
        &app,
        "/status/whatsapp?reported=%3Cb%3Eyou%20won%3C/b%3E&counted=1",
    )
    .await;
    assert!(
        !page.contains("Thanks") && !page.contains("you won"),
        "{page}"
    );
    let (_, _, page) = text(&app, "/status/whatsapp?reported=login&counted=0").await;
    assert!(page.contains("we count one report per person"), "{page}");

    // A refused form post from a browser is a page too.
    let refused = reqwest::Client::new()
        .post(app.url("/api/v1/reports"))
        .header(header::ACCEPT, "text/html")
        .form(&[("service", "whatsapp"), ("problem", "payments")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    assert!(
        refused.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(refused.text().await.unwrap().contains("<h1>"));

    let (status, _, home) = text(&app, "/?q=insta").await;
    assert_eq!(status, 200);
    assert!(
        home.contains(r#"<a href="/status/instagram">Instagram</a>"#),
        "{home}"
    );
    assert!(home.contains("Most reported in the last hour"), "{home}");
    let (status, _, company) = text(&app, "/company/meta").await;
    assert_eq!(status, 200);
    assert!(
        company.contains("Threads") && company.contains("Messenger"),
        "{company}"
    );
    let (status, _, feed) = text(&app, "/anomalies?service=whatsapp&company=").await;
    assert_eq!(status, 200);
    assert!(feed.contains("No incidents match."), "{feed}");
    let (status, _, feed) = text(&app, "/anomalies?service=nope").await;
    assert_eq!(status, 404, "{feed}");
}

#[tokio::test]
async fn the_embeddable_chart_is_cacheable_svg_with_a_title_per_bar() {
    let app = TestApp::embedded().await;
    spike(&app, "whatsapp", 3, "embed").await;
    let (status, headers, svg) = text(&app, "/embed/whatsapp.svg").await;
    assert_eq!(status, 200, "{svg}");
    assert_eq!(headers[header::CONTENT_TYPE], "image/svg+xml");
    assert_eq!(headers[header::CACHE_CONTROL], "public, max-age=60");
    assert!(
        svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
        "{svg}"
    );
    // A 24 h chart of 15-minute bars: 96 hover titles, one per bar, and
    // one title for the chart; the current bar holds the 3 reports.
    assert_eq!(svg.matches("<title>").count(), 97, "{svg}");
    assert!(svg.contains(": 3 reports"), "{svg}");
    assert!(svg.contains("not of people affected"), "{svg}");

    let etag = headers[header::ETAG].clone();
    let again = app
        .client
        .get(app.url("/embed/whatsapp.svg"))
        .header(header::IF_NONE_MATCH, etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert!(again.text().await.unwrap().is_empty());
}

#[tokio::test]
async fn history_csv_exports_counts_per_step() {
    let app = TestApp::embedded().await;
    spike(&app, "whatsapp", 4, "csv").await;
    let (status, headers, csv) = text(&app, "/api/v1/services/whatsapp/history.csv?step=15m").await;
    assert_eq!(status, 200, "{csv}");
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "timestamp,reports,baseline,upper");
    // Seven days of 15-minute steps, and the current one.
    assert!((672..=673).contains(&(lines.len() - 1)), "{}", lines.len());
    let total: u64 = lines[1..]
        .iter()
        .map(|l| l.split(',').nth(1).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, 4);
    // Just past the minute buckets, where 15-minute rollups serve.
    let old = (chrono::Utc::now() - chrono::Duration::minutes(47 * 60 + 10))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let rollups_need_quarters = format!("step=7m&from={old}");
    for bad in [
        rollups_need_quarters.as_str(),
        "from=yesterday",
        "step=0m",
        "from=2001-01-01T00:00:00Z",
        "step=1m&from=2020-01-01T00:00:00Z",
    ] {
        let (status, _, body) = text(
            &app,
            &format!("/api/v1/services/whatsapp/history.csv?{bad}"),
        )
        .await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, _, _) = text(&app, "/api/v1/services/whatsapp/history.csv?step=1m&from=2000-01-01T00:00:00Z&to=2000-01-02T00:00:00Z").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn atom_feeds_carry_the_incident_headline_and_parse_with_feedparser() {
    let redis = RedisServer::start().expect("redis-server");
    let (app, _worker, _) = app_with_incident(&redis).await;
    let (_, body) = app.get("/api/v1/anomalies").await;
    let headline = body["items"][0]["headline"].as_str().unwrap().to_string();
    let parse = r#"
import sys, feedparser
d = feedparser.parse(sys.stdin.buffer.read())
assert not d.bozo, d.bozo_exception
print(d.feed.title)
for e in d.entries:
    print(e.id, '|', e.title, '|', e.link)
"#;
    for path in [
        "/feeds/anomalies.atom",
        "/feeds/services/whatsapp.atom",
        "/feeds/companies/meta.atom",
    ] {
        let (status, headers, atom) = text(&app, path).await;
        assert_eq!(status, 200, "{path}: {atom}");
        assert!(
            headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("application/atom+xml")
        );
        let parsed = run_python(parse, atom.as_bytes());
        let lines: Vec<&str> = parsed.lines().collect();
        assert_eq!(lines.len(), 2, "{path}: one entry: {parsed}");
        assert!(lines[1].contains(&headline), "{path}: {parsed}");
        assert!(lines[1].ends_with(&app.url("/status/whatsapp")), "{parsed}");
    }
    // Who reported it, in reporters and networks (150 of each were sent).
    let networks = body["items"][0]["distinct_networks"].as_u64().unwrap();
    assert!((140..=160).contains(&networks), "{body}");
    let (_, _, atom) = text(&app, "/feeds/anomalies.atom").await;
    let who = format!(" on {networks} networks in its busiest window.");
    assert!(atom.contains(&who), "{atom}");
    let (_, _, page) = text(&app, "/anomalies").await;
    assert!(page.contains(&format!(" on {networks} networks")), "{page}");
    let (_, _, other) = text(&app, "/feeds/services/x.atom").await;
    assert_eq!(
        run_python(parse, other.as_bytes()).lines().count(),
        1,
        "no entries"
    );
    let (status, _, _) = text(&app, "/feeds/companies/nope.atom").await;
    assert_eq!(status, 404);
}

/// Reads SSE events (`id`, `event`) from a streaming response until `n`
/// have arrived.
async fn read_events(response: &mut reqwest::Response, n: usize) -> Vec<(String, String, String)> {
    let mut buffer = String::new();
    let mut events = Vec::new();
    while events.len() < n {
        let chunk = tokio::time::timeout(Duration::from_secs(20), response.chunk())
            .await
            .expect("an event within 20 s")
            .expect("stream")
            .expect("stream still open");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                    .map(str::to_string)
            };
            if let (Some(id), Some(kind), Some(data)) = (field("id"), field("event"), field("data"))
            {
                events.push((id, kind, data));
            }
        }
    }
    events
}

// A test body (run by `on_each_backend!`): unwraps as in a test.
#[allow(clippy::unwrap_used)]
async fn the_stream_delivers_an_opened_event_and_resumes_from_last_event_id(backend: Backend) {
    let app = TestApp::on(&backend).await;
    let now = chrono::Utc::now().timestamp();
    app.import(history("whatsapp", now)).await;
    let mut worker = app.worker();
    worker.step(now).await.expect("tick");

    let mut stream = app
        .client
        .get(app.url("/api/v1/anomalies/stream?service=whatsapp"))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()[header::CONTENT_TYPE], "text/event-stream");
    spike(&app, "whatsapp", 150, "sse").await;
    let opened_at = std::time::Instant::now();
    worker.step(now + 60).await.expect("tick");
    let first = read_events(&mut stream, 1).await;
    // Within a tick (worker.tick_secs) of the incident opening.
    assert!(
        opened_at.elapsed() < Duration::from_secs(app.settings.worker.tick_secs),
        "{:?}",
        opened_at.elapsed()
    );
    assert_eq!(first[0].1, "opened");
    let doc: serde_json::Value = serde_json::from_str(&first[0].2).unwrap();
    assert_eq!(doc["service"], "whatsapp");
    assert!(doc["headline"].as_str().unwrap().starts_with("WhatsApp: ~"));
    assert!(doc.get("timeline").is_none(), "events carry no timeline");
    drop(stream);

    // While nobody listens, the incident goes on; a client that resumes
    // from the opened event gets what it missed, and only that.
    spike(&app, "whatsapp", 100, "sse-more").await;
    worker.step(now + 120).await.expect("tick");
    let mut resumed = app
        .client
        .get(app.url("/api/v1/anomalies/stream"))
        .header("last-event-id", &first[0].0)
        .send()
        .await
        .unwrap();
    let missed = read_events(&mut resumed, 1).await;
    assert_eq!(missed[0].1, "updated");
    assert_ne!(missed[0].0, first[0].0);
    let (status, body) = app
        .get("/api/v1/anomalies/stream?last_event_id=yesterday")
        .await;
    assert_eq!(status, 400, "{body}");
}

/// The public routes clients and readers rely on (DESIGN.md's API and
/// pages): renaming one is a breaking change, not a refactoring.
const PROMISED: [&str; 27] = [
    "post /api/v1/reports",
    "get /api/v1/services",
    "get /api/v1/services/{id}",
    "get /api/v1/services/{id}/series",
    "get /api/v1/services/{id}/breakdown",
    "get /api/v1/services/{id}/history.csv",
    "get /api/v1/companies",
    "get /api/v1/companies/{id}",
    "get /api/v1/anomalies",
    "get /api/v1/anomalies/stream",
    "get /api/v1/anomalies/{id}",
    "post /api/v1/admin/import",
    "get /feeds/anomalies.atom",
    "get /feeds/services/{id}.atom",
    "get /feeds/companies/{id}.atom",
    "get /embed/{id}.svg",
    "get /",
    "get /status/{id}",
    "get /company/{id}",
    "get /anomalies",
    "get /static/site.css",
    "get /static/site.js",
    "get /api/openapi.json",
    "get /api/docs",
    "get /healthz",
    "get /readyz",
    "get /metrics",
];

/// Every route the server registers, as (method, OpenAPI path): the
/// library's own table, which the app registers.
fn routes() -> Vec<(String, String)> {
    let mut routes: Vec<(String, String)> = outagewatch::web::docs::routes()
        .iter()
        .filter_map(|r| {
            let name = r.name();
            let (method, path) = name.split_once(' ')?;
            Some((method.to_string(), path.to_string()))
        })
        .collect();
    // The browser's form post shares the API's path and method.
    routes.sort();
    routes.dedup();
    routes
}

#[tokio::test]
async fn the_openapi_document_validates_and_lists_every_route() {
    let app = TestApp::embedded().await;
    let response = app
        .client
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let document = response.text().await.unwrap();
    let validated = run_python(
        r#"
import sys, json
from openapi_spec_validator import validate
d = json.load(sys.stdin)
validate(d)
for path, item in d["paths"].items():
    for method in item:
        print(method, path)
"#,
        document.as_bytes(),
    );
    let mut documented: Vec<String> = validated.lines().map(str::to_string).collect();
    documented.sort();
    let routes = routes();
    let names: Vec<String> = routes.iter().map(|(m, p)| format!("{m} {p}")).collect();
    assert_eq!(documented, names);
    // The table is the one list of routes; what clients were promised is
    // pinned here, so a changed path in the table cannot pass unnoticed.
    for promised in PROMISED {
        assert!(
            names.iter().any(|n| n == promised),
            "{promised} in {names:?}"
        );
    }

    // And the server answers each of them (no 404 or 405 for the route).
    for (method, path) in &routes {
        let concrete = path
            .replace("/companies/{id}", "/companies/meta")
            .replace("/company/{id}", "/company/meta")
            .replace("/anomalies/{id}", "/anomalies/whatsapp-20240305T1502Z")
            .replace("{id}", "whatsapp");
        let request = match method.as_str() {
            "post" => app
                .client
                .post(app.url(&concrete))
                .json(&serde_json::json!({})),
            _ => app.client.get(app.url(&concrete)),
        };
        // The stream stays open: its status line is enough.
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let code = if status == 404 || status == 405 {
            response.text().await.unwrap_or_default()
        } else {
            String::new()
        };
        // A 404 that names a missing thing (the anomaly id) is the route
        // answering; a 404 for the route itself says `not_found`.
        assert!(
            status != 405 && !(status == 404 && code.contains("\"not_found\"")),
            "{method} {concrete}: {status} {code}"
        );
    }

    let (status, _, docs) = text(&app, "/api/docs").await;
    assert_eq!(status, 200);
    for (method, path) in &routes {
        let shown = format!("<code>{} {}</code>", method.to_uppercase(), path);
        assert!(docs.contains(&shown), "{shown} in the docs page");
    }
}

#[tokio::test]
async fn a_flood_of_readers_costs_redis_a_few_commands_not_one_per_view() {
    let redis = RedisServer::start().expect("redis-server");
    let mut settings = crate::helpers::test_settings(Some(&redis.url()));
    // Long enough that the test's timing cannot matter.
    settings.web.read_cache_ms = 60_000;
    let app = TestApp::spawn(settings).await;
    let calls = || async {
        let mut conn = redis.connection().await;
        let info: String = ::redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut conn)
            .await
            .unwrap();
        // Lines like cmdstat_get:calls=3,usec=...
        info.lines()
            .filter_map(|l| {
                l.split("calls=")
                    .nth(1)?
                    .split(',')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .sum::<u64>()
    };
    // Warm the cache, then 300 views in well under its life.
    let (status, _, _) = text(&app, "/status/whatsapp").await;
    assert_eq!(status, 200);
    let before = calls().await;
    let views =
        futures_util::future::join_all((0..300).map(|_| text(&app, "/status/whatsapp"))).await;
    assert!(views.iter().all(|(s, _, _)| *s == 200));
    let spent = calls().await - before;
    // The INFO call itself counts one; the stream hub polls once a second.
    assert!(spent <= 15, "{spent} Redis commands for 300 views");
    // A page the cache has not seen reads the store.
    let before = calls().await;
    text(&app, "/status/instagram").await;
    assert!(calls().await > before + 3, "a cold page reads Redis");
}

on_each_backend!(the_stream_delivers_an_opened_event_and_resumes_from_last_event_id);
