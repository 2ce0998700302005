//! Taking a service over from another worker (or from a dead one): open
//! anomaly documents that the taken state does not hold open are settled,
//! so no incident stays open that no worker will ever resolve.

use std::collections::HashMap;

use super::{Worker, incident};
use crate::domain::anomaly::{Anomaly, AnomalyStatus};
use crate::store::{FeedStore, StoreResult};

impl Worker {
    /// Open anomaly documents of services taken this tick that their state,
    /// after the tick, does not hold open: a worker that lost a lease
    /// mid-tick (or died) wrote its documents without its state. Runs after
    /// the tick's own documents are written, so an incident judged again
    /// under the same id counts as held. Each is resolved where it was last
    /// updated (or replaced by the state's own resolved version), so no
    /// incident stays open that no worker will ever resolve.
    pub(super) async fn settle_stored_incidents(
        &mut self,
        new: &[String],
        now: i64,
    ) -> StoreResult<()> {
        let mut open = self.stored_open_anomalies().await?;
        let mut records = Vec::new();
        for s in new {
            let (Some(mut stored), Some(c)) = (open.remove(s), self.cache.get(s)) else {
                continue;
            };
            let doc = match &c.state.incident {
                Some(own) if own.id == stored.id => {
                    if own.status == AnomalyStatus::Open {
                        continue;
                    }
                    own.clone()
                }
                _ => {
                    tracing::warn!(service = %s, id = %stored.id, "resolving an open anomaly its state does not hold");
                    let ended = stored.updated_unix.max(stored.started_unix + 60);
                    incident::resolve(&mut stored, ended, now);
                    stored
                }
            };
            records.extend(incident::record(&doc));
        }
        if !records.is_empty() {
            self.store.put_anomalies(&records).await?;
        }
        Ok(())
    }

    /// The open anomaly documents in the store, by service; a corrupt one
    /// is logged, counted and left out.
    pub(super) async fn stored_open_anomalies(&self) -> StoreResult<HashMap<String, Anomaly>> {
        let open = self.store.open_anomalies().await?;
        Ok(open
            .into_iter()
            .filter_map(|(service, json)| Some((service, self.metrics.stored("anomaly", &json)?)))
            .collect())
    }
}
