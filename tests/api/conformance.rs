//! One suite, both stores: every check runs against the embedded store and
//! against a real redis-server started for the test.

use std::time::Duration;

use chrono::Utc;
use outagewatch::config::Settings;
use outagewatch::domain::{Country, NetworkKey, Problem, ReporterKey};
use outagewatch::store::{
    AnomalyRecord, AnyStore, Buckets, ExpectedMinute, FeedRange, FeedStore, ImportRow, Lease,
    Receipt, ReportWrite, ServiceCommit, Store,
};
use uuid::Uuid;

use crate::helpers::{RedisServer, eventually};

fn settings(redis_url: Option<&str>) -> Settings {
    let mut s = Settings::defaults();
    s.store.redis_url = redis_url.unwrap_or("").into();
    s
}

fn cluster_settings(seeds: &[String]) -> Settings {
    let mut s = Settings::defaults();
    s.store.redis_cluster_nodes = seeds.to_vec();
    s
}

fn store(settings: &Settings) -> AnyStore {
    AnyStore::from_settings(&settings.store, &settings.intake).expect("store")
}

fn now() -> i64 {
    Utc::now().timestamp()
}

/// One receive time for every report of the test binary, so a batch never
/// straddles a minute boundary.
static AT: std::sync::LazyLock<i64> = std::sync::LazyLock::new(now);

pub(crate) fn report(
    service: &str,
    reporter: &str,
    problem: Problem,
    country: Option<&str>,
) -> ReportWrite {
    ReportWrite {
        id: Uuid::now_v7(),
        service: service.into(),
        at: *AT,
        problem,
        country: country.and_then(Country::parse),
        reporter: ReporterKey(reporter.into()),
        // Each reporter on a network of its own unless a test says otherwise.
        network: NetworkKey(format!("n-{reporter}")),
        idempotency_key: None,
        request: format!("{}|{}", problem.as_str(), country.unwrap_or_default()),
    }
}

/// Records a batch that must be stored whole.
async fn record(store: &AnyStore, batch: &[ReportWrite]) -> Vec<Receipt> {
    store
        .record(batch)
        .await
        .expect("batch stored")
        .into_iter()
        .map(|r| r.expect("report stored"))
        .collect()
}

async fn totals(store: &AnyStore, service: &str, from: i64, count: usize) -> Vec<u64> {
    store
        .minute_totals(&[service], Buckets::new(from, count))
        .await
        .expect("totals")
        .remove(0)
}

async fn first_report_per_reporter_counts_and_repeats_do_not(store: AnyStore) {
    let batch = vec![
        report("whatsapp", "r1", Problem::Login, Some("BR")),
        report("whatsapp", "r1", Problem::App, None),
        report("whatsapp", "r2", Problem::Login, None),
        report("facebook", "r1", Problem::Login, None),
    ];
    let receipts = record(&store, &batch).await;
    let counted: Vec<bool> = receipts.iter().map(|r| r.counted).collect();
    assert_eq!(counted, [true, false, true, true]);
    assert!(
        receipts
            .iter()
            .zip(&batch)
            .all(|(r, b)| r.id == b.id && r.minute == b.minute())
    );
    let again = record(&store, &[report("whatsapp", "r2", Problem::Login, None)]).await;
    assert!(
        !again[0].counted,
        "repeat within the window in a later batch"
    );
    let minute = batch[0].minute();
    assert_eq!(totals(&store, "whatsapp", minute, 1).await, [2]);
    assert_eq!(totals(&store, "facebook", minute, 1).await, [1]);
}

async fn idempotent_retry_gets_the_first_answer_and_counts_once(store: AnyStore) {
    let mut first = report("signal", "r1", Problem::Messaging, None);
    first.idempotency_key = Some("key-1".into());
    let a = record(&store, std::slice::from_ref(&first)).await;
    let mut retry = first.clone();
    retry.id = Uuid::now_v7();
    let b = record(&store, &[retry]).await;
    assert_eq!(a, b, "the retry replays the stored receipt");
    assert!(b[0].counted);
    assert_eq!(b[0].request, first.request, "with the request it answered");
    // Another request under the key gets the stored receipt too, with the
    // first request's fingerprint, by which the intake refuses it.
    let mut other = report("signal", "r1", Problem::Login, None);
    other.idempotency_key = first.idempotency_key.clone();
    let c = record(&store, &[other.clone()]).await;
    assert_eq!((c[0].id, &c[0].request), (a[0].id, &first.request));
    assert_ne!(c[0].request, other.request);
    assert_eq!(totals(&store, "signal", first.minute(), 1).await, [1]);
}

