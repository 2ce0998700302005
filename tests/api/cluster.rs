//! What only a Redis Cluster shows: one batch spread over every master,
//! and writes that wait for replicas (`store.ack_replicas`). The rest of
//! the store's behaviour on a cluster is the conformance suite's
//! (`conformance::cluster`).

use outagewatch::config::Settings;
use outagewatch::domain::Problem;
use outagewatch::store::{AnyStore, Buckets, Store, StoreError};

use crate::conformance::report;
use crate::helpers::{RedisCluster, RedisServer};

fn cluster_store(cluster: &RedisCluster, ack_replicas: u32) -> AnyStore {
    let mut s = Settings::defaults();
    s.store.redis_cluster_nodes = cluster.seeds();
    s.store.ack_replicas = ack_replicas;
    AnyStore::from_settings(&s.store, &s.intake).expect("store")
}

#[tokio::test]
async fn one_batch_of_many_services_is_spread_over_every_master() {
    let cluster = RedisCluster::start().expect("redis cluster");
    let store = cluster_store(&cluster, 0);
    let services: Vec<String> = (0..40).map(|i| format!("service-{i}")).collect();
    // Service i gets i + 1 reports, so answers out of order would show.
    let batch: Vec<_> = services
        .iter()
        .enumerate()
        .flat_map(|(i, s)| {
            (0..=i).map(move |r| report(s, &format!("r{r}"), Problem::Login, Some("BR")))
        })
        .collect();
    let receipts = store
        .record(&batch)
        .await
        .expect("one pipeline, many slots");
    assert!(receipts.iter().all(|r| r.as_ref().is_ok_and(|r| r.counted)));
    // Each master holds some of them: the pipeline went to all three.
    let sizes = cluster.on_masters(&["DBSIZE"]).expect("dbsize");
    assert_eq!(sizes.len(), 3, "{sizes:?}");
    for (port, keys) in &sizes {
        assert!(
            keys.parse::<u64>().unwrap() > 0,
            "master {port} holds nothing: {sizes:?}"
        );
    }
    // And one read over all of them comes back in the order asked.
    let names: Vec<&str> = services.iter().map(String::as_str).collect();
    let minute = batch[0].minute();
    let totals = store
        .minute_totals(&names, Buckets::new(minute, 1))
        .await
        .expect("totals");
    let expected: Vec<Vec<u64>> = (1..=40).map(|n| vec![n]).collect();
    assert_eq!(totals, expected);
}

#[tokio::test]
async fn a_write_waits_for_the_replicas_it_was_asked_to() {
    let cluster = RedisCluster::start().expect("redis cluster");
    // Each master has one replica: one is reached, two never are.
    let one = cluster_store(&cluster, 1);
    let batch = [
        report("whatsapp", "r1", Problem::Login, None),
        report("discord", "r1", Problem::Login, None),
        report("steam", "r1", Problem::Login, None),
    ];
    let receipts = match one.record(&batch).await {
        Ok(receipts) => receipts,
        Err(e) => panic!(
            "not replicated to one: {e:?}\n{:?}",
            cluster.on_masters(&["INFO", "replication"])
        ),
    };
    assert!(receipts.iter().all(|r| r.is_ok()), "{receipts:?}");
    let two = cluster_store(&cluster, 2);
    let started = std::time::Instant::now();
    match two
        .record(&[report("slack", "r2", Problem::Login, None)])
        .await
    {
        Err(StoreError::Unreplicated { acked, wanted }) => assert_eq!((acked, wanted), (1, 2)),
        other => panic!("expected an unreplicated write, got {other:?}"),
    }
    // Within the write budget (store.write_timeout_ms, 750 ms by default).
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn one_redis_without_replicas_cannot_acknowledge_replicated_writes() {
    let redis = RedisServer::start().expect("redis-server");
    let mut s = Settings::defaults();
    s.store.redis_url = redis.url();
    s.store.ack_replicas = 1;
    let store = AnyStore::from_settings(&s.store, &s.intake).expect("store");
    match store
        .record(&[report("zoom", "r1", Problem::Login, None)])
        .await
    {
        Err(StoreError::Unreplicated { acked, wanted }) => assert_eq!((acked, wanted), (0, 1)),
        other => panic!("expected an unreplicated write, got {other:?}"),
    }
}
