//! An anomaly (incident) as the feed publishes it, and its headline.
//!
//! The worker builds and updates these from the detector's verdicts; the API
//! serves them as stored. Numbers in a headline are rounded the way people
//! quote them ("~200 reports", "14x"), because journalists copy headlines.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Status;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AnomalyStatus {
    Open,
    Resolved,
}

/// A share of the incident's reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Share {
    pub name: String,
    pub count: u64,
    pub share: f64,
}

/// The company-wide event an incident belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Group {
    pub id: String,
    pub company: String,
    /// Services of the company with incidents overlapping this one.
    pub services: Vec<String>,
    pub headline: String,
}

/// One minute of an incident's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TimelinePoint {
    #[schema(format = DateTime)]
    pub t: String,
    pub reports: u64,
    pub expected: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Anomaly {
    #[schema(example = "whatsapp-20240305T1502Z")]
    pub id: String,
    pub service: String,
    pub company: String,
    pub status: AnomalyStatus,
    /// `possible` or `problem`.
    #[schema(schema_with = severity_schema)]
    pub severity: Status,
    #[schema(format = DateTime)]
    pub started_at: String,
    #[schema(format = DateTime)]
    pub peak_at: String,
    /// Reports in the busiest minute, at peak_at
    #[serde(default)]
    pub peak_reports: u64,
    #[schema(format = DateTime, required = true)]
    pub ended_at: Option<String>,
    /// Reports counted during the incident
    pub reports: u64,
    /// Reports expected over the same minutes
    pub baseline: f64,
    pub ratio: f64,
    /// The strongest calibrated p-value seen.
    pub p_value: f64,
    /// The most distinct reporters counted in one window that was a hit (the window the detector's floor counts).
    // 0 in documents stored before.
    #[serde(default)]
    #[schema(required = true)]
    pub distinct_reporters: u64,
    /// The most distinct networks (IPv4 /24, IPv6 /48 by default: intake.network_prefix_v4/_v6) those reporters came from, in such a window. The detector needs detect.min_networks of them; one client cannot multiply networks as it can client_ids.
    #[serde(default)]
    #[schema(required = true)]
    pub distinct_networks: u64,
    pub top_problems: Vec<Share>,
    pub top_countries: Vec<Share>,
    pub headline: String,
    /// Separate bursts this entry stands for: 1 for an outage; more when later bursts of its kind reopened it, each within a day of the last resolution and after a break longer than a relapse (reopen_mins). The headline then reads "recurring bursts since ..., N so far: ~R reports, Kx the usual ~E", its figures over the bursts' minutes
    // A pattern taking hold is one entry, not a headline per burst.
    #[serde(default = "default_bursts")]
    #[schema(minimum = 1, required = true)]
    pub bursts: u32,
    #[schema(required = true)]
    pub group: Option<Group>,
    /// Unix seconds, for ordering and filters.
    pub started_unix: i64,
    pub updated_unix: i64,
    /// Only on GET /api/v1/anomalies/{id}
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<TimelinePoint>,
}

/// An incident's [`Status`]: never `ok`.
pub fn severity_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some(
            [Status::Possible, Status::Problem].map(Status::as_str),
        ))
        .build()
}

fn default_bursts() -> u32 {
    1
}

/// The stable id of an incident: its service and its first minute, so a
/// worker that takes over (or restarts) names the same incident the same way.
pub fn anomaly_id(service: &str, started_unix: i64) -> String {
    let t = chrono::DateTime::from_timestamp(started_unix, 0).unwrap_or_default();
    format!("{service}-{}", t.format("%Y%m%dT%H%MZ"))
}

