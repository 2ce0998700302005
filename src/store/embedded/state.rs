//! What the embedded store holds, per service, and how it stays bounded.
//!
//! Counts live in per-minute, per-slot and per-quarter maps; what clients
//! can multiply (dedup markers, idempotency answers, distinct reporters and
//! networks, per-network counts) is one of the bounded kinds: each entry
//! made is noted in its kind's order, and past `store.embedded_max_entries`
//! the oldest still held is evicted. Expired entries are swept out once a
//! minute of report time, and the order forgets them, so the bound counts
//! what is held.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use super::super::keys::{MINUTES_PER_QUARTER, MINUTES_PER_SLOT};
use super::super::{Receipt, Retention};
use super::EmbeddedStore;

/// How often, in seconds of report time, expired entries are swept out.
const SWEEP_EVERY_SECS: i64 = 60;

#[derive(Default)]
pub(super) struct State {
    pub(super) services: HashMap<String, ServiceData>,
    last_sweep: i64,
    /// Entries of each bounded kind in the order they were made.
    order: [VecDeque<Entry>; KINDS],
    /// Entries evicted since the log last said so, per kind.
    evicted: [u64; KINDS],
}

/// The bounded kinds, as indices of [`State::order`].
pub(super) const DEDUP: usize = 0;
pub(super) const IDEMPOTENCY: usize = 1;
pub(super) const REPORTERS: usize = 2;
pub(super) const NETWORKS: usize = 3;
pub(super) const NETWORK_COUNTS: usize = 4;
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
pub(super) struct Entry {
    pub(super) service: String,
    pub(super) key: String,
    pub(super) minute: i64,
    pub(super) until: i64,
}

#[derive(Default)]
pub(super) struct ServiceData {
    /// Unix minute → counted reports.
    pub(super) minutes: BTreeMap<i64, u64>,
    /// Unix 5-minute slot → problem (`p`) or country (`c`) → counted reports.
    pub(super) breakdown: BTreeMap<i64, BTreeMap<(char, String), u64>>,
    /// Unix quarter hour → counted reports.
    pub(super) quarters: BTreeMap<i64, u64>,
    /// Unix minute → reporter keys.
    reporters: BTreeMap<i64, HashSet<String>>,
    /// Unix minute → network keys.
    networks: BTreeMap<i64, HashSet<String>>,
    /// Reporter key → when its dedup marker expires.
    pub(super) dedup: HashMap<String, i64>,
    /// `<clock window>|<network key>` → the network's first reports in that
    /// window (see [`Retention::network_window`]), and until when it is kept.
    pub(super) per_network: HashMap<String, (u64, i64)>,
    /// Idempotency key → stored answer and when it expires.
    pub(super) idempotency: HashMap<String, (Receipt, i64)>,
}

impl ServiceData {
    pub(super) fn add(
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
    pub(super) fn sets(&self, kind: usize) -> &BTreeMap<i64, HashSet<String>> {
        if kind == NETWORKS {
            &self.networks
        } else {
            &self.reporters
        }
    }

    pub(super) fn sets_mut(&mut self, kind: usize) -> &mut BTreeMap<i64, HashSet<String>> {
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
    pub(super) fn sweep_if_due(&self, state: &mut State, now: i64) {
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
    pub(super) fn made(&self, state: &mut State, kind: usize, entry: Entry) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::domain::{NetworkKey, Problem, ReporterKey};
    use crate::store::{ReportWrite, Store};

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
