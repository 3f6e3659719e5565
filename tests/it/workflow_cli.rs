//! `cdktr workflow validate|list|show` against real directories.

use crate::common::{valid_workflow, Workspace};

/// The directory of the acceptance test: one of each kind of broken file, two valid
/// workflows, and entries that must be skipped silently.
fn broken_dir(ws: &Workspace) {
    ws.write("wf/good.yml", &valid_workflow("Good"));
    ws.write("wf/nested/also_good.yaml", &valid_workflow("Also good"));
    ws.write(
        "wf/cycle.yml",
        "name: c\ntasks:\n  a: {name: A, depends: [b], config: !Shell {script: x}}\n  \
         b: {name: B, depends: [a], config: !Shell {script: x}}\n",
    );
    ws.write(
        "wf/missing_dep.yml",
        "name: m\ntasks:\n  a:\n    name: A\n    depends: [nope]\n    config: !Shell {script: x}\n",
    );
    ws.write(
        "wf/bad_cron.yml",
        "name: b\ncron: \"99 * * * *\"\ntasks:\n  a: {name: A, config: !Shell {script: x}}\n",
    );
    ws.write(
        "wf/bad_tz.yml",
        "name: b\ncron: \"0 * * * *\"\ntimezone: Europe/Atlantis\ntasks:\n  a: {name: A, config: !Shell {script: x}}\n",
    );
    ws.write(
        "wf/unknown_key.yml",
        "name: u\nschedule: \"0 * * * *\"\ntasks:\n  a: {name: A, config: !Shell {script: x}}\n",
    );
    ws.write(
        "wf/dup_task.yml",
        "name: d\ntasks:\n  a: {name: A, config: !Shell {script: x}}\n  a: {name: A, config: !Shell {script: y}}\n",
    );
    ws.write("wf/empty_tasks.yml", "name: e\ntasks: {}\n");
    ws.write("wf/invalid_yaml.yml", "name: [unclosed\ntasks:\n");
    ws.write("wf/notes.txt", "not a workflow\n");
    ws.write("wf/.gitkeep", "");
    ws.write("wf/.hidden/secret.yml", "this: is: not: loaded\n");
    ws.write("wf/draft.yml.swp", "binary junk");
}

const BROKEN: &[(&str, &str)] = &[
    (
        "cycle.yml",
        ":3:3: error: task `a`: dependency cycle: a -> b -> a",
    ),
    (
        "missing_dep.yml",
        ":5:15: error: task `a`: depends on `nope`, which is not a task",
    ),
    (
        "bad_cron.yml",
        ":2:7: error: invalid cron expression `99 * * * *`",
    ),
    (
        "bad_tz.yml",
        ":3:11: error: unknown time zone `Europe/Atlantis`",
    ),
    ("unknown_key.yml", ":2:1: error: unknown field `schedule`"),
    ("dup_task.yml", ":4:3: error: duplicate mapping key: a"),
    ("empty_tasks.yml", ":2:8: error: `tasks` is empty"),
    ("invalid_yaml.yml", ":1:"),
];

#[test]
fn validate_reports_every_broken_file_with_line_and_still_counts_valid_ones() {
    let ws = Workspace::new();
    broken_dir(&ws);
    let run = ws.run(&["workflow", "validate", "wf"]);
    assert_eq!(
        run.code,
        Some(1),
        "stdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    for (file, expected) in BROKEN {
        let line = run
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("wf/{file}:")))
            .unwrap_or_else(|| panic!("no line for {file} in:\n{}", run.stdout));
        assert!(
            line.contains(expected),
            "{file}: `{line}` lacks `{expected}`"
        );
    }
    assert!(!run.stdout.contains("notes.txt"), "{}", run.stdout);
    assert!(!run.stdout.contains("gitkeep"), "{}", run.stdout);
    assert!(!run.stdout.contains("secret"), "{}", run.stdout);
    assert!(!run.stdout.contains("swp"), "{}", run.stdout);
    assert_eq!(
        run.stdout.lines().last(),
        Some("2 workflows valid, 8 invalid")
    );
}

#[test]
fn validate_json_has_the_same_findings() {
    let ws = Workspace::new();
    broken_dir(&ws);
    let run = ws.run(&["workflow", "validate", "wf", "--json"]);
    assert_eq!(run.code, Some(1));
    let doc = run.json();
    assert_eq!(doc["valid"], 2);
    assert_eq!(doc["invalid"], 8);
    let diags = doc["diagnostics"].as_array().unwrap();
    assert_eq!(diags.len(), BROKEN.len());
    let cycle = diags
        .iter()
        .find(|d| d["file"].as_str().unwrap().ends_with("cycle.yml"))
        .unwrap();
    assert_eq!(cycle["line"], 3);
    assert_eq!(cycle["column"], 3);
    assert_eq!(cycle["severity"], "error");
    assert_eq!(cycle["task"], "a");
}

#[test]
fn validate_passes_on_the_repository_examples() {
    let ws = Workspace::new();
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/workflows");
    let run = ws.run(&["workflow", "validate", examples]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.ends_with("workflows valid, 0 invalid\n"),
        "{}",
        run.stdout
    );
}

