//! One phase of the benchmark: every connection against one target for one
//! window (warm-up, then measured), closed or open loop, and what it
//! measured: the merged tally, the CPU each party used, outagewatch's
//! metrics and Redis' command time over the window, platform stalls and
//! steal. `Bench` holds what the phases share: the servers, Redis, the
//! load generator's runtime and the hiccup meter.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::loadgen::{Pace, Window, run_connection};
use crate::readout::{OwMetrics, ow_metrics};
use crate::support::{self, CpuSample, RedisServer, ServerThread};
use crate::tally::{SLOT_MS, Tally, ms};
use crate::{Config, Target};

pub struct PhaseResult {
    pub target: Target,
    pub tally: Tally,
    pub secs: f64,
    pub cpu: Vec<(String, f64)>,
    /// outagewatch only: metric deltas over the phase.
    pub ow_metrics: Option<OwMetrics>,
    pub redis_stats: BTreeMap<String, (u64, u64)>,
    /// Platform stalls during the window: oversleep of 1 ms sleeps, µs, sorted.
    pub stalls: Vec<u32>,
    /// The 100 ms slots with the worst latency: (offset ms into the window,
    /// worst latency µs, steal ms of the machine then, longest stall µs then).
    pub slowest_slots: Vec<(u128, u32, f64, u32)>,
    /// Steal ms over the whole window.
    pub steal_ms: f64,
}

impl PhaseResult {
    pub fn rate(&self) -> f64 {
        self.tally.completed as f64 / self.secs
    }

    /// Cores used by other processes on the machine (not this bench, not its
    /// redis-server) during the window.
    pub fn foreign(&self) -> f64 {
        self.cpu
            .iter()
            .find(|(group, _)| group.starts_with("machine, other"))
            .map_or(0.0, |(_, c)| *c)
    }

    /// Cores the hypervisor took from this VM during the window.
    pub fn steal(&self) -> f64 {
        self.cpu
            .iter()
            .find(|(group, _)| group.starts_with("machine steal"))
            .map_or(0.0, |(_, c)| *c)
    }

    pub fn slowest_slots_text(&self) -> String {
        let slots: Vec<String> = self
            .slowest_slots
            .iter()
            .map(|(at, worst, steal, stall)| {
                format!(
                    "+{:.1}s worst {:.1} ms (steal {steal:.0} ms, stall {:.1} ms)",
                    *at as f64 / 1000.0,
                    ms(*worst),
                    ms(*stall)
                )
            })
            .collect();
        format!(
            "{}; whole window: steal {:.0} ms",
            slots.join("; "),
            self.steal_ms
        )
    }

    /// The longest platform stall seen by the hiccup meter, ms.
    pub fn stall_max_ms(&self) -> f64 {
        ms(self.stalls.last().copied().unwrap_or(0))
    }
}

pub struct Bench {
    pub config: Config,
    pub runtime: tokio::runtime::Runtime,
    pub redis: RedisServer,
    pub reference: ServerThread,
    pub ow: ServerThread,
    pub nonce: String,
    pub hiccups: support::HiccupMeter,
}

impl Bench {
    pub fn addr(&self, target: Target) -> SocketAddr {
        match target {
            Target::Ref => self.reference.addr(),
            Target::Ow => self.ow.addr(),
        }
    }

    /// One phase against one target: closed loop (`rate` None) or open loop
    /// at `rate` requests per second over all connections.
    pub fn phase(
        &self,
        target: Target,
        name: &str,
        rate: Option<f64>,
    ) -> anyhow::Result<PhaseResult> {
        if target == Target::Ow {
            // Same starting state every round (FLUSHALL keeps the script cache).
            self.redis.flushall()?;
        }
        let addr = self.addr(target);
        let window = Window::new(self.config.secs);
        let tag: Arc<str> = Arc::from(format!("{}-{name}-{}", self.nonce, target.label()));
        let connections = self.config.connections;
        let services = self.config.services;
        let paces: Vec<Option<Pace>> = (0..connections)
            .map(|i| {
                rate.map(|r| Pace {
                    // Connections are staggered evenly over one total interval.
                    first: window.start + Duration::from_secs_f64(i as f64 / r),
                    interval: Duration::from_secs_f64(connections as f64 / r),
                })
            })
            .collect();
        let (mut tally, snapshot) = self.runtime.block_on(async {
            let tasks: Vec<_> = paces
                .into_iter()
                .enumerate()
                .map(|(i, pace)| {
                    tokio::spawn(run_connection(addr, tag.clone(), i, services, window, pace))
                })
                .collect();
            // Counters are read when the measured window opens (here, on the
            // bench's main thread; the connections run on the loadgen thread).
            tokio::time::sleep_until(window.measure.into()).await;
            let snapshot = self.snapshot(target)?;
            let mut tally = Tally::default();
            for task in tasks {
                tally.merge(task.await.context("connection task")?);
            }
            anyhow::Ok((tally, snapshot))
        })?;
        // Connections stop sending at `end`; the last answers arrive just after.
        let (cpu_before, metrics_before) = snapshot;
        let cpu = cpu_before.cores_until(&CpuSample::take(Some(self.redis.pid())));
        let ow_metrics = match metrics_before {
            Some(before) => Some(ow_metrics(&before, &support::scrape(addr)?)),
            None => None,
        };
        let redis_stats = self.redis.command_stats()?;
        let tally_slots = std::mem::take(&mut tally.slot_max_us);
        // Let the hiccup meter take a steal sample past the window's end.
        std::thread::sleep(Duration::from_millis(150));
        tally.latency_us.sort_unstable();
        tally.strict_us.sort_unstable();
        tally.send_lag_us.sort_unstable();
        Ok(PhaseResult {
            target,
            tally,
            secs: self.config.secs as f64,
            cpu,
            ow_metrics,
            redis_stats,
            stalls: self.hiccups.between(window.measure, window.end),
            slowest_slots: self.slowest_slots(&tally_slots, &window),
            steal_ms: self.hiccups.steal_ms(window.measure, window.end),
        })
    }

    fn slowest_slots(&self, slots: &[u32], window: &Window) -> Vec<(u128, u32, f64, u32)> {
        let mut order: Vec<usize> = (0..slots.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(slots[i]));
        order
            .into_iter()
            .take(3)
            .map(|i| {
                let offset = i as u128 * SLOT_MS;
                let from = window.measure + Duration::from_millis(offset as u64);
                let to = from + Duration::from_millis(SLOT_MS as u64);
                let stall = self.hiccups.between(from, to).last().copied().unwrap_or(0);
                (offset, slots[i], self.hiccups.steal_ms(from, to), stall)
            })
            .collect()
    }

    /// CPU counters, Redis command statistics reset, outagewatch's metrics.
    fn snapshot(
        &self,
        target: Target,
    ) -> anyhow::Result<(CpuSample, Option<BTreeMap<String, f64>>)> {
        let cpu = CpuSample::take(Some(self.redis.pid()));
        self.redis.reset_stats()?;
        let metrics = match target {
            Target::Ow => Some(support::scrape(self.addr(target))?),
            Target::Ref => None,
        };
        Ok((cpu, metrics))
    }
}
