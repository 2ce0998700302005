//! A short-lived read cache: during an outage thousands of readers a second
//! open the same status page, and every one of them would otherwise cost the
//! same few store reads. Each key is loaded once per `ttl` however many
//! requests arrive meanwhile (single flight: requests that arrive during a
//! load wait for it instead of starting their own). Failed loads are not
//! kept, so the next request tries again.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

struct Slot<V> {
    born: Instant,
    cell: Arc<OnceCell<V>>,
}

pub struct TtlCache<V> {
    ttl: Duration,
    max_entries: usize,
    slots: Mutex<HashMap<String, Slot<V>>>,
}

impl<V: Clone> TtlCache<V> {
    /// A `ttl` of zero turns caching off (every call loads).
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        TtlCache {
            ttl,
            max_entries: max_entries.max(1),
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// The value of `key`, loaded by `load` unless a load younger than the
    /// ttl has it (or is under way).
    pub async fn get<E, F, Fut>(&self, key: &str, now: Instant, load: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        if self.ttl.is_zero() {
            return load().await;
        }
        let cell = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            match slots.get(key) {
                Some(slot) if now.saturating_duration_since(slot.born) < self.ttl => {
                    slot.cell.clone()
                }
                _ => {
                    if slots.len() >= self.max_entries {
                        let ttl = self.ttl;
                        slots.retain(|_, s| now.saturating_duration_since(s.born) < ttl);
                        if slots.len() >= self.max_entries {
                            slots.clear();
                        }
                    }
                    let cell = Arc::new(OnceCell::new());
                    slots.insert(
                        key.to_string(),
                        Slot {
                            born: now,
                            cell: cell.clone(),
                        },
                    );
                    cell
                }
            }
        };
        cell.get_or_try_init(load).await.cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_key_loads_once_per_ttl_and_failures_are_not_kept() {
        let cache: TtlCache<usize> = TtlCache::new(Duration::from_secs(1), 10);
        let loads = AtomicUsize::new(0);
        let load = || async { Ok::<_, ()>(loads.fetch_add(1, Ordering::SeqCst) + 1) };
        let t0 = Instant::now();
        assert_eq!(cache.get("a", t0, load).await, Ok(1));
        assert_eq!(
            cache.get("a", t0 + Duration::from_millis(999), load).await,
            Ok(1)
        );
        assert_eq!(cache.get("b", t0, load).await, Ok(2));
        assert_eq!(
            cache.get("a", t0 + Duration::from_secs(1), load).await,
            Ok(3)
        );

        let failing = || async { Err::<usize, &str>("down") };
        let later = t0 + Duration::from_secs(5);
        assert_eq!(cache.get("c", later, failing).await, Err("down"));
        assert_eq!(cache.get("c", later, load).await, Ok(4));
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_load() {
        let cache: TtlCache<usize> = TtlCache::new(Duration::from_secs(60), 10);
        let loads = AtomicUsize::new(0);
        let now = Instant::now();
        let load = || async {
            tokio::task::yield_now().await;
            Ok::<_, ()>(loads.fetch_add(1, Ordering::SeqCst))
        };
        let (a, b, c) = tokio::join!(
            cache.get("k", now, load),
            cache.get("k", now, load),
            cache.get("k", now, load)
        );
        assert_eq!((a, b, c), (Ok(0), Ok(0), Ok(0)));
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }
}
