//! The worker on the embedded store: ticks driven by `step(now)`, reports
//! written through the store as intake writes them. (The API tests run the
//! same worker on a real Redis.)

use std::sync::Arc;

use super::*;
use crate::config::Settings;
use crate::domain::{NetworkKey, Problem, ReporterKey};
use crate::store::{EmbeddedStore, ImportRow, ReportWrite, Retention, Store};

struct Bench {
    store: Arc<AnyStore>,
    registry: Arc<Registry>,
    settings: Settings,
    now: i64,
}

impl Bench {
    /// The built-in registry on an embedded store holding 29 days of
    /// WhatsApp at about 3 reports a minute, up to the minute before `now`.
    async fn with_quiet_history() -> Bench {
        let mut settings = Settings::defaults();
        // One network may count as many reports as it sends, so the
        // network floor is what a test of it meets (not the cap).
        settings.intake.max_counted_per_network = 1_000;
        let retention = Retention::new(&settings.store, &settings.intake);
        let store = Arc::new(AnyStore::Embedded(EmbeddedStore::new(retention, 100_000)));
        let now = chrono::Utc::now().timestamp();
        let last = now.div_euclid(60) - 1;
        let rows: Vec<ImportRow> = ((last - 29 * 1440)..=last)
            .map(|minute| ImportRow {
                service: "whatsapp".into(),
                minute,
                // A fixed wobble of 2 to 4, so the series is not flat.
                count: 2 + (minute * 7919).rem_euclid(3) as u64,
                problem: Some(Problem::App),
                country: None,
            })
            .collect();
        store.import(&rows, now).await.expect("import");
        Bench {
            store,
            registry: Arc::new(Registry::builtin().expect("registry")),
            settings,
            now,
        }
    }

    fn worker(&self) -> Worker {
        Worker::new(
            self.store.clone(),
            self.registry.clone(),
            Arc::new(Metrics::new()),
            self.settings.detect.clone(),
            self.settings.worker.clone(),
        )
    }

    /// `reports` WhatsApp login reports in the current minute, each its own
    /// reporter, from `networks` networks in turn.
    async fn spike(&self, reports: usize, networks: usize) {
        let batch: Vec<ReportWrite> = (0..reports)
            .map(|i| ReportWrite {
                id: uuid::Uuid::now_v7(),
                service: "whatsapp".into(),
                at: self.now,
                problem: Problem::Login,
                country: None,
                reporter: ReporterKey(format!("reporter-{i}")),
                network: NetworkKey(format!("network-{}", i % networks)),
                idempotency_key: None,
                request: String::new(),
            })
            .collect();
        let receipts = self.store.record(&batch).await.expect("record");
        assert!(receipts.iter().all(|r| r.as_ref().is_ok_and(|r| r.counted)));
    }

    async fn open_anomalies(&self) -> HashMap<String, Anomaly> {
        let open = self.store.open_anomalies().await.expect("open anomalies");
        open.into_iter()
            .map(|(s, json)| (s, serde_json::from_str(&json).expect("anomaly")))
            .collect()
    }
}

fn opened_whatsapp() -> Vec<(String, Event)> {
    vec![("whatsapp".to_string(), Event::Opened)]
}

#[tokio::test]
async fn a_spike_from_many_networks_opens_one_incident_the_next_worker_carries_on() {
    let bench = Bench::with_quiet_history().await;
    let mut worker = bench.worker();
    let quiet = worker.step(bench.now).await.expect("tick");
    assert_eq!(quiet.services_held, bench.registry.services().len());
    assert!(quiet.events.is_empty(), "{quiet:?}");
    assert_eq!(quiet.hits, 0);

    bench.spike(150, 150).await;
    let spike = worker.step(bench.now + 60).await.expect("tick");
    assert_eq!(spike.events, opened_whatsapp());
    assert_eq!(spike.hits, 1);
    let open = bench.open_anomalies().await;
    let doc = &open["whatsapp"];
    assert!(doc.reports >= 150, "{doc:?}");
    assert_eq!(doc.distinct_networks, 150);
    assert_eq!(doc.timeline.len(), 1);

    // The worker stops and lets go of its services; the next one takes
    // them with their stored state and goes on with the same incident.
    let held: Vec<&str> = worker.cache.keys().map(String::as_str).collect();
    bench
        .store
        .release_leases(&held, worker.id())
        .await
        .expect("release");
    bench.store.workers(worker.id(), 0).await.expect("leave");
    let mut next = bench.worker();
    let tick = next.step(bench.now + 120).await.expect("tick");
    assert!(!tick.events.contains(&opened_whatsapp()[0]), "{tick:?}");
    let open = bench.open_anomalies().await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open["whatsapp"].id, doc.id);
    assert_eq!(open["whatsapp"].timeline.len(), 2, "its minute added");
}

/// What a tick makes of 150 reports in a minute from `networks` networks.
async fn spike_from(networks: usize) -> TickReport {
    let bench = Bench::with_quiet_history().await;
    let mut worker = bench.worker();
    worker.step(bench.now).await.expect("tick");
    bench.spike(150, networks).await;
    worker.step(bench.now + 60).await.expect("tick")
}

/// The same spike from fewer networks than the floor is as surprising to
/// the model but no hit, so no incident; from as many as the floor, it is.
#[tokio::test]
async fn a_spike_is_a_hit_only_from_enough_networks() {
    let floor = Settings::defaults().detect.min_networks as usize;
    let few = spike_from(floor - 1).await;
    assert_eq!((few.hits, few.events.len()), (0, 0), "{few:?}");
    let enough = spike_from(floor).await;
    assert_eq!(enough.hits, 1, "{enough:?}");
    assert_eq!(enough.events, opened_whatsapp());
}

/// A worker died after writing an incident's document but before its
/// state: the worker that takes the service resolves the document its
/// state does not hold, where it was last updated.
#[tokio::test]
async fn an_open_document_no_state_holds_is_resolved_by_the_next_holder() {
    let bench = Bench::with_quiet_history().await;
    let service = bench.registry.service("whatsapp").expect("whatsapp");
    let started = bench.now - 600;
    let mut orphan = incident::open(service, started);
    orphan.updated_unix = started + 120;
    let record = incident::record(&orphan).expect("record");
    bench.store.put_anomalies(&[record]).await.expect("put");

    let mut worker = bench.worker();
    let tick = worker.step(bench.now).await.expect("tick");
    assert!(tick.events.is_empty(), "{tick:?}");
    assert!(bench.open_anomalies().await.is_empty());
    let stored = bench
        .store
        .anomaly(&orphan.id)
        .await
        .expect("read")
        .expect("kept");
    let settled: Anomaly = serde_json::from_str(&stored).expect("anomaly");
    assert_eq!(settled.status, AnomalyStatus::Resolved);
    assert_eq!(
        settled.ended_at.as_deref(),
        Some(crate::domain::time::rfc3339(started + 120).as_str())
    );
}
