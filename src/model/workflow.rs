//! A validated workflow: metadata, an optional schedule and a task DAG in execution order.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, FixedOffset, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::{Schedule, TaskId, WorkflowId};

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
    pub tasks: Vec<Task>,
}

impl Workflow {
    pub fn task(&self, id: &TaskId) -> Option<&Task> {
        self.tasks.iter().find(|t| &t.id == id)
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
