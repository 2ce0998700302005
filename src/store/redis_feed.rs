//! [`FeedStore`] on Redis: leases and state per service (one script call per
//! service, in one pipeline), the feed in one transaction on its own slot.
//!
//! The scripts are small and sent with `EVAL`, so a Redis that lost its
//! script cache needs no reload dance here.

use std::collections::HashMap;

use super::feed::FeedEvent;
use super::feed_lua::{COMMIT_LUA, LEASE_LUA, PUT_ANOMALY_LUA, RELEASE_LUA, WORKERS_LUA};
use super::keys::{self, MINUTES_PER_HOUR};
use super::{
    AnomalyRecord, Buckets, FeedRange, FeedStore, Lease, RedisStore, ServiceCommit, StoreResult,
};

/// Index entries read per round trip while paging the feed.
const SCAN_BATCH: usize = 200;

impl FeedStore for RedisStore {
    async fn acquire_leases(
        &self,
        services: &[&str],
        holder: &str,
        ttl_ms: u64,
    ) -> StoreResult<Vec<Lease>> {
        if services.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for s in services {
            pipe.cmd("EVAL")
                .arg(LEASE_LUA)
                .arg(1)
                .arg(keys::lease(s))
                .arg(holder)
                .arg(ttl_ms);
        }
        let held: Vec<i64> = self.query(&pipe, self.write_timeout).await?;
        Ok(held
            .into_iter()
            .map(|h| match h {
                1 => Lease::Renewed,
                2 => Lease::Taken,
                _ => Lease::Refused,
            })
            .collect())
    }

    async fn release_leases(&self, services: &[&str], holder: &str) -> StoreResult<()> {
        if services.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for s in services {
            pipe.cmd("EVAL")
                .arg(RELEASE_LUA)
                .arg(1)
                .arg(keys::lease(s))
                .arg(holder)
                .ignore();
        }
        self.query::<()>(&pipe, self.write_timeout).await
    }

    async fn workers(&self, holder: &str, ttl_ms: u64) -> StoreResult<Vec<String>> {
        let mut pipe = redis::pipe();
        pipe.cmd("EVAL")
            .arg(WORKERS_LUA)
            .arg(1)
            .arg(keys::FEED_WORKERS)
            .arg(holder)
            .arg(ttl_ms);
        let (mut alive,): (Vec<String>,) = self.query(&pipe, self.write_timeout).await?;
        alive.sort();
        Ok(alive)
    }

    async fn load_states(&self, services: &[&str]) -> StoreResult<Vec<Option<String>>> {
        if services.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for s in services {
            pipe.get(keys::state(s));
        }
        self.query(&pipe, self.read_timeout).await
    }

    async fn commit(&self, holder: &str, commits: &[ServiceCommit]) -> StoreResult<Vec<bool>> {
        if commits.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for c in commits {
            let mut hours: Vec<(i64, Vec<(String, String)>)> = Vec::new();
            for e in &c.expected {
                let hour = e.minute.div_euclid(MINUTES_PER_HOUR);
                let field = (
                    keys::minute_field(e.minute),
                    format!("{:.3}:{:.3}", e.expected, e.upper),
                );
                match hours.last_mut() {
                    Some((h, fields)) if *h == hour => fields.push(field),
                    _ => hours.push((hour, vec![field])),
                }
            }
            let expire = c
                .expected
                .iter()
                .map(|e| self.retention.minute_expiry(e.minute))
                .max()
                .unwrap_or(0);
            let cmd = pipe
                .cmd("EVAL")
                .arg(COMMIT_LUA)
                .arg(2 + hours.len())
                .arg(keys::lease(&c.service))
                .arg(keys::state(&c.service));
            for (hour, _) in &hours {
                cmd.arg(keys::expected(&c.service, *hour));
            }
            cmd.arg(holder).arg(&c.state).arg(expire);
            for (_, fields) in &hours {
                cmd.arg(fields.len());
                for (f, v) in fields {
                    cmd.arg(f).arg(v);
                }
            }
        }
        let done: Vec<i64> = self.query(&pipe, self.write_timeout).await?;
        Ok(done.into_iter().map(|d| d == 1).collect())
    }

