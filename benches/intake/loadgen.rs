//! The load generator: raw tokio TCP, HTTP/1.1 keep-alive, one task per
//! connection. Every request carries a distinct client_id from a distinct
//! network (an IPv6 /48 in X-Forwarded-For), so every report is counted.
//! Closed loop (send when the answer is back) or open loop (paced on a fixed
//! schedule, latency from the scheduled time: no coordinated omission). The
//! answers are parsed here too, just enough: status, length, "counted".

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support;
use crate::tally::{Tally, micros};

pub const WARMUP: Duration = Duration::from_secs(1);
/// A request that takes longer than this counts as an I/O error and its
/// connection is replaced; it bounds the run if a server hangs.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// (service, problem, country): a handful, round-robin; "login" only where the
/// registry accepts it.
pub const REPORTS: &[(&str, &str, &str)] = &[
    ("whatsapp", "login", "BR"),
    ("facebook", "login", "US"),
    ("instagram", "login", "IN"),
    ("x", "outage", "GB"),
    ("discord", "other", "DE"),
    ("netflix", "outage", "FR"),
];

/// One keep-alive HTTP/1.1 connection.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    request: Vec<u8>,
    host: String,
}

pub struct Answer {
    pub status: u16,
    counted: bool,
    close: bool,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> std::io::Result<Conn> {
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
    pub async fn report(
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

/// The window of one phase: warm-up from `start`, measured `[measure, end)`.
#[derive(Clone, Copy)]
pub struct Window {
    pub start: Instant,
    pub measure: Instant,
    pub end: Instant,
}

impl Window {
    pub fn new(secs: u64) -> Window {
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
pub struct Pace {
    pub first: Instant,
    pub interval: Duration,
}

pub async fn run_connection(
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
