//! Intake load benchmark: what fraction of a bare actix-web handler's
//! throughput does `POST /api/v1/reports` reach when every 202 waits for Redis?
//!
//! Run: `cargo bench --bench intake` (env: BENCH_CONNECTIONS=32, BENCH_SECS=5,
//! BENCH_ROUNDS=5, BENCH_CLIENT_THREADS=1).
//!
//! - Starts its own redis-server (loopback TCP, free port, no persistence),
//!   outagewatch on it and a reference server: a bare actix-web handler taking
//!   `web::Json` of the same fields and answering 202 with a body of the same
//!   shape. Both have one HTTP worker and run on their own actix system thread.
//! - The load generator is raw tokio TCP, HTTP/1.1 keep-alive, C connections,
//!   every request with a distinct client_id from a distinct network (an
//!   IPv6 /48 in X-Forwarded-For, which outagewatch believes of 127.0.0.1),
//!   so every report is counted: the worst-case write path; services
//!   round-robin.
//! - Closed loop: R rounds alternating ref, ow; each 1 s warm-up + D s measured.
//! - Half load: open loop at half the reference's median throughput, paced per
//!   connection on a fixed schedule; latency counts from the scheduled send
//!   time, so a stall is not hidden by the generator waiting (coordinated
//!   omission).
//!
//! Everything is on 127.0.0.1; the bench ends by itself.

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::{CpuSample, RedisServer, ServerThread};

const WARMUP: Duration = Duration::from_secs(1);
/// A request that takes longer than this counts as an I/O error and its
/// connection is replaced; it bounds the run if a server hangs.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Time slots, ms, in which the worst latency is kept, to line slow moments
/// up with the hypervisor's steal time.
const SLOT_MS: u128 = 100;

/// (service, problem, country): a handful, round-robin; "login" only where the
/// registry accepts it.
const REPORTS: &[(&str, &str, &str)] = &[
    ("whatsapp", "login", "BR"),
    ("facebook", "login", "US"),
    ("instagram", "login", "IN"),
    ("x", "outage", "GB"),
    ("discord", "other", "DE"),
    ("netflix", "outage", "FR"),
];

#[derive(Clone, Copy)]
struct Config {
    connections: usize,
    secs: u64,
    rounds: usize,
    client_threads: usize,
    /// How many of [`REPORTS`] are used, round-robin.
    services: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Target {
    Ref,
    Ow,
}

impl Target {
    fn label(self) -> &'static str {
        match self {
            Target::Ref => "ref",
            Target::Ow => "ow",
        }
    }
}

// ---------------------------------------------------------------------------
// The reference server: a bare actix-web handler.

#[derive(Deserialize)]
struct RefReport {
    service: String,
    #[allow(dead_code)]
    problem: String,
    #[allow(dead_code)]
    country: Option<String>,
    #[allow(dead_code)]
    client_id: Option<String>,
}

#[derive(Serialize)]
struct RefAccepted {
    id: String,
    service: String,
    counted: bool,
    bucket: String,
}

async fn ref_report(report: web::Json<RefReport>) -> HttpResponse {
    let minute = chrono::Utc::now().timestamp().div_euclid(60) * 60;
    let bucket = chrono::DateTime::from_timestamp(minute, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    HttpResponse::Accepted().json(RefAccepted {
        id: uuid::Uuid::now_v7().to_string(),
        service: report.into_inner().service,
        counted: true,
        bucket,
    })
}

fn start_reference() -> anyhow::Result<ServerThread> {
    ServerThread::spawn("ref-system", || async {
        let server =
            HttpServer::new(|| App::new().route("/api/v1/reports", web::post().to(ref_report)))
                .workers(1)
                .bind((support::LOOPBACK, 0))?;
        let port = server
            .addrs()
            .first()
            .map(|a| a.port())
            .context("no address")?;
        let server = server.run();
        let handle = server.handle();
        Ok((port, handle, async move {
            server.await.context("reference server")
        }))
    })
}

// ---------------------------------------------------------------------------
// The load generator.

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    request: Vec<u8>,
    host: String,
}

struct Answer {
    status: u16,
    counted: bool,
    close: bool,
}

