//! Reading stored output: a run's lines, lines across runs, the last line id.

use duckdb::{params_from_iter, Connection};

use super::apply::ts;
use super::queries::required_time;
use super::{LogFilter, StoreError};
use crate::model::{RunId, TaskId, WorkflowId};
use crate::protocol::logs::LogLine;

pub fn logs(conn: &Connection, f: &LogFilter) -> Result<Vec<LogLine>, StoreError> {
    let mut sql = String::from(
        "SELECT id, run_id, workflow_id, task_id, attempt, stream, seq, epoch_us(ts), line, \
         try_no FROM logs WHERE id > ?",
    );
    let mut args: Vec<duckdb::types::Value> = vec![i64::try_from(f.after.unwrap_or(0))
        .unwrap_or(i64::MAX)
        .into()];
    for (column, value) in [
        ("run_id", &f.run_id),
        ("workflow_id", &f.workflow),
        ("task_id", &f.task),
    ] {
        if let Some(v) = value {
            sql.push_str(&format!(" AND {column} = ?"));
            args.push(v.clone().into());
        }
    }
    if let Some(stream) = f.stream {
        sql.push_str(" AND stream = ?");
        args.push(stream.as_str().to_owned().into());
    }
    if let Some(grep) = &f.grep {
        sql.push_str(" AND regexp_matches(line, ?)");
        args.push(grep.clone().into());
    }
    if let Some(before) = f.before {
        sql.push_str(" AND id < ?");
        args.push(i64::try_from(before).unwrap_or(i64::MAX).into());
    }
    if let Some(try_no) = f.try_no {
        sql.push_str(" AND try_no = ?");
        args.push(i64::from(try_no).into());
    }
    if let Some(since) = &f.since {
        sql.push_str(" AND ts >= ?");
        args.push(ts(since));
    }
    if let Some(until) = &f.until {
        sql.push_str(" AND ts <= ?");
        args.push(ts(until));
    }
    let order = if f.before.is_some() { "DESC" } else { "ASC" };
    sql.push_str(&format!(" ORDER BY id {order} LIMIT {}", f.limit.max(1)));
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(params_from_iter(args.iter()), |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, String>(3)?,
            row.get::<_, u32>(4)?,
            row.get::<_, String>(5)?,
            row.get::<_, i64>(6)?,
            row.get::<_, i64>(7)?,
            row.get::<_, String>(8)?,
            row.get::<_, Option<u32>>(9)?,
        ))
    })?;
    rows.map(|r| {
        let (id, run_id, workflow_id, task_id, attempt, stream, seq, at, line, try_no) = r?;
        Ok(LogLine {
            id: id as u64,
            run_id: RunId::new(run_id),
            workflow_id: WorkflowId::new(workflow_id),
            task_id: TaskId::new(task_id),
            attempt,
            stream: stream.parse().map_err(StoreError::Corrupt)?,
            seq: seq as u64,
            ts: required_time(at)?,
            line,
            try_no: try_no.unwrap_or(1).max(1),
        })
    })
    .collect::<Result<Vec<_>, StoreError>>()
    .map(|mut lines| {
        if f.before.is_some() {
            lines.reverse();
        }
        lines
    })
}

pub fn max_log_id(conn: &Connection) -> Result<u64, StoreError> {
    let max: i64 = conn.query_row("SELECT coalesce(max(id), 0) FROM logs", [], |r| r.get(0))?;
    Ok(max.max(0) as u64)
}
