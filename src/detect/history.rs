//! The detector's view of a stored service: minute buckets for the recent
//! past and 15-minute rollups further back, as the store keeps them.
//!
//! A window that lies inside the minute coverage is summed exactly; an older
//! one is summed from rollups, a partly covered quarter counted pro rata
//! (a seasonal sample needs the shape of a day, not minute precision).
//! Incident intervals are kept out of the clean sums: what the buckets
//! hold inside them is subtracted. In minutes that is exact, as the
//! backtest's history is; in rollups a partly masked quarter is split pro
//! rata like any partial quarter.

use super::baseline::{History, WindowSum};

pub struct BucketHistory {
    minute_start: i64,
    /// Prefix sums of the minute counts, one longer than the minutes.
    minutes: Vec<f64>,
    quarter_start: i64,
    quarters: Vec<f64>,
    /// Incident time `[start, end)` in Unix seconds.
    masks: Vec<(i64, i64)>,
    /// Nothing before this time is known (the first bucket with reports).
    data_start: i64,
}

const QUARTER: i64 = 900;

fn prefix(values: &[f64]) -> Vec<f64> {
    let mut out = Vec::with_capacity(values.len() + 1);
    out.push(0.0);
    let mut sum = 0.0;
    for v in values {
        sum += v;
        out.push(sum);
    }
    out
}

impl BucketHistory {
    /// `minutes[i]` counts Unix minute `minute_start + i`; `quarters[j]` the
    /// quarter hour `quarter_start + j` (Unix minute / 15).
    pub fn new(
        minute_start: i64,
        minutes: &[f64],
        quarter_start: i64,
        quarters: &[f64],
        masks: Vec<(i64, i64)>,
    ) -> Self {
        let first_quarter = quarters
            .iter()
            .position(|&q| q > 0.0)
            .map(|j| (quarter_start + j as i64) * QUARTER);
        let first_minute = minutes
            .iter()
            .position(|&m| m > 0.0)
            .map(|i| (minute_start + i as i64) * 60);
        let data_start = first_quarter
            .into_iter()
            .chain(first_minute)
            .min()
            .unwrap_or(i64::MAX);
        BucketHistory {
            minute_start,
            minutes: prefix(minutes),
            quarter_start,
            quarters: prefix(quarters),
            masks: merged(masks),
            data_start,
        }
    }

    /// Sum over `[from, to)`: minutes where they reach, rollups before them
    /// (the rollups a worker caches may be an hour older than its minutes).
    fn sum(&self, from: i64, to: i64) -> Option<f64> {
        let minutes_from = self.minute_start * 60;
        match self.minute_sum(from, to) {
            Some(total) => Some(total),
            None if from < minutes_from && to > minutes_from => {
                Some(self.quarter_sum(from, minutes_from)? + self.minute_sum(minutes_from, to)?)
            }
            None => self.quarter_sum(from, to),
        }
    }

    fn masked_secs(&self, from: i64, to: i64) -> i64 {
        self.masks
            .iter()
            .map(|&(a, b)| (b.min(to) - a.max(from)).max(0))
            .sum()
    }

    /// Sum over `[from, to)` from minute buckets, if they cover it.
    fn minute_sum(&self, from: i64, to: i64) -> Option<f64> {
        let i0 = from.div_euclid(60) - self.minute_start;
        let i1 = to.div_euclid(60) - self.minute_start;
        let n = self.minutes.len() as i64 - 1;
        if i0 < 0 || i1 > n || i1 <= i0 {
            return None;
        }
        Some(self.minutes[i1 as usize] - self.minutes[i0 as usize])
    }

    /// Sum over `[from, to)` from rollups, partial quarters pro rata.
    fn quarter_sum(&self, from: i64, to: i64) -> Option<f64> {
        let n = self.quarters.len() as i64 - 1;
        let base = self.quarter_start * QUARTER;
        if from < base || to > base + n * QUARTER || to <= from {
            return None;
        }
        let (j0, j1) = ((from - base) / QUARTER, (to - base - 1) / QUARTER);
        let count = |j: i64| self.quarters[(j + 1) as usize] - self.quarters[j as usize];
        if j0 == j1 {
            return Some(count(j0) * (to - from) as f64 / QUARTER as f64);
        }
        let head = count(j0) * (base + (j0 + 1) * QUARTER - from) as f64 / QUARTER as f64;
        let tail = count(j1) * (to - (base + j1 * QUARTER)) as f64 / QUARTER as f64;
        let middle = self.quarters[j1 as usize] - self.quarters[(j0 + 1) as usize];
        Some(head + middle + tail)
    }
}

