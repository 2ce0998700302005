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

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard};

use super::keys::{MINUTES_PER_QUARTER, MINUTES_PER_SLOT};
use super::{Breakdown, Distinct, ImportRow, Receipt, ReportWrite, Retention, Store, StoreResult};

/// How often, in seconds of report time, expired entries are swept out.
const SWEEP_EVERY_SECS: i64 = 60;

pub struct EmbeddedStore {
    pub(super) retention: Retention,
    max_entries: usize,
    state: Mutex<State>,
    pub(super) feed: Box<Mutex<super::embedded_feed::FeedData>>,
}

#[derive(Default)]
struct State {
    services: HashMap<String, ServiceData>,
    last_sweep: i64,
    /// Entries of each bounded kind in the order they were made.
    order: [VecDeque<Entry>; KINDS],
    /// Entries evicted since the log last said so, per kind.
    evicted: [u64; KINDS],
}

/// The bounded kinds, as indices of [`State::order`].
const DEDUP: usize = 0;
const IDEMPOTENCY: usize = 1;
const REPORTERS: usize = 2;
const NETWORKS: usize = 3;
const NETWORK_COUNTS: usize = 4;
const KINDS: usize = 5;
const KIND_NAMES: [&str; KINDS] = [
    "dedup markers",
    "idempotency answers",
    "distinct reporters",
    "distinct networks",
    "per-network counts",
];

/// One bounded entry: its service, its key, and (distinct reporters and
/// networks) its minute or (markers, answers, counts) when it expires,
/// which tells a renewed entry from the one it replaced.
struct Entry {
    service: String,
    key: String,
    minute: i64,
    until: i64,
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
    /// Unix minute → network keys.
    networks: BTreeMap<i64, HashSet<String>>,
    /// Reporter key → when its dedup marker expires.
    dedup: HashMap<String, i64>,
    /// `<clock window>|<network key>` → the network's first reports in that
    /// window (see [`Retention::network_window`]), and until when it is kept.
    per_network: HashMap<String, (u64, i64)>,
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

    /// Whether the entry of `kind` is (still) held.
    fn holds(&self, kind: usize, e: &Entry) -> bool {
        match kind {
            DEDUP => self.dedup.get(&e.key) == Some(&e.until),
            IDEMPOTENCY => self.idempotency.get(&e.key).map(|(_, u)| *u) == Some(e.until),
            NETWORK_COUNTS => self.per_network.get(&e.key).map(|(_, u)| *u) == Some(e.until),
            _ => self
                .sets(kind)
                .get(&e.minute)
                .is_some_and(|s| s.contains(&e.key)),
        }
    }

    fn remove(&mut self, kind: usize, e: &Entry) {
        match kind {
            DEDUP => {
                self.dedup.remove(&e.key);
            }
            IDEMPOTENCY => {
                self.idempotency.remove(&e.key);
            }
            NETWORK_COUNTS => {
                self.per_network.remove(&e.key);
            }
            _ => {
                if let Some(set) = self.sets_mut(kind).get_mut(&e.minute) {
                    set.remove(&e.key);
                }
            }
        }
    }

    /// The per-minute sets of `kind` (distinct reporters or networks).
    fn sets(&self, kind: usize) -> &BTreeMap<i64, HashSet<String>> {
        if kind == NETWORKS {
            &self.networks
        } else {
            &self.reporters
        }
    }

    fn sets_mut(&mut self, kind: usize) -> &mut BTreeMap<i64, HashSet<String>> {
        if kind == NETWORKS {
            &mut self.networks
        } else {
            &mut self.reporters
        }
    }

    fn sweep(&mut self, r: &Retention, now: i64) {
        self.minutes.retain(|&m, _| r.minute_expiry(m) > now);
        self.breakdown
            .retain(|&s, _| r.minute_expiry(s * MINUTES_PER_SLOT) > now);
        self.quarters
            .retain(|&q, _| r.rollup_expiry(q * MINUTES_PER_QUARTER) > now);
        self.reporters.retain(|&m, _| r.reporters_expiry(m) > now);
        self.networks.retain(|&m, _| r.reporters_expiry(m) > now);
        self.dedup.retain(|_, &mut until| until > now);
        self.per_network.retain(|_, (_, until)| *until > now);
        self.idempotency.retain(|_, (_, until)| *until > now);
    }
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

