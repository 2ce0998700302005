//! The one global vocabulary of problem types; each service accepts a subset.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A problem type.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
#[schema(as = ProblemType)]
pub enum Problem {
    Login,
    App,
    Website,
    Feed,
    Upload,
    Messaging,
    Notifications,
    Payments,
    Connection,
    Api,
    Outage,
    Other,
}

impl Problem {
    pub const ALL: [Problem; 12] = [
        Problem::Login,
        Problem::App,
        Problem::Website,
        Problem::Feed,
        Problem::Upload,
        Problem::Messaging,
        Problem::Notifications,
        Problem::Payments,
        Problem::Connection,
        Problem::Api,
        Problem::Outage,
        Problem::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Problem::Login => "login",
            Problem::App => "app",
            Problem::Website => "website",
            Problem::Feed => "feed",
            Problem::Upload => "upload",
            Problem::Messaging => "messaging",
            Problem::Notifications => "notifications",
            Problem::Payments => "payments",
            Problem::Connection => "connection",
            Problem::Api => "api",
            Problem::Outage => "outage",
            Problem::Other => "other",
        }
    }
}

impl Problem {
    /// How the report button names it.
    pub fn label(self) -> &'static str {
        match self {
            Problem::Login => "Log-in",
            Problem::App => "App",
            Problem::Website => "Website",
            Problem::Feed => "Feed or timeline",
            Problem::Upload => "Uploading",
            Problem::Messaging => "Messages",
            Problem::Notifications => "Notifications",
            Problem::Payments => "Payments",
            Problem::Connection => "Connection",
            Problem::Api => "API",
            Problem::Outage => "Total outage",
            Problem::Other => "Something else",
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a problem type")]
pub struct UnknownProblem(pub String);

impl FromStr for Problem {
    type Err = UnknownProblem;

    /// Case-insensitive, surrounding blanks ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim();
        Problem::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| UnknownProblem(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_name_in_any_case() {
        for p in Problem::ALL {
            assert_eq!(p.as_str().parse::<Problem>(), Ok(p));
            assert_eq!(p.as_str().to_uppercase().parse::<Problem>(), Ok(p));
        }
        assert!("logon".parse::<Problem>().is_err());
    }
}
