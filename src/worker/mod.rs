//! The detection worker: once per completed minute, judge every service it
//! holds a lease on, decide hits across services with false-discovery
//! control, advance each service's incident lifecycle, and write state,
//! expected counts and anomaly documents back to the store.
//!
//! [`Worker::step`] takes `now` and does one tick, so tests drive the worker
//! without sleeping; [`Worker::run`] calls it on an interval until shutdown.
//! Everything a worker knows of a service between ticks is in the store
//! (detector state, open incident), so a restarted worker, or another one
//! taking over the lease, carries on the same incidents. History is cached
//! in memory and reloaded after imports.

mod cache;
mod incident;
mod minute;
mod refresh;
pub mod share;
mod takeover;
#[cfg(test)]
mod tests;

use self::cache::Cached;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::config::{DetectSettings, WorkerSettings};
use crate::detect::judge::SeriesState;
use crate::detect::lifecycle::Event;
use crate::domain::Registry;
use crate::domain::anomaly::{Anomaly, AnomalyStatus};
use crate::store::{
    AnomalyRecord, AnyStore, ExpectedMinute, FeedStore, Lease, ServiceCommit, StoreResult,
};
use crate::telemetry::{Metrics, store_failed};

/// What the worker keeps of a service in the store between ticks.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServiceState {
    pub detector: SeriesState,
    /// The last minute judged (Unix minute).
    pub last_minute: Option<i64>,
    /// The open incident, or the last one while it may still reopen.
    pub incident: Option<Anomaly>,
    /// Past incident time `[start, end)`, kept out of baselines.
    pub masks: Vec<(i64, i64)>,
}

/// What one tick did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct TickReport {
    pub services_held: usize,
    pub minutes_judged: usize,
    pub hits: usize,
    pub events: Vec<(String, Event)>,
}

pub struct Worker {
    id: String,
    store: Arc<AnyStore>,
    metrics: Arc<Metrics>,
    registry: Arc<Registry>,
    detect: DetectSettings,
    settings: WorkerSettings,
    cache: HashMap<String, Cached>,
    /// When ticks started failing (the store unreachable), until one works.
    store_down_since: Option<i64>,
    /// Unix seconds `[from, until)` whose minutes cannot be hits: a store
    /// outage and the retry burst after it.
    quarantine: Option<(i64, i64)>,
}

