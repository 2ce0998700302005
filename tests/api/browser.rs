//! The pages in a real headless Chromium, driven over WebDriver by
//! chromedriver (Debian's `chromium` and `chromium-driver`, which the README's
//! test command installs) through `fantoccini`. The driver is started per
//! test on its own port, with its own profile directory, and killed on drop.

use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

use crate::fixtures::spike;
use crate::helpers::{TestApp, eventually};

struct Driver {
    child: Child,
    url: String,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // chromedriver leads its own process group, with the browser it
        // started: end them all, not only the driver.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Browser {
    client: Client,
    // Dropped after the client: the session ends with the driver.
    _driver: Driver,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Browser {
    /// Chromium in the given time zone, headless.
    async fn start(time_zone: &str) -> Browser {
        let driver_bin =
            std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let port = free_port();
        let profile = tempfile::tempdir().expect("profile dir");
        let child = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .process_group(0)
            .env("TZ", time_zone)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {driver_bin} ({e}): install chromium and chromium-driver (the README's test command does)")
            });
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _profile: profile,
        };
        // A WebDriver client needs a session, so readiness is asked the
        // plain way: GET /status until the driver says it is ready.
        let http = reqwest::Client::new();
        let status_url = format!("{}/status", driver.url);
        eventually(
            "chromedriver to answer",
            Duration::from_secs(20),
            || async {
                let r = http.get(&status_url).send().await.ok()?;
                let v: Value = r.json().await.ok()?;
                v["value"]["ready"].as_bool().filter(|r| *r)
            },
        )
        .await;
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1100,1500", format!("--user-data-dir={}", driver._profile.path().display())]
            }
        });
        let Value::Object(caps) = caps else {
            unreachable!("capabilities are an object")
        };
        // chromedriver is on 127.0.0.1: plain HTTP, no TLS.
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&driver.url)
            .await
            .unwrap_or_else(|e| panic!("new session: {e}"));
        Browser {
            client,
            _driver: driver,
        }
    }

    async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    /// Runs a script in the page; its result.
    async fn script(&self, js: &str) -> Value {
        self.client
            .execute(js, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("script {js}: {e}"))
    }

    /// The `textContent` of the first match, empty when none matches (read
    /// in one script, so a re-render between finding and reading cannot
    /// leave a stale element).
    async fn text(&self, css: &str) -> String {
        let js = "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;";
        self.client
            .execute(js, vec![json!(css)])
            .await
            .unwrap_or_else(|e| panic!("text of {css}: {e}"))
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// The page as PNG bytes.
    async fn screenshot(&self) -> Vec<u8> {
        self.client.screenshot().await.expect("screenshot")
    }
}

#[tokio::test]
async fn a_reader_reports_a_problem_and_sees_the_thanks_and_the_count_change() {
    let app = TestApp::embedded().await;
    spike(&app, "whatsapp", 5, "earlier").await;
    // India is UTC+5:30: local times end in :30 where UTC ones end in :00.
    let browser = Browser::start("Asia/Kolkata").await;
    browser.goto(&app.url("/status/whatsapp")).await;
    let heading = browser.text("h1").await;
    assert!(heading.starts_with("WhatsApp"), "{heading}");
    assert_eq!(browser.text(".status .word").await, "OK");
    assert_eq!(browser.text("#reports-15m").await, "5");
    let labels = browser
        .script("return Array.from(document.querySelectorAll('svg.chart text[data-t]')).map(e => e.textContent)")
        .await;
    let labels: Vec<String> = serde_json::from_value(labels).expect("labels");
    assert!(
        !labels.is_empty() && labels.iter().all(|l| l.contains(":30")),
        "local times: {labels:?}"
    );
    assert!(
        browser.text("footer").await.contains("Asia/Calcutta")
            || browser.text("footer").await.contains("Asia/Kolkata")
    );

    browser
        .click(r#"button[name="problem"][value="login"]"#)
        .await;
    let thanks = eventually("the thanks", Duration::from_secs(10), || async {
        let t = browser.text("#thanks").await;
        t.contains("Thanks").then_some(t)
    })
    .await;
    assert_eq!(thanks, "Thanks: your report (Log-in) is counted.");
    // The page fetches its numbers again after posting.
    eventually("the count to change", Duration::from_secs(10), || async {
        (browser.text("#reports-15m").await == "6").then_some(())
    })
    .await;
    // Still on the status page: the post happened in place.
    assert_eq!(
        browser.script("return location.pathname").await,
        "/status/whatsapp"
    );
    let (_, body) = app.get("/api/v1/services/whatsapp").await;
    assert_eq!(body["reports_15m"], 6);

    let png = browser.screenshot().await;
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("artifacts");
    std::fs::create_dir_all(&dir).expect("artifact dir");
    let path = dir.join("status-page.png");
    std::fs::write(&path, png).expect("screenshot written");
    eprintln!("status page screenshot: {}", path.display());

    browser.goto(&app.url("/anomalies")).await;
    assert_eq!(browser.text("h1").await, "Incidents");
    assert!(browser.text("main").await.contains("No incidents match."));

    // The embeddable chart renders as SVG, with its bars.
    browser.goto(&app.url("/embed/whatsapp.svg")).await;
    assert_eq!(
        browser
            .script("return document.documentElement.tagName")
            .await,
        "svg"
    );
    let bars = browser
        .script("return document.querySelectorAll('g.hover rect').length")
        .await;
    assert_eq!(bars, 96);
    let width = browser
        .script("return document.documentElement.getBoundingClientRect().width")
        .await;
    assert_eq!(width.as_f64(), Some(640.0));
}