    async fn put_anomalies(&self, records: &[AnomalyRecord]) -> StoreResult<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for r in records {
            pipe.cmd("EVAL")
                .arg(PUT_ANOMALY_LUA)
                .arg(4)
                .arg(keys::FEED_DOCS)
                .arg(keys::FEED_INDEX)
                .arg(keys::FEED_OPEN)
                .arg(keys::FEED_EVENTS)
                .arg(&r.id)
                .arg(&r.doc)
                .arg(r.started_unix)
                .arg(r.updated_unix)
                .arg(&r.service)
                .arg(u8::from(r.open))
                .arg(self.retention.event_backlog)
                .arg(&r.summary)
                .ignore();
        }
        self.query::<()>(&pipe, self.write_timeout).await
    }

    async fn anomalies(&self, range: &FeedRange) -> StoreResult<Vec<(i64, String, String)>> {
        let min = range.since.unwrap_or(i64::MIN);
        let until = range.until.unwrap_or(i64::MAX);
        // Feed order is start time, then id, both descending (as Redis
        // orders equal scores in a reverse range). `cursor` is the last
        // entry read.
        let mut cursor: Option<(i64, String)> = range.after.clone();
        let mut out = Vec::new();
        while out.len() < range.limit {
            let mut page: Vec<(i64, String)> = Vec::new();
            // The rest of the cursor's second: all entries that share it
            // (at most one per service), those after the cursor.
            let below = match &cursor {
                Some((t, id)) if *t <= until && *t >= min => {
                    let ties: Vec<String> = self
                        .query::<(Vec<String>,)>(
                            redis::pipe()
                                .cmd("ZREVRANGEBYSCORE")
                                .arg(keys::FEED_INDEX)
                                .arg(*t)
                                .arg(*t),
                            self.read_timeout,
                        )
                        .await?
                        .0;
                    page.extend(ties.into_iter().filter(|m| m < id).map(|m| (*t, m)));
                    format!("({t}")
                }
                Some((t, _)) => format!("({}", (*t).min(until.saturating_add(1))),
                None => until.to_string(),
            };
            let want = range.limit - out.len();
            if page.len() < want {
                let (entries,): (Vec<(String, i64)>,) = self
                    .query(
                        redis::pipe()
                            .cmd("ZREVRANGEBYSCORE")
                            .arg(keys::FEED_INDEX)
                            .arg(&below)
                            .arg(min)
                            .arg("WITHSCORES")
                            .arg("LIMIT")
                            .arg(0)
                            .arg(SCAN_BATCH.min(want - page.len())),
                        self.read_timeout,
                    )
                    .await?;
                page.extend(entries.into_iter().map(|(id, t)| (t, id)));
            }
            page.truncate(want);
            let Some(last) = page.last().cloned() else {
                break;
            };
            let ids: Vec<&str> = page.iter().map(|(_, id)| id.as_str()).collect();
            let (docs,): (Vec<Option<String>>,) = self
                .query(
                    redis::pipe().cmd("HMGET").arg(keys::FEED_DOCS).arg(&ids),
                    self.read_timeout,
                )
                .await?;
            for ((t, id), doc) in page.into_iter().zip(docs) {
                if let Some(doc) = doc {
                    out.push((t, id, doc));
                }
            }
            cursor = Some(last);
        }
        Ok(out)
    }

    async fn events_after(&self, after: &str, limit: usize) -> StoreResult<Vec<FeedEvent>> {
        let (entries,): (Vec<(String, HashMap<String, String>)>,) = self
            .query(
                redis::pipe()
                    .cmd("XRANGE")
                    .arg(keys::FEED_EVENTS)
                    .arg(format!("({after}"))
                    .arg("+")
                    .arg("COUNT")
                    .arg(limit.max(1)),
                self.read_timeout,
            )
            .await?;
        Ok(entries
            .into_iter()
            .map(|(id, mut fields)| FeedEvent {
                id,
                kind: fields.remove("kind").unwrap_or_default(),
                doc: fields.remove("doc").unwrap_or_default(),
            })
            .collect())
    }

    async fn last_event_id(&self) -> StoreResult<Option<String>> {
        let (entries,): (Vec<(String, HashMap<String, String>)>,) = self
            .query(
                redis::pipe()
                    .cmd("XREVRANGE")
                    .arg(keys::FEED_EVENTS)
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1),
                self.read_timeout,
            )
            .await?;
        Ok(entries.into_iter().next().map(|(id, _)| id))
    }

    async fn anomaly(&self, id: &str) -> StoreResult<Option<String>> {
        let mut pipe = redis::pipe();
        pipe.hget(keys::FEED_DOCS, id);
        let (doc,): (Option<String>,) = self.query(&pipe, self.read_timeout).await?;
        Ok(doc)
    }

    async fn open_anomalies(&self) -> StoreResult<HashMap<String, String>> {
        let mut pipe = redis::pipe();
        pipe.hgetall(keys::FEED_OPEN);
        let (open,): (HashMap<String, String>,) = self.query(&pipe, self.read_timeout).await?;
        if open.is_empty() {
            return Ok(HashMap::new());
        }
        let (services, ids): (Vec<String>, Vec<String>) = open.into_iter().unzip();
        let mut pipe = redis::pipe();
        pipe.cmd("HMGET").arg(keys::FEED_DOCS).arg(&ids);
        let (docs,): (Vec<Option<String>>,) = self.query(&pipe, self.read_timeout).await?;
        Ok(services
            .into_iter()
            .zip(docs)
            .filter_map(|(s, d)| Some((s, d?)))
            .collect())
    }

    async fn expected(
        &self,
        service: &str,
        minutes: Buckets,
    ) -> StoreResult<Vec<Option<(f64, f64)>>> {
        let (from_minute, count) = (minutes.first, minutes.count);
        let hours = super::redis::spanned(from_minute, count, MINUTES_PER_HOUR);
        let mut pipe = redis::pipe();
        for hour in hours.clone() {
            pipe.hgetall(keys::expected(service, hour));
        }
        let hashes: Vec<HashMap<String, String>> = self.query(&pipe, self.read_timeout).await?;
        let mut out = vec![None; count];
        for (hour, hash) in hours.zip(hashes) {
            for (field, value) in hash {
                let (Ok(m), Some((e, u))) = (field.parse::<i64>(), value.split_once(':')) else {
                    continue;
                };
                let offset = hour * MINUTES_PER_HOUR + m - from_minute;
                if let (true, Ok(e), Ok(u)) = (
                    (0..count as i64).contains(&offset),
                    e.parse::<f64>(),
                    u.parse::<f64>(),
                ) {
                    out[offset as usize] = Some((e, u));
                }
            }
        }
        Ok(out)
    }

    async fn history_epoch(&self) -> StoreResult<u64> {
        let mut pipe = redis::pipe();
        pipe.get(keys::HISTORY_EPOCH);
        let (epoch,): (Option<u64>,) = self.query(&pipe, self.read_timeout).await?;
        Ok(epoch.unwrap_or(0))
    }

    async fn bump_history_epoch(&self) -> StoreResult<()> {
        let mut pipe = redis::pipe();
        pipe.incr(keys::HISTORY_EPOCH, 1).ignore();
        self.query::<()>(&pipe, self.write_timeout).await
    }
}
