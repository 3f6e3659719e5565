//! Watching a run to its end (`cdktr run --wait`): on a terminal, a table of its tasks (state,
//! try, duration, last output line) redrawn in place on standard error; elsewhere one line per
//! task state change. With `--logs`, the run's output goes to standard output as it comes
//! (the table is cleared and drawn again below it), every stored line once.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::logs_cmd::{page_through, print as print_line, Lines};
use crate::model::TaskStatus;
use crate::protocol::control::RunDetail;
use crate::protocol::logs::{topic_prefix, LogEvent, LogLine};
use crate::transport::{Client, LogQuery};

/// The store is read again this often (events the stream dropped, lines it lost).
const RECHECK: Duration = Duration::from_secs(2);
/// The table is redrawn at least this often on a terminal (durations tick).
const TICK: Duration = Duration::from_millis(250);

struct Row {
    status: TaskStatus,
    try_no: u32,
    started: Option<DateTime<Utc>>,
    finished: Option<DateTime<Utc>>,
    last: String,
}

/// How a run's progress is shown while it is watched.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Show {
    /// Nothing (`--json`: only the final state is printed).
    Nothing,
    /// A line per task state change (standard error is not a terminal).
    Lines,
    /// A table redrawn in place (standard error is a terminal).
    Table,
}

impl Show {
    /// A table on a terminal, lines elsewhere, nothing with `--json`.
    pub fn for_output(json: bool) -> Show {
        if json {
            Show::Nothing
        } else if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            Show::Table
        } else {
            Show::Lines
        }
    }
}

/// What the watcher shows, and where.
pub struct View {
    rows: BTreeMap<String, Row>,
    /// Task ids in the run's order.
    order: Vec<String>,
    show: Show,
    /// Lines of the table on the screen now.
    drawn: usize,
    /// When the table was last drawn: output lines redraw it at most every [`LINE_REDRAW`].
    last_draw: std::time::Instant,
    logs: bool,
}

/// Redraws caused by output lines are this far apart at least (a chatty task must not make
/// the terminal redraw the table for every line).
const LINE_REDRAW: Duration = Duration::from_millis(50);

impl View {
    pub fn new(show: Show, logs: bool) -> View {
        View {
            rows: BTreeMap::new(),
            order: Vec::new(),
            show,
            drawn: 0,
            last_draw: std::time::Instant::now(),
            logs,
        }
    }

    /// Takes the run as stored (authoritative, but maybe older than the stream's events).
    fn snapshot(&mut self, run: &RunDetail) {
        for t in &run.tasks {
            let id = t.task_id.to_string();
            if !self.order.contains(&id) {
                self.order.push(id.clone());
            }
            self.status(&id, t.status);
            if let Some(row) = self.rows.get_mut(&id) {
                row.try_no = row.try_no.max(t.try_no);
                row.started = t.started_at.or(row.started);
                row.finished = t.finished_at.or(row.finished);
            }
        }
    }

    /// A task's new status. A task that ended stays ended: a late RUNNING event (the stream
    /// and the store race) never follows its COMPLETED.
    fn status(&mut self, task: &str, status: TaskStatus) {
        let row = self.rows.entry(task.to_owned()).or_insert(Row {
            status: TaskStatus::Pending,
            try_no: 1,
            started: None,
            finished: None,
            last: String::new(),
        });
        if row.status == status || row.status.is_terminal() {
            return;
        }
        if status == TaskStatus::Running && row.started.is_none() {
            row.started = Some(Utc::now());
        }
        if status.is_terminal() && row.finished.is_none() {
            row.finished = Some(Utc::now());
        }
        row.status = status;
        if self.show == Show::Lines && status != TaskStatus::Pending {
            let now = Utc::now().format("%H:%M:%S%.3f");
            let _ = writeln!(std::io::stderr(), "{now}  {task:<24} {status}");
        }
    }

    /// A live output line: the task's last line; printed (above the table) when `print`.
    fn line(&mut self, line: &LogLine, print: bool) -> std::io::Result<()> {
        if let Some(row) = self.rows.get_mut(line.task_id.as_str()) {
            row.last.clone_from(&line.line);
        }
        if print {
            self.clear()?;
            let mut out = std::io::stdout().lock();
            print_line(&mut out, line, false)?;
            out.flush()?;
        }
        Ok(())
    }

