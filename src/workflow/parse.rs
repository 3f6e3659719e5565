//! One workflow file's text to a validated [`Workflow`], or the list of what is wrong with it.
//!
//! The YAML is read into `Raw*` structs that keep source locations ([`Spanned`]), so that
//! semantic problems (unknown dependency, cycle, bad cron) point at a line and column like
//! syntax errors do. Shape problems (unknown key, missing field, wrong type) come from serde
//! with the parser's location; unknown keys get a "did you mean" (`diagnostic::suggest`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer, EnumAccess, MapAccess, VariantAccess, Visitor};
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::diagnostic::Diagnostic;
use crate::model::{Workflow, WorkflowId};

mod controls;
mod shape;
mod tasks;
mod validate;

use shape::shape_error;

/// The task type tags a `config` may carry.
pub const TASK_TYPES: &[&str] = &["Subprocess", "UvPython", "Shell"];

/// Marks our own "unknown task type" error so [`shape_error`] can locate the tag in the source.
const UNKNOWN_TYPE_MARKER: &str = "cdktr:unknown-task-type:";

/// The outcome for one file: the workflow if it is valid, and every problem found (warnings may
/// accompany a valid workflow).
#[derive(Debug)]
pub struct Parsed {
    pub workflow: Option<Workflow>,
    pub diagnostics: Vec<Diagnostic>,
}

pub fn parse_workflow(id: WorkflowId, file: &Path, text: &str) -> Parsed {
    if text.trim().is_empty() {
        return Parsed {
            workflow: None,
            diagnostics: vec![Diagnostic::error(
                file,
                "file is empty: a workflow needs at least `name` and `tasks`",
            )
            .at(1, 1)],
        };
    }
    let options = serde_saphyr::options! { with_snippet: false };
    match serde_saphyr::from_str_with_options::<RawWorkflow>(text, options) {
        Ok(raw) => Validator::new(file).build(id, raw),
        Err(e) => Parsed {
            workflow: None,
            diagnostics: vec![shape_error(file, text, &e)],
        },
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkflow {
    name: Option<Spanned<String>>,
    description: Option<String>,
    cron: Option<Spanned<String>>,
    timezone: Option<Spanned<String>>,
    start_time: Option<Spanned<String>>,
    overlap: Option<Spanned<String>>,
    catchup: Option<Spanned<String>>,
    params: Option<Spanned<BTreeMap<String, RawParam>>>,
    tasks: Option<Spanned<RawTasks>>,
    timeout: Option<Spanned<String>>,
    kill_grace: Option<Spanned<String>>,
    env: Option<Spanned<BTreeMap<String, String>>>,
    inherit_env: Option<bool>,
    agent: Option<Spanned<RawPlacement>>,
    max_active_runs: Option<Spanned<i64>>,
}

/// `agent: {labels: [gpu, region=eu], prefer: NAME}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlacement {
    labels: Option<Vec<Spanned<String>>>,
    prefer: Option<Spanned<String>>,
}

/// `name: value` (a default) or `name: {default: ..., description: ...}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawParam {
    Value(String),
    Spec(RawParamSpec),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParamSpec {
    default: Option<String>,
    description: Option<String>,
    pattern: Option<String>,
    #[serde(default)]
    choices: Vec<String>,
}

/// Tasks in file order (a plain map would sort them).
struct RawTasks(Vec<(Spanned<String>, Spanned<RawTask>)>);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTask {
    name: Option<String>,
    description: Option<String>,
    depends: Option<Vec<Spanned<String>>>,
    config: Option<Spanned<RawConfig>>,
    retries: Option<Spanned<i64>>,
    retry_delay: Option<Spanned<String>>,
    retry_backoff: Option<Spanned<String>>,
    retry_max_delay: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    kill_grace: Option<Spanned<String>>,
    trigger_rule: Option<Spanned<String>>,
    env: Option<Spanned<BTreeMap<String, String>>>,
    inherit_env: Option<bool>,
}

enum RawConfig {
    Subprocess(RawSubprocess),
    UvPython(RawUvPython),
    Shell(RawShell),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubprocess {
    cmd: String,
    args: Option<Vec<String>>,
    env: Option<BTreeMap<String, String>>,
    cwd: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUvPython {
    script_path: PathBuf,
    packages: Option<Vec<String>>,
    is_uv_project: Option<bool>,
    working_directory: Option<PathBuf>,
    uv_path: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShell {
    script: String,
    shell: Option<String>,
    env: Option<BTreeMap<String, String>>,
    cwd: Option<PathBuf>,
}

impl<'de> Deserialize<'de> for RawTasks {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TasksVisitor;
        impl<'de> Visitor<'de> for TasksVisitor {
            type Value = RawTasks;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping of task ids to tasks")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawTasks, A::Error> {
                let mut tasks = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    tasks.push(entry);
                }
                Ok(RawTasks(tasks))
            }
        }
        d.deserialize_map(TasksVisitor)
    }
}

impl<'de> Deserialize<'de> for RawConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ConfigVisitor;
        impl<'de> Visitor<'de> for ConfigVisitor {
            type Value = RawConfig;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a task config tagged !Subprocess, !UvPython or !Shell")
            }
            fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<RawConfig, A::Error> {
                let (kind, variant): (String, _) = data.variant()?;
                match kind.as_str() {
                    "Subprocess" => variant.newtype_variant().map(RawConfig::Subprocess),
                    "UvPython" => variant.newtype_variant().map(RawConfig::UvPython),
                    "Shell" => variant.newtype_variant().map(RawConfig::Shell),
                    other => Err(de::Error::custom(format!("{UNKNOWN_TYPE_MARKER}{other}"))),
                }
            }
        }
        d.deserialize_enum("TaskConfig", TASK_TYPES, ConfigVisitor)
    }
}

/// Collects every semantic problem in a well-shaped file.
struct Validator<'a> {
    file: &'a Path,
    diagnostics: Vec<Diagnostic>,
}

#[cfg(test)]
mod tests;
