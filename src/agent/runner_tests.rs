use super::*;
use crate::model::{RunId, TaskConfig, WorkflowId};
use crate::protocol::agent::{Record, RecordEvent};

fn shell(id: &str, deps: &[&str], script: &str) -> Task {
    Task {
        id: TaskId::new(id),
        name: id.to_uppercase(),
        description: None,
        depends: deps.iter().map(|d| TaskId::new(*d)).collect(),
        config: TaskConfig::Shell {
            script: script.into(),
            shell: None,
            env: Default::default(),
            cwd: None,
        },
        retry: Default::default(),
        timeout: None,
        kill_grace: None,
        trigger_rule: Default::default(),
        env: Default::default(),
        inherit_env: None,
    }
}

fn workflow(tasks: Vec<Task>) -> Workflow {
    Workflow {
        id: WorkflowId::new("w"),
        name: "W".into(),
        description: None,
        file: "w.yml".into(),
        schedule: None,
        start_time: None,
        overlap: Default::default(),
        catchup: Default::default(),
        params: Default::default(),
        tasks,
        timeout: None,
        kill_grace: None,
        env: Default::default(),
        inherit_env: None,
        agent: Default::default(),
        max_active_runs: None,
    }
}

async fn run(w: &Workflow) -> (RunStatus, Vec<Record>) {
    run_with(w, &BTreeSet::new(), &RunStop::default()).await
}

/// Runs `w` reusing `reused`, stopped by `stop`: its final status and every record.
async fn run_with(
    w: &Workflow,
    reused: &BTreeSet<TaskId>,
    stop: &RunStop,
) -> (RunStatus, Vec<Record>) {
    let (recorder, mut rx) = RunRecorder::detached(RunId::new("r"));
    let status = run_dag(w, &BTreeMap::new(), reused, &recorder, stop).await;
    drop(recorder);
    let mut records = Vec::new();
    while let Some(r) = rx.recv().await {
        records.push(r);
    }
    (status, records)
}

fn final_status(records: &[Record], task: &str) -> Option<TaskStatus> {
    records.iter().rev().find_map(|r| match &r.event {
        RecordEvent::Task {
            task_id, status, ..
        } if task_id.as_str() == task => Some(*status),
        _ => None,
    })
}

#[tokio::test]
async fn an_empty_definition_ends_at_once() {
    let (status, records) = run(&workflow(vec![])).await;
    assert_eq!(status, RunStatus::Failed);
    assert!(records.is_empty());
}

#[tokio::test]
async fn a_dependency_on_a_missing_task_skips_instead_of_hanging() {
    let w = workflow(vec![
        shell("a", &[], "true"),
        shell("b", &["ghost"], "true"),
        shell("c", &["b"], "true"),
    ]);
    let (status, records) = run(&w).await;
    assert_eq!(status, RunStatus::Failed);
    assert_eq!(final_status(&records, "a"), Some(TaskStatus::Completed));
    assert_eq!(final_status(&records, "b"), Some(TaskStatus::Skipped));
    assert_eq!(final_status(&records, "c"), Some(TaskStatus::Skipped));
}

#[tokio::test]
async fn records_are_numbered_without_gaps() {
    let w = workflow(vec![
        shell("a", &[], "echo 1; echo 2 >&2"),
        shell("b", &[], "echo 3"),
        shell("c", &["a", "b"], "echo 4"),
    ]);
    let (status, records) = run(&w).await;
    assert_eq!(status, RunStatus::Completed);
    let seqs: Vec<u64> = records.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    // Each task: RUNNING once, then one terminal status.
    for t in ["a", "b", "c"] {
        let statuses: Vec<TaskStatus> = records
            .iter()
            .filter_map(|r| match &r.event {
                RecordEvent::Task {
                    task_id, status, ..
                } if task_id.as_str() == t => Some(*status),
                _ => None,
            })
            .collect();
        assert_eq!(
            statuses,
            [TaskStatus::Running, TaskStatus::Completed],
            "{t}"
        );
    }
}

