//! The summary at the end of a run: throughput per round and the medians,
//! the RATIO of outagewatch to the reference, closed-loop latency and
//! errors, the open-loop latency at both offered loads, and how noisy the
//! machine was. BENCHMARKS.md quotes these lines.

use crate::Target;
use crate::phase::PhaseResult;
use crate::support;
use crate::tally::ms;

/// Throughput of the closed-loop rounds: per round and the median, by target.
/// The open loops are paced at half of each median.
pub struct Throughput {
    pub ref_rates: Vec<f64>,
    pub ow_rates: Vec<f64>,
    pub ref_median: f64,
    pub ow_median: f64,
}

impl Throughput {
    pub fn of(closed: &[PhaseResult]) -> Throughput {
        let rates = |t: Target| -> Vec<f64> {
            closed
                .iter()
                .filter(|r| r.target == t)
                .map(PhaseResult::rate)
                .collect()
        };
        let (ref_rates, ow_rates) = (rates(Target::Ref), rates(Target::Ow));
        let (ref_median, ow_median) = (support::median(&ref_rates), support::median(&ow_rates));
        Throughput {
            ref_rates,
            ow_rates,
            ref_median,
            ow_median,
        }
    }

    /// Half the reference's median: the load the question asks about.
    pub fn half(&self) -> f64 {
        self.ref_median / 2.0
    }

    /// Half outagewatch's own median: what it sustains.
    pub fn half_ow(&self) -> f64 {
        self.ow_median / 2.0
    }
}

/// Prints the summary; `open` ran at `throughput.half()`, `open_own` at
/// `throughput.half_ow()`.
pub fn print(
    command: &str,
    closed: &[PhaseResult],
    throughput: &Throughput,
    open: &[PhaseResult],
    open_own: &[PhaseResult],
) {
    let Throughput {
        ref_rates,
        ow_rates,
        ref_median,
        ow_median,
    } = throughput;
    let (half, half_ow) = (throughput.half(), throughput.half_ow());
    let ratio = ow_median / ref_median.max(1e-9);
    // Latency percentiles over all closed-loop rounds of each target.
    let pooled = |t: Target| -> Vec<u32> {
        let mut v: Vec<u32> = closed
            .iter()
            .filter(|r| r.target == t)
            .flat_map(|r| r.tally.latency_us.iter().copied())
            .collect();
        v.sort_unstable();
        v
    };
    let (ref_lat, ow_lat) = (pooled(Target::Ref), pooled(Target::Ow));
    let closed_errors = |t: Target| -> u64 {
        closed
            .iter()
            .filter(|r| r.target == t)
            .map(|r| r.tally.errors())
            .sum()
    };
    let fmt_rates = |v: &[f64]| {
        v.iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let half_of = |t: Target| open.iter().find(|r| r.target == t);
    let half_p = |t: Target, p: f64| {
        half_of(t).map_or(0.0, |r| ms(support::percentile(&r.tally.latency_us, p)))
    };
    let own_of = |t: Target| open_own.iter().find(|r| r.target == t);
    let own_p = |t: Target, p: f64| {
        own_of(t).map_or(0.0, |r| ms(support::percentile(&r.tally.latency_us, p)))
    };
    let ow_batches = closed
        .iter()
        .filter_map(|r| r.ow_metrics.as_ref())
        .fold((0.0, 0.0), |(b, n), m| {
            (b + m.batches, n + m.reports_in_batches)
        });
    println!("\n================ summary ================");
    println!("  reproduce: {command}");
    println!("  ref req/s per round: {}", fmt_rates(ref_rates));
    println!("  ow  req/s per round: {}", fmt_rates(ow_rates));
    println!("  median ref {ref_median:.0} req/s, median ow {ow_median:.0} req/s");
    println!("  RATIO median(ow)/median(ref) = {ratio:.3}   (target >= 0.8)");
    println!(
        "  closed-loop latency (all rounds): ref p50 {:.2} ms p99 {:.2} ms; ow p50 {:.2} ms p99 {:.2} ms",
        ms(support::percentile(&ref_lat, 50.0)),
        ms(support::percentile(&ref_lat, 99.0)),
        ms(support::percentile(&ow_lat, 50.0)),
        ms(support::percentile(&ow_lat, 99.0)),
    );
    println!(
        "  closed-loop errors (non-202 + I/O, measured windows): ref {}, ow {}",
        closed_errors(Target::Ref),
        closed_errors(Target::Ow)
    );
    println!(
        "  ow mean group-commit batch (closed loop): {:.1} reports",
        if ow_batches.0 > 0.0 {
            ow_batches.1 / ow_batches.0
        } else {
            0.0
        }
    );
    println!(
        "  half load {half:.0} req/s: ref p50 {:.2} ms p99 {:.2} ms; ow p50 {:.2} ms p99 {:.2} ms   (target ow p99 < 10 ms)",
        half_p(Target::Ref, 50.0),
        half_p(Target::Ref, 99.0),
        half_p(Target::Ow, 50.0),
        half_p(Target::Ow, 99.0),
    );
    if let Some(r) = half_of(Target::Ow)
        && let Some(m) = &r.ow_metrics
        && m.batches > 0.0
    {
        println!(
            "  ow mean group-commit batch (half load): {:.1} reports",
            m.reports_in_batches / m.batches
        );
    }
    for r in open.iter().filter(|r| r.tally.overloaded()) {
        println!(
            "  half load was more than {} could take: {} of {} requests due were never sent; its percentiles are lower bounds",
            r.target.label(),
            r.tally.unsent,
            r.tally.unsent + r.tally.scheduled
        );
    }
    println!(
        "  half-load errors: ref {}, ow {}; achieved ref {:.0} req/s, ow {:.0} req/s",
        half_of(Target::Ref).map_or(0, |r| r.tally.errors()),
        half_of(Target::Ow).map_or(0, |r| r.tally.errors()),
        half_of(Target::Ref).map_or(0.0, PhaseResult::rate),
        half_of(Target::Ow).map_or(0.0, PhaseResult::rate),
    );
    let stall_max = open
        .iter()
        .chain(open_own)
        .map(PhaseResult::stall_max_ms)
        .fold(0.0, f64::max);
    println!("  longest platform stall during the open-loop phases: {stall_max:.1} ms");
    let all = || closed.iter().chain(open).chain(open_own);
    let foreign_max = all().map(PhaseResult::foreign).fold(0.0, f64::max);
    let steal_max = all().map(PhaseResult::steal).fold(0.0, f64::max);
    println!(
        "  machine noise over all measured windows: other processes up to {foreign_max:.2} cores, hypervisor steal up to {steal_max:.2} cores{}",
        if foreign_max > 0.1 || steal_max > 0.05 {
            "  <-- NOISY RUN: compare rounds with foreign/steal near 0, or run again"
        } else {
            " (a quiet run)"
        }
    );
    println!(
        "  at half ow's own median, {half_ow:.0} req/s: ref p50 {:.2} ms p99 {:.2} ms; ow p50 {:.2} ms p99 {:.2} ms",
        own_p(Target::Ref, 50.0),
        own_p(Target::Ref, 99.0),
        own_p(Target::Ow, 50.0),
        own_p(Target::Ow, 99.0),
    );
    println!(
        "  (open-loop p50/p99: from the scheduled send time when the request went out behind\n   schedule, else from the actual send; the tables also give strict*, always from the\n   scheduled time, which adds the generator's own timer lag)"
    );
}
