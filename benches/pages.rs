//! A status page under a flood of readers, while reports flood in too.
//!
//! `cargo bench --bench pages` (needs `wrk` and `redis-server` on PATH):
//! - starts its own redis-server and outagewatch on it, imports a day of
//!   WhatsApp history, and keeps posting reports for WhatsApp at a fixed rate
//!   (`PAGES_REPORTS_PER_SEC`, 300) from a thread of its own: a flood of
//!   reporters beside the flood of readers;
//! - runs `wrk --latency` on `/status/whatsapp` (`PAGES_SECS`, 8 s;
//!   `PAGES_CONNECTIONS`, 32) against three servers in turn, `PAGES_RUNS`
//!   (3) rounds: a bare actix handler serving the same page from memory (the
//!   reference), outagewatch with its read cache (`web.read_cache_ms` 1000,
//!   the default) and outagewatch without it (0);
//! - reads Redis INFO commandstats around each phase and subtracts the
//!   reporters' own commands (measured in a phase with no readers), giving
//!   Redis commands per page view.
//!
//! Prints req/s, p99 and commands per view per phase, and medians.

mod support;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;
use outagewatch::config::Settings;
use support::{RedisServer, ServerThread, env_or, find, http_get};

struct Phase {
    rps: f64,
    p99_ms: f64,
    commands_per_view: Option<f64>,
}

/// Posts reports over one keep-alive connection at `rate` per second until
/// `stop`; each from a new reporter, so each counts.
fn reporters(addr: SocketAddr, rate: f64, stop: Arc<AtomicBool>, sent: Arc<AtomicU64>) {
    let mut conn: Option<TcpStream> = None;
    let started = Instant::now();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let due = started + Duration::from_secs_f64(n as f64 / rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let body = format!(r#"{{"service":"whatsapp","problem":"login","client_id":"flood-{n}"}}"#);
        let request = format!(
            "POST /api/v1/reports HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let stream = match conn.as_mut() {
            Some(s) => s,
            None => match TcpStream::connect(addr) {
                Ok(s) => conn.insert(s),
                Err(_) => continue,
            },
        };
        let mut answer = [0u8; 1024];
        let ok = stream.write_all(request.as_bytes()).is_ok()
            && matches!(stream.read(&mut answer), Ok(k) if k > 0 && find(&answer[..k], b" 202 ").is_some());
        if ok {
            sent.fetch_add(1, Ordering::Relaxed);
        } else {
            conn = None;
        }
        n += 1;
    }
}

/// `wrk --latency` for `secs`: (requests/s, p99 ms, requests).
fn wrk(url: &str, secs: u64, connections: u32) -> anyhow::Result<(f64, f64, f64)> {
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{secs}s"),
            "--latency",
            url,
        ])
        .output()
        .context("running wrk (install it: apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .with_context(|| format!("no Requests/sec in {text}"))?;
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(|v| v.trim().to_string())
        .with_context(|| format!("no p99 in {text}"))?;
    let p99_ms = if let Some(us) = p99.strip_suffix("us") {
        us.parse::<f64>()? / 1000.0
    } else if let Some(ms) = p99.strip_suffix("ms") {
        ms.parse::<f64>()?
    } else if let Some(s) = p99.strip_suffix('s') {
        s.parse::<f64>()? * 1000.0
    } else {
        anyhow::bail!("p99 {p99}")
    };
    let requests = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(rps * secs as f64);
    if text.contains("Non-2xx") {
        anyhow::bail!("wrk saw errors: {text}");
    }
    Ok((rps, p99_ms, requests))
}

fn total_commands(redis: &RedisServer) -> anyhow::Result<u64> {
    Ok(redis
        .command_stats()?
        .values()
        .map(|(calls, _)| calls)
        .sum())
}

