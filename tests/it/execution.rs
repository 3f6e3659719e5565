//! The execution loop with real processes: principal, agents, child tasks, DuckDB.

use std::time::Duration;

use cdktr::model::{RunStatus, TaskStatus};
use cdktr::protocol::control::RunDetail;

use crate::common::cluster::{db_rows, start_agent, wait_for, Api, Principal};
use crate::common::Workspace;

const LONG: Duration = Duration::from_secs(60);

fn task<'a>(run: &'a RunDetail, id: &str) -> &'a cdktr::protocol::control::TaskRunView {
    run.tasks
        .iter()
        .find(|t| t.task_id.as_str() == id)
        .unwrap_or_else(|| panic!("no task {id} in {run:#?}"))
}

#[test]
fn diamond_runs_each_task_once_and_joins_after_both_branches() {
    let ws = Workspace::new();
    ws.write(
        "wf/diamond.yml",
        r#"name: Diamond
tasks:
  a: {name: A, config: !Shell {script: "echo a >> ran.txt"}}
  b: {name: B, depends: [a], config: !Shell {script: "sleep 0.3; echo b >> ran.txt"}}
  c: {name: C, depends: [a], config: !Shell {script: "sleep 0.5; echo c >> ran.txt"}}
  d: {name: D, depends: [b, c], config: !Shell {script: "echo d >> ran.txt"}}
"#,
    );
    let p = Principal::start(&ws, &[], &[]);
    let _agent = start_agent(&ws, &p.api, "one", 4, &[]);
    let api = Api::connect(&p.api);
    let run = api.wait_done(&api.trigger("diamond"), LONG);
    assert_eq!(run.summary.status, RunStatus::Completed, "{run:#?}");
    let mut ran: Vec<String> = std::fs::read_to_string(ws.path().join("ran.txt"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    ran.sort();
    assert_eq!(ran, ["a", "b", "c", "d"], "each task exactly once");
    let (b, c, d) = (task(&run, "b"), task(&run, "c"), task(&run, "d"));
    let d_start = d.started_at.unwrap();
    assert!(
        d_start >= b.finished_at.unwrap(),
        "d started before b ended"
    );
    assert!(
        d_start >= c.finished_at.unwrap(),
        "d started before c ended"
    );
    // b and c ran side by side.
    assert!(
        b.started_at.unwrap() < c.finished_at.unwrap()
            && c.started_at.unwrap() < b.finished_at.unwrap()
    );
}

#[test]
fn fan_out_tasks_overlap_on_one_agent() {
    let ws = Workspace::new();
    let mut yaml = String::from("name: Fan out\ntasks:\n");
    for i in 0..8 {
        yaml.push_str(&format!(
            "  t{i}: {{name: T{i}, config: !Subprocess {{cmd: sleep, args: [\"1\"]}}}}\n"
        ));
    }
    ws.write("wf/fan.yml", &yaml);
    let p = Principal::start(&ws, &[], &[]);
    let _agent = start_agent(&ws, &p.api, "one", 1, &[]);
    let api = Api::connect(&p.api);
    let run = api.wait_done(&api.trigger("fan"), LONG);
    assert_eq!(run.summary.status, RunStatus::Completed);
    let last_start = run
        .tasks
        .iter()
        .map(|t| t.started_at.unwrap())
        .max()
        .unwrap();
    let first_end = run
        .tasks
        .iter()
        .map(|t| t.finished_at.unwrap())
        .min()
        .unwrap();
    assert!(
        last_start < first_end,
        "all 8 tasks must be running at once"
    );
    let elapsed = run.summary.finished_at.unwrap() - run.summary.started_at.unwrap();
    eprintln!("fan-out of 8 x 1 s took {} ms", elapsed.num_milliseconds());
}

#[test]
fn failing_task_skips_descendants_while_independent_branch_completes() {
    let ws = Workspace::new();
    ws.write(
        "wf/mixed.yml",
        r#"name: Mixed
tasks:
  a: {name: A, config: !Shell {script: "true"}}
  b: {name: B, depends: [a], config: !Shell {script: "echo failing >&2; exit 3"}}
  c: {name: C, depends: [b], config: !Shell {script: "echo must not run > c.txt"}}
  e: {name: E, depends: [c], config: !Shell {script: "true"}}
  x: {name: X, config: !Shell {script: "sleep 0.2"}}
  y: {name: Y, depends: [x], config: !Shell {script: "echo y"}}
"#,
    );
    let p = Principal::start(&ws, &[], &[]);
    let _agent = start_agent(&ws, &p.api, "one", 1, &[]);
    let api = Api::connect(&p.api);
    let run_id = api.trigger("mixed");
    let run = api.wait_done(&run_id, LONG);
    assert_eq!(run.summary.status, RunStatus::Failed);
    assert_eq!(task(&run, "a").status, TaskStatus::Completed);
    let b = task(&run, "b");
    assert_eq!((b.status, b.exit_code), (TaskStatus::Failed, Some(3)));
    for skipped in ["c", "e"] {
        let t = task(&run, skipped);
        assert_eq!(t.status, TaskStatus::Skipped, "{skipped}");
        assert!(
            t.reason.as_deref().unwrap_or_default().contains("`b`"),
            "{t:?}"
        );
        assert!(t.started_at.is_none());
    }
    assert_eq!(task(&run, "x").status, TaskStatus::Completed);
    assert_eq!(task(&run, "y").status, TaskStatus::Completed);
    assert!(!ws.path().join("c.txt").exists());
    let logs = api.logs(&run_id);
    assert!(logs
        .iter()
        .any(|l| l.task_id.as_str() == "b" && l.line == "failing"));
}

#[test]
fn tasks_that_cannot_start_fail_with_the_os_error_in_their_log() {
    let ws = Workspace::new();
    ws.write(
        "wf/broken.yml",
        r#"name: Broken
tasks:
  missing: {name: M, config: !Subprocess {cmd: /no/such/binary}}
  badcwd: {name: B, config: !Subprocess {cmd: "true", cwd: /no/such/dir}}
  nouv: {name: U, config: !UvPython {script_path: x.py, uv_path: /no/such/uv}}
  env: {name: E, config: !Subprocess {cmd: sh, args: ["-c", "echo $CDKTR_RUN_ID $CDKTR_WORKFLOW_ID $CDKTR_TASK_ID $FOO"], env: {FOO: bar}}}
"#,
    );
    let p = Principal::start(&ws, &[], &[]);
    let _agent = start_agent(&ws, &p.api, "one", 1, &[]);
    let api = Api::connect(&p.api);
    let run_id = api.trigger("broken");
    let run = api.wait_done(&run_id, LONG);
    assert_eq!(run.summary.status, RunStatus::Failed);
    let logs = api.logs(&run_id);
    let log_of = |t: &str| {
        logs.iter()
            .filter(|l| l.task_id.as_str() == t)
            .map(|l| l.line.clone())
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(task(&run, "missing").status, TaskStatus::Failed);
    assert!(
        log_of("missing").contains("cannot start `/no/such/binary`"),
        "{}",
        log_of("missing")
    );
    assert!(
        log_of("missing").contains("os error 2"),
        "{}",
        log_of("missing")
    );
    assert!(log_of("badcwd").contains("working directory `/no/such/dir` does not exist"));
    assert!(log_of("nouv").contains("Install uv"), "{}", log_of("nouv"));
    assert_eq!(task(&run, "env").status, TaskStatus::Completed);
    assert_eq!(log_of("env"), format!("{run_id} broken env bar"));
}

#[test]
fn ten_megabytes_on_each_stream_are_stored_completely_and_in_order() {
    const LINES: usize = 100_000; // 100 bytes each: 10 MB per stream
    let ws = Workspace::new();
    let pad = "x".repeat(88);
    ws.write(
        "wf/loud.yml",
        &format!(
            "name: Loud\ntasks:\n  loud:\n    name: Loud\n    config: !Shell\n      script: |\n        \
             i=1; while [ $i -le {LINES} ]; do echo \"out $i {pad}\"; echo \"err $i {pad}\" >&2; i=$((i+1)); done\n"
        ),
    );
    let mut p = Principal::start(&ws, &[], &[]);
    let mut agent = start_agent(&ws, &p.api, "one", 1, &[]);
    let api = Api::connect(&p.api);
    let started = std::time::Instant::now();
    let run_id = api.trigger("loud");
    let run = api.wait_done(&run_id, Duration::from_secs(300));
    eprintln!("20 MB of output stored in {:?}", started.elapsed());
    assert_eq!(run.summary.status, RunStatus::Completed);
    agent.signal(nix::sys::signal::Signal::SIGTERM);
    agent.wait_exit(LONG);
    p.daemon.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(p.daemon.wait_exit(LONG).success());
    let rows = db_rows(
        &p.db,
        &format!(
            "SELECT stream, count(*), min(seq), max(seq), count(DISTINCT seq), \
             sum(CASE WHEN split_part(line, ' ', 2) = CAST(seq AS VARCHAR) \
                       AND split_part(line, ' ', 1) = CASE stream WHEN 'stdout' THEN 'out' ELSE 'err' END \
                  THEN 0 ELSE 1 END) \
             FROM logs WHERE run_id = '{run_id}' GROUP BY stream ORDER BY stream"
        ),
    );
    let n = LINES.to_string();
    assert_eq!(
        rows,
        vec![
            vec![
                "stderr".to_owned(),
                n.clone(),
                "1".into(),
                n.clone(),
                n.clone(),
                "0".into()
            ],
            vec![
                "stdout".to_owned(),
                n.clone(),
                "1".into(),
                n.clone(),
                n.clone(),
                "0".into()
            ],
        ]
    );
}

#[test]
fn two_single_slot_agents_share_ten_runs_and_never_run_two_at_once() {
    let ws = Workspace::new();
    std::fs::create_dir(ws.path().join("locks")).unwrap();
    ws.write(
        "wf/slot.yml",
        r#"name: One at a time
tasks:
  hold:
    name: Hold the agent's lock
    config: !Shell
      script: |
        mkdir "locks/$CDKTR_AGENT_ID" || { echo "two runs at once on $CDKTR_AGENT_ID" >&2; exit 1; }
        sleep 0.2
        rmdir "locks/$CDKTR_AGENT_ID"
"#,
    );
    let p = Principal::start(&ws, &[], &[]);
    let _a = start_agent(&ws, &p.api, "a", 1, &[]);
    let _b = start_agent(&ws, &p.api, "b", 1, &[]);
    let api = Api::connect(&p.api);
    let ids: Vec<String> = (0..10).map(|_| api.trigger("slot")).collect();
    let runs: Vec<RunDetail> = ids.iter().map(|id| api.wait_done(id, LONG)).collect();
    for r in &runs {
        assert_eq!(r.summary.status, RunStatus::Completed, "{r:#?}");
    }
    let on = |name: &str| {
        let mut mine: Vec<&RunDetail> = runs
            .iter()
            .filter(|r| {
                r.summary
                    .agent
                    .as_ref()
                    .is_some_and(|a| a.as_str().starts_with(&format!("{name}@")))
            })
            .collect();
        mine.sort_by_key(|r| r.summary.started_at);
        for pair in mine.windows(2) {
            assert!(
                pair[0].summary.finished_at.unwrap() <= pair[1].summary.started_at.unwrap(),
                "agent {name} held two runs at once"
            );
        }
        mine.len()
    };
    let (a, b) = (on("a"), on("b"));
    assert_eq!(a + b, 10);
    assert!(a > 0 && b > 0, "both agents take work: a={a} b={b}");
}

#[test]
fn killed_agent_makes_its_run_and_running_tasks_crashed() {
    let ws = Workspace::new();
    ws.write(
        "wf/slow.yml",
        "name: Slow\ntasks:\n  wait: {name: W, config: !Subprocess {cmd: sleep, args: [\"3\"]}}\n  \
         after: {name: A, depends: [wait], config: !Shell {script: \"true\"}}\n",
    );
    let p = Principal::start(&ws, &["--heartbeat-timeout", "1s"], &[]);
    let mut agent = start_agent(&ws, &p.api, "doomed", 1, &["--heartbeat-interval", "200ms"]);
    let api = Api::connect(&p.api);
    let run_id = api.trigger("slow");
    wait_for(LONG, "the task to run", || {
        let run = api.run(&run_id);
        (task(&run, "wait").status == TaskStatus::Running).then_some(())
    });
    agent.child.kill().unwrap(); // SIGKILL
    let killed_at = std::time::Instant::now();
    let run = api.wait_status(&run_id, RunStatus::Crashed, Duration::from_secs(10));
    eprintln!(
        "run CRASHED {:?} after the agent was killed",
        killed_at.elapsed()
    );
    assert_eq!(task(&run, "wait").status, TaskStatus::Crashed);
    assert_eq!(task(&run, "after").status, TaskStatus::Skipped);
    let agents = api.agents();
    assert_eq!(agents[0].state, "lost");

    // The lost agent comes back (a healed partition) and reports that attempt as a success:
    // the records are kept as late records and change nothing.
    use cdktr::model::{AgentId, RunId, TaskId};
    use cdktr::protocol::agent::{AgentInfo, AgentReply, AgentRequest, Record, RecordEvent};
    use cdktr::protocol::{Request, Response};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ghost =
        rt.block_on(async { cdktr::transport::Client::connect(&p.api, Duration::from_secs(5)) });
    let id: AgentId = agents[0].agent_id.clone();
    let ask = |r: AgentRequest| rt.block_on(ghost.request(Request::Agent(r)));
    let info = AgentInfo {
        id: id.clone(),
        name: "doomed".into(),
        host: agents[0].host.clone(),
        slots: 1,
        labels: Default::default(),
        version: "late".into(),
        instance: "late-1".into(),
    };
    assert!(ask(AgentRequest::Register {
        agent: info,
        running: vec![]
    })
    .is_ok());
    let record = |seq, event| Record {
        run_id: RunId::new(run_id.as_str()),
        attempt: 1,
        token: "whatever-it-had".into(),
        seq,
        ts: chrono::Utc::now(),
        event,
    };
    let late = vec![
        record(
            90,
            RecordEvent::Task {
                try_no: 1,
                task_id: TaskId::new("wait"),
                status: TaskStatus::Completed,
                exit_code: Some(0),
                reason: None,
            },
        ),
        record(
            91,
            RecordEvent::RunFinished {
                status: RunStatus::Completed,
            },
        ),
    ];
    match ask(AgentRequest::Report {
        agent_id: id,
        records: late,
    }) {
        Ok(Response::Agent(AgentReply::ReportAck { acks })) => assert_eq!(acks[0].up_to, 91),
        other => panic!("late report: {other:?}"),
    }
    let after = api.run(&run_id);
    assert_eq!(
        after.summary.status,
        RunStatus::Crashed,
        "a late report never changes a closed run"
    );
    assert_eq!(task(&after, "wait").status, TaskStatus::Crashed);
    assert_eq!(after.late_records, 2);
}

#[test]
fn an_agent_restarted_under_its_name_gets_its_lost_run_resolved_at_once() {
    let ws = Workspace::new();
    ws.write(
        "wf/slow.yml",
        "name: Slow\ntasks:\n  wait: {name: W, config: !Shell {script: \"echo started; sleep 3\"}}\n",
    );
    // The default 30 s heartbeat timeout: the run must not wait for it.
    let p = Principal::start(&ws, &[], &[]);
    let mut agent = start_agent(&ws, &p.api, "phoenix", 1, &[]);
    let api = Api::connect(&p.api);
    let first = api.trigger("slow");
    wait_for(LONG, "the task to print", || {
        api.logs(&first)
            .iter()
            .any(|l| l.line == "started")
            .then_some(())
    });
    agent.child.kill().unwrap();
    let _again = start_agent(&ws, &p.api, "phoenix", 1, &[]);
    let run = api.wait_status(&first, RunStatus::Crashed, Duration::from_secs(10));
    assert_eq!(task(&run, "wait").status, TaskStatus::Crashed);
    // The restarted agent has its slot back and takes new work.
    let second = api.trigger("slow");
    assert_eq!(
        api.wait_done(&second, LONG).summary.status,
        RunStatus::Completed
    );
}

#[test]
fn a_run_the_agent_never_received_is_queued_again_and_completed_elsewhere() {
    use cdktr::model::AgentId;
    use cdktr::protocol::agent::{AgentInfo, AgentReply, AgentRequest};
    use cdktr::protocol::{Request, Response};
    use cdktr::transport::Client;

    let ws = Workspace::new();
    ws.write(
        "wf/hello.yml",
        "name: Hello\ntasks:\n  a: {name: A, config: !Shell {script: \"echo hi\"}}\n",
    );
    let p = Principal::start(&ws, &["--heartbeat-timeout", "3s"], &[]);
    let api = Api::connect(&p.api);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // A simulated agent that takes a run and then, in its heartbeats, does not list it (as if
    // the assignment had been lost on the way).
    let id = AgentId::new("ghost@test");
    let ghost = rt.block_on(async { Client::connect(&p.api, Duration::from_secs(5)) });
    let ask = |request: AgentRequest| {
        rt.block_on(ghost.request_within(Request::Agent(request), Duration::from_secs(30)))
    };
    let info = AgentInfo {
        id: id.clone(),
        name: "ghost".into(),
        host: "test".into(),
        slots: 1,
        labels: Default::default(),
        version: "test".into(),
        instance: "ghost-1".into(),
    };
    assert!(matches!(
        ask(AgentRequest::Register {
            agent: info,
            running: vec![]
        }),
        Ok(Response::Agent(AgentReply::Registered { .. }))
    ));
    let run_id = api.trigger("hello");
    match ask(AgentRequest::PullWork {
        agent_id: id.clone(),
        free_slots: 1,
    }) {
        Ok(Response::Agent(AgentReply::Work { assignments, .. })) => {
            assert_eq!(assignments.len(), 1);
            assert_eq!(assignments[0].run_id.as_str(), run_id);
        }
        other => panic!("expected work: {other:?}"),
    }
    assert_eq!(api.run(&run_id).summary.attempt, 1);
    // Heartbeats without the run, past the grace period (a third of the 3 s timeout).
    wait_for(LONG, "the run to be queued again", || {
        let _ = ask(AgentRequest::Heartbeat {
            agent_id: id.clone(),
            running: vec![],
            free_slots: 0,
            spool: 0,
        });
        (api.run(&run_id).summary.status == RunStatus::Queued).then_some(())
    });
    let _agent = start_agent(&ws, &p.api, "real", 1, &[]);
    let run = api.wait_done(&run_id, LONG);
    assert_eq!(run.summary.status, RunStatus::Completed);
    assert_eq!(
        run.summary.attempt, 2,
        "a new attempt, with a new fencing token"
    );
    assert!(run
        .summary
        .agent
        .as_ref()
        .is_some_and(|a| a.as_str().starts_with("real@")));
}
