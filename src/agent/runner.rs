//! Running a workflow's task DAG: a task starts when all its dependencies COMPLETED,
//! independent tasks run in parallel, a failed task's descendants are SKIPPED with the reason,
//! and every task runs at most once.

use std::collections::BTreeMap;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::executor::{execute, Outcome};
use super::reporter::RunRecorder;
use crate::model::{RunStatus, TaskStatus, Workflow};

/// Runs every task of `workflow` and returns the run's final status.
pub async fn run_dag(
    workflow: &Workflow,
    env: &BTreeMap<String, String>,
    recorder: &RunRecorder,
    cancel: &CancellationToken,
) -> RunStatus {
    let tasks = &workflow.tasks;
    if tasks.is_empty() {
        return RunStatus::Failed;
    }
    let index: BTreeMap<&str, usize> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id.as_str(), i))
        .collect();
    let mut status = vec![TaskStatus::Pending; tasks.len()];
    // Dependencies that name no task can never be met: skip those tasks up front.
    let deps: Vec<Vec<usize>> = tasks
        .iter()
        .map(|t| {
            t.depends
                .iter()
                .filter_map(|d| index.get(d.as_str()).copied())
                .collect()
        })
        .collect();
    for (i, t) in tasks.iter().enumerate() {
        if let Some(missing) = t.depends.iter().find(|d| !index.contains_key(d.as_str())) {
            status[i] = TaskStatus::Skipped;
            recorder.task(
                &t.id,
                TaskStatus::Skipped,
                None,
                Some(format!("depends on unknown task `{missing}`")),
            );
            skip_descendants(workflow, &deps, &mut status, i, recorder);
        }
    }
    let mut running: JoinSet<(usize, Outcome)> = JoinSet::new();
    loop {
        if !cancel.is_cancelled() {
            for i in 0..tasks.len() {
                let ready = status[i] == TaskStatus::Pending
                    && deps[i].iter().all(|&d| status[d] == TaskStatus::Completed);
                if !ready {
                    continue;
                }
                status[i] = TaskStatus::Running;
                recorder.task(&tasks[i].id, TaskStatus::Running, None, None);
                let (task, env, recorder, cancel) = (
                    tasks[i].clone(),
                    env.clone(),
                    recorder.clone(),
                    cancel.clone(),
                );
                running.spawn(async move { (i, execute(&task, &env, &recorder, &cancel).await) });
            }
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let (i, outcome) = match joined {
            Ok(done) => done,
            Err(e) => {
                // A panic inside the executor: the task's fate is unknown, treat it as crashed.
                tracing::error!(error = %e, "task executor failed");
                continue;
            }
        };
        status[i] = outcome.status;
        recorder.task(
            &tasks[i].id,
            outcome.status,
            outcome.exit_code,
            outcome.reason.clone(),
        );
        if outcome.status != TaskStatus::Completed {
            skip_descendants(workflow, &deps, &mut status, i, recorder);
        }
    }
    // What never ended: tasks left pending never started (cancellation, or a dependency that
    // did not complete); a task still "running" lost its executor.
    for (i, t) in tasks.iter().enumerate() {
        let (next, reason) = match status[i] {
            TaskStatus::Pending if cancel.is_cancelled() => (
                TaskStatus::Skipped,
                "not run: the run was cancelled before it started",
            ),
            TaskStatus::Pending => (
                TaskStatus::Skipped,
                "not run: a dependency did not complete",
            ),
            TaskStatus::Running => (TaskStatus::Crashed, "its executor stopped unexpectedly"),
            _ => continue,
        };
        status[i] = next;
        recorder.task(&t.id, next, None, Some(reason.into()));
    }
    if cancel.is_cancelled() {
        RunStatus::Cancelled
    } else if status.iter().any(|s| *s != TaskStatus::Completed) {
        RunStatus::Failed
    } else {
        RunStatus::Completed
    }
}

/// Marks every pending task downstream of `failed` SKIPPED, naming the task that failed.
fn skip_descendants(
    workflow: &Workflow,
    deps: &[Vec<usize>],
    status: &mut [TaskStatus],
    failed: usize,
    recorder: &RunRecorder,
) {
    let failed_id = &workflow.tasks[failed].id;
    let mut frontier = vec![failed];
    while let Some(node) = frontier.pop() {
        for (i, ds) in deps.iter().enumerate() {
            if ds.contains(&node) && status[i] == TaskStatus::Pending {
                status[i] = TaskStatus::Skipped;
                recorder.task(
                    &workflow.tasks[i].id,
                    TaskStatus::Skipped,
                    None,
                    Some(format!("upstream task `{failed_id}` did not complete")),
                );
                frontier.push(i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{RunId, Task, TaskConfig, TaskId, WorkflowId};
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
        }
    }

    async fn run(w: &Workflow) -> (RunStatus, Vec<Record>) {
        let (recorder, mut rx) = RunRecorder::detached(RunId::new("r"));
        let status = run_dag(w, &BTreeMap::new(), &recorder, &CancellationToken::new()).await;
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
        let (recorder, mut rx) = RunRecorder::detached(RunId::new("r"));
        let cancel = CancellationToken::new();
        let stopper = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            stopper.cancel();
        });
        let status = run_dag(&w, &BTreeMap::new(), &recorder, &cancel).await;
        drop(recorder);
        let mut records = Vec::new();
        while let Some(r) = rx.recv().await {
            records.push(r);
        }
        assert_eq!(status, RunStatus::Cancelled);
        assert_eq!(final_status(&records, "long"), Some(TaskStatus::Cancelled));
        assert_eq!(final_status(&records, "next"), Some(TaskStatus::Skipped));
    }
}
