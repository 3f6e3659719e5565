//! One test per validation rule of the workflow format: the format itself, tasks and
//! schedules here; shape errors and params in the submodules.

mod controls;
mod params;
mod shape;

use super::*;
use crate::model::{TaskConfig, TaskId};

pub(super) fn parse(text: &str) -> Parsed {
    parse_workflow(WorkflowId::new("t"), Path::new("t.yml"), text)
}

pub(super) fn errors(text: &str) -> Vec<String> {
    let parsed = parse(text);
    assert!(parsed.workflow.is_none(), "expected errors for:\n{text}");
    parsed
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.to_string())
        .collect()
}

pub(super) fn valid(text: &str) -> Workflow {
    let parsed = parse(text);
    match parsed.workflow {
        Some(w) => w,
        None => panic!("expected a valid workflow, got {:#?}", parsed.diagnostics),
    }
}

const LEGACY: &str = r#"
name: Daily report
description: Builds the report
cron: "0 30 9 * * Mon-Fri"
start_time: 2025-01-20T12:00:00+00:00
tasks:
  fetch:
    name: Fetch data
    description: pulls
    depends: []
    config:
      !Subprocess
      cmd: python
      args: [fetch.py, --day, today]
  model:
    name: Fit model
    depends: [fetch]
    config:
      !UvPython
      script_path: ./model.py
      packages: ["pandas>=2"]
      is_uv_project: false
      working_directory: ./py
      uv_path: uv
"#;

#[test]
fn accepts_the_older_cdktr_format_unchanged() {
    let w = valid(LEGACY);
    assert_eq!(w.name, "Daily report");
    assert_eq!(w.description.as_deref(), Some("Builds the report"));
    assert_eq!(
        w.schedule.as_ref().map(|s| s.expr()),
        Some("0 30 9 * * Mon-Fri")
    );
    assert_eq!(
        w.start_time.map(|t| t.to_rfc3339()),
        Some("2025-01-20T12:00:00+00:00".to_owned())
    );
    let ids: Vec<&str> = w.tasks.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["fetch", "model"]);
    assert_eq!(w.tasks[1].depends, vec![TaskId::new("fetch")]);
    assert_eq!(
        w.tasks[0].config,
        TaskConfig::Subprocess {
            cmd: "python".into(),
            args: vec!["fetch.py".into(), "--day".into(), "today".into()],
            env: BTreeMap::new(),
            cwd: None,
        }
    );
    assert!(matches!(
        &w.tasks[1].config,
        TaskConfig::UvPython { packages, is_uv_project: false, uv_path: Some(uv), .. }
            if packages == &["pandas>=2".to_owned()] && uv == "uv"
    ));
}

