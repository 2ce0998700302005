//! [`FeedStore`] in process memory, with the Redis store's semantics:
//! leases expire, commits are refused to a worker that lost its lease,
//! expected counts expire with the minute buckets.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

use super::feed::{FeedEvent, parse_event_id};
use super::{
    AnomalyRecord, Buckets, EmbeddedStore, FeedRange, FeedStore, Lease, ServiceCommit, StoreResult,
};

#[derive(Default)]
pub struct FeedData {
    leases: HashMap<String, (String, Instant)>,
    /// Worker → alive until.
    workers: HashMap<String, Instant>,
    states: HashMap<String, String>,
    /// (service, minute) → (expected, upper).
    expected: BTreeMap<(String, i64), (f64, f64)>,
    docs: HashMap<String, String>,
    /// (started, id), iterated newest first.
    index: BTreeSet<(i64, String)>,
    open: HashMap<String, String>,
    epoch: u64,
    /// Feed events, oldest first, at most `event_backlog`; ids as Redis
    /// makes them (milliseconds, then a sequence within the millisecond).
    events: VecDeque<((u64, u64), FeedEvent)>,
}

impl FeedData {
    fn push_event(&mut self, kind: &str, doc: &str, backlog: usize) {
        let ms = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
        let id = match self.events.back() {
            Some(((last_ms, seq), _)) if *last_ms >= ms => (*last_ms, seq + 1),
            _ => (ms, 0),
        };
        self.events.push_back((
            id,
            FeedEvent {
                id: format!("{}-{}", id.0, id.1),
                kind: kind.to_string(),
                doc: doc.to_string(),
            },
        ));
        while self.events.len() > backlog {
            self.events.pop_front();
        }
    }
}

/// The event an anomaly's new version makes, given the stored one (as the
/// Redis script decides it); `None` when nothing changed.
fn event_kind(
    old: Option<&serde_json::Value>,
    old_text: Option<&str>,
    r: &AnomalyRecord,
) -> Option<&'static str> {
    if old_text == Some(r.doc.as_str()) {
        return None;
    }
    let was_open = old.map(|d| d["status"] == "open");
    Some(match (was_open, r.open) {
        (None, true) | (Some(false), true) => "opened",
        (Some(true), true) | (Some(false), false) => "updated",
        (None, false) | (Some(true), false) => "resolved",
    })
}

impl EmbeddedStore {
    fn feed(&self) -> MutexGuard<'_, FeedData> {
        self.feed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn held_by(f: &FeedData, service: &str, holder: &str, now: Instant) -> bool {
    f.leases
        .get(service)
        .is_some_and(|(h, until)| h == holder && *until > now)
}

impl FeedStore for EmbeddedStore {
    async fn acquire_leases(
        &self,
        services: &[&str],
        holder: &str,
        ttl_ms: u64,
    ) -> StoreResult<Vec<Lease>> {
        let now = Instant::now();
        let until = now + Duration::from_millis(ttl_ms);
        let mut f = self.feed();
        Ok(services
            .iter()
            .map(|s| {
                let outcome = match f.leases.get(*s) {
                    Some((h, t)) if *t > now && h == holder => Lease::Renewed,
                    Some((_, t)) if *t > now => Lease::Refused,
                    _ => Lease::Taken,
                };
                if outcome.held() {
                    f.leases.insert(s.to_string(), (holder.to_string(), until));
                }
                outcome
            })
            .collect())
    }

    async fn release_leases(&self, services: &[&str], holder: &str) -> StoreResult<()> {
        let mut f = self.feed();
        for s in services {
            if f.leases.get(*s).is_some_and(|(h, _)| h == holder) {
                f.leases.remove(*s);
            }
        }
        Ok(())
    }

    async fn workers(&self, holder: &str, ttl_ms: u64) -> StoreResult<Vec<String>> {
        let now = Instant::now();
        let mut f = self.feed();
        f.workers.retain(|_, until| *until > now);
        if ttl_ms == 0 {
            f.workers.remove(holder);
        } else {
            f.workers
                .insert(holder.to_string(), now + Duration::from_millis(ttl_ms));
        }
        let mut alive: Vec<String> = f.workers.keys().cloned().collect();
        alive.sort();
        Ok(alive)
    }

