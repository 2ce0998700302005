//! Redis failing under the intake: paused (SIGSTOP), killed and restarted, and
//! the app shut down mid-load. Nothing acknowledged may be lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::helpers::{RedisServer, TestApp, address, eventually};

const SERVICES: [&str; 4] = ["whatsapp", "facebook", "instagram", "threads"];

#[derive(Debug, Clone)]
struct Answer {
    key: String,
    service: &'static str,
    status: u16,
    counted: bool,
    retry_after: bool,
    elapsed: Duration,
}

async fn send(app: &TestApp, key: &str, service: &'static str) -> Answer {
    try_send(app, key, service)
        .await
        .expect("the server answers")
}

/// A network index for a key, spread over 65,536 networks.
fn network_of(key: &str) -> usize {
    key.bytes()
        .fold(17usize, |h, b| h.wrapping_mul(31).wrapping_add(b.into()))
        % 65_536
}

/// `None` when the connection fails (the server is gone).
async fn try_send(app: &TestApp, key: &str, service: &'static str) -> Option<Answer> {
    let started = Instant::now();
    let response = app
        .client
        .post(app.url("/api/v1/reports"))
        .header("idempotency-key", key)
        // Each key's reporter on a network of its own (almost always), so
        // the per-network cap leaves the counts to the faults.
        .header("x-forwarded-for", address(network_of(key)))
        .json(&json!({"service": service, "problem": "login", "client_id": key}))
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    let retry_after = response.headers().contains_key("retry-after");
    let body: Value = response.json().await.unwrap_or(Value::Null);
    Some(Answer {
        key: key.to_string(),
        service,
        status,
        counted: body["counted"].as_bool().unwrap_or(false),
        retry_after,
        elapsed: started.elapsed(),
    })
}

async fn stored_total(app: &TestApp) -> u64 {
    let mut total = 0;
    for s in SERVICES {
        total += app.series_total(s, "15m").await;
    }
    total
}

/// Concurrent clients sending distinct reports until `stop`.
struct Load {
    answers: Arc<Mutex<Vec<Answer>>>,
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    unavailable: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(app: &Arc<TestApp>, clients: usize) -> Load {
        let load = Load {
            answers: Arc::default(),
            stop: Arc::default(),
            ok: Arc::default(),
            unavailable: Arc::default(),
            tasks: Vec::new(),
        };
        let tasks = (0..clients)
            .map(|c| {
                let (app, answers, stop) = (app.clone(), load.answers.clone(), load.stop.clone());
                let (ok, unavailable) = (load.ok.clone(), load.unavailable.clone());
                tokio::spawn(async move {
                    // Bounded: a run never sends more than this.
                    for i in 0..5_000 {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let key = format!("c{c}-{i}");
                        let Some(answer) = try_send(&app, &key, SERVICES[i % SERVICES.len()]).await
                        else {
                            break; // the server stopped
                        };
                        match answer.status {
                            202 => ok.fetch_add(1, Ordering::Relaxed),
                            _ => unavailable.fetch_add(1, Ordering::Relaxed),
                        };
                        answers.lock().await.push(answer);
                    }
                })
            })
            .collect();
        Load { tasks, ..load }
    }

    async fn wait_for(&self, what: &str, counter: &AtomicUsize, at_least: usize) {
        eventually(what, Duration::from_secs(30), || async {
            (counter.load(Ordering::Relaxed) >= at_least).then_some(())
        })
        .await;
    }

    async fn finish(self) -> Vec<Answer> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.expect("client task");
        }
        Arc::try_unwrap(self.answers)
            .expect("sole owner")
            .into_inner()
    }
}