impl Conn {
    async fn open(addr: SocketAddr) -> std::io::Result<Conn> {
        let stream = tokio::time::timeout(REQUEST_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| std::io::Error::other("connect timed out"))??;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(4096),
            request: Vec::with_capacity(512),
            host: addr.to_string(),
        })
    }

    /// Sends one report with a distinct client_id from a distinct network
    /// and reads the answer.
    async fn report(
        &mut self,
        tag: &str,
        conn: usize,
        services: usize,
        seq: u64,
    ) -> std::io::Result<Answer> {
        let (service, problem, country) = REPORTS[(conn + seq as usize) % services];
        let mut body = [0u8; 256];
        let body_len = {
            let mut cursor = std::io::Cursor::new(&mut body[..]);
            write!(
                cursor,
                r#"{{"service":"{service}","problem":"{problem}","country":"{country}","client_id":"{tag}-{conn}-{seq}"}}"#
            )?;
            cursor.position() as usize
        };
        // The /48 names the phase (by its tag), the connection and the
        // request, so no network reports twice in a run.
        let phase = tag
            .bytes()
            .fold(0u16, |h, b| h.wrapping_mul(31).wrapping_add(b.into()));
        let network = 0x2000 | (phase.wrapping_add(conn as u16) & 0x0fff);
        self.request.clear();
        write!(
            self.request,
            "POST /api/v1/reports HTTP/1.1\r\nHost: {}\r\nX-Forwarded-For: {network:x}:{:x}:{:x}::1\r\nContent-Type: application/json\r\nContent-Length: {body_len}\r\n\r\n",
            self.host,
            (seq >> 16) & 0xffff,
            seq & 0xffff,
        )?;
        self.request.extend_from_slice(&body[..body_len]);
        self.stream.write_all(&self.request).await?;
        self.read_answer().await
    }

    async fn read_answer(&mut self) -> std::io::Result<Answer> {
        loop {
            if let Some((answer, used)) = parse_answer(&self.buf)? {
                self.buf.drain(..used);
                return Ok(answer);
            }
            self.buf.reserve(4096);
            let n = self.stream.read_buf(&mut self.buf).await?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "server closed the connection",
                ));
            }
        }
    }
}

/// A complete answer at the start of `buf` and its length, or None when more
/// bytes are needed (headers and body may arrive in any number of reads).
fn parse_answer(buf: &[u8]) -> std::io::Result<Option<(Answer, usize)>> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let Some(head_end) = support::find(buf, b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| bad("non-UTF-8 head"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let mut length = None;
    let mut close = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| bad("bad Content-Length"))?,
            );
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(bad("chunked answers are not expected"));
        }
    }
    let length = length.ok_or_else(|| bad("no Content-Length"))?;
    let total = head_end + 4 + length;
    if buf.len() < total {
        return Ok(None);
    }
    let body = &buf[head_end + 4..total];
    let counted = support::find(body, br#""counted":true"#).is_some();
    Ok(Some((
        Answer {
            status,
            counted,
            close,
        },
        total,
    )))
}

/// What one connection saw in one phase.
#[derive(Default)]
struct Tally {
    /// Answers completed inside the measured window.
    completed: u64,
    statuses: BTreeMap<u16, u64>,
    /// 202 answers saying "counted": false (should not happen: ids are distinct).
    not_counted: u64,
    /// Non-202 answers and I/O errors during the warm-up.
    warmup_errors: u64,
    io_errors: u64,
    /// Microseconds, requests sent (or scheduled) inside the window.
    /// Closed loop: from send to answer. Open loop: see `run_connection`.
    latency_us: Vec<u32>,
    /// Open loop only: latency counted strictly from the scheduled time,
    /// including the generator's own timer lag.
    strict_us: Vec<u32>,
    /// Open loop only: how late the generator sent (timer and CPU), µs.
    send_lag_us: Vec<u32>,
    /// Open loop only: requests sent after their scheduled time because the
    /// previous answer on the connection was late.
    behind_schedule: u64,
    scheduled: u64,
    /// Open loop only: requests due inside the window but not sent by its end.
    unsent: u64,
    /// The worst latency (µs) of the requests due in each 100 ms of the window.
    slot_max_us: Vec<u32>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.completed += other.completed;
        for (s, n) in other.statuses {
            *self.statuses.entry(s).or_default() += n;
        }
        self.not_counted += other.not_counted;
        self.warmup_errors += other.warmup_errors;
        self.io_errors += other.io_errors;
        self.latency_us.extend(other.latency_us);
        self.strict_us.extend(other.strict_us);
        self.send_lag_us.extend(other.send_lag_us);
        self.behind_schedule += other.behind_schedule;
        self.scheduled += other.scheduled;
        self.unsent += other.unsent;
        if self.slot_max_us.len() < other.slot_max_us.len() {
            self.slot_max_us.resize(other.slot_max_us.len(), 0);
        }
        for (mine, theirs) in self.slot_max_us.iter_mut().zip(other.slot_max_us) {
            *mine = (*mine).max(theirs);
        }
    }

    fn record_slot(&mut self, window: &Window, at: Instant, latency_us: u32) {
        let slot = (at.saturating_duration_since(window.measure).as_millis() / SLOT_MS) as usize;
        if self.slot_max_us.len() <= slot {
            self.slot_max_us.resize(slot + 1, 0);
        }
        self.slot_max_us[slot] = self.slot_max_us[slot].max(latency_us);
    }

    /// Open loop: more than 0.1% of the requests due were never sent, so the
    /// target could not take the rate (a few are normal: a connection whose
    /// timer fired late is slightly behind when the window closes).
    fn overloaded(&self) -> bool {
        self.unsent * 1000 > self.scheduled + self.unsent
    }

    fn errors(&self) -> u64 {
        self.statuses
            .iter()
            .filter(|(s, _)| **s != 202)
            .map(|(_, n)| n)
            .sum::<u64>()
            + self.io_errors
    }
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// The window of one phase: warm-up from `start`, measured `[measure, end)`.
#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    measure: Instant,
    end: Instant,
}

