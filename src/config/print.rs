//! `outagewatch config`: the effective settings printed as TOML that loads
//! back, without the secrets and without the password of the Redis URL.

use super::{ENV_PREFIX, Settings};

/// The settings that are secrets: never printed.
const SECRETS: [(&str, &str); 2] = [("admin", "token"), ("intake", "reporter_secret")];

impl Settings {
    /// The effective settings as TOML that loads back with `--config`, with
    /// the secrets left out (a comment at the top names each one that is
    /// set, to be supplied again) and the password of `store.redis_url`
    /// removed.
    pub fn to_redacted_toml(&self) -> String {
        let mut table = toml::Table::try_from(self).expect("settings are plain TOML values");
        let mut notes = Vec::new();
        for (section, key) in SECRETS {
            let Some(toml::Value::Table(t)) = table.get_mut(section) else {
                continue;
            };
            if t.remove(key)
                .is_some_and(|v| v.as_str().is_some_and(|s| !s.is_empty()))
            {
                let env = format!("{ENV_PREFIX}{}__{}", section, key).to_ascii_uppercase();
                notes.push(format!(
                    "# {section}.{key} is set and not shown: supply it again ({env})"
                ));
            }
        }
        if let Some((url, true)) = without_password(&self.store.redis_url)
            && let Some(toml::Value::Table(store)) = table.get_mut("store")
        {
            store.insert("redis_url".into(), toml::Value::String(url));
            notes.push("# store.redis_url has a password, not shown: add it again".into());
        }
        let nodes: Vec<(String, bool)> = self
            .store
            .redis_cluster_nodes
            .iter()
            .map(|n| without_password(n).unwrap_or_else(|| (n.clone(), false)))
            .collect();
        if nodes.iter().any(|(_, had)| *had)
            && let Some(toml::Value::Table(store)) = table.get_mut("store")
        {
            let shown = nodes
                .into_iter()
                .map(|(n, _)| toml::Value::String(n))
                .collect();
            store.insert("redis_cluster_nodes".into(), toml::Value::Array(shown));
            notes.push(
                "# store.redis_cluster_nodes have a password, not shown: add it again".into(),
            );
        }
        let mut out = String::from("# outagewatch: the effective settings\n");
        for note in notes {
            out.push_str(&note);
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&toml::to_string(&table).expect("a table prints"));
        out
    }
}

/// A URL without the password of its user info or of its query (`pass=`,
/// `password=`, as unix-socket Redis URLs carry it), and whether it had one.
fn without_password(url: &str) -> Option<(String, bool)> {
    let (url, query) = url.split_once('?').unwrap_or((url, ""));
    let params: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    let kept: Vec<&str> = params
        .iter()
        .copied()
        .filter(|p| !matches!(p.split('=').next(), Some("pass" | "password")))
        .collect();
    let query = if kept.is_empty() {
        String::new()
    } else {
        format!("?{}", kept.join("&"))
    };
    let (url, had) = without_userinfo_password(url)?;
    Some((format!("{url}{query}"), had || kept.len() < params.len()))
}

fn without_userinfo_password(url: &str) -> Option<(String, bool)> {
    let (scheme, rest) = url.split_once("://")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return Some((url.to_string(), false));
    };
    let Some((user, _password)) = userinfo.split_once(':') else {
        return Some((url.to_string(), false));
    };
    let at = if user.is_empty() {
        String::new()
    } else {
        format!("{user}@")
    };
    Some((format!("{scheme}://{at}{host}{path}"), true))
}

#[cfg(test)]
mod tests {
    use crate::config::Settings;
    use crate::config::tests::env;

    #[test]
    fn config_prints_toml_that_loads_back_without_its_secrets() {
        let s = Settings::load_from(
            None,
            env(&[
                ("OUTAGEWATCH_ADMIN__TOKEN", "s3cret-token"),
                (
                    "OUTAGEWATCH_INTAKE__REPORTER_SECRET",
                    "pepper-secret-of-16+",
                ),
                (
                    "OUTAGEWATCH_STORE__REDIS_URL",
                    "redis://app:hunter2@10.0.0.5:6379/2",
                ),
                ("OUTAGEWATCH_HTTP__BIND", "127.0.0.1:7777"),
                ("OUTAGEWATCH_HTTP__TRUSTED_PROXIES", "10.0.0.0/8"),
            ]),
        )
        .unwrap();
        let printed = s.to_redacted_toml();
        for secret in ["s3cret-token", "pepper-secret-of-16+", "hunter2"] {
            assert!(!printed.contains(secret), "{printed}");
        }
        for note in [
            "# admin.token is set",
            "OUTAGEWATCH_INTAKE__REPORTER_SECRET",
            "has a password",
        ] {
            assert!(printed.contains(note), "{printed}");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("printed.toml");
        std::fs::write(&path, &printed).unwrap();
        let back = Settings::load_from(Some(&path), env(&[])).unwrap();
        assert_eq!(back.http.bind, "127.0.0.1:7777");
        assert_eq!(back.http.trusted_proxies, s.http.trusted_proxies);
        assert_eq!(back.store.redis_url, "redis://app@10.0.0.5:6379/2");
        assert_eq!(back.admin.token, "");
        assert_eq!(back.detect.sustained_hours, s.detect.sustained_hours);
        // A unix-socket URL carries it in its query.
        let socket = Settings::load_from(
            None,
            env(&[(
                "OUTAGEWATCH_STORE__REDIS_URL",
                "redis+unix:///tmp/r.sock?db=0&pass=hunter2",
            )]),
        )
        .unwrap()
        .to_redacted_toml();
        assert!(
            !socket.contains("hunter2") && socket.contains("redis+unix:///tmp/r.sock?db=0"),
            "{socket}"
        );
        // A cluster's seed nodes each lose theirs, and load back.
        let cluster = Settings::load_from(
            None,
            env(&[(
                "OUTAGEWATCH_STORE__REDIS_CLUSTER_NODES",
                "redis://:hunter2@10.0.0.1:6379,redis://:hunter2@10.0.0.2:6379",
            )]),
        )
        .unwrap()
        .to_redacted_toml();
        assert!(!cluster.contains("hunter2"), "{cluster}");
        assert!(
            cluster.contains("redis_cluster_nodes have a password"),
            "{cluster}"
        );
        let path = dir.path().join("cluster.toml");
        std::fs::write(&path, &cluster).unwrap();
        let back = Settings::load_from(Some(&path), env(&[])).unwrap();
        assert_eq!(back.store.redis_cluster_nodes.len(), 2, "{cluster}");
        // Without secrets, what is printed is what was set.
        let plain = Settings::defaults().to_redacted_toml();
        assert!(!plain.contains("is set and not shown"), "{plain}");
    }
}