#[tokio::test]
async fn paused_redis_gets_fast_503s_recovers_without_restart_and_loses_nothing() {
    let mut redis = RedisServer::start().expect("redis-server");
    let app = Arc::new(TestApp::with_redis(&redis).await);
    let load = Load::start(&app, 16);
    load.wait_for("202s before the pause", &load.ok, 300).await;
    redis.pause().expect("pause redis");
    load.wait_for("503s while paused", &load.unavailable, 50)
        .await;
    let ok_before_resume = load.ok.load(Ordering::Relaxed);
    redis.resume().expect("resume redis");
    load.wait_for("202s after the resume", &load.ok, ok_before_resume + 300)
        .await;
    let answers = load.finish().await;

    for a in &answers {
        assert!(a.status == 202 || a.status == 503, "{a:?}");
        assert!(
            a.elapsed < Duration::from_millis(1500),
            "answered within about a second: {a:?}"
        );
        assert_eq!(
            a.status == 503,
            a.retry_after,
            "503 carries Retry-After: {a:?}"
        );
    }
    let counted = answers
        .iter()
        .filter(|a| a.status == 202 && a.counted)
        .count() as u64;
    let unavailable = answers.iter().filter(|a| a.status == 503).count() as u64;
    assert!(unavailable >= 50);
    let slowest = answers.iter().map(|a| a.elapsed).max().unwrap_or_default();
    eprintln!(
        "pause test: {} answers, {counted} counted 202s, {unavailable} 503s, slowest {slowest:?}",
        answers.len()
    );
    let stored = stored_total(&app).await;
    assert!(
        counted <= stored && stored <= counted + unavailable,
        "acknowledged {counted} <= stored {stored} <= acknowledged + 503s {}",
        counted + unavailable
    );

    // A client that retries its 503s with the same Idempotency-Key makes the
    // books balance exactly: a write that landed late is replayed, not recounted.
    let retried: Vec<Answer> =
        futures_util::stream::iter(answers.iter().filter(|a| a.status == 503))
            .map(|a| {
                let app = app.clone();
                async move {
                    let answer = send(&app, &a.key, a.service).await;
                    assert_eq!(answer.status, 202, "{answer:?}");
                    answer
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
    let counted_after_retries = counted + retried.iter().filter(|a| a.counted).count() as u64;
    assert_eq!(stored_total(&app).await, counted_after_retries);
    Arc::try_unwrap(app).ok().expect("sole owner").stop().await;
}

#[tokio::test]
async fn killed_redis_gets_fast_503s_and_intake_reconnects_after_restart() {
    let mut redis = RedisServer::start().expect("redis-server");
    let app = TestApp::with_redis(&redis).await;
    assert_eq!(send(&app, "before", "whatsapp").await.status, 202);
    redis.kill();
    let down = send(&app, "down", "whatsapp").await;
    assert_eq!(down.status, 503, "{down:?}");
    assert!(down.elapsed < Duration::from_millis(1500), "{down:?}");
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "store_unavailable");
    let (status, _) = app.get("/api/v1/services").await;
    assert_eq!(
        status, 200,
        "the registry still serves while the store is down"
    );
    redis.restart().expect("restart redis");
    let mut attempt = 0;
    eventually("intake to reconnect", Duration::from_secs(15), || {
        attempt += 1;
        let key = format!("after-{attempt}");
        let app = &app;
        async move { (send(app, &key, "whatsapp").await.status == 202).then_some(()) }
    })
    .await;
    assert_eq!(app.get("/readyz").await.0, 200);
    app.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_finishes_waiting_reports_and_loses_none() {
    let mut redis = RedisServer::start().expect("redis-server");
    let app = Arc::new(TestApp::with_redis(&redis).await);
    let load = Load::start(&app, 32);
    load.wait_for("some reports", &load.ok, 200).await;
    // Hold the writes so that requests are waiting when the stop begins.
    redis.pause().expect("pause redis");
    let stopping = tokio::spawn(app.handle.clone().stop(true));
    let port = app.address.rsplit(':').next().unwrap().to_string();
    eventually(
        "the server to stop accepting",
        Duration::from_secs(10),
        || {
            let port = port.clone();
            async move {
                tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
                    .await
                    .err()
                    .map(|_| ())
            }
        },
    )
    .await;
    redis.resume().expect("resume redis");
    stopping.await.unwrap();
    let answers = load.finish().await;
    let app = Arc::try_unwrap(app).ok().expect("sole owner");
    app.task
        .await
        .expect("join")
        .expect("clean stop after flushing the writer");

    let counted = answers
        .iter()
        .filter(|a| a.status == 202 && a.counted)
        .count() as u64;
    let unavailable = answers.iter().filter(|a| a.status == 503).count() as u64;
    assert!(answers.iter().all(|a| a.status == 202 || a.status == 503));
    // Read the books through a fresh app on the same Redis.
    let reader = TestApp::with_redis(&redis).await;
    let stored = stored_total(&reader).await;
    assert!(
        counted <= stored && stored <= counted + unavailable,
        "{counted} <= {stored} <= {}",
        counted + unavailable
    );
    reader.stop().await;
}
