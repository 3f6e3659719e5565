//! Execution controls with real principal and agent processes: retries, timeouts, trigger
//! rules, the environment, agent labels and per-workflow concurrency.

use std::time::Duration;

use cdktr::model::{RunStatus, TaskStatus};
use cdktr::protocol::control::{RunDetail, TaskRunView};

use crate::common::cluster::{agent_command, start_agent, wait_for, Api, Daemon, Principal};
use crate::common::Workspace;

const LONG: Duration = Duration::from_secs(60);

fn task<'a>(run: &'a RunDetail, id: &str) -> &'a TaskRunView {
    run.tasks
        .iter()
        .find(|t| t.task_id.as_str() == id)
        .unwrap_or_else(|| panic!("no task {id} in {run:#?}"))
}

/// Process ids whose process group is `pgid` (zombies not counted).
pub fn group_members(pgid: u32) -> Vec<u32> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the command's closing parenthesis: state, ppid, pgrp, ...
        let rest: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |(_, r)| r)
            .split_whitespace()
            .collect();
        if rest.first() != Some(&"Z") && rest.get(2) == Some(&pgid.to_string().as_str()) {
            members.push(pid);
        }
    }
    members
}

#[test]
fn a_task_failing_twice_then_succeeding_has_three_tries_with_their_own_logs_and_delays() {
    let ws = Workspace::new();
    ws.write(
        "wf/flaky.yml",
        r#"name: Flaky
tasks:
  flaky:
    name: Flaky
    retries: 3
    retry_delay: 300ms
    config: !Shell
      script: |
        n=$(cat count 2>/dev/null || echo 0); n=$((n + 1)); echo $n > count
        echo "try $n says hello"
        [ $n -ge 3 ]
  after:
    name: After
    depends: [flaky]
    config: !Shell {script: "echo after"}
"#,
    );
    let p = Principal::start(&ws, &[], &[]);
    let _agent = start_agent(&ws, &p.api, "one", 2, &[]);
    let api = Api::connect(&p.api);
    let run_id = api.trigger("flaky");
    let run = api.wait_done(&run_id, LONG);
    assert_eq!(run.summary.status, RunStatus::Completed, "{run:#?}");
    assert_eq!(run.summary.attempt, 1, "retries are not dispatch attempts");
    let flaky = task(&run, "flaky");
    assert_eq!((flaky.status, flaky.try_no), (TaskStatus::Completed, 3));
    let tries: Vec<(u32, TaskStatus, Option<i32>)> = flaky
        .tries
        .iter()
        .map(|t| (t.try_no, t.status, t.exit_code))
        .collect();
    assert_eq!(
        tries,
        vec![
            (1, TaskStatus::Failed, Some(1)),
            (2, TaskStatus::Failed, Some(1)),
            (3, TaskStatus::Completed, Some(0))
        ]
    );
    // The configured delay separates each try from the next (times are to the millisecond).
    for pair in flaky.tries.windows(2) {
        let gap = pair[1].started_at.unwrap() - pair[0].finished_at;
        assert!(gap >= chrono::Duration::milliseconds(299), "{gap:?}");
    }
    assert_eq!(task(&run, "after").status, TaskStatus::Completed);
    // Each try's output on its own, through the CLI.
    for k in 1..=3 {
        let out = ws.run(&[
            "--principal",
            &p.api,
            "logs",
            &run_id,
            "--task",
            "flaky",
            "--try",
            &k.to_string(),
            "--json",
        ]);
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        let lines: Vec<serde_json::Value> = out
            .stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 1, "{}", out.stdout);
        assert_eq!(lines[0]["line"], format!("try {k} says hello"));
        assert_eq!(lines[0]["try"], k);
    }
    // `runs show` lists the tries.
    let show = ws.run(&["--principal", &p.api, "runs", "show", &run_id]);
    assert_eq!(show.code, Some(0), "{}", show.stderr);
    assert!(
        show.stdout.contains("completed on try 3"),
        "{}",
        show.stdout
    );
    assert!(
        show.stdout.matches("exited with code 1").count() >= 2,
        "{}",
        show.stdout
    );
    // --try needs --task, and counts from 1.
    let bad = ws.run(&["--principal", &p.api, "logs", &run_id, "--try", "1"]);
    assert_eq!(bad.code, Some(2), "{}", bad.stderr);
    let bad = ws.run(&[
        "--principal",
        &p.api,
        "logs",
        &run_id,
        "--task",
        "flaky",
        "--try",
        "0",
    ]);
    assert_eq!(bad.code, Some(2), "{}", bad.stderr);
}

