//! What the connections saw: a `Tally` per connection and phase (answers by
//! status, errors, latencies in µs, the worst latency of each 100 ms slot),
//! merged over the connections of a phase; and how it is written out.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::loadgen::Window;

/// Time slots, ms, in which the worst latency is kept, to line slow moments
/// up with the hypervisor's steal time.
pub const SLOT_MS: u128 = 100;

/// What one connection saw in one phase.
#[derive(Default)]
pub struct Tally {
    /// Answers completed inside the measured window.
    pub completed: u64,
    pub statuses: BTreeMap<u16, u64>,
    /// 202 answers saying "counted": false (should not happen: ids are distinct).
    pub not_counted: u64,
    /// Non-202 answers and I/O errors during the warm-up.
    pub warmup_errors: u64,
    pub io_errors: u64,
    /// Microseconds, requests sent (or scheduled) inside the window.
    /// Closed loop: from send to answer. Open loop: see `run_connection`.
    pub latency_us: Vec<u32>,
    /// Open loop only: latency counted strictly from the scheduled time,
    /// including the generator's own timer lag.
    pub strict_us: Vec<u32>,
    /// Open loop only: how late the generator sent (timer and CPU), µs.
    pub send_lag_us: Vec<u32>,
    /// Open loop only: requests sent after their scheduled time because the
    /// previous answer on the connection was late.
    pub behind_schedule: u64,
    pub scheduled: u64,
    /// Open loop only: requests due inside the window but not sent by its end.
    pub unsent: u64,
    /// The worst latency (µs) of the requests due in each 100 ms of the window.
    pub slot_max_us: Vec<u32>,
}

impl Tally {
    pub fn merge(&mut self, other: Tally) {
        self.completed += other.completed;
        for (s, n) in other.statuses {
            *self.statuses.entry(s).or_default() += n;
        }
        self.not_counted += other.not_counted;
        self.warmup_errors += other.warmup_errors;
        self.io_errors += other.io_errors;
        self.latency_us.extend(other.latency_us);
        self.strict_us.extend(other.strict_us);
        self.send_lag_us.extend(other.send_lag_us);
        self.behind_schedule += other.behind_schedule;
        self.scheduled += other.scheduled;
        self.unsent += other.unsent;
        if self.slot_max_us.len() < other.slot_max_us.len() {
            self.slot_max_us.resize(other.slot_max_us.len(), 0);
        }
        for (mine, theirs) in self.slot_max_us.iter_mut().zip(other.slot_max_us) {
            *mine = (*mine).max(theirs);
        }
    }

    pub fn record_slot(&mut self, window: &Window, at: Instant, latency_us: u32) {
        let slot = (at.saturating_duration_since(window.measure).as_millis() / SLOT_MS) as usize;
        if self.slot_max_us.len() <= slot {
            self.slot_max_us.resize(slot + 1, 0);
        }
        self.slot_max_us[slot] = self.slot_max_us[slot].max(latency_us);
    }

    /// Open loop: more than 0.1% of the requests due were never sent, so the
    /// target could not take the rate (a few are normal: a connection whose
    /// timer fired late is slightly behind when the window closes).
    pub fn overloaded(&self) -> bool {
        self.unsent * 1000 > self.scheduled + self.unsent
    }

    pub fn errors(&self) -> u64 {
        self.statuses
            .iter()
            .filter(|(s, _)| **s != 202)
            .map(|(_, n)| n)
            .sum::<u64>()
            + self.io_errors
    }
}

pub fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

pub fn ms(us: u32) -> f64 {
    f64::from(us) / 1000.0
}

pub fn statuses(t: &Tally) -> String {
    let mut parts: Vec<String> = t.statuses.iter().map(|(s, n)| format!("{s}×{n}")).collect();
    if t.io_errors > 0 {
        parts.push(format!("io-errors×{}", t.io_errors));
    }
    if t.warmup_errors > 0 {
        parts.push(format!("warm-up errors×{}", t.warmup_errors));
    }
    if t.unsent > 0 {
        parts.push(format!("unsent×{}", t.unsent));
    }
    if t.not_counted > 0 {
        parts.push(format!("not-counted×{}", t.not_counted));
    }
    parts.join(" ")
}
