//! History import: one NDJSON line `{"service","at","count","problem"?,"country"?}`
//! becomes one [`ImportRow`] or a reason why not. Pure; the HTTP handler streams
//! the body through it and writes rows to the store in batches.

use chrono::DateTime;
use serde::Deserialize;
use serde_json::Value;

use crate::domain::{Country, Problem, Registry};
use crate::store::{ImportRow, Retention};

/// Cuts a streamed body into numbered lines (from 1), whatever the chunk
/// boundaries. A trailing `\r` is dropped. Only `max_line + 1` bytes of an
/// over-long line are kept: enough for the caller to see it is too long.
pub struct LineSplitter {
    pending: Vec<u8>,
    max_line: usize,
    number: u64,
}

impl LineSplitter {
    pub fn new(max_line: usize) -> Self {
        LineSplitter {
            pending: Vec::new(),
            max_line,
            number: 0,
        }
    }

    /// Calls `each` for every line the chunk completes.
    pub fn push(&mut self, chunk: &[u8], mut each: impl FnMut(u64, &[u8])) {
        let mut rest = chunk;
        while let Some(newline) = rest.iter().position(|&b| b == b'\n') {
            self.keep(&rest[..newline]);
            self.emit(&mut each);
            rest = &rest[newline + 1..];
        }
        self.keep(rest);
    }

    /// Calls `each` for a last line without a final newline.
    pub fn finish(&mut self, mut each: impl FnMut(u64, &[u8])) {
        if !self.pending.is_empty() {
            self.emit(&mut each);
        }
    }