/// `sleep 600` under `timeout: 1s` ends FAILED/timeout within the grace plus 2 s, and the
/// grandchild it started is gone, also when the task ignores SIGTERM.
#[test]
fn a_timeout_ends_the_task_and_its_whole_process_group() {
    let ws = Workspace::new();
    ws.write(
        "wf/stuck.yml",
        r#"name: Stuck
kill_grace: 1s
tasks:
  polite:
    name: Polite
    timeout: 1s
    config: !Shell {script: "echo $$; sh -c 'sleep 600 & wait'"}
  stubborn:
    name: Stubborn
    timeout: 1s
    config: !Shell {script: "trap '' TERM; echo $$; sh -c 'sleep 600 & wait'"}
"#,
    );
    let p = Principal::start(&ws, &[], &[]);
    let _agent = start_agent(&ws, &p.api, "one", 2, &[]);
    let api = Api::connect(&p.api);
    let started = std::time::Instant::now();
    let run_id = api.trigger("stuck");
    let run = api.wait_done(&run_id, LONG);
    // 1 s of timeout, 1 s of grace, 2 s of margin.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(run.summary.status, RunStatus::Failed);
    let logs = api.logs(&run_id);
    for name in ["polite", "stubborn"] {
        let t = task(&run, name);
        assert_eq!(t.status, TaskStatus::Failed, "{name}");
        assert!(
            t.reason
                .as_deref()
                .unwrap_or_default()
                .starts_with("timeout"),
            "{t:?}"
        );
        let pgid: u32 = logs
            .iter()
            .find(|l| l.task_id.as_str() == name)
            .and_then(|l| l.line.trim().parse().ok())
            .unwrap_or_else(|| panic!("no pid line of {name}: {logs:?}"));
        assert_eq!(
            group_members(pgid),
            Vec::<u32>::new(),
            "{name}: processes left"
        );
    }
}

#[test]
fn a_workflow_timeout_fails_the_run_and_skips_what_did_not_start() {
    let ws = Workspace::new();
    ws.write(
        "wf/slow.yml",
        r#"name: Slow
timeout: 1s
kill_grace: 1s
tasks:
  long: {name: Long, config: !Shell {script: "sleep 600"}}
  next: {name: Next, depends: [long], config: !Shell {script: "true"}}
"#,
    );
    let p = Principal::start(&ws, &[], &[]);
    let _agent = start_agent(&ws, &p.api, "one", 1, &[]);
    let api = Api::connect(&p.api);
    let run = api.wait_done(&api.trigger("slow"), LONG);
    assert_eq!(run.summary.status, RunStatus::Failed);
    let long = task(&run, "long");
    assert_eq!(long.status, TaskStatus::Failed);
    assert!(
        long.reason
            .as_deref()
            .unwrap_or_default()
            .starts_with("timeout"),
        "{long:?}"
    );
    assert_eq!(task(&run, "next").status, TaskStatus::Skipped);
}

