//! Test harness: a throwaway `redis-server` per test (own temp dir, own unix
//! socket, killed and reaped on drop) and the app on a free port.
//!
//! `redis-server` comes from `$REDIS_SERVER` or PATH; the README's test command
//! installs it. A missing binary fails the test loudly rather than skipping.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use outagewatch::app::Application;
use outagewatch::config::Settings;
use serde_json::Value;

pub const ADMIN_TOKEN: &str = "test-admin-token";

/// Polls `check` until it returns `Some` or the deadline passes.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub struct RedisServer {
    process: Child,
    dir: tempfile::TempDir,
    socket: PathBuf,
    stopped: bool,
}

impl RedisServer {
    pub async fn start() -> RedisServer {
        let dir = tempfile::Builder::new()
            .prefix("ow-redis-")
            .tempdir()
            .expect("temp dir");
        let socket = dir.path().join("redis.sock");
        let process = spawn_redis(dir.path(), &socket);
        let server = RedisServer {
            process,
            dir,
            socket,
            stopped: false,
        };
        server.wait_until_answering().await;
        server
    }

    async fn wait_until_answering(&self) {
        let url = self.url();
        eventually(
            &format!("redis-server to answer\n{}", self.log()),
            Duration::from_secs(10),
            || {
                let url = url.clone();
                async move {
                    let client = redis::Client::open(url).ok()?;
                    let mut conn = client.get_multiplexed_async_connection().await.ok()?;
                    redis::cmd("PING")
                        .query_async::<String>(&mut conn)
                        .await
                        .ok()
                }
            },
        )
        .await;
    }

    /// Kills the server (its data is gone: no persistence) and starts a new
    /// one on the same socket.
    pub async fn restart(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.socket);
        self.process = spawn_redis(self.dir.path(), &self.socket);
        self.wait_until_answering().await;
    }

    pub fn kill(&mut self) {
        if self.stopped {
            // A stopped process must run again to die cleanly; ignore failure
            // here, this also runs from Drop.
            let _ = Command::new("kill")
                .args(["-CONT", &self.process.id().to_string()])
                .status();
            self.stopped = false;
        }
        let _ = self.process.kill();
        let _ = self.process.wait();
    }

    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket.display())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|e| panic!("connect to test redis: {e}\n{}", self.log()))
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.process.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed");
    }

    /// SIGSTOP: the server hangs, connections stay open.
    pub fn pause(&mut self) {
        self.signal("-STOP");
        self.stopped = true;
    }

    pub fn resume(&mut self) {
        self.signal("-CONT");
        self.stopped = false;
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn_redis(dir: &std::path::Path, socket: &std::path::Path) -> Child {
    let binary = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
    Command::new(&binary)
        .args(["--port", "0", "--save", "", "--appendonly", "no"])
        .arg("--unixsocket")
        .arg(socket)
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(dir.join("redis.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {binary:?} ({e}); install redis-server (the README's test command does) or set REDIS_SERVER")
        })
}

/// An address on the `i`-th network of its own: a distinct IPv4 /24 for
/// each `i` below 65,536.
pub fn address(i: usize) -> String {
    format!("10.{}.{}.7", (i >> 8) & 255, i & 255)
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub handle: actix_web::dev::ServerHandle,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub store: std::sync::Arc<outagewatch::store::AnyStore>,
    pub registry: std::sync::Arc<outagewatch::domain::Registry>,
    pub metrics: std::sync::Arc<outagewatch::telemetry::Metrics>,
    pub settings: Settings,
}

pub fn test_settings(redis_url: Option<&str>) -> Settings {
    let mut settings = Settings::defaults();
    settings.http.bind = "127.0.0.1:0".into();
    settings.http.workers = 2;
    settings.store.redis_url = redis_url.unwrap_or("").into();
    settings.admin.token = ADMIN_TOKEN.into();
    settings.intake.reporter_secret = "test-secret".into();
    // Every test client is 127.0.0.1: the per-address limit would cap the
    // load tests. `intake::one_address_past_its_burst_gets_429...` turns it on.
    settings.intake.rate_limit_per_minute = 0;
    // Tests speak for many clients on many networks (X-Forwarded-For, see
    // `TestApp::report_from`): one network counts only a few reports.
    settings.http.trusted_proxies = vec!["127.0.0.1/32".parse().expect("cidr")];
    // Tests drive detection themselves, tick by tick (`TestApp::worker`).
    settings.worker.enabled = false;
    settings.worker.lease_secs = 1;
    // Tests read what they just wrote; `reads::a_flood_of_readers...` turns
    // the read cache on.
    settings.web.read_cache_ms = 0;
    settings
}

impl TestApp {
    pub async fn spawn(settings: Settings) -> TestApp {
        let app = Application::build(settings.clone())
            .await
            .expect("build app");
        let address = format!("http://127.0.0.1:{}", app.port());
        let handle = app.server_handle();
        let (store, registry, metrics) = (app.store(), app.registry(), app.metrics());
        let task = tokio::spawn(app.run_until_stopped());
        TestApp {
            address,
            client: reqwest::Client::new(),
            handle,
            task,
            store,
            registry,
            metrics,
            settings,
        }
    }

    /// A detection worker on the app's store, driven by `step(now)`.
    pub fn worker(&self) -> outagewatch::worker::Worker {
        outagewatch::worker::Worker::new(
            self.store.clone(),
            self.registry.clone(),
            self.metrics.clone(),
            self.settings.detect.clone(),
            self.settings.worker.clone(),
        )
    }

    pub async fn embedded() -> TestApp {
        TestApp::spawn(test_settings(None)).await
    }

    pub async fn with_redis(redis: &RedisServer) -> TestApp {
        TestApp::spawn(test_settings(Some(&redis.url()))).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn report(&self, body: &Value) -> (u16, Value) {
        let response = self.post_json("/api/v1/reports", body).await;
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Posts a report as the client at `from` (sent as X-Forwarded-For,
    /// which the test app believes of 127.0.0.1).
    pub async fn report_from(&self, from: &str, body: &Value) -> (u16, Value) {
        let response = self
            .client
            .post(self.url("/api/v1/reports"))
            .header("x-forwarded-for", from)
            .json(body)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The Prometheus text of /metrics.
    pub async fn metrics_text(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("request")
            .text()
            .await
            .expect("body")
    }

    /// Total reports of a service over the last `window` per /series.
    pub async fn series_total(&self, service: &str, window: &str) -> u64 {
        let (status, body) = self
            .get(&format!(
                "/api/v1/services/{service}/series?window={window}&step=1m"
            ))
            .await;
        assert_eq!(status, 200, "{body}");
        body["points"]
            .as_array()
            .expect("points")
            .iter()
            .map(|p| p["reports"].as_u64().expect("reports"))
            .sum()
    }

    pub async fn import(&self, ndjson: String) -> (u16, Value) {
        let response = self
            .client
            .post(self.url("/api/v1/admin/import"))
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "application/x-ndjson")
            .body(ndjson)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Graceful stop: drains requests and flushes the writer.
    pub async fn stop(self) {
        self.handle.stop(true).await;
        self.task.await.expect("join").expect("clean stop");
    }
}
