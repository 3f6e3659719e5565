//! `cdktr runs list|show`.

use std::io::Write;
use std::process::ExitCode;

use super::format::{clock, duration};
use super::output::{print_json, Table};
use super::RunsCommand;
use crate::model::RunStatus;
use crate::protocol::control::{ControlRequest, RunDetail, RunSummary};
use crate::transport::Client;

pub async fn run(client: &Client, cmd: RunsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        RunsCommand::List {
            workflow,
            status,
            trigger,
            agent,
            since,
            until,
            limit,
            out,
        } => {
            let when = |t: Option<String>, flag| {
                t.map(|t| super::logs_cmd::parse_instant(&t, flag))
                    .transpose()
            };
            let request = ControlRequest::ListRuns {
                workflow,
                status,
                limit: Some(limit),
                trigger,
                agent,
                since: when(since, "--since")?,
                until: when(until, "--until")?,
            };
            list(client, request, out.format()).await
        }
        RunsCommand::Show { run, json } => show(client, &run, json).await,
    }
}

async fn list(
    client: &Client,
    request: ControlRequest,
    format: super::OutputFormat,
) -> anyhow::Result<ExitCode> {
    let runs = client.runs_where(request).await?;
    if super::output::data(&runs, format)? {
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(&[
        "RUN",
        "WORKFLOW",
        "STATUS",
        "TRIGGER",
        &super::format::zoned("QUEUED"),
        "DURATION",
        "AGENT",
    ])
    .colour_states(2);
    for r in &runs {
        table.row(summary_row(r));
    }
    table.write(&mut std::io::stdout().lock())?;
    Ok(ExitCode::SUCCESS)
}

fn summary_row(r: &RunSummary) -> Vec<String> {
    vec![
        r.run_id.to_string(),
        r.workflow_id.to_string(),
        r.status.to_string(),
        r.trigger.to_string(),
        clock(&Some(r.queued_at)),
        duration(&r.started_at, &r.finished_at),
        r.agent
            .as_ref()
            .map(|a| a.to_string())
            .unwrap_or_else(|| "-".into()),
    ]
}

async fn show(client: &Client, run_id: &str, json: bool) -> anyhow::Result<ExitCode> {
    let run = client.run(run_id).await?;
    if json {
        print_json(&run)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    print_detail(&run, &mut out)?;
    // A queued run: what it waits for (as `cdktr explain`).
    if run.summary.status == RunStatus::Queued {
        let (_, reasons) = client.explain(run_id).await?;
        writeln!(out)?;
        for reason in reasons {
            writeln!(out, "waiting:   {reason}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn print_detail(run: &RunDetail, out: &mut impl Write) -> std::io::Result<()> {
    let s = &run.summary;
    writeln!(out, "run:       {}", s.run_id)?;
    writeln!(out, "workflow:  {}", s.workflow_id)?;
    writeln!(out, "status:    {}", s.status)?;
    writeln!(out, "trigger:   {}", s.trigger)?;
    if let Some(by) = &s.triggered_by {
        writeln!(out, "by:        {by}")?;
    }
    if let Some(of) = &s.rerun_of {
        writeln!(out, "rerun of:  {of}")?;
    }
    writeln!(
        out,
        "agent:     {}",
        s.agent.as_ref().map(|a| a.as_str()).unwrap_or("-")
    )?;
    writeln!(out, "attempt:   {}", s.attempt)?;
    let zone = super::format::zone();
    writeln!(out, "queued:    {} {zone}", clock(&Some(s.queued_at)))?;
    writeln!(out, "started:   {} {zone}", clock(&s.started_at))?;
    writeln!(out, "finished:  {} {zone}", clock(&s.finished_at))?;
    writeln!(
        out,
        "duration:  {}",
        duration(&s.started_at, &s.finished_at)
    )?;
    if !run.params.is_empty() {
        let params: Vec<String> = run.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        writeln!(out, "params:    {}", params.join(" "))?;
    }
    writeln!(out)?;
    let mut table = Table::new(&[
        "TASK",
        "TRY",
        "STATUS",
        &super::format::zoned("STARTED"),
        "DURATION",
        "EXIT",
        "NOTE",
    ])
    .colour_states(2);
    let exit = |c: Option<i32>| c.map(|c| c.to_string()).unwrap_or_else(|| "-".into());
    for t in &run.tasks {
        table.row(vec![
            t.task_id.to_string(),
            t.try_no.to_string(),
            t.status.to_string(),
            clock(&t.started_at),
            duration(&t.started_at, &t.finished_at),
            exit(t.exit_code),
            t.reason.clone().unwrap_or_default(),
        ]);
        // A retried task: each of its tries on a line of its own.
        if t.tries.len() > 1 || t.try_no > 1 {
            for k in &t.tries {
                table.row(vec![
                    String::new(),
                    k.try_no.to_string(),
                    k.status.to_string(),
                    clock(&k.started_at),
                    duration(&k.started_at, &Some(k.finished_at)),
                    exit(k.exit_code),
                    k.reason.clone().unwrap_or_default(),
                ]);
            }
        }
    }
    table.write(out)
}

/// How long `cdktr cancel` waits for a running run to end before it returns anyway.
const CANCEL_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// `cdktr cancel RUN`: asks the principal, then (unless `wait` is false) waits for a running
/// run to end, saying so on stderr while it waits. Cancelling an ended run changes nothing
/// and succeeds; an unknown run is not found (exit 4).
pub async fn cancel(
    client: &Client,
    run_id: &str,
    reason: Option<String>,
    wait: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let (mut status, changed, note) = client.cancel(run_id, reason).await?;
    if !json {
        println!("run {run_id}: {note}");
    }
    if wait && changed && !status.is_terminal() {
        eprintln!("waiting for the run to end...");
        let deadline = std::time::Instant::now() + CANCEL_WAIT;
        while !status.is_terminal() && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            status = client.run(run_id).await?.summary.status;
        }
        if !status.is_terminal() {
            eprintln!(
                "the run is still {status} after {}s: its agent has not confirmed yet; it \
                 stops the run when it hears of the cancel",
                CANCEL_WAIT.as_secs()
            );
        }
    }
    if json {
        print_json(&serde_json::json!({
            "run_id": run_id, "status": status, "changed": changed, "note": note,
        }))?;
    } else if changed && status.is_terminal() {
        println!("run {run_id}: {status}");
    }
    Ok(ExitCode::SUCCESS)
}
