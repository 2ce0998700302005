//! `outagewatch serve --demo`: a living system for newcomers. At start it
//! imports `demo.history_days` (8) days of simulated history for a few dozen services (the five
//! Meta services first), then keeps sending their simulated reports through
//! the real intake, second by second, with a Meta-style outage soon after
//! start and again every `demo.outage_every_mins`, and a single-service
//! outage between them. Within minutes the pages show charts, incidents and
//! a company-wide event, all found by the real worker.
//!
//! The traffic model is [`crate::simulate::model`]; only the outages are
//! planned here, relative to the start.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::DemoSettings;
use crate::domain::{Country, Problem, RawReport, Registry};
use crate::http::ErrorCode;
use crate::intake::{Intake, Origin};
use crate::simulate::model::{META_REPLAY, Outage, Scenario, Spec};
use crate::store::{AnyStore, FeedStore, ImportRow, Store};
use crate::telemetry::Metrics;

/// Days of live traffic planned ahead; the demo stops sending after them.
const LIVE_DAYS: i64 = 30;
/// Rows per import call.
const IMPORT_CHUNK: usize = 20_000;
/// Where simulated reporters say they are, most first.
const COUNTRIES: [&str; 8] = ["US", "GB", "BR", "IN", "DE", "FR", "JP", "NG"];

