//! The detector's view of a stored service: minute buckets for the recent
//! past and 15-minute rollups further back, as the store keeps them.
//!
//! A window that lies inside the minute coverage is summed exactly; an older
//! one is summed from rollups, a partly covered quarter counted pro rata
//! (a seasonal sample needs the shape of a day, not minute precision).
//! Incident intervals are kept out of the clean sums.

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
            masks,
            data_start,
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

impl History for BucketHistory {
    fn window(&self, end: i64, len: i64) -> Option<WindowSum> {
        let from = end - len;
        if from < self.data_start {
            return None;
        }
        // Minutes where they reach, rollups before them: the rollups a
        // worker caches may be an hour older than its minutes.
        let minutes_from = self.minute_start * 60;
        let total = match self.minute_sum(from, end) {
            Some(total) => total,
            None if from < minutes_from && end > minutes_from => {
                self.quarter_sum(from, minutes_from)? + self.minute_sum(minutes_from, end)?
            }
            None => self.quarter_sum(from, end)?,
        };
        let masked = self.masked_secs(from, end).min(len);
        let clean_secs = len - masked;
        // Incident time is spread evenly over the window; good enough to
        // keep it out of a level estimate.
        let clean = total * clean_secs as f64 / len as f64;
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
        let minutes = vec![1.0; 60];
        let h = BucketHistory::new(1000, &minutes, 0, &[], vec![(1010 * 60, 1015 * 60)]);
        let w = h.window(1020 * 60, 600).unwrap();
        assert_eq!(w.clean_secs, 300);
        assert_eq!(w.total, 10.0);
        assert_eq!(w.clean, 5.0);
    }
}
