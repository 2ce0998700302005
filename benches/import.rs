//! History import benchmark: 1,000,000 NDJSON lines in ONE
//! `POST /api/v1/admin/import` against outagewatch on its own redis-server.
//!
//! Run: `cargo bench --bench import` (env: BENCH_IMPORT_RUNS=3,
//! BENCH_IMPORT_LINES=1000000 — a multiple of the 20 services).
//!
//! Lines: 20 services × 50,000 minutes back from now (about 34.7 days, inside
//! the 36-day retention), time-ordered like an export, counts 1..=40, every
//! third line with a problem and every fifth with a country. Each run starts
//! from an empty Redis (FLUSHALL); the answer must say accepted = all lines,
//! rejected_count = 0 and reports = the sum of the counts. Reported: wall time
//! from the first byte sent to the parsed answer, lines/s, the median of the
//! runs, plus Redis' command counts and CPU by thread group.

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use support::{CpuSample, RedisServer, ServerThread};

const ADMIN_TOKEN: &str = "bench-admin-token";

const SERVICES: [&str; 20] = [
    "whatsapp",
    "facebook",
    "instagram",
    "threads",
    "messenger",
    "x",
    "reddit",
    "discord",
    "netflix",
    "spotify",
    "steam",
    "gmail",
    "tiktok",
    "snapchat",
    "linkedin",
    "pinterest",
    "telegram",
    "signal",
    "slack",
    "youtube",
];
const PROBLEMS: [&str; 2] = ["outage", "other"];
const COUNTRIES: [&str; 5] = ["BR", "US", "DE", "IN", "GB"];

