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

use self::cache::{Cached, history_of, stagger};

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::config::{DetectSettings, WorkerSettings};
use crate::detect::baseline::HOUR;
use crate::detect::judge::{self, Judgement, SeriesState};
use crate::detect::lifecycle::Event;
use crate::detect::series::{FDR_Q, fdr_cutoff, is_candidate};
use crate::domain::anomaly::{Anomaly, AnomalyStatus};
use crate::domain::{Registry, Status};
use crate::store::keys::MINUTES_PER_QUARTER;
use crate::store::{
    AnomalyRecord, AnyStore, ExpectedMinute, FeedStore, Lease, ServiceCommit, Store, StoreResult,
};
use crate::telemetry::Metrics;

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
            if let Err(e) = self.step(now).await {
                tracing::warn!(error = %e, worker = %self.id, "detection tick failed; retrying next tick");
            }
        }
        let held: Vec<&str> = self.cache.keys().map(String::as_str).collect();
        if let Err(e) = self.store.release_leases(&held, &self.id).await {
            tracing::warn!(error = %e, "could not release leases");
        }
    }

    /// One tick at `now` (Unix seconds): judges every completed minute not
    /// yet judged, for every service this worker holds.
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
                self.metrics.store_error("worker_tick", e);
            }
        }
        result
    }

    async fn tick(&mut self, now: i64) -> StoreResult<TickReport> {
        let target = now.div_euclid(60) - 1;
        let ids: Vec<&str> = self
            .registry
            .services()
            .iter()
            .map(|s| s.id.as_str())
            .collect();
        let lease_ms = self.settings.lease_secs * 1000;
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
            self.judge_minute(&held, minute, &mut report, &mut expected, &mut touched)
                .await?;
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
            .filter_map(record_of)
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

    /// Judges `minute` for every held service and advances lifecycles.
    async fn judge_minute(
        &mut self,
        held: &[String],
        minute: i64,
        report: &mut TickReport,
        expected: &mut HashMap<String, Vec<ExpectedMinute>>,
        touched: &mut Vec<String>,
    ) -> StoreResult<()> {
        let d = self.detect.clone();
        let end = (minute + 1) * 60;
        let horizon = end - self.quarters_kept() * MINUTES_PER_QUARTER * 60;
        let mut judged: Vec<(String, Judgement)> = Vec::new();
        for s in held {
            let Some(c) = self.cache.get_mut(s) else {
                continue;
            };
            if c.state.last_minute.is_some_and(|m| m >= minute) {
                continue;
            }
            let history = history_of(c, end, &d);
            // Each service relearns its sustained spread at its own minute
            // of the hour, so they do not all in one tick.
            let phase = stagger(s, HOUR);
            judge::refresh(&mut c.state.detector, &history, end, phase, &d);
            judged.push((
                s.clone(),
                judge::judge(&history, &c.state.detector, end, 60, &d),
            ));
        }
        // Candidates: calibrated p below alert_p, ratio and excess floors;
        // then Benjamini-Hochberg over every service judged this minute.
        let ps: Vec<f64> = judged
            .iter()
            .map(|(_, j)| j.decisive().map_or(1.0, |w| w.p_calibrated))
            .collect();
        let cutoff = fdr_cutoff(&ps, FDR_Q);
        let quarantined = self
            .quarantine
            .is_some_and(|(from, until)| end > from && minute * 60 < until);
        for (s, judgement) in judged {
            let decisive = judgement.decisive().copied();
            let candidate = !quarantined
                && is_candidate(&judgement, &d)
                && decisive.is_some_and(|w| w.p_calibrated <= cutoff);
            // Distinct networks, counted only when the tick could be a hit
            // or an episode: both need the floor.
            let mut distinct = None;
            if let Some(w) = decisive
                && (candidate || judge::may_be_episode(&judgement, &d))
            {
                let minutes = w.floor_minutes(&d);
                let from = minute + 1 - minutes as i64;
                let counted = self.store.distinct(&s, from, minutes).await;
                // A hit must wait for the count (the tick fails and is
                // judged again); an episode alone is not worth the minute.
                distinct = if candidate {
                    Some(counted?)
                } else {
                    counted.ok()
                };
            }
            let supported = distinct.is_some_and(|n| n.networks >= d.min_networks);
            let hit = candidate && supported;
            report.hits += usize::from(hit);
            report.minutes_judged += 1;
            let Some(service) = self.registry.service(&s).cloned() else {
                continue;
            };
            let Some(c) = self.cache.get_mut(&s) else {
                continue;
            };
            let at = minute * 60;
            let learn = !quarantined && !c.state.detector.lifecycle.masks(at, &d);
            let open_before = c.state.detector.lifecycle.open.as_ref();
            let last_hit = open_before.map(|o| o.last_hit_at);
            let masked = open_before.map(|o| (o.masked_from(), o.masked_until(&d)));
            // A reopening later than a relapse is a new burst of its kind.
            let relapse = c.state.detector.lifecycle.relapse(at, judgement.rise, &d);
            let decided = judge::Decided {
                hit,
                supported,
                learn,
            };
            let event = judge::advance(&mut c.state.detector, &judgement, end, 60, decided, &d);
            c.state.last_minute = Some(minute);
            let reports = c.minute_count(minute);
            // The chart's expected count and threshold come from the short
            // window; a minute without one writes nothing (null on charts).
            let per_minute = decisive.map(|w| w.baseline.expected * 60.0 / w.len_secs as f64);
            if let Some(w) = judgement.windows[0] {
                let factor = c.state.detector.tail[0].factor(d.calibration_quantile);
                let scale = 60.0 / w.len_secs as f64;
                expected.entry(s.clone()).or_default().push(ExpectedMinute {
                    minute,
                    expected: w.baseline.expected * scale,
                    upper: w.upper(&d, factor) * scale,
                });
            }
            let p = decisive.map_or(1.0, |w| w.p_calibrated);
            if event == Some(Event::Reopened)
                && let Some(doc) = c.state.incident.as_mut()
            {
                // The time before it stays masked as the episode it was;
                // the open incident masks itself from its reopening on.
                incident::reopen(doc, !relapse);
            }
            if let Some(open) = &c.state.detector.lifecycle.open {
                // A new incident (opened, or confirmed at once when one hit
                // is enough) gets its document.
                let has_doc = c.state.incident.as_ref().is_some_and(|doc| {
                    doc.status == AnomalyStatus::Open && doc.started_unix == open.started_at
                });
                if !has_doc {
                    c.state.incident = Some(incident::open(&service, open.started_at));
                }
                if let Some(doc) = c.state.incident.as_mut() {
                    if open.severity == Status::Problem {
                        doc.severity = Status::Problem;
                    }
                    let m = incident::Minute {
                        minute,
                        reports,
                        expected: per_minute.unwrap_or(0.0),
                        p_value: p,
                        distinct: distinct.filter(|_| hit),
                    };
                    incident::record_minute(doc, m, self.settings.max_timeline_minutes);
                }
            }
            if event == Some(Event::Resolved)
                && let Some(doc) = c.state.incident.as_mut()
            {
                // It ended with the minute of its last hit (the lifecycle
                // resolves `quiet_mins` later, or at the first minute judged
                // after a pause).
                let ended = last_hit.map_or(end, |t| t + 60).max(doc.started_unix + 60);
                incident::resolve(doc, ended, end);
                // The baselines leave out the quiet minutes too, up to the
                // one that resolved it, as the backtest does (a fading tail
                // of an outage is not the service's normal).
                if let Some((from, until)) = masked {
                    c.state.masks.push((from, at.min(until)));
                }
            }
            c.state.masks.retain(|&(_, b)| b > horizon);
            if let Some(e) = event {
                report.events.push((s.clone(), e));
                touched.push(s.clone());
            }
        }
        Ok(())
    }

    /// Shares and headlines of the open incidents of `services` (those
    /// judged this tick), then company groups.
    async fn refresh_incidents(&mut self, held: &[String], now: i64) -> StoreResult<()> {
        for s in held {
            let Some(service) = self.registry.service(s).cloned() else {
                continue;
            };
            let Some(c) = self.cache.get_mut(s) else {
                continue;
            };
            let Some(doc) = c.state.incident.as_mut() else {
                continue;
            };
            if doc.status != AnomalyStatus::Open {
                continue;
            }
            // Problems and countries of the minutes recorded in the incident
            // (the breakdown is kept per 5 minutes, so slot edges may add a
            // few); of a long incident, its last day.
            let until = doc.updated_unix.div_euclid(60).min(now.div_euclid(60));
            let from = doc.started_unix.div_euclid(60).max(until - 1440);
            let count = (until - from).max(1) as usize;
            let breakdown = self.store.breakdown(s, from, count).await?;
            incident::refresh(doc, &service, Some(&breakdown));
        }
        // Other workers may hold other services of the same companies: their
        // open incidents, as stored, join the groups (read only; each worker
        // writes its own services' documents).
        // Only companies with services this worker does not hold.
        let companies: HashSet<String> = self
            .cache
            .values()
            .filter_map(|c| c.state.incident.as_ref())
            .filter(|doc| doc.status == AnomalyStatus::Open)
            .filter(|doc| {
                self.registry
                    .services_of(&doc.company)
                    .any(|s| !self.cache.contains_key(&s.id))
            })
            .map(|doc| doc.company.clone())
            .collect();
        let mut others: Vec<Anomaly> = Vec::new();
        if !companies.is_empty() {
            others = self
                .stored_open_anomalies()
                .await?
                .into_iter()
                .filter(|(service, doc)| {
                    !self.cache.contains_key(service) && companies.contains(&doc.company)
                })
                .map(|(_, doc)| doc)
                .collect();
        }
        let mut docs: Vec<&mut Anomaly> = self
            .cache
            .values_mut()
            .filter_map(|c| c.state.incident.as_mut())
            .chain(others.iter_mut())
            .collect();
        incident::group_by_company(&mut docs, &self.registry);
        Ok(())
    }
}

