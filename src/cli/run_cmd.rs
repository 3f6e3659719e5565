//! `cdktr run WORKFLOW [--wait]`: trigger a run, and optionally watch it to the end.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use super::output::print_json;
use super::runs_cmd::print_detail;
use crate::model::{RunStatus, TaskStatus};
use crate::protocol::control::RunDetail;
use crate::protocol::logs::{topic_prefix, LogEvent};
use crate::transport::Client;

/// Exit 0 for COMPLETED, 1 for any other end.
pub fn exit_for(status: RunStatus) -> ExitCode {
    if status == RunStatus::Completed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

pub async fn run(
    client: &Client,
    workflow: String,
    params: BTreeMap<String, String>,
    wait: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let run_id = client.trigger(&workflow, params, "cli").await?;
    follow(client, &workflow, run_id.as_str(), wait, json).await
}

/// `cdktr rerun RUN`: queues a new run of what `run_id` ran, then as `cdktr run`.
pub async fn rerun(
    client: &Client,
    run_id: &str,
    options: (bool, bool),
    params: BTreeMap<String, String>,
    wait: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let (failed_only, latest) = options;
    let new = client.rerun(run_id, failed_only, latest, params).await?;
    let workflow = client.run(new.as_str()).await?.summary.workflow_id;
    if !json {
        eprintln!("run {new} reruns {run_id}");
    }
    follow(client, workflow.as_str(), new.as_str(), wait, json).await
}

/// Prints a queued run's id, or with `wait` follows it to its end.
async fn follow(
    client: &Client,
    workflow: &str,
    run_id: &str,
    wait: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if !wait {
        if json {
            print_json(&serde_json::json!({ "run_id": run_id }))?;
        } else {
            writeln!(std::io::stdout().lock(), "{run_id}")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !json {
        eprintln!("run {run_id} of {workflow} queued; waiting for it to finish");
    }
    let run = watch(client, workflow, run_id, !json).await?;
    if json {
        print_json(&run)?;
    } else {
        writeln!(std::io::stdout().lock())?;
        print_detail(&run, &mut std::io::stdout().lock())?;
    }
    Ok(exit_for(run.summary.status))
}

/// Follows a run to its end, printing task state changes when `live`; returns the final state.
/// Live events may be dropped by the stream, so the run is also re-read every two seconds.
pub async fn watch(
    client: &Client,
    workflow: &str,
    run_id: &str,
    live: bool,
) -> anyhow::Result<RunDetail> {
    let mut events = client
        .subscribe(&topic_prefix(Some(workflow), Some(run_id), None))
        .await?;
    let mut seen: BTreeMap<String, TaskStatus> = BTreeMap::new();
    let mut out = std::io::stderr();
    let mut show = |task: &str, status: TaskStatus, seen: &mut BTreeMap<String, TaskStatus>| {
        if live && seen.get(task) != Some(&status) {
            let now = chrono::Utc::now().format("%H:%M:%S%.3f");
            let _ = writeln!(out, "{now}  {task:<24} {status}");
        }
        seen.insert(task.to_owned(), status);
    };
    loop {
        let run = client.run(run_id).await?;
        for t in &run.tasks {
            if t.status != TaskStatus::Pending {
                show(t.task_id.as_str(), t.status, &mut seen);
            }
        }
        if run.summary.status.is_terminal() {
            return Ok(run);
        }
        events
            .until_run_end_or_recheck(|event| {
                if let LogEvent::Task {
                    task_id, status, ..
                } = event
                {
                    show(task_id.as_str(), status, &mut seen);
                }
                Ok(())
            })
            .await?;
    }
}
