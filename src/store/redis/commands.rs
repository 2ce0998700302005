//! The Redis store's [`Store`] commands: a batch of reports as one pipeline
//! of script calls (retried once where Redis lost the script), an import as
//! coalesced `HINCRBY`s each with its key's `EXPIREAT`, and each read as one
//! pipeline of `HGETALL`s or `PFCOUNT`s, all under the store's deadlines.

use std::collections::{BTreeMap, HashMap};

use redis::{ErrorKind, Pipeline, ServerErrorKind};

use super::super::keys::{
    self, MINUTES_PER_DAY, MINUTES_PER_HOUR, MINUTES_PER_QUARTER, MINUTES_PER_SLOT,
};
use super::super::{
    Breakdown, Buckets, Distinct, ImportRow, Receipt, ReportWrite, Store, StoreError, StoreResult,
};
use super::record::{group_by_bucket, parse_receipt};
use super::{RedisStore, spanned};

/// Commands per pipeline when importing, to bound memory on both sides.
const IMPORT_PIPELINE_COMMANDS: usize = 20_000;

impl RedisStore {
    /// HGETALL of each key in one round trip.
    async fn hashes(&self, keys: &[String]) -> StoreResult<Vec<HashMap<String, u64>>> {
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.hgetall(key);
        }
        self.query(&pipe, self.read_timeout).await
    }
}

/// Adds a hash of bucket counts into `series`, whose first bucket is `from`:
/// each field is a bucket's number counted from `base` (a minute of the
/// hash's hour, a quarter of its day). Fields that are not numbers, and
/// buckets outside the series, are left out.
fn add_buckets(series: &mut [u64], hash: HashMap<String, u64>, base: i64, from: i64) {
    for (field, value) in hash {
        let Ok(i) = field.parse::<i64>() else {
            continue;
        };
        let offset = base + i - from;
        if (0..series.len() as i64).contains(&offset) {
            series[offset as usize] += value;
        }
    }
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
            let mut pipe = self.record_pipeline(batch, &groups, &pending);
            if self.ack_replicas > 0 {
                // Most of the write budget, the rest for the writes before.
                let wait_ms = self.write_timeout.as_millis() as u64 * 2 / 3;
                pipe.cmd("WAIT").arg(self.ack_replicas).arg(wait_ms.max(1));
            }
            let mut answers: Vec<redis::Value> = self.query(&pipe, self.write_timeout).await?;
            if self.ack_replicas > 0 {
                let acked = match answers.pop() {
                    Some(redis::Value::Int(n)) => n,
                    other => return Err(StoreError::Protocol(format!("WAIT answered {other:?}"))),
                };
                if acked < i64::from(self.ack_replicas) {
                    return Err(StoreError::Unreplicated {
                        acked,
                        wanted: self.ack_replicas,
                    });
                }
            }
            if answers.len() != pending.len() {
                return Err(StoreError::Protocol("pipeline answer count".into()));
            }
            let answers = answers
                .into_iter()
                .map(redis::from_redis_value::<redis::RedisResult<Vec<String>>>)
                .map(|a| a.unwrap_or_else(|e| Err(e.into())));
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
            let expire = r.rollup_expiry(minute);
            if expire > now {
                let day = minute.div_euclid(MINUTES_PER_DAY);
                add(
                    keys::rollup(service, day),
                    keys::quarter_field(minute),
                    row.count,
                    expire,
                );
            }
            let expire = r.minute_expiry(minute);
            if expire > now {
                let hour = minute.div_euclid(MINUTES_PER_HOUR);
                add(
                    keys::totals(service, hour),
                    keys::minute_field(minute),
                    row.count,
                    expire,
                );
                let slot = keys::slot_of(minute);
                let problem = row.problem.map(|p| keys::problem_field(slot, p.as_str()));
                let country = row.country.map(|c| keys::country_field(slot, c.as_str()));
                for field in [problem, country].into_iter().flatten() {
                    add(keys::breakdown(service, hour), field, row.count, expire);
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
        minutes: Buckets,
    ) -> StoreResult<Vec<Vec<u64>>> {
        let (from_minute, count) = (minutes.first, minutes.count);
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
                add_buckets(&mut series, hash, hour * MINUTES_PER_HOUR, from_minute);
            }
            out.push(series);
        }
        Ok(out)
    }

    async fn quarter_totals(&self, service: &str, quarters: Buckets) -> StoreResult<Vec<u64>> {
        let (from_quarter, count) = (quarters.first, quarters.count);
        let quarters_per_day = MINUTES_PER_DAY / MINUTES_PER_QUARTER;
        let days = spanned(from_quarter, count, quarters_per_day);
        let keys: Vec<String> = days.clone().map(|d| keys::rollup(service, d)).collect();
        let mut series = vec![0u64; count];
        for (day, hash) in days.zip(self.hashes(&keys).await?) {
            add_buckets(&mut series, hash, day * quarters_per_day, from_quarter);
        }
        Ok(series)
    }

    async fn breakdown(&self, service: &str, minutes: Buckets) -> StoreResult<Breakdown> {
        let (from_minute, count) = (minutes.first, minutes.count);
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
                out.add(kind, name, value);
            }
        }
        Ok(out)
    }

    async fn distinct(&self, service: &str, minutes: Buckets) -> StoreResult<Distinct> {
        let (from_minute, count) = (minutes.first, minutes.count);
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
        let mut conn = self.conn.clone();
        self.bounded(self.read_timeout, conn.ping()).await
    }
}
