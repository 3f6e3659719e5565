//! `cdktr cancel` with real principal and agent processes: queued and running runs, ended and
//! unknown ones, and an agent that is away when the cancel comes.

use std::time::{Duration, Instant};

use cdktr::model::{RunStatus, TaskStatus};
use nix::sys::signal::Signal;

use crate::common::cluster::{start_agent, wait_for, Api, Principal};
use crate::common::Workspace;
use crate::controls::group_members;

const LONG: Duration = Duration::from_secs(60);

const STUCK: &str = r#"name: Stuck
kill_grace: 1s
tasks:
  work:
    name: Work
    config: !Shell {script: "echo $$; sh -c 'sleep 600 & wait'"}
  after:
    name: After
    depends: [work]
    config: !Shell {script: "echo after"}
"#;

const QUICK: &str = "name: Quick\ntasks:\n  t: {name: T, config: !Shell {script: 'true'}}\n";

/// The process group a run's `work` task printed (its shell's pid), once it is running.
fn task_group(api: &Api, run_id: &str) -> u32 {
    wait_for(LONG, "the task to print its pid", || {
        api.logs(run_id)
            .iter()
            .find(|l| l.task_id.as_str() == "work")
            .and_then(|l| l.line.trim().parse().ok())
    })
}

#[test]
fn cancelling_a_queued_run_takes_it_out_of_the_queue() {
    let ws = Workspace::new();
    ws.write("wf/stuck.yml", STUCK);
    ws.write("wf/quick.yml", QUICK);
    let p = Principal::start(&ws, &[], &[]);
    let api = Api::connect(&p.api);
    let run_id = api.trigger("stuck");
    assert_eq!(api.status().queue_length, 1);
    let out = ws.run(&[
        "--principal",
        &p.api,
        "cancel",
        &run_id,
        "--reason",
        "not today",
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains("removed from the queue"),
        "{}",
        out.stdout
    );
    let run = api.run(&run_id);
    assert_eq!(run.summary.status, RunStatus::Cancelled);
    for t in &run.tasks {
        assert_eq!(t.status, TaskStatus::Cancelled, "{t:?}");
        let reason = t.reason.as_deref().unwrap_or_default();
        assert!(
            reason.contains("cancelled by") && reason.contains("not today"),
            "{reason}"
        );
    }
    assert_eq!(api.status().queue_length, 0);
    // An agent that comes later runs other work, never the cancelled run.
    let _agent = start_agent(&ws, &p.api, "late", 2, &[]);
    let quick = api.wait_done(&api.trigger("quick"), LONG);
    assert_eq!(quick.summary.status, RunStatus::Completed);
    let run = api.run(&run_id);
    assert_eq!(run.summary.status, RunStatus::Cancelled);
    assert!(run.summary.started_at.is_none());
    // The audit log has who and why.
    let audit = ws.run(&[
        "--principal",
        &p.api,
        "audit",
        "--action",
        "cancel",
        "--json",
    ]);
    assert!(
        audit.stdout.contains(&run_id) && audit.stdout.contains("not today"),
        "{}",
        audit.stdout
    );
}

/// A running run's tasks are stopped (the whole process group), the task not started is
/// CANCELLED and the run CANCELLED, within the kill grace plus a second.
#[test]
fn cancelling_a_running_run_stops_its_processes() {
    let ws = Workspace::new();
    ws.write("wf/stuck.yml", STUCK);
    let p = Principal::start(&ws, &[], &[]);
    // One slot, all taken: the cancel still reaches the agent at once.
    let _agent = start_agent(&ws, &p.api, "one", 1, &[]);
    let api = Api::connect(&p.api);
    let run_id = api.trigger("stuck");
    let pgid = task_group(&api, &run_id);
    let started = Instant::now();
    let out = ws.run(&["--principal", &p.api, "cancel", &run_id]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    // kill_grace 1s + 1s (the shell ends on SIGTERM, so well within it).
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(out.stdout.contains("CANCELLED"), "{}", out.stdout);
    let run = api.run(&run_id);
    assert_eq!(run.summary.status, RunStatus::Cancelled);
    let work = run
        .tasks
        .iter()
        .find(|t| t.task_id.as_str() == "work")
        .unwrap();
    assert_eq!(work.status, TaskStatus::Cancelled);
    assert!(
        work.reason
            .as_deref()
            .unwrap_or_default()
            .starts_with("cancelled by"),
        "{work:?}"
    );
    let after = run
        .tasks
        .iter()
        .find(|t| t.task_id.as_str() == "after")
        .unwrap();
    assert_eq!(after.status, TaskStatus::Cancelled);
    assert_eq!(group_members(pgid), Vec::<u32>::new(), "processes left");
}

#[test]
fn cancel_is_idempotent_and_unknown_runs_are_not_found() {
    let ws = Workspace::new();
    ws.write("wf/quick.yml", QUICK);
    let p = Principal::start(&ws, &[], &[]);
    let _agent = start_agent(&ws, &p.api, "one", 1, &[]);
    let api = Api::connect(&p.api);
    let run_id = api.trigger("quick");
    api.wait_done(&run_id, LONG);
    let out = ws.run(&["--principal", &p.api, "cancel", &run_id, "--json"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let reply: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(reply["changed"], false);
    assert_eq!(reply["status"], "COMPLETED");
    assert_eq!(api.run(&run_id).summary.status, RunStatus::Completed);
    let out = ws.run(&["--principal", &p.api, "cancel", "01NOSUCHRUN"]);
    assert_eq!(out.code, Some(4), "{}", out.stderr);
    assert!(
        out.stderr.contains("no run `01NOSUCHRUN`"),
        "{}",
        out.stderr
    );
    // A reason on several lines is refused, naming the field.
    let out = ws.run(&["--principal", &p.api, "cancel", &run_id, "--reason", "a\nb"]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("`reason`"), "{}", out.stderr);
}

/// The agent is away (stopped with SIGSTOP: no heartbeat, no reply) when the cancel comes:
/// the run stays RUNNING; when the agent is back it stops the run, which ends CANCELLED and
/// never COMPLETED.
#[test]
fn a_cancel_reaches_an_agent_that_was_away_when_it_returns() {
    let ws = Workspace::new();
    ws.write("wf/stuck.yml", STUCK);
    let p = Principal::start(&ws, &[], &[]);
    let agent = start_agent(&ws, &p.api, "away", 1, &[]);
    let api = Api::connect(&p.api);
    let run_id = api.trigger("stuck");
    let pgid = task_group(&api, &run_id);
    agent.signal(Signal::SIGSTOP);
    let out = ws.run(&["--principal", &p.api, "cancel", &run_id, "--no-wait"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(api.run(&run_id).summary.status, RunStatus::Running);
    assert!(
        !group_members(pgid).is_empty(),
        "the task runs on while its agent is away"
    );
    agent.signal(Signal::SIGCONT);
    let run = api.wait_done(&run_id, LONG);
    assert_eq!(run.summary.status, RunStatus::Cancelled);
    wait_for(LONG, "the task's processes to end", || {
        group_members(pgid).is_empty().then_some(())
    });
}