    /// Removes the table from the screen (before output is printed above it).
    fn clear(&mut self) -> std::io::Result<()> {
        if self.drawn > 0 {
            let mut err = std::io::stderr().lock();
            // Up to the table's first line, and clear from there down.
            write!(err, "\x1b[{}F\x1b[J", self.drawn)?;
            err.flush()?;
            self.drawn = 0;
        }
        Ok(())
    }

    /// Draws the table again (on a terminal).
    fn render(&mut self) -> std::io::Result<()> {
        if self.show != Show::Table {
            return Ok(());
        }
        let width = terminal_width();
        let mut table =
            super::output::Table::new(&["TASK", "STATE", "TRY", "DURATION", "LAST LINE"]);
        for id in &self.order {
            let Some(row) = self.rows.get(id) else {
                continue;
            };
            let duration = match (row.started, row.finished) {
                (Some(s), Some(e)) => super::format::format_ms((e - s).num_milliseconds()),
                (Some(s), None) => super::format::format_ms((Utc::now() - s).num_milliseconds()),
                _ => "-".into(),
            };
            table.row(vec![
                id.clone(),
                row.status.to_string(),
                row.try_no.to_string(),
                duration,
                row.last.clone(),
            ]);
        }
        let mut text = Vec::new();
        table.write(&mut text)?;
        let text = String::from_utf8_lossy(&text);
        self.clear()?;
        let mut err = std::io::stderr().lock();
        for line in text.lines() {
            // Cut to the terminal's width: a wrapped line would break the redraw.
            let cut: String = line.chars().take(width.saturating_sub(1)).collect();
            writeln!(err, "{cut}")?;
            self.drawn += 1;
        }
        self.last_draw = std::time::Instant::now();
        err.flush()
    }
}

/// The terminal's width; 120 when it does not say (a pseudo-terminal without a size).
fn terminal_width() -> usize {
    crossterm::terminal::size()
        .ok()
        .filter(|(w, _)| *w > 0)
        .map_or(120, |(w, _)| usize::from(w).max(20))
}

/// Follows a run to its end; returns its final state.
pub async fn watch(
    client: &Client,
    workflow: &str,
    run_id: &str,
    mut view: View,
) -> anyhow::Result<RunDetail> {
    let mut events = client
        .subscribe(&topic_prefix(Some(workflow), Some(run_id), None))
        .await?;
    let query = LogQuery::Run {
        run_id: run_id.to_owned(),
        task: None,
    };
    let everything = Lines::all();
    let mut printed = BTreeSet::new();
    let mut cursor = None;
    let mut tick = tokio::time::interval(TICK);
    loop {
        let run = client.run(run_id).await?;
        view.snapshot(&run);
        if view.logs {
            // Lines the stream did not bring (before the subscription, or dropped), once.
            view.clear()?;
            cursor = page_through(client, &query, &everything, cursor, false, &printed)
                .await?
                .or(cursor);
            printed.retain(|id| Some(*id) > cursor);
        }
        view.render()?;
        if run.summary.status.is_terminal() {
            view.clear()?;
            return Ok(run);
        }
        let recheck = tokio::time::sleep(RECHECK);
        tokio::pin!(recheck);
        loop {
            tokio::select! {
                _ = &mut recheck => break,
                _ = tick.tick(), if view.show == Show::Table => view.render()?,
                event = events.next() => match event? {
                    LogEvent::RunEnded { .. } => break,
                    LogEvent::Task { task_id, status, .. } => {
                        view.status(task_id.as_str(), status);
                        view.render()?;
                    }
                    LogEvent::Line(line) => {
                        let print = view.logs && Some(line.id) > cursor && printed.insert(line.id);
                        view.line(&line, print)?;
                        if view.last_draw.elapsed() >= LINE_REDRAW || print {
                            view.render()?;
                        }
                    }
                },
            }
        }
    }
}