#[test]
fn accepts_new_fields_shell_env_cwd_timezone_and_no_args() {
    let w = valid(
        r#"
name: New style
cron: "0 9 * * *"
timezone: Europe/London
tasks:
  a:
    name: A
    config: !Subprocess
      cmd: /bin/true
      env: {FOO: bar}
      cwd: /tmp
  b:
    name: B
    depends: [a]
    config: !Shell
      script: |
        echo one
        echo two
      shell: /bin/bash
      env: {X: "1"}
      cwd: /tmp
"#,
    );
    assert_eq!(
        w.schedule.as_ref().map(|s| s.timezone().name()),
        Some("Europe/London")
    );
    match &w.tasks[0].config {
        TaskConfig::Subprocess { args, env, cwd, .. } => {
            assert!(args.is_empty());
            assert_eq!(env.get("FOO").map(String::as_str), Some("bar"));
            assert_eq!(cwd.as_deref(), Some(Path::new("/tmp")));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        matches!(&w.tasks[1].config, TaskConfig::Shell { shell: Some(s), .. } if s == "/bin/bash")
    );
}

#[test]
fn tasks_come_out_in_execution_order() {
    let w = valid(
        r#"
name: Order
tasks:
  d: {name: D, depends: [b, c], config: !Shell {script: "true"}}
  b: {name: B, depends: [a], config: !Shell {script: "true"}}
  c: {name: C, depends: [a], config: !Shell {script: "true"}}
  a: {name: A, config: !Shell {script: "true"}}
"#,
    );
    let ids: Vec<&str> = w.tasks.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c", "d"]);
}

#[test]
fn missing_dependency_names_task_line_and_suggestion() {
    let errs = errors(
        r#"name: x
tasks:
  fetch:
    name: Fetch
    config: !Shell {script: "true"}
  load:
    name: Load
    depends: [fetc]
    config: !Shell {script: "true"}
"#,
    );
    assert_eq!(
        errs,
        ["t.yml:8:15: error: task `load`: depends on `fetc`, which is not a task of this workflow \
          (did you mean `fetch`?)"]
    );
}

#[test]
fn cycle_is_named() {
    let errs = errors(
        r#"name: x
tasks:
  a: {name: A, depends: [c], config: !Shell {script: "true"}}
  b: {name: B, depends: [a], config: !Shell {script: "true"}}
  c: {name: C, depends: [b], config: !Shell {script: "true"}}
"#,
    );
    assert_eq!(
        errs,
        ["t.yml:3:3: error: task `a`: dependency cycle: a -> c -> b -> a"]
    );
}

#[test]
fn self_dependency_is_reported() {
    let errs = errors(
        "name: x\ntasks:\n  a: {name: A, depends: [a], config: !Shell {script: \"true\"}}\n",
    );
    assert_eq!(
        errs,
        ["t.yml:3:3: error: task `a`: depends on itself: a -> a"]
    );
}

#[test]
fn bad_cron_and_bad_timezone_and_bad_start_time() {
    let errs = errors(
        r#"name: x
cron: "61 * * * *"
timezone: Mars/Olympus
start_time: yesterday
tasks:
  a: {name: A, config: !Shell {script: "true"}}
"#,
    );
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs[0].starts_with("t.yml:3:11: error: unknown time zone `Mars/Olympus`"),
        "{errs:?}"
    );
    assert!(
        errs[1].starts_with("t.yml:4:13: error: `start_time` `yesterday` is not an RFC 3339"),
        "{errs:?}"
    );
    let errs = errors(
        "name: x\ncron: \"* * *\"\ntasks:\n  a: {name: A, config: !Shell {script: \"true\"}}\n",
    );
    assert!(
        errs[0].starts_with("t.yml:2:7: error: invalid cron expression `* * *`: expected 5 fields"),
        "{errs:?}"
    );
    let errs = errors("name: x\ncron: \"61 * * * *\"\ntasks:\n  a: {name: A, config: !Shell {script: \"true\"}}\n");
    assert!(
        errs[0].starts_with("t.yml:2:7: error: invalid cron expression `61 * * * *`"),
        "{errs:?}"
    );
}

#[test]
fn numeric_weekday_in_seconds_cron_warns_but_loads() {
    let parsed = parse("name: x\ncron: \"0 0 9 * * 1-5\"\ntasks:\n  a: {name: A, config: !Shell {script: \"true\"}}\n");
    assert!(parsed.workflow.is_some());
    assert_eq!(parsed.diagnostics.len(), 1);
    let d = &parsed.diagnostics[0];
    assert_eq!(d.severity, crate::workflow::Severity::Warning);
    assert_eq!((d.line, d.column), (Some(2), Some(7)));
    assert!(d.message.contains("1 as Sunday"), "{}", d.message);
    // Names and 5-field crontab are not warned about.
    for cron in ["0 0 9 * * Mon-Fri", "0 9 * * 1-5", "0 0 9 * * *"] {
        let text = format!("name: x\ncron: \"{cron}\"\ntasks:\n  a: {{name: A, config: !Shell {{script: \"true\"}}}}\n");
        assert!(parse(&text).diagnostics.is_empty(), "{cron}");
    }
}
