//! The embedded store: the same buckets, retention, dedup and idempotency rules
//! as the Redis store, kept in process memory behind one mutex.
//!
//! It makes `cargo run` work on a machine without Redis. It is not durable and
//! not shared between processes; the log says so at start-up. Distinct
//! reporters are counted exactly rather than estimated.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use super::keys::{MINUTES_PER_QUARTER, MINUTES_PER_SLOT};
use super::{Breakdown, ImportRow, Receipt, ReportWrite, Retention, Store, StoreResult};

/// How often, in seconds of report time, expired entries are swept out.
const SWEEP_EVERY_SECS: i64 = 60;

pub struct EmbeddedStore {
    pub(super) retention: Retention,
    state: Mutex<State>,
    pub(super) feed: Box<Mutex<super::embedded_feed::FeedData>>,
}

#[derive(Default)]
struct State {
    services: HashMap<String, ServiceData>,
    last_sweep: i64,
}

#[derive(Default)]
struct ServiceData {
    /// Unix minute → counted reports.
    minutes: BTreeMap<i64, u64>,
    /// Unix 5-minute slot → problem (`p`) or country (`c`) → counted reports.
    breakdown: BTreeMap<i64, BTreeMap<(char, String), u64>>,
    /// Unix quarter hour → counted reports.
    quarters: BTreeMap<i64, u64>,
    /// Unix minute → reporter keys.
    reporters: BTreeMap<i64, HashSet<String>>,
    /// Reporter key → when its dedup marker expires.
    dedup: HashMap<String, i64>,
    /// Idempotency key → stored answer and when it expires.
    idempotency: HashMap<String, (Receipt, i64)>,
}

impl ServiceData {
    fn add(
        &mut self,
        minute: i64,
        count: u64,
        problem: Option<&str>,
        country: Option<&str>,
        r: &Retention,
        now: i64,
    ) {
        if r.rollup_expiry(minute) > now {
            *self
                .quarters
                .entry(minute.div_euclid(MINUTES_PER_QUARTER))
                .or_default() += count;
        }
        if r.minute_expiry(minute) > now {
            *self.minutes.entry(minute).or_default() += count;
            let slot = self
                .breakdown
                .entry(minute.div_euclid(MINUTES_PER_SLOT))
                .or_default();
            if let Some(p) = problem {
                *slot.entry(('p', p.to_string())).or_default() += count;
            }
            if let Some(c) = country {
                *slot.entry(('c', c.to_string())).or_default() += count;
            }
        }
    }

    fn sweep(&mut self, r: &Retention, now: i64) {
        self.minutes.retain(|&m, _| r.minute_expiry(m) > now);
        self.breakdown
            .retain(|&s, _| r.minute_expiry(s * MINUTES_PER_SLOT) > now);
        self.quarters
            .retain(|&q, _| r.rollup_expiry(q * MINUTES_PER_QUARTER) > now);
        self.reporters.retain(|&m, _| r.reporters_expiry(m) > now);
        self.dedup.retain(|_, &mut until| until > now);
        self.idempotency.retain(|_, (_, until)| *until > now);
    }
}

impl EmbeddedStore {
    pub fn new(retention: Retention) -> Self {
        EmbeddedStore {
            retention,
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

    fn sweep_if_due(&self, state: &mut State, now: i64) {
        if now - state.last_sweep >= SWEEP_EVERY_SECS {
            state.last_sweep = now;
            for data in state.services.values_mut() {
                data.sweep(&self.retention, now);
            }
        }
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
            let fresh = data
                .dedup
                .get(&report.reporter.0)
                .is_none_or(|&until| until <= now);
            if fresh {
                data.dedup
                    .insert(report.reporter.0.clone(), now + r.dedup_window_secs);
                let country = report.country.as_ref().map(|c| c.as_str());
                data.add(minute, 1, Some(report.problem.as_str()), country, &r, now);
            }
            data.reporters
                .entry(minute)
                .or_default()
                .insert(report.reporter.0.clone());
            let receipt = Receipt {
                id: report.id,
                counted: fresh,
                minute,
                request: report.request.clone(),
            };
            if let Some(key) = &report.idempotency_key {
                data.idempotency
                    .insert(key.clone(), (receipt.clone(), now + r.idempotency_ttl_secs));
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
        from_minute: i64,
        count: usize,
    ) -> StoreResult<Vec<Vec<u64>>> {
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

    async fn quarter_totals(
        &self,
        service: &str,
        from_quarter: i64,
        count: usize,
    ) -> StoreResult<Vec<u64>> {
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

    async fn breakdown(
        &self,
        service: &str,
        from_minute: i64,
        count: usize,
    ) -> StoreResult<Breakdown> {
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
                let map = if *kind == 'p' {
                    &mut out.problems
                } else {
                    &mut out.countries
                };
                *map.entry(name.clone()).or_default() += n;
            }
        }
        Ok(out)
    }

    async fn distinct_reporters(
        &self,
        service: &str,
        from_minute: i64,
        count: usize,
    ) -> StoreResult<u64> {
        let now = wall_clock();
        let state = self.lock();
        let Some(data) = state.services.get(service) else {
            return Ok(0);
        };
        let distinct: HashSet<&String> = data
            .reporters
            .range(from_minute..from_minute + count as i64)
            .filter(|(m, _)| self.retention.reporters_expiry(**m) > now)
            .flat_map(|(_, set)| set.iter())
            .collect();
        Ok(distinct.len() as u64)
    }

    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }
}
