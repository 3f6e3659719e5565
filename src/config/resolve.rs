//! Resolution: the layers (defaults, file, environment with the older variables as aliases,
//! flags) applied in order, each value remembering its source.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::value::{self, Value};
use super::{keys, Config, ConfigError, Inputs, Resolved, Source, KEYS};

/// Resolves the configuration from `inputs`.
pub fn resolve(inputs: &Inputs) -> Result<Resolved, ConfigError> {
    let env: BTreeMap<&str, &str> = inputs
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut state = Resolver {
        config: Config::default(),
        sources: BTreeMap::new(),
        file: None,
        warnings: Vec::new(),
    };
    let file = inputs
        .config_file
        .clone()
        .map(|p| (p, true))
        .or_else(|| env.get("CDKTR_CONFIG").map(|p| (PathBuf::from(p), true)))
        .or_else(|| {
            let local = inputs.cwd.join("cdktr.toml");
            local.is_file().then_some((local, false))
        })
        .or_else(|| {
            let system = inputs.system_config.clone();
            system.is_file().then_some((system, false))
        });
    // Relative paths from defaults and the file resolve against the file's folder.
    let mut file_base = inputs.cwd.clone();
    if let Some((path, _)) = file {
        let path = absolute(&inputs.cwd, &path);
        file_base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        state.apply_file(&path)?;
        state.file = Some(path);
    }
    state.apply_legacy_env(&env)?;
    state.apply_env(&env)?;
    for (key, value, flag) in &inputs.flags {
        state.set(key, Value::Text(value), Source::Flag(flag.clone()))?;
    }
    state.finish(&inputs.cwd, &file_base);
    Ok(Resolved {
        config: state.config,
        sources: state.sources,
        file: state.file,
        warnings: state.warnings,
    })
}

