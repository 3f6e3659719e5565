//! The resolved configuration every component reads.
//!
//! Resolved once, in this order: built-in defaults < TOML file (`--config FILE`, else
//! `$CDKTR_CONFIG`, else `./cdktr.toml`, else `/etc/cdktr/cdktr.toml`) < environment
//! (`CDKTR_<SECTION>_<KEY>`, plus the older cdktr's variables as aliases) < command-line flags.
//! Every value remembers where it came from ([`Source`]) for `cdktr config --sources`.

mod keys;
mod resolve;
mod value;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

pub use keys::KEYS;
pub use resolve::resolve;

/// The system-wide config file, read when no other is named and `./cdktr.toml` is absent.
pub const SYSTEM_CONFIG: &str = "/etc/cdktr/cdktr.toml";

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Config {
    pub principal: PrincipalConfig,
    pub agent: AgentConfig,
    pub client: ClientConfig,
    pub auth: AuthConfig,
    pub log: LogConfig,
    pub metrics: MetricsConfig,
    pub retention: RetentionConfig,
}

/// What history the principal keeps (`cdktr gc`); everything, for ever, unless set.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RetentionConfig {
    /// Ended runs (with their tasks and output), slot records and audit entries older than
    /// this are removed; empty: kept for ever.
    #[serde(with = "value::optional_duration_text")]
    pub max_age: Option<Duration>,
    /// Only the newest this many runs of each workflow are kept; 0: all.
    pub max_runs_per_workflow: usize,
    /// Stored output is trimmed, oldest line first, to this many bytes; none when unset.
    pub max_log_bytes: Option<u64>,
    /// How often the principal applies the above.
    #[serde(with = "value::duration_text")]
    pub interval: Duration,
}

impl RetentionConfig {
    pub fn policy(&self) -> crate::store::retention::Policy {
        crate::store::retention::Policy {
            max_age: self.max_age,
            max_runs_per_workflow: (self.max_runs_per_workflow > 0)
                .then_some(self.max_runs_per_workflow as u64),
            max_log_bytes: self.max_log_bytes,
        }
    }
}

/// The daemons' own log.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LogConfig {
    /// A tracing filter: `info`, `debug`, `warn,cdktr::principal=debug`. Read again on SIGHUP.
    pub level: String,
}

/// The Prometheus text endpoint (`GET /metrics`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MetricsConfig {
    /// `HOST:PORT` the principal serves metrics on; empty (the default) for none. Loopback
    /// addresses only: the figures name workflows and agents.
    pub listen: String,
}

/// What an agent does with its running tasks when asked to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ShutdownMode {
    /// Takes no new work and lets running tasks finish (up to `shutdown_timeout`, then
    /// cancels what is left).
    Drain,
    /// Stops running tasks at once (SIGTERM, then SIGKILL after their kill grace).
    Cancel,
}

impl ShutdownMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ShutdownMode::Drain => "drain",
            ShutdownMode::Cancel => "cancel",
        }
    }
}

