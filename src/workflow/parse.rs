//! One workflow file's text to a validated [`Workflow`], or the list of what is wrong with it.
//!
//! The YAML is read into `Raw*` structs that keep source locations ([`Spanned`]), so that
//! semantic problems (unknown dependency, cycle, bad cron) point at a line and column like
//! syntax errors do. Shape problems (unknown key, missing field, wrong type) come from serde
//! with the parser's location; unknown keys get a "did you mean" from [`suggest`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::DateTime;
use chrono_tz::Tz;
use serde::de::{self, Deserializer, EnumAccess, MapAccess, VariantAccess, Visitor};
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::dag::execution_order;
use super::diagnostic::{suggest, Diagnostic};
use crate::model::{
    placeholders, Catchup, Overlap, Param, Schedule, Task, TaskConfig, TaskId, Workflow, WorkflowId,
};

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

/// Turns a serde/YAML error into a diagnostic with a clean message and a hint where we have one.
fn shape_error(file: &Path, text: &str, e: &serde_saphyr::Error) -> Diagnostic {
    let location = e
        .location()
        .map(|l| (l.line() as usize, l.column() as usize));
    let mut message = e.without_snippet().to_string();
    if let Some((line, col)) = location {
        let suffix = format!(" at line {line}, column {col}");
        if let Some(stripped) = message.strip_suffix(&suffix) {
            message = stripped.to_owned();
        }
    }
    if let Some(found) = message
        .find(UNKNOWN_TYPE_MARKER)
        .map(|at| message[at + UNKNOWN_TYPE_MARKER.len()..].to_owned())
    {
        message = unknown_type_message(text, location, &found);
    } else if let Some(hint) = unknown_field_hint(&message) {
        message.push_str(&hint);
    } else if message.starts_with("unexpected end of input") {
        message = "unexpected end of file (unclosed bracket, brace or quote?)".to_owned();
    }
    let d = Diagnostic::error(file, message);
    match location {
        Some((line, col)) => d.at(line, col),
        None => d,
    }
}

/// An unknown tag is not seen by serde (it reports the first key of the mapping instead), so
/// look in the source just before that key for the tag the user wrote.
fn unknown_type_message(text: &str, location: Option<(usize, usize)>, found: &str) -> String {
    let expected = "expected !Subprocess, !UvPython or !Shell";
    let tag = location.and_then(|(line, col)| tag_before(text, line, col));
    match tag {
        Some(tag) => match suggest(&tag, TASK_TYPES.iter().copied()) {
            Some(s) => format!("unknown task type `!{tag}`: did you mean `!{s}`?"),
            None => format!("unknown task type `!{tag}`: {expected}"),
        },
        None => format!(
            "task `config` has no task type tag (found key `{found}`): start it with a tag, \
             {expected}"
        ),
    }
}

/// The `!Tag` token closest before the 1-based `line`/`col` position, if nothing but whitespace,
/// a `config:` key or comments lie between.
fn tag_before(text: &str, line: usize, col: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut row = line.checked_sub(1)?;
    let mut upto = col.saturating_sub(1);
    loop {
        let content = lines.get(row)?;
        let head: String = content.chars().take(upto).collect();
        let head = head.split(" #").next().unwrap_or_default();
        if let Some(at) = head.rfind('!') {
            let tag: String = head[at + 1..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            return (!tag.is_empty()).then_some(tag);
        }
        if head.trim_end().ends_with(':') || row == 0 {
            return None;
        }
        row -= 1;
        upto = usize::MAX;
    }
}

/// `unknown field `x`, expected one of a, b` gets `: did you mean `a`?` when x is close to one.
fn unknown_field_hint(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, rest) = rest.split_once('`')?;
    let expected = rest
        .trim_start_matches(',')
        .trim()
        .strip_prefix("expected one of ")
        .or_else(|| {
            rest.trim_start_matches(',')
                .trim()
                .strip_prefix("expected ")
        })?;
    let candidates: Vec<&str> = expected
        .split(',')
        .map(|c| c.trim().trim_matches('`'))
        .collect();
    suggest(field, candidates).map(|s| format!(" (did you mean `{s}`?)"))
}

fn line_col<T>(s: &Spanned<T>) -> (usize, usize) {
    (s.referenced.line() as usize, s.referenced.column() as usize)
}

