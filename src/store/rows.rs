//! How a batch's rows are written with as few statements as possible: the runs it queues
//! (and their tasks) through appenders ahead of everything else, and each task's changes
//! merged into one update.

use chrono::{DateTime, Utc};
use duckdb::types::Value;
use duckdb::{params, Connection};

use super::apply::ts;
use super::Write;

/// Inserts the rows of the runs queued in this batch, and their tasks, through appenders,
/// before anything else of the batch is applied: later writes of the batch may update them
/// (a run is usually assigned in the same batch it is queued in), and nothing can refer to a
/// run before it is queued.
pub fn insert_queued_runs(conn: &Connection, writes: &[Write]) -> Result<(), duckdb::Error> {
    let mut queued = writes.iter().filter_map(|w| match w {
        Write::RunQueued(r) => Some(r),
        _ => None,
    });
    let Some(first) = queued.next() else {
        return Ok(());
    };
    let mut runs = conn.appender("runs")?;
    let mut tasks = conn.appender("task_runs")?;
    for r in std::iter::once(first).chain(queued) {
        // Columns in table order: run_id, workflow_id, trigger, status, queued_at,
        // started_at, finished_at, agent_id, attempt, token, last_seq, params, definition,
        // triggered_by.
        runs.append_row(params![
            r.run_id.as_str(),
            r.workflow_id.as_str(),
            r.trigger.as_str(),
            "QUEUED",
            ts(&r.queued_at),
            Value::Null,
            Value::Null,
            None::<&str>,
            0,
            None::<&str>,
            0,
            r.params_json,
            r.definition_json,
            r.triggered_by
        ])?;
        for task in &r.tasks {
            // run_id, task_id, attempt, status, started_at, finished_at, exit_code, reason
            tasks.append_row(params![
                r.run_id.as_str(),
                task.as_str(),
                0,
                "PENDING",
                Value::Null,
                Value::Null,
                None::<i32>,
                None::<&str>
            ])?;
        }
    }
    runs.flush()?;
    tasks.flush()
}

/// The changes of one `task_runs` row within a batch. Applying the merge once equals applying
/// each change in order: the last status and attempt win, and each nullable column keeps the
/// last value given (the update keeps the stored one where none was).
#[derive(Default)]
pub struct TaskRow {
    pub status: Option<&'static str>,
    pub attempt: u32,
    pub started: Option<DateTime<Utc>>,
    pub finished: Option<DateTime<Utc>>,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
}

impl TaskRow {
    pub fn merge(&mut self, later: TaskRow) {
        self.status = later.status.or(self.status);
        self.attempt = later.attempt;
        self.started = later.started.or(self.started);
        self.finished = later.finished.or(self.finished);
        self.exit_code = later.exit_code.or(self.exit_code);
        self.reason = later.reason.or(self.reason.take());
    }
}
