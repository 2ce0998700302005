//! Shared by the benches: a throwaway `redis-server` on a free loopback TCP
//! port (the tests' own, `tests/support/redis_server.rs`) or Redis Cluster
//! (`tests/support/redis_cluster.rs`), servers on their own actix system thread (as `main.rs` runs them),
//! a tiny HTTP GET, Prometheus text parsing, Redis `INFO commandstats` and
//! per-thread CPU accounting from `/proc`, and a report's first lines (the
//! command, the machine, the date).
//!
//! Each bench uses a subset of this module.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use anyhow::{Context, bail};
use outagewatch::app::Application;
use outagewatch::config::Settings;

#[path = "../../tests/support/redis_server.rs"]
mod redis_server;
pub use self::redis_server::RedisServer;
#[path = "../../tests/support/redis_cluster.rs"]
mod redis_cluster;
// Only the cluster bench uses it.
#[allow(unused_imports)]
pub use self::redis_cluster::RedisCluster;

pub const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// An environment variable parsed as `T`, or `default` when unset.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Ok(raw) => raw
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("{name}={raw:?} is not a valid value")),
        Err(_) => Ok(default),
    }
}

/// Commands the benchmarks send to their own `redis-server`.
impl RedisServer {
    pub fn flushall(&self) -> anyhow::Result<()> {
        self.command(&["FLUSHALL"]).map(drop)
    }

    pub fn dbsize(&self) -> anyhow::Result<u64> {
        Ok(self.command(&["DBSIZE"])?.parse()?)
    }

    pub fn reset_stats(&self) -> anyhow::Result<()> {
        self.command(&["CONFIG", "RESETSTAT"]).map(drop)
    }

    /// `INFO memory`'s `used_memory`: bytes the data takes.
    pub fn used_memory(&self) -> anyhow::Result<u64> {
        let info = self.command(&["INFO", "memory"])?;
        info.lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .context("no used_memory in INFO memory")
    }

    /// `INFO commandstats`: command name → (calls, microseconds).
    pub fn command_stats(&self) -> anyhow::Result<BTreeMap<String, (u64, u64)>> {
        let info = self.command(&["INFO", "commandstats"])?;
        let mut out = BTreeMap::new();
        for line in info.lines() {
            // cmdstat_evalsha:calls=12,usec=345,usec_per_call=28.75,...
            let Some((name, fields)) = line
                .strip_prefix("cmdstat_")
                .and_then(|l| l.split_once(':'))
            else {
                continue;
            };
            let field = |key: &str| {
                fields
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            out.insert(name.to_string(), (field("calls"), field("usec")));
        }
        Ok(out)
    }
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A server running on its own thread under its own actix system (like
/// `main.rs`), so its background tasks (for outagewatch: the group-commit
/// writer and the Redis connection) do not share a runtime with the load
/// generator. Stopped gracefully and joined on drop.
pub struct ServerThread {
    pub port: u16,
    handle: ServerHandle,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl ServerThread {
    /// `start` runs on the new thread and returns the port, the server handle
    /// and the future that serves until stopped.
    pub fn spawn<F, Fut, R>(thread_name: &str, start: F) -> anyhow::Result<ServerThread>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<(u16, ServerHandle, R)>>,
        R: Future<Output = anyhow::Result<()>>,
    {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(thread_name.to_string())
            .spawn(move || {
                actix_web::rt::System::new().block_on(async move {
                    match start().await {
                        Ok((port, handle, serve)) => {
                            let _ = tx.send(Ok((port, handle)));
                            serve.await
                        }
                        Err(e) => {
                            let _ = tx.send(Err(format!("{e:#}")));
                            Err(e)
                        }
                    }
                })
            })
            .context("spawning a server thread")?;
        let (port, handle) = rx
            .recv_timeout(Duration::from_secs(30))
            .context("server did not start within 30 s")?
            .map_err(|e| anyhow::anyhow!("server failed to start: {e}"))?;
        Ok(ServerThread {
            port,
            handle,
            thread: Some(thread),
        })
    }

    /// outagewatch itself, built from `settings`.
    pub fn outagewatch(settings: Settings) -> anyhow::Result<ServerThread> {
        ServerThread::spawn("ow-system", move || async move {
            let app = Application::build(settings).await?;
            let (port, handle) = (app.port(), app.server_handle());
            Ok((port, handle, app.run_until_stopped()))
        })
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((LOOPBACK, self.port))
    }

    /// Graceful stop (outagewatch flushes its writer), then join the thread.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> anyhow::Result<()> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        // The command is sent when `stop` is called; completion is observed
        // by joining the thread, whose system ends when the server does.
        drop(self.handle.stop(true));
        thread
            .join()
            .map_err(|_| anyhow::anyhow!("server thread panicked"))?
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}

/// A blocking `GET path` over a fresh connection; returns (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let head_end = find(&raw, b"\r\n\r\n").context("no end of headers")?;
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("bad status line")?;
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        bail!("chunked answers are not supported here");
    }
    Ok((
        status,
        String::from_utf8_lossy(&raw[head_end + 4..]).into_owned(),
    ))
}

/// Prometheus text format: every sample line, `name{labels}` → value.
pub fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// outagewatch's metrics, fetched from its /metrics.
pub fn scrape(addr: SocketAddr) -> anyhow::Result<BTreeMap<String, f64>> {
    let (status, body) = http_get(addr, "/metrics")?;
    if status != 200 {
        bail!("GET /metrics answered {status}");
    }
    Ok(parse_metrics(&body))
}

/// `after - before` of one sample (0 when absent).
pub fn delta(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>, key: &str) -> f64 {
    after.get(key).copied().unwrap_or(0.0) - before.get(key).copied().unwrap_or(0.0)
}

/// CPU time by thread group of this process plus redis-server, from /proc.
#[derive(Clone)]
pub struct CpuSample {
    at: Instant,
    ticks: BTreeMap<String, u64>,
    machine_busy: u64,
    machine_steal: u64,
    machine_total: u64,
}

/// (utime + stime) in clock ticks and the comm of a /proc/.../stat line.
fn stat_ticks(text: &str) -> Option<(String, u64)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text[open + 1..close].to_string();
    let rest: Vec<&str> = text[close + 1..].split_whitespace().collect();
    // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

/// Groups threads by the name their creator gave them.
fn group_of(comm: &str) -> &'static str {
    if comm.starts_with("actix-rt|system") || comm.starts_with("actix-server wo") {
        // actix-server names worker threads "actix-rt|system:0|arbiter:N".
        "HTTP worker (actix)"
    } else if comm.starts_with("actix-server ac") {
        "HTTP acceptor (actix)"
    } else if comm == "ow-system" {
        "ow system thread (writer, Redis client)"
    } else if comm == "ref-system" {
        "ref system thread"
    } else if comm.starts_with("loadgen") {
        "load generator"
    } else {
        "bench main / other"
    }
}

/// CPU seconds process `pid` has used (all its threads), from `/proc`.
pub fn process_cpu_secs(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, ticks) = stat_ticks(&text)?;
    Some(ticks as f64 / clock_ticks_per_sec())
}