fn absolute(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

struct Resolver {
    config: Config,
    sources: BTreeMap<&'static str, Source>,
    file: Option<PathBuf>,
    warnings: Vec<String>,
}

impl Resolver {
    fn set(&mut self, key: &str, value: Value<'_>, source: Source) -> Result<(), ConfigError> {
        let Some(&known) = KEYS.iter().find(|k| **k == key) else {
            return Err(ConfigError::UnknownKey {
                key: key.to_owned(),
                source_: source,
                hint: keys::hint(key),
            });
        };
        keys::set(&mut self.config, known, value).map_err(|message| ConfigError::Value {
            key: known.to_owned(),
            source_: source.clone(),
            message,
        })?;
        self.sources.insert(known, source);
        Ok(())
    }

    fn apply_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let source = Source::File(path.to_path_buf());
        for (section, body) in &table {
            let Some(body) = body.as_table() else {
                return Err(ConfigError::UnknownKey {
                    key: section.clone(),
                    source_: source,
                    hint: " (expected sections [principal], [agent], [client], [auth], [log] and [metrics])".into(),
                });
            };
            for (name, value) in body {
                self.set(
                    &format!("{section}.{name}"),
                    Value::Toml(value),
                    source.clone(),
                )?;
            }
        }
        Ok(())
    }

    /// The older cdktr's variables, applied before the canonical ones so those win.
    fn apply_legacy_env(&mut self, env: &BTreeMap<&str, &str>) -> Result<(), ConfigError> {
        let host = env.get("CDKTR_PRINCIPAL_HOST").copied();
        let port = env.get("CDKTR_PRINCIPAL_PORT").copied();
        if host.is_some() || port.is_some() {
            let var = match (host, port) {
                (Some(_), Some(_)) => "CDKTR_PRINCIPAL_HOST + CDKTR_PRINCIPAL_PORT",
                (Some(_), None) => "CDKTR_PRINCIPAL_HOST",
                _ => "CDKTR_PRINCIPAL_PORT",
            };
            for key in ["principal.listen", "agent.principal", "client.principal"] {
                let current = keys::get(&self.config, key).trim_matches('"').to_owned();
                let endpoint = value::replace_host_port(&current, host, port);
                self.set(key, Value::Text(&endpoint), Source::Env(var.into()))?;
            }
        }
        for (var, key) in [
            ("CDKTR_LOGS_LISTENING_PORT", "principal.logs_listen"),
            ("CDKTR_LOGS_PUBLISHING_PORT", "principal.logs_publish"),
        ] {
            if let Some(port) = env.get(var) {
                let current = keys::get(&self.config, key).trim_matches('"').to_owned();
                let endpoint = value::replace_host_port(&current, None, Some(port));
                self.set(key, Value::Text(&endpoint), Source::Env(var.into()))?;
            }
        }
        for (var, key) in [
            ("CDKTR_WORKFLOW_DIR", "principal.workflow_dir"),
            ("CDKTR_APP_DATA_DIRECTORY", "principal.data_dir"),
            ("CDKTR_DB_PATH", "principal.db_path"),
            ("CDKTR_LOG", "log.level"),
            (
                "CDKTR_AGENT_MAX_CONCURRENCY",
                "agent.max_concurrent_workflows",
            ),
        ] {
            if let Some(value) = env.get(var) {
                self.set(key, Value::Text(value), Source::Env(var.into()))?;
            }
        }
        if let Some(ms) = env.get("CDKTR_AGENT_HEARTBEAT_TIMEOUT_MS") {
            let var = "CDKTR_AGENT_HEARTBEAT_TIMEOUT_MS";
            let ms: u64 = ms.trim().parse().map_err(|_| ConfigError::Value {
                key: "principal.heartbeat_timeout".into(),
                source_: Source::Env(var.into()),
                message: format!("`{ms}` is not a whole number of milliseconds"),
            })?;
            let text = format!("{ms}ms");
            self.set(
                "principal.heartbeat_timeout",
                Value::Text(&text),
                Source::Env(var.into()),
            )?;
        }
        Ok(())
    }

    fn apply_env(&mut self, env: &BTreeMap<&str, &str>) -> Result<(), ConfigError> {
        for &key in KEYS {
            let var = keys::env_var(key);
            if let Some(value) = env.get(var.as_str()) {
                self.set(key, Value::Text(value), Source::Env(var))?;
            }
        }
        let legacy = [
            "CDKTR_PRINCIPAL_HOST",
            "CDKTR_PRINCIPAL_PORT",
            "CDKTR_AGENT_MAX_CONCURRENCY",
            "CDKTR_AGENT_HEARTBEAT_TIMEOUT_MS",
            "CDKTR_LOG",
        ];
        for var in env.keys() {
            let scoped = [
                "CDKTR_PRINCIPAL_",
                "CDKTR_AGENT_",
                "CDKTR_CLIENT_",
                "CDKTR_AUTH_",
                "CDKTR_LOG_",
                "CDKTR_METRICS_",
            ]
            .iter()
            .any(|p| var.starts_with(p));
            let known = KEYS.iter().any(|k| keys::env_var(k) == *var) || legacy.contains(var);
            if scoped && !known {
                self.warnings
                    .push(format!("ignoring unknown configuration variable {var}"));
            }
        }
        Ok(())
    }

    /// Makes paths absolute and derives `db_path` from `data_dir` when it was not set.
    fn finish(&mut self, cwd: &Path, file_base: &Path) {
        let base_for = |sources: &BTreeMap<&str, Source>, key: &str| match sources.get(key) {
            Some(Source::Env(_) | Source::Flag(_)) => cwd.to_path_buf(),
            _ => file_base.to_path_buf(),
        };
        let agent_dir = absolute(
            &base_for(&self.sources, "agent.data_dir"),
            &self.config.agent.data_dir,
        );
        self.config.agent.data_dir = agent_dir;
        let p = &mut self.config.principal;
        p.workflow_dir = absolute(
            &base_for(&self.sources, "principal.workflow_dir"),
            &p.workflow_dir,
        );
        p.data_dir = absolute(&base_for(&self.sources, "principal.data_dir"), &p.data_dir);
        if p.db_path.as_os_str().is_empty() {
            p.db_path = p.data_dir.join("cdktr.duckdb");
        } else {
            p.db_path = absolute(&base_for(&self.sources, "principal.db_path"), &p.db_path);
        }
        let data_dir = p.data_dir.clone();
        if p.control_socket.as_os_str().is_empty() {
            p.control_socket = data_dir.join("control.sock");
        } else {
            p.control_socket = absolute(
                &base_for(&self.sources, "principal.control_socket"),
                &p.control_socket,
            );
        }
        // Optional paths stay empty when unset.
        let sources = &self.sources;
        let resolve = |key: &str, path: &mut PathBuf| {
            if !path.as_os_str().is_empty() {
                *path = absolute(&base_for(sources, key), path);
            }
        };
        resolve("auth.keys", &mut self.config.auth.keys);
        resolve("auth.principal_key", &mut self.config.auth.principal_key);
        resolve("agent.credential", &mut self.config.agent.credential);
        resolve("client.credential", &mut self.config.client.credential);
        if self.config.auth.principal_key.as_os_str().is_empty() {
            self.config.auth.principal_key = data_dir.join("principal.key");
        }
        // Clients and agents with no principal configured use the control socket when a
        // principal has made one here (even a stale one: the principal binds it again), and
        // only one a principal could have made: never a socket another user planted.
        let socket = &self.config.principal.control_socket;
        if crate::runtime::files::trusted_socket(socket) {
            let local = format!("ipc://{}", socket.display());
            for key in ["client.principal", "agent.principal"] {
                if matches!(self.sources.get(key), None | Some(Source::Default)) {
                    let field = match key {
                        "client.principal" => &mut self.config.client.principal,
                        _ => &mut self.config.agent.principal,
                    };
                    *field = local.clone();
                }
            }
        }
    }
}
