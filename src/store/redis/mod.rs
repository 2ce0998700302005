//! The Redis store.
//!
//! A batch of reports becomes one pipeline holding one `EVALSHA` of
//! `record.lua` per (service, minute): the script dedups, counts and coalesces
//! the increments atomically, so a report is either fully counted or not at
//! all, and a retry after a lost answer is recognised by its idempotency key.
//! Reads are one pipeline each (one round trip for a 24 h chart). Every call is
//! bounded by a timeout; the connection manager reconnects on its own.
//!
//! This file is the connection and its deadlines: every command, here and in
//! `redis_feed.rs`, goes through `bounded` or `query`. The [`Store`](super::Store)
//! calls are in `commands.rs`, and how `record.lua` is called and answered is
//! in `record.rs`.

mod commands;
mod conn;
mod record;

use std::future::Future;
use std::time::Duration;

use redis::{Pipeline, RedisError};

use self::conn::Conn;

use super::{Retention, StoreError, StoreResult};
use crate::config::StoreSettings;

const RECORD_LUA: &str = include_str!("../record.lua");

pub struct RedisStore {
    pub(super) conn: Conn,
    record_script: redis::Script,
    pub(super) retention: Retention,
    pub(super) write_timeout: Duration,
    /// `store.ack_replicas`: replicas a write waits for.
    pub(super) ack_replicas: u32,
    pub(super) read_timeout: Duration,
}

impl RedisStore {
    /// Does not connect: the first command does, and the connection
    /// reconnects after failures, so the service starts (not ready) while
    /// Redis is down. One Redis (`store.redis_url`) or a cluster
    /// (`store.redis_cluster_nodes`).
    pub fn new(settings: &StoreSettings, retention: Retention) -> StoreResult<Self> {
        let conn = Conn::new(settings).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(RedisStore {
            conn,
            record_script: redis::Script::new(RECORD_LUA),
            retention,
            write_timeout: Duration::from_millis(settings.write_timeout_ms),
            ack_replicas: settings.ack_replicas,
            read_timeout: Duration::from_millis(settings.read_timeout_ms),
        })
    }

    pub(super) async fn bounded<T>(
        &self,
        limit: Duration,
        op: impl Future<Output = Result<T, RedisError>>,
    ) -> StoreResult<T> {
        match tokio::time::timeout(limit, op).await {
            Ok(result) => result.map_err(StoreError::from),
            Err(_) => Err(StoreError::Timeout),
        }
    }

    pub(super) async fn query<T: redis::FromRedisValue>(
        &self,
        pipe: &Pipeline,
        limit: Duration,
    ) -> StoreResult<T> {
        let mut conn = self.conn.clone();
        self.bounded(limit, pipe.query_async::<T>(&mut conn)).await
    }
}

/// Units (hours or days) covering `[from, from + count)` of a finer unit.
pub(super) fn spanned(from: i64, count: usize, per_unit: i64) -> std::ops::RangeInclusive<i64> {
    let last = from + count.max(1) as i64 - 1;
    from.div_euclid(per_unit)..=last.div_euclid(per_unit)
}
