//! `cdktr agents list`, `cdktr status` and `cdktr audit`.

use std::io::Write;
use std::process::ExitCode;

use super::format::clock;
use super::output::{print_json, Table};
use crate::transport::Client;

pub async fn list(client: &Client, format: super::OutputFormat) -> anyhow::Result<ExitCode> {
    let agents = client.agents().await?;
    if super::output::data(&agents, format)? {
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(&[
        "AGENT",
        "STATE",
        "SLOTS",
        "RUNNING",
        &super::format::zoned("LAST HEARTBEAT"),
        "VERSION",
        "LABELS",
    ])
    .colour_states(1);
    for a in &agents {
        let labels = crate::model::Label::texts(&a.labels);
        table.row(vec![
            a.agent_id.to_string(),
            a.state.to_string(),
            a.slots.to_string(),
            a.running.to_string(),
            clock(&Some(a.last_heartbeat)),
            a.version.clone(),
            if labels.is_empty() {
                "-".into()
            } else {
                labels.join(",")
            },
        ]);
    }
    table.write(&mut std::io::stdout().lock())?;
    Ok(ExitCode::SUCCESS)
}

pub async fn status(client: &Client, json: bool) -> anyhow::Result<ExitCode> {
    let s = client.status().await?;
    if json {
        print_json(&s)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    let uptime = humantime::format_duration(std::time::Duration::from_secs(s.uptime_secs));
    writeln!(
        out,
        "principal:  {} (version {}, protocol {})",
        client.endpoint(),
        s.version,
        s.protocol
    )?;
    writeln!(out, "uptime:     {uptime}")?;
    writeln!(
        out,
        "workflows:  {} loaded, {} invalid",
        s.workflows_loaded, s.workflows_invalid
    )?;
    writeln!(
        out,
        "queue:      {} queued, {} running",
        s.queue_length, s.runs_active
    )?;
    writeln!(
        out,
        "agents:     {} alive of {}",
        s.agents_alive, s.agents_total
    )?;
    writeln!(out, "store:      {}", s.store)?;
    writeln!(out, "log stream: {}", s.logs_publish)?;
    Ok(ExitCode::SUCCESS)
}

/// `cdktr audit`: one line per entry, newest first (or the entries as JSON).
pub fn print_audit(
    entries: &[crate::protocol::control::AuditEntry],
    format: super::OutputFormat,
) -> anyhow::Result<()> {
    if super::output::data(&entries, format)? {
        return Ok(());
    }
    let mut table = Table::new(&[
        &super::format::zoned("TIME"),
        "ACTOR",
        "ROLE",
        "FROM",
        "ACTION",
        "TARGET",
        "OUTCOME",
        "DETAIL",
    ]);
    for e in entries {
        let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        table.row(vec![
            clock(&Some(e.ts)),
            e.actor.clone(),
            if e.role.is_empty() {
                "-".into()
            } else {
                e.role.clone()
            },
            or_dash(&e.peer),
            e.action.clone(),
            or_dash(&e.target),
            e.outcome.clone(),
            or_dash(&e.detail),
        ]);
    }
    table.write(&mut std::io::stdout().lock())?;
    Ok(())
}