/// The running demo; dropping it stops the traffic.
pub struct Demo {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the demo drives: the store its history is imported into, and the
/// intake its live reports go through (their refusals counted as the API
/// counts its own).
pub struct Parts {
    pub store: Arc<AnyStore>,
    pub intake: Arc<Intake>,
    pub metrics: Arc<Metrics>,
}

/// One service's planned minutes from the scenario's start.
struct Planned {
    id: String,
    counts: Vec<u64>,
    injected: Vec<u64>,
    problems: Vec<Problem>,
}

impl Demo {
    /// Imports the history, then starts the live traffic on this runtime.
    pub async fn start(
        settings: &DemoSettings,
        registry: &Registry,
        parts: Parts,
        now: i64,
    ) -> anyhow::Result<Demo> {
        let (start, planned) = plan(registry, settings, now);
        let imported = import_history(&parts.store, start, &planned, now).await?;
        tracing::info!(
            services = planned.len(),
            minutes = imported,
            first_outage_in_secs = settings.first_outage_after_secs,
            "demo: history imported; live traffic starts"
        );
        let task = tokio::spawn(send_live(Arc::new(parts), start, planned, settings.seed));
        Ok(Demo { task })
    }
}

/// The scenario: `history_days` of quiet history up to `now`, then live
/// days with the demo's outages.
fn plan(registry: &Registry, s: &DemoSettings, now: i64) -> (i64, Vec<Planned>) {
    let now = now.div_euclid(60) * 60;
    let start = now - s.history_days as i64 * 86_400;
    let spec = Spec {
        services: s.services,
        days: s.history_days as i64 + LIVE_DAYS,
        quiet_days: s.history_days as i64 + LIVE_DAYS,
        outages: 0,
        meta: true,
        seed: s.seed,
        start,
    };
    let mut sc = Scenario::synthetic(registry, &spec);
    sc.outages = outages(&sc, s, now);
    let planned = (0..sc.services.len())
        .filter_map(|i| {
            let service = registry.service(&sc.services[i].id)?;
            let traffic = sc.traffic(i);
            Some(Planned {
                id: service.id.clone(),
                counts: traffic.counts,
                injected: traffic.injected,
                problems: service.problems.clone(),
            })
        })
        .collect();
    (sc.start, planned)
}

/// A Meta-style event soon after `now` and every `outage_every_mins`, and
/// a single-service outage half-way between two of them.
fn outages(sc: &Scenario, s: &DemoSettings, now: i64) -> Vec<Outage> {
    let mut rng = StdRng::seed_from_u64(s.seed);
    let every = (s.outage_every_mins.max(10) * 60) as i64;
    let end = sc.start + sc.minutes as i64 * 60;
    // Each Meta service present, with its replay peak and length.
    let meta_services: Vec<(usize, f64, i64)> = META_REPLAY
        .iter()
        .filter_map(|&(id, _, peak, minutes)| {
            let i = sc.services.iter().position(|s| s.id == id)?;
            Some((i, peak, minutes))
        })
        .collect();
    let mut planned = Vec::new();
    let mut at = now + s.first_outage_after_secs as i64;
    while at < end {
        for &(i, peak, minutes) in &meta_services {
            planned.push(Outage {
                service: i,
                start: at.div_euclid(60) * 60,
                // Shorter than the real one, so a visitor sees it end too.
                minutes: minutes.min(s.outage_minutes as i64),
                multiplier: peak,
                ramp_minutes: 3,
            });
        }
        let others = sc.services.len().saturating_sub(meta_services.len());
        if others > 0 {
            let service = meta_services.len() + rng.random_range(0..others);
            planned.push(Outage {
                service,
                start: (at + every / 2).div_euclid(60) * 60,
                minutes: rng.random_range(30..=60),
                multiplier: rng.random_range(5.0..=20.0),
                ramp_minutes: rng.random_range(1..=4),
            });
        }
        at += every;
    }
    planned
}

/// Imports the planned minutes before `now`; returns how many.
async fn import_history(
    store: &AnyStore,
    start: i64,
    planned: &[Planned],
    now: i64,
) -> anyhow::Result<usize> {
    let past = ((now - start) / 60).max(0) as usize;
    let mut rng = StdRng::seed_from_u64(7);
    let mut rows = Vec::with_capacity(IMPORT_CHUNK);
    let mut total = 0;
    for p in planned {
        for (m, &count) in p.counts.iter().take(past).enumerate() {
            if count == 0 {
                continue;
            }
            rows.push(ImportRow {
                service: p.id.clone(),
                minute: start / 60 + m as i64,
                count,
                problem: Some(p.problems[rng.random_range(0..p.problems.len())]),
                country: Country::parse(COUNTRIES[rng.random_range(0..COUNTRIES.len())]),
            });
            if rows.len() == IMPORT_CHUNK {
                total += flush(store, &mut rows, now).await?;
            }
        }
    }
    total += flush(store, &mut rows, now).await?;
    store.bump_history_epoch().await.context("demo import")?;
    Ok(total)
}

/// Imports `rows` and empties it; how many there were.
async fn flush(store: &AnyStore, rows: &mut Vec<ImportRow>, now: i64) -> anyhow::Result<usize> {
    store.import(rows, now).await.context("demo import")?;
    let n = rows.len();
    rows.clear();
    Ok(n)
}

/// Each second, the share of the current minute's planned reports that
/// falls in it, each from a distinct simulated person on a network of their
/// own, through the intake.
async fn send_live(parts: Arc<Parts>, start: i64, planned: Vec<Planned>, seed: u64) {
    let planned = Arc::new(planned);
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        ticker.tick().await;
        let now = chrono::Utc::now().timestamp();
        let minute = ((now - start) / 60) as usize;
        let second = (now.rem_euclid(60)) as u64;
        let mut reports = Vec::new();
        for p in planned.iter() {
            let (Some(&count), Some(&extra)) = (p.counts.get(minute), p.injected.get(minute))
            else {
                return;
            };
            let due = count * (second + 1) / 60 - count * second / 60;
            for _ in 0..due {
                // Outage reports are mostly log-in trouble, as in March 2024.
                let problem = if extra * 2 > count && p.problems.contains(&Problem::Login) {
                    Problem::Login
                } else {
                    p.problems[rng.random_range(0..p.problems.len())]
                };
                let country = COUNTRIES[(rng.random::<f64>().powi(2) * COUNTRIES.len() as f64)
                    as usize
                    % COUNTRIES.len()];
                let report = RawReport {
                    service: p.id.clone(),
                    problem: problem.as_str().to_string(),
                    country: Some(country.to_string()),
                    client_id: Some(uuid::Uuid::now_v7().to_string()),
                };
                // Each person on a network of their own, as the detector's
                // floor counts networks.
                reports.push((report, IpAddr::V4(Ipv4Addr::from(rng.random::<u32>()))));
            }
        }
        let sends = reports.into_iter().map(|(raw, addr)| {
            let parts = parts.clone();
            async move {
                let origin = Origin {
                    addr,
                    user_agent: "outagewatch-demo",
                    at: now,
                    idempotency_key: None,
                };
                if let Err(e) = parts.intake.submit(raw, origin).await {
                    parts
                        .metrics
                        .reports_rejected
                        .with_label_values(&[e.code().as_str()])
                        .inc();
                    tracing::debug!(error = %e, "demo report not taken");
                }
            }
        });
        futures_util::future::join_all(sends).await;
    }
}
