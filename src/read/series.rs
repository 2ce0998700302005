//! A service's reports per step with the detector's expected count and
//! threshold: the charts' series and the history export.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use utoipa::ToSchema;

use super::{ReadError, Reader};
use crate::domain::Service;
use crate::domain::time::rfc3339_minute;
use crate::store::{Buckets, FeedStore, Store};

/// One step of a series.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Point {
    #[schema(format = DateTime)]
    pub t: String,
    /// Start of the step, in Unix minutes.
    #[serde(skip)]
    pub minute: i64,
    pub reports: u64,
    /// Expected count (the detector's baseline); null where the detector
    /// has not judged these minutes (before it ran, or older than the
    /// minute buckets' retention).
    #[schema(required = true)]
    pub baseline: Option<f64>,
    /// Alert threshold: the count at which the detector's short window would
    /// alert, spread over its minutes and summed per step.
    #[schema(required = true)]
    pub upper: Option<f64>,
}

/// A service's series: `points` of `step_secs` over `window_secs`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Series {
    pub service: String,
    pub window_secs: i64,
    pub step_secs: i64,
    pub points: Vec<Point>,
}

impl Reader {
    /// Counts per `step` minutes over the `window` minutes up to minute
    /// `now` with the detector's expected count and threshold, the last
    /// point being the current, partial step. Minute buckets serve windows
    /// inside their retention; older windows use the 15-minute rollups.
    pub async fn series(
        &self,
        service: &Service,
        window: i64,
        step: i64,
        now: i64,
    ) -> Result<Arc<Series>, ReadError> {
        if step > window {
            return Err(ReadError::invalid("step must not exceed window"));
        }
        // The oldest day of the retention may already be partly expired: a
        // window reaching into it would show expired counts as zero reports.
        let longest = self.retention.rollup_ttl_secs / 60 - 1440;
        if window > longest {
            return Err(ReadError::invalid(format!(
                "window is at most {} days (store.rollup_ttl_secs less a day)",
                longest / 1440
            )));
        }
        let points = ((window + step - 1) / step) as usize;
        if points > self.limits.max_series_points {
            return Err(ReadError::invalid(format!(
                "window / step gives {points} points; the limit is {} (api.max_series_points)",
                self.limits.max_series_points
            )));
        }
        let key = format!("{}:{window}:{step}", service.id);
        self.caches
            .series
            .get(&key, Instant::now(), || async move {
                let end = (now.div_euclid(step) + 1) * step;
                let start = end - points as i64 * step;
                Ok(Arc::new(Series {
                    service: service.id.clone(),
                    window_secs: window * 60,
                    step_secs: step * 60,
                    points: self.counts(service, start, points, step, now).await?,
                }))
            })
            .await
    }

    /// `points` steps of `step` minutes from minute `start` (`now` being
    /// the current minute): counts, and the detector's numbers where the
    /// minute buckets still hold them. Minute buckets expire a whole hour at
    /// a time, so they cover the last minute_ttl less an hour whatever the
    /// clock; further back the 15-minute rollups serve, so the step must be
    /// a multiple of 15 minutes there.
    pub async fn counts(
        &self,
        service: &Service,
        start: i64,
        points: usize,
        step: i64,
        now: i64,
    ) -> Result<Vec<Point>, ReadError> {
        // What the callers checked, held here before any allocation: the
        // span read lies within the retention.
        let span = points as i64 * step;
        if span > self.retention.rollup_ttl_secs / 60 + step {
            return Err(ReadError::invalid(format!(
                "the span read is at most the retention of {} days (store.rollup_ttl_secs)",
                self.retention.rollup_ttl_secs / 86400
            )));
        }
        let minute_span = self.retention.minute_ttl_secs / 60 - 60;
        let in_minutes = now - start < minute_span;
        if !in_minutes && (step % 15 != 0 || start % 15 != 0) {
            return Err(ReadError::invalid(format!(
                "counts older than {} h are kept per 15 minutes: use a step that is a multiple of 15m",
                minute_span / 60
            )));
        }
        let mut expected: Vec<Option<(f64, f64)>> = vec![None; points];
        let counts: Vec<u64> = if in_minutes {
            let count = points * step as usize;
            let ids = [service.id.as_str()];
            let (minutes, per_minute) = tokio::join!(
                self.store.minute_totals(&ids, Buckets::new(start, count)),
                self.store.expected(&service.id, Buckets::new(start, count)),
            );
            let minutes = minutes.map_err(|e| self.unavailable("minute_totals", e))?;
            // Without the detector's numbers the counts still serve.
            let per_minute = per_minute.unwrap_or_else(|e| {
                self.metrics.store_error("expected", &e);
                vec![None; count]
            });
            for (slot, chunk) in expected.iter_mut().zip(per_minute.chunks(step as usize)) {
                let known: Vec<(f64, f64)> = chunk.iter().flatten().copied().collect();
                if !known.is_empty() {
                    // Minutes the worker has not judged yet count at the mean.
                    let scale = chunk.len() as f64 / known.len() as f64;
                    let (e, u) = known
                        .iter()
                        .fold((0.0, 0.0), |(e, u), (ke, ku)| (e + ke, u + ku));
                    *slot = Some((round2(e * scale), round2(u * scale)));
                }
            }
            minutes[0]
                .chunks(step as usize)
                .map(|c| c.iter().sum())
                .collect()
        } else {
            let quarters = self
                .store
                .quarter_totals(
                    &service.id,
                    Buckets::new(start / 15, points * (step / 15) as usize),
                )
                .await
                .map_err(|e| self.unavailable("quarter_totals", e))?;
            quarters
                .chunks((step / 15) as usize)
                .map(|c| c.iter().sum())
                .collect()
        };
        Ok(counts
            .into_iter()
            .zip(expected)
            .enumerate()
            .map(|(i, (reports, expected))| {
                let minute = start + i as i64 * step;
                Point {
                    t: rfc3339_minute(minute),
                    minute,
                    reports,
                    baseline: expected.map(|e| e.0),
                    upper: expected.map(|e| e.1),
                }
            })
            .collect())
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
