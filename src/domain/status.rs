//! How a service is doing: `ok`, `possible` or `problem`, in that order of
//! badness. An incident's severity is `possible` or `problem`; a service
//! without an open incident is `ok`. The same words everywhere: the
//! detector's state, the stored anomaly documents, the API and the pages.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Possible,
    Problem,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Possible => "possible",
            Status::Problem => "problem",
        }
    }

    /// An incident's severity as a query names it: `possible` or `problem`.
    pub fn parse_severity(text: &str) -> Option<Status> {
        match text {
            "possible" => Some(Status::Possible),
            "problem" => Some(Status::Problem),
            _ => None,
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_by_badness_and_written_in_lowercase() {
        assert!(Status::Ok < Status::Possible && Status::Possible < Status::Problem);
        let all = [Status::Ok, Status::Possible, Status::Problem];
        assert_eq!(all.iter().max(), Some(&Status::Problem));
        for s in all {
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        assert_eq!(Status::parse_severity("problem"), Some(Status::Problem));
        assert_eq!(Status::parse_severity("ok"), None);
    }
}
