//! Problems and countries of a service's recent reports, with how many
//! distinct reporters and networks sent them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use super::{ReadError, Reader};
use crate::domain::time::rfc3339_minute;
use crate::domain::{Service, Share};
use crate::store::{Buckets, Store};

/// The breakdown of the reports counted over a window.
#[derive(Debug, Clone)]
pub struct Breakdown {
    pub service: String,
    /// The window, from its first minute (RFC 3339) on.
    pub window_secs: i64,
    pub from: String,
    /// Counted reports over the window.
    pub reports: u64,
    /// Distinct reporters and networks, estimated (HyperLogLog).
    pub distinct_reporters: u64,
    pub distinct_networks: u64,
    /// Each problem's and country's count and share, most first.
    pub problems: Vec<Share>,
    pub countries: Vec<Share>,
}

impl Reader {
    /// Problems and countries of the reports counted over the `window`
    /// minutes up to minute `now`, with shares of the total. Resolution is
    /// 5 minutes.
    pub async fn breakdown(
        &self,
        service: &Service,
        window: i64,
        now: i64,
    ) -> Result<Arc<Breakdown>, ReadError> {
        let max = self.limits.max_breakdown_window_secs as i64 / 60;
        if window > max {
            return Err(ReadError::invalid(format!(
                "window must be at most {max}m (api.max_breakdown_window_secs)"
            )));
        }
        let key = format!("{}:{window}", service.id);
        self.caches
            .breakdown
            .get(&key, Instant::now(), || {
                self.load_breakdown(service, window, now)
            })
            .await
    }

    async fn load_breakdown(
        &self,
        service: &Service,
        window: i64,
        now: i64,
    ) -> Result<Arc<Breakdown>, ReadError> {
        // Problems and countries are kept per 5-minute slot: widen the
        // window to whole slots so that totals, breakdown and reporters
        // cover the same span.
        let from = (now - window + 1).div_euclid(5) * 5;
        let count = (now - from + 1) as usize;
        let ids = [service.id.as_str()];
        let (totals, breakdown, distinct) = tokio::join!(
            self.store.minute_totals(&ids, Buckets::new(from, count)),
            self.store.breakdown(&service.id, Buckets::new(from, count)),
            self.store.distinct(&service.id, Buckets::new(from, count)),
        );
        let totals = totals.map_err(|e| self.unavailable("minute_totals", e))?;
        let breakdown = breakdown.map_err(|e| self.unavailable("breakdown", e))?;
        let distinct = distinct.map_err(|e| self.unavailable("distinct", e))?;
        let reports: u64 = totals[0].iter().sum();
        let shares = |map: &BTreeMap<String, u64>| {
            let mut rows: Vec<(&String, &u64)> = map.iter().collect();
            rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            rows.into_iter()
                .map(|(name, &count)| Share {
                    name: name.clone(),
                    count,
                    share: round4(count as f64 / reports.max(1) as f64),
                })
                .collect()
        };
        Ok(Arc::new(Breakdown {
            service: service.id.clone(),
            window_secs: window * 60,
            from: rfc3339_minute(from),
            reports,
            distinct_reporters: distinct.reporters,
            distinct_networks: distinct.networks,
            problems: shares(&breakdown.problems),
            countries: shares(&breakdown.countries),
        }))
    }
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}