impl Worker {
    /// The open anomaly documents in the store, by service; a corrupt one
    /// is logged, counted and left out.
    async fn stored_open_anomalies(&self) -> StoreResult<HashMap<String, Anomaly>> {
        let open = self.store.open_anomalies().await?;
        Ok(open
            .into_iter()
            .filter_map(|(service, json)| Some((service, self.metrics.stored("anomaly", &json)?)))
            .collect())
    }
}

/// What the store keeps of an anomaly document.
fn record_of(doc: &Anomaly) -> Option<AnomalyRecord> {
    match serde_json::to_string(doc) {
        Ok(json) => Some(AnomalyRecord {
            id: doc.id.clone(),
            service: doc.service.clone(),
            started_unix: doc.started_unix,
            updated_unix: doc.updated_unix,
            open: doc.status == AnomalyStatus::Open,
            doc: json,
            summary: summary_json(doc),
        }),
        Err(e) => {
            tracing::error!(error = %e, id = %doc.id, "anomaly not serializable");
            None
        }
    }
}

/// The document without its timeline, for feed events.
fn summary_json(doc: &Anomaly) -> String {
    let summary = Anomaly {
        timeline: Vec::new(),
        ..doc.clone()
    };
    serde_json::to_string(&summary).unwrap_or_default()
}