/// The example workflow of each trigger rule, run as shipped.
#[test]
fn each_trigger_rule_example_behaves_as_documented() {
    let ws = Workspace::new();
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows/examples");
    for name in [
        "trigger_all_done",
        "trigger_one_failed",
        "trigger_all_failed",
        "trigger_none_failed",
    ] {
        let text = std::fs::read_to_string(examples.join(format!("{name}.yml"))).unwrap();
        ws.write(&format!("wf/{name}.yml"), &text);
    }
    let p = Principal::start(&ws, &[], &[]);
    let _agent = start_agent(&ws, &p.api, "one", 4, &[]);
    let api = Api::connect(&p.api);
    let statuses = |run: &RunDetail| -> Vec<(String, TaskStatus)> {
        run.tasks
            .iter()
            .map(|t| (t.task_id.to_string(), t.status))
            .collect()
    };
    let s = |v: &[(&str, TaskStatus)]| -> Vec<(String, TaskStatus)> {
        v.iter().map(|(t, s)| (t.to_string(), *s)).collect()
    };
    use TaskStatus::{Completed, Failed, Skipped};
    let run = api.wait_done(&api.trigger("trigger_all_done"), LONG);
    assert_eq!(
        run.summary.status,
        RunStatus::Failed,
        "a cleanup does not hide the failure"
    );
    assert_eq!(
        statuses(&run),
        s(&[("work", Failed), ("cleanup", Completed)])
    );

    let run = api.wait_done(&api.trigger("trigger_one_failed"), LONG);
    assert_eq!(run.summary.status, RunStatus::Completed);
    assert_eq!(
        statuses(&run),
        s(&[
            ("extract", Completed),
            ("check", Completed),
            ("alert", Skipped),
            ("report", Completed)
        ])
    );
    let failing = api.call(async |c| {
        c.trigger(
            "trigger_one_failed",
            [("fail".to_owned(), "yes".to_owned())].into(),
            "api",
        )
        .await
    });
    let run = api.wait_done(&failing.unwrap().to_string(), LONG);
    assert_eq!(run.summary.status, RunStatus::Failed);
    assert_eq!(
        statuses(&run),
        s(&[
            ("extract", Completed),
            ("check", Failed),
            ("alert", Completed),
            ("report", Skipped)
        ])
    );

    let run = api.wait_done(&api.trigger("trigger_all_failed"), LONG);
    assert_eq!(
        statuses(&run),
        s(&[
            ("primary", Failed),
            ("secondary", Failed),
            ("fallback", Completed)
        ])
    );

    let run = api.wait_done(&api.trigger("trigger_none_failed"), LONG);
    assert_eq!(run.summary.status, RunStatus::Completed);
    assert_eq!(
        statuses(&run),
        s(&[
            ("build", Completed),
            ("optional", Skipped),
            ("publish", Completed)
        ])
    );
}

/// `inherit_env: false` hides what the agent has; `env` of the workflow and the task (with a
/// parameter) are there.
#[test]
fn inherit_env_false_hides_the_agents_variables() {
    let ws = Workspace::new();
    ws.write(
        "wf/env.yml",
        r#"name: Env
env: {STAGE: test}
params:
  region: eu
tasks:
  open:
    name: Inherits
    config: !Shell {script: 'echo "open ${SECRET_TOKEN:-unset} $STAGE"'}
  closed:
    name: Minimal
    inherit_env: false
    env: {REGION: "{{ params.region }}"}
    config: !Shell {script: 'echo "closed ${SECRET_TOKEN:-unset} $STAGE $REGION ${PATH:+path} $CDKTR_TASK_ID"'}
"#,
    );
    let p = Principal::start(&ws, &[], &[]);
    let mut cmd = agent_command(&ws, &p.api, "env", 2, &[]);
    cmd.env("SECRET_TOKEN", "hunter2");
    let _agent = Daemon::start(cmd, "cdktr-agent ready", ws.path().join("agent.stderr"));
    let api = Api::connect(&p.api);
    let run_id = api.trigger("env");
    let run = api.wait_done(&run_id, LONG);
    assert_eq!(run.summary.status, RunStatus::Completed, "{run:#?}");
    let lines: Vec<String> = api.logs(&run_id).into_iter().map(|l| l.line).collect();
    assert!(lines.contains(&"open hunter2 test".to_owned()), "{lines:?}");
    assert!(
        lines.contains(&"closed unset test eu path closed".to_owned()),
        "{lines:?}"
    );
    // The agent's own log never names a value of `env`.
    let agent_log = std::fs::read_to_string(ws.path().join("agent.stderr")).unwrap_or_default();
    assert!(!agent_log.contains("test eu"), "{agent_log}");
}

