//! The resolved configuration every component reads.
//!
//! Resolved once, in this order: built-in defaults < TOML file (`--config FILE`, else
//! `$CDKTR_CONFIG`, else `./cdktr.toml`, else `/etc/cdktr/cdktr.toml`) < environment
//! (`CDKTR_<SECTION>_<KEY>`, plus the older cdktr's variables as aliases) < command-line flags.
//! Every value remembers where it came from ([`Source`]) for `cdktr config --sources`.

mod keys;
mod value;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

pub use keys::KEYS;
use value::Value;

/// The system-wide config file, read when no other is named and `./cdktr.toml` is absent.
pub const SYSTEM_CONFIG: &str = "/etc/cdktr/cdktr.toml";

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Config {
    pub principal: PrincipalConfig,
    pub agent: AgentConfig,
    pub client: ClientConfig,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PrincipalConfig {
    /// API endpoint: agents, CLI, TUI and event listeners.
    pub listen: String,
    /// Log ingest from agents.
    pub logs_listen: String,
    /// Live log stream for subscribers.
    pub logs_publish: String,
    pub workflow_dir: PathBuf,
    pub data_dir: PathBuf,
    /// The DuckDB file; `<data_dir>/cdktr.duckdb` unless set.
    pub db_path: PathBuf,
    /// An agent silent for this long is lost and its runs become CRASHED.
    #[serde(with = "value::duration_text")]
    pub heartbeat_timeout: Duration,
    /// Larger incoming messages get an error reply instead of being decoded.
    pub max_message_bytes: usize,
    /// With `catchup: all`, at most this many missed slots run after a restart (the latest).
    pub catchup_limit: usize,
    /// How often the workflow tree is read again to catch changes its watch missed (network
    /// file systems, a full event queue, a switched symlink); it reloads only on a change.
    #[serde(with = "value::duration_text")]
    pub rescan_interval: Duration,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AgentConfig {
    pub principal: String,
    /// Agent name; the host name when empty. The agent id is `name@host`.
    pub name: String,
    pub max_concurrent_workflows: usize,
    #[serde(with = "value::duration_text")]
    pub heartbeat_interval: Duration,
    /// Where the agent spills records the principal has not acknowledged yet.
    pub data_dir: PathBuf,
    /// Records kept in memory while unacknowledged; the rest wait in the spool file.
    pub max_buffered_records: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClientConfig {
    pub principal: String,
    /// How long the CLI and TUI wait for a reply before reporting the principal unreachable.
    #[serde(with = "value::duration_text")]
    pub timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            principal: PrincipalConfig {
                listen: "tcp://127.0.0.1:5561".into(),
                logs_listen: "tcp://127.0.0.1:5562".into(),
                logs_publish: "tcp://127.0.0.1:5563".into(),
                workflow_dir: "workflows".into(),
                data_dir: ".cdktr".into(),
                db_path: PathBuf::new(),
                heartbeat_timeout: Duration::from_secs(30),
                max_message_bytes: 4 * 1024 * 1024,
                catchup_limit: 100,
                rescan_interval: Duration::from_secs(60),
            },
            agent: AgentConfig {
                principal: "tcp://127.0.0.1:5561".into(),
                name: String::new(),
                max_concurrent_workflows: 5,
                heartbeat_interval: Duration::from_secs(5),
                data_dir: ".cdktr/agent".into(),
                max_buffered_records: 100_000,
            },
            client: ClientConfig {
                principal: "tcp://127.0.0.1:5561".into(),
                timeout: Duration::from_secs(5),
            },
        }
    }
}

/// Where a value came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "from", rename_all = "lowercase")]
pub enum Source {
    Default,
    File(PathBuf),
    Env(String),
    Flag(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(p) => write!(f, "file {}", p.display()),
            Source::Env(v) => write!(f, "env {v}"),
            Source::Flag(n) => write!(f, "flag {n}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {}: {message}", path.display())]
    Syntax { path: PathBuf, message: String },
    #[error("{key} (from {source_}): {message}")]
    Value {
        key: String,
        source_: Source,
        message: String,
    },
    #[error("unknown key `{key}` in {source_}{hint}")]
    UnknownKey {
        key: String,
        source_: Source,
        hint: String,
    },
}

/// Everything resolution reads from the outside world, so tests can supply their own.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// `--config FILE`.
    pub config_file: Option<PathBuf>,
    /// The process environment (only `CDKTR_*` variables matter).
    pub env: Vec<(String, String)>,
    /// Flag overrides as (`section.key`, value, flag name).
    pub flags: Vec<(&'static str, String, String)>,
    /// The working directory relative paths resolve against when no file is involved.
    pub cwd: PathBuf,
    /// The system config path (normally [`SYSTEM_CONFIG`]).
    pub system_config: PathBuf,
}

impl Inputs {
    /// The inputs of this process: its environment and working directory.
    pub fn from_process(config_file: Option<PathBuf>) -> Self {
        Inputs {
            config_file,
            env: std::env::vars().collect(),
            flags: Vec::new(),
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            system_config: PathBuf::from(SYSTEM_CONFIG),
        }
    }

    pub fn flag(mut self, key: &'static str, value: impl Into<String>, flag: &str) -> Self {
        self.flags.push((key, value.into(), flag.to_owned()));
        self
    }
}

/// The configuration with the provenance of every key.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub config: Config,
    pub sources: BTreeMap<&'static str, Source>,
    /// The config file that was read, if any.
    pub file: Option<PathBuf>,
    /// Things worth telling the user that are not errors (e.g. an unknown `CDKTR_AGENT_*`).
    pub warnings: Vec<String>,
}

impl Resolved {
    /// The resolved configuration as TOML; with `sources`, each value carries a comment saying
    /// where it came from.
    pub fn to_toml(&self, sources: bool) -> String {
        let mut out = String::new();
        let mut section = "";
        for &key in KEYS {
            let (sec, name) = key.split_once('.').unwrap_or(("", key));
            if sec != section {
                if !section.is_empty() {
                    out.push('\n');
                }
                out.push_str(&format!("[{sec}]\n"));
                section = sec;
            }
            let value = keys::get(&self.config, key);
            out.push_str(&format!("{name} = {value}"));
            if sources {
                let source = self.sources.get(key).unwrap_or(&Source::Default);
                out.push_str(&format!("  # {source}"));
            }
            out.push('\n');
        }
        out
    }
}

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
                    hint: " (expected sections [principal], [agent] and [client])".into(),
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
        ];
        for var in env.keys() {
            let scoped = ["CDKTR_PRINCIPAL_", "CDKTR_AGENT_", "CDKTR_CLIENT_"]
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
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
