//! Intake on one Redis against intake on a Redis Cluster (three masters,
//! three replicas), measured in the same run: reports a second, Redis CPU
//! per counted report (summed over the masters on the cluster), and how
//! evenly the writes of the busiest services spread over the masters.
//!
//! Each backend gets the same load: `BENCH_CONNECTIONS` (32) connections,
//! each posting reports in a closed loop for `BENCH_SECS` (10) s, spread
//! round-robin over `BENCH_SERVICES` (60) services, every report with a
//! distinct client_id from a distinct network, so every one is counted and
//! written (the worst case). outagewatch runs with one HTTP worker, as in
//! the intake bench. `BENCH_ACK_REPLICAS` (0) sets `store.ack_replicas` on
//! the cluster.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use outagewatch::config::Settings;
use support::{RedisCluster, RedisServer, ServerThread};

/// The Redis servers a run wrote to: pid and a connection for its stats.
struct Masters(Vec<(u32, RedisServerRef)>);

/// A node of the run's backend.
enum RedisServerRef {
    One,
    Cluster(u16),
}

struct Run {
    label: &'static str,
    reports_per_sec: f64,
    counted: u64,
    other_answers: u64,
    /// Redis CPU seconds per master (by port, or 0 for one Redis).
    cpu: BTreeMap<u16, f64>,
    /// EVALSHA calls (one per service and minute of a batch) per master.
    scripts: BTreeMap<u16, u64>,
}

fn main() -> anyhow::Result<()> {
    let connections: usize = support::env_or("BENCH_CONNECTIONS", 32)?;
    let secs: u64 = support::env_or("BENCH_SECS", 10)?;
    let services: usize = support::env_or("BENCH_SERVICES", 60)?;
    let ack_replicas: u32 = support::env_or("BENCH_ACK_REPLICAS", 0)?;
    if connections == 0 || secs == 0 || services == 0 {
        bail!("BENCH_CONNECTIONS, BENCH_SECS and BENCH_SERVICES must be > 0");
    }
    let command = format!(
        "BENCH_CONNECTIONS={connections} BENCH_SECS={secs} BENCH_SERVICES={services} BENCH_ACK_REPLICAS={ack_replicas} cargo bench --bench cluster"
    );
    support::print_header("cluster", &command);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;

    let one = RedisServer::start_on_tcp()?;
    let mut settings = bench_settings();
    settings.store.redis_url = one.url();
    let masters = Masters(vec![(one.pid(), RedisServerRef::One)]);
    let single = run(
        "one Redis",
        &runtime,
        settings,
        &masters,
        &|_| Some(&one),
        connections,
        secs,
        services,
    )?;
    drop(one);

    let cluster = RedisCluster::start()?;
    let mut settings = bench_settings();
    settings.store.redis_cluster_nodes = cluster.seeds();
    settings.store.ack_replicas = ack_replicas;
    let ports = cluster.masters()?;
    let masters = Masters(
        ports
            .iter()
            .map(|&p| (cluster.node(p).pid(), RedisServerRef::Cluster(p)))
            .collect(),
    );
    let node = |port: u16| Some(cluster.node(port));
    let sharded = run(
        "cluster",
        &runtime,
        settings,
        &masters,
        &node,
        connections,
        secs,
        services,
    )?;

    for r in [&single, &sharded] {
        let cpu: f64 = r.cpu.values().sum();
        println!(
            "{:<10} {:>8.0} reports/s  {} counted, {} other answers  Redis CPU {:.1} µs per counted report (sum over {} master(s))",
            r.label,
            r.reports_per_sec,
            r.counted,
            r.other_answers,
            cpu * 1e6 / r.counted.max(1) as f64,
            r.cpu.len()
        );
    }
    let total: u64 = sharded.scripts.values().sum();
    let shares: Vec<String> = sharded
        .scripts
        .iter()
        .map(|(port, n)| {
            format!(
                "{port}: {:.1} % of scripts, {:.2} s CPU",
                100.0 * *n as f64 / total.max(1) as f64,
                sharded.cpu[port]
            )
        })
        .collect();
    println!("spread over the masters: {}", shares.join("; "));
    println!(
        "RATIO cluster/one Redis: reports/s {:.2}, Redis CPU per counted report {:.2}",
        sharded.reports_per_sec / single.reports_per_sec.max(1e-9),
        (sharded.cpu.values().sum::<f64>() / sharded.counted.max(1) as f64)
            / (single.cpu.values().sum::<f64>() / single.counted.max(1) as f64).max(1e-12)
    );
    Ok(())
}

