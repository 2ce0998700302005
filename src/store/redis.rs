//! The Redis store.
//!
//! A batch of reports becomes one pipeline holding one `EVALSHA` of
//! `record.lua` per (service, minute): the script dedups, counts and coalesces
//! the increments atomically, so a report is either fully counted or not at
//! all, and a retry after a lost answer is recognised by its idempotency key.
//! Reads are one pipeline each (one round trip for a 24 h chart). Every call is
//! bounded by a timeout; the connection manager reconnects on its own.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, Pipeline, RedisError, ServerErrorKind};
use uuid::Uuid;

use super::keys::{self, MINUTES_PER_DAY, MINUTES_PER_HOUR, MINUTES_PER_QUARTER, MINUTES_PER_SLOT};
use super::{
    Breakdown, Distinct, ImportRow, Receipt, ReportWrite, Retention, Store, StoreError, StoreResult,
};
use crate::config::StoreSettings;

const RECORD_LUA: &str = include_str!("record.lua");

/// Commands per pipeline when importing, to bound memory on both sides.
const IMPORT_PIPELINE_COMMANDS: usize = 20_000;

pub struct RedisStore {
    pub(super) conn: ConnectionManager,
    record_script: redis::Script,
    pub(super) retention: Retention,
    pub(super) write_timeout: Duration,
    pub(super) read_timeout: Duration,
}

impl RedisStore {
    /// Does not connect: the first command does, and the manager reconnects
    /// after failures, so the service starts (not ready) while Redis is down.
    pub fn new(settings: &StoreSettings, retention: Retention) -> StoreResult<Self> {
        let client = redis::Client::open(settings.redis_url.as_str())
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(settings.connect_timeout_ms)))
            // Our own timeouts bound every call (write, read, import); the
            // driver's default of 500 ms would silently cut them all shorter.
            .set_response_timeout(None)
            .set_max_delay(Duration::from_secs(1))
            .set_number_of_retries(2);
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(RedisStore {
            conn,
            record_script: redis::Script::new(RECORD_LUA),
            retention,
            write_timeout: Duration::from_millis(settings.write_timeout_ms),
            read_timeout: Duration::from_millis(settings.read_timeout_ms),
        })
    }

    pub(super) async fn bounded<T>(
        &self,
        limit: Duration,
        op: impl Future<Output = Result<T, RedisError>>,
    ) -> StoreResult<T> {
        match tokio::time::timeout(limit, op).await {
            Ok(result) => result.map_err(StoreError::from),
            Err(_) => Err(StoreError::Timeout),
        }
    }

    pub(super) async fn query<T: redis::FromRedisValue>(
        &self,
        pipe: &Pipeline,
        limit: Duration,
    ) -> StoreResult<T> {
        let mut conn = self.conn.clone();
        self.bounded(limit, pipe.query_async::<T>(&mut conn)).await
    }

    /// HGETALL of each key in one round trip.
    async fn hashes(&self, keys: &[String]) -> StoreResult<Vec<HashMap<String, u64>>> {
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.hgetall(key);
        }
        self.query(&pipe, self.read_timeout).await
    }

    /// One script call per group in `which`; per-call errors are returned
    /// in place so that one failing group does not hide the others' answers.
    fn record_pipeline(
        &self,
        batch: &[ReportWrite],
        groups: &[Vec<usize>],
        which: &[usize],
    ) -> Pipeline {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for group in which.iter().map(|&g| &groups[g]) {
            let first = &batch[group[0]];
            let (service, minute) = (first.service.as_str(), first.minute());
            let hour = minute.div_euclid(MINUTES_PER_HOUR);
            let day = minute.div_euclid(MINUTES_PER_DAY);
            let idempotent: Vec<usize> = group
                .iter()
                .copied()
                .filter(|&i| batch[i].idempotency_key.is_some())
                .collect();
            let r = &self.retention;
            let (window, window_kept) = r.network_window(minute);
            let mut cmd = redis::cmd("EVALSHA");
            cmd.arg(self.record_script.get_hash())
                .arg(6 + group.len() + idempotent.len())
                .arg(keys::totals(service, hour))
                .arg(keys::breakdown(service, hour))
                .arg(keys::rollup(service, day))
                .arg(keys::reporters(service, minute))
                .arg(keys::networks(service, minute))
                .arg(keys::network_counts(service, window));
            for &i in group {
                cmd.arg(keys::dedup(service, &batch[i].reporter.0));
            }
            for &i in &idempotent {
                let key = batch[i].idempotency_key.as_deref().unwrap_or_default();
                cmd.arg(keys::idempotency(service, key));
            }
            cmd.arg(keys::minute_field(minute))
                .arg(keys::slot_of(minute))
                .arg(keys::quarter_field(minute))
                .arg(r.minute_expiry(minute))
                .arg(r.rollup_expiry(minute))
                .arg(r.reporters_expiry(minute))
                .arg(r.dedup_window_secs)
                .arg(r.idempotency_ttl_secs)
                .arg(group.len())
                .arg(r.counted_per_network)
                .arg(window_kept);
            for &i in group {
                let report = &batch[i];
                let idem_index = idempotent.iter().position(|&j| j == i).map_or(0, |p| p + 1);
                cmd.arg(&report.reporter.0)
                    .arg(&report.network.0)
                    .arg(report.problem.as_str())
                    .arg(report.country.as_ref().map_or("", |c| c.as_str()))
                    .arg(format!("{}|{}|{}", report.id, minute, report.request))
                    .arg(idem_index);
            }
            pipe.add_command(cmd);
        }
        pipe
    }
}

