//! A master of the cluster killed (SIGKILL) while reports flow: every
//! answer is 202 or 503 with Retry-After, intake answers 202 again within
//! 10 s without outagewatch restarting, and (with `store.ack_replicas` = 1)
//! every report answered 202 is counted after the replica took over.
//!
//! Like a supervisor would, the test starts the killed node again once its
//! replica has been promoted (it rejoins as that replica's replica, empty,
//! and syncs): with one replica per master, a promoted master has none
//! until then, and with `ack_replicas` = 1 its writes could not be
//! acknowledged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::json;

use crate::helpers::{RedisCluster, TestApp, address, test_settings};

/// Senders at once, and how long reports flow before and after the kill.
const SENDERS: usize = 16;
const BEFORE_KILL: Duration = Duration::from_secs(3);
const AFTER_KILL: Duration = Duration::from_secs(12);
/// The bar: 202s again within this of the kill.
const BACK_WITHIN: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
struct Answer {
    service: String,
    status: u16,
    counted: bool,
    retry_after: bool,
    at: Instant,
    /// From the request's send to its answer.
    took: Duration,
}

struct Outcome {
    answers: Vec<Answer>,
    killed_at: Instant,
    /// The services whose master was killed.
    victims: Vec<String>,
    /// Counted reports of each service, read back after the failover.
    stored: HashMap<String, u64>,
}

async fn kill_a_master_under_load(ack_replicas: u32) -> Outcome {
    let cluster = Arc::new(Mutex::new(RedisCluster::start().expect("redis cluster")));
    let mut settings = test_settings(None);
    settings.store.redis_cluster_nodes = cluster.lock().expect("lock").seeds();
    settings.store.ack_replicas = ack_replicas;
    let app = Arc::new(TestApp::spawn(settings).await);
    let services: Vec<String> = app.registry.services()[..20]
        .iter()
        .map(|s| s.id.clone())
        .collect();
    // The master of WhatsApp's slot goes, and with it every service there.
    let (victim, victims) = {
        let c = cluster.lock().expect("lock");
        let slot_master = |s: &str| c.master_of_slot(c.slot_of(&format!("{{{s}}}")).expect("slot"));
        let victim = slot_master("whatsapp").expect("master");
        let victims: Vec<String> = services
            .iter()
            .filter(|s| slot_master(s).expect("master") == victim)
            .cloned()
            .collect();
        (victim, victims)
    };
    let answers = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let stop_at = started + BEFORE_KILL + AFTER_KILL;
    let senders = (0..SENDERS).map(|sender| {
        let (app, services, answers) = (app.clone(), services.clone(), answers.clone());
        tokio::spawn(async move {
            let mut i = sender;
            while Instant::now() < stop_at {
                let service = &services[i % services.len()];
                let sent = Instant::now();
                let response = app
                    .client
                    .post(app.url("/api/v1/reports"))
                    // A hang fails the test instead of stalling it.
                    .timeout(Duration::from_secs(10))
                    .header("x-forwarded-for", address(i))
                    .json(&json!({"service": service, "problem": "other", "client_id": format!("c-{i}")}))
                    .send()
                    .await
                    .expect("the server answers");
                let status = response.status().as_u16();
                let retry_after = response.headers().contains_key("retry-after");
                let body: serde_json::Value = response.json().await.unwrap_or_default();
                answers.lock().expect("lock").push(Answer {
                    service: service.clone(),
                    status,
                    counted: body["counted"].as_bool().unwrap_or(false),
                    retry_after,
                    at: Instant::now(),
                    took: sent.elapsed(),
                });
                i += SENDERS;
            }
        })
    });
    let senders: Vec<_> = senders.collect();
    tokio::time::sleep_until((started + BEFORE_KILL).into()).await;
    let killed_at = Instant::now();
    let supervisor = {
        let cluster = cluster.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = cluster.lock().expect("lock");
            c.node_mut(victim).kill();
            // Once its replica is the master, start it again.
            let deadline = Instant::now() + Duration::from_secs(30);
            while c.masters().map(|m| m.contains(&victim)).unwrap_or(true)
                || c.masters().map(|m| m.len()).unwrap_or(0) < 3
            {
                assert!(Instant::now() < deadline, "no replica was promoted");
                std::thread::sleep(Duration::from_millis(50));
            }
            let promoted = killed_at.elapsed();
            c.node_mut(victim)
                .restart()
                .expect("the killed node starts again");
            eprintln!(
                "failover: replica promoted {promoted:?} after the kill, the killed node started again {:?} after",
                killed_at.elapsed()
            );
        })
    };
    join_all(senders).await;
    supervisor.await.expect("supervisor");
    tokio::task::spawn_blocking({
        let cluster = cluster.clone();
        move || {
            cluster
                .lock()
                .expect("lock")
                .wait_until_formed()
                .expect("formed again")
        }
    })
    .await
    .expect("formed");
    let mut stored = HashMap::new();
    for service in &services {
        stored.insert(service.clone(), app.series_total(service, "30m").await);
    }
    let answers = answers.lock().expect("lock").clone();
    Outcome {
        answers,
        killed_at,
        victims,
        stored,
    }
}

