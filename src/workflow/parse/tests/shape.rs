//! Shape errors: unknown keys, duplicates, missing or incomplete parts, bad YAML.

use super::*;

#[test]
fn unknown_key_suggests_the_near_miss() {
    let errs = errors(
        r#"name: x
tasks:
  fetch:
    name: Fetch
    dependencies: []
    config: !Shell {script: "true"}
"#,
    );
    assert_eq!(
        errs,
        [
            "t.yml:5:5: error: unknown field `dependencies`, expected one of name, description, \
          depends, config, retries, retry_delay, retry_backoff, retry_max_delay, timeout, \
          kill_grace, trigger_rule, env, inherit_env (did you mean `depends`?)"
        ]
    );
    let errs = errors("nmae: x\ntasks:\n  a: {name: A, config: !Shell {script: \"true\"}}\n");
    assert!(errs[0].contains("(did you mean `name`?)"), "{errs:?}");
    let errs = errors("name: x\ntasks:\n  a: {name: A, config: !Subprocess {cmd: ls, arg: [x]}}\n");
    assert!(errs[0].contains("(did you mean `args`?)"), "{errs:?}");
}

#[test]
fn duplicate_task_id_is_an_error() {
    let errs = errors(
        r#"name: x
tasks:
  a: {name: A, config: !Shell {script: "true"}}
  a: {name: A2, config: !Shell {script: "true"}}
"#,
    );
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("t.yml:4:3: error: duplicate mapping key: a"),
        "{errs:?}"
    );
}

#[test]
fn empty_or_missing_tasks_is_an_error() {
    assert_eq!(
        errors("name: x\ntasks: {}\n"),
        ["t.yml:2:8: error: `tasks` is empty: a workflow needs at least one task"]
    );
    assert_eq!(
        errors("name: x\n"),
        ["t.yml:1:1: error: missing field `tasks`: a workflow needs at least one task"]
    );
    assert_eq!(
        errors(""),
        ["t.yml:1:1: error: file is empty: a workflow needs at least `name` and `tasks`"]
    );
}

#[test]
fn invalid_yaml_is_located() {
    let errs = errors("name: [x\ntasks: {\n");
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("t.yml:1:"), "{errs:?}");
}

#[test]
fn incomplete_task_config_is_an_error() {
    let errs =
        errors("name: x\ntasks:\n  a:\n    name: A\n    config: !Subprocess\n      args: [x]\n");
    assert_eq!(errs, ["t.yml:6:7: error: missing field `cmd`"]);
    let errs = errors("name: x\ntasks:\n  a:\n    name: A\n");
    assert!(
        errs[0].contains("task `a`: missing field `config`"),
        "{errs:?}"
    );
    let errs = errors("name: x\ntasks:\n  a:\n    config: !Shell {script: x}\n");
    assert!(
        errs[0].contains("task `a`: missing field `name`"),
        "{errs:?}"
    );
    let errs = errors("name: x\ntasks:\n  a: {name: A, config: !Shell {script: \"  \"}}\n");
    assert!(
        errs[0].contains("task `a`: `script` must not be empty"),
        "{errs:?}"
    );
    let errs = errors("name: x\ntasks:\n  a: {name: A, config: !UvPython {packages: [x]}}\n");
    assert!(errs[0].contains("missing field `script_path`"), "{errs:?}");
}

#[test]
fn unknown_or_missing_task_type_tag() {
    let errs =
        errors("name: x\ntasks:\n  a:\n    name: A\n    config: !Subproces\n      cmd: ls\n");
    assert_eq!(
        errs,
        ["t.yml:6:7: error: unknown task type `!Subproces`: did you mean `!Subprocess`?"]
    );
    let errs =
        errors("name: x\ntasks:\n  a:\n    name: A\n    config:\n      !Docker\n      image: x\n");
    assert_eq!(
        errs,
        ["t.yml:7:7: error: unknown task type `!Docker`: expected !Subprocess, !UvPython or !Shell"]
    );
    let errs = errors("name: x\ntasks:\n  a:\n    name: A\n    config:\n      cmd: ls\n");
    assert!(
        errs[0].contains("has no task type tag (found key `cmd`)"),
        "{errs:?}"
    );
}

#[test]
fn collects_several_problems_in_one_file() {
    let errs = errors(
        r#"name: x
cron: "bad"
tasks:
  a: {name: A, depends: [zz], config: !Shell {script: "true"}}
  b: {name: B, depends: [yy], config: !Shell {script: "true"}}
"#,
    );
    assert_eq!(errs.len(), 3, "{errs:?}");
}
