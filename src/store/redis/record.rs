//! How the Redis store's `record.lua` is called and answered: the batch
//! grouped by (service, minute), one `EVALSHA` per group with the keys,
//! expiries and reports in the order the script reads them, and the receipt
//! text it returns per report parsed back.

use std::collections::HashMap;

use redis::Pipeline;
use uuid::Uuid;

use super::super::keys::{self, MINUTES_PER_DAY, MINUTES_PER_HOUR};
use super::super::{Receipt, ReportWrite, StoreError, StoreResult};
use super::RedisStore;

impl RedisStore {
    /// One script call per group in `which`; per-call errors are returned
    /// in place so that one failing group does not hide the others' answers.
    pub(super) fn record_pipeline(
        &self,
        batch: &[ReportWrite],
        groups: &[Vec<usize>],
        which: &[usize],
    ) -> Pipeline {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for group in which.iter().map(|&g| &groups[g]) {
            let first = &batch[group[0]];
            let (service, minute) = (first.service.as_str(), first.minute());
            let hour = minute.div_euclid(MINUTES_PER_HOUR);
            let day = minute.div_euclid(MINUTES_PER_DAY);
            let idempotent: Vec<usize> = group
                .iter()
                .copied()
                .filter(|&i| batch[i].idempotency_key.is_some())
                .collect();
            let r = &self.retention;
            let (window, window_kept) = r.network_window(minute);
            let mut cmd = redis::cmd("EVALSHA");
            cmd.arg(self.record_script.get_hash())
                .arg(6 + group.len() + idempotent.len())
                .arg(keys::totals(service, hour))
                .arg(keys::breakdown(service, hour))
                .arg(keys::rollup(service, day))
                .arg(keys::reporters(service, minute))
                .arg(keys::networks(service, minute))
                .arg(keys::network_counts(service, window));
            for &i in group {
                cmd.arg(keys::dedup(service, &batch[i].reporter.0));
            }
            for &i in &idempotent {
                let key = batch[i].idempotency_key.as_deref().unwrap_or_default();
                cmd.arg(keys::idempotency(service, key));
            }
            cmd.arg(keys::minute_field(minute))
                .arg(keys::slot_of(minute))
                .arg(keys::quarter_field(minute))
                .arg(r.minute_expiry(minute))
                .arg(r.rollup_expiry(minute))
                .arg(r.reporters_expiry(minute))
                .arg(r.dedup_window_secs)
                .arg(r.idempotency_ttl_secs)
                .arg(group.len())
                .arg(r.counted_per_network)
                .arg(window_kept);
            for &i in group {
                let report = &batch[i];
                let idem_index = idempotent.iter().position(|&j| j == i).map_or(0, |p| p + 1);
                cmd.arg(&report.reporter.0)
                    .arg(&report.network.0)
                    .arg(report.problem.as_str())
                    .arg(report.country.as_ref().map_or("", |c| c.as_str()))
                    .arg(format!("{}|{}|{}", report.id, minute, report.request))
                    .arg(idem_index);
            }
            pipe.add_command(cmd);
        }
        pipe
    }
}

/// Indices of the batch grouped by (service, minute), in first-seen order.
pub(super) fn group_by_bucket(batch: &[ReportWrite]) -> Vec<Vec<usize>> {
    let mut index: HashMap<(&str, i64), usize> = HashMap::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, report) in batch.iter().enumerate() {
        let slot = *index
            .entry((report.service.as_str(), report.minute()))
            .or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
        groups[slot].push(i);
    }
    groups
}

pub(super) fn parse_receipt(text: &str) -> StoreResult<Receipt> {
    let bad = || StoreError::Protocol(format!("bad receipt {text:?}"));
    let mut parts = text.splitn(4, '|');
    let counted = match parts.next() {
        Some("1") => true,
        Some("0") => false,
        _ => return Err(bad()),
    };
    let id = parts
        .next()
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(bad)?;
    let minute = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let request = parts.next().unwrap_or_default().to_string();
    Ok(Receipt {
        id,
        counted,
        minute,
        request,
    })
}
