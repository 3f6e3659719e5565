//! Running a workflow's task DAG: a task starts once its dependencies have all ended and its
//! trigger rule says so (by default: all of them COMPLETED), independent tasks run in
//! parallel, a failed try is tried again while the task has retries left (after its delay),
//! and the workflow's timeout stops everything still going.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::task::JoinSet;

use super::executor::{execute, Limits, Outcome, TaskEnv};
use super::reporter::RunRecorder;
use super::stop::{RunStop, StopCause};
use crate::model::{Decision, RunStatus, Task, TaskId, TaskStatus, TriggerRule, Workflow};

/// Runs every task of `workflow` and returns the run's final status. Tasks in `reused`
/// completed in the run this one reruns: they are marked REUSED and not executed.
pub async fn run_dag(
    workflow: &Workflow,
    run_env: &BTreeMap<String, String>,
    reused: &BTreeSet<TaskId>,
    recorder: &RunRecorder,
    stop: &RunStop,
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
    // A definition with a dependency on no task (validation prevents it) never succeeds.
    let mut broken = false;
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
        // Dependencies that name no task can never be met (validation prevents them).
        if let Some(missing) = t.depends.iter().find(|d| !index.contains_key(d.as_str())) {
            broken = true;
            status[i] = TaskStatus::Skipped;
            recorder.task(
                &t.id,
                TaskStatus::Skipped,
                None,
                Some(format!("depends on unknown task `{missing}`")),
            );
        } else if reused.contains(&t.id) {
            status[i] = TaskStatus::Reused;
            recorder.task(
                &t.id,
                TaskStatus::Reused,
                None,
                Some("completed in the run this one reruns".into()),
            );
        }
    }
    let deadline = workflow
        .timeout
        .map(|t| (tokio::time::Instant::now() + t.0, t));
    let mut running: JoinSet<(usize, Outcome)> = JoinSet::new();
    let mut dag = Dag {
        workflow,
        deps,
        cause: vec![None; status.len()],
        status,
    };
    loop {
        if !stop.is_stopped() {
            dag.start_ready(&mut running, run_env, recorder, stop);
        }
        let joined = tokio::select! {
            joined = running.join_next() => joined,
            _ = until(deadline.map(|(at, _)| at)), if !stop.is_stopped() => {
                if let Some((_, after)) = deadline {
                    stop.stop(StopCause::Timeout(after));
                }
                continue;
            }
        };
        let Some(joined) = joined else {
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
        dag.status[i] = outcome.status;
        recorder.task(
            &tasks[i].id,
            outcome.status,
            outcome.exit_code,
            outcome.reason.clone(),
        );
    }
    let mut status = dag.status;
    // What never ended: tasks left pending never started (the run stopped first); a task
    // still "running" lost its executor.
    let cause = stop.cause();
    for (i, t) in tasks.iter().enumerate() {
        let (next, reason) = match (status[i], &cause) {
            (TaskStatus::Pending, Some(cause)) => cause.ends_pending(),
            (TaskStatus::Pending, None) => (
                TaskStatus::Skipped,
                "not run: a dependency did not complete".into(),
            ),
            (TaskStatus::Running | TaskStatus::Retrying, _) => (
                TaskStatus::Crashed,
                "its executor stopped unexpectedly".into(),
            ),
            _ => continue,
        };
        status[i] = next;
        recorder.task(&t.id, next, None, Some(reason));
    }
    match cause {
        Some(StopCause::Shutdown | StopCause::Cancelled(_)) => RunStatus::Cancelled,
        Some(StopCause::Timeout(_)) => RunStatus::Failed,
        None if broken
            || status.iter().any(|s| {
                matches!(
                    s,
                    TaskStatus::Failed | TaskStatus::Crashed | TaskStatus::Cancelled
                )
            }) =>
        {
            RunStatus::Failed
        }
        None => RunStatus::Completed,
    }
}

/// Sleeps until `at`, or forever.
async fn until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A run's tasks while it runs: their statuses, and for a task skipped because a dependency
/// did not complete, the task at the root of that (the one that failed).
struct Dag<'a> {
    workflow: &'a Workflow,
    deps: Vec<Vec<usize>>,
    status: Vec<TaskStatus>,
    cause: Vec<Option<usize>>,
}

