//! Execution controls: retries, timeouts, trigger rules, env, placement, concurrency.

use std::time::Duration;

use super::{errors, parse, valid};
use crate::model::{Backoff, Label, Span, TriggerRule};

const FULL: &str = r#"
name: Controlled
timeout: 2h
kill_grace: 30s
env: {STAGE: prod}
inherit_env: false
max_active_runs: 2
agent:
  labels: [gpu, region=eu]
  prefer: big-box
params:
  batch: "1"
tasks:
  load:
    name: Load
    retries: 3
    retry_delay: 5s
    retry_backoff: exponential
    retry_max_delay: 1m
    timeout: 30m
    kill_grace: 2s
    env: {BATCH: "{{ params.batch }}"}
    inherit_env: true
    config: !Shell {script: ./load.sh}
  cleanup:
    name: Clean up
    depends: [load]
    trigger_rule: all_done
    config: !Shell {script: "true"}
"#;

#[test]
fn every_control_is_read() {
    let w = valid(FULL);
    assert_eq!(w.timeout, Some(Span(Duration::from_secs(7200))));
    assert_eq!(w.kill_grace, Some(Span(Duration::from_secs(30))));
    assert_eq!(w.env.get("STAGE").map(String::as_str), Some("prod"));
    assert_eq!(w.inherit_env, Some(false));
    assert_eq!(w.max_active_runs, Some(2));
    assert_eq!(
        w.agent.labels,
        vec![
            Label::parse("gpu").unwrap(),
            Label::parse("region=eu").unwrap()
        ]
    );
    assert_eq!(w.agent.prefer.as_deref(), Some("big-box"));
    let load = &w.tasks[0];
    assert_eq!(load.retry.retries, 3);
    assert_eq!(load.retry.delay, Span(Duration::from_secs(5)));
    assert_eq!(load.retry.backoff, Backoff::Exponential);
    assert_eq!(load.retry.max_delay, Some(Span(Duration::from_secs(60))));
    assert_eq!(load.timeout, Some(Span(Duration::from_secs(1800))));
    assert_eq!(w.kill_grace(load), Duration::from_secs(2));
    assert!(w.inherits_env(load));
    assert_eq!(
        w.task_env(load).get("BATCH").map(String::as_str),
        Some("{{ params.batch }}")
    );
    let cleanup = &w.tasks[1];
    assert_eq!(cleanup.trigger_rule, TriggerRule::AllDone);
    assert_eq!(w.kill_grace(cleanup), Duration::from_secs(30));
    assert!(!w.inherits_env(cleanup));
    assert_eq!(
        w.task_env(cleanup).get("STAGE").map(String::as_str),
        Some("prod")
    );
    // The definition travels as JSON (to agents, into the store) and comes back the same.
    let json = serde_json::to_string(&w).unwrap();
    assert_eq!(
        serde_json::from_str::<crate::model::Workflow>(&json).unwrap(),
        w
    );
}

#[test]
fn defaults_when_absent() {
    let w = valid("name: W\ntasks:\n  a: {name: A, config: !Shell {script: 'true'}}\n");
    let a = &w.tasks[0];
    assert_eq!(a.retry.retries, 0);
    assert_eq!(a.retry.delay, Span(Duration::from_secs(10)));
    assert_eq!(a.timeout, None);
    assert_eq!(a.trigger_rule, TriggerRule::AllSuccess);
    assert_eq!(w.kill_grace(a), Duration::from_secs(10));
    assert!(w.inherits_env(a));
    assert!(w.agent.is_any() && w.max_active_runs.is_none() && w.timeout.is_none());
    // Nothing of the controls is written out for a workflow that uses none.
    let json = serde_json::to_value(&w).unwrap();
    let task = &json["tasks"][0];
    for key in [
        "retry",
        "timeout",
        "kill_grace",
        "trigger_rule",
        "env",
        "inherit_env",
    ] {
        assert!(task.get(key).is_none(), "{key} in {task}");
    }
    for key in [
        "timeout",
        "kill_grace",
        "env",
        "inherit_env",
        "agent",
        "max_active_runs",
    ] {
        assert!(json.get(key).is_none(), "{key} in {json}");
    }
}

/// Each bad value is an error at its own line, naming the key and the task.
#[test]
fn bad_values_are_errors_at_their_line() {
    let task = |key_value: &str| {
        format!("name: W\ntasks:\n  a:\n    name: A\n    {key_value}\n    config: !Shell {{script: 'true'}}\n")
    };
    for (line, expected) in [
        ("retries: -1", "`retries` must be a whole number from 0 to 100, not -1"),
        ("retries: 1000", "not 1000"),
        ("timeout: 0s", "`timeout`: `0s` must be longer than zero"),
        ("timeout: soon", "`timeout`: `soon` is not a duration"),
        ("kill_grace: 20years", "longer than ten years"),
        ("retry_delay: -5s", "`retry_delay`"),
        ("retry_backoff: linear", "`retry_backoff` must be fixed or exponential, not `linear`"),
        ("trigger_rule: always", "`trigger_rule` must be all_success, all_done, one_failed, all_failed or none_failed, not `always`"),
        ("env: {\"A=B\": x}", "`env` key `A=B` is not a valid variable name"),
    ] {
        let errs = errors(&task(line));
        assert!(
            errs.iter().any(|e| e.starts_with("t.yml:5:") && e.contains("task `a`") && e.contains(expected)),
            "{line}: {errs:?}"
        );
    }
    let workflow = |key_value: &str| {
        format!(
            "name: W\n{key_value}\ntasks:\n  a: {{name: A, config: !Shell {{script: 'true'}}}}\n"
        )
    };
    for (line, at, expected) in [
        (
            "timeout: 0ms",
            "t.yml:2:",
            "`timeout`: `0ms` must be longer than zero",
        ),
        (
            "max_active_runs: 0",
            "t.yml:2:",
            "`max_active_runs` must be a whole number from 1",
        ),
        (
            "agent: {labels: [\"has space\"]}",
            "t.yml:2:",
            "label `has space` must be `key` or `key=value`",
        ),
        ("agent: {labels: [\"a=\"]}", "t.yml:2:", "label `a=`"),
        (
            "agent: {prefer: \"two words\"}",
            "t.yml:2:",
            "`agent.prefer` must name an agent",
        ),
        (
            "env: {\"\": x}",
            "t.yml:2:",
            "`env` key `` is not a valid variable name",
        ),
        (
            "env: {A: \"{{ params.nope }}\"}",
            "t.yml",
            "`{{ params.nope }}` names an undeclared parameter",
        ),
    ] {
        let errs = errors(&workflow(line));
        assert!(
            errs.iter()
                .any(|e| e.starts_with(at) && e.contains(expected)),
            "{line}: {errs:?}"
        );
    }
    // Unknown keys near the new ones get a suggestion.
    let errs = errors(&task("retry: 3"));
    assert!(errs.iter().any(|e| e.contains("retry")), "{errs:?}");
    let errs = errors(&workflow("agent: {label: [gpu]}"));
    assert!(errs.iter().any(|e| e.contains("label")), "{errs:?}");
}

#[test]
fn retry_settings_without_retries_are_a_warning() {
    let parsed = parse(
        "name: W\ntasks:\n  a:\n    name: A\n    retry_delay: 5s\n    config: !Shell {script: 'true'}\n",
    );
    assert!(parsed.workflow.is_some());
    assert!(
        parsed.diagnostics.iter().any(|d| !d.is_error()
            && d.to_string()
                .contains("`retry_delay` has no effect without `retries`")),
        "{:?}",
        parsed.diagnostics
    );
}