    fn sweep_if_due(&self, state: &mut State, now: i64) {
        if now - state.last_sweep >= SWEEP_EVERY_SECS {
            state.last_sweep = now;
            for data in state.services.values_mut() {
                data.sweep(&self.retention, now);
            }
            // The order forgets what expired, so the bound counts what is held.
            let State {
                services,
                order,
                evicted,
                ..
            } = state;
            for (kind, entries) in order.iter_mut().enumerate() {
                entries.retain(|e| services.get(&e.service).is_some_and(|d| d.holds(kind, e)));
                if evicted[kind] > 0 {
                    tracing::warn!(
                        evicted = evicted[kind],
                        limit = self.max_entries,
                        "the embedded store was full of {}: the oldest were evicted (store.embedded_max_entries)",
                        KIND_NAMES[kind]
                    );
                    evicted[kind] = 0;
                }
            }
        }
    }

    /// Notes a new entry of `kind`, evicting the oldest past the bound.
    fn made(&self, state: &mut State, kind: usize, entry: Entry) {
        state.order[kind].push_back(entry);
        while state.order[kind].len() > self.max_entries {
            let Some(old) = state.order[kind].pop_front() else {
                break;
            };
            if let Some(data) = state.services.get_mut(&old.service)
                && data.holds(kind, &old)
            {
                data.remove(kind, &old);
                state.evicted[kind] += 1;
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

    async fn distinct(
        &self,
        service: &str,
        from_minute: i64,
        count: usize,
    ) -> StoreResult<Distinct> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::domain::{NetworkKey, Problem, ReporterKey};

    fn write(reporter: &str, at: i64, key: Option<&str>) -> ReportWrite {
        ReportWrite {
            id: uuid::Uuid::now_v7(),
            service: "whatsapp".into(),
            at,
            problem: Problem::Login,
            country: None,
            reporter: ReporterKey(reporter.into()),
            network: NetworkKey(format!("n-{reporter}")),
            idempotency_key: key.map(str::to_string),
            request: String::new(),
        }
    }

    /// One client making up reporters (or idempotency keys) by the
    /// thousand fills the store up to its bound and no further; the oldest
    /// go first, the newest are kept.
    #[tokio::test]
    async fn what_clients_can_multiply_is_bounded_and_the_oldest_go_first() {
        let s = Settings::defaults();
        let store = EmbeddedStore::new(Retention::new(&s.store, &s.intake), 100);
        let at = chrono::Utc::now().timestamp();
        for k in 0..250 {
            let key = format!("key-{k}");
            let receipts = store
                .record(&[write(&format!("r{k}"), at, Some(&key))])
                .await
                .unwrap();
            assert!(receipts[0].as_ref().unwrap().counted);
        }
        {
            let state = store.lock();
            let data = &state.services["whatsapp"];
            assert_eq!(data.dedup.len(), 100);
            assert_eq!(data.idempotency.len(), 100);
            assert_eq!(
                data.reporters.values().map(HashSet::len).sum::<usize>(),
                100
            );
            assert_eq!(state.evicted, [150; KINDS]);
            assert!(data.dedup.contains_key("r249") && !data.dedup.contains_key("r0"));
        }
        // The newest reporter is still deduplicated; the oldest counts again.
        let newest = store.record(&[write("r249", at, None)]).await.unwrap();
        assert!(!newest[0].as_ref().unwrap().counted);
        let oldest = store.record(&[write("r0", at, None)]).await.unwrap();
        assert!(oldest[0].as_ref().unwrap().counted);
    }

    /// A marker that expired and was renewed before a sweep keeps its
    /// place as the newest: the old place in the order evicts nothing.
    #[tokio::test]
    async fn a_renewed_marker_is_not_evicted_as_the_oldest() {
        let mut s = Settings::defaults();
        s.intake.dedup_window_secs = 10;
        let store = EmbeddedStore::new(Retention::new(&s.store, &s.intake), 2);
        let t0 = chrono::Utc::now().timestamp();
        let counted = |reporter: &'static str, at: i64| {
            let store = &store;
            async move {
                let r = store.record(&[write(reporter, at, None)]).await.unwrap();
                r[0].as_ref().unwrap().counted
            }
        };
        assert!(counted("r0", t0).await && counted("r1", t0).await);
        // r0's marker expires and is renewed (no sweep within a minute),
        // then r2 fills the store past its bound: r1's is the oldest.
        assert!(counted("r0", t0 + 11).await);
        assert!(counted("r2", t0 + 11).await);
        assert!(!counted("r0", t0 + 12).await, "the renewed marker is held");
    }
}
