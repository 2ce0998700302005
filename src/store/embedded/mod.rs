//! The embedded store: the same buckets, retention, dedup and idempotency rules
//! as the Redis store, kept in process memory behind one mutex.
//!
//! It makes `cargo run` work on a machine without Redis. It is not durable and
//! not shared between processes; the log says so at start-up. Distinct
//! reporters and networks are counted exactly rather than estimated. What
//! clients can multiply (dedup markers, idempotency answers, distinct
//! reporters, networks and their counts) is bounded: at most
//! `store.embedded_max_entries` of each kind, the oldest evicted first, and
//! the log says when.
//!
//! This file is the store's face: the [`Store`] calls, each under the one
//! lock. What it holds per service, the bounded kinds and their eviction and
//! sweeping are in `state.rs`.

mod state;

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard};

use self::state::{DEDUP, Entry, IDEMPOTENCY, NETWORK_COUNTS, NETWORKS, REPORTERS, State};
use super::keys::{MINUTES_PER_QUARTER, MINUTES_PER_SLOT};
use super::{
    Breakdown, Buckets, Distinct, ImportRow, Receipt, ReportWrite, Retention, Store, StoreResult,
};

pub struct EmbeddedStore {
    pub(super) retention: Retention,
    max_entries: usize,
    state: Mutex<State>,
    pub(super) feed: Box<Mutex<super::embedded_feed::FeedData>>,
}