/// Collects every semantic problem in a well-shaped file.
struct Validator<'a> {
    file: &'a Path,
    diagnostics: Vec<Diagnostic>,
}

impl<'a> Validator<'a> {
    fn new(file: &'a Path) -> Self {
        Self {
            file,
            diagnostics: Vec::new(),
        }
    }

    fn error_at<T>(&mut self, at: &Spanned<T>, message: impl Into<String>) -> &mut Diagnostic {
        let (line, col) = line_col(at);
        let at = self.diagnostics.len();
        self.diagnostics
            .push(Diagnostic::error(self.file, message).at(line, col));
        &mut self.diagnostics[at]
    }

    fn warn_at<T>(&mut self, at: &Spanned<T>, message: impl Into<String>) {
        let (line, col) = line_col(at);
        self.diagnostics
            .push(Diagnostic::warning(self.file, message).at(line, col));
    }

    fn build(mut self, id: WorkflowId, raw: RawWorkflow) -> Parsed {
        let name = match raw.name {
            Some(n) if !n.value.trim().is_empty() => Some(n.value),
            Some(n) => {
                self.error_at(&n, "`name` must not be empty");
                None
            }
            None => {
                self.diagnostics.push(
                    Diagnostic::error(
                        self.file,
                        "missing field `name` (the workflow's display name)",
                    )
                    .at(1, 1),
                );
                None
            }
        };
        let timezone = match &raw.timezone {
            None => Some(Tz::UTC),
            Some(tz) => match Schedule::parse_timezone(tz.value.trim()) {
                Ok(tz) => Some(tz),
                Err(e) => {
                    self.error_at(tz, e.to_string());
                    None
                }
            },
        };
        let schedule = match (&raw.cron, timezone) {
            (Some(cron), Some(tz)) => self.schedule(cron, tz),
            _ => None,
        };
        let start_time = raw.start_time.as_ref().and_then(|st| {
            DateTime::parse_from_rfc3339(st.value.trim())
                .map_err(|e| {
                    self.error_at(
                        st,
                        format!(
                            "`start_time` `{}` is not an RFC 3339 timestamp ({e}); \
                             write it like 2025-01-20T12:00:00+00:00",
                            st.value
                        ),
                    );
                })
                .ok()
        });
        let overlap = self.choice(
            raw.overlap.as_ref(),
            "overlap",
            Overlap::parse,
            Overlap::NAMES,
        );
        let catchup = self.choice(
            raw.catchup.as_ref(),
            "catchup",
            Catchup::parse,
            Catchup::NAMES,
        );
        let params = self.params(raw.params, raw.cron.is_some());
        let tasks = match raw.tasks {
            None => {
                self.diagnostics.push(
                    Diagnostic::error(
                        self.file,
                        "missing field `tasks`: a workflow needs at least one task",
                    )
                    .at(1, 1),
                );
                None
            }
            Some(tasks) if tasks.value.0.is_empty() => {
                self.error_at(
                    &tasks,
                    "`tasks` is empty: a workflow needs at least one task",
                );
                None
            }
            Some(tasks) => self.tasks(tasks.value.0),
        };
        if let Some(tasks) = &tasks {
            self.check_placeholders(tasks, &params);
        }
        let failed = self.diagnostics.iter().any(Diagnostic::is_error);
        let workflow = match (name, tasks, timezone) {
            (Some(name), Some(tasks), Some(_)) if !failed => Some(Workflow {
                id,
                name,
                description: raw.description,
                file: self.file.to_path_buf(),
                schedule,
                start_time,
                overlap: overlap.unwrap_or_default(),
                catchup: catchup.unwrap_or_default(),
                params,
                tasks,
            }),
            _ => None,
        };
        Parsed {
            workflow,
            diagnostics: self.diagnostics,
        }
    }

    /// A keyword field (`overlap`, `catchup`): None when absent or invalid (reported).
    fn choice<T>(
        &mut self,
        raw: Option<&Spanned<String>>,
        field: &str,
        parse: fn(&str) -> Option<T>,
        names: &str,
    ) -> Option<T> {
        let raw = raw?;
        let parsed = parse(raw.value.trim());
        if parsed.is_none() {
            self.error_at(
                raw,
                format!("`{field}` must be {names}, not `{}`", raw.value),
            );
        }
        parsed
    }