/// Indices of the batch grouped by (service, minute), in first-seen order.
fn group_by_bucket(batch: &[ReportWrite]) -> Vec<Vec<usize>> {
    let mut index: HashMap<(&str, i64), usize> = HashMap::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, report) in batch.iter().enumerate() {
        let slot = *index
            .entry((report.service.as_str(), report.minute()))
            .or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
        groups[slot].push(i);
    }
    groups
}

fn parse_receipt(text: &str) -> StoreResult<Receipt> {
    let bad = || StoreError::Protocol(format!("bad receipt {text:?}"));
    let mut parts = text.splitn(4, '|');
    let counted = match parts.next() {
        Some("1") => true,
        Some("0") => false,
        _ => return Err(bad()),
    };
    let id = parts
        .next()
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(bad)?;
    let minute = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let request = parts.next().unwrap_or_default().to_string();
    Ok(Receipt {
        id,
        counted,
        minute,
        request,
    })
}

/// Units (hours or days) covering `[from, from + count)` of a finer unit.
pub(super) fn spanned(from: i64, count: usize, per_unit: i64) -> std::ops::RangeInclusive<i64> {
    let last = from + count.max(1) as i64 - 1;
    from.div_euclid(per_unit)..=last.div_euclid(per_unit)
}

impl Store for RedisStore {
    async fn record(&self, batch: &[ReportWrite]) -> StoreResult<Vec<StoreResult<Receipt>>> {
        let groups = group_by_bucket(batch);
        let mut receipts: Vec<StoreResult<Receipt>> = (0..batch.len())
            .map(|_| Err(StoreError::Protocol("no answer".into())))
            .collect();
        let mut pending: Vec<usize> = (0..groups.len()).collect();
        for attempt in 0..2 {
            if pending.is_empty() {
                break;
            }
            let pipe = self.record_pipeline(batch, &groups, &pending);
            let answers: Vec<redis::RedisResult<Vec<String>>> =
                self.query(&pipe, self.write_timeout).await?;
            if answers.len() != pending.len() {
                return Err(StoreError::Protocol("pipeline answer count".into()));
            }
            let mut unknown_script = Vec::new();
            for (&g, answer) in pending.iter().zip(answers) {
                let group = &groups[g];
                match answer {
                    Ok(texts) if texts.len() == group.len() => {
                        for (&i, text) in group.iter().zip(texts) {
                            receipts[i] = parse_receipt(&text);
                        }
                    }
                    Ok(_) => {
                        for &i in group {
                            receipts[i] = Err(StoreError::Protocol("script answer count".into()));
                        }
                    }
                    // Redis restarted or flushed its script cache: that call
                    // applied nothing, so load the script and run it again.
                    Err(e)
                        if attempt == 0
                            && e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) =>
                    {
                        unknown_script.push(g);
                    }
                    Err(e) => {
                        let e = StoreError::from(e);
                        for &i in group {
                            receipts[i] = Err(e.clone());
                        }
                    }
                }
            }
            if !unknown_script.is_empty() {
                let mut conn = self.conn.clone();
                self.bounded(self.write_timeout, self.record_script.load_async(&mut conn))
                    .await?;
            }
            pending = unknown_script;
        }
        Ok(receipts)
    }

    async fn import(&self, rows: &[ImportRow], now: i64) -> StoreResult<()> {
        let r = self.retention;
        // Coalesce: one HINCRBY per distinct (key, field), one EXPIREAT per key.
        let mut increments: BTreeMap<(String, String), u64> = BTreeMap::new();
        let mut expiries: BTreeMap<String, i64> = BTreeMap::new();
        let mut add = |key: String, field: String, count: u64, expire_at: i64| {
            expiries.insert(key.clone(), expire_at);
            *increments.entry((key, field)).or_default() += count;
        };
        for row in rows.iter().filter(|row| row.count > 0) {
            let (service, minute) = (row.service.as_str(), row.minute);
            let day = minute.div_euclid(MINUTES_PER_DAY);
            if r.rollup_expiry(minute) > now {
                let expire = r.rollup_expiry(minute);
                add(
                    keys::rollup(service, day),
                    keys::quarter_field(minute),
                    row.count,
                    expire,
                );
            }
            if r.minute_expiry(minute) > now {
                let hour = minute.div_euclid(MINUTES_PER_HOUR);
                let expire = r.minute_expiry(minute);
                add(
                    keys::totals(service, hour),
                    keys::minute_field(minute),
                    row.count,
                    expire,
                );
                let slot = keys::slot_of(minute);
                if let Some(p) = row.problem {
                    add(
                        keys::breakdown(service, hour),
                        keys::problem_field(slot, p.as_str()),
                        row.count,
                        expire,
                    );
                }
                if let Some(c) = row.country {
                    add(
                        keys::breakdown(service, hour),
                        keys::country_field(slot, c.as_str()),
                        row.count,
                        expire,
                    );
                }
            }
        }
        let mut pipe = redis::pipe();
        let flush = async |pipe: &mut Pipeline| -> StoreResult<()> {
            if !pipe.is_empty() {
                self.query::<()>(pipe, self.write_timeout * 10).await?;
                pipe.clear();
            }
            Ok(())
        };
        let mut last_key: Option<&String> = None;
        for ((key, field), count) in &increments {
            pipe.hincr(key, field, *count).ignore();
            if last_key != Some(key) {
                // In the same pipeline as the key's first increment, so no
                // imported key is ever left without an expiry.
                pipe.expire_at(key, expiries[key]).ignore();
                last_key = Some(key);
            }
            if pipe.len() >= IMPORT_PIPELINE_COMMANDS {
                flush(&mut pipe).await?;
            }
        }
        flush(&mut pipe).await
    }

    async fn minute_totals(
        &self,
        services: &[&str],
        from_minute: i64,
        count: usize,
    ) -> StoreResult<Vec<Vec<u64>>> {
        let hours = spanned(from_minute, count, MINUTES_PER_HOUR);
        let keys: Vec<String> = services
            .iter()
            .flat_map(|s| hours.clone().map(move |h| keys::totals(s, h)))
            .collect();
        let mut hashes = self.hashes(&keys).await?.into_iter();
        let mut out = Vec::with_capacity(services.len());
        for _ in services {
            let mut series = vec![0u64; count];
            for hour in hours.clone() {
                let hash = hashes.next().unwrap_or_default();
                for (field, value) in hash {
                    let Ok(m) = field.parse::<i64>() else {
                        continue;
                    };
                    let offset = hour * MINUTES_PER_HOUR + m - from_minute;
                    if (0..count as i64).contains(&offset) {
                        series[offset as usize] += value;
                    }
                }
            }
            out.push(series);
        }
        Ok(out)
    }

    async fn quarter_totals(
        &self,
        service: &str,
        from_quarter: i64,
        count: usize,
    ) -> StoreResult<Vec<u64>> {
        let quarters_per_day = MINUTES_PER_DAY / MINUTES_PER_QUARTER;
        let days = spanned(from_quarter, count, quarters_per_day);
        let keys: Vec<String> = days.clone().map(|d| keys::rollup(service, d)).collect();
        let mut series = vec![0u64; count];
        for (day, hash) in days.zip(self.hashes(&keys).await?) {
            for (field, value) in hash {
                let Ok(q) = field.parse::<i64>() else {
                    continue;
                };
                let offset = day * quarters_per_day + q - from_quarter;
                if (0..count as i64).contains(&offset) {
                    series[offset as usize] += value;
                }
            }
        }
        Ok(series)
    }

    async fn breakdown(
        &self,
        service: &str,
        from_minute: i64,
        count: usize,
    ) -> StoreResult<Breakdown> {
        let hours = spanned(from_minute, count, MINUTES_PER_HOUR);
        let slots = spanned(from_minute, count, MINUTES_PER_SLOT);
        let slots_per_hour = MINUTES_PER_HOUR / MINUTES_PER_SLOT;
        let keys: Vec<String> = hours.clone().map(|h| keys::breakdown(service, h)).collect();
        let mut out = Breakdown::default();
        for (hour, hash) in hours.zip(self.hashes(&keys).await?) {
            for (field, value) in hash {
                let Some((slot, kind, name)) = keys::parse_breakdown_field(&field) else {
                    continue;
                };
                if !slots.contains(&(hour * slots_per_hour + slot)) {
                    continue;
                }
                let map = if kind == 'p' {
                    &mut out.problems
                } else {
                    &mut out.countries
                };
                *map.entry(name.to_string()).or_default() += value;
            }
        }
        Ok(out)
    }

    async fn distinct(
        &self,
        service: &str,
        from_minute: i64,
        count: usize,
    ) -> StoreResult<Distinct> {
        if count == 0 {
            return Ok(Distinct::default());
        }
        let minutes = from_minute..from_minute + count as i64;
        let mut pipe = redis::pipe();
        pipe.cmd("PFCOUNT").arg(
            minutes
                .clone()
                .map(|m| keys::reporters(service, m))
                .collect::<Vec<_>>(),
        );
        pipe.cmd("PFCOUNT").arg(
            minutes
                .map(|m| keys::networks(service, m))
                .collect::<Vec<_>>(),
        );
        let (reporters, networks): (u64, u64) = self.query(&pipe, self.read_timeout).await?;
        Ok(Distinct {
            reporters,
            networks,
        })
    }

    async fn ping(&self) -> StoreResult<()> {
        let mut pipe = redis::pipe();
        pipe.cmd("PING");
        let (_pong,): (String,) = self.query(&pipe, self.read_timeout).await?;
        Ok(())
    }
}
