//! What a worker keeps of each service it holds: the stored state, minute
//! buckets for the last hours and 15-minute rollups for the weeks before,
//! loaded when a service is taken, refreshed minute by minute and reloaded
//! after imports or when stale.

use super::{ServiceState, Worker};
use crate::config::DetectSettings;
use crate::detect::history::BucketHistory;
use crate::store::keys::MINUTES_PER_QUARTER;
use crate::store::{Buckets, FeedStore, Store, StoreResult};

/// History of one service cached in memory.
pub(super) struct Cached {
    pub(super) state: ServiceState,
    minute_start: i64,
    minutes: Vec<f64>,
    quarter_start: i64,
    quarters: Vec<f64>,
    loaded_epoch: u64,
    loaded_at: i64,
}

impl Worker {
    /// Loads state and history of services new to this worker, reloads
    /// rollups after an import or when stale, and reads the newest minutes.
    /// Returns the services new to it.
    pub(super) async fn load(
        &mut self,
        held: &[String],
        now: i64,
        target: i64,
    ) -> StoreResult<Vec<String>> {
        let epoch = self.store.history_epoch().await?;
        let taken: Vec<String> = held
            .iter()
            .filter(|s| !self.cache.contains_key(*s))
            .cloned()
            .collect();
        let new: Vec<&str> = taken.iter().map(String::as_str).collect();
        let states = self.store.load_states(&new).await?;
        for (s, state) in new.iter().zip(states) {
            // None stored: a service new to detection. A corrupt one is
            // logged and counted, and the service starts afresh (its open
            // incident, if any, is settled against the feed below).
            let state: ServiceState = state
                .and_then(|json| self.metrics.stored("worker_state", &json))
                .unwrap_or_default();
            self.cache.insert(
                s.to_string(),
                Cached {
                    state,
                    minute_start: 0,
                    minutes: Vec::new(),
                    quarter_start: 0,
                    quarters: Vec::new(),
                    loaded_epoch: u64::MAX,
                    loaded_at: i64::MIN,
                },
            );
        }
        let refresh = self.settings.history_refresh_secs as i64;
        let (minutes_kept, quarters_kept) = (self.minutes_kept(), self.quarters_kept());
        let stale: Vec<String> = held
            .iter()
            .filter(|s| {
                self.cache
                    .get(*s)
                    .is_some_and(|c| c.loaded_epoch != epoch || now - c.loaded_at >= refresh)
            })
            .cloned()
            .collect();
        for s in &stale {
            let quarter_end = (target + 1).div_euclid(MINUTES_PER_QUARTER) + 1;
            let quarter_start = quarter_end - quarters_kept;
            let quarters = self
                .store
                .quarter_totals(s, Buckets::new(quarter_start, quarters_kept as usize))
                .await?;
            if let Some(c) = self.cache.get_mut(s) {
                c.quarter_start = quarter_start;
                c.quarters = quarters.into_iter().map(|q| q as f64).collect();
                c.minutes.clear();
                c.loaded_epoch = epoch;
                // Spread the hourly reloads of many services over the hour
                // instead of doing them all in one tick.
                c.loaded_at = now - stagger(s, refresh);
            }
        }
        // Minutes: whole window for services without any, else the newest.
        let window_start = target - minutes_kept + 1;
        let (fresh, ongoing): (Vec<&String>, Vec<&String>) = held
            .iter()
            .filter(|s| self.cache.contains_key(*s))
            .partition(|s| self.cache.get(*s).is_some_and(|c| c.minutes.is_empty()));
        // Ongoing services re-read from shortly before what they hold, so a
        // worker that paused catches up on the minutes it missed.
        let ongoing_from = ongoing
            .iter()
            .filter_map(|s| self.cache.get(*s))
            .map(|c| c.minute_start + c.minutes.len() as i64 - 2)
            .min()
            .unwrap_or(target)
            .clamp(window_start, target);
        for (group, from) in [(fresh, window_start), (ongoing, ongoing_from)] {
            if group.is_empty() {
                continue;
            }
            let names: Vec<&str> = group.iter().map(|s| s.as_str()).collect();
            let count = (target - from + 1) as usize;
            let series = self
                .store
                .minute_totals(&names, Buckets::new(from, count))
                .await?;
            for (s, values) in names.iter().zip(series) {
                if let Some(c) = self.cache.get_mut(*s) {
                    merge_minutes(c, from, &values, window_start);
                }
            }
        }
        Ok(taken)
    }
}

