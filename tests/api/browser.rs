//! The pages in a real headless Chromium, driven over WebDriver by
//! chromedriver (Debian's `chromium` and `chromium-driver`, which the README's
//! test command installs). The driver is started per test on its own port,
//! with its own profile directory, and killed on drop.

use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::fixtures::spike;
use crate::helpers::{TestApp, eventually};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

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
    http: reqwest::Client,
    session: String,
    driver: Driver,
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
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1100,1500", format!("--user-data-dir={}", driver._profile.path().display())]
            }
        }}});
        let created: Value = http
            .post(format!("{}/session", driver.url))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("session answer");
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_string();
        Browser {
            http,
            session,
            driver,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.driver.url, self.session);
        let mut request = self.http.request(method, url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request
            .send()
            .await
            .expect("webdriver")
            .json()
            .await
            .expect("webdriver json");
        answer["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    /// Runs a script in the page; its result.
    async fn script(&self, js: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": js, "args": []})),
        )
        .await
    }

    async fn text(&self, css: &str) -> String {
        let js = format!(
            "const e = document.querySelector({}); return e ? e.textContent : null;",
            json!(css)
        );
        self.script(&js)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    async fn click(&self, css: &str) {
        let found = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        let id = found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_string();
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    async fn screenshot(&self) -> Vec<u8> {
        use base64_decode::decode;
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        decode(png.as_str().expect("base64 png"))
    }
}

/// Standard base64, enough for a screenshot.
mod base64_decode {
    pub fn decode(text: &str) -> Vec<u8> {
        let value = |c: u8| match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            _ => 63,
        };
        let bytes: Vec<u8> = text.bytes().filter(|c| *c != b'=').collect();
        let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
        for chunk in bytes.chunks(4) {
            let v: Vec<u32> = chunk.iter().map(|c| u32::from(value(*c))).collect();
            let n = v.iter().fold(0u32, |acc, x| (acc << 6) | x) << (6 * (4 - v.len()));
            let take = v.len() - 1;
            out.extend_from_slice(&n.to_be_bytes()[1..1 + take]);
        }
        out
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