/// Twenty queued runs of a workflow that needs `gpu` all land on the agent with the label
/// while an agent without it sits idle; with no such agent connected, runs stay queued.
#[test]
fn labelled_workflows_run_only_on_agents_with_the_labels() {
    let ws = Workspace::new();
    ws.write(
        "wf/gpu.yml",
        "name: Gpu\nagent: {labels: [gpu, region=eu]}\ntasks:\n  t: {name: T, config: !Shell {script: 'true'}}\n",
    );
    ws.write(
        "wf/any.yml",
        "name: Any\ntasks:\n  t: {name: T, config: !Shell {script: 'true'}}\n",
    );
    let p = Principal::start(&ws, &[], &[]);
    let _plain = start_agent(&ws, &p.api, "plain", 8, &[]);
    let api = Api::connect(&p.api);
    let waiting: Vec<String> = (0..3).map(|_| api.trigger("gpu")).collect();
    // Nobody may take them: they stay queued while other work passes them.
    let other = api.wait_done(&api.trigger("any"), LONG);
    assert_eq!(other.summary.status, RunStatus::Completed);
    for run_id in &waiting {
        assert_eq!(api.run(run_id).summary.status, RunStatus::Queued);
    }
    // The principal warned that no agent has ever had these labels.
    wait_for(LONG, "the unknown-label warning", || {
        let log = std::fs::read_to_string(&p.daemon.stderr).unwrap_or_default();
        (log.contains("workflow requires a label no agent has ever had")
            && log.contains("label=region=eu"))
        .then_some(())
    });
    // Why they wait, by `explain` and `runs show`.
    let why = ws.run(&["--principal", &p.api, "explain", &waiting[0]]);
    assert_eq!(why.code, Some(0), "{}", why.stderr);
    assert!(
        why.stdout
            .contains("needs labels gpu, region=eu; 1 agent connected, none has them all")
            && why.stdout.contains("lacks gpu, region=eu"),
        "{}",
        why.stdout
    );
    let show = ws.run(&["--principal", &p.api, "runs", "show", &waiting[0]]);
    assert!(
        show.stdout.contains("waiting:   needs labels gpu"),
        "{}",
        show.stdout
    );
    let json = ws.run(&["--principal", &p.api, "explain", &waiting[0], "--json"]);
    let reply: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(reply["status"], "QUEUED");
    assert_eq!(
        ws.run(&["--principal", &p.api, "explain", "01NOSUCHRUN"])
            .code,
        Some(4)
    );
    let _gpu = start_agent(
        &ws,
        &p.api,
        "gpu",
        8,
        &[
            "--label",
            "gpu",
            "--label",
            "region=eu",
            "--label",
            "disk=ssd",
        ],
    );
    let mut runs = waiting;
    runs.extend((0..17).map(|_| api.trigger("gpu")));
    for run_id in &runs {
        let run = api.wait_done(run_id, LONG);
        assert_eq!(run.summary.status, RunStatus::Completed);
        let agent = run.summary.agent.map(|a| a.to_string()).unwrap_or_default();
        assert!(agent.starts_with("gpu@"), "{run_id} ran on {agent}");
    }
    let agents = api.agents();
    let gpu = agents
        .iter()
        .find(|a| a.agent_id.as_str().starts_with("gpu@"))
        .unwrap();
    assert_eq!(gpu.labels.get("region").map(String::as_str), Some("eu"));
    assert_eq!(gpu.labels.get("gpu").map(String::as_str), Some(""));
    // A bad label is refused at start.
    let bad = ws.run(&["start", "agent", "--label", "has space"]);
    assert_eq!(bad.code, Some(2), "{}", bad.stderr);
    assert!(bad.stderr.contains("label `has space`"), "{}", bad.stderr);
}