    async fn load_states(&self, services: &[&str]) -> StoreResult<Vec<Option<String>>> {
        let f = self.feed();
        Ok(services.iter().map(|s| f.states.get(*s).cloned()).collect())
    }

    async fn commit(&self, holder: &str, commits: &[ServiceCommit]) -> StoreResult<Vec<bool>> {
        let now = Instant::now();
        let wall = chrono::Utc::now().timestamp();
        let retention = self.retention;
        let mut f = self.feed();
        let done = commits
            .iter()
            .map(|c| {
                if !held_by(&f, &c.service, holder, now) {
                    return false;
                }
                f.states.insert(c.service.clone(), c.state.clone());
                for e in &c.expected {
                    f.expected
                        .insert((c.service.clone(), e.minute), (e.expected, e.upper));
                }
                true
            })
            .collect();
        f.expected
            .retain(|(_, minute), _| retention.minute_expiry(*minute) > wall);
        Ok(done)
    }

    async fn put_anomalies(&self, records: &[AnomalyRecord]) -> StoreResult<()> {
        let backlog = self.retention.event_backlog;
        let mut f = self.feed();
        for r in records {
            let old_text = f.docs.get(&r.id).cloned();
            let old = old_text
                .as_deref()
                .and_then(|old| serde_json::from_str::<serde_json::Value>(old).ok());
            let newer_stored = old
                .as_ref()
                .and_then(|old| old["updated_unix"].as_i64())
                .is_some_and(|stored| stored > r.updated_unix);
            if newer_stored {
                continue;
            }
            let Some(kind) = event_kind(old.as_ref(), old_text.as_deref(), r) else {
                continue;
            };
            f.push_event(kind, &r.summary, backlog);
            f.docs.insert(r.id.clone(), r.doc.clone());
            f.index.insert((r.started_unix, r.id.clone()));
            if r.open {
                f.open.insert(r.service.clone(), r.id.clone());
            } else if f.open.get(&r.service) == Some(&r.id) {
                f.open.remove(&r.service);
            }
        }
        Ok(())
    }

    async fn anomalies(&self, range: &FeedRange) -> StoreResult<Vec<(i64, String, String)>> {
        let f = self.feed();
        let (since, until) = (
            range.since.unwrap_or(i64::MIN),
            range.until.unwrap_or(i64::MAX),
        );
        Ok(f.index
            .iter()
            .rev()
            .filter(|(t, id)| {
                *t >= since
                    && *t <= until
                    && range
                        .after
                        .as_ref()
                        .is_none_or(|(at, aid)| (*t, id.as_str()) < (*at, aid.as_str()))
            })
            .filter_map(|(t, id)| Some((*t, id.clone(), f.docs.get(id)?.clone())))
            .take(range.limit)
            .collect())
    }

    async fn events_after(&self, after: &str, limit: usize) -> StoreResult<Vec<FeedEvent>> {
        let after = parse_event_id(after).unwrap_or((u64::MAX, u64::MAX));
        let f = self.feed();
        Ok(f.events
            .iter()
            .filter(|(id, _)| *id > after)
            .take(limit.max(1))
            .map(|(_, e)| e.clone())
            .collect())
    }

    async fn last_event_id(&self) -> StoreResult<Option<String>> {
        Ok(self.feed().events.back().map(|(_, e)| e.id.clone()))
    }

    async fn anomaly(&self, id: &str) -> StoreResult<Option<String>> {
        Ok(self.feed().docs.get(id).cloned())
    }

    async fn open_anomalies(&self) -> StoreResult<HashMap<String, String>> {
        let f = self.feed();
        Ok(f.open
            .iter()
            .filter_map(|(s, id)| Some((s.clone(), f.docs.get(id)?.clone())))
            .collect())
    }

    async fn expected(
        &self,
        service: &str,
        minutes: Buckets,
    ) -> StoreResult<Vec<Option<(f64, f64)>>> {
        let (from_minute, count) = (minutes.first, minutes.count);
        let f = self.feed();
        Ok((0..count as i64)
            .map(|i| {
                f.expected
                    .get(&(service.to_string(), from_minute + i))
                    .copied()
            })
            .collect())
    }

    async fn history_epoch(&self) -> StoreResult<u64> {
        Ok(self.feed().epoch)
    }

    async fn bump_history_epoch(&self) -> StoreResult<()> {
        self.feed().epoch += 1;
        Ok(())
    }
}