/// Sorted intervals with overlapping ones joined, so no time is counted
/// twice.
fn merged(mut masks: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    masks.retain(|&(a, b)| b > a);
    masks.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(masks.len());
    for (a, b) in masks {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

impl History for BucketHistory {
    fn window(&self, end: i64, len: i64) -> Option<WindowSum> {
        let from = end - len;
        if from < self.data_start {
            return None;
        }
        let total = self.sum(from, end)?;
        let masked = self.masked_secs(from, end).min(len);
        let clean_secs = len - masked;
        let inside: f64 = self
            .masks
            .iter()
            .filter_map(|&(a, b)| {
                let (a, b) = (a.max(from), b.min(end));
                // Inside a window that was summed, so always summable; pro
                // rata if not.
                (b > a).then(|| {
                    self.sum(a, b)
                        .unwrap_or(total * (b - a) as f64 / len as f64)
                })
            })
            .sum();
        let clean = (total - inside).max(0.0);
        Some(WindowSum {
            total,
            clean,
            secs: len,
            clean_secs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_windows_come_from_minutes_and_old_ones_from_rollups() {
        // Minutes 1000..1060 each with 2 reports; quarters 0..100 each with 30.
        let minutes = vec![2.0; 60];
        let quarters = vec![30.0; 100];
        let h = BucketHistory::new(1000, &minutes, 0, &quarters, vec![]);
        let w = h.window(1010 * 60, 300).unwrap();
        assert_eq!(w.total, 10.0);
        // 5 minutes inside quarter 3: a third of its 30.
        let w = h.window(3 * 900 + 600, 300).unwrap();
        assert!((w.total - 10.0).abs() < 1e-9);
        // Across quarters 3-4: 10 minutes each side of the boundary.
        let w = h.window(4 * 900 + 600, 1200).unwrap();
        assert!((w.total - 40.0).abs() < 1e-9, "{}", w.total);
        assert!(h.window(200 * 900, 300).is_none(), "beyond both");
    }

    #[test]
    fn a_window_reaching_back_past_the_minutes_uses_rollups_for_the_rest() {
        // Minutes from 1000 (second 60,000, inside quarter 66) to 1060;
        // quarters 0..70 with 30 each, the last ones ending at second 63,000.
        let h = BucketHistory::new(1000, &[2.0; 60], 0, &[30.0; 70], vec![]);
        // [59,100, 60,300): 900 s of quarters (30) and 300 s of minutes (10).
        let w = h.window(60_300, 1200).unwrap();
        assert!((w.total - 40.0).abs() < 1e-9, "{}", w.total);
    }

    #[test]
    fn masked_time_is_not_clean() {
        // An outage of 50 a minute, masked, among minutes of 1.
        let mut minutes = vec![1.0; 60];
        minutes[10..15].fill(50.0);
        let masks = vec![(1012 * 60, 1015 * 60), (1010 * 60, 1013 * 60)];
        let h = BucketHistory::new(1000, &minutes, 0, &[], masks);
        let w = h.window(1020 * 60, 600).unwrap();
        assert_eq!(w.clean_secs, 300, "overlapping masks count once");
        assert_eq!(w.total, 255.0);
        assert_eq!(w.clean, 5.0, "what the masked minutes hold is left out");
    }

    #[test]
    fn the_same_counts_and_masks_give_the_backtests_sums() {
        // Two days of minutes; the worker's view holds the last 5 hours as
        // minutes and the rest as quarter-hour rollups.
        let n: i64 = 2 * 1440;
        let count =
            |m: i64| ((m * 7919) % 23) as f64 + if (600..700).contains(&m) { 40.0 } else { 0.0 };
        let masks = vec![(600 * 60, 705 * 60), (2700 * 60, 2790 * 60)];
        let masked = |m: i64| masks.iter().any(|&(a, b)| (a..b).contains(&(m * 60)));
        let mut exact = crate::detect::ArrayHistory::new(0, 60);
        for m in 0..n {
            exact.push(count(m), masked(m));
        }
        let minute_start = n - 300;
        let minutes: Vec<f64> = (minute_start..n).map(count).collect();
        let quarters: Vec<f64> = (0..minute_start / 15)
            .map(|q| (q * 15..q * 15 + 15).map(count).sum())
            .collect();
        let view = BucketHistory::new(minute_start, &minutes, 0, &quarters, masks.clone());
        for (end_min, len_min) in [(n, 720), (n, 60), (n - 100, 15), (720, 180), (1500, 900)] {
            let (a, b) = (
                exact.window(end_min * 60, len_min * 60).unwrap(),
                view.window(end_min * 60, len_min * 60).unwrap(),
            );
            assert!(
                (a.total - b.total).abs() < 1e-6,
                "{end_min} {len_min}: {a:?} {b:?}"
            );
            assert!(
                (a.clean - b.clean).abs() < 1e-6,
                "{end_min} {len_min}: {a:?} {b:?}"
            );
            assert_eq!(a.clean_secs, b.clean_secs, "{end_min} {len_min}");
        }
    }
}
