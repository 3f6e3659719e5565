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
    // Whatever never started (cancellation, or a crashed executor upstream) is skipped.
    for (i, t) in tasks.iter().enumerate() {
        if matches!(status[i], TaskStatus::Pending | TaskStatus::Running) {
            let (next, reason) = if cancel.is_cancelled() {
                (
                    TaskStatus::Cancelled,
                    "cancelled before it started: the agent is shutting down",
                )
            } else {
                (TaskStatus::Crashed, "its executor stopped unexpectedly")
            };
            status[i] = next;
            recorder.task(&t.id, next, None, Some(reason.into()));
        }
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
