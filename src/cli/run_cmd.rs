//! `cdktr run WORKFLOW [--wait]`: trigger a run, and optionally watch it to the end.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use super::output::print_json;
use super::runs_cmd::print_detail;
use crate::model::RunStatus;
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
    (wait, logs): (bool, bool),
    json: bool,
) -> anyhow::Result<ExitCode> {
    let run_id = client.trigger(&workflow, params, "cli").await?;
    follow(client, &workflow, run_id.as_str(), (wait, logs), json).await
}

/// `cdktr rerun RUN`: queues a new run of what `run_id` ran, then as `cdktr run`.
pub async fn rerun(
    client: &Client,
    run_id: &str,
    options: (bool, bool),
    params: BTreeMap<String, String>,
    wait: (bool, bool),
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
    (wait, logs): (bool, bool),
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
    let view = super::live::View::new(super::live::Show::for_output(json), logs && !json);
    let run = super::live::watch(client, workflow, run_id, view).await?;
    if json {
        print_json(&run)?;
    } else {
        writeln!(std::io::stdout().lock())?;
        print_detail(&run, &mut std::io::stdout().lock())?;
    }
    Ok(exit_for(run.summary.status))
}