async fn series_of_several_services_come_back_minute_by_minute(store: AnyStore) {
    let batch: Vec<ReportWrite> = (0..30)
        .map(|i| {
            report(
                if i % 3 == 0 { "x" } else { "reddit" },
                &format!("r{i}"),
                Problem::Feed,
                None,
            )
        })
        .collect();
    record(&store, &batch).await;
    let minute = batch[0].minute();
    let both = store
        .minute_totals(&["reddit", "x", "threads"], Buckets::new(minute - 100, 101))
        .await
        .expect("totals");
    let sums: Vec<u64> = both.iter().map(|s| s.iter().sum()).collect();
    assert_eq!(sums, [20, 10, 0]);
    assert_eq!(both[0].len(), 101);
    assert_eq!(both[0][100], 20, "the last minute holds the reports");
}

async fn breakdown_and_distinct_reporters_follow_counted_reports(store: AnyStore) {
    let batch = vec![
        report("discord", "a", Problem::Login, Some("DE")),
        report("discord", "b", Problem::Login, Some("DE")),
        report("discord", "c", Problem::App, Some("FR")),
        report("discord", "a", Problem::App, Some("FR")),
    ];
    record(&store, &batch).await;
    let minute = batch[0].minute();
    let b = store
        .breakdown("discord", Buckets::new(minute - 10, 11))
        .await
        .expect("breakdown");
    assert_eq!(b.problems.get("login"), Some(&2));
    assert_eq!(b.problems.get("app"), Some(&1), "the repeat is not counted");
    assert_eq!(b.countries.get("DE"), Some(&2));
    assert_eq!(b.countries.get("FR"), Some(&1));
    let distinct = store
        .distinct("discord", Buckets::new(minute - 10, 11))
        .await
        .expect("pfcount");
    assert_eq!((distinct.reporters, distinct.networks), (3, 3));
}

/// One network counts at most `counted_per_network` reports per service
/// and clock window of the dedup window, however many reporters it holds;
/// its reporters are all seen as distinct, from one network. Another
/// network, the same network for another service, or in the next window,
/// counts on its own.
async fn one_network_counts_at_most_its_cap(store: AnyStore) {
    let cap = Settings::defaults().intake.max_counted_per_network as usize;
    // This test's own time, not the shared one, which may be long past
    // (Redis drops a window's counts a minute after its end).
    let at = now();
    let from = |service: &str, reporter: String, network: &str| {
        let mut r = report(service, &reporter, Problem::Login, None);
        r.at = at;
        r.network = NetworkKey(network.into());
        r
    };
    let first: Vec<ReportWrite> = (0..cap + 3)
        .map(|k| from("slack", format!("s{k}"), "n-one"))
        .collect();
    let counted: Vec<bool> = record(&store, &first)
        .await
        .iter()
        .map(|r| r.counted)
        .collect();
    assert_eq!(counted.iter().filter(|c| **c).count(), cap, "{counted:?}");
    assert!(counted[..cap].iter().all(|c| *c), "the first {cap} count");
    // Later, in another batch: still full (a reporter refused for it
    // stays refused within the window); others are not.
    let later = [
        from("slack", "late".into(), "n-one"),
        from("slack", format!("s{cap}"), "n-one"),
        from("slack", "other".into(), "n-two"),
        from("zoom", "s0".into(), "n-one"),
    ];
    let counted: Vec<bool> = record(&store, &later)
        .await
        .iter()
        .map(|r| r.counted)
        .collect();
    assert_eq!(counted, [false, false, true, true]);
    let minute = first[0].minute();
    assert_eq!(totals(&store, "slack", minute, 1).await, [cap as u64 + 1]);
    let distinct = store
        .distinct("slack", Buckets::new(minute, 1))
        .await
        .expect("pfcount");
    assert_eq!((distinct.reporters, distinct.networks), (cap as u64 + 5, 2));
    // The cap holds per clock window of the dedup window: the network's
    // first report in the next window counts again.
    let window = Settings::defaults().intake.dedup_window_secs as i64;
    let mut next = from("slack", "next-window".into(), "n-one");
    next.at = (first[0].at.div_euclid(window) + 1) * window;
    assert!(
        record(&store, &[next]).await[0].counted,
        "a new window counts"
    );
}