/// The same page, served from memory by a bare actix handler.
fn reference(page: String) -> anyhow::Result<ServerThread> {
    ServerThread::spawn("reference", move || async move {
        let page = web::Data::new(page);
        let server = HttpServer::new(move || {
            App::new().app_data(page.clone()).route(
                "/status/whatsapp",
                web::get().to(|p: web::Data<String>| async move {
                    HttpResponse::Ok()
                        .content_type("text/html; charset=utf-8")
                        .body(p.get_ref().clone())
                }),
            )
        })
        .workers(2)
        .bind(("127.0.0.1", 0))?;
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        Ok((port, handle, async move { Ok(server.await?) }))
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let secs: u64 = env_or("PAGES_SECS", 8)?;
    let runs: usize = env_or("PAGES_RUNS", 3)?;
    let connections: u32 = env_or("PAGES_CONNECTIONS", 32)?;
    let rate: f64 = env_or("PAGES_REPORTS_PER_SEC", 300.0)?;
    let redis = RedisServer::start_on_tcp()?;
    let server = |cache_ms: u64| -> anyhow::Result<ServerThread> {
        let mut s = Settings::defaults();
        s.store.redis_url = redis.url();
        s.intake.reporter_secret = "bench-reporter-secret".into();
        s.http.bind = "127.0.0.1:0".into();
        s.http.workers = 2;
        s.intake.rate_limit_per_minute = 0;
        s.worker.enabled = false;
        s.web.read_cache_ms = cache_ms;
        ServerThread::outagewatch(s)
    };
    let cached = server(1000)?;
    let uncached = server(0)?;
    let (status, page) = http_get(cached.addr(), "/status/whatsapp")?;
    anyhow::ensure!(status == 200, "status page answered {status}");
    let reference = reference(page.clone())?;
    println!(
        "page {} bytes; {secs} s per phase, {connections} connections, reports at {rate}/s",
        page.len()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let flood = {
        let (stop, sent, addr) = (stop.clone(), sent.clone(), cached.addr());
        std::thread::spawn(move || reporters(addr, rate, stop, sent))
    };
    // The reporters' own Redis commands per second, with no readers.
    std::thread::sleep(Duration::from_secs(1));
    let t0 = Instant::now();
    let c0 = total_commands(&redis)?;
    std::thread::sleep(Duration::from_secs(secs));
    let flood_per_sec = (total_commands(&redis)? - c0) as f64 / t0.elapsed().as_secs_f64();
    println!("reporters alone: {flood_per_sec:.0} Redis commands/s");

    let mut results: Vec<(&str, Vec<Phase>)> = vec![
        ("reference", vec![]),
        ("cached", vec![]),
        ("uncached", vec![]),
    ];
    for run in 1..=runs {
        for (name, phases) in results.iter_mut() {
            let addr = match *name {
                "reference" => reference.addr(),
                "cached" => cached.addr(),
                _ => uncached.addr(),
            };
            let t = Instant::now();
            let before = total_commands(&redis)?;
            let (rps, p99_ms, requests) =
                wrk(&format!("http://{addr}/status/whatsapp"), secs, connections)?;
            let spent = (total_commands(&redis)? - before) as f64
                - flood_per_sec * t.elapsed().as_secs_f64();
            let commands_per_view = (*name != "reference").then(|| spent.max(0.0) / requests);
            println!(
                "run {run} {name:<9} {rps:>9.0} req/s  p99 {p99_ms:>7.2} ms  {}",
                commands_per_view.map_or(String::new(), |c| format!("{c:.4} Redis commands/view"))
            );
            phases.push(Phase {
                rps,
                p99_ms,
                commands_per_view,
            });
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = flood.join();
    println!(
        "reports posted during the bench: {}",
        sent.load(Ordering::Relaxed)
    );
    let reference_rps = median(results[0].1.iter().map(|p| p.rps).collect());
    for (name, phases) in &results {
        let rps = median(phases.iter().map(|p| p.rps).collect());
        let p99 = median(phases.iter().map(|p| p.p99_ms).collect());
        let per_view = phases
            .iter()
            .filter_map(|p| p.commands_per_view)
            .collect::<Vec<_>>();
        println!(
            "median {name:<9} {rps:>9.0} req/s ({:.2}x reference)  p99 {p99:.2} ms{}",
            rps / reference_rps,
            if per_view.is_empty() {
                String::new()
            } else {
                format!("  {:.4} Redis commands/view", median(per_view))
            }
        );
    }
    Ok(())
}