fn bench_settings() -> Settings {
    let mut settings = Settings::defaults();
    settings.http.bind = "127.0.0.1:0".into();
    settings.http.workers = 1;
    settings.intake.reporter_secret = "bench-reporter-secret".into();
    settings.intake.rate_limit_per_minute = 0;
    settings.http.trusted_proxies = vec!["127.0.0.1/32".parse().expect("cidr")];
    settings.worker.enabled = false;
    settings
}

#[allow(clippy::too_many_arguments)]
fn run<'a>(
    label: &'static str,
    runtime: &tokio::runtime::Runtime,
    settings: Settings,
    masters: &Masters,
    node: &dyn Fn(u16) -> Option<&'a RedisServer>,
    connections: usize,
    secs: u64,
    services: usize,
) -> anyhow::Result<Run> {
    let ow = ServerThread::outagewatch(settings)?;
    let url = format!("http://{}/api/v1/reports", ow.addr());
    let registry = outagewatch::domain::Registry::load(&Settings::defaults().registry.path)?;
    let ids: Arc<Vec<String>> = Arc::new(
        registry.services()[..services.min(registry.services().len())]
            .iter()
            .map(|s| s.id.clone())
            .collect(),
    );
    let stats = |m: &Masters| -> anyhow::Result<(BTreeMap<u16, f64>, BTreeMap<u16, u64>)> {
        let mut cpu = BTreeMap::new();
        let mut scripts = BTreeMap::new();
        for (pid, which) in &m.0 {
            let port = match which {
                RedisServerRef::One => 0,
                RedisServerRef::Cluster(p) => *p,
            };
            let server = node(port).context("a node of the run")?;
            cpu.insert(port, support::process_cpu_secs(*pid).unwrap_or(0.0));
            let calls = server
                .command_stats()?
                .get("evalsha")
                .map_or(0, |(c, _)| *c);
            scripts.insert(port, calls);
        }
        Ok((cpu, scripts))
    };
    let client = reqwest::Client::new();
    // Warm: the store's connection is up and its script loaded.
    runtime.block_on(async {
        let body = serde_json::json!({"service": ids[0], "problem": "other", "client_id": "warm"});
        client.post(&url).json(&body).send().await.map(|_| ())
    })?;
    let (cpu_before, scripts_before) = stats(masters)?;
    let counted = Arc::new(AtomicU64::new(0));
    let other = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    runtime.block_on(async {
        let tasks: Vec<_> = (0..connections)
            .map(|c| {
                let (client, url, ids) = (client.clone(), url.clone(), ids.clone());
                let (counted, other) = (counted.clone(), other.clone());
                tokio::spawn(async move {
                    let mut i = c as u64;
                    while Instant::now() < until {
                        let body = serde_json::json!({
                            "service": ids[i as usize % ids.len()],
                            "problem": "other",
                            "client_id": format!("{label}-{i}"),
                        });
                        // A /48 of its own (the network prefix): every report counts.
                        let network = format!("2001:{:x}:{:x}::1", i >> 16, i & 0xffff);
                        let answer = client
                            .post(&url)
                            .header("x-forwarded-for", network)
                            .json(&body)
                            .send()
                            .await;
                        let ok = match answer {
                            Ok(r) if r.status().as_u16() == 202 => r
                                .json::<serde_json::Value>()
                                .await
                                .is_ok_and(|b| b["counted"] == true),
                            _ => false,
                        };
                        if ok {
                            counted.fetch_add(1, Ordering::Relaxed);
                        } else {
                            other.fetch_add(1, Ordering::Relaxed);
                        }
                        i += connections as u64;
                    }
                })
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let (cpu_after, scripts_after) = stats(masters)?;
    ow.stop()?;
    let counted = counted.load(Ordering::Relaxed);
    Ok(Run {
        label,
        reports_per_sec: counted as f64 / elapsed,
        counted,
        other_answers: other.load(Ordering::Relaxed),
        cpu: cpu_after
            .iter()
            .map(|(p, after)| (*p, after - cpu_before[p]))
            .collect(),
        scripts: scripts_after
            .iter()
            .map(|(p, after)| (*p, after - scripts_before[p]))
            .collect(),
    })
}
