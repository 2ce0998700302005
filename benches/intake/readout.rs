//! outagewatch's side of a phase: its own metrics (group commits, batch
//! sizes, accepted and rejected reports, store errors) as deltas of two
//! scrapes of /metrics, and Redis' `INFO commandstats` (read by support)
//! as time per command; both printed under the phase.

use std::collections::BTreeMap;

use crate::support;

pub struct OwMetrics {
    pub batches: f64,
    pub reports_in_batches: f64,
    pub batch_seconds: f64,
    pub accepted: f64,
    pub rejected: BTreeMap<String, f64>,
    pub store_errors: f64,
    /// Upper bound (`le`) of the histogram bucket holding the median batch.
    pub median_batch_le: String,
}

pub fn ow_metrics(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> OwMetrics {
    let d = |k: &str| support::delta(before, after, k);
    let batches = d("outagewatch_write_batch_size_count");
    let mut rejected = BTreeMap::new();
    let mut store_errors = 0.0;
    let mut buckets: Vec<(String, f64)> = Vec::new();
    for key in after.keys() {
        if let Some(reason) = key
            .strip_prefix("outagewatch_reports_rejected_total{reason=\"")
            .and_then(|r| r.strip_suffix("\"}"))
        {
            let n = d(key);
            if n > 0.0 {
                rejected.insert(reason.to_string(), n);
            }
        } else if key.starts_with("outagewatch_store_errors_total") {
            store_errors += d(key);
        } else if let Some(le) = key
            .strip_prefix("outagewatch_write_batch_size_bucket{le=\"")
            .and_then(|r| r.strip_suffix("\"}"))
        {
            buckets.push((le.to_string(), d(key)));
        }
    }
    buckets.sort_by(|a, b| {
        let v = |s: &str| s.parse::<f64>().unwrap_or(f64::INFINITY);
        v(&a.0).total_cmp(&v(&b.0))
    });
    let median_batch_le = buckets
        .iter()
        .find(|(_, n)| *n >= batches / 2.0 && batches > 0.0)
        .map_or_else(|| "-".to_string(), |(le, _)| le.clone());
    OwMetrics {
        batches,
        reports_in_batches: d("outagewatch_write_batch_size_sum"),
        batch_seconds: d("outagewatch_write_batch_duration_seconds_sum"),
        accepted: d("outagewatch_reports_accepted_total"),
        rejected,
        store_errors,
        median_batch_le,
    }
}

pub fn print_ow_metrics(m: &OwMetrics, secs: f64) {
    let mean = if m.batches > 0.0 {
        m.reports_in_batches / m.batches
    } else {
        0.0
    };
    let commit_ms = if m.batches > 0.0 {
        m.batch_seconds / m.batches * 1000.0
    } else {
        0.0
    };
    println!(
        "    ow metrics: {:.0} group commits ({:.0}/s), mean batch {mean:.1} reports (median in bucket le={}), mean commit {commit_ms:.2} ms, writer busy {:.0}% of wall time",
        m.batches,
        m.batches / secs,
        m.median_batch_le,
        m.batch_seconds / secs * 100.0,
    );
    println!(
        "                accepted {:.0}, rejected {:?}, store errors {:.0}",
        m.accepted, m.rejected, m.store_errors
    );
}

pub fn print_redis_stats(stats: &BTreeMap<String, (u64, u64)>, secs: f64) {
    let mut rows: Vec<_> = stats.iter().filter(|(_, (calls, _))| *calls > 0).collect();
    if rows.is_empty() {
        return;
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.1.1));
    let line: Vec<String> = rows
        .iter()
        .take(6)
        .map(|(name, (calls, usec))| {
            format!(
                "{name} {calls} calls {:.1} µs/call",
                *usec as f64 / (*calls).max(1) as f64
            )
        })
        .collect();
    // EVALSHA time includes the commands its script runs; count it alone.
    let busy_us = stats
        .iter()
        .filter(|(name, _)| {
            !matches!(
                name.as_str(),
                "set" | "get" | "hincrby" | "expireat" | "pfadd"
            ) || !stats.contains_key("evalsha")
        })
        .map(|(_, (_, usec))| *usec)
        .sum::<u64>();
    println!(
        "    redis commandstats: {} (command time ≈ {:.0}% of one core)",
        line.join(", "),
        busy_us as f64 / 1e6 / secs * 100.0
    );
}