#[test]
fn validate_defaults_to_the_configured_directory_and_accepts_files() {
    let ws = Workspace::new();
    ws.write("cdktr.toml", "[principal]\nworkflow_dir = \"defs\"\n");
    ws.write("defs/one.yml", &valid_workflow("One"));
    let run = ws.run(&["workflow", "validate"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.stdout, "1 workflows valid, 0 invalid\n");
    let file = ws.write("loose.yml", "name: x\ntasks: {}\n");
    let run = ws.run(&["workflow", "validate", file.to_str().unwrap()]);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stdout.contains("loose.yml:2:8: error:"),
        "{}",
        run.stdout
    );
}

#[test]
fn legacy_numeric_weekday_is_a_warning_not_an_error() {
    let ws = Workspace::new();
    ws.write(
        "wf/old.yml",
        "name: old\ncron: \"0 0 9 * * 1-5\"\ntasks:\n  a: {name: A, config: !Subprocess {cmd: echo}}\n",
    );
    let run = ws.run(&["workflow", "validate", "wf"]);
    assert_eq!(run.code, Some(0));
    assert!(
        run.stdout
            .starts_with("wf/old.yml:2:7: warning: day of week `1-5` is numeric"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.ends_with("1 workflows valid, 0 invalid\n"));
}

#[test]
fn two_files_with_one_id_are_both_rejected_naming_each_other() {
    let ws = Workspace::new();
    ws.write("wf/etl/daily.yml", &valid_workflow("A"));
    ws.write("wf/etl.daily.yaml", &valid_workflow("B"));
    let run = ws.run(&["workflow", "validate", "wf"]);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stdout.contains(
            "wf/etl/daily.yml: error: workflow id `etl.daily` is also the id of wf/etl.daily.yaml"
        ),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains(
        "wf/etl.daily.yaml: error: workflow id `etl.daily` is also the id of wf/etl/daily.yml"
    ));
}

#[cfg(unix)]
#[test]
fn symlink_loops_and_broken_links_are_skipped_not_fatal() {
    let ws = Workspace::new();
    ws.write("wf/real/ok.yml", &valid_workflow("Ok"));
    std::os::unix::fs::symlink(ws.path().join("wf"), ws.path().join("wf/real/loop")).unwrap();
    std::os::unix::fs::symlink(
        ws.path().join("nowhere.yml"),
        ws.path().join("wf/broken.yml"),
    )
    .unwrap();
    let run = ws.run(&["workflow", "validate", "wf"]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("warning: skipped"), "{}", run.stdout);
    assert!(
        run.stdout.ends_with("1 workflows valid, 0 invalid\n"),
        "{}",
        run.stdout
    );
}

#[test]
fn list_and_show_read_the_directory() {
    let ws = Workspace::new();
    ws.write(
        "wf/etl/daily.yml",
        "name: Daily\ncron: \"0 9 * * *\"\ntimezone: America/New_York\ntasks:\n  \
         load: {name: Load, depends: [extract], config: !Shell {script: x}}\n  \
         extract: {name: Extract, config: !Subprocess {cmd: echo, args: [hi]}}\n",
    );
    ws.write("wf/broken.yml", "name: b\ntasks: {}\n");
    let run = ws.run(&["workflow", "list", "--dir", "wf"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.starts_with("ID "), "{}", run.stdout);
    assert!(run.stdout.contains("etl.daily"));
    assert!(run.stdout.contains("0 9 * * * America/New_York"));
    assert!(run.stdout.contains("invalid (1 errors)"));

    let run = ws.run(&["workflow", "list", "--dir", "wf", "--json"]);
    let doc = run.json();
    let list = doc.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], "etl.daily");
    assert_eq!(list[0]["next_fires"].as_array().unwrap().len(), 3);
    assert_eq!(list[1]["status"], "invalid");

    let run = ws.run(&["workflow", "show", "etl.daily", "--dir", "wf", "--json"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let w = run.json();
    let tasks: Vec<&str> = w["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(tasks, ["extract", "load"]);
    assert_eq!(w["tasks"][1]["depends"][0], "extract");
    // 09:00 in New York is 13:00 or 14:00 UTC depending on DST; local and UTC differ.
    let fire = &w["next_fires"][0];
    assert!(
        fire["local"].as_str().unwrap().contains("T09:00:00.000-0"),
        "{fire}"
    );
    let utc = fire["utc"].as_str().unwrap();
    assert!(
        utc.contains("T13:00:00.000Z") || utc.contains("T14:00:00.000Z"),
        "{fire}"
    );

    let run = ws.run(&["workflow", "show", "etl.daly", "--dir", "wf"]);
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.contains("no workflow `etl.daly`")
            && run.stderr.contains("did you mean `etl.daily`?"),
        "{}",
        run.stderr
    );
    let run = ws.run(&["workflow", "show", "broken", "--dir", "wf"]);
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.contains("workflow `broken` is invalid"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_missing_directory_is_a_clear_error() {
    let ws = Workspace::new();
    let run = ws.run(&["workflow", "list", "--dir", "nope"]);
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.starts_with("error: workflow directory nope:"),
        "{}",
        run.stderr
    );
}
