//! A validated workflow: metadata, an optional schedule and a task DAG in execution order.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, FixedOffset, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::params::{shell_quote, substitute, substitute_with};
use super::{Param, Placement, Retry, Schedule, Span, TaskId, TriggerRule, WorkflowId};

/// A workflow that passed validation. `tasks` is in a valid execution order: every task comes
/// after all of its dependencies (ties keep the order of the file).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Workflow {
    pub id: WorkflowId,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The file it was loaded from.
    pub file: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    /// No scheduled fire happens before this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<DateTime<FixedOffset>>,
    /// What a schedule fire does while an earlier run is active.
    #[serde(default)]
    pub overlap: Overlap,
    /// What happens to slots missed while the principal was down.
    #[serde(default)]
    pub catchup: Catchup,
    /// Declared run parameters, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, Param>,
    pub tasks: Vec<Task>,
    /// A run still going after this ends FAILED (reason `timeout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Span>,
    /// Between SIGTERM and SIGKILL when a task is stopped (a task's own `kill_grace` wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_grace: Option<Span>,
    /// Variables of every task (a task's `env`, then its config's, win).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// false: tasks start with a minimal environment, not the agent's (a task may override).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inherit_env: Option<bool>,
    /// Which agents may take its runs.
    #[serde(default, skip_serializing_if = "Placement::is_any")]
    pub agent: Placement,
    /// At most this many runs of the workflow run at once; the rest wait queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_active_runs: Option<u32>,
}

/// SIGTERM to SIGKILL when nothing sets `kill_grace`.
pub const DEFAULT_KILL_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// A fire that comes while an earlier run of the same workflow is queued or running:
/// `skip` it (the default: no pile-ups), `queue` it to start when the earlier run ends, or
/// `allow` it to run alongside.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Overlap {
    Allow,
    #[default]
    Skip,
    Queue,
}

/// Slots missed while the principal was down: run `none` of them, only the `latest` (the
/// default: the work is done once, not replayed), or `all` of them (up to
/// `principal.catchup_limit`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Catchup {
    None,
    #[default]
    Latest,
    All,
}

impl Overlap {
    /// Whether a scheduled run waits while another run of its workflow is running: always
    /// under `queue`; under `skip` only a caught-up run (`catchup` asked for each missed slot
    /// to run, so they run one after another). The one place this is decided.
    pub fn serialises(self, caught_up: bool) -> bool {
        self == Overlap::Queue || (caught_up && self == Overlap::Skip)
    }

    pub const NAMES: &'static str = "allow, skip or queue";
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "allow" => Some(Overlap::Allow),
            "skip" => Some(Overlap::Skip),
            "queue" => Some(Overlap::Queue),
            _ => None,
        }
    }
}

impl Catchup {
    pub const NAMES: &'static str = "none, latest or all";
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Catchup::None),
            "latest" => Some(Catchup::Latest),
            "all" => Some(Catchup::All),
            _ => None,
        }
    }
}

impl Workflow {
    pub fn task(&self, id: &TaskId) -> Option<&Task> {
        self.tasks.iter().find(|t| &t.id == id)
    }

    /// How long `task` gets between SIGTERM and SIGKILL.
    pub fn kill_grace(&self, task: &Task) -> std::time::Duration {
        task.kill_grace
            .or(self.kill_grace)
            .map_or(DEFAULT_KILL_GRACE, |s| s.0)
    }

    /// Whether `task` starts with the agent's environment.
    pub fn inherits_env(&self, task: &Task) -> bool {
        task.inherit_env.or(self.inherit_env).unwrap_or(true)
    }