async fn import_fills_minutes_and_rollups_within_retention(store: AnyStore) {
    let now = now();
    let minute = now / 60;
    let week_ago = minute - 7 * 1440;
    let rows = vec![
        ImportRow {
            service: "netflix".into(),
            minute: minute - 30,
            count: 40,
            problem: Some(Problem::Connection),
            country: Country::parse("US"),
        },
        ImportRow {
            service: "netflix".into(),
            minute: minute - 30,
            count: 2,
            problem: None,
            country: None,
        },
        ImportRow {
            service: "netflix".into(),
            minute: week_ago,
            count: 500,
            problem: None,
            country: None,
        },
    ];
    store.import(&rows, now).await.expect("import");
    assert_eq!(totals(&store, "netflix", minute - 30, 1).await, [42]);
    assert_eq!(
        totals(&store, "netflix", week_ago, 1).await,
        [0],
        "older than minute retention: rollups only"
    );
    let quarter = store
        .quarter_totals("netflix", Buckets::new(week_ago / 15, 1))
        .await
        .expect("quarters");
    assert_eq!(quarter, [500]);
    let recent_quarter = store
        .quarter_totals("netflix", Buckets::new((minute - 30) / 15, 1))
        .await
        .expect("quarters");
    assert_eq!(recent_quarter, [42]);
    let b = store
        .breakdown("netflix", Buckets::new(minute - 30, 1))
        .await
        .expect("breakdown");
    assert_eq!(b.problems.get("connection"), Some(&40));
    assert_eq!(b.countries.get("US"), Some(&40));
}

async fn reports_count_into_rollups_too(store: AnyStore) {
    let batch: Vec<ReportWrite> = (0..5)
        .map(|i| report("steam", &format!("r{i}"), Problem::Connection, None))
        .collect();
    record(&store, &batch).await;
    let q = batch[0].minute() / 15;
    assert_eq!(
        store
            .quarter_totals("steam", Buckets::new(q - 1, 2))
            .await
            .expect("quarters"),
        [0, 5]
    );
}

async fn dedup_ends_with_its_window(mut settings: Settings) {
    settings.intake.dedup_window_secs = 1;
    let store = store(&settings);
    let fresh = || ReportWrite {
        at: now(),
        ..report("spotify", "r", Problem::App, None)
    };
    assert!(record(&store, &[fresh()]).await[0].counted);
    eventually(
        "the dedup window to pass",
        Duration::from_secs(5),
        || async {
            // Each try carries its own receive time, so both stores see time pass.
            let r = record(&store, &[fresh()]).await;
            r[0].counted.then_some(())
        },
    )
    .await;
}

async fn ping_answers(store: AnyStore) {
    store.ping().await.expect("ping");
}

async fn workers_say_they_are_alive_and_drop_out(store: AnyStore) {
    let alive = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        store.workers("w-b", 60_000).await.expect("store"),
        alive(&["w-b"])
    );
    assert_eq!(
        store.workers("w-a", 60_000).await.expect("store"),
        alive(&["w-a", "w-b"])
    );
    // One that leaves is gone at once.
    assert_eq!(
        store.workers("w-b", 0).await.expect("store"),
        alive(&["w-a"])
    );
    // One that stops saying so is gone when its time is up.
    store.workers("w-c", 50).await.expect("store");
    eventually("w-c to drop out", Duration::from_secs(5), || {
        let store = &store;
        async move {
            let now = store.workers("w-a", 60_000).await.expect("store");
            (now == ["w-a"]).then_some(())
        }
    })
    .await;
}