impl Dag<'_> {
    /// Decides every pending task whose dependencies have all ended: starts it or skips it by
    /// its trigger rule (a skip can decide the tasks after it, so this repeats until nothing
    /// changes).
    fn start_ready(
        &mut self,
        running: &mut JoinSet<(usize, Outcome)>,
        run_env: &BTreeMap<String, String>,
        recorder: &RunRecorder,
        stop: &RunStop,
    ) {
        let tasks = &self.workflow.tasks;
        loop {
            let mut changed = false;
            for (i, task) in tasks.iter().enumerate() {
                if self.status[i] != TaskStatus::Pending
                    || !self.deps[i].iter().all(|&d| self.status[d].is_terminal())
                {
                    continue;
                }
                let ended: Vec<TaskStatus> = self.deps[i].iter().map(|&d| self.status[d]).collect();
                if task.trigger_rule.decide(&ended) == Decision::Skip {
                    self.status[i] = TaskStatus::Skipped;
                    let reason = self.skip_reason(i);
                    recorder.task(&task.id, TaskStatus::Skipped, None, Some(reason));
                    changed = true;
                    continue;
                }
                self.status[i] = TaskStatus::Running;
                let env = TaskEnv {
                    inherit: self.workflow.inherits_env(task),
                    vars: self.workflow.task_env(task),
                    run: run_env.clone(),
                };
                let limits = Limits {
                    timeout: task.timeout,
                    kill_grace: self.workflow.kill_grace(task),
                };
                let (task, recorder, stop) = (task.clone(), recorder.clone(), stop.clone());
                running
                    .spawn(async move { (i, tries(&task, &env, limits, &recorder, &stop).await) });
            }
            if !changed {
                return;
            }
        }
    }

    /// Why task `i`'s trigger rule skipped it (for `all_success`, naming the failed tasks it
    /// is downstream of, which the tasks after it name too).
    fn skip_reason(&mut self, i: usize) -> String {
        let tasks = &self.workflow.tasks;
        let name = |d: usize| format!("`{}`", tasks[d].id);
        match tasks[i].trigger_rule {
            TriggerRule::AllSuccess => {
                let mut roots: Vec<usize> = Vec::new();
                for &d in &self.deps[i] {
                    if self.status[d].counts_as_success() {
                        continue;
                    }
                    let root = self.cause[d].unwrap_or(d);
                    if !roots.contains(&root) {
                        roots.push(root);
                    }
                }
                self.cause[i] = roots.first().copied();
                let names: Vec<String> = roots.into_iter().map(name).collect();
                format!("upstream task {} did not complete", names.join(", "))
            }
            TriggerRule::OneFailed => "trigger rule one_failed: no dependency failed".into(),
            TriggerRule::AllFailed => "trigger rule all_failed: not every dependency failed".into(),
            TriggerRule::NoneFailed => {
                let failed: Vec<String> = self.deps[i]
                    .iter()
                    .filter(|&&d| self.status[d] == TaskStatus::Failed)
                    .map(|&d| name(d))
                    .collect();
                format!("trigger rule none_failed: {} failed", failed.join(", "))
            }
            TriggerRule::AllDone => "trigger rule all_done".into(),
        }
    }
}

/// Runs a task's tries: the first, and after each failed one (its own exit, or its timeout)
/// another after the retry delay while retries are left. Returns the last try's outcome.
async fn tries(
    task: &Task,
    env: &TaskEnv,
    limits: Limits,
    recorder: &RunRecorder,
    stop: &RunStop,
) -> Outcome {
    let mut attempt = 1;
    loop {
        recorder.begin_try(&task.id, attempt);
        recorder.task(&task.id, TaskStatus::Running, None, None);
        let mut outcome = execute(task, env, recorder, stop, limits).await;
        if outcome.status == TaskStatus::Completed && attempt > 1 {
            outcome.reason = Some(format!("completed on try {attempt}"));
        }
        if outcome.status != TaskStatus::Failed || stop.is_stopped() {
            return outcome;
        }
        let Some(delay) = task.retry.delay_before(attempt + 1) else {
            return outcome;
        };
        recorder.task(
            &task.id,
            TaskStatus::Retrying,
            outcome.exit_code,
            Some(format!(
                "try {attempt} of {} failed ({}); next try in {}",
                task.retry.retries + 1,
                outcome.reason.as_deref().unwrap_or("failed"),
                humantime::format_duration(round_ms(delay)),
            )),
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.stopped() => {
                let (status, reason) = stop.cause().unwrap_or(StopCause::Shutdown).ends_running();
                return Outcome { status, exit_code: None, reason: Some(reason) };
            }
        }
        attempt += 1;
    }
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis().try_into().unwrap_or(u64::MAX))
}

#[cfg(test)]
#[path = "runner_tests.rs"]
mod tests;
