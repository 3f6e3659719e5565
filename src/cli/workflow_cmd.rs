//! `cdktr workflow validate|list|show`. Validation always reads the files; list and show ask
//! the principal when it answers (and no `--dir` is given), else read the files. Both sources
//! go through the same printers.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::output::{human_time, human_utc, print_json, rfc3339, Table};
use super::WorkflowCommand;
use crate::config::Config;
use crate::model::{TaskConfig, Workflow};
use crate::transport::{Client, ClientError};
use crate::workflow::diagnostic::suggest;
use crate::workflow::{
    load_dir, load_paths, Catalog, Diagnostic, FileReport, FileStatus, InvalidFile,
};

/// How long `workflow list/show` waits for a principal before reading the files instead.
const PROBE_TIMEOUT: Duration = Duration::from_millis(800);

pub async fn run(cmd: WorkflowCommand, config: &Config) -> anyhow::Result<ExitCode> {
    let now = Utc::now();
    match cmd {
        WorkflowCommand::Validate { paths, json } => {
            let catalog = if paths.is_empty() {
                load_dir(&config.principal.workflow_dir)?
            } else {
                load_paths(&paths)?
            };
            validate(&catalog, json)
        }
        WorkflowCommand::List { dir, json } => {
            if dir.is_none() {
                if let Some(reply) = ask_principal(config, async |c| c.workflows().await).await {
                    let listing = reply?;
                    let workflows: Vec<&Workflow> = listing.workflows.iter().collect();
                    return list(&workflows, &listing.invalid, json, now);
                }
            }
            let catalog = load_dir(&dir.unwrap_or_else(|| config.principal.workflow_dir.clone()))?;
            let workflows: Vec<&Workflow> = catalog.workflows.values().collect();
            list(&workflows, &catalog.invalid_files(), json, now)
        }
        WorkflowCommand::Reload { json } => {
            let client = Client::from_config(&config.client)?;
            let reloaded = client.reload().await?;
            let (valid, invalid) = (reloaded.valid, reloaded.invalid);
            if json {
                print_json(&serde_json::json!({ "valid": valid, "invalid": invalid }))?;
            } else {
                writeln!(
                    std::io::stdout().lock(),
                    "reloaded: {valid} workflows active, {invalid} invalid files"
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
        WorkflowCommand::Show { id, dir, json } => {
            if dir.is_none() {
                if let Some(reply) = ask_principal(config, async |c| c.workflow(&id).await).await {
                    return show(&reply?, json, now);
                }
            }
            let dir = dir.unwrap_or_else(|| config.principal.workflow_dir.clone());
            let catalog = load_dir(&dir)?;
            match catalog.workflows.get(&id.as_str().into()) {
                Some(workflow) => show(workflow, json, now),
                None => Err(not_found(&catalog, &id, &dir)),
            }
        }
    }
}

fn not_found(catalog: &Catalog, id: &str, dir: &std::path::Path) -> anyhow::Error {
    if let Some(invalid) = catalog
        .invalid_files()
        .into_iter()
        .find(|f| f.id.as_ref().is_some_and(|i| i.as_str() == id))
    {
        let errors: Vec<String> = invalid.errors.iter().map(|e| format!("  {e}")).collect();
        return anyhow::anyhow!("workflow `{id}` is invalid:\n{}", errors.join("\n"));
    }
    let hint = suggest(id, catalog.workflows.keys().map(|k| k.as_str()))
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default();
    anyhow::anyhow!("no workflow `{id}` in {}{hint}", dir.display())
}

/// Asks the principal; None when it cannot be reached (the caller reads the files instead).
pub(super) async fn ask_principal<T>(
    config: &Config,
    ask: impl AsyncFnOnce(&Client) -> Result<T, ClientError>,
) -> Option<Result<T, ClientError>> {
    let credential = match crate::auth::Credential::optional(&config.client.credential) {
        Ok(c) => c,
        Err(e) => return Some(Err(ClientError::Unexpected(e.to_string()))),
    };
    let client = Client::connect_as(&config.client.principal, PROBE_TIMEOUT, credential);
    match ask(&client).await {
        Err(ClientError::Unreachable { endpoint, .. }) => {
            eprintln!(
                "note: no principal at {endpoint}; reading {}",
                config.principal.workflow_dir.display()
            );
            None
        }
        reply => Some(reply),
    }
}

#[derive(Serialize)]
struct ValidateJson<'a> {
    valid: usize,
    invalid: usize,
    skipped: usize,
    files: &'a [FileReport],
    diagnostics: Vec<&'a Diagnostic>,
}

fn validate(catalog: &Catalog, json: bool) -> anyhow::Result<ExitCode> {
    let code = if catalog.has_errors() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    };
    let skipped = catalog
        .files
        .iter()
        .filter(|f| f.status == FileStatus::Skipped)
        .count();
    if json {
        print_json(&ValidateJson {
            valid: catalog.valid_count(),
            invalid: catalog.invalid_count(),
            skipped,
            files: &catalog.files,
            diagnostics: catalog.diagnostics().collect(),
        })?;
        return Ok(code);
    }
    let mut out = std::io::stdout().lock();
    for d in catalog.diagnostics() {
        writeln!(out, "{d}")?;
    }
    writeln!(
        out,
        "{} workflows valid, {} invalid",
        catalog.valid_count(),
        catalog.invalid_count()
    )?;
    Ok(code)
}

#[derive(Serialize)]
struct Fire {
    local: String,
    utc: String,
}

#[derive(Serialize)]
struct TaskJson<'a> {
    id: &'a str,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(rename = "type")]
    kind: &'static str,
    depends: Vec<&'a str>,
    command: String,
    config: &'a TaskConfig,
}