impl CpuSample {
    pub fn take(redis_pid: Option<u32>) -> CpuSample {
        let mut ticks: BTreeMap<String, u64> = BTreeMap::new();
        if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
            for task in tasks.flatten() {
                let Ok(text) = std::fs::read_to_string(task.path().join("stat")) else {
                    continue;
                };
                if let Some((comm, t)) = stat_ticks(&text) {
                    *ticks.entry(group_of(&comm).to_string()).or_default() += t;
                }
            }
        }
        if let Some(pid) = redis_pid {
            // Whole process: the main thread plus redis' background threads.
            if let Some((_, t)) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .as_deref()
                .and_then(stat_ticks)
            {
                ticks.insert("redis-server".to_string(), t);
            }
        }
        let (mut busy, mut steal, mut total) = (0, 0, 0);
        if let Ok(stat) = std::fs::read_to_string("/proc/stat")
            && let Some(line) = stat.lines().find(|l| l.starts_with("cpu "))
        {
            let v: Vec<u64> = line
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            // user nice system idle iowait irq softirq steal (guest* are in user)
            total = v.iter().take(8).sum();
            let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
            steal = v.get(7).copied().unwrap_or(0);
            busy = total - idle - steal;
        }
        CpuSample {
            at: Instant::now(),
            ticks,
            machine_busy: busy,
            machine_steal: steal,
            machine_total: total,
        }
    }

    /// Cores used by each group between `self` and `later` (1.0 = one core
    /// busy the whole time), plus the machine's busy and steal cores.
    pub fn cores_until(&self, later: &CpuSample) -> Vec<(String, f64)> {
        let hz = clock_ticks_per_sec();
        let secs = later.at.duration_since(self.at).as_secs_f64().max(1e-9);
        let mut out: Vec<(String, f64)> = later
            .ticks
            .iter()
            .map(|(group, &t)| {
                let before = self.ticks.get(group).copied().unwrap_or(0);
                (group.clone(), t.saturating_sub(before) as f64 / hz / secs)
            })
            .filter(|(_, cores)| *cores >= 0.005)
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1));
        let ours: f64 = out.iter().map(|(_, c)| c).sum();
        let per_core = |t: u64| t as f64 / hz / secs;
        let machine_cores =
            (later.machine_total.saturating_sub(self.machine_total)) as f64 / hz / secs;
        let busy = per_core(later.machine_busy.saturating_sub(self.machine_busy));
        out.push((
            format!("machine, all processes (of {machine_cores:.1} cores)"),
            busy,
        ));
        out.push((
            "machine, other processes (not ours)".to_string(),
            (busy - ours).max(0.0),
        ));
        out.push((
            "machine steal (hypervisor)".to_string(),
            per_core(later.machine_steal.saturating_sub(self.machine_steal)),
        ));
        out
    }
}

