//! `cdktr rerun` with real principal and agent processes: the definition the run used (or
//! the latest), its parameters, and `--failed-only` reusing what completed.

use std::time::Duration;

use cdktr::model::{RunStatus, TaskStatus, TriggerSource};
use cdktr::protocol::control::RunDetail;

use crate::common::cluster::{start_agent, Api, Principal};
use crate::common::Workspace;

const LONG: Duration = Duration::from_secs(60);

const PIPELINE: &str = r#"name: Pipeline
params:
  day: mon
tasks:
  a:
    name: A
    config: !Shell {script: "echo a >> ran.txt; echo a-$CDKTR_PARAM_DAY"}
  b:
    name: B
    config: !Shell {script: "echo b >> ran.txt; test -e fixed"}
  c:
    name: C
    depends: [a, b]
    config: !Shell {script: "echo c >> ran.txt; echo c-version-1"}
"#;

fn statuses(run: &RunDetail) -> Vec<(String, TaskStatus)> {
    run.tasks
        .iter()
        .map(|t| (t.task_id.to_string(), t.status))
        .collect()
}

fn ran(ws: &Workspace) -> Vec<String> {
    std::fs::read_to_string(ws.path().join("ran.txt"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn rerun_failed_only_runs_the_failed_and_skipped_tasks_of_the_definition_it_used() {
    let ws = Workspace::new();
    ws.write("wf/pipeline.yml", PIPELINE);
    let p = Principal::start(&ws, &[], &[]);
    let _agent = start_agent(&ws, &p.api, "one", 2, &[]);
    let api = Api::connect(&p.api);
    let first = api.trigger("pipeline");
    let run = api.wait_done(&first, LONG);
    assert_eq!(run.summary.status, RunStatus::Failed);
    use TaskStatus::{Completed, Failed, Reused, Skipped};
    assert_eq!(
        statuses(&run),
        [
            ("a".into(), Completed),
            ("b".into(), Failed),
            ("c".into(), Skipped)
        ]
    );
    // The file changes after the run; the rerun keeps the definition the run used.
    ws.write(
        "wf/pipeline.yml",
        &PIPELINE.replace("c-version-1", "c-version-2"),
    );
    let reload = ws.run(&["--principal", &p.api, "workflow", "reload"]);
    assert_eq!(reload.code, Some(0), "{}", reload.stderr);
    std::fs::write(ws.path().join("fixed"), "").unwrap();
    let out = ws.run(&[
        "--principal",
        &p.api,
        "rerun",
        &first,
        "--failed-only",
        "--param",
        "day=tue",
        "--wait",
        "--json",
    ]);
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    let rerun: RunDetail = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(rerun.summary.status, RunStatus::Completed);
    assert_eq!(rerun.summary.trigger, TriggerSource::Rerun);
    assert_eq!(
        rerun.summary.rerun_of.as_ref().map(|r| r.to_string()),
        Some(first.clone())
    );
    assert_eq!(rerun.params.get("day").map(String::as_str), Some("tue"));
    assert_eq!(
        statuses(&rerun),
        [
            ("a".into(), Reused),
            ("b".into(), Completed),
            ("c".into(), Completed)
        ]
    );
    // `a` ran once in all (the first run), `b` twice, `c` once (in the rerun).
    let mut ran = ran(&ws);
    ran.sort();
    assert_eq!(ran, ["a", "b", "b", "c"]);
    let lines: Vec<String> = api
        .logs(rerun.summary.run_id.as_str())
        .into_iter()
        .map(|l| l.line)
        .collect();
    assert!(lines.contains(&"c-version-1".to_owned()), "{lines:?}");
    // `runs show` says what it reruns.
    let show = ws.run(&[
        "--principal",
        &p.api,
        "runs",
        "show",
        rerun.summary.run_id.as_str(),
    ]);
    assert!(
        show.stdout.contains(&format!("rerun of:  {first}")),
        "{}",
        show.stdout
    );

    // --latest takes the file as it is now.
    let out = ws.run(&[
        "--principal",
        &p.api,
        "rerun",
        &first,
        "--latest",
        "--wait",
        "--json",
    ]);
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    let latest: RunDetail = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(latest.params.get("day").map(String::as_str), Some("mon"));
    let lines: Vec<String> = api
        .logs(latest.summary.run_id.as_str())
        .into_iter()
        .map(|l| l.line)
        .collect();
    assert!(lines.contains(&"c-version-2".to_owned()), "{lines:?}");
}

#[test]
fn rerun_refuses_what_it_cannot_do() {
    let ws = Workspace::new();
    ws.write("wf/pipeline.yml", PIPELINE);
    ws.write(
        "wf/slow.yml",
        "name: Slow\ntasks:\n  t: {name: T, config: !Shell {script: 'sleep 600'}}\n",
    );
    let p = Principal::start(&ws, &[], &[]);
    let api = Api::connect(&p.api);
    // Not ended yet (queued: no agent).
    let queued = api.trigger("slow");
    let out = ws.run(&["--principal", &p.api, "rerun", &queued]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("still QUEUED"), "{}", out.stderr);
    let out = ws.run(&["--principal", &p.api, "rerun", "01NOSUCHRUN"]);
    assert_eq!(out.code, Some(4), "{}", out.stderr);
    // A completed run has nothing failed to run again.
    std::fs::write(ws.path().join("fixed"), "").unwrap();
    let _agent = start_agent(&ws, &p.api, "one", 2, &["--label", "x"]);
    let done = api.wait_done(&api.trigger("pipeline"), LONG);
    assert_eq!(done.summary.status, RunStatus::Completed);
    let out = ws.run(&[
        "--principal",
        &p.api,
        "rerun",
        done.summary.run_id.as_str(),
        "--failed-only",
    ]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("nothing to run again"),
        "{}",
        out.stderr
    );
    // A parameter the workflow does not declare is refused.
    let out = ws.run(&[
        "--principal",
        &p.api,
        "rerun",
        done.summary.run_id.as_str(),
        "--param",
        "nope=1",
    ]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
}
