//! `cdktr logs RUN [--follow]`, `cdktr logs query`, `cdktr logs tail`.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::ExitCode;

use chrono::{DateTime, Utc};

use super::run_cmd::exit_for;
use super::{LineArgs, LogsArgs, LogsCommand};
use crate::protocol::agent::Stream;
use crate::protocol::logs::{topic_prefix, LogEvent, LogLine};
use crate::transport::{Client, LineFilter, LogQuery};

pub async fn run(client: &Client, args: LogsArgs) -> anyhow::Result<ExitCode> {
    match args {
        LogsArgs {
            command:
                Some(LogsCommand::Query {
                    workflow,
                    follow,
                    lines,
                    json,
                }),
            ..
        } => {
            let topic = topic_prefix(workflow.as_deref(), None, None);
            let request = LogQuery::Across { workflow };
            let filter = Lines::new(&lines)?;
            if follow {
                let mut events = client.subscribe(&topic).await?;
                follow_lines(
                    client,
                    &mut events,
                    &request,
                    &filter,
                    json,
                    |_| true,
                    async || Ok(false),
                )
                .await?;
            } else {
                page_through(client, &request, &filter, None, json, &BTreeSet::new()).await?;
            }
            Ok(ExitCode::SUCCESS)
        }
        LogsArgs {
            command: Some(LogsCommand::Tail { workflow, json }),
            ..
        } => tail(client, workflow, json).await,
        LogsArgs {
            run: Some(run),
            task,
            try_no,
            follow,
            lines,
            json,
            command: None,
        } => {
            let filter = Lines::new(&lines)?;
            run_logs(client, &run, (task, try_no), &filter, follow, json).await
        }
        LogsArgs { .. } => {
            anyhow::bail!("name a run: cdktr logs RUN (or `logs query`, `logs tail`)")
        }
    }
}

/// Prints one line: human `time task stream | text`, or one JSON object.
pub(super) fn print(out: &mut impl Write, line: &LogLine, json: bool) -> std::io::Result<()> {
    if json {
        let obj = serde_json::json!({
            "run_id": line.run_id,
            "workflow_id": line.workflow_id,
            "task_id": line.task_id,
            "try": line.try_no,
            "stream": line.stream,
            "seq": line.seq,
            "ts": crate::model::time::format(&line.ts),
            "line": line.line,
        });
        writeln!(out, "{obj}")
    } else {
        let marker = match line.stream {
            crate::protocol::agent::Stream::Stdout => ' ',
            crate::protocol::agent::Stream::Stderr => '!',
        };
        writeln!(
            out,
            "{} {:<16} {marker}| {}",
            line.ts.format("%H:%M:%S%.3f"),
            line.task_id,
            line.line
        )
    }
}

/// `--stream` and `--grep`: sent to the principal for stored lines, applied here to live ones.
pub(super) struct Lines {
    filter: LineFilter,
    pattern: Option<regex::Regex>,
}

impl Lines {
    /// Every line.
    pub(super) fn all() -> Lines {
        Lines {
            filter: LineFilter::default(),
            pattern: None,
        }
    }

    fn new(args: &LineArgs) -> anyhow::Result<Lines> {
        let stream = match args.stream.as_deref() {
            Some("stderr") => Some(Stream::Stderr),
            Some(_) => Some(Stream::Stdout),
            None => None,
        };
        let pattern = args
            .grep
            .as_deref()
            .map(regex::Regex::new)
            .transpose()
            .map_err(|e| anyhow::anyhow!("--grep: not a regular expression: {e}"))?;
        let when =
            |t: &Option<String>, flag| t.as_deref().map(|t| parse_instant(t, flag)).transpose();
        Ok(Lines {
            filter: LineFilter {
                stream,
                grep: args.grep.clone(),
                since: when(&args.since, "--since")?,
                until: when(&args.until, "--until")?,
            },
            pattern,
        })
    }

    fn admits(&self, line: &LogLine) -> bool {
        self.filter.stream.is_none_or(|s| s == line.stream)
            && self.filter.since.is_none_or(|t| line.ts >= t)
            && self.filter.until.is_none_or(|t| line.ts <= t)
            && self.pattern.as_ref().is_none_or(|p| p.is_match(&line.line))
    }
}