/// "~200", "~1,400", "~6.2 million": how a number of reports is quoted.
pub fn round_for_humans(n: f64) -> String {
    let n = n.max(0.0);
    if n < 10.0 {
        return format!("{}", n.round() as u64);
    }
    if n >= 1e6 {
        return format!("~{:.1} million", n / 1e6);
    }
    // Two significant figures.
    let magnitude = 10f64.powi(n.log10().floor() as i32 - 1);
    let rounded = ((n / magnitude).round() * magnitude) as u64;
    format!("~{}", thousands(rounded))
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// "WhatsApp: ~200 reports in 15 min, 14x the usual ~14 (login 54%)".
pub fn headline(
    name: &str,
    reports: u64,
    minutes: i64,
    expected: f64,
    top_problem: Option<&Share>,
) -> String {
    let duration = if minutes < 120 {
        format!("{minutes} min")
    } else {
        format!("{:.1} h", minutes as f64 / 60.0)
    };
    format!(
        "{name}: {} reports in {duration}, {}",
        round_for_humans(reports as f64),
        against_usual(reports, expected, top_problem)
    )
}

/// A recurring incident's headline: since when, how many bursts, and its
/// figures over the bursts' minutes (no duration: the time between the
/// bursts is not part of it). "WhatsApp: recurring bursts since 4 Dec
/// 10:15 UTC, 3 so far: ~450 reports, 4.1x the usual ~110".
pub fn recurring_headline(
    name: &str,
    since_unix: i64,
    bursts: u32,
    reports: u64,
    expected: f64,
    top_problem: Option<&Share>,
) -> String {
    let since = chrono::DateTime::from_timestamp(since_unix, 0).unwrap_or_default();
    format!(
        "{name}: recurring bursts since {}, {bursts} so far: {} reports, {}",
        since.format("%-d %b %H:%M UTC"),
        round_for_humans(reports as f64),
        against_usual(reports, expected, top_problem)
    )
}

/// "14x the usual ~14 (login 54%)"; against fewer than one expected
/// report, "usually fewer than 1": a ratio to a fraction of a report
/// ("600x the usual 0", or "500x the usual 1" of 0.6) is no figure to
/// quote.
fn against_usual(reports: u64, expected: f64, top_problem: Option<&Share>) -> String {
    let mut line = if expected < 1.0 {
        "usually fewer than 1".to_string()
    } else {
        let ratio = reports as f64 / expected;
        let ratio = if ratio >= 10.0 {
            format!("{}x", ratio.round() as u64)
        } else {
            format!("{:.1}x", ratio)
        };
        format!("{ratio} the usual {}", round_for_humans(expected))
    };
    if let Some(p) = top_problem {
        line.push_str(&format!(" ({} {:.0}%)", p.name, p.share * 100.0));
    }
    line
}

/// "Meta: Facebook, Instagram, Messenger, Threads, WhatsApp".
pub fn group_headline(company_name: &str, service_names: &[String]) -> String {
    format!("{company_name}: {}", service_names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_rounded_as_people_quote_them() {
        assert_eq!(round_for_humans(7.0), "7");
        assert_eq!(round_for_humans(14.2), "~14");
        assert_eq!(round_for_humans(203.0), "~200");
        assert_eq!(round_for_humans(1437.0), "~1,400");
        assert_eq!(round_for_humans(6_240_000.0), "~6.2 million");
    }

    #[test]
    fn headline_reads_like_the_design() {
        let login = Share {
            name: "login".into(),
            count: 108,
            share: 0.54,
        };
        assert_eq!(
            headline("WhatsApp", 203, 15, 14.3, Some(&login)),
            "WhatsApp: ~200 reports in 15 min, 14x the usual ~14 (login 54%)"
        );
        assert_eq!(
            headline("Netflix", 40, 150, 16.0, None),
            "Netflix: ~40 reports in 2.5 h, 2.5x the usual ~16"
        );
        assert_eq!(
            headline("Fastmail", 300, 1, 0.2, Some(&login)),
            "Fastmail: ~300 reports in 1 min, usually fewer than 1 (login 54%)"
        );
    }

    #[test]
    fn a_recurring_incident_says_since_when_and_how_many_bursts() {
        // Since 2026-12-04 10:15 UTC.
        assert_eq!(
            recurring_headline("WhatsApp", 1_796_379_300, 3, 450, 110.0, None),
            "WhatsApp: recurring bursts since 4 Dec 10:15 UTC, 3 so far: ~450 reports, 4.1x the usual ~110"
        );
    }

    #[test]
    fn ids_are_stable_and_readable() {
        assert_eq!(
            anomaly_id("whatsapp", 1_709_650_920),
            "whatsapp-20240305T1502Z"
        );
    }
}
