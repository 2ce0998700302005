//! Detection tick benchmark: the CPU a worker spends judging 10,000 services
//! for one minute, with four weeks of rollup history and five hours of
//! minute buckets each, as the worker holds them in memory.
//!
//! Run: `cargo bench --bench tick` (env: BENCH_SERVICES=10000, BENCH_TICKS=5).
//!
//! Per service and tick it does what `Worker::step` does between its store
//! reads and writes: build the history view (prefix sums over the cached
//! buckets), relearn the sustained window's spread when it is an hour old,
//! judge the windows, compute the alert threshold of the short window for
//! the chart, learn, advance the lifecycle. The store I/O of a tick (a few
//! pipelined reads and one pipelined write) is not in it.
//! Reported: CPU time of the benchmark thread per tick, median of the ticks.
//! The first tick relearns every service's spread (as a worker's first
//! tick does), so it is reported on its own too; later ticks relearn the
//! 1/60 whose minute of the hour it is, as the worker's do.

use std::time::Instant;

use outagewatch::config::Settings;
use outagewatch::detect::discovery::Discovery;
use outagewatch::detect::history::BucketHistory;
use outagewatch::detect::judge::{self, SeriesState};

/// CPU seconds used by this thread so far (Linux), else wall time.
fn thread_cpu() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/thread-self/stat") else {
        return 0.0;
    };
    // Fields after the command name, which is in parentheses.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line (12 and 13 here).
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    let services: usize = std::env::var("BENCH_SERVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let ticks: usize = std::env::var("BENCH_TICKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let d = Settings::defaults().detect;
    let now_minute: i64 = 1_795_000_000 / 60;
    let minutes_kept = (d.window_long_mins + d.level_hours * 60 + 60) as usize;
    let quarters_kept = (29 * 96) as usize;
    let quarter_start = (now_minute + 1) / 15 + 1 - quarters_kept as i64;
    // Synthetic history: a daily wave at each service's own volume, 30
    // reports a minute falling as 1/rank, and at least one report in 20
    // minutes (so every service has history to judge).
    let mut caches: Vec<(Vec<f64>, Vec<f64>, SeriesState)> = (0..services)
        .map(|i| {
            let rate = 30.0 / (i + 1) as f64 + 0.05;
            let wave = |t_min: i64| {
                let h = (t_min.rem_euclid(1440)) as f64 / 60.0;
                rate * (1.0 + 0.6 * ((h - 20.0) / 24.0 * std::f64::consts::TAU).cos())
            };
            let quarters = (0..quarters_kept)
                .map(|q| (wave((quarter_start + q as i64) * 15) * 15.0).round())
                .collect();
            let minutes = (0..minutes_kept)
                .map(|m| wave(now_minute - minutes_kept as i64 + m as i64).round())
                .collect();
            (minutes, quarters, SeriesState::default())
        })
        .collect();
    println!("outagewatch tick benchmark: {services} services, {ticks} ticks");
    println!("  reproduce: BENCH_SERVICES={services} BENCH_TICKS={ticks} cargo bench --bench tick");
    let mut cpu_per_tick = Vec::new();
    let mut wall_per_tick = Vec::new();
    for tick in 0..ticks {
        let minute = now_minute - 1 + tick as i64;
        let end = (minute + 1) * 60;
        let (cpu0, wall0) = (thread_cpu(), Instant::now());
        let judged: Vec<_> = caches
            .iter_mut()
            .enumerate()
            .map(|(i, (minutes, quarters, state))| {
                let start = minute + 1 - minutes.len() as i64;
                let h = BucketHistory::new(start, minutes, quarter_start, quarters, Vec::new());
                // Phases spread over the hour, as the worker's are.
                let phase = (i as i64 * 60) % 3600;
                judge::observe(state, &h, end, 60, phase, &d)
            })
            .collect();
        let discovery = Discovery::of(judged.iter().map(Some));
        let mut hits = 0;
        for ((_, _, state), j) in caches.iter_mut().zip(judged) {
            let hit = discovery.is_discovery(&j, &d);
            hits += usize::from(hit);
            if let Some(w) = j.windows[0] {
                std::hint::black_box(w.upper(&d, state.tail[0].factor(d.calibration_quantile)));
            }
            let decided = judge::Decided {
                hit,
                supported: true,
                learn: true,
            };
            std::hint::black_box(judge::advance(state, &j, end, 60, decided, &d));
        }
        let (cpu, wall) = (thread_cpu() - cpu0, wall0.elapsed().as_secs_f64());
        println!("  tick {tick}: cpu {cpu:.3} s, wall {wall:.3} s, hits {hits}");
        cpu_per_tick.push(cpu);
        wall_per_tick.push(wall);
    }
    let spreads = caches
        .iter()
        .filter(|(_, _, s)| s.sustained.is_some())
        .count();
    println!(
        "  FIRST tick (every service's sustained spread relearned, {spreads} have one): cpu {:.3} s",
        cpu_per_tick[0]
    );
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "  MEDIAN per tick: cpu {:.3} s, wall {:.3} s (target: under 1 s of CPU for 10,000 services)",
        median(&mut cpu_per_tick),
        median(&mut wall_per_tick)
    );
}
