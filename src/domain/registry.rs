//! The registry of companies and services, loaded once at start-up from
//! `config/services.toml` (built in) or a file named by `registry.path`.
//!
//! Lookups by id or alias are case-insensitive. Errors in the file stop start-up
//! with a message naming the service or company at fault.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::Problem;

/// The registry compiled into the binary.
pub const BUILTIN_SERVICES_TOML: &str = include_str!("../../config/services.toml");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Social,
    Messaging,
    Streaming,
    Gaming,
    Cloud,
    Email,
    Banking,
    Telecom,
    Ai,
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        f.write_str(&s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Company {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub id: String,
    pub name: String,
    pub company: String,
    pub category: Category,
    #[serde(default)]
    pub aliases: Vec<String>,
    pub problems: Vec<Problem>,
}

impl Service {
    pub fn accepts(&self, problem: Problem) -> bool {
        self.problems.contains(&problem)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryFile {
    #[serde(default)]
    company: Vec<Company>,
    #[serde(default)]
    service: Vec<Service>,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot read services registry {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// Includes unknown problem types and categories, reported by line.
    #[error("services registry {origin} is not valid: {message}")]
    Parse { origin: String, message: String },
    #[error("services registry {origin}: {message}")]
    Invalid { origin: String, message: String },
}

/// Companies and services, sorted by id, with a case-insensitive index.
#[derive(Debug, Clone)]
pub struct Registry {
    companies: Vec<Company>,
    services: Vec<Service>,
    /// Lower-cased id or alias to index in `services`.
    by_name: HashMap<String, usize>,
}

impl Registry {
    pub fn builtin() -> Result<Self, RegistryError> {
        Self::parse(BUILTIN_SERVICES_TOML, "config/services.toml (built in)")
    }

    pub fn load(path: &str) -> Result<Self, RegistryError> {
        if path.is_empty() {
            return Self::builtin();
        }
        let text = std::fs::read_to_string(path).map_err(|source| RegistryError::Read {
            path: path.to_string(),
            source,
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, origin: &str) -> Result<Self, RegistryError> {
        let file: RegistryFile = toml::from_str(text).map_err(|e| RegistryError::Parse {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        let invalid = |message: String| RegistryError::Invalid {
            origin: origin.to_string(),
            message,
        };
        let mut company_ids = BTreeSet::new();
        for c in &file.company {
            check_id(&c.id).map_err(|m| invalid(format!("company {:?}: {m}", c.id)))?;
            if !company_ids.insert(c.id.clone()) {
                return Err(invalid(format!("duplicate company id {:?}", c.id)));
            }
        }
        let mut by_name = HashMap::new();
        let mut services = file.service;
        services.sort_by(|a, b| a.id.cmp(&b.id));
        for (index, s) in services.iter_mut().enumerate() {
            check_id(&s.id).map_err(|m| invalid(format!("service {:?}: {m}", s.id)))?;
            if !company_ids.contains(&s.company) {
                return Err(invalid(format!(
                    "service {:?} names unknown company {:?}",
                    s.id, s.company
                )));
            }
            if s.problems.is_empty() {
                return Err(invalid(format!(
                    "service {:?} lists no problem types",
                    s.id
                )));
            }
            let unique: BTreeSet<Problem> = s.problems.iter().copied().collect();
            if unique.len() != s.problems.len() {
                return Err(invalid(format!(
                    "service {:?} repeats a problem type",
                    s.id
                )));
            }
            if by_name.insert(s.id.clone(), index).is_some() {
                return Err(invalid(format!("duplicate service id {:?}", s.id)));
            }
        }
        for (index, s) in services.iter().enumerate() {
            for alias in &s.aliases {
                let key = alias.trim().to_lowercase();
                if key.is_empty() {
                    return Err(invalid(format!("service {:?} has an empty alias", s.id)));
                }
                if let Some(&other) = by_name.get(&key)
                    && other != index
                {
                    return Err(invalid(format!(
                        "alias {alias:?} of service {:?} is already the id or alias of {:?}",
                        s.id, services[other].id
                    )));
                }
                by_name.insert(key, index);
            }
        }
        let mut companies = file.company;
        companies.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(Registry {
            companies,
            services,
            by_name,
        })
    }

    /// By id or alias, any case.
    pub fn find(&self, name: &str) -> Option<&Service> {
        let key = name.trim().to_lowercase();
        self.by_name.get(&key).map(|&i| &self.services[i])
    }

    /// By exact id only.
    pub fn service(&self, id: &str) -> Option<&Service> {
        self.services
            .binary_search_by(|s| s.id.as_str().cmp(id))
            .ok()
            .map(|i| &self.services[i])
    }

    pub fn services(&self) -> &[Service] {
        &self.services
    }

    pub fn companies(&self) -> &[Company] {
        &self.companies
    }

    pub fn company(&self, id: &str) -> Option<&Company> {
        let id = id.trim().to_lowercase();
        self.companies.iter().find(|c| c.id == id)
    }

    pub fn services_of<'a>(&'a self, company: &'a str) -> impl Iterator<Item = &'a Service> + 'a {
        self.services.iter().filter(move |s| s.company == company)
    }
}

/// Ids appear in URLs and Redis keys: lowercase letters, digits and dashes.
fn check_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err("ids are 1 to 64 characters of a-z, 0-9 and '-'".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r#"
        [[company]]
        id = "meta"
        name = "Meta"

        [[service]]
        id = "whatsapp"
        name = "WhatsApp"
        company = "meta"
        category = "messaging"
        aliases = ["WA"]
        problems = ["login", "messaging", "outage", "other"]
    "#;

    #[test]
    fn builtin_registry_is_valid_and_covers_the_categories() {
        let r = Registry::builtin().unwrap();
        assert!(r.services().len() >= 60, "{}", r.services().len());
        let meta: BTreeSet<&str> = r.services_of("meta").map(|s| s.id.as_str()).collect();
        let expected: BTreeSet<&str> = [
            "facebook",
            "instagram",
            "messenger",
            "threads",
            "whatsapp",
            "whatsapp-business-api",
        ]
        .into();
        assert_eq!(meta, expected);
        for category in [
            Category::Social,
            Category::Messaging,
            Category::Streaming,
            Category::Gaming,
            Category::Cloud,
            Category::Email,
            Category::Banking,
            Category::Telecom,
            Category::Ai,
        ] {
            assert!(
                r.services().iter().any(|s| s.category == category),
                "{category}"
            );
        }
    }

    #[test]
    fn lookups_are_case_insensitive_and_follow_aliases() {
        let r = Registry::parse(SMALL, "test").unwrap();
        assert_eq!(r.find("WhatsApp").unwrap().id, "whatsapp");
        assert_eq!(r.find("wa").unwrap().id, "whatsapp");
        assert!(r.find("signal").is_none());
    }

    #[test]
    fn errors_name_what_is_wrong() {
        let duplicate = format!("{SMALL}{}", &SMALL[SMALL.find("[[service]]").unwrap()..]);
        let cases = [
            (duplicate, "duplicate service id \"whatsapp\""),
            (SMALL.replace("\"login\"", "\"logon\""), "logon"),
            (
                SMALL.replace("company = \"meta\"", "company = \"metta\""),
                "unknown company \"metta\"",
            ),
            (SMALL.replace("messaging\"\n", "chat\"\n"), "chat"),
        ];
        for (text, needle) in cases {
            let err = Registry::parse(&text, "test").unwrap_err().to_string();
            assert!(err.contains(needle), "{err:?} should contain {needle:?}");
        }
    }
}
