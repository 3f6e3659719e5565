//! `cdktr schedule list|pause|resume|explain|history`.

use std::io::Write;
use std::process::ExitCode;

use chrono::{Offset, Utc};
use serde::Serialize;

use super::format::clock;
use super::output::{human_time, human_utc, print_json, rfc3339, Table};
use super::ScheduleCommand;
use crate::config::Config;
use crate::model::Workflow;
use crate::transport::Client;
use crate::workflow::load_dir;

pub async fn run(cmd: ScheduleCommand, config: &Config) -> anyhow::Result<ExitCode> {
    let client = || Client::from_config(&config.client);
    match cmd {
        ScheduleCommand::Explain {
            workflow,
            count,
            json,
        } => explain(config, workflow, count, json).await,
        ScheduleCommand::List { out } => list(&client()?, out.format()).await,
        ScheduleCommand::Pause { workflow, json } => {
            set_paused(&client()?, &workflow, true, json).await
        }
        ScheduleCommand::Resume { workflow, json } => {
            set_paused(&client()?, &workflow, false, json).await
        }
        ScheduleCommand::History {
            workflow,
            limit,
            out,
        } => history(&client()?, &workflow, limit, out.format()).await,
    }
}

async fn list(client: &Client, format: super::OutputFormat) -> anyhow::Result<ExitCode> {
    let schedules = client.schedules().await?;
    if super::output::data(&schedules, format)? {
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(&[
        "WORKFLOW",
        "CRON",
        "ZONE",
        &super::format::zoned("NEXT FIRE"),
        "PAUSED",
        "OVERLAP",
        "CATCHUP",
    ]);
    for s in &schedules {
        table.row(vec![
            s.workflow_id.to_string(),
            s.cron.clone(),
            s.timezone.clone(),
            clock(&s.next_fire),
            if s.paused { "yes".into() } else { "no".into() },
            format!("{:?}", s.overlap).to_lowercase(),
            format!("{:?}", s.catchup).to_lowercase(),
        ]);
    }
    table.write(&mut std::io::stdout().lock())?;
    Ok(ExitCode::SUCCESS)
}

async fn set_paused(
    client: &Client,
    workflow: &str,
    paused: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let workflow = client.set_paused(workflow, paused).await?;
    if json {
        print_json(&serde_json::json!({ "workflow": workflow, "paused": paused }))?;
    } else if paused {
        writeln!(
            std::io::stdout().lock(),
            "schedule of {workflow} paused: its slots are recorded as `paused` until resumed"
        )?;
    } else {
        writeln!(std::io::stdout().lock(), "schedule of {workflow} resumed")?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn history(
    client: &Client,
    workflow: &str,
    limit: u32,
    format: super::OutputFormat,
) -> anyhow::Result<ExitCode> {
    let slots = client.slot_history(workflow, limit).await?;
    if super::output::data(&slots, format)? {
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(&[&super::format::zoned("SLOT"), "FATE", "RUN", "NOTE"]);
    for s in &slots {
        table.row(vec![
            clock(&Some(s.slot)),
            s.fate.to_string(),
            s.run_id
                .as_ref()
                .map(|r| r.to_string())
                .unwrap_or_else(|| "-".into()),
            s.note.clone().unwrap_or_default(),
        ]);
    }
    table.write(&mut std::io::stdout().lock())?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct Fire {
    local: String,
    utc: String,
    offset: String,
    /// The zone's UTC offset differs from the previous fire's: a DST change lies between.
    dst_change: bool,
}

/// The next fires of a workflow, read from the principal when it answers, else the files.
async fn explain(
    config: &Config,
    workflow: String,
    count: usize,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let asked = super::workflow_cmd::ask_principal(config, async |c| c.workflow(&workflow).await);
    let definition: Workflow = match asked.await {
        Some(reply) => reply?,
        None => {
            let catalog = load_dir(&config.principal.workflow_dir)?;
            catalog
                .workflows
                .get(&workflow.as_str().into())
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("no workflow `{workflow}`"))?
        }
    };
    let Some(schedule) = &definition.schedule else {
        anyhow::bail!("workflow `{workflow}` has no schedule (no `cron`)");
    };
    let fires = definition.next_fires(Utc::now(), count);
    let mut previous = None;
    let rows: Vec<Fire> = fires
        .iter()
        .map(|t| {
            let offset = t.offset().fix();
            let dst_change = previous.is_some_and(|p| p != offset);
            previous = Some(offset);
            Fire {
                local: rfc3339(t),
                utc: crate::model::time::format(&t.with_timezone(&Utc)),
                offset: offset.to_string(),
                dst_change,
            }
        })
        .collect();
    if json {
        print_json(&serde_json::json!({
            "workflow": definition.id,
            "cron": schedule.expr(),
            "timezone": schedule.timezone().name(),
            "fires": rows,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{}: `{}` in {} (overlap {}, catchup {})",
        definition.id,
        schedule.expr(),
        schedule.timezone().name(),
        format!("{:?}", definition.overlap).to_lowercase(),
        format!("{:?}", definition.catchup).to_lowercase()
    )?;
    let mut table = Table::new(&["#", "LOCAL", "UTC", "NOTE"]);
    for (i, (t, row)) in fires.iter().zip(&rows).enumerate() {
        table.row(vec![
            (i + 1).to_string(),
            format!("{} ({})", human_time(t), row.offset),
            human_utc(&t.with_timezone(&Utc)),
            if row.dst_change {
                "DST change since the previous fire".into()
            } else {
                String::new()
            },
        ]);
    }
    table.write(&mut out)?;
    Ok(ExitCode::SUCCESS)
}