/// TCP authentication (see `crate::auth`). Off while `keys` is empty: then the principal
/// refuses to bind TCP anywhere but loopback.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AuthConfig {
    /// The keys file listing the clients that may connect (`NAME ROLE PUBLIC-KEY` lines).
    pub keys: PathBuf,
    /// The principal's key pair; `<data_dir>/principal.key` unless set. Created on first use.
    pub principal_key: PathBuf,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PrincipalConfig {
    /// API endpoint: agents, CLI, TUI and event listeners.
    pub listen: String,
    /// Log ingest from agents.
    pub logs_listen: String,
    /// Live log stream for subscribers.
    pub logs_publish: String,
    /// The local control socket (a unix socket, mode 0660, group `cdktr` when that group
    /// exists): being able to open it is the operator credential, and local agents register
    /// through it. `<data_dir>/control.sock` unless set; its live log stream is the same path
    /// with `.logs` appended. The CLI, TUI and agents use it when it exists and no principal
    /// endpoint was configured for them.
    pub control_socket: PathBuf,
    /// The group given the control socket (mode 0660). Without that group, or the right to
    /// give the socket to it, the socket is 0600: the principal's user only.
    pub control_group: String,
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
    /// Most runs waiting in the queue; beyond it triggers get `queue_full` and schedule slots
    /// are recorded `missed`, so a flood of triggers can never exhaust memory.
    pub max_queued_runs: usize,
    /// Most TCP connections open at once (API and live stream together); newer ones are
    /// closed at once. Keep it well under the process's file descriptor limit.
    pub max_connections: usize,
    /// A TCP connection that has not completed its handshake (CURVE, or ZeroMQ's greeting)
    /// within this long is closed.
    #[serde(with = "value::duration_text")]
    pub handshake_timeout: Duration,
    /// Most memory DuckDB keeps for its caches and queries (MB); beyond it, it evicts cached
    /// blocks of the file and spills to disk, so the principal's memory stays flat however
    /// much history it holds.
    pub store_memory_mb: usize,
    /// `cdktr query`: most rows a result may have; a larger one is an error that says so.
    pub query_max_rows: usize,
    /// `cdktr query`: a query running longer is stopped, with an error that says so.
    #[serde(with = "value::duration_text")]
    pub query_timeout: Duration,
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
    /// The agent's credential file (`cdktr keys new NAME --role agent`), for a principal that
    /// requires authentication.
    pub credential: PathBuf,
    /// What this agent offers (`gpu`, `region=eu`): workflows that require labels run only on
    /// agents carrying all of them.
    pub labels: Vec<crate::model::Label>,
    /// `drain` or `cancel`: what a stop (SIGTERM, `systemctl stop`) does to running tasks.
    pub shutdown: ShutdownMode,
    /// The longest a stop waits for running tasks: drained tasks still running then are
    /// cancelled; cancelled ones still running are left to the kill that follows.
    #[serde(with = "value::duration_text")]
    pub shutdown_timeout: Duration,
    /// `HOST:PORT` the agent serves metrics on (loopback only); empty for none.
    pub metrics_listen: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClientConfig {
    pub principal: String,
    /// How long the CLI and TUI wait for a reply before reporting the principal unreachable.
    #[serde(with = "value::duration_text")]
    pub timeout: Duration,
    /// The credential file of the CLI, TUI and listeners, for a principal that requires
    /// authentication.
    pub credential: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            principal: PrincipalConfig {
                listen: "tcp://127.0.0.1:5561".into(),
                logs_listen: "tcp://127.0.0.1:5562".into(),
                logs_publish: "tcp://127.0.0.1:5563".into(),
                control_socket: PathBuf::new(),
                control_group: "cdktr".into(),
                workflow_dir: "workflows".into(),
                data_dir: ".cdktr".into(),
                db_path: PathBuf::new(),
                heartbeat_timeout: Duration::from_secs(30),
                max_message_bytes: 4 * 1024 * 1024,
                catchup_limit: 100,
                rescan_interval: Duration::from_secs(60),
                max_queued_runs: 100_000,
                max_connections: 512,
                handshake_timeout: Duration::from_secs(10),
                store_memory_mb: crate::store::DEFAULT_MEMORY_MB,
                query_max_rows: 10_000,
                query_timeout: Duration::from_secs(10),
            },
            agent: AgentConfig {
                principal: "tcp://127.0.0.1:5561".into(),
                name: String::new(),
                max_concurrent_workflows: 5,
                heartbeat_interval: Duration::from_secs(5),
                data_dir: ".cdktr/agent".into(),
                max_buffered_records: 100_000,
                credential: PathBuf::new(),
                labels: Vec::new(),
                shutdown: ShutdownMode::Cancel,
                shutdown_timeout: Duration::from_secs(30),
                metrics_listen: String::new(),
            },
            client: ClientConfig {
                principal: "tcp://127.0.0.1:5561".into(),
                timeout: Duration::from_secs(5),
                credential: PathBuf::new(),
            },
            auth: AuthConfig {
                keys: PathBuf::new(),
                principal_key: PathBuf::new(),
            },
            log: LogConfig {
                level: "info".into(),
            },
            metrics: MetricsConfig {
                listen: String::new(),
            },
            retention: RetentionConfig {
                max_age: None,
                max_runs_per_workflow: 0,
                max_log_bytes: None,
                interval: Duration::from_secs(3600),
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

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