#[derive(Serialize)]
struct WorkflowJson<'a> {
    id: &'a str,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    file: &'a std::path::Path,
    status: FileStatus,
    cron: Option<&'a str>,
    timezone: Option<&'a str>,
    start_time: Option<String>,
    next_fires: Vec<Fire>,
    tasks: Vec<TaskJson<'a>>,
}

#[derive(Serialize)]
struct InvalidJson<'a> {
    #[serde(flatten)]
    file: &'a InvalidFile,
    status: FileStatus,
}

fn to_json(w: &Workflow, now: DateTime<Utc>) -> WorkflowJson<'_> {
    WorkflowJson {
        id: w.id.as_str(),
        name: &w.name,
        description: w.description.as_deref(),
        file: &w.file,
        status: FileStatus::Valid,
        cron: w.schedule.as_ref().map(|s| s.expr()),
        timezone: w.schedule.as_ref().map(|s| s.timezone().name()),
        start_time: w.start_time.as_ref().map(rfc3339),
        next_fires: w
            .next_fires(now, 3)
            .iter()
            .map(|t| Fire {
                local: rfc3339(t),
                utc: crate::model::time::format(&t.with_timezone(&Utc)),
            })
            .collect(),
        tasks: w
            .tasks
            .iter()
            .map(|t| TaskJson {
                id: t.id.as_str(),
                name: &t.name,
                description: t.description.as_deref(),
                kind: t.config.kind(),
                depends: t.depends.iter().map(|d| d.as_str()).collect(),
                command: t.config.summary(),
                config: &t.config,
            })
            .collect(),
    }
}

fn list(
    workflows: &[&Workflow],
    invalid: &[InvalidFile],
    json: bool,
    now: DateTime<Utc>,
) -> anyhow::Result<ExitCode> {
    if json {
        #[derive(Serialize)]
        #[serde(untagged)]
        enum Entry<'a> {
            Valid(WorkflowJson<'a>),
            Invalid(InvalidJson<'a>),
        }
        let mut entries: Vec<Entry> = workflows
            .iter()
            .map(|w| Entry::Valid(to_json(w, now)))
            .collect();
        entries.extend(invalid.iter().map(|file| {
            Entry::Invalid(InvalidJson {
                file,
                status: FileStatus::Invalid,
            })
        }));
        print_json(&entries)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(&[
        "ID",
        "NAME",
        "STATUS",
        "SCHEDULE",
        &super::format::zoned("NEXT FIRE"),
        "TASKS",
        "FILE",
    ]);
    for w in workflows {
        let stale = invalid
            .iter()
            .any(|f| f.previous_version_active && f.id.as_ref() == Some(&w.id));
        let schedule = w
            .schedule
            .as_ref()
            .map(|s| format!("{} {}", s.expr(), s.timezone().name()))
            .unwrap_or_else(|| "-".into());
        let next = w
            .next_fires(now, 1)
            .first()
            .map(|t| super::format::clock(&Some(t.with_timezone(&Utc))))
            .unwrap_or_else(|| "-".into());
        table.row(vec![
            w.id.to_string(),
            w.name.clone(),
            if stale {
                "active (file now invalid)".into()
            } else {
                "valid".into()
            },
            schedule,
            next,
            w.tasks.len().to_string(),
            w.file.display().to_string(),
        ]);
    }
    for f in invalid {
        table.row(vec![
            f.id.as_ref()
                .map(|i| i.to_string())
                .unwrap_or_else(|| "-".into()),
            "-".into(),
            if f.previous_version_active {
                format!(
                    "invalid ({} errors; previous version active)",
                    f.errors.len()
                )
            } else {
                format!("invalid ({} errors)", f.errors.len())
            },
            "-".into(),
            "-".into(),
            "-".into(),
            f.file.display().to_string(),
        ]);
    }
    let mut out = std::io::stdout().lock();
    table.write(&mut out)?;
    if !invalid.is_empty() {
        writeln!(
            out,
            "\n{} invalid files: run `cdktr workflow validate` for details",
            invalid.len()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn show(w: &Workflow, json: bool, now: DateTime<Utc>) -> anyhow::Result<ExitCode> {
    if json {
        print_json(&to_json(w, now))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "id:          {}", w.id)?;
    writeln!(out, "name:        {}", w.name)?;
    if let Some(d) = &w.description {
        writeln!(
            out,
            "description: {}",
            d.trim_end().replace('\n', "\n             ")
        )?;
    }
    writeln!(out, "file:        {}", w.file.display())?;
    match &w.schedule {
        Some(s) => {
            writeln!(out, "schedule:    {} ({})", s.expr(), s.timezone().name())?;
            if let Some(start) = &w.start_time {
                writeln!(out, "start_time:  {}", rfc3339(start))?;
            }
            writeln!(out, "next fires:")?;
            for t in w.next_fires(now, 3) {
                writeln!(
                    out,
                    "  {}  =  {}",
                    human_time(&t),
                    human_utc(&t.with_timezone(&Utc))
                )?;
            }
        }
        None => writeln!(out, "schedule:    none (runs only when triggered)")?,
    }
    writeln!(out, "tasks (execution order):")?;
    let mut table = Table::new(&["#", "TASK", "NAME", "TYPE", "DEPENDS ON", "RUNS"]);
    for (i, t) in w.tasks.iter().enumerate() {
        let depends: Vec<&str> = t.depends.iter().map(|d| d.as_str()).collect();
        table.row(vec![
            (i + 1).to_string(),
            t.id.to_string(),
            t.name.clone(),
            t.config.kind().to_owned(),
            if depends.is_empty() {
                "-".into()
            } else {
                depends.join(", ")
            },
            t.config.summary(),
        ]);
    }
    table.write(&mut out)?;
    Ok(ExitCode::SUCCESS)
}