    /// The variables `task` adds: the workflow's, then the task's own (its config's `env`
    /// comes on top of these when it starts).
    pub fn task_env(&self, task: &Task) -> BTreeMap<String, String> {
        let mut env = self.env.clone();
        env.extend(task.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env
    }

    /// The next `count` scheduled fires after `now`, none before `start_time`.
    pub fn next_fires(&self, now: DateTime<Utc>, count: usize) -> Vec<DateTime<Tz>> {
        let Some(schedule) = &self.schedule else {
            return Vec::new();
        };
        let from = match self.start_time {
            Some(start) if start.with_timezone(&Utc) > now => {
                start.with_timezone(&Utc) - chrono::Duration::nanoseconds(1)
            }
            _ => now,
        };
        schedule.upcoming(from, count)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: TaskId,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub depends: Vec<TaskId>,
    pub config: TaskConfig,
    /// Tries after a failed one, and the delays between them.
    #[serde(default, skip_serializing_if = "Retry::is_none")]
    pub retry: Retry,
    /// A try still running after this is stopped and FAILED (reason `timeout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Span>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_grace: Option<Span>,
    /// When the task runs, given how its dependencies ended.
    #[serde(default, skip_serializing_if = "is_default_rule")]
    pub trigger_rule: TriggerRule,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inherit_env: Option<bool>,
}

fn is_default_rule(rule: &TriggerRule) -> bool {
    *rule == TriggerRule::AllSuccess
}

/// What a task runs. The variant names are the YAML tags (`!Subprocess`, `!UvPython`, `!Shell`).
///
/// Relative paths (`cwd`, `working_directory`, `script_path`) are resolved by the agent against
/// its own working directory, as in the older cdktr: a workflow may run on any host.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum TaskConfig {
    /// A program and its arguments, run directly (no shell).
    Subprocess {
        cmd: String,
        #[serde(default)]
        args: Vec<String>,
        #[serde(default)]
        env: BTreeMap<String, String>,
        #[serde(default)]
        cwd: Option<PathBuf>,
    },
    /// A Python script run by `uv`.
    UvPython {
        script_path: PathBuf,
        #[serde(default)]
        packages: Vec<String>,
        #[serde(default)]
        is_uv_project: bool,
        #[serde(default)]
        working_directory: Option<PathBuf>,
        #[serde(default)]
        uv_path: Option<String>,
    },
    /// A script run by `/bin/sh -c`, or by the given `shell` with `-c`.
    Shell {
        script: String,
        #[serde(default)]
        shell: Option<String>,
        #[serde(default)]
        env: BTreeMap<String, String>,
        #[serde(default)]
        cwd: Option<PathBuf>,
    },
}

impl TaskConfig {
    /// Every text of the config that may hold `{{ params.x }}`: args, script and env values.
    pub fn templated_texts(&self) -> Vec<&str> {
        match self {
            TaskConfig::Subprocess { args, env, .. } => args
                .iter()
                .chain(env.values())
                .map(String::as_str)
                .collect(),
            TaskConfig::Shell { script, env, .. } => std::iter::once(script)
                .chain(env.values())
                .map(String::as_str)
                .collect(),
            TaskConfig::UvPython { .. } => Vec::new(),
        }
    }

    /// The config with `{{ params.x }}` replaced in args, script and env values. In a `!Shell`
    /// script each value is shell-quoted, so the shell sees exactly its bytes as one word and
    /// never evaluates it; args and env values are not parsed by a shell and get the bytes
    /// as they are.
    pub fn with_params(&self, params: &BTreeMap<String, String>) -> TaskConfig {
        let sub = |t: &String| substitute(t, params);
        let sub_env =
            |env: &BTreeMap<String, String>| env.iter().map(|(k, v)| (k.clone(), sub(v))).collect();
        match self {
            TaskConfig::Subprocess {
                cmd,
                args,
                env,
                cwd,
            } => TaskConfig::Subprocess {
                cmd: cmd.clone(),
                args: args.iter().map(sub).collect(),
                env: sub_env(env),
                cwd: cwd.clone(),
            },
            TaskConfig::Shell {
                script,
                shell,
                env,
                cwd,
            } => TaskConfig::Shell {
                script: substitute_with(script, params, shell_quote),
                shell: shell.clone(),
                env: sub_env(env),
                cwd: cwd.clone(),
            },
            other => other.clone(),
        }
    }

    /// The YAML tag of this task type, without the `!`.
    pub fn kind(&self) -> &'static str {
        match self {
            TaskConfig::Subprocess { .. } => "Subprocess",
            TaskConfig::UvPython { .. } => "UvPython",
            TaskConfig::Shell { .. } => "Shell",
        }
    }

    /// A one-line human summary of what runs, for listings.
    pub fn summary(&self) -> String {
        match self {
            TaskConfig::Subprocess { cmd, args, .. } => std::iter::once(cmd.as_str())
                .chain(args.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join(" "),
            TaskConfig::UvPython { script_path, .. } => format!("uv run {}", script_path.display()),
            TaskConfig::Shell { script, .. } => {
                script.lines().next().unwrap_or_default().to_owned()
            }
        }
    }
}