impl Worker {
    pub fn new(
        store: Arc<AnyStore>,
        registry: Arc<Registry>,
        metrics: Arc<Metrics>,
        detect: DetectSettings,
        settings: WorkerSettings,
    ) -> Self {
        Worker {
            id: format!("worker-{}", uuid::Uuid::now_v7()),
            store,
            metrics,
            registry,
            detect,
            settings,
            cache: HashMap::new(),
            store_down_since: None,
            quarantine: None,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Minutes of minute-level history kept per service: the longest window
    /// with the level hours before it (or the history a young service
    /// needs, whichever is longer), and an hour to spare.
    fn minutes_kept(&self) -> i64 {
        let d = &self.detect;
        let level = i64::from(d.level_hours) * 60;
        i64::from(d.window_long_mins) + level.max(i64::from(d.min_history_hours) * 60) + 60
    }

    /// Quarter hours of rollups kept: the seasonal samples (or the sustained
    /// window's days and spread, if longer) and a day more.
    fn quarters_kept(&self) -> i64 {
        let d = &self.detect;
        let sustained = if d.sustained_hours > 0 {
            i64::from(d.sustained_days + d.sustained_spread_days) + 1
        } else {
            0
        };
        let days = (i64::from(d.season_weeks) * 7)
            .max(i64::from(d.season_days))
            .max(sustained)
            + 1;
        days * 96
    }

    /// Ticks every `tick_secs` until `shutdown` turns true, then gives up
    /// its leases so another worker takes over at once.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut interval = tokio::time::interval(Duration::from_secs(self.settings.tick_secs));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = shutdown.changed() => break,
            }
            if *shutdown.borrow() {
                break;
            }
            let now = chrono::Utc::now().timestamp();
            // The next tick retries. Meanwhile this worker is not one the
            // others should leave a share to: it could not hold it.
            if self.step(now).await.is_err() {
                let _ = self.store.workers(&self.id, 0).await;
            }
        }
        let held: Vec<&str> = self.cache.keys().map(String::as_str).collect();
        if let Err(e) = self.store.release_leases(&held, &self.id).await {
            tracing::warn!(error = %e, "could not release leases");
        }
        // The others share its services from their next tick on.
        if let Err(e) = self.store.workers(&self.id, 0).await {
            tracing::warn!(error = %e, "could not say this worker is leaving");
        }
    }

    /// One tick at `now` (Unix seconds): judges every completed minute not
    /// yet judged, for every service this worker holds. A failed tick is
    /// logged and counted here.
    pub async fn step(&mut self, now: i64) -> StoreResult<TickReport> {
        let started = std::time::Instant::now();
        if let Some(down) = self.store_down_since {
            // If this tick reaches the store, the outage is over: its minutes
            // and the retries after it are no evidence of anything.
            let until = now + self.settings.outage_quarantine_secs as i64;
            self.quarantine = Some((down - 60, until));
        }
        let result = self.tick(now).await;
        self.metrics
            .worker_tick_seconds
            .observe(started.elapsed().as_secs_f64());
        match &result {
            Ok(report) => {
                self.store_down_since = None;
                self.metrics
                    .worker_services_held
                    .set(report.services_held as i64);
                for (_, event) in &report.events {
                    let name = match event {
                        Event::Opened => "opened",
                        Event::Confirmed => "confirmed",
                        Event::Reopened => "reopened",
                        Event::Resolved => "resolved",
                    };
                    self.metrics.anomaly_events.with_label_values(&[name]).inc();
                }
            }
            Err(e) => {
                // What the tick changed in memory was not all written: forget
                // it, the next tick starts again from what the store has.
                self.cache.clear();
                self.store_down_since.get_or_insert(now);
                self.metrics.worker_tick_failures.inc();
                store_failed!(
                    self.metrics,
                    "worker_tick",
                    e,
                    worker = %self.id,
                    "detection tick failed; retrying next tick"
                );
            }
        }
        result
    }

    async fn tick(&mut self, now: i64) -> StoreResult<TickReport> {
        let target = now.div_euclid(60) - 1;
        let lease_ms = self.settings.lease_secs * 1000;
        // The workers alive share the services: this one takes its share
        // and gives back what is now another's (which takes it at its next
        // tick). A worker that stops ticking drops out with its lease.
        let alive = self.store.workers(&self.id, lease_ms).await?;
        let (ids, others): (Vec<&str>, Vec<&str>) = self
            .registry
            .services()
            .iter()
            .map(|s| s.id.as_str())
            .partition(|s| share::winner(s, &alive).is_none_or(|w| w == self.id));
        let given_back: Vec<&str> = others
            .into_iter()
            .filter(|s| self.cache.contains_key(*s))
            .collect();
        if !given_back.is_empty() {
            self.store.release_leases(&given_back, &self.id).await?;
            for s in &given_back {
                self.cache.remove(*s);
            }
        }
        let leases = self.store.acquire_leases(&ids, &self.id, lease_ms).await?;
        let mut held: Vec<String> = Vec::with_capacity(ids.len());
        let mut keep: HashSet<&str> = HashSet::with_capacity(ids.len());
        for (s, lease) in ids.iter().zip(leases) {
            if lease.held() {
                held.push(s.to_string());
            }
            // A lease taken afresh may follow another worker's ticks: the
            // stored state is newer than anything cached.
            if lease == Lease::Renewed {
                keep.insert(s);
            }
        }
        self.cache.retain(|s, _| keep.contains(s.as_str()));
        let taken = self.load(&held, now, target).await?;

        let mut report = TickReport {
            services_held: held.len(),
            ..TickReport::default()
        };
        let first = held
            .iter()
            .filter_map(|s| self.cache.get(s))
            .map(|c| c.state.last_minute.map_or(target, |m| m + 1))
            .min()
            .unwrap_or(target)
            .max(target - i64::from(self.settings.max_catch_up_minutes) + 1);
        let mut expected: HashMap<String, Vec<ExpectedMinute>> = HashMap::new();
        let before: HashMap<String, Option<i64>> = held
            .iter()
            .filter_map(|s| Some((s.clone(), self.cache.get(s)?.state.last_minute)))
            .collect();
        let mut touched: Vec<String> = Vec::new();
        let mut judged: HashSet<String> = HashSet::new();
        for minute in first..=target {
            for (s, done) in self.judge_minute(&held, minute).await? {
                report.minutes_judged += 1;
                report.hits += usize::from(done.hit);
                if let Some(m) = done.expected {
                    expected.entry(s.clone()).or_default().push(m);
                }
                if let Some(e) = done.event {
                    report.events.push((s.clone(), e));
                    touched.push(s);
                }
            }
        }
        for s in &held {
            if self.cache.get(s).and_then(|c| c.state.last_minute)
                != before.get(s).copied().flatten()
            {
                judged.insert(s.clone());
            }
        }

        // The feed first: ids are stable, so a commit that fails after it
        // leaves nothing the next holder would duplicate.
        let judged_now: Vec<String> = held
            .iter()
            .filter(|s| judged.contains(*s))
            .cloned()
            .collect();
        self.refresh_incidents(&judged_now, now).await?;

        // Only what this tick judged changed; other ticks of the same
        // minute only renewed leases.
        let records: Vec<AnomalyRecord> = held
            .iter()
            .filter(|s| judged.contains(*s))
            .filter_map(|s| self.cache.get(s)?.state.incident.as_ref())
            .filter(|doc| doc.status == AnomalyStatus::Open || touched.contains(&doc.service))
            .filter_map(incident::record)
            .collect();
        self.store.put_anomalies(&records).await?;
        // After this tick's own documents, so an incident the new holder
        // judged again under the same id is seen as held.
        if !taken.is_empty() {
            self.settle_stored_incidents(&taken, now).await?;
        }
        let commits: Vec<ServiceCommit> = held
            .iter()
            .filter(|s| judged.contains(*s))
            .filter_map(|s| {
                let c = self.cache.get(s)?;
                Some(ServiceCommit {
                    service: s.clone(),
                    state: serde_json::to_string(&c.state).ok()?,
                    expected: expected.remove(s).unwrap_or_default(),
                })
            })
            .collect();
        let committed = self.store.commit(&self.id, &commits).await?;
        for (c, ok) in commits.iter().zip(committed) {
            if !ok {
                // Lost the lease mid-tick: forget the service, its new
                // holder has the stored state.
                self.cache.remove(&c.service);
            }
        }
        report.services_held = self.cache.len();
        Ok(report)
    }
}