impl Outcome {
    /// Every answer 202, or 503 with Retry-After, and soon: the store's
    /// write budget (750 ms) and a margin for the test's own load on two
    /// cores.
    fn check_answers(&self) {
        let slowest = self
            .answers
            .iter()
            .map(|a| a.took)
            .max()
            .unwrap_or_default();
        assert!(
            slowest < Duration::from_secs(2),
            "an answer took {slowest:?}"
        );
        for a in &self.answers {
            assert!(
                a.status == 202 || (a.status == 503 && a.retry_after),
                "answer {} for {} (Retry-After: {})",
                a.status,
                a.service,
                a.retry_after
            );
        }
    }

    /// How long after the kill the killed master's services had a 202
    /// again, once every 503 of theirs was behind.
    fn back_after(&self) -> Duration {
        let victim = |a: &&Answer| self.victims.contains(&a.service);
        let last_refusal = self
            .answers
            .iter()
            .filter(victim)
            .filter(|a| a.status == 503)
            .map(|a| a.at)
            .max()
            .unwrap_or(self.killed_at);
        let back = self
            .answers
            .iter()
            .filter(victim)
            .filter(|a| a.status == 202 && a.at > last_refusal)
            .map(|a| a.at)
            .min()
            .expect("the killed master's services answer 202 again");
        back.saturating_duration_since(self.killed_at)
    }

    /// Per service: reports answered 202 and counted, answered 503, and
    /// counted in the store.
    fn tally(&self) -> Vec<(String, u64, u64, u64)> {
        let mut out: Vec<(String, u64, u64, u64)> = self
            .stored
            .iter()
            .map(|(service, &stored)| {
                let of = |status: u16| {
                    self.answers
                        .iter()
                        .filter(|a| &a.service == service && a.status == status)
                        .filter(|a| status != 202 || a.counted)
                        .count() as u64
                };
                (service.clone(), of(202), of(503), stored)
            })
            .collect();
        out.sort();
        out
    }

    fn report(&self, label: &str) {
        let refused = self.answers.iter().filter(|a| a.status == 503).count();
        // A batch mixes services: one master's failure refuses the others'
        // reports of the same batch too (issue 14, still to do).
        let elsewhere = self
            .answers
            .iter()
            .filter(|a| a.status == 503 && !self.victims.contains(&a.service))
            .count();
        let lost: u64 = self
            .tally()
            .iter()
            .map(|(_, acked, _, stored)| acked.saturating_sub(*stored))
            .sum();
        eprintln!(
            "failover {label}: {} answers, {refused} answered 503 ({elsewhere} of services on the other masters), the slowest in {:?}, back to 202 {:?} after the kill, {lost} acknowledged reports lost",
            self.answers.len(),
            self.answers
                .iter()
                .map(|a| a.took)
                .max()
                .unwrap_or_default(),
            self.back_after()
        );
    }
}

/// The run with `ack_replicas`, checked for what holds either way: every
/// answer 202 or a prompt 503 with Retry-After, and 202s back in time.
async fn killed_master(ack_replicas: u32) -> Outcome {
    let outcome = kill_a_master_under_load(ack_replicas).await;
    outcome.report(&format!("ack_replicas={ack_replicas}"));
    outcome.check_answers();
    let back = outcome.back_after();
    assert!(
        back <= BACK_WITHIN,
        "202s again only {back:?} after the kill"
    );
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_one_replica_acknowledged_a_killed_master_loses_no_acknowledged_report() {
    for (service, acked, refused, stored) in killed_master(1).await.tally() {
        // Every 202 is there; a 503 may or may not have landed.
        assert!(
            acked <= stored && stored <= acked + refused,
            "{service}: {acked} acknowledged, {refused} refused, {stored} stored"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_replicated_acknowledgement_a_killed_master_recovers_and_says_what_it_lost() {
    // What was lost is printed; nothing more is stored than was sent.
    for (service, acked, refused, stored) in killed_master(0).await.tally() {
        assert!(
            stored <= acked + refused,
            "{service}: {acked} + {refused} < {stored}"
        );
    }
}
