//! Each tick's refresh of the open incidents a worker judged: their shares
//! of problems and countries and their headlines, from the store's
//! breakdown, then the company events they form with every open incident
//! of the same companies, including other workers' (read, not written).

use std::collections::HashSet;

use super::{Worker, incident};
use crate::domain::anomaly::{Anomaly, AnomalyStatus};
use crate::store::{Buckets, Store, StoreResult};

impl Worker {
    /// Shares and headlines of the open incidents of `services` (those
    /// judged this tick), then company groups.
    pub(super) async fn refresh_incidents(&mut self, held: &[String], now: i64) -> StoreResult<()> {
        for s in held {
            let Some(service) = self.registry.service(s).cloned() else {
                continue;
            };
            let Some(c) = self.cache.get_mut(s) else {
                continue;
            };
            let Some(doc) = c.state.incident.as_mut() else {
                continue;
            };
            if doc.status != AnomalyStatus::Open {
                continue;
            }
            // Problems and countries of the minutes recorded in the incident
            // (the breakdown is kept per 5 minutes, so slot edges may add a
            // few); of a long incident, its last day.
            let until = doc.updated_unix.div_euclid(60).min(now.div_euclid(60));
            let from = doc.started_unix.div_euclid(60).max(until - 1440);
            let count = (until - from).max(1) as usize;
            let breakdown = self.store.breakdown(s, Buckets::new(from, count)).await?;
            incident::refresh(doc, &service, Some(&breakdown));
        }
        // Other workers may hold other services of the same companies: their
        // open incidents, as stored, join the groups (read only; each worker
        // writes its own services' documents).
        // Only companies with services this worker does not hold.
        let companies: HashSet<String> = self
            .cache
            .values()
            .filter_map(|c| c.state.incident.as_ref())
            .filter(|doc| doc.status == AnomalyStatus::Open)
            .filter(|doc| {
                self.registry
                    .services_of(&doc.company)
                    .any(|s| !self.cache.contains_key(&s.id))
            })
            .map(|doc| doc.company.clone())
            .collect();
        let mut others: Vec<Anomaly> = Vec::new();
        if !companies.is_empty() {
            others = self
                .stored_open_anomalies()
                .await?
                .into_iter()
                .filter(|(service, doc)| {
                    !self.cache.contains_key(service) && companies.contains(&doc.company)
                })
                .map(|(_, doc)| doc)
                .collect();
        }
        let mut docs: Vec<&mut Anomaly> = self
            .cache
            .values_mut()
            .filter_map(|c| c.state.incident.as_mut())
            .chain(others.iter_mut())
            .collect();
        incident::group_by_company(&mut docs, &self.registry);
        Ok(())
    }
}