async fn a_lease_is_exclusive_and_guards_commits(store: AnyStore) {
    let services = ["whatsapp", "facebook"];
    assert_eq!(
        store
            .acquire_leases(&services, "a", 60_000)
            .await
            .expect("store"),
        [Lease::Taken, Lease::Taken]
    );
    assert_eq!(
        store
            .acquire_leases(&services, "b", 60_000)
            .await
            .expect("store"),
        [Lease::Refused, Lease::Refused]
    );
    assert_eq!(
        store
            .acquire_leases(&["whatsapp"], "a", 60_000)
            .await
            .expect("store"),
        [Lease::Renewed],
        "the holder renews"
    );
    let minute = now() / 60;
    let commit = |holder: &str| ServiceCommit {
        service: "whatsapp".into(),
        state: format!("{{\"by\":\"{holder}\"}}"),
        expected: vec![ExpectedMinute {
            minute,
            expected: 2.5,
            upper: 9.0,
        }],
    };
    assert_eq!(
        store.commit("b", &[commit("b")]).await.expect("store"),
        [false]
    );
    assert_eq!(
        store.load_states(&["whatsapp"]).await.expect("store"),
        [None]
    );
    assert_eq!(
        store.commit("a", &[commit("a")]).await.expect("store"),
        [true]
    );
    assert_eq!(
        store
            .load_states(&["whatsapp", "facebook"])
            .await
            .expect("store"),
        [Some(r#"{"by":"a"}"#.to_string()), None]
    );
    assert_eq!(
        store
            .expected("whatsapp", Buckets::new(minute - 1, 2))
            .await
            .expect("store"),
        [None, Some((2.5, 9.0))]
    );
    store.release_leases(&services, "a").await.expect("store");
    assert_eq!(
        store
            .acquire_leases(&services, "b", 60_000)
            .await
            .expect("store"),
        [Lease::Taken, Lease::Taken],
        "released leases are free at once"
    );
    // A lapsed lease is free too.
    assert_eq!(
        store.acquire_leases(&["x"], "a", 50).await.expect("store"),
        [Lease::Taken]
    );
    eventually("the lease to lapse", Duration::from_secs(5), || {
        let store = &store;
        async move {
            (store
                .acquire_leases(&["x"], "b", 60_000)
                .await
                .expect("store")
                == [Lease::Taken])
            .then_some(())
        }
    })
    .await;
}

async fn the_feed_pages_newest_first_and_tracks_open_incidents(store: AnyStore) {
    let record = |id: &str, service: &str, started: i64, open: bool| AnomalyRecord {
        id: id.into(),
        service: service.into(),
        started_unix: started,
        updated_unix: started + i64::from(!open),
        open,
        doc: format!(
            "{{\"id\":\"{id}\",\"open\":{open},\"updated_unix\":{}}}",
            started + i64::from(!open)
        ),
        summary: format!("{{\"id\":\"{id}\"}}"),
    };
    // Three start in the same second (a company-wide event).
    let records = vec![
        record("a-1", "whatsapp", 1000, false),
        record("b-2", "facebook", 2000, true),
        record("c-2", "instagram", 2000, true),
        record("d-2", "threads", 2000, true),
        record("e-3", "x", 3000, true),
    ];
    store.put_anomalies(&records).await.expect("store");
    let mut seen = Vec::new();
    let mut range = FeedRange {
        limit: 2,
        ..FeedRange::default()
    };
    loop {
        let page = store.anomalies(&range).await.expect("store");
        if page.is_empty() {
            break;
        }
        let (t, id, _) = page.last().expect("a last item").clone();
        seen.extend(page.into_iter().map(|(_, id, _)| id));
        range.after = Some((t, id));
    }
    assert_eq!(seen, ["e-3", "d-2", "c-2", "b-2", "a-1"]);
    // Hundreds starting in one second page through without loss or repeat.
    let many: Vec<AnomalyRecord> = (0..250)
        .map(|i| record(&format!("m-{i:03}"), &format!("s{i}"), 5000, false))
        .collect();
    store.put_anomalies(&many).await.expect("store");
    let mut range = FeedRange {
        limit: 100,
        until: Some(5000),
        since: Some(5000),
        ..FeedRange::default()
    };
    let mut ids = Vec::new();
    loop {
        let page = store.anomalies(&range).await.expect("store");
        let Some((t, id, _)) = page.last().cloned() else {
            break;
        };
        ids.extend(page.into_iter().map(|(_, id, _)| id));
        range.after = Some((t, id));
    }
    let expected: Vec<String> = (0..250).rev().map(|i| format!("m-{i:03}")).collect();
    assert_eq!(ids, expected);
    let window = store
        .anomalies(&FeedRange {
            since: Some(1500),
            until: Some(2500),
            limit: 10,
            ..FeedRange::default()
        })
        .await
        .expect("store");
    assert_eq!(window.len(), 3);
    let open = store.open_anomalies().await.expect("store");
    assert_eq!(open.len(), 4);
    assert!(open["x"].contains("e-3"));
    // Resolving e-3 closes x; resolving a stale id leaves the newer open one.
    store
        .put_anomalies(&[
            record("e-3", "x", 3000, false),
            record("old", "facebook", 500, false),
        ])
        .await
        .expect("store");
    let open = store.open_anomalies().await.expect("store");
    assert!(!open.contains_key("x"));
    assert!(open["facebook"].contains("b-2"));
    assert_eq!(
        store.anomaly("e-3").await.expect("store").as_deref(),
        Some(r#"{"id":"e-3","open":false,"updated_unix":3001}"#)
    );
    // A worker that lost its lease writes an older, open version: refused.
    store
        .put_anomalies(&[record("e-3", "x", 3000, true)])
        .await
        .expect("store");
    assert!(
        store
            .anomaly("e-3")
            .await
            .expect("store")
            .unwrap_or_default()
            .contains("3001")
    );
    assert!(
        !store
            .open_anomalies()
            .await
            .expect("store")
            .contains_key("x")
    );
    assert_eq!(store.anomaly("nope").await.expect("store"), None);
    let epoch = store.history_epoch().await.expect("store");
    store.bump_history_epoch().await.expect("store");
    assert_eq!(store.history_epoch().await.expect("store"), epoch + 1);
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::store(&super::settings(None))).await;
                }
            )*

            #[tokio::test]
            async fn dedup_ends_with_its_window() {
                super::dedup_ends_with_its_window(super::settings(None)).await;
            }
        }

        mod redis {
            use crate::helpers::RedisServer;
            $(
                #[tokio::test]
                async fn $name() {
                    let redis = RedisServer::start().expect("redis-server");
                    super::$name(super::store(&super::settings(Some(&redis.url())))).await;
                }
            )*

            #[tokio::test]
            async fn dedup_ends_with_its_window() {
                let redis = RedisServer::start().expect("redis-server");
                super::dedup_ends_with_its_window(super::settings(Some(&redis.url()))).await;
            }
        }

        mod cluster {
            use crate::helpers::RedisCluster;
            $(
                #[tokio::test]
                async fn $name() {
                    let cluster = RedisCluster::start().expect("redis cluster");
                    super::$name(super::store(&super::cluster_settings(&cluster.seeds()))).await;
                }
            )*

            #[tokio::test]
            async fn dedup_ends_with_its_window() {
                let cluster = RedisCluster::start().expect("redis cluster");
                super::dedup_ends_with_its_window(super::cluster_settings(&cluster.seeds())).await;
            }
        }
    };
}