    fn keep(&mut self, bytes: &[u8]) {
        let room = (self.max_line + 1).saturating_sub(self.pending.len());
        self.pending
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn emit(&mut self, each: &mut impl FnMut(u64, &[u8])) {
        self.number += 1;
        let line = self.pending.strip_suffix(b"\r").unwrap_or(&self.pending);
        each(self.number, line);
        self.pending.clear();
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    service: String,
    at: Value,
    count: Value,
    #[serde(default)]
    problem: Option<String>,
    #[serde(default)]
    country: Option<String>,
}

/// What a line is checked against.
pub struct LineRules<'a> {
    pub registry: &'a Registry,
    pub retention: Retention,
    /// Unix seconds.
    pub now: i64,
    pub max_future_skew_secs: i64,
    pub max_count: u64,
}

impl LineRules<'_> {
    pub fn parse(&self, line: &[u8]) -> Result<ImportRow, String> {
        let line: Line =
            serde_json::from_slice(line).map_err(|e| format!("malformed JSON: {e}"))?;
        let service = self
            .registry
            .find(&line.service)
            .ok_or_else(|| format!("unknown service {:?}", line.service))?;
        let at = match &line.at {
            Value::String(s) => DateTime::parse_from_rfc3339(s)
                .map(|t| t.timestamp())
                .map_err(|_| format!("at: {s:?} is not an RFC 3339 time"))?,
            Value::Number(n) => n
                .as_i64()
                .ok_or_else(|| "at: Unix seconds must be a whole number".to_string())?,
            _ => return Err("at: must be an RFC 3339 time or Unix seconds".into()),
        };
        if at > self.now.saturating_add(self.max_future_skew_secs) {
            return Err("at: in the future".into());
        }
        // Checked before any bucket arithmetic, which must not see absurd times.
        let too_old = at < self.now - self.retention.rollup_ttl_secs - 86_400;
        let minute = at.div_euclid(60);
        if too_old || self.retention.rollup_expiry(minute) <= self.now {
            return Err(format!(
                "at: older than the retention of {} days (store.rollup_ttl_secs)",
                self.retention.rollup_ttl_secs / 86_400
            ));
        }
        let count = line
            .count
            .as_u64()
            .filter(|n| *n <= self.max_count)
            .ok_or_else(|| format!("count: must be a whole number from 0 to {}", self.max_count))?;
        let problem = match line.problem.as_deref() {
            None | Some("") => None,
            Some(text) => Some(
                text.parse::<Problem>()
                    .ok()
                    .filter(|p| service.accepts(*p))
                    .ok_or_else(|| {
                        format!("problem: {text:?} is not accepted for {}", service.id)
                    })?,
            ),
        };
        let country =
            match line.country.as_deref() {
                None | Some("") => None,
                Some(text) => Some(Country::parse(text).ok_or_else(|| {
                    format!("country: {text:?} is not an ISO 3166-1 alpha-2 code")
                })?),
            };
        Ok(ImportRow {
            service: service.id.clone(),
            minute,
            count,
            problem,
            country,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(body: &[u8], cut: usize, max_line: usize) -> Vec<(u64, Vec<u8>)> {
        let mut lines = Vec::new();
        let mut splitter = LineSplitter::new(max_line);
        let mut each = |n: u64, line: &[u8]| lines.push((n, line.to_vec()));
        splitter.push(&body[..cut], &mut each);
        splitter.push(&body[cut..], &mut each);
        splitter.finish(&mut each);
        lines
    }

    #[test]
    fn lines_come_out_the_same_wherever_the_chunks_are_cut() {
        let body = b"{\"a\":1}\r\n\n0123456789abc\nlast";
        let expected: Vec<(u64, Vec<u8>)> = vec![
            (1, b"{\"a\":1}".to_vec()),
            (2, b"".to_vec()),
            (3, b"012345678".to_vec()),
            (4, b"last".to_vec()),
        ];
        for cut in 0..=body.len() {
            assert_eq!(split(body, cut, 8), expected, "cut at {cut}");
        }
    }

    fn rules(registry: &Registry) -> LineRules<'_> {
        LineRules {
            registry,
            retention: Retention {
                minute_ttl_secs: 2 * 86_400,
                rollup_ttl_secs: 36 * 86_400,
                reporters_ttl_secs: 86_400,
                dedup_window_secs: 3600,
                counted_per_network: 5,
                idempotency_ttl_secs: 86_400,
                event_backlog: 100,
            },
            now: 1_790_000_000,
            max_future_skew_secs: 60,
            max_count: 1000,
        }
    }

    #[test]
    fn good_line_becomes_a_row() {
        let registry = Registry::builtin().unwrap();
        let row = rules(&registry)
            .parse(br#"{"service":"WA","at":"2026-09-21T14:03:00Z","count":7,"problem":"login","country":"br"}"#)
            .unwrap();
        assert_eq!(row.service, "whatsapp");
        let at = DateTime::parse_from_rfc3339("2026-09-21T14:03:00Z")
            .unwrap()
            .timestamp();
        assert_eq!(row.minute * 60, at);
        assert_eq!(row.count, 7);
        assert_eq!(row.problem, Some(Problem::Login));
    }

    #[test]
    fn each_bad_line_says_why() {
        let registry = Registry::builtin().unwrap();
        let r = rules(&registry);
        let cases = [
            (
                r#"{"service":"whatsapp","at":"2026-10-01T00:00:00Z","count":1}"#,
                "future",
            ),
            (
                r#"{"service":"whatsapp","at":"2026-01-01T00:00:00Z","count":1}"#,
                "older than",
            ),
            (
                r#"{"service":"whatsapp","at":-9223372036854775808,"count":1}"#,
                "older than",
            ),
            (
                r#"{"service":"whatsapp","at":9223372036854775807,"count":1}"#,
                "future",
            ),
            (
                r#"{"service":"nope","at":1789999000,"count":1}"#,
                "unknown service",
            ),
            (
                r#"{"service":"whatsapp","at":1789999000,"count":-1}"#,
                "count",
            ),
            (
                r#"{"service":"whatsapp","at":1789999000,"count":1.5}"#,
                "count",
            ),
            (
                r#"{"service":"whatsapp","at":1789999000,"count":1001}"#,
                "count",
            ),
            (
                r#"{"service":"whatsapp","at":"yesterday","count":1}"#,
                "RFC 3339",
            ),
            (
                r#"{"service":"chase","at":1789999000,"count":1,"problem":"feed"}"#,
                "problem",
            ),
            (
                r#"{"service":"whatsapp","at":1789999000,"count":1,"country":"XX"}"#,
                "country",
            ),
            ("not json", "malformed"),
        ];
        for (line, needle) in cases {
            let reason = r.parse(line.as_bytes()).unwrap_err();
            assert!(reason.contains(needle), "{line}: {reason}");
        }
    }
}