impl Window {
    fn new(secs: u64) -> Window {
        // A little slack so every connection task is running at `start`.
        let start = Instant::now() + Duration::from_millis(50);
        let measure = start + WARMUP;
        Window {
            start,
            measure,
            end: measure + Duration::from_secs(secs),
        }
    }
}

/// Pacing of the open loop: this connection's first send time and interval.
#[derive(Clone, Copy)]
struct Pace {
    first: Instant,
    interval: Duration,
}

async fn run_connection(
    addr: SocketAddr,
    tag: Arc<str>,
    conn_index: usize,
    services: usize,
    window: Window,
    pace: Option<Pace>,
) -> Tally {
    let mut tally = Tally::default();
    let mut conn: Option<Conn> = None;
    let mut seq: u64 = 0;
    tokio::time::sleep_until(window.start.into()).await;
    loop {
        // When to send: now (closed loop) or at the next scheduled time.
        let (scheduled, slept) = match pace {
            None => (Instant::now(), false),
            Some(p) => {
                let at = p.first + p.interval * u32::try_from(seq).unwrap_or(u32::MAX);
                if at < Instant::now() {
                    (at, false)
                } else {
                    tokio::time::sleep_until(at.into()).await;
                    (at, true)
                }
            }
        };
        if scheduled >= window.end {
            break;
        }
        if let Some(p) = pace
            && Instant::now() >= window.end
        {
            // Overloaded: the schedule is behind at the end of the window.
            // Stop anyway; what was due but never sent is counted as unsent.
            let behind = window.end - scheduled.max(window.measure);
            tally.unsent += (behind.as_secs_f64() / p.interval.as_secs_f64()).ceil() as u64;
            break;
        }
        let in_window = scheduled >= window.measure;
        let mut c = match conn.take() {
            Some(c) => c,
            None => match Conn::open(addr).await {
                Ok(c) => c,
                Err(_) => {
                    tally.io_errors += u64::from(in_window);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let sent = Instant::now();
        let result =
            tokio::time::timeout(REQUEST_TIMEOUT, c.report(&tag, conn_index, services, seq)).await;
        let done = Instant::now();
        seq += 1;
        let answer = match result {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) | Err(_) => {
                if done >= window.measure && done < window.end {
                    tally.io_errors += 1;
                } else if done < window.measure {
                    tally.warmup_errors += 1;
                }
                continue; // the connection is dropped and reopened
            }
        };
        if done < window.measure {
            tally.warmup_errors += u64::from(answer.status != 202);
        } else if done < window.end {
            tally.completed += 1;
            *tally.statuses.entry(answer.status).or_default() += 1;
            tally.not_counted += u64::from(answer.status == 202 && !answer.counted);
        }
        // Latency of every request sent (or due) inside the window, also when
        // its answer comes after the window closed: no tail is cut off.
        if in_window {
            match pace {
                None => {
                    tally.latency_us.push(micros(done - sent));
                    tally.record_slot(&window, sent, micros(done - sent));
                }
                Some(_) => {
                    tally.scheduled += 1;
                    tally.strict_us.push(micros(done - scheduled));
                    tally
                        .send_lag_us
                        .push(micros(sent.saturating_duration_since(scheduled)));
                    let latency = if slept {
                        // The connection was idle and only our timer was late:
                        // the server could not have seen the request earlier.
                        micros(done - sent)
                    } else {
                        // Behind schedule: the wait for the previous answer counts.
                        tally.behind_schedule += 1;
                        micros(done - scheduled)
                    };
                    tally.latency_us.push(latency);
                    tally.record_slot(&window, scheduled, latency);
                }
            }
        }
        if !answer.close {
            conn = Some(c);
        }
    }
    tally
}

struct PhaseResult {
    target: Target,
    tally: Tally,
    secs: f64,
    cpu: Vec<(String, f64)>,
    /// outagewatch only: metric deltas over the phase.
    ow_metrics: Option<OwMetrics>,
    redis_stats: BTreeMap<String, (u64, u64)>,
    /// Platform stalls during the window: oversleep of 1 ms sleeps, µs, sorted.
    stalls: Vec<u32>,
    /// The 100 ms slots with the worst latency: (offset ms into the window,
    /// worst latency µs, steal ms of the machine then, longest stall µs then).
    slowest_slots: Vec<(u128, u32, f64, u32)>,
    /// Steal ms over the whole window.
    steal_ms: f64,
}

impl PhaseResult {
    fn rate(&self) -> f64 {
        self.tally.completed as f64 / self.secs
    }

    /// Cores used by other processes on the machine (not this bench, not its
    /// redis-server) during the window.
    fn foreign(&self) -> f64 {
        self.cpu
            .iter()
            .find(|(group, _)| group.starts_with("machine, other"))
            .map_or(0.0, |(_, c)| *c)
    }

    /// Cores the hypervisor took from this VM during the window.
    fn steal(&self) -> f64 {
        self.cpu
            .iter()
            .find(|(group, _)| group.starts_with("machine steal"))
            .map_or(0.0, |(_, c)| *c)
    }

    fn slowest_slots_text(&self) -> String {
        let slots: Vec<String> = self
            .slowest_slots
            .iter()
            .map(|(at, worst, steal, stall)| {
                format!(
                    "+{:.1}s worst {:.1} ms (steal {steal:.0} ms, stall {:.1} ms)",
                    *at as f64 / 1000.0,
                    ms(*worst),
                    ms(*stall)
                )
            })
            .collect();
        format!(
            "{}; whole window: steal {:.0} ms",
            slots.join("; "),
            self.steal_ms
        )
    }

    /// The longest platform stall seen by the hiccup meter, ms.
    fn stall_max_ms(&self) -> f64 {
        ms(self.stalls.last().copied().unwrap_or(0))
    }
}

struct OwMetrics {
    batches: f64,
    reports_in_batches: f64,
    batch_seconds: f64,
    accepted: f64,
    rejected: BTreeMap<String, f64>,
    store_errors: f64,
    /// Upper bound (`le`) of the histogram bucket holding the median batch.
    median_batch_le: String,
}

fn ow_metrics(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> OwMetrics {
    let d = |k: &str| support::delta(before, after, k);
    let batches = d("outagewatch_write_batch_size_count");
    let mut rejected = BTreeMap::new();
    let mut store_errors = 0.0;
    let mut buckets: Vec<(String, f64)> = Vec::new();
    for key in after.keys() {
        if let Some(reason) = key
            .strip_prefix("outagewatch_reports_rejected_total{reason=\"")
            .and_then(|r| r.strip_suffix("\"}"))
        {
            let n = d(key);
            if n > 0.0 {
                rejected.insert(reason.to_string(), n);
            }
        } else if key.starts_with("outagewatch_store_errors_total") {
            store_errors += d(key);
        } else if let Some(le) = key
            .strip_prefix("outagewatch_write_batch_size_bucket{le=\"")
            .and_then(|r| r.strip_suffix("\"}"))
        {
            buckets.push((le.to_string(), d(key)));
        }
    }
    buckets.sort_by(|a, b| {
        let v = |s: &str| s.parse::<f64>().unwrap_or(f64::INFINITY);
        v(&a.0).total_cmp(&v(&b.0))
    });
    let median_batch_le = buckets
        .iter()
        .find(|(_, n)| *n >= batches / 2.0 && batches > 0.0)
        .map_or_else(|| "-".to_string(), |(le, _)| le.clone());
    OwMetrics {
        batches,
        reports_in_batches: d("outagewatch_write_batch_size_sum"),
        batch_seconds: d("outagewatch_write_batch_duration_seconds_sum"),
        accepted: d("outagewatch_reports_accepted_total"),
        rejected,
        store_errors,
        median_batch_le,
    }
}

struct Bench {
    config: Config,
    runtime: tokio::runtime::Runtime,
    redis: RedisServer,
    reference: ServerThread,
    ow: ServerThread,
    nonce: String,
    hiccups: support::HiccupMeter,
}

impl Bench {
    fn addr(&self, target: Target) -> SocketAddr {
        match target {
            Target::Ref => self.reference.addr(),
            Target::Ow => self.ow.addr(),
        }
    }

    /// One phase against one target: closed loop (`rate` None) or open loop
    /// at `rate` requests per second over all connections.
    fn phase(&self, target: Target, name: &str, rate: Option<f64>) -> anyhow::Result<PhaseResult> {
        if target == Target::Ow {
            // Same starting state every round (FLUSHALL keeps the script cache).
            self.redis.flushall()?;
        }
        let addr = self.addr(target);
        let window = Window::new(self.config.secs);
        let tag: Arc<str> = Arc::from(format!("{}-{name}-{}", self.nonce, target.label()));
        let connections = self.config.connections;
        let services = self.config.services;
        let paces: Vec<Option<Pace>> = (0..connections)
            .map(|i| {
                rate.map(|r| Pace {
                    // Connections are staggered evenly over one total interval.
                    first: window.start + Duration::from_secs_f64(i as f64 / r),
                    interval: Duration::from_secs_f64(connections as f64 / r),
                })
            })
            .collect();
        let (mut tally, snapshot) = self.runtime.block_on(async {
            let tasks: Vec<_> = paces
                .into_iter()
                .enumerate()
                .map(|(i, pace)| {
                    tokio::spawn(run_connection(addr, tag.clone(), i, services, window, pace))
                })
                .collect();
            // Counters are read when the measured window opens (here, on the
            // bench's main thread; the connections run on the loadgen thread).
            tokio::time::sleep_until(window.measure.into()).await;
            let snapshot = self.snapshot(target)?;
            let mut tally = Tally::default();
            for task in tasks {
                tally.merge(task.await.context("connection task")?);
            }
            anyhow::Ok((tally, snapshot))
        })?;
        // Connections stop sending at `end`; the last answers arrive just after.
        let (cpu_before, metrics_before) = snapshot;
        let cpu = cpu_before.cores_until(&CpuSample::take(Some(self.redis.pid())));
        let ow_metrics = match metrics_before {
            Some(before) => Some(ow_metrics(&before, &support::scrape(addr)?)),
            None => None,
        };
        let redis_stats = self.redis.command_stats()?;
        let tally_slots = std::mem::take(&mut tally.slot_max_us);
        // Let the hiccup meter take a steal sample past the window's end.
        std::thread::sleep(Duration::from_millis(150));
        tally.latency_us.sort_unstable();
        tally.strict_us.sort_unstable();
        tally.send_lag_us.sort_unstable();
        Ok(PhaseResult {
            target,
            tally,
            secs: self.config.secs as f64,
            cpu,
            ow_metrics,
            redis_stats,
            stalls: self.hiccups.between(window.measure, window.end),
            slowest_slots: self.slowest_slots(&tally_slots, &window),
            steal_ms: self.hiccups.steal_ms(window.measure, window.end),
        })
    }

    fn slowest_slots(&self, slots: &[u32], window: &Window) -> Vec<(u128, u32, f64, u32)> {
        let mut order: Vec<usize> = (0..slots.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(slots[i]));
        order
            .into_iter()
            .take(3)
            .map(|i| {
                let offset = i as u128 * SLOT_MS;
                let from = window.measure + Duration::from_millis(offset as u64);
                let to = from + Duration::from_millis(SLOT_MS as u64);
                let stall = self.hiccups.between(from, to).last().copied().unwrap_or(0);
                (offset, slots[i], self.hiccups.steal_ms(from, to), stall)
            })
            .collect()
    }

    /// CPU counters, Redis command statistics reset, outagewatch's metrics.
    fn snapshot(
        &self,
        target: Target,
    ) -> anyhow::Result<(CpuSample, Option<BTreeMap<String, f64>>)> {
        let cpu = CpuSample::take(Some(self.redis.pid()));
        self.redis.reset_stats()?;
        let metrics = match target {
            Target::Ow => Some(support::scrape(self.addr(target))?),
            Target::Ref => None,
        };
        Ok((cpu, metrics))
    }
}

fn ms(us: u32) -> f64 {
    f64::from(us) / 1000.0
}

fn statuses(t: &Tally) -> String {
    let mut parts: Vec<String> = t.statuses.iter().map(|(s, n)| format!("{s}×{n}")).collect();
    if t.io_errors > 0 {
        parts.push(format!("io-errors×{}", t.io_errors));
    }
    if t.warmup_errors > 0 {
        parts.push(format!("warm-up errors×{}", t.warmup_errors));
    }
    if t.unsent > 0 {
        parts.push(format!("unsent×{}", t.unsent));
    }
    if t.not_counted > 0 {
        parts.push(format!("not-counted×{}", t.not_counted));
    }
    parts.join(" ")
}

fn print_ow_metrics(m: &OwMetrics, secs: f64) {
    let mean = if m.batches > 0.0 {
        m.reports_in_batches / m.batches
    } else {
        0.0
    };
    let commit_ms = if m.batches > 0.0 {
        m.batch_seconds / m.batches * 1000.0
    } else {
        0.0
    };
    println!(
        "    ow metrics: {:.0} group commits ({:.0}/s), mean batch {mean:.1} reports (median in bucket le={}), mean commit {commit_ms:.2} ms, writer busy {:.0}% of wall time",
        m.batches,
        m.batches / secs,
        m.median_batch_le,
        m.batch_seconds / secs * 100.0,
    );
    println!(
        "                accepted {:.0}, rejected {:?}, store errors {:.0}",
        m.accepted, m.rejected, m.store_errors
    );
}

fn print_redis_stats(stats: &BTreeMap<String, (u64, u64)>, secs: f64) {
    let mut rows: Vec<_> = stats.iter().filter(|(_, (calls, _))| *calls > 0).collect();
    if rows.is_empty() {
        return;
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.1.1));
    let line: Vec<String> = rows
        .iter()
        .take(6)
        .map(|(name, (calls, usec))| {
            format!(
                "{name} {calls} calls {:.1} µs/call",
                *usec as f64 / (*calls).max(1) as f64
            )
        })
        .collect();
    // EVALSHA time includes the commands its script runs; count it alone.
    let busy_us = stats
        .iter()
        .filter(|(name, _)| {
            !matches!(
                name.as_str(),
                "set" | "get" | "hincrby" | "expireat" | "pfadd"
            ) || !stats.contains_key("evalsha")
        })
        .map(|(_, (_, usec))| *usec)
        .sum::<u64>();
    println!(
        "    redis commandstats: {} (command time ≈ {:.0}% of one core)",
        line.join(", "),
        busy_us as f64 / 1e6 / secs * 100.0
    );
}

fn print_cpu(cpu: &[(String, f64)]) {
    if !cpu.is_empty() {
        println!("    CPU, cores busy during the measured window:");
        println!("{}", support::format_cores(cpu));
    }
}

/// Both targets, open loop at `rate`; prints a table and the details.
fn open_loop_phases(
    bench: &Bench,
    name: &str,
    rate: f64,
    what: &str,
) -> anyhow::Result<Vec<PhaseResult>> {
    println!(
        "\nopen loop at {rate:.0} req/s ({what}), {} connections, each paced on a fixed schedule",
        bench.config.connections
    );
    let mut open: Vec<PhaseResult> = Vec::new();
    for target in [Target::Ref, Target::Ow] {
        open.push(bench.phase(target, name, Some(rate))?);
    }
    println!(
        "  {:<4} {:>9} {:>8} {:>8} {:>8} | {:>8} {:>8} {:>8} | {:>13} {:>8} {:>7} {:>6} {:>8}  statuses",
        "tgt",
        "done/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "strict50",
        "strict99",
        "strictmx",
        "behind",
        "lag p99",
        "foreign",
        "steal",
        "stall ms"
    );
    for r in &open {
        let t = &r.tally;
        println!(
            "  {:<4} {:>9.0} {:>8.2} {:>8.2} {:>8.2} | {:>8.2} {:>8.2} {:>8.2} | {:>13} {:>8.2} {:>7.2} {:>6.2} {:>8.2}  {}",
            r.target.label(),
            r.rate(),
            ms(support::percentile(&t.latency_us, 50.0)),
            ms(support::percentile(&t.latency_us, 99.0)),
            ms(t.latency_us.last().copied().unwrap_or(0)),
            ms(support::percentile(&t.strict_us, 50.0)),
            ms(support::percentile(&t.strict_us, 99.0)),
            ms(t.strict_us.last().copied().unwrap_or(0)),
            format!("{}/{}", t.behind_schedule, t.scheduled),
            ms(support::percentile(&t.send_lag_us, 99.0)),
            r.foreign(),
            r.steal(),
            r.stall_max_ms(),
            statuses(t)
        );
    }
    for r in &open {
        let t = &r.tally;
        let due = t.scheduled + t.unsent;
        if t.overloaded() {
            println!(
                "  {}: OVERLOADED: {} of {due} requests due in the window were never sent (the schedule fell behind); its latencies are lower bounds",
                r.target.label(),
                t.unsent
            );
        }
    }
    println!(
        "  the 100 ms slots with the worst latency, and what the hypervisor stole from the VM then\n  (steal is sampled every 100 ms at a 10 ms tick, so it is attributed to a 100-200 ms span):"
    );
    for r in &open {
        println!("    {:<4} {}", r.target.label(), r.slowest_slots_text());
    }
    for r in &open {
        println!("  {}:", r.target.label());
        if let Some(m) = &r.ow_metrics {
            print_ow_metrics(m, r.secs);
            print_redis_stats(&r.redis_stats, r.secs);
        }
        print_cpu(&r.cpu);
    }
    Ok(open)
}

fn main() -> anyhow::Result<()> {
    let config = Config {
        connections: support::env_or("BENCH_CONNECTIONS", 32usize)?,
        secs: support::env_or("BENCH_SECS", 5u64)?,
        rounds: support::env_or("BENCH_ROUNDS", 5usize)?,
        client_threads: support::env_or("BENCH_CLIENT_THREADS", 1usize)?,
        services: support::env_or("BENCH_SERVICES", REPORTS.len())?,
    };
    if !(1..=REPORTS.len()).contains(&config.services) {
        bail!("BENCH_SERVICES must be 1 to {}", REPORTS.len());
    }
    if config.connections == 0
        || config.secs == 0
        || config.rounds == 0
        || config.client_threads == 0
    {
        bail!("BENCH_CONNECTIONS, BENCH_SECS, BENCH_ROUNDS and BENCH_CLIENT_THREADS must be > 0");
    }
    let command = format!(
        "BENCH_CONNECTIONS={} BENCH_SECS={} BENCH_ROUNDS={} BENCH_CLIENT_THREADS={} BENCH_SERVICES={} cargo bench --bench intake",
        config.connections, config.secs, config.rounds, config.client_threads, config.services
    );
    println!("outagewatch intake benchmark");
    println!("  reproduce: {command}");
    println!("  {}", support::machine_summary().replace('\n', "\n  "));
    println!(
        "  date: {}",
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    println!(
        "  {} connections, {} s measured after {} s warm-up, {} rounds, {} load-generator thread(s), 1 HTTP worker per server",
        config.connections,
        config.secs,
        WARMUP.as_secs(),
        config.rounds,
        config.client_threads
    );
    println!(
        "  reports round-robin over {} service(s): {}",
        config.services,
        REPORTS[..config.services]
            .iter()
            .map(|(s, p, c)| format!("{s}/{p}/{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let redis = RedisServer::start_on_tcp()?;
    let mut settings = outagewatch::config::Settings::defaults();
    settings.http.bind = "127.0.0.1:0".into();
    settings.http.workers = 1;
    settings.store.redis_url = redis.url();
    settings.admin.token = "bench-admin-token".into();
    settings.intake.reporter_secret = "x".into();
    // All load comes from 127.0.0.1; the per-address limit would cap it.
    settings.intake.rate_limit_per_minute = 0;
    // The load speaks for many networks through X-Forwarded-For.
    settings.http.trusted_proxies = vec!["127.0.0.1/32".parse()?];
    let ow = ServerThread::outagewatch(settings)?;
    let reference = start_reference()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.client_threads)
        .thread_name("loadgen")
        .enable_all()
        .build()?;
    let nonce = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
    );
    let bench = Bench {
        config,
        runtime,
        redis,
        reference,
        ow,
        nonce,
        hiccups: support::HiccupMeter::start()?,
    };
    // Both answer before the clock starts (and ow's Redis connection is up).
    for target in [Target::Ref, Target::Ow] {
        let probe = bench.runtime.block_on(async {
            let mut c = Conn::open(bench.addr(target)).await?;
            c.report("probe", 0, 1, 0).await
        })?;
        if probe.status != 202 {
            bail!(
                "{} answered {} to a probe report",
                target.label(),
                probe.status
            );
        }
    }

    // Closed loop, alternating.
    println!(
        "\nclosed loop ({} connections, as fast as answers come back)",
        config.connections
    );
    println!(
        "  {:<6} {:<4} {:>10} {:>9} {:>9} {:>9} {:>7} {:>7} {:>9}  statuses",
        "round", "tgt", "req/s", "p50 ms", "p99 ms", "max ms", "foreign", "steal", "stall ms"
    );
    let mut closed: Vec<PhaseResult> = Vec::new();
    for round in 1..=config.rounds {
        for target in [Target::Ref, Target::Ow] {
            let r = bench.phase(target, &format!("closed{round}"), None)?;
            let l = &r.tally.latency_us;
            println!(
                "  {:<6} {:<4} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>7.2} {:>7.2} {:>9.2}  {}",
                round,
                target.label(),
                r.rate(),
                ms(support::percentile(l, 50.0)),
                ms(support::percentile(l, 99.0)),
                ms(l.last().copied().unwrap_or(0)),
                r.foreign(),
                r.steal(),
                r.stall_max_ms(),
                statuses(&r.tally)
            );
            closed.push(r);
        }
    }
    println!(
        "  (foreign: cores used by other processes on this machine; steal: cores the hypervisor\n   took from this VM; stall: the longest extra delay of a 1 ms sleep on a separate, otherwise\n   idle thread: platform hiccups everything suffers)"
    );
    let rates = |t: Target| -> Vec<f64> {
        closed
            .iter()
            .filter(|r| r.target == t)
            .map(PhaseResult::rate)
            .collect()
    };
    let (ref_rates, ow_rates) = (rates(Target::Ref), rates(Target::Ow));
    let (ref_median, ow_median) = (support::median(&ref_rates), support::median(&ow_rates));
    let ratio = ow_median / ref_median.max(1e-9);
    // Latency percentiles over all closed-loop rounds of each target.
    let pooled = |t: Target| -> Vec<u32> {
        let mut v: Vec<u32> = closed
            .iter()
            .filter(|r| r.target == t)
            .flat_map(|r| r.tally.latency_us.iter().copied())
            .collect();
        v.sort_unstable();
        v
    };
    let (ref_lat, ow_lat) = (pooled(Target::Ref), pooled(Target::Ow));
    let closed_errors = |t: Target| -> u64 {
        closed
            .iter()
            .filter(|r| r.target == t)
            .map(|r| r.tally.errors())
            .sum()
    };

    // Detail of the median-ish ow round and ref round: CPU, metrics, Redis.
    println!(
        "\ncloser look at the closed-loop rounds (per round: CPU, outagewatch metrics, Redis)"
    );
    for r in &closed {
        println!("  {} {:.0} req/s", r.target.label(), r.rate());
        println!("    slowest 100 ms slots: {}", r.slowest_slots_text());
        if let Some(m) = &r.ow_metrics {
            print_ow_metrics(m, r.secs);
            print_redis_stats(&r.redis_stats, r.secs);
        }
        print_cpu(&r.cpu);
    }

    // Half load, open loop: at half the reference's median (the question
    // asked), then at half outagewatch's own median (what it sustains).
    let half = ref_median / 2.0;
    let half_ow = ow_median / 2.0;
    let open = open_loop_phases(&bench, "half", half, "half the reference's median")?;
    let open_own = open_loop_phases(&bench, "halfow", half_ow, "half outagewatch's own median")?;

    // Summary.
    let fmt_rates = |v: &[f64]| {
        v.iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let half_of = |t: Target| open.iter().find(|r| r.target == t);
    let half_p = |t: Target, p: f64| {
        half_of(t).map_or(0.0, |r| ms(support::percentile(&r.tally.latency_us, p)))
    };
    let own_of = |t: Target| open_own.iter().find(|r| r.target == t);
    let own_p = |t: Target, p: f64| {
        own_of(t).map_or(0.0, |r| ms(support::percentile(&r.tally.latency_us, p)))
    };
    let ow_batches = closed
        .iter()
        .filter_map(|r| r.ow_metrics.as_ref())
        .fold((0.0, 0.0), |(b, n), m| {
            (b + m.batches, n + m.reports_in_batches)
        });
    println!("\n================ summary ================");
    println!("  reproduce: {command}");
    println!("  ref req/s per round: {}", fmt_rates(&ref_rates));
    println!("  ow  req/s per round: {}", fmt_rates(&ow_rates));
    println!("  median ref {ref_median:.0} req/s, median ow {ow_median:.0} req/s");
    println!("  RATIO median(ow)/median(ref) = {ratio:.3}   (target >= 0.8)");
    println!(
        "  closed-loop latency (all rounds): ref p50 {:.2} ms p99 {:.2} ms; ow p50 {:.2} ms p99 {:.2} ms",
        ms(support::percentile(&ref_lat, 50.0)),
        ms(support::percentile(&ref_lat, 99.0)),
        ms(support::percentile(&ow_lat, 50.0)),
        ms(support::percentile(&ow_lat, 99.0)),
    );
    println!(
        "  closed-loop errors (non-202 + I/O, measured windows): ref {}, ow {}",
        closed_errors(Target::Ref),
        closed_errors(Target::Ow)
    );
    println!(
        "  ow mean group-commit batch (closed loop): {:.1} reports",
        if ow_batches.0 > 0.0 {
            ow_batches.1 / ow_batches.0
        } else {
            0.0
        }
    );
    println!(
        "  half load {half:.0} req/s: ref p50 {:.2} ms p99 {:.2} ms; ow p50 {:.2} ms p99 {:.2} ms   (target ow p99 < 10 ms)",
        half_p(Target::Ref, 50.0),
        half_p(Target::Ref, 99.0),
        half_p(Target::Ow, 50.0),
        half_p(Target::Ow, 99.0),
    );
    if let Some(r) = half_of(Target::Ow)
        && let Some(m) = &r.ow_metrics
        && m.batches > 0.0
    {
        println!(
            "  ow mean group-commit batch (half load): {:.1} reports",
            m.reports_in_batches / m.batches
        );
    }
    for r in open.iter().filter(|r| r.tally.overloaded()) {
        println!(
            "  half load was more than {} could take: {} of {} requests due were never sent; its percentiles are lower bounds",
            r.target.label(),
            r.tally.unsent,
            r.tally.unsent + r.tally.scheduled
        );
    }
    println!(
        "  half-load errors: ref {}, ow {}; achieved ref {:.0} req/s, ow {:.0} req/s",
        half_of(Target::Ref).map_or(0, |r| r.tally.errors()),
        half_of(Target::Ow).map_or(0, |r| r.tally.errors()),
        half_of(Target::Ref).map_or(0.0, PhaseResult::rate),
        half_of(Target::Ow).map_or(0.0, PhaseResult::rate),
    );
    let stall_max = open
        .iter()
        .chain(&open_own)
        .map(PhaseResult::stall_max_ms)
        .fold(0.0, f64::max);
    println!("  longest platform stall during the open-loop phases: {stall_max:.1} ms");
    let all = || closed.iter().chain(&open).chain(&open_own);
    let foreign_max = all().map(PhaseResult::foreign).fold(0.0, f64::max);
    let steal_max = all().map(PhaseResult::steal).fold(0.0, f64::max);
    println!(
        "  machine noise over all measured windows: other processes up to {foreign_max:.2} cores, hypervisor steal up to {steal_max:.2} cores{}",
        if foreign_max > 0.1 || steal_max > 0.05 {
            "  <-- NOISY RUN: compare rounds with foreign/steal near 0, or run again"
        } else {
            " (a quiet run)"
        }
    );
    println!(
        "  at half ow's own median, {half_ow:.0} req/s: ref p50 {:.2} ms p99 {:.2} ms; ow p50 {:.2} ms p99 {:.2} ms",
        own_p(Target::Ref, 50.0),
        own_p(Target::Ref, 99.0),
        own_p(Target::Ow, 50.0),
        own_p(Target::Ow, 99.0),
    );
    println!(
        "  (open-loop p50/p99: from the scheduled send time when the request went out behind\n   schedule, else from the actual send; the tables also give strict*, always from the\n   scheduled time, which adds the generator's own timer lag)"
    );

    let Bench {
        runtime,
        redis,
        reference,
        ow,
        ..
    } = bench;
    runtime.shutdown_timeout(Duration::from_secs(2));
    reference.stop()?;
    ow.stop()?;
    drop(redis);
    Ok(())
}
