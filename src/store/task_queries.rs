//! A run's tasks as `show_run` and recovery read them: one row per task, and each task's
//! ended tries.

use std::collections::HashMap;

use duckdb::Connection;

use super::queries::{required_time, task_status, time};
use super::StoreError;
use crate::model::TaskId;
use crate::protocol::control::{TaskRunView, TryView};

/// Task rows of a run, in the order the workflow lists them (insertion order).
pub(super) fn task_runs(conn: &Connection, run_id: &str) -> Result<Vec<TaskRunView>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT task_id, status, epoch_us(started_at), epoch_us(finished_at), exit_code, attempt, \
         reason, try_no FROM task_runs WHERE run_id = ? ORDER BY rowid",
    )?;
    let rows = stmt.query_map([run_id], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, Option<i64>>(2)?,
            row.get::<_, Option<i64>>(3)?,
            row.get::<_, Option<i32>>(4)?,
            row.get::<_, u32>(5)?,
            row.get::<_, Option<String>>(6)?,
            row.get::<_, Option<u32>>(7)?,
        ))
    })?;
    let mut tries = task_tries(conn, run_id)?;
    rows.map(|r| {
        let (task_id, status, started, finished, exit_code, attempt, reason, try_no) = r?;
        Ok(TaskRunView {
            tries: tries.remove(&task_id).unwrap_or_default(),
            task_id: TaskId::new(task_id),
            status: task_status(&status)?,
            started_at: time(started),
            finished_at: time(finished),
            exit_code,
            attempt,
            reason,
            try_no: try_no.unwrap_or(1).max(1),
        })
    })
    .collect()
}

/// The ended tries of a run's tasks, by task, in order (of the run's latest attempt).
fn task_tries(
    conn: &Connection,
    run_id: &str,
) -> Result<HashMap<String, Vec<TryView>>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT task_id, try_no, status, epoch_us(started_at), epoch_us(finished_at), exit_code, \
         reason FROM task_tries WHERE run_id = ? \
         AND attempt = (SELECT max(attempt) FROM task_tries WHERE run_id = ?) \
         ORDER BY task_id, try_no, finished_at",
    )?;
    let rows = stmt.query_map([run_id, run_id], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, u32>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, Option<i64>>(3)?,
            row.get::<_, i64>(4)?,
            row.get::<_, Option<i32>>(5)?,
            row.get::<_, Option<String>>(6)?,
        ))
    })?;
    let mut by_task: HashMap<String, Vec<TryView>> = Default::default();
    for row in rows {
        let (task_id, try_no, status, started, finished, exit_code, reason) = row?;
        by_task.entry(task_id).or_default().push(TryView {
            try_no,
            status: task_status(&status)?,
            started_at: time(started),
            finished_at: required_time(finished)?,
            exit_code,
            reason,
        });
    }
    Ok(by_task)
}