    fn params(
        &mut self,
        raw: Option<Spanned<BTreeMap<String, RawParam>>>,
        scheduled: bool,
    ) -> BTreeMap<String, Param> {
        let Some(raw) = raw else {
            return BTreeMap::new();
        };
        let mut params = BTreeMap::new();
        for (name, value) in &raw.value {
            let valid_name = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid_name {
                self.error_at(&raw, format!("parameter name `{name}` must be letters, digits and `_`, not starting with a digit"));
            }
            let param = match value {
                RawParam::Value(v) => Param {
                    default: Some(v.clone()),
                    description: None,
                },
                RawParam::Spec(spec) => Param {
                    default: spec.default.clone(),
                    description: spec.description.clone(),
                },
            };
            if scheduled && param.default.is_none() {
                self.error_at(
                    &raw,
                    format!(
                        "parameter `{name}` has no default, but scheduled runs need a value for it"
                    ),
                );
            }
            params.insert(name.clone(), param);
        }
        params
    }

    /// Every `{{ params.x }}` in a task must name a declared parameter.
    fn check_placeholders(&mut self, tasks: &[Task], params: &BTreeMap<String, Param>) {
        for task in tasks {
            for text in task.config.templated_texts() {
                for name in placeholders(text) {
                    if !params.contains_key(&name) {
                        let hint = suggest(&name, params.keys().map(String::as_str))
                            .map(|s| format!(" (did you mean `{s}`?)"))
                            .unwrap_or_default();
                        self.diagnostics.push(
                            Diagnostic::error(
                                self.file,
                                format!(
                                    "`{{{{ params.{name} }}}}` names an undeclared parameter{hint}"
                                ),
                            )
                            .task(task.id.as_str()),
                        );
                    }
                }
            }
        }
    }

    fn schedule(&mut self, cron: &Spanned<String>, tz: Tz) -> Option<Schedule> {
        match Schedule::new(cron.value.trim(), tz) {
            Ok(s) => {
                if let Some(dow) = numeric_weekday_field(s.expr()) {
                    self.warn_at(
                        cron,
                        format!(
                            "day of week `{dow}` is numeric in a seconds-first cron: cdktr counts \
                             0 and 7 as Sunday (crontab), the older cdktr counted 1 as Sunday, so \
                             this now fires on different days than it used to; use names \
                             (Mon-Fri) to be explicit"
                        ),
                    );
                }
                Some(s)
            }
            Err(e) => {
                self.error_at(cron, e.to_string());
                None
            }
        }
    }

