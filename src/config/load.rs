//! The layers under the settings: the compiled-in defaults as a table, a
//! `--config` file merged into it, then `OUTAGEWATCH_<SECTION>__<KEY>`
//! variables, each read with the type of the default it replaces.

use super::{ConfigError, ENV_PREFIX};

/// `text` as a table, or the error that names `origin`.
pub(super) fn parse_table(text: &str, origin: &str) -> Result<toml::Table, ConfigError> {
    text.parse::<toml::Table>().map_err(|e| ConfigError::Parse {
        origin: origin.to_string(),
        message: e.to_string(),
    })
}

/// Deep-merges `overlay` into `base`; unknown keys survive so that
/// deserialization reports them by name.
pub(super) fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Applies `OUTAGEWATCH_<SECTION>__<KEY>` variables. The value is read with the
/// type of the default it replaces, so `OUTAGEWATCH_HTTP__WORKERS=4` is a number
/// and a list is comma-separated (`OUTAGEWATCH_HTTP__TRUSTED_PROXIES=10.0.0.0/8,::1/128`).
pub(super) fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    for (var, raw) in env {
        let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let env_error = |message: String| ConfigError::Env {
            var: var.clone(),
            message,
        };
        let Some((section, key)) = rest.split_once("__") else {
            return Err(env_error(
                "expected OUTAGEWATCH_<SECTION>__<KEY>, e.g. OUTAGEWATCH_HTTP__BIND".into(),
            ));
        };
        let (section, key) = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
        let Some(toml::Value::Table(section_table)) = table.get_mut(&section) else {
            return Err(env_error(format!(
                "there is no settings section [{section}]"
            )));
        };
        let Some(default) = section_table.get(&key) else {
            return Err(env_error(format!("there is no setting {section}.{key}")));
        };
        let value = match default {
            toml::Value::String(_) => toml::Value::String(raw.clone()),
            toml::Value::Integer(_) => toml::Value::Integer(raw.trim().parse().map_err(|_| {
                env_error(format!("{section}.{key} must be an integer, got {raw:?}"))
            })?),
            toml::Value::Float(_) => toml::Value::Float(raw.trim().parse().map_err(|_| {
                env_error(format!("{section}.{key} must be a number, got {raw:?}"))
            })?),
            toml::Value::Boolean(_) => toml::Value::Boolean(raw.trim().parse().map_err(|_| {
                env_error(format!(
                    "{section}.{key} must be true or false, got {raw:?}"
                ))
            })?),
            // A list of strings, comma-separated (http.trusted_proxies).
            toml::Value::Array(_) => toml::Value::Array(
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| toml::Value::String(s.to_string()))
                    .collect(),
            ),
            other => {
                return Err(env_error(format!(
                    "{section}.{key} is a {} and cannot be set from the environment",
                    other.type_str()
                )));
            }
        };
        section_table.insert(key, value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::Settings;
    use crate::config::tests::env;

    #[test]
    fn environment_overrides_file_and_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[http]\nbind = \"0.0.0.0:9000\"\nworkers = 3\n").unwrap();
        let s = Settings::load_from(
            Some(&path),
            env(&[
                ("OUTAGEWATCH_HTTP__BIND", "127.0.0.1:7000"),
                ("OUTAGEWATCH_STORE__REDIS_URL", "redis://127.0.0.1:1/0"),
                ("OUTAGEWATCH_ADMIN__TOKEN", "s3cret"),
                ("UNRELATED", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(s.http.bind, "127.0.0.1:7000");
        assert_eq!(s.http.workers, 3);
        assert_eq!(s.store.redis_url, "redis://127.0.0.1:1/0");
        assert_eq!(s.admin.token, "s3cret");
    }

    #[test]
    fn a_list_is_comma_separated_in_the_environment() {
        let s = Settings::load_from(
            None,
            env(&[(
                "OUTAGEWATCH_HTTP__TRUSTED_PROXIES",
                " 10.0.0.0/8, ::1/128 ,",
            )]),
        )
        .unwrap();
        let proxies: Vec<String> = s
            .http
            .trusted_proxies
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(proxies, ["10.0.0.0/8", "::1/128"]);
        assert!(Settings::defaults().http.trusted_proxies.is_empty());
    }

    #[test]
    fn unknown_key_in_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[store]\nredis_ulr = \"redis://x\"\n").unwrap();
        let err = Settings::load_from(Some(&path), std::iter::empty())
            .unwrap_err()
            .to_string();
        assert!(err.contains("redis_ulr"), "{err}");
    }
}