#[tokio::test]
async fn cancellation_stops_running_tasks_and_cancels_the_rest() {
    let w = workflow(vec![
        shell("long", &[], "sleep 30"),
        shell("next", &["long"], "true"),
    ]);
    let stop = RunStop::default();
    let stopper = stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        stopper.stop(StopCause::Cancelled("cancelled by test".into()));
    });
    let (status, records) = run_with(&w, &BTreeSet::new(), &stop).await;
    assert_eq!(status, RunStatus::Cancelled);
    assert_eq!(final_status(&records, "long"), Some(TaskStatus::Cancelled));
    assert_eq!(final_status(&records, "next"), Some(TaskStatus::Cancelled));
}

fn with(mut task: Task, edit: impl FnOnce(&mut Task)) -> Task {
    edit(&mut task);
    task
}

fn statuses_of(records: &[Record], task: &str) -> Vec<(TaskStatus, u32)> {
    records
        .iter()
        .filter_map(|r| match &r.event {
            RecordEvent::Task {
                task_id,
                status,
                try_no,
                ..
            } if task_id.as_str() == task => Some((*status, *try_no)),
            _ => None,
        })
        .collect()
}

fn lines_of(records: &[Record], task: &str) -> Vec<(u32, u64, String)> {
    records
        .iter()
        .filter_map(|r| match &r.event {
            RecordEvent::Log {
                task_id,
                line,
                line_no,
                try_no,
                ..
            } if task_id.as_str() == task => Some((*try_no, *line_no, line.clone())),
            _ => None,
        })
        .collect()
}

fn span(s: &str) -> crate::model::Span {
    crate::model::Span::parse(s).unwrap()
}

/// Whether process `pid` still exists (a zombie no init reaped counts as gone).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z')
        })
        .unwrap_or(false)
}

#[tokio::test]
async fn a_task_failing_twice_succeeds_on_its_third_try_with_its_own_logs() {
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("n");
    let script = format!(
        "n=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}; echo try $n; [ $n -ge 3 ]",
        c = counter.display()
    );
    let w = workflow(vec![
        with(shell("flaky", &[], &script), |t| {
            t.retry.retries = 3;
            t.retry.delay = span("50ms");
        }),
        shell("after", &["flaky"], "echo after"),
    ]);
    let started = std::time::Instant::now();
    let (status, records) = run(&w).await;
    assert_eq!(status, RunStatus::Completed);
    use TaskStatus::{Completed, Retrying, Running};
    assert_eq!(
        statuses_of(&records, "flaky"),
        vec![
            (Running, 1),
            (Retrying, 1),
            (Running, 2),
            (Retrying, 2),
            (Running, 3),
            (Completed, 3)
        ]
    );
    // Each try's output is its own, numbered from 1.
    assert_eq!(
        lines_of(&records, "flaky"),
        vec![
            (1, 1, "try 1".to_owned()),
            (2, 1, "try 2".to_owned()),
            (3, 1, "try 3".to_owned())
        ]
    );
    assert_eq!(final_status(&records, "after"), Some(Completed));
    assert!(started.elapsed() >= std::time::Duration::from_millis(100));
}

#[tokio::test]
async fn a_task_out_of_retries_fails_and_skips_its_dependents() {
    let w = workflow(vec![
        with(shell("bad", &[], "exit 4"), |t| {
            t.retry.retries = 1;
            t.retry.delay = span("10ms");
        }),
        shell("after", &["bad"], "true"),
    ]);
    let (status, records) = run(&w).await;
    assert_eq!(status, RunStatus::Failed);
    let tries = statuses_of(&records, "bad");
    assert_eq!(tries.last(), Some(&(TaskStatus::Failed, 2)));
    assert_eq!(tries.len(), 4);
    assert_eq!(final_status(&records, "after"), Some(TaskStatus::Skipped));
}

