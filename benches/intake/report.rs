//! What the bench prints while it runs: the header (setup and machine), the
//! closed-loop rounds as a table, a closer look at each round, and the
//! open-loop phases with their table and details. The summary at the end
//! is `summary.rs`.

use crate::loadgen::{REPORTS, WARMUP};
use crate::phase::{Bench, PhaseResult};
use crate::readout::{print_ow_metrics, print_redis_stats};
use crate::support;
use crate::tally::{ms, statuses};
use crate::{Config, Target};

/// How the run was set up, how to reproduce it, and on what machine.
pub fn header(config: &Config, command: &str) {
    support::print_header("intake", command);
    println!(
        "  {} connections, {} s measured after {} s warm-up, {} rounds, {} load-generator thread(s), 1 HTTP worker per server",
        config.connections,
        config.secs,
        WARMUP.as_secs(),
        config.rounds,
        config.client_threads
    );
    println!(
        "  reports round-robin over {} service(s): {}",
        config.services,
        REPORTS[..config.services]
            .iter()
            .map(|(s, p, c)| format!("{s}/{p}/{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

/// R rounds alternating ref, ow, as fast as answers come back; one table row
/// per round.
pub fn closed_loop(bench: &Bench) -> anyhow::Result<Vec<PhaseResult>> {
    let config = &bench.config;
    println!(
        "\nclosed loop ({} connections, as fast as answers come back)",
        config.connections
    );
    println!(
        "  {:<6} {:<4} {:>10} {:>9} {:>9} {:>9} {:>7} {:>7} {:>9}  statuses",
        "round", "tgt", "req/s", "p50 ms", "p99 ms", "max ms", "foreign", "steal", "stall ms"
    );
    let mut closed: Vec<PhaseResult> = Vec::new();
    for round in 1..=config.rounds {
        for target in [Target::Ref, Target::Ow] {
            let r = bench.phase(target, &format!("closed{round}"), None)?;
            let l = &r.tally.latency_us;
            println!(
                "  {:<6} {:<4} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>7.2} {:>7.2} {:>9.2}  {}",
                round,
                target.label(),
                r.rate(),
                ms(support::percentile(l, 50.0)),
                ms(support::percentile(l, 99.0)),
                ms(l.last().copied().unwrap_or(0)),
                r.foreign(),
                r.steal(),
                r.stall_max_ms(),
                statuses(&r.tally)
            );
            closed.push(r);
        }
    }
    println!(
        "  (foreign: cores used by other processes on this machine; steal: cores the hypervisor\n   took from this VM; stall: the longest extra delay of a 1 ms sleep on a separate, otherwise\n   idle thread: platform hiccups everything suffers)"
    );
    Ok(closed)
}

/// Each closed-loop round in detail: CPU, outagewatch's metrics, Redis.
pub fn closer_look(closed: &[PhaseResult]) {
    println!(
        "\ncloser look at the closed-loop rounds (per round: CPU, outagewatch metrics, Redis)"
    );
    for r in closed {
        println!("  {} {:.0} req/s", r.target.label(), r.rate());
        println!("    slowest 100 ms slots: {}", r.slowest_slots_text());
        if let Some(m) = &r.ow_metrics {
            print_ow_metrics(m, r.secs);
            print_redis_stats(&r.redis_stats, r.secs);
        }
        print_cpu(&r.cpu);
    }
}

fn print_cpu(cpu: &[(String, f64)]) {
    if !cpu.is_empty() {
        println!("    CPU, cores busy during the measured window:");
        println!("{}", support::format_cores(cpu));
    }
}

/// Both targets, open loop at `rate`; prints a table and the details.
pub fn open_loop_phases(
    bench: &Bench,
    name: &str,
    rate: f64,
    what: &str,
) -> anyhow::Result<Vec<PhaseResult>> {
    println!(
        "\nopen loop at {rate:.0} req/s ({what}), {} connections, each paced on a fixed schedule",
        bench.config.connections
    );
    let mut open: Vec<PhaseResult> = Vec::new();
    for target in [Target::Ref, Target::Ow] {
        open.push(bench.phase(target, name, Some(rate))?);
    }
    println!(
        "  {:<4} {:>9} {:>8} {:>8} {:>8} | {:>8} {:>8} {:>8} | {:>13} {:>8} {:>7} {:>6} {:>8}  statuses",
        "tgt",
        "done/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "strict50",
        "strict99",
        "strictmx",
        "behind",
        "lag p99",
        "foreign",
        "steal",
        "stall ms"
    );
    for r in &open {
        let t = &r.tally;
        println!(
            "  {:<4} {:>9.0} {:>8.2} {:>8.2} {:>8.2} | {:>8.2} {:>8.2} {:>8.2} | {:>13} {:>8.2} {:>7.2} {:>6.2} {:>8.2}  {}",
            r.target.label(),
            r.rate(),
            ms(support::percentile(&t.latency_us, 50.0)),
            ms(support::percentile(&t.latency_us, 99.0)),
            ms(t.latency_us.last().copied().unwrap_or(0)),
            ms(support::percentile(&t.strict_us, 50.0)),
            ms(support::percentile(&t.strict_us, 99.0)),
            ms(t.strict_us.last().copied().unwrap_or(0)),
            format!("{}/{}", t.behind_schedule, t.scheduled),
            ms(support::percentile(&t.send_lag_us, 99.0)),
            r.foreign(),
            r.steal(),
            r.stall_max_ms(),
            statuses(t)
        );
    }
    for r in &open {
        let t = &r.tally;
        let due = t.scheduled + t.unsent;
        if t.overloaded() {
            println!(
                "  {}: OVERLOADED: {} of {due} requests due in the window were never sent (the schedule fell behind); its latencies are lower bounds",
                r.target.label(),
                t.unsent
            );
        }
    }
    println!(
        "  the 100 ms slots with the worst latency, and what the hypervisor stole from the VM then\n  (steal is sampled every 100 ms at a 10 ms tick, so it is attributed to a 100-200 ms span):"
    );
    for r in &open {
        println!("    {:<4} {}", r.target.label(), r.slowest_slots_text());
    }
    for r in &open {
        println!("  {}:", r.target.label());
        if let Some(m) = &r.ow_metrics {
            print_ow_metrics(m, r.secs);
            print_redis_stats(&r.redis_stats, r.secs);
        }
        print_cpu(&r.cpu);
    }
    Ok(open)
}
