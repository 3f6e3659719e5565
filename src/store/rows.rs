//! How a batch's rows are written with as few statements as possible: each run's and each
//! task's changes merged into one row; the runs the batch queues (and their tasks) inserted
//! through appenders with their changes already applied (the other rows are updated by
//! `update`).

use std::collections::HashMap;
use std::hash::Hash;

use chrono::{DateTime, Utc};
use duckdb::types::Value;
use duckdb::{params, Connection};

use super::apply::ts;
use super::update::seq;
use super::Write;

/// Inserts the rows of the runs queued in this batch, and their tasks, through appenders,
/// with whatever else the batch changes in them already applied (a run is usually assigned in
/// the same batch it is queued in): those changes are taken out of `runs` and `tasks`, so
/// only rows that existed before the batch are left to update.
pub fn insert_queued_runs(
    conn: &Connection,
    writes: &[Write],
    runs: &mut Merged<String, RunRow>,
    tasks: &mut Merged<(String, String), TaskRow>,
) -> Result<(), duckdb::Error> {
    let mut queued = writes.iter().filter_map(|w| match w {
        Write::RunQueued(r) => Some(r),
        _ => None,
    });
    let Some(first) = queued.next() else {
        return Ok(());
    };
    let mut run_rows = conn.appender("runs")?;
    let mut task_rows = conn.appender("task_runs")?;
    for r in std::iter::once(first).chain(queued) {
        let run = runs.take(r.run_id.as_str()).unwrap_or_default();
        // Columns in table order: run_id, workflow_id, trigger, status, queued_at,
        // started_at, finished_at, agent_id, attempt, token, last_seq, params, definition,
        // triggered_by, rerun_of, reuse.
        run_rows.append_row(params![
            r.run_id.as_str(),
            r.workflow_id.as_str(),
            r.trigger.as_str(),
            run.status.unwrap_or("QUEUED"),
            ts(&r.queued_at),
            run.started.as_ref().map_or(Value::Null, ts),
            run.finished.as_ref().map_or(Value::Null, ts),
            run.agent,
            run.attempt.unwrap_or(0),
            run.token,
            seq(Some(run.last_seq_from_new())),
            r.params_json,
            r.definition_json,
            r.triggered_by,
            r.rerun_of.as_ref().map(|r| r.as_str()),
            reuse_json(&r.reuse)
        ])?;
        for task in &r.tasks {
            let key = (r.run_id.as_str().to_owned(), task.as_str().to_owned());
            let t = tasks.take(&key).unwrap_or_default();
            // run_id, task_id, attempt, status, started_at, finished_at, exit_code, reason,
            // try_no
            task_rows.append_row(params![
                r.run_id.as_str(),
                task.as_str(),
                t.attempt,
                t.status.unwrap_or("PENDING"),
                t.started.as_ref().map_or(Value::Null, ts),
                t.finished.as_ref().map_or(Value::Null, ts),
                t.exit_code,
                t.reason,
                t.try_no.max(1)
            ])?;
        }
    }
    run_rows.flush()?;
    task_rows.flush()
}

/// The tasks a rerun reuses, as a JSON list (NULL for none).
fn reuse_json(reuse: &[crate::model::TaskId]) -> Option<String> {
    (!reuse.is_empty())
        .then(|| serde_json::to_string(reuse).ok())
        .flatten()
}

/// Rows in the order of their first change, each with the changes of a batch merged in.
pub struct Merged<K, R> {
    rows: Vec<(K, Option<R>)>,
    index: HashMap<K, usize>,
}

impl<K, R> Default for Merged<K, R> {
    fn default() -> Self {
        Merged {
            rows: Vec::new(),
            index: HashMap::new(),
        }
    }
}

impl<K: Eq + Hash, R> Merged<K, R> {
    /// Takes a row out (its changes are applied some other way).
    pub fn take<Q>(&mut self, key: &Q) -> Option<R>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let index = *self.index.get(key)?;
        self.rows[index].1.take()
    }

    /// The rows not taken out, in order.
    pub fn rows(&self) -> impl Iterator<Item = (&K, &R)> {
        self.rows
            .iter()
            .filter_map(|(k, r)| r.as_ref().map(|r| (k, r)))
    }
}