#[tokio::test]
async fn trigger_rules_decide_who_runs_after_a_failure() {
    let rule = |id: &str, deps: &[&str], rule: TriggerRule| {
        with(shell(id, deps, "true"), |t| t.trigger_rule = rule)
    };
    let w = workflow(vec![
        shell("ok", &[], "true"),
        shell("bad", &[], "exit 1"),
        rule("cleanup", &["ok", "bad"], TriggerRule::AllDone),
        rule("alert", &["ok", "bad"], TriggerRule::OneFailed),
        rule("all_bad", &["ok", "bad"], TriggerRule::AllFailed),
        rule("none_bad", &["ok", "bad"], TriggerRule::NoneFailed),
        rule("default", &["ok", "bad"], TriggerRule::AllSuccess),
        rule("after_skip", &["default"], TriggerRule::NoneFailed),
    ]);
    let (status, records) = run(&w).await;
    // A cleanup that succeeded does not make the run succeed.
    assert_eq!(status, RunStatus::Failed);
    use TaskStatus::{Completed, Skipped};
    for (task, want) in [
        ("cleanup", Completed),
        ("alert", Completed),
        ("all_bad", Skipped),
        ("none_bad", Skipped),
        ("default", Skipped),
        ("after_skip", Completed),
    ] {
        assert_eq!(final_status(&records, task), Some(want), "{task}");
    }
    // Nothing failed: the alert is skipped and the run still COMPLETED.
    let w = workflow(vec![
        shell("ok", &[], "true"),
        rule("alert", &["ok"], TriggerRule::OneFailed),
    ]);
    let (status, records) = run(&w).await;
    assert_eq!(status, RunStatus::Completed);
    assert_eq!(final_status(&records, "alert"), Some(Skipped));
}

/// A task's timeout stops its whole process group: a grandchild too, also one that
/// ignores SIGTERM (after the grace); the try is FAILED with reason `timeout`.
#[tokio::test]
async fn a_timeout_kills_the_task_and_its_grandchildren() {
    let w = workflow(vec![
        with(
            shell("stubborn", &[], "trap '' TERM; sleep 600 & echo $!; wait"),
            |t| {
                t.timeout = Some(span("300ms"));
                t.kill_grace = Some(span("300ms"));
            },
        ),
        with(shell("polite", &[], "sleep 600 & echo $!; wait"), |t| {
            t.timeout = Some(span("300ms"));
        }),
    ]);
    let started = std::time::Instant::now();
    let (status, records) = run(&w).await;
    assert_eq!(status, RunStatus::Failed);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    for task in ["stubborn", "polite"] {
        let last = records.iter().rev().find_map(|r| match &r.event {
            RecordEvent::Task {
                task_id,
                status,
                reason,
                ..
            } if task_id.as_str() == task => Some((*status, reason.clone())),
            _ => None,
        });
        let (status, reason) = last.unwrap();
        assert_eq!(status, TaskStatus::Failed, "{task}");
        assert!(reason.unwrap_or_default().starts_with("timeout"), "{task}");
        let pid: u32 = lines_of(&records, task)[0].2.trim().parse().unwrap();
        assert!(!alive(pid), "{task}: grandchild {pid} survived");
    }
}

#[tokio::test]
async fn the_workflow_timeout_fails_running_tasks_and_skips_the_rest() {
    let mut w = workflow(vec![
        shell("long", &[], "sleep 600"),
        shell("next", &["long"], "true"),
    ]);
    w.timeout = Some(span("300ms"));
    let (status, records) = run(&w).await;
    assert_eq!(status, RunStatus::Failed);
    assert_eq!(final_status(&records, "long"), Some(TaskStatus::Failed));
    assert_eq!(final_status(&records, "next"), Some(TaskStatus::Skipped));
}

#[tokio::test]
async fn reused_tasks_are_not_run_again() {
    let w = workflow(vec![
        shell("done_before", &[], "exit 1"),
        shell("then", &["done_before"], "true"),
    ]);
    let reused = BTreeSet::from([TaskId::new("done_before")]);
    let (status, records) = run_with(&w, &reused, &RunStop::default()).await;
    assert_eq!(status, RunStatus::Completed);
    assert_eq!(
        statuses_of(&records, "done_before"),
        vec![(TaskStatus::Reused, 1)]
    );
    assert_eq!(final_status(&records, "then"), Some(TaskStatus::Completed));
}