    /// Validates tasks and returns them in execution order, or None if any is invalid.
    fn tasks(&mut self, raw: Vec<(Spanned<String>, Spanned<RawTask>)>) -> Option<Vec<Task>> {
        let errors_before = self.error_count();
        let index: HashMap<String, usize> = raw
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (k.value.clone(), i))
            .collect();
        let ids: Vec<&str> = raw.iter().map(|(k, _)| k.value.as_str()).collect();
        let mut deps: Vec<Vec<usize>> = Vec::with_capacity(raw.len());
        let mut tasks = Vec::with_capacity(raw.len());
        for (key, spanned) in &raw {
            let id = key.value.as_str();
            if id.trim().is_empty() || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
                self.error_at(
                    key,
                    format!("task id `{id}` must be non-empty, without spaces"),
                );
            }
            let task = &spanned.value;
            let mut my_deps = Vec::new();
            for dep in task.depends.iter().flatten() {
                match index.get(dep.value.as_str()) {
                    Some(&d) if my_deps.contains(&d) => {
                        self.warn_at(dep, format!("`{}` is listed twice in `depends`", dep.value));
                    }
                    Some(&d) => my_deps.push(d),
                    None => {
                        let hint = suggest(&dep.value, ids.iter().copied())
                            .map(|s| format!(" (did you mean `{s}`?)"))
                            .unwrap_or_default();
                        self.error_at(
                            dep,
                            format!(
                                "depends on `{}`, which is not a task of this workflow{hint}",
                                dep.value
                            ),
                        )
                        .task = Some(id.to_owned());
                    }
                }
            }
            deps.push(my_deps);
            let name = match &task.name {
                Some(n) if !n.trim().is_empty() => n.clone(),
                _ => {
                    self.error_at(spanned, "missing field `name` (the task's display name)")
                        .task = Some(id.to_owned());
                    String::new()
                }
            };
            let config = match &task.config {
                Some(c) => self.config(id, c),
                None => {
                    self.error_at(
                        spanned,
                        "missing field `config` (a !Subprocess, !UvPython or !Shell block)",
                    )
                    .task = Some(id.to_owned());
                    None
                }
            };
            tasks.push(config.map(|config| Task {
                id: TaskId::new(id),
                name,
                description: task.description.clone(),
                depends: Vec::new(),
                config,
            }));
        }
        let order = match execution_order(&deps) {
            Ok(order) => order,
            Err(cycle) => {
                let first = cycle.first().copied().unwrap_or_default();
                let path: Vec<&str> = cycle.iter().map(|&i| ids[i]).collect();
                let message = if cycle.len() == 2 {
                    format!("depends on itself: {}", path.join(" -> "))
                } else {
                    format!("dependency cycle: {}", path.join(" -> "))
                };
                self.error_at(&raw[first].0, message).task = Some(ids[first].to_owned());
                return None;
            }
        };
        if self.error_count() > errors_before {
            return None;
        }
        let mut by_index: Vec<Option<Task>> = tasks;
        let mut ordered = Vec::with_capacity(order.len());
        for i in order {
            let mut task = by_index[i].take()?;
            task.depends = deps[i].iter().map(|&d| TaskId::new(ids[d])).collect();
            ordered.push(task);
        }
        Some(ordered)
    }

    fn config(&mut self, task: &str, raw: &Spanned<RawConfig>) -> Option<TaskConfig> {
        let mut problems = Vec::new();
        let config = match &raw.value {
            RawConfig::Subprocess(s) => {
                if s.cmd.trim().is_empty() {
                    problems.push("`cmd` must not be empty".to_owned());
                }
                check_env(s.env.as_ref(), &mut problems);
                TaskConfig::Subprocess {
                    cmd: s.cmd.clone(),
                    args: s.args.clone().unwrap_or_default(),
                    env: s.env.clone().unwrap_or_default(),
                    cwd: s.cwd.clone(),
                }
            }
            RawConfig::UvPython(u) => {
                if u.script_path.as_os_str().is_empty() {
                    problems.push("`script_path` must not be empty".to_owned());
                }
                TaskConfig::UvPython {
                    script_path: u.script_path.clone(),
                    packages: u.packages.clone().unwrap_or_default(),
                    is_uv_project: u.is_uv_project.unwrap_or(false),
                    working_directory: u.working_directory.clone(),
                    uv_path: u.uv_path.clone(),
                }
            }
            RawConfig::Shell(s) => {
                if s.script.trim().is_empty() {
                    problems.push("`script` must not be empty".to_owned());
                }
                if s.shell.as_deref().is_some_and(|sh| sh.trim().is_empty()) {
                    problems.push("`shell` must not be empty when given".to_owned());
                }
                check_env(s.env.as_ref(), &mut problems);
                TaskConfig::Shell {
                    script: s.script.clone(),
                    shell: s.shell.clone(),
                    env: s.env.clone().unwrap_or_default(),
                    cwd: s.cwd.clone(),
                }
            }
        };
        for p in &problems {
            self.error_at(raw, p.clone()).task = Some(task.to_owned());
        }
        problems.is_empty().then_some(config)
    }

    fn error_count(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }
}

fn check_env(env: Option<&BTreeMap<String, String>>, problems: &mut Vec<String>) {
    for key in env.into_iter().flat_map(BTreeMap::keys) {
        if key.is_empty() || key.contains('=') || key.contains('\0') {
            problems.push(format!("`env` key `{key}` is not a valid variable name"));
        }
    }
}

/// The day-of-week field of a 6/7-field expression, if it uses numbers (whose meaning changed
/// from the older cdktr's 1 = Sunday).
fn numeric_weekday_field(expr: &str) -> Option<String> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    if fields.len() < 6 {
        return None;
    }
    let dow = fields[5];
    let days: String = dow
        .split(',')
        .map(|part| part.split(['#', '/']).next().unwrap_or_default())
        .collect();
    days.chars()
        .any(|c| c.is_ascii_digit())
        .then(|| dow.to_owned())
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