/// `max_active_runs: 2`: however many are queued and however many slots are free, a third
/// run of the workflow never starts while two run.
#[test]
fn max_active_runs_never_lets_a_third_run_start() {
    let ws = Workspace::new();
    ws.write(
        "wf/two.yml",
        "name: Two\nmax_active_runs: 2\ntasks:\n  t: {name: T, config: !Shell {script: 'sleep 0.3'}}\n",
    );
    ws.write(
        "wf/free.yml",
        "name: Free\ntasks:\n  t: {name: T, config: !Shell {script: 'true'}}\n",
    );
    let p = Principal::start(&ws, &[], &[]);
    let _agent = start_agent(&ws, &p.api, "big", 8, &[]);
    let api = Api::connect(&p.api);
    let runs: Vec<String> = (0..6).map(|_| api.trigger("two")).collect();
    // The sixth waits for one of the two running (or for its turn in the queue).
    let why = ws.run(&["--principal", &p.api, "explain", &runs[5]]);
    assert!(
        why.stdout.contains("max_active_runs 2 reached")
            || why.stdout.contains("RUNNING")
            || why.stdout.contains("ended"),
        "{}",
        why.stdout
    );
    // Other workflows pass the waiting runs.
    let other = api.wait_done(&api.trigger("free"), LONG);
    assert_eq!(other.summary.status, RunStatus::Completed);
    let mut spans = Vec::new();
    for run_id in &runs {
        let run = api.wait_done(run_id, LONG);
        assert_eq!(run.summary.status, RunStatus::Completed);
        spans.push((
            run.summary.started_at.unwrap(),
            run.summary.finished_at.unwrap(),
        ));
    }
    // At every start, at most two runs (this one included) are between start and finish.
    for (start, _) in &spans {
        let at_once = spans
            .iter()
            .filter(|(s, f)| s <= start && start < f)
            .count();
        assert!(at_once <= 2, "{at_once} runs at {start}: {spans:?}");
    }
    wait_for(LONG, "the queue to empty", || {
        (api.status().queue_length == 0).then_some(())
    });
}

/// `agent.prefer` names the agent that takes the runs while it has a free slot, among
/// agents that all qualify.
#[test]
fn a_preferred_agent_takes_the_runs_it_can() {
    let ws = Workspace::new();
    ws.write(
        "wf/pref.yml",
        "name: Pref\nagent: {labels: [gpu], prefer: second}\ntasks:\n  t: {name: T, config: !Shell {script: 'true'}}\n",
    );
    let p = Principal::start(&ws, &[], &[]);
    let _first = start_agent(&ws, &p.api, "first", 8, &["--label", "gpu"]);
    let _second = start_agent(&ws, &p.api, "second", 1, &["--label", "gpu"]);
    let api = Api::connect(&p.api);
    for _ in 0..5 {
        // A run is done once its last record is stored; its agent frees the slot a moment
        // later and tells the principal: only then is the preferred agent free again.
        wait_for(LONG, "the preferred agent's slot to be free", || {
            api.agents()
                .iter()
                .any(|a| a.agent_id.to_string().starts_with("second@") && a.ready_slots == 1)
                .then_some(())
        });
        let run = api.wait_done(&api.trigger("pref"), LONG);
        assert_eq!(run.summary.status, RunStatus::Completed);
        let agent = run.summary.agent.map(|a| a.to_string()).unwrap_or_default();
        assert!(agent.starts_with("second@"), "ran on {agent}");
    }
}
