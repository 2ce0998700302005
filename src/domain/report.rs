//! A user's problem report as it arrives, and its validation against the registry.

use serde::Deserialize;
use utoipa::ToSchema;

use super::{Country, Problem, Registry, Service};

/// The body of `POST /api/v1/reports`, as JSON or as an HTML form.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(as = ReportRequest)]
pub struct RawReport {
    #[schema(example = "whatsapp", min_length = 1)]
    pub service: String,
    #[schema(inline, value_type = Problem)]
    pub problem: String,
    /// ISO 3166-1 alpha-2, any case; empty: none
    #[serde(default)]
    #[schema(value_type = String, example = "BR", pattern = r"^\s*([A-Za-z]{2})?\s*$")]
    pub country: Option<String>,
    /// The reporter's id (the page's cookie), at most intake.max_client_id_len (128) bytes; empty: none
    #[serde(default)]
    #[schema(value_type = String, max_length = 128)]
    pub client_id: Option<String>,
}

/// A report that passed validation; `service` is the canonical registry entry.
#[derive(Debug, Clone)]
pub struct ValidReport<'r> {
    pub service: &'r Service,
    pub problem: Problem,
    pub country: Option<Country>,
    /// `None` when absent or empty: the reporter is then identified by address.
    pub client_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    #[error("unknown service {0:?}")]
    UnknownService(String),
    #[error("problem {problem:?} is not accepted for {service}")]
    ProblemNotAllowed {
        service: String,
        problem: String,
        allowed: Vec<Problem>,
    },
    #[error("country {0:?} is not an ISO 3166-1 alpha-2 code")]
    InvalidCountry(String),
    #[error("client_id is {len} bytes long, the limit is {max}")]
    ClientIdTooLong { len: usize, max: usize },
}

/// Identifies a reporter in dedup keys and distinct-reporter counts; an opaque
/// hex digest, never a raw address or client id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReporterKey(pub String);

/// Identifies the network a report came from (its address cut to a prefix)
/// in per-network caps and distinct-network counts; an opaque hex digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NetworkKey(pub String);

impl RawReport {
    pub fn validate<'r>(
        self,
        registry: &'r Registry,
        max_client_id_len: usize,
    ) -> Result<ValidReport<'r>, ReportError> {
        let service = registry
            .find(&self.service)
            .ok_or_else(|| ReportError::UnknownService(self.service.clone()))?;
        let problem = self
            .problem
            .parse::<Problem>()
            .ok()
            .filter(|p| service.accepts(*p))
            .ok_or_else(|| ReportError::ProblemNotAllowed {
                service: service.id.clone(),
                problem: self.problem.clone(),
                allowed: service.problems.clone(),
            })?;
        let country = match self.country.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => Some(
                Country::parse(text)
                    .ok_or_else(|| ReportError::InvalidCountry(text.to_string()))?,
            ),
        };
        let client_id = self.client_id.filter(|c| !c.trim().is_empty());
        if let Some(c) = &client_id
            && c.len() > max_client_id_len
        {
            return Err(ReportError::ClientIdTooLong {
                len: c.len(),
                max: max_client_id_len,
            });
        }
        Ok(ValidReport {
            service,
            problem,
            country,
            client_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(service: &str, problem: &str, country: Option<&str>) -> RawReport {
        RawReport {
            service: service.into(),
            problem: problem.into(),
            country: country.map(Into::into),
            client_id: None,
        }
    }

    #[test]
    fn alias_and_case_resolve_to_the_canonical_service() {
        let registry = Registry::builtin().unwrap();
        let ok = raw("WhatsApp", "LOGIN", Some("de"))
            .validate(&registry, 128)
            .unwrap();
        assert_eq!(ok.service.id, "whatsapp");
        assert_eq!(ok.problem, Problem::Login);
        assert_eq!(ok.country.unwrap().as_str(), "DE");
    }

    #[test]
    fn each_invalid_field_has_its_own_error() {
        let registry = Registry::builtin().unwrap();
        assert!(matches!(
            raw("myspace-2", "login", None).validate(&registry, 128),
            Err(ReportError::UnknownService(_))
        ));
        match raw("chase", "feed", None).validate(&registry, 128) {
            Err(ReportError::ProblemNotAllowed { allowed, .. }) => {
                assert!(allowed.contains(&Problem::Login))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            raw("whatsapp", "login", Some("XX")).validate(&registry, 128),
            Err(ReportError::InvalidCountry(_))
        ));
        let mut long = raw("whatsapp", "login", None);
        long.client_id = Some("x".repeat(129));
        assert!(matches!(
            long.validate(&registry, 128),
            Err(ReportError::ClientIdTooLong { len: 129, max: 128 })
        ));
    }
}
