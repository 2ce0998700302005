//! The Redis key scheme, in one place.
//!
//! Every key of a service carries the hash tag `{<service id>}`, so all of a
//! service's keys live in one Redis Cluster slot and one script call can touch
//! them all. Buckets are addressed by Unix minute, hour and day (UTC):
//!
//! | key | type | fields | expires |
//! |---|---|---|---|
//! | `ow:{s}:t:<hour>` | hash | minute of hour (`0`..`59`) → counted reports | bucket start + `minute_ttl_secs` |
//! | `ow:{s}:b:<hour>` | hash | `<5-min slot>:p:<problem>`, `<5-min slot>:c:<country>` → counted reports | bucket start + `minute_ttl_secs` |
//! | `ow:{s}:q:<day>` | hash | quarter hour of day (`0`..`95`) → counted reports | bucket start + `rollup_ttl_secs` |
//! | `ow:{s}:u:<minute>` | HyperLogLog | reporter keys | bucket start + `reporters_ttl_secs` |
//! | `ow:{s}:n:<minute>` | HyperLogLog | network keys | bucket start + `reporters_ttl_secs` |
//! | `ow:{s}:d:<reporter>` | string | dedup marker | `dedup_window_secs` after the reporter's first report (counted, or refused by its network's cap) |
//! | `ow:{s}:m:<window>` | hash | network key → its first reports in the clock window of `dedup_window_secs` (counted while at most `max_counted_per_network`) | window end |
//! | `ow:{s}:i:<hash of reporter and key>` | string | the stored answer and its request's fingerprint | `idempotency_ttl_secs` |
//!
//! | `ow:{s}:lease` | string | id of the worker acting on the service | `worker.lease_secs` |
//! | `ow:{s}:state` | string | the worker's detector state (JSON) | never |
//! | `ow:{s}:e:<hour>` | hash | minute of hour → `expected:upper` | bucket start + `minute_ttl_secs` |
//!
//! The anomaly feed spans services, so its keys share the tag `{feed}`
//! (one slot, updated together in one transaction):
//!
//! | key | type | content |
//! |---|---|---|
//! | `ow:{feed}:docs` | hash | anomaly id → JSON document |
//! | `ow:{feed}:index` | sorted set | anomaly id scored by its start (Unix seconds) |
//! | `ow:{feed}:open` | hash | service id → id of its open anomaly |
//! | `ow:{feed}:epoch` | string | counter bumped by every history import |
//!
//! Hourly hashes of at most 60 small fields and daily hashes of 96 stay in
//! Redis's compact listpack encoding (default limit 128 entries), which keeps
//! four weeks of rollups for 10,000 services in a few hundred MB.

pub const MINUTES_PER_HOUR: i64 = 60;
pub const MINUTES_PER_DAY: i64 = 1440;
pub const MINUTES_PER_QUARTER: i64 = 15;
pub const MINUTES_PER_SLOT: i64 = 5;

pub fn totals(service: &str, hour: i64) -> String {
    format!("ow:{{{service}}}:t:{hour}")
}

pub fn breakdown(service: &str, hour: i64) -> String {
    format!("ow:{{{service}}}:b:{hour}")
}

pub fn rollup(service: &str, day: i64) -> String {
    format!("ow:{{{service}}}:q:{day}")
}

pub fn reporters(service: &str, minute: i64) -> String {
    format!("ow:{{{service}}}:u:{minute}")
}

pub fn networks(service: &str, minute: i64) -> String {
    format!("ow:{{{service}}}:n:{minute}")
}

pub fn network_counts(service: &str, window: i64) -> String {
    format!("ow:{{{service}}}:m:{window}")
}

pub fn dedup(service: &str, reporter: &str) -> String {
    format!("ow:{{{service}}}:d:{reporter}")
}

pub fn idempotency(service: &str, key: &str) -> String {
    format!("ow:{{{service}}}:i:{key}")
}

pub fn lease(service: &str) -> String {
    format!("ow:{{{service}}}:lease")
}

pub fn state(service: &str) -> String {
    format!("ow:{{{service}}}:state")
}

pub fn expected(service: &str, hour: i64) -> String {
    format!("ow:{{{service}}}:e:{hour}")
}

pub const FEED_DOCS: &str = "ow:{feed}:docs";
pub const FEED_INDEX: &str = "ow:{feed}:index";
pub const FEED_OPEN: &str = "ow:{feed}:open";
/// A stream of feed events (opened, updated, resolved), capped at
/// `store.event_backlog` entries.
pub const FEED_EVENTS: &str = "ow:{feed}:events";
pub const HISTORY_EPOCH: &str = "ow:{feed}:epoch";
/// The detection workers alive: a sorted set of worker id → until when
/// (Unix ms, the Redis clock).
pub const FEED_WORKERS: &str = "ow:{feed}:workers";

/// Field of a minute in its hour's totals hash.
pub fn minute_field(minute: i64) -> String {
    minute.rem_euclid(MINUTES_PER_HOUR).to_string()
}

/// 5-minute slot of a minute within its hour, the prefix of breakdown fields.
pub fn slot_of(minute: i64) -> i64 {
    minute.rem_euclid(MINUTES_PER_HOUR) / MINUTES_PER_SLOT
}

/// Field of a minute's quarter hour in its day's rollup hash.
pub fn quarter_field(minute: i64) -> String {
    (minute.rem_euclid(MINUTES_PER_DAY) / MINUTES_PER_QUARTER).to_string()
}

pub fn problem_field(slot: i64, problem: &str) -> String {
    format!("{slot}:p:{problem}")
}

pub fn country_field(slot: i64, country: &str) -> String {
    format!("{slot}:c:{country}")
}

/// Splits a breakdown field into slot, kind (`p` or `c`) and name.
pub fn parse_breakdown_field(field: &str) -> Option<(i64, char, &str)> {
    let (slot, rest) = field.split_once(':')?;
    let (kind, name) = rest.split_once(':')?;
    let kind = match kind {
        "p" => 'p',
        "c" => 'c',
        _ => return None,
    };
    Some((slot.parse().ok()?, kind, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_carries_the_service_tag() {
        for key in [
            totals("whatsapp", 1),
            breakdown("whatsapp", 1),
            rollup("whatsapp", 1),
            reporters("whatsapp", 1),
            networks("whatsapp", 1),
            dedup("whatsapp", "ab"),
            network_counts("whatsapp", 1),
            idempotency("whatsapp", "k"),
            lease("whatsapp"),
            state("whatsapp"),
            expected("whatsapp", 1),
        ] {
            assert!(key.starts_with("ow:{whatsapp}:"), "{key}");
        }
    }

    #[test]
    fn fields_locate_a_minute() {
        // 2026-11-22T14:37:00Z
        let minute = 1_795_358_220 / 60;
        assert_eq!(minute_field(minute), "37");
        assert_eq!(slot_of(minute), 7);
        assert_eq!(quarter_field(minute), (14 * 4 + 2).to_string());
        assert_eq!(parse_breakdown_field("3:p:login"), Some((3, 'p', "login")));
        assert_eq!(parse_breakdown_field("11:c:DE"), Some((11, 'c', "DE")));
        assert_eq!(parse_breakdown_field("x"), None);
        assert_eq!(parse_breakdown_field("1:z:x"), None);
    }
}
