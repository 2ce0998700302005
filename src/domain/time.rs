//! Times as outagewatch writes them: Unix minutes and RFC 3339 in UTC to
//! the second.

use chrono::{DateTime, TimeZone, Utc};

/// The current Unix minute.
pub fn now_minute() -> i64 {
    Utc::now().timestamp().div_euclid(60)
}

/// The start of Unix minute `minute`.
pub fn minute_start(minute: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(minute * 60, 0)
        .single()
        .unwrap_or_default()
}

/// `unix` seconds as `2024-03-05T15:02:00Z`.
pub fn rfc3339(unix: i64) -> String {
    DateTime::from_timestamp(unix, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The start of Unix minute `minute` as [`rfc3339`].
pub fn rfc3339_minute(minute: i64) -> String {
    rfc3339(minute * 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_and_seconds_print_alike() {
        assert_eq!(rfc3339_minute(28_500_000), "2024-03-09T16:00:00Z");
        assert_eq!(rfc3339(28_500_000 * 60 + 59), "2024-03-09T16:00:59Z");
        assert_eq!(minute_start(28_500_000).timestamp(), 28_500_000 * 60);
    }
}