/// An anomaly document at version `updated` as the worker writes it.
fn version(id: &str, updated: i64, open: bool, reports: u64) -> AnomalyRecord {
    let status = if open { "open" } else { "resolved" };
    AnomalyRecord {
        id: id.into(),
        service: "whatsapp".into(),
        started_unix: 1000,
        updated_unix: updated,
        open,
        doc: format!(
            r#"{{"id":"{id}","status":"{status}","updated_unix":{updated},"reports":{reports},"timeline":[1,2,3]}}"#
        ),
        summary: format!(r#"{{"id":"{id}","status":"{status}","reports":{reports}}}"#),
    }
}

async fn each_change_of_an_incident_is_an_event_in_order(store: AnyStore) {
    assert_eq!(store.last_event_id().await.expect("store"), None);
    let writes = [
        version("w-1", 1060, true, 50),
        version("w-1", 1120, true, 80),
        // The same version again (a retried tick) tells nothing new.
        version("w-1", 1120, true, 80),
        // A stale version from a worker that lost its lease is refused.
        version("w-1", 1060, true, 60),
        version("w-1", 1180, false, 90),
        version("w-1", 1240, true, 120),
    ];
    for w in &writes {
        store
            .put_anomalies(std::slice::from_ref(w))
            .await
            .expect("store");
    }
    let events = store.events_after("0-0", 100).await.expect("store");
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["opened", "updated", "resolved", "opened"]);
    // Events carry the summary (no timeline), not the stored document.
    assert_eq!(events[1].doc, writes[1].summary);
    let keys: Vec<(u64, u64)> = events
        .iter()
        .map(|e| outagewatch::store::parse_event_id(&e.id).expect("an event id"))
        .collect();
    assert!(
        keys.windows(2).all(|k| k[0] < k[1]),
        "ids increase: {keys:?}"
    );
    // Resuming after an event gives exactly the ones after it.
    let rest = store.events_after(&events[1].id, 100).await.expect("store");
    assert_eq!(rest, events[2..].to_vec());
    assert_eq!(
        store.last_event_id().await.expect("store").as_deref(),
        Some(events[3].id.as_str())
    );
    assert!(
        store
            .events_after(&events[3].id, 100)
            .await
            .expect("store")
            .is_empty()
    );
}