impl EmbeddedStore {
    pub fn new(retention: Retention, max_entries: usize) -> Self {
        EmbeddedStore {
            retention,
            max_entries: max_entries.max(1),
            state: Mutex::new(State::default()),
            feed: Box::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated
        // in a way that matters more than losing the process would.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn wall_clock() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Store for EmbeddedStore {
    async fn record(&self, batch: &[ReportWrite]) -> StoreResult<Vec<StoreResult<Receipt>>> {
        let r = self.retention;
        let mut state = self.lock();
        if let Some(last) = batch.last() {
            self.sweep_if_due(&mut state, last.at);
        }
        let mut receipts = Vec::with_capacity(batch.len());
        for report in batch {
            let now = report.at;
            let data = state.services.entry(report.service.clone()).or_default();
            let replay = report.idempotency_key.as_ref().and_then(|key| {
                data.idempotency
                    .get(key)
                    .filter(|(_, until)| *until > now)
                    .map(|(receipt, _)| receipt.clone())
            });
            if let Some(receipt) = replay {
                receipts.push(Ok(receipt));
                continue;
            }
            let minute = report.minute();
            let (reporter, network) = (&report.reporter.0, &report.network.0);
            // Each entry made or renewed: its kind, key and expiry.
            let mut made: Vec<(usize, String, i64)> = Vec::new();
            // A reporter's first report in the window counts if its network
            // has room in the clock window (as `record.lua`).
            let first = data.dedup.get(reporter).is_none_or(|&until| until <= now);
            let mut counted = false;
            if first {
                let until = now + r.dedup_window_secs;
                data.dedup.insert(reporter.clone(), until);
                made.push((DEDUP, reporter.clone(), until));
                let (window, window_kept) = r.network_window(minute);
                let slot = format!("{window}|{network}");
                match data.per_network.get_mut(&slot) {
                    Some((seen, _)) => {
                        *seen += 1;
                        counted = *seen <= r.counted_per_network;
                    }
                    None => {
                        made.push((NETWORK_COUNTS, slot.clone(), window_kept));
                        data.per_network.insert(slot, (1, window_kept));
                        counted = true;
                    }
                }
            }
            if counted {
                let country = report.country.as_ref().map(|c| c.as_str());
                data.add(minute, 1, Some(report.problem.as_str()), country, &r, now);
            }
            for (kind, key) in [(REPORTERS, reporter), (NETWORKS, network)] {
                if data
                    .sets_mut(kind)
                    .entry(minute)
                    .or_default()
                    .insert(key.clone())
                {
                    made.push((kind, key.clone(), 0));
                }
            }
            let receipt = Receipt {
                id: report.id,
                counted,
                minute,
                request: report.request.clone(),
            };
            if let Some(key) = &report.idempotency_key {
                let until = now + r.idempotency_ttl_secs;
                data.idempotency
                    .insert(key.clone(), (receipt.clone(), until));
                made.push((IDEMPOTENCY, key.clone(), until));
            }
            for (kind, key, until) in made {
                let entry = Entry {
                    service: report.service.clone(),
                    key,
                    minute,
                    until,
                };
                self.made(&mut state, kind, entry);
            }
            receipts.push(Ok(receipt));
        }
        Ok(receipts)
    }

    async fn import(&self, rows: &[ImportRow], now: i64) -> StoreResult<()> {
        let mut state = self.lock();
        for row in rows.iter().filter(|row| row.count > 0) {
            let data = state.services.entry(row.service.clone()).or_default();
            let problem = row.problem.map(|p| p.as_str());
            let country = row.country.as_ref().map(|c| c.as_str());
            data.add(
                row.minute,
                row.count,
                problem,
                country,
                &self.retention,
                now,
            );
        }
        Ok(())
    }

    async fn minute_totals(
        &self,
        services: &[&str],
        minutes: Buckets,
    ) -> StoreResult<Vec<Vec<u64>>> {
        let (from_minute, count) = (minutes.first, minutes.count);
        let now = wall_clock();
        let state = self.lock();
        let to = from_minute + count as i64;
        Ok(services
            .iter()
            .map(|s| {
                let mut series = vec![0u64; count];
                if let Some(data) = state.services.get(*s) {
                    for (&m, &n) in data.minutes.range(from_minute..to) {
                        if self.retention.minute_expiry(m) > now {
                            series[(m - from_minute) as usize] = n;
                        }
                    }
                }
                series
            })
            .collect())
    }

    async fn quarter_totals(&self, service: &str, quarters: Buckets) -> StoreResult<Vec<u64>> {
        let (from_quarter, count) = (quarters.first, quarters.count);
        let now = wall_clock();
        let state = self.lock();
        let mut series = vec![0u64; count];
        if let Some(data) = state.services.get(service) {
            for (&q, &n) in data
                .quarters
                .range(from_quarter..from_quarter + count as i64)
            {
                if self.retention.rollup_expiry(q * MINUTES_PER_QUARTER) > now {
                    series[(q - from_quarter) as usize] = n;
                }
            }
        }
        Ok(series)
    }

    async fn breakdown(&self, service: &str, minutes: Buckets) -> StoreResult<Breakdown> {
        let (from_minute, count) = (minutes.first, minutes.count);
        let now = wall_clock();
        let state = self.lock();
        let mut out = Breakdown::default();
        let Some(data) = state.services.get(service) else {
            return Ok(out);
        };
        let first = from_minute.div_euclid(MINUTES_PER_SLOT);
        let last = (from_minute + count.max(1) as i64 - 1).div_euclid(MINUTES_PER_SLOT);
        for (&slot, fields) in data.breakdown.range(first..=last) {
            if self.retention.minute_expiry(slot * MINUTES_PER_SLOT) <= now {
                continue;
            }
            for ((kind, name), &n) in fields {
                out.add(*kind, name, n);
            }
        }
        Ok(out)
    }

    async fn distinct(&self, service: &str, minutes: Buckets) -> StoreResult<Distinct> {
        let (from_minute, count) = (minutes.first, minutes.count);
        let now = wall_clock();
        let state = self.lock();
        let Some(data) = state.services.get(service) else {
            return Ok(Distinct::default());
        };
        let distinct = |kind: usize| {
            let keys: HashSet<&String> = data
                .sets(kind)
                .range(from_minute..from_minute + count as i64)
                .filter(|(m, _)| self.retention.reporters_expiry(**m) > now)
                .flat_map(|(_, set)| set.iter())
                .collect();
            keys.len() as u64
        };
        Ok(Distinct {
            reporters: distinct(REPORTERS),
            networks: distinct(NETWORKS),
        })
    }

    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }
}