/// Prints every stored page of `request` (re-sent with the cursor), except lines already
/// printed; returns the store cursor (the last id read).
pub(super) async fn page_through(
    client: &Client,
    query: &LogQuery,
    lines: &Lines,
    mut after: Option<u64>,
    json: bool,
    printed: &BTreeSet<u64>,
) -> anyhow::Result<Option<u64>> {
    let mut out = std::io::stdout().lock();
    loop {
        let page = client.logs_matching(query, &lines.filter, after).await?;
        for line in &page.lines {
            if !printed.contains(&line.id) {
                print(&mut out, line, json)?;
            }
            after = Some(line.id);
        }
        if page.next.is_none() {
            out.flush()?;
            return Ok(after);
        }
    }
}

async fn run_logs(
    client: &Client,
    run_id: &str,
    (task, try_no): (Option<String>, Option<u32>),
    lines: &Lines,
    follow: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let request = match (&task, try_no) {
        (Some(task), Some(try_no)) => LogQuery::Try {
            run_id: run_id.to_owned(),
            task: task.clone(),
            try_no,
        },
        _ => LogQuery::Run {
            run_id: run_id.to_owned(),
            task: task.clone(),
        },
    };
    if !follow {
        page_through(client, &request, lines, None, json, &BTreeSet::new()).await?;
        return Ok(ExitCode::SUCCESS);
    }
    let run = client.run(run_id).await?;
    let workflow = run.summary.workflow_id.to_string();
    let mut events = client
        .subscribe(&topic_prefix(Some(&workflow), Some(run_id), None))
        .await?;
    let mut status = run.summary.status;
    let wanted = |line: &LogLine| {
        task.as_deref().is_none_or(|t| t == line.task_id.as_str())
            && try_no.is_none_or(|k| k == line.try_no)
    };
    follow_lines(
        client,
        &mut events,
        &request,
        lines,
        json,
        wanted,
        async || {
            status = client.run(run_id).await?.summary.status;
            Ok(status.is_terminal())
        },
    )
    .await?;
    Ok(exit_for(status))
}

/// Prints the stored lines of `request`, then live ones from `events` (subscribed first, so
/// nothing falls between the two) that `wanted` and `lines` admit, as they come. After each
/// pause in the stream the store is read again from its cursor, so a line the stream dropped
/// is printed too, and none twice (`printed` remembers what the stream showed). Stops once
/// `ended` says so, after a last read of the store.
async fn follow_lines(
    client: &Client,
    events: &mut crate::transport::Subscription,
    request: &LogQuery,
    lines: &Lines,
    json: bool,
    wanted: impl Fn(&LogLine) -> bool,
    mut ended: impl AsyncFnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let mut printed = BTreeSet::new();
    // Whether it had ended is asked before each read of the store: lines stored before the
    // end are then all read.
    let mut done = ended().await?;
    let mut cursor = page_through(client, request, lines, None, json, &printed).await?;
    while !done {
        events
            .until_run_end_or_recheck(|event| {
                if let LogEvent::Line(line) = event {
                    if wanted(&line)
                        && lines.admits(&line)
                        && Some(line.id) > cursor
                        && printed.insert(line.id)
                    {
                        print(&mut std::io::stdout().lock(), &line, json)?;
                    }
                }
                Ok(())
            })
            .await?;
        done = ended().await?;
        cursor = page_through(client, request, lines, cursor, json, &printed)
            .await?
            .or(cursor);
        printed.retain(|id| Some(*id) > cursor);
    }
    Ok(())
}

/// `--since 1h` (ago) or an RFC 3339 instant.
pub fn parse_instant(text: &str, flag: &str) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let ago = humantime::parse_duration(text).map_err(|_| {
        anyhow::anyhow!("{flag} `{text}`: expected a duration ago (30m, 1h) or an RFC 3339 time")
    })?;
    let ago = chrono::Duration::from_std(ago)?;
    Ok(Utc::now() - ago)
}

async fn tail(client: &Client, workflow: Option<String>, json: bool) -> anyhow::Result<ExitCode> {
    let mut events = client
        .subscribe(&topic_prefix(workflow.as_deref(), None, None))
        .await?;
    loop {
        if let LogEvent::Line(line) = events.next().await? {
            let mut out = std::io::stdout().lock();
            print(&mut out, &line, json)?;
            out.flush()?;
        }
    }
}
