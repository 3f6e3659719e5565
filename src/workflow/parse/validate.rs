//! Semantic checks of a well-shaped file: names, policies, params and placeholders, the
//! schedule; each problem is reported at its line and column.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::DateTime;
use chrono_tz::Tz;
use serde_saphyr::Spanned;

use super::{Parsed, RawParam, RawWorkflow, Validator};
use crate::model::{
    placeholders, whole_match, Catchup, Overlap, Param, Schedule, Task, TaskConfig, Workflow,
    WorkflowId,
};
use crate::workflow::diagnostic::{suggest, Diagnostic};
use crate::workflow::shell_words::unsafe_placeholders;

impl<'a> Validator<'a> {
    pub(super) fn new(file: &'a Path) -> Self {
        Self {
            file,
            diagnostics: Vec::new(),
        }
    }

    pub(super) fn error_at<T>(
        &mut self,
        at: &Spanned<T>,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        let (line, col) = line_col(at);
        let at = self.diagnostics.len();
        self.diagnostics
            .push(Diagnostic::error(self.file, message).at(line, col));
        &mut self.diagnostics[at]
    }

    pub(super) fn warn_at<T>(&mut self, at: &Spanned<T>, message: impl Into<String>) {
        let (line, col) = line_col(at);
        self.diagnostics
            .push(Diagnostic::warning(self.file, message).at(line, col));
    }

    pub(super) fn build(mut self, id: WorkflowId, raw: RawWorkflow) -> Parsed {
        let controls = self.workflow_controls(&raw);
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
            self.check_placeholders(tasks, &controls.env, &params);
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
                timeout: controls.timeout,
                kill_grace: controls.kill_grace,
                env: controls.env,
                inherit_env: raw.inherit_env,
                agent: controls.agent,
                max_active_runs: controls.max_active_runs,
            }),
            _ => None,
        };
        Parsed {
            workflow,
            diagnostics: self.diagnostics,
        }
    }

    /// A keyword field (`overlap`, `catchup`): None when absent or invalid (reported).
    pub(super) fn choice<T>(
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

    pub(super) fn params(
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
                    ..Param::default()
                },
                RawParam::Spec(spec) => Param {
                    default: spec.default.clone(),
                    description: spec.description.clone(),
                    pattern: spec.pattern.clone(),
                    choices: spec.choices.clone(),
                },
            };
            if let Some(Err(e)) = param.pattern.as_deref().map(whole_match) {
                self.error_at(
                    &raw,
                    format!("parameter `{name}`: `pattern` is not a regular expression: {e}"),
                );
            } else if let Some(Err(e)) = param.default.as_deref().map(|d| param.check(d)) {
                self.error_at(&raw, format!("parameter `{name}`: the default {e}"));
            }
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
    pub(super) fn check_placeholders(
        &mut self,
        tasks: &[Task],
        workflow_env: &BTreeMap<String, String>,
        params: &BTreeMap<String, Param>,
    ) {
        for name in workflow_env.values().flat_map(|v| placeholders(v)) {
            if !params.contains_key(&name) {
                self.diagnostics.push(Diagnostic::error(
                    self.file,
                    format!("`env`: `{{{{ params.{name} }}}}` names an undeclared parameter"),
                ));
            }
        }
        for task in tasks {
            if let TaskConfig::Shell { script, .. } = &task.config {
                for bad in unsafe_placeholders(script) {
                    let env = format!("CDKTR_PARAM_{}", bad.name.to_uppercase());
                    self.diagnostics.push(
                        Diagnostic::error(
                            self.file,
                            format!(
                                "`{{{{ params.{} }}}}` stands inside {} in the script, where a value could run as code: write it bare (it is substituted as one quoted word), or use \"${env}\"",
                                bad.name, bad.context
                            ),
                        )
                        .task(task.id.as_str()),
                    );
                }
            }
            let texts = task.config.templated_texts();
            for text in texts
                .into_iter()
                .chain(task.env.values().map(String::as_str))
            {
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

    pub(super) fn schedule(&mut self, cron: &Spanned<String>, tz: Tz) -> Option<Schedule> {
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

    pub(super) fn error_count(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }
}

pub(super) fn line_col<T>(s: &Spanned<T>) -> (usize, usize) {
    (s.referenced.line() as usize, s.referenced.column() as usize)
}

pub(super) fn check_env(env: Option<&BTreeMap<String, String>>, problems: &mut Vec<String>) {
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