impl<K: Clone + Eq + Hash, R: Default> Merged<K, R> {
    /// The row for `key`, empty if this is its first change.
    pub fn row(&mut self, key: K) -> &mut R {
        let index = match self.index.get(&key) {
            Some(&index) => index,
            None => {
                self.index.insert(key.clone(), self.rows.len());
                self.rows.push((key, None));
                self.rows.len() - 1
            }
        };
        self.rows[index].1.get_or_insert_with(R::default)
    }
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
    pub try_no: u32,
}

impl TaskRow {
    pub fn merge(&mut self, later: TaskRow) {
        self.status = later.status.or(self.status);
        self.attempt = later.attempt;
        self.try_no = later.try_no;
        self.started = later.started.or(self.started);
        self.finished = later.finished.or(self.finished);
        self.exit_code = later.exit_code.or(self.exit_code);
        self.reason = later.reason.or(self.reason.take());
    }
}

/// The changes of one `runs` row within a batch, merged so that one update equals applying
/// each change in order (`Write::Run`, `Write::Run` back to QUEUED, `Write::RunSeq`).
///
/// Applied one by one, a status change sets the status and attempt, keeps the stored start,
/// agent and token where it gives none, and restarts the stored `last_seq` at 0 when the
/// attempt changes; a change back to QUEUED clears the start, agent and token and restarts
/// `last_seq`; a sequence change raises `last_seq`. Whether the first status change of the
/// batch restarts `last_seq` depends on the stored attempt, which only the update sees:
/// hence `first_attempt`, and two sequence maxima (all of them, and those after the last
/// point where the batch itself restarted the count).
#[derive(Default, Debug, Clone, PartialEq)]
pub struct RunRow {
    pub status: Option<&'static str>,
    pub attempt: Option<u32>,
    /// A change back to QUEUED cleared the start, agent and token.
    pub cleared: bool,
    pub started: Option<DateTime<Utc>>,
    pub finished: Option<DateTime<Utc>>,
    pub agent: Option<String>,
    pub token: Option<String>,
    /// The attempt of the batch's first status change, when that change may or may not
    /// restart the count (it is not a change back to QUEUED).
    pub first_attempt: Option<u32>,
    /// The batch restarted `last_seq` itself (a change back to QUEUED, or a change of attempt
    /// after the first status change).
    pub restarted: bool,
    pub seq_all: Option<u64>,
    pub seq_after: Option<u64>,
}

impl RunRow {
    /// Folds one more status change (in batch order) into the row.
    pub fn status(
        &mut self,
        status: crate::model::RunStatus,
        attempt: u32,
        at: DateTime<Utc>,
        agent: Option<&str>,
        token: Option<&str>,
    ) {
        let first = self.status.is_none();
        if status == crate::model::RunStatus::Queued {
            self.cleared = true;
            self.restarted = true;
            self.started = None;
            self.agent = None;
            self.token = None;
            self.seq_after = None;
        } else {
            if first {
                self.first_attempt = Some(attempt);
                self.seq_after = None;
            } else if self.attempt != Some(attempt) {
                self.restarted = true;
                self.seq_after = None;
            }
            if status == crate::model::RunStatus::Running {
                self.started = Some(at);
            }
            if status.is_terminal() {
                self.finished = Some(at);
            }
            self.agent = agent.map(str::to_owned).or(self.agent.take());
            self.token = token.map(str::to_owned).or(self.token.take());
        }
        self.status = Some(status.as_str());
        self.attempt = Some(attempt);
    }

    /// The `last_seq` of a run queued in this batch (stored attempt 0, `last_seq` 0) once the
    /// batch's changes are applied: what the update's `last_seq` expression gives for it.
    pub fn last_seq_from_new(&self) -> u64 {
        if self.restarted || self.first_attempt.is_some_and(|a| a != 0) {
            self.seq_after.unwrap_or(0)
        } else {
            self.seq_all.unwrap_or(0)
        }
    }

    /// Folds one more stored record sequence into the row.
    pub fn seq(&mut self, last_seq: u64) {
        self.seq_all = Some(self.seq_all.map_or(last_seq, |s| s.max(last_seq)));
        self.seq_after = Some(self.seq_after.map_or(last_seq, |s| s.max(last_seq)));
    }
}
