//! The OpenAPI document against the live server: schemathesis (installed by
//! the README's test command) generates requests from `/api/openapi.json`,
//! valid and invalid, and checks every answer: no 5xx, status codes, content
//! types, headers and bodies as documented, invalid input refused, valid
//! input accepted. The server runs on a real Redis, with an incident in the
//! feed so that the routes that read one have one.

use std::path::PathBuf;
use std::process::Command;

use crate::detection::{history, spike};
use crate::helpers::{ADMIN_TOKEN, RedisServer, TestApp};

/// The schemathesis beside the test Python (`OUTAGEWATCH_TEST_PYTHON`).
fn schemathesis() -> PathBuf {
    let python = std::env::var("OUTAGEWATCH_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("OUTAGEWATCH_TEST_PYTHON is not set: run the tests with scripts/test.sh, which installs schemathesis")
    });
    PathBuf::from(python).with_file_name("schemathesis")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_answer_that_breaks_the_document() {
    let redis = RedisServer::start().await;
    let app = TestApp::with_redis(&redis).await;
    let now = chrono::Utc::now().timestamp();
    let (status, body) = app.import(history("whatsapp", now)).await;
    assert_eq!(status, 200, "{body}");
    let mut worker = app.worker();
    worker.step(now).await.expect("tick");
    spike(&app, "whatsapp", 150, "schema").await;
    worker
        .step(chrono::Utc::now().timestamp() + 60)
        .await
        .expect("tick");

    let binary = schemathesis();
    let url = app.url("/api/openapi.json");
    let auth = format!("Authorization: Bearer {ADMIN_TOKEN}");
    let args: Vec<String> = [
        "run",
        url.as_str(),
        "--checks",
        "all",
        // Leaves the event stream out: it never ends by design.
        "--exclude-path",
        "/api/v1/anomalies/stream",
        "--max-examples",
        "30",
        "--seed",
        "1",
        "--workers",
        "2",
        "--header",
        auth.as_str(),
    ]
    .map(String::from)
    .into();
    // Blocking, on its own thread: the app keeps serving on the runtime.
    let output = tokio::task::spawn_blocking(move || {
        Command::new(&binary)
            .args(&args)
            .env("NO_COLOR", "1")
            .output()
            .unwrap_or_else(|e| panic!("cannot start {binary:?} ({e}): run scripts/test.sh"))
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "schemathesis failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("No issues found"), "{stdout}");
    app.stop().await;
}