/// The NDJSON body and the sum of its counts.
fn generate(lines: usize, now: i64) -> (Vec<u8>, u64) {
    use std::io::Write as _;
    let minutes = lines / SERVICES.len();
    let now_minute = now.div_euclid(60);
    let mut body = Vec::with_capacity(lines * 100);
    let mut reports = 0u64;
    let mut n = 0usize;
    // Oldest first, every service in each minute.
    for back in (1..=minutes as i64).rev() {
        let at = chrono::DateTime::from_timestamp((now_minute - back) * 60, 0)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        for service in SERVICES {
            let count = (n * 7 + back as usize) % 40 + 1;
            reports += count as u64;
            // Writing into a Vec cannot fail.
            let _ = write!(
                body,
                r#"{{"service":"{service}","at":"{at}","count":{count}"#
            );
            if n.is_multiple_of(3) {
                let _ = write!(body, r#","problem":"{}""#, PROBLEMS[n % 2]);
            }
            if n.is_multiple_of(5) {
                let _ = write!(body, r#","country":"{}""#, COUNTRIES[(n / 5) % 5]);
            }
            body.extend_from_slice(b"}\n");
            n += 1;
        }
    }
    (body, reports)
}

struct RunResult {
    secs: f64,
    answer: Value,
    imported_metric: f64,
    redis_stats: BTreeMap<String, (u64, u64)>,
    dbsize: u64,
    /// Bytes Redis holds after the import, less what it held empty.
    memory: u64,
    cpu: Vec<(String, f64)>,
}

async fn run_once(
    client: &reqwest::Client,
    ow: &ServerThread,
    redis: &RedisServer,
    body: bytes::Bytes,
) -> anyhow::Result<RunResult> {
    redis.flushall()?;
    redis.reset_stats()?;
    let empty = redis.used_memory()?;
    let before = support::scrape(ow.addr())?;
    let cpu_before = CpuSample::take(Some(redis.pid()));
    let url = format!("http://{}/api/v1/admin/import", ow.addr());
    let started = Instant::now();
    let response = client
        .post(url)
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .context("sending the import")?;
    let status = response.status().as_u16();
    let text = response.text().await.context("reading the answer")?;
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_before.cores_until(&CpuSample::take(Some(redis.pid())));
    if status != 200 {
        bail!(
            "import answered {status}: {}",
            text.chars().take(2000).collect::<String>()
        );
    }
    let answer: Value = serde_json::from_str(&text).context("import answer is not JSON")?;
    let after = support::scrape(ow.addr())?;
    Ok(RunResult {
        secs,
        answer,
        imported_metric: support::delta(&before, &after, "outagewatch_reports_imported_total"),
        redis_stats: redis.command_stats()?,
        dbsize: redis.dbsize()?,
        memory: redis.used_memory()?.saturating_sub(empty),
        cpu,
    })
}

fn main() -> anyhow::Result<()> {
    let runs: usize = support::env_or("BENCH_IMPORT_RUNS", 3)?;
    let lines: usize = support::env_or("BENCH_IMPORT_LINES", 1_000_000)?;
    if runs == 0 || lines == 0 || !lines.is_multiple_of(SERVICES.len()) {
        bail!("BENCH_IMPORT_RUNS must be > 0, BENCH_IMPORT_LINES a positive multiple of 20");
    }
    let command =
        format!("BENCH_IMPORT_RUNS={runs} BENCH_IMPORT_LINES={lines} cargo bench --bench import");
    support::print_header("import", &command);

    let redis = RedisServer::start_on_tcp()?;
    let mut settings = outagewatch::config::Settings::defaults();
    settings.http.bind = "127.0.0.1:0".into();
    settings.http.workers = 1;
    settings.store.redis_url = redis.url();
    settings.admin.token = ADMIN_TOKEN.into();
    settings.intake.reporter_secret = "bench-reporter-secret".into();
    let flush_lines = settings.import.flush_lines;
    let ow = ServerThread::outagewatch(settings)?;

    let generated = Instant::now();
    let (body, expected_reports) = generate(lines, chrono::Utc::now().timestamp());
    let body = bytes::Bytes::from(body);
    println!(
        "  body: {lines} lines, {:.1} MB, {expected_reports} reports, generated in {:.2} s; import.flush_lines = {flush_lines}; 1 HTTP worker",
        body.len() as f64 / 1e6,
        generated.elapsed().as_secs_f64()
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("loadgen")
        .enable_all()
        .build()?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()?;
    println!(
        "\n  {:<4} {:>9} {:>12} {:>9} {:>9} {:>11} {:>9}",
        "run", "wall s", "lines/s", "accepted", "rejected", "reports", "keys"
    );
    let mut results = Vec::new();
    for run in 1..=runs {
        let r = runtime.block_on(run_once(&client, &ow, &redis, body.clone()))?;
        let field = |k: &str| r.answer[k].as_u64().unwrap_or(u64::MAX);
        println!(
            "  {:<4} {:>9.2} {:>12.0} {:>9} {:>9} {:>11} {:>9}",
            run,
            r.secs,
            lines as f64 / r.secs,
            field("accepted"),
            field("rejected_count"),
            field("reports"),
            r.dbsize
        );
        println!(
            "       Redis holds {:.1} MB for the {} services: {:.0} KB per service ({:.1} days of history)",
            r.memory as f64 / 1e6,
            SERVICES.len(),
            r.memory as f64 / 1e3 / SERVICES.len() as f64,
            (lines / SERVICES.len()) as f64 / 1440.0
        );
        if field("accepted") != lines as u64 || field("rejected_count") != 0 {
            bail!(
                "expected accepted = {lines}, rejected_count = 0; got {}",
                r.answer.to_string().chars().take(2000).collect::<String>()
            );
        }
        if field("reports") != expected_reports || r.imported_metric != expected_reports as f64 {
            bail!(
                "expected {expected_reports} reports; answer says {}, outagewatch_reports_imported_total grew by {}",
                field("reports"),
                r.imported_metric
            );
        }
        results.push(r);
    }
    for (i, r) in results.iter().enumerate() {
        let calls: Vec<String> = r
            .redis_stats
            .iter()
            .filter(|(name, (calls, _))| *calls > 0 && !name.starts_with("config"))
            .map(|(name, (calls, usec))| {
                format!("{name} {calls} calls {:.2} s", *usec as f64 / 1e6)
            })
            .collect();
        println!("\n  run {}: redis {}", i + 1, calls.join(", "));
        println!("    CPU, cores busy during the import:");
        println!("{}", support::format_cores(&r.cpu));
    }
    let times: Vec<f64> = results.iter().map(|r| r.secs).collect();
    let median = support::median(&times);
    println!("\n================ summary ================");
    println!("  reproduce: {command}");
    println!(
        "  wall times: {} s",
        times
            .iter()
            .map(|t| format!("{t:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  MEDIAN {median:.2} s for {lines} lines = {:.0} lines/s ({:.1} MB/s of NDJSON); accepted = {lines}, rejected_count = 0 in every run",
        lines as f64 / median,
        body.len() as f64 / 1e6 / median
    );

    runtime.shutdown_timeout(Duration::from_secs(2));
    ow.stop()?;
    drop(redis);
    Ok(())
}
