//! A short-lived read cache: during an outage thousands of readers a second
//! open the same status page, and every one of them would otherwise cost the
//! same few store reads. Each key is loaded once per `ttl` however many
//! requests arrive meanwhile (single flight: requests that arrive during a
//! load wait for it instead of starting their own). A failed load is kept
//! for the ttl too: when the store is timing out, the readers waiting on a
//! load share its failure instead of each trying again in turn.
//!
//! When full, expired entries go first; if none has expired, the new answer
//! is served without being kept, so a burst of one-off keys cannot push the
//! hot pages out.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

type Cell<V, E> = Arc<OnceCell<Result<V, E>>>;

struct Slot<V, E> {
    born: Instant,
    cell: Cell<V, E>,
}

pub struct TtlCache<V, E> {
    ttl: Duration,
    max_entries: usize,
    slots: Mutex<HashMap<String, Slot<V, E>>>,
}

impl<V: Clone, E: Clone> TtlCache<V, E> {
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
    pub async fn get<F, Fut>(&self, key: &str, now: Instant, load: F) -> Result<V, E>
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
                    }
                    let cell: Cell<V, E> = Arc::new(OnceCell::new());
                    if slots.len() < self.max_entries {
                        slots.insert(
                            key.to_string(),
                            Slot {
                                born: now,
                                cell: cell.clone(),
                            },
                        );
                    }
                    cell
                }
            }
        };
        cell.get_or_init(load).await.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_key_loads_once_per_ttl_and_a_failure_is_shared_for_the_ttl() {
        let cache: TtlCache<usize, &str> = TtlCache::new(Duration::from_secs(1), 10);
        let loads = AtomicUsize::new(0);
        let load = || async { Ok(loads.fetch_add(1, Ordering::SeqCst) + 1) };
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

        // A failure is shared for the ttl, then the key loads again.
        let failing = || async { Err("down") };
        let later = t0 + Duration::from_secs(5);
        assert_eq!(cache.get("c", later, failing).await, Err("down"));
        assert_eq!(cache.get("c", later, load).await, Err("down"));
        let after = later + Duration::from_secs(1);
        assert_eq!(cache.get("c", after, load).await, Ok(4));
    }

    #[tokio::test]
    async fn a_full_cache_keeps_its_entries_and_serves_new_keys_uncached() {
        let cache: TtlCache<usize, ()> = TtlCache::new(Duration::from_secs(60), 2);
        let loads = AtomicUsize::new(0);
        let load = || async { Ok(loads.fetch_add(1, Ordering::SeqCst)) };
        let now = Instant::now();
        assert_eq!(cache.get("hot", now, load).await, Ok(0));
        assert_eq!(cache.get("b", now, load).await, Ok(1));
        // One-off keys load every time and do not evict the hot one.
        assert_eq!(cache.get("x", now, load).await, Ok(2));
        assert_eq!(cache.get("x", now, load).await, Ok(3));
        assert_eq!(cache.get("hot", now, load).await, Ok(0));
        // Once entries expire, new keys are kept again.
        let later = now + Duration::from_secs(61);
        assert_eq!(cache.get("x", later, load).await, Ok(4));
        assert_eq!(cache.get("x", later, load).await, Ok(4));
    }

    #[tokio::test]
    async fn readers_waiting_on_a_failing_load_share_its_failure() {
        let cache: TtlCache<usize, &str> = TtlCache::new(Duration::from_secs(60), 10);
        let loads = AtomicUsize::new(0);
        let now = Instant::now();
        let failing = || async {
            loads.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            Err("timeout")
        };
        let answers =
            futures_util::future::join_all((0..5).map(|_| cache.get("k", now, failing))).await;
        assert!(answers.iter().all(|a| *a == Err("timeout")));
        assert_eq!(loads.load(Ordering::SeqCst), 1, "one load for five readers");
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_load() {
        let cache: TtlCache<usize, ()> = TtlCache::new(Duration::from_secs(60), 10);
        let loads = AtomicUsize::new(0);
        let now = Instant::now();
        let load = || async {
            tokio::task::yield_now().await;
            Ok(loads.fetch_add(1, Ordering::SeqCst))
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
