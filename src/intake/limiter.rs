//! Per-address token buckets for the report endpoint.
//!
//! Counting rules already keep one reporter from adding more than one report
//! per service and window; this limit protects the intake itself (queue,
//! store) from a single source flooding it. IPv6 clients are limited per /64,
//! since one host usually holds a whole /64. Buckets live in memory only,
//! sharded to keep lock contention low, and idle full buckets are dropped.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const SHARDS: usize = 16;
/// A shard is swept of idle buckets when it grows past this many entries.
const SWEEP_AT: usize = 4096;

pub struct RateLimiter {
    per_minute: u64,
    per_sec: f64,
    burst: f64,
    hasher: std::collections::hash_map::RandomState,
    shards: Vec<Mutex<Shard>>,
}

#[derive(Default)]
struct Shard {
    buckets: HashMap<u128, Bucket>,
    sweep_at: usize,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// What the client may be told about its allowance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Allowance {
    pub limit: u64,
    pub remaining: u64,
    /// Seconds until the bucket is full again (or, when refused, until the
    /// next request would pass).
    pub reset_secs: u64,
}

impl RateLimiter {
    /// `None` when `per_minute` is 0 (disabled).
    pub fn new(per_minute: u64, burst: u64) -> Option<Self> {
        (per_minute > 0).then(|| RateLimiter {
            per_minute,
            per_sec: per_minute as f64 / 60.0,
            burst: burst.max(1) as f64,
            hasher: Default::default(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        })
    }

    /// The refill rate, reports per minute.
    pub fn per_minute(&self) -> u64 {
        self.per_minute
    }

    /// Takes one token for `addr` at `now`; `Err` when none is left.
    pub fn check(&self, addr: IpAddr, now: Instant) -> Result<Allowance, Allowance> {
        let key = source_key(addr);
        let shard = &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS];
        let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
        if shard.buckets.len() >= shard.sweep_at.max(SWEEP_AT) {
            let (per_sec, burst) = (self.per_sec, self.burst);
            shard.buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * per_sec < burst
            });
            shard.sweep_at = shard.buckets.len() * 2;
        }
        let bucket = shard.buckets.entry(key).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let refill = now.saturating_duration_since(bucket.at).as_secs_f64() * self.per_sec;
        bucket.tokens = (bucket.tokens + refill).min(self.burst);
        bucket.at = now;
        let limit = self.burst as u64;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(Allowance {
                limit,
                remaining: bucket.tokens.floor() as u64,
                reset_secs: ((self.burst - bucket.tokens) / self.per_sec).ceil() as u64,
            })
        } else {
            Err(Allowance {
                limit,
                remaining: 0,
                reset_secs: Duration::from_secs_f64((1.0 - bucket.tokens) / self.per_sec)
                    .as_secs()
                    .max(1),
            })
        }
    }
}

/// One source of traffic: an IPv4 address, or the /64 prefix of an IPv6
/// address (one host usually holds a whole /64).
pub fn source_key(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                u128::from(u32::from(v4))
            } else {
                (u128::from(v6) >> 64 << 64) | 1
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill_at_the_configured_rate() {
        let limiter = RateLimiter::new(60, 3).unwrap();
        let ip: IpAddr = "198.51.100.1".parse().unwrap();
        let t0 = Instant::now();
        for left in [2, 1, 0] {
            assert_eq!(limiter.check(ip, t0).unwrap().remaining, left);
        }
        let refused = limiter.check(ip, t0).unwrap_err();
        assert_eq!(refused.reset_secs, 1);
        assert!(
            limiter.check(ip, t0 + Duration::from_millis(1001)).is_ok(),
            "one token per second"
        );
        let other: IpAddr = "198.51.100.2".parse().unwrap();
        assert!(
            limiter.check(other, t0).is_ok(),
            "addresses have their own buckets"
        );
    }

    #[test]
    fn ipv6_hosts_share_their_slash_64() {
        let limiter = RateLimiter::new(60, 1).unwrap();
        let t0 = Instant::now();
        assert!(limiter.check("2001:db8::1".parse().unwrap(), t0).is_ok());
        assert!(limiter.check("2001:db8::2".parse().unwrap(), t0).is_err());
        assert!(
            limiter
                .check("2001:db8:0:1::1".parse().unwrap(), t0)
                .is_ok()
        );
        assert!(RateLimiter::new(0, 10).is_none(), "0 disables");
    }
}