impl Cached {
    pub(super) fn minute_count(&self, minute: i64) -> u64 {
        let i = minute - self.minute_start;
        if i < 0 {
            return 0;
        }
        self.minutes.get(i as usize).map_or(0, |&v| v as u64)
    }
}

/// Writes `values` (minutes from `from`) into the cache and drops minutes
/// before `keep_from`.
fn merge_minutes(c: &mut Cached, from: i64, values: &[u64], keep_from: i64) {
    if c.minutes.is_empty() {
        c.minute_start = from;
    }
    for (i, v) in values.iter().enumerate() {
        let minute = from + i as i64;
        if minute < c.minute_start {
            continue;
        }
        let idx = (minute - c.minute_start) as usize;
        if idx >= c.minutes.len() {
            c.minutes.resize(idx + 1, 0.0);
        }
        c.minutes[idx] = *v as f64;
    }
    if keep_from > c.minute_start {
        let drop = ((keep_from - c.minute_start) as usize).min(c.minutes.len());
        c.minutes.drain(..drop);
        c.minute_start += drop as i64;
    }
}

/// The detector's view of a cached service at `end`: its past incidents
/// and the open one masked.
pub(super) fn history_of(c: &Cached, end: i64, d: &DetectSettings) -> BucketHistory {
    let mut masks = c.state.masks.clone();
    if let Some(open) = &c.state.detector.lifecycle.open {
        masks.push((open.masked_from(), end.min(open.masked_until(d))));
    }
    BucketHistory::new(
        c.minute_start,
        &c.minutes,
        c.quarter_start,
        &c.quarters,
        masks,
    )
}

/// A fixed share of `period` per service, from its name.
pub(super) fn stagger(service: &str, period: i64) -> i64 {
    let hash = service.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash % period.max(1) as u64) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::detect::baseline::History;
    use crate::detect::lifecycle::OpenIncident;
    use crate::domain::Status;

    /// What the open incident masks, as the backtest masks it minute by
    /// minute: from its (re)opening to its masking limit. Reopened by the
    /// sustained window past the limit of the opening it continues, it
    /// masks nothing (the hours since that limit stay seen).
    #[test]
    fn an_open_incident_masks_from_its_opening_to_its_limit() {
        let d = Settings::defaults().detect;
        let hour = 3600;
        let limit = i64::from(d.mask_max_hours) * hour;
        let mut c = Cached {
            state: ServiceState::default(),
            minute_start: 0,
            minutes: vec![1.0; 24 * 60],
            quarter_start: 0,
            quarters: Vec::new(),
            loaded_epoch: 0,
            loaded_at: 0,
        };
        let end = 20 * hour;
        let clean = |c: &Cached| history_of(c, end, &d).window(end, end).unwrap().clean_secs;
        let open = |since: i64, limit_from: Option<i64>| OpenIncident {
            started_at: 2 * hour,
            since: Some(since),
            limit_from,
            severity: Status::Problem,
            last_hit_at: since,
            recent_hits: 1,
            peak_surprise: 20.0,
        };
        c.state.detector.lifecycle.open = Some(open(2 * hour, None));
        assert_eq!(clean(&c), end - limit);
        c.state.detector.lifecycle.open = Some(open(12 * hour, Some(2 * hour)));
        assert_eq!(clean(&c), end);
        c.state.detector.lifecycle.open = Some(open(5 * hour, Some(2 * hour)));
        assert_eq!(clean(&c), end - 3 * hour, "from its reopening to the limit");
    }
}
