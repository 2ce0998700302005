//! Intake load benchmark: what fraction of a bare actix-web handler's
//! throughput does `POST /api/v1/reports` reach when every 202 waits for Redis?
//!
//! Run: `cargo bench --bench intake` (env: BENCH_CONNECTIONS=32, BENCH_SECS=5,
//! BENCH_ROUNDS=5, BENCH_CLIENT_THREADS=1).
//!
//! - Starts its own redis-server (loopback TCP, free port, no persistence),
//!   outagewatch on it and a reference server: a bare actix-web handler taking
//!   `web::Json` of the same fields and answering 202 with a body of the same
//!   shape. Both have one HTTP worker and run on their own actix system thread.
//! - The load generator is raw tokio TCP, HTTP/1.1 keep-alive, C connections,
//!   every request with a distinct client_id from a distinct network (an
//!   IPv6 /48 in X-Forwarded-For, which outagewatch believes of 127.0.0.1),
//!   so every report is counted: the worst-case write path; services
//!   round-robin.
//! - Closed loop: R rounds alternating ref, ow; each 1 s warm-up + D s measured.
//! - Half load: open loop at half the reference's median throughput, paced per
//!   connection on a fixed schedule; latency counts from the scheduled send
//!   time, so a stall is not hidden by the generator waiting (coordinated
//!   omission).
//!
//! Everything is on 127.0.0.1; the bench ends by itself.
//!
//! The parts: `loadgen` (connections, pacing, parsing the answers), `tally`
//! (what the connections saw: statuses, latencies, slots), `reference` (the
//! bare handler), `phase` (one window against one target and what it
//! measured), `readout` (outagewatch's metrics and Redis' commandstats),
//! `report` (the tables printed while running) and `summary` (the lines at
//! the end).

#[path = "../support/mod.rs"]
mod support;

mod loadgen;
mod phase;
mod readout;
mod reference;
mod report;
mod summary;
mod tally;

use std::time::Duration;

use anyhow::bail;

use loadgen::{Conn, REPORTS};
use phase::Bench;
use summary::Throughput;
use support::{RedisServer, ServerThread};

#[derive(Clone, Copy)]
struct Config {
    connections: usize,
    secs: u64,
    rounds: usize,
    client_threads: usize,
    /// How many of [`REPORTS`] are used, round-robin.
    services: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Target {
    Ref,
    Ow,
}

impl Target {
    fn label(self) -> &'static str {
        match self {
            Target::Ref => "ref",
            Target::Ow => "ow",
        }
    }
}

fn main() -> anyhow::Result<()> {
    let config = Config {
        connections: support::env_or("BENCH_CONNECTIONS", 32usize)?,
        secs: support::env_or("BENCH_SECS", 5u64)?,
        rounds: support::env_or("BENCH_ROUNDS", 5usize)?,
        client_threads: support::env_or("BENCH_CLIENT_THREADS", 1usize)?,
        services: support::env_or("BENCH_SERVICES", REPORTS.len())?,
    };
    if !(1..=REPORTS.len()).contains(&config.services) {
        bail!("BENCH_SERVICES must be 1 to {}", REPORTS.len());
    }
    if config.connections == 0
        || config.secs == 0
        || config.rounds == 0
        || config.client_threads == 0
    {
        bail!("BENCH_CONNECTIONS, BENCH_SECS, BENCH_ROUNDS and BENCH_CLIENT_THREADS must be > 0");
    }
    let command = format!(
        "BENCH_CONNECTIONS={} BENCH_SECS={} BENCH_ROUNDS={} BENCH_CLIENT_THREADS={} BENCH_SERVICES={} cargo bench --bench intake",
        config.connections, config.secs, config.rounds, config.client_threads, config.services
    );
    report::header(&config, &command);

    let redis = RedisServer::start_on_tcp()?;
    let mut settings = outagewatch::config::Settings::defaults();
    settings.http.bind = "127.0.0.1:0".into();
    settings.http.workers = 1;
    settings.store.redis_url = redis.url();
    settings.admin.token = "bench-admin-token".into();
    settings.intake.reporter_secret = "bench-reporter-secret".into();
    // All load comes from 127.0.0.1; the per-address limit would cap it.
    settings.intake.rate_limit_per_minute = 0;
    // The load speaks for many networks through X-Forwarded-For.
    settings.http.trusted_proxies = vec!["127.0.0.1/32".parse()?];
    let ow = ServerThread::outagewatch(settings)?;
    let reference = reference::start()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.client_threads)
        .thread_name("loadgen")
        .enable_all()
        .build()?;
    let nonce = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
    );
    let bench = Bench {
        config,
        runtime,
        redis,
        reference,
        ow,
        nonce,
        hiccups: support::HiccupMeter::start()?,
    };
    // Both answer before the clock starts (and ow's Redis connection is up).
    for target in [Target::Ref, Target::Ow] {
        let probe = bench.runtime.block_on(async {
            let mut c = Conn::open(bench.addr(target)).await?;
            c.report("probe", 0, 1, 0).await
        })?;
        if probe.status != 202 {
            bail!(
                "{} answered {} to a probe report",
                target.label(),
                probe.status
            );
        }
    }

    let closed = report::closed_loop(&bench)?;
    let throughput = Throughput::of(&closed);
    report::closer_look(&closed);

    // Half load, open loop: at half the reference's median (the question
    // asked), then at half outagewatch's own median (what it sustains).
    let half = throughput.half();
    let half_ow = throughput.half_ow();
    let open = report::open_loop_phases(&bench, "half", half, "half the reference's median")?;
    let open_own =
        report::open_loop_phases(&bench, "halfow", half_ow, "half outagewatch's own median")?;

    summary::print(&command, &closed, &throughput, &open, &open_own);

    let Bench {
        runtime,
        redis,
        reference,
        ow,
        ..
    } = bench;
    runtime.shutdown_timeout(Duration::from_secs(2));
    reference.stop()?;
    ow.stop()?;
    drop(redis);
    Ok(())
}
