//! Tasks: ids, dependencies (unknown, cyclic), execution order and each task's config.

use std::collections::HashMap;

use serde_saphyr::Spanned;

use super::validate::check_env;
use super::{RawConfig, RawTask, Validator};
use crate::model::{Task, TaskConfig, TaskId};
use crate::workflow::dag::execution_order;
use crate::workflow::diagnostic::suggest;

impl Validator<'_> {
    /// Validates tasks and returns them in execution order, or None if any is invalid.
    pub(super) fn tasks(
        &mut self,
        raw: Vec<(Spanned<String>, Spanned<RawTask>)>,
    ) -> Option<Vec<Task>> {
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
            let controls = self.task_controls(id, task);
            tasks.push(config.map(|config| Task {
                id: TaskId::new(id),
                name,
                description: task.description.clone(),
                depends: Vec::new(),
                config,
                retry: controls.retry,
                timeout: controls.timeout,
                kill_grace: controls.kill_grace,
                trigger_rule: controls.trigger_rule,
                env: controls.env,
                inherit_env: task.inherit_env,
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

    pub(super) fn config(&mut self, task: &str, raw: &Spanned<RawConfig>) -> Option<TaskConfig> {
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
}