conformance!(
    each_change_of_an_incident_is_an_event_in_order,
    a_lease_is_exclusive_and_guards_commits,
    workers_say_they_are_alive_and_drop_out,
    the_feed_pages_newest_first_and_tracks_open_incidents,
    first_report_per_reporter_counts_and_repeats_do_not,
    idempotent_retry_gets_the_first_answer_and_counts_once,
    series_of_several_services_come_back_minute_by_minute,
    breakdown_and_distinct_reporters_follow_counted_reports,
    one_network_counts_at_most_its_cap,
    import_fills_minutes_and_rollups_within_retention,
    reports_count_into_rollups_too,
    ping_answers,
);

#[tokio::test]
async fn every_key_carries_its_service_tag_or_the_feed_tag() {
    let redis = RedisServer::start().expect("redis-server");
    let store = store(&settings(Some(&redis.url())));
    let mut with_key = report("whatsapp", "r1", Problem::Login, Some("BR"));
    with_key.idempotency_key = Some("k".into());
    record(
        &store,
        &[
            with_key,
            report("instagram", "r1", Problem::Feed, Some("US")),
        ],
    )
    .await;
    let now = now();
    let imported = |service: &str, minute: i64| ImportRow {
        service: service.into(),
        minute,
        count: 3,
        problem: Some(Problem::Login),
        country: None,
    };
    // An import that makes the minute's fields before intake does: intake
    // sets expiries only with fields it creates, so the import must have.
    let minute = report("zoom", "r1", Problem::Login, None).minute();
    store
        .import(
            &[
                imported("gmail", now / 60 - 3 * 1440),
                imported("zoom", minute),
            ],
            now,
        )
        .await
        .expect("import");
    record(&store, &[report("zoom", "r1", Problem::Login, None)]).await;
    // What detection writes: a lease, a state with expected counts, the feed.
    assert_eq!(
        store
            .acquire_leases(&["whatsapp"], "w", 60_000)
            .await
            .expect("store"),
        [Lease::Taken]
    );
    let committed = store
        .commit(
            "w",
            &[ServiceCommit {
                service: "whatsapp".into(),
                state: "{}".into(),
                expected: vec![ExpectedMinute {
                    minute: now / 60,
                    expected: 1.0,
                    upper: 4.0,
                }],
            }],
        )
        .await
        .expect("store");
    assert_eq!(committed, [true]);
    store
        .put_anomalies(&[AnomalyRecord {
            id: "whatsapp-1".into(),
            service: "whatsapp".into(),
            started_unix: now,
            updated_unix: now,
            open: true,
            doc: "{}".into(),
            summary: "{}".into(),
        }])
        .await
        .expect("store");
    store.bump_history_epoch().await.expect("store");
    let mut conn = redis.connection().await;
    let keys: Vec<String> = ::redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .expect("keys");
    assert!(keys.len() >= 16, "{keys:?}");
    for key in &keys {
        // The feed spans services: its keys share the one `{feed}` tag.
        if key.starts_with("ow:{feed}:") {
            continue;
        }
        let tagged = ["whatsapp", "instagram", "gmail", "zoom"]
            .iter()
            .any(|s| key.starts_with(&format!("ow:{{{s}}}:")));
        assert!(tagged, "{key} lacks a {{service}} tag");
        // The detector state is kept for as long as the service exists.
        if key.ends_with(":state") {
            continue;
        }
        let ttl: i64 = ::redis::cmd("TTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .expect("ttl");
        // -1: no expiry (a leak); -2: expired since it was listed.
        assert_ne!(ttl, -1, "{key} has no expiry");
    }
    for feed_key in [
        "ow:{feed}:docs",
        "ow:{feed}:index",
        "ow:{feed}:open",
        "ow:{feed}:epoch",
    ] {
        assert!(keys.iter().any(|k| k == feed_key), "{feed_key} in {keys:?}");
    }
}