pub fn clock_ticks_per_sec() -> f64 {
    static HZ: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *HZ.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// "cores" columns for a table.
pub fn format_cores(cores: &[(String, f64)]) -> String {
    cores
        .iter()
        .map(|(group, c)| format!("    {group:<46} {c:>5.2}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The machine, for the report header.
pub fn machine_summary() -> String {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let redis =
        Command::new(std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into()))
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
    format!("nproc={nproc}, CPU: {model}\n{redis}")
}

/// The first lines of a load benchmark's report: its name, the command that
/// reproduces the run, the machine and the date.
pub fn print_header(bench: &str, command: &str) {
    println!("outagewatch {bench} benchmark");
    println!("  reproduce: {command}");
    println!("  {}", machine_summary().replace('\n', "\n  "));
    println!(
        "  date: {}",
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
}

pub fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Measures stalls of the platform (scheduler, hypervisor, other tenants)
/// independently of the servers, like jHiccup: a thread sleeps 1 ms over and
/// over and records how much longer than asked each sleep took. Every 100 ms
/// it also reads the machine's steal time from /proc/stat, so a slow moment
/// of a server can be checked against what the hypervisor took then.
pub struct HiccupMeter {
    samples: std::sync::Arc<std::sync::Mutex<HiccupSamples>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Default)]
struct HiccupSamples {
    /// (sleep started, oversleep µs)
    sleeps: Vec<(Instant, u32)>,
    /// (when, cumulative steal ticks of all CPUs)
    steal: Vec<(Instant, u64)>,
}

fn steal_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    line.split_whitespace().nth(8)?.parse().ok()
}

impl HiccupMeter {
    pub fn start() -> anyhow::Result<HiccupMeter> {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        let samples: Arc<Mutex<HiccupSamples>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (samples, stop) = (samples.clone(), stop.clone());
            std::thread::Builder::new()
                .name("hiccup".into())
                .spawn(move || {
                    let tick = Duration::from_millis(1);
                    let mut last_steal = Instant::now() - Duration::from_secs(1);
                    while !stop.load(Ordering::Relaxed) {
                        let asked = Instant::now();
                        std::thread::sleep(tick);
                        let over = asked.elapsed().saturating_sub(tick);
                        let over = u32::try_from(over.as_micros()).unwrap_or(u32::MAX);
                        let steal = (last_steal.elapsed() >= Duration::from_millis(100))
                            .then(steal_ticks)
                            .flatten();
                        if let Ok(mut s) = samples.lock() {
                            s.sleeps.push((asked, over));
                            if let Some(t) = steal {
                                last_steal = Instant::now();
                                s.steal.push((last_steal, t));
                            }
                        }
                    }
                })
                .context("spawning the hiccup meter")?
        };
        Ok(HiccupMeter {
            samples,
            stop,
            thread: Some(thread),
        })
    }

    /// Oversleep in µs of the sleeps started in `[from, to)`, sorted.
    pub fn between(&self, from: Instant, to: Instant) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .samples
            .lock()
            .map(|s| {
                s.sleeps
                    .iter()
                    .filter(|(at, _)| *at >= from && *at < to)
                    .map(|(_, over)| *over)
                    .collect()
            })
            .unwrap_or_default();
        v.sort_unstable();
        v
    }

    /// CPU time (ms, all CPUs) the hypervisor stole between the last steal
    /// sample at or before `from` and the first at or after `to`; the
    /// resolution is the 100 ms sampling and the 10 ms kernel tick.
    pub fn steal_ms(&self, from: Instant, to: Instant) -> f64 {
        let Ok(s) = self.samples.lock() else {
            return 0.0;
        };
        let before = s.steal.iter().rev().find(|(at, _)| *at <= from);
        let after = s.steal.iter().find(|(at, _)| *at >= to);
        match (before, after) {
            (Some((_, a)), Some((_, b))) => {
                b.saturating_sub(*a) as f64 * 1000.0 / clock_ticks_per_sec()
            }
            _ => 0.0,
        }
    }
}
impl Drop for HiccupMeter {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
