//! Test harness: a throwaway `redis-server` per test (the one the
//! benchmarks use too, `tests/support/redis_server.rs`: own temp dir, own
//! unix socket, killed and reaped on drop) and the app on a free port.

use std::time::{Duration, Instant};

use outagewatch::app::Application;
use outagewatch::config::Settings;
use serde_json::Value;

#[path = "../support/redis_server.rs"]
mod redis_server;
pub use self::redis_server::RedisServer;
#[path = "../support/redis_cluster.rs"]
mod redis_cluster;
pub use self::redis_cluster::RedisCluster;

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

impl RedisServer {
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|e| panic!("connect to test redis: {e}\n{}", self.log()))
    }
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
    settings.intake.reporter_secret = "test-reporter-secret".into();
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

/// What a test that needs Redis runs on: one server, or a cluster of three
/// masters and three replicas. [`on_each_backend!`] runs a test on both.
pub enum Backend {
    One(RedisServer),
    Cluster(RedisCluster),
}

impl Backend {
    pub fn one() -> Backend {
        Backend::One(RedisServer::start().expect("redis-server"))
    }

    pub fn cluster() -> Backend {
        Backend::Cluster(RedisCluster::start().expect("redis cluster"))
    }

    /// [`test_settings`] pointed at it.
    pub fn settings(&self) -> Settings {
        match self {
            Backend::One(redis) => test_settings(Some(&redis.url())),
            Backend::Cluster(cluster) => {
                let mut s = test_settings(None);
                s.store.redis_cluster_nodes = cluster.seeds();
                s
            }
        }
    }
}

/// `on_each_backend!(name)`: runs `async fn name(backend: Backend)` as two
/// tests, `name::one` and `name::cluster`.
macro_rules! on_each_backend {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn one() {
                    super::$name(crate::helpers::Backend::one()).await;
                }

                #[tokio::test]
                async fn cluster() {
                    super::$name(crate::helpers::Backend::cluster()).await;
                }
            }
        )+
    };
}
pub(crate) use on_each_backend;

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

    /// On `backend`: one Redis or a cluster.
    pub async fn on(backend: &Backend) -> TestApp {
        TestApp::spawn(backend.settings()).await
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
