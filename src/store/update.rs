//! Updating the rows that existed before a batch with its merged changes: a few rows one
//! statement each through the index, more in one statement that joins them all.

use std::sync::OnceLock;

use duckdb::types::Value;
use duckdb::Connection;

use super::apply::ts;
use super::rows::{Merged, RunRow, TaskRow};

/// Up to this many rows of a table are updated one statement each, through its index; more
/// in one statement that joins them all (a join costs more than a lookup for one row, much less
/// than many lookups).
const ONE_BY_ONE: usize = 3;

/// One table's update of merged rows: the `SET` clause reads the new values from `c`, whose
/// columns are `columns` (name, SQL type); the first `keys` columns identify the row, and the
/// first of them is a `run_id` (a ULID, so time-ordered).
struct Update {
    table: &'static str,
    set: &'static str,
    columns: &'static [(&'static str, &'static str)],
    keys: usize,
    /// The two statements' text, built once.
    one_by_one: OnceLock<String>,
    joined: OnceLock<String>,
}

impl Update {
    /// The update with `c`'s columns given by `value(name, type)`, of the rows `filter` picks.
    fn sql(&self, value: impl Fn(&str, &str) -> String, filter: &str) -> String {
        let values: Vec<String> = self.columns.iter().map(|(n, t)| value(n, t)).collect();
        format!(
            "UPDATE {} SET {} FROM (SELECT {}) AS c WHERE {filter}",
            self.table,
            self.set,
            values.join(", ")
        )
    }

    fn apply(&self, conn: &Connection, rows: Vec<Vec<Value>>) -> Result<(), duckdb::Error> {
        let table = self.table;
        let keys = &self.columns[..self.keys];
        if rows.len() <= ONE_BY_ONE {
            let sql = self.one_by_one.get_or_init(|| {
                let filter = keys.iter().map(|(k, _)| format!("{table}.{k} = ?"));
                self.sql(
                    |name, ty| format!("?::{ty} AS {name}"),
                    &filter.collect::<Vec<_>>().join(" AND "),
                )
            });
            let mut statement = conn.prepare_cached(sql)?;
            for row in rows {
                let key_values = row[..self.keys].to_vec();
                statement.execute(duckdb::params_from_iter(row.into_iter().chain(key_values)))?;
            }
            return Ok(());
        }
        // The range of the batch's run ids lets DuckDB skip the row groups of older runs.
        let ids = rows.iter().filter_map(|row| match row.first() {
            Some(Value::Text(id)) => Some(id.as_str()),
            _ => None,
        });
        let (low, high) = ids.fold((None::<&str>, None::<&str>), |(low, high), id| {
            (
                Some(low.map_or(id, |l| l.min(id))),
                Some(high.map_or(id, |h| h.max(id))),
            )
        });
        let (low, high) = (text(low), text(high));
        let sql = self.joined.get_or_init(|| {
            let join = keys.iter().map(|(k, _)| format!("{table}.{k} = c.{k}"));
            self.sql(
                |name, ty| format!("unnest(?::{ty}[]) AS {name}"),
                &format!(
                    "{} AND {table}.run_id BETWEEN ? AND ?",
                    join.collect::<Vec<_>>().join(" AND ")
                ),
            )
        });
        let mut lists = vec![Vec::with_capacity(rows.len()); self.columns.len()];
        for row in rows {
            for (list, value) in lists.iter_mut().zip(row) {
                list.push(value);
            }
        }
        let params = lists.into_iter().map(Value::List).chain([low, high]);
        conn.prepare_cached(sql)?
            .execute(duckdb::params_from_iter(params))?;
        Ok(())
    }
}

static RUNS: Update = Update {
    table: "runs",
    set: "status = coalesce(c.status, runs.status), \
          attempt = coalesce(c.attempt, runs.attempt), \
          started_at = CASE WHEN c.cleared THEN c.started_at ELSE coalesce(c.started_at, runs.started_at) END, \
          finished_at = coalesce(c.finished_at, runs.finished_at), \
          agent_id = CASE WHEN c.cleared THEN c.agent_id ELSE coalesce(c.agent_id, runs.agent_id) END, \
          token = CASE WHEN c.cleared THEN c.token ELSE coalesce(c.token, runs.token) END, \
          last_seq = CASE WHEN c.restarted OR c.first_attempt <> runs.attempt THEN coalesce(c.seq_after, 0) \
                     ELSE greatest(runs.last_seq, coalesce(c.seq_all, 0)) END",
    columns: &[
        ("run_id", "VARCHAR"),
        ("status", "VARCHAR"),
        ("attempt", "INTEGER"),
        ("cleared", "BOOLEAN"),
        ("started_at", "TIMESTAMP"),
        ("finished_at", "TIMESTAMP"),
        ("agent_id", "VARCHAR"),
        ("token", "VARCHAR"),
        ("first_attempt", "INTEGER"),
        ("restarted", "BOOLEAN"),
        ("seq_all", "BIGINT"),
        ("seq_after", "BIGINT"),
    ],
    keys: 1,
    one_by_one: OnceLock::new(),
    joined: OnceLock::new(),
};

static TASKS: Update = Update {
    table: "task_runs",
    set: "status = coalesce(c.status, task_runs.status), attempt = c.attempt, \
          try_no = c.try_no, \
          started_at = coalesce(c.started_at, task_runs.started_at), \
          finished_at = coalesce(c.finished_at, task_runs.finished_at), \
          exit_code = coalesce(c.exit_code, task_runs.exit_code), \
          reason = coalesce(c.reason, task_runs.reason)",
    columns: &[
        ("run_id", "VARCHAR"),
        ("task_id", "VARCHAR"),
        ("status", "VARCHAR"),
        ("attempt", "INTEGER"),
        ("started_at", "TIMESTAMP"),
        ("finished_at", "TIMESTAMP"),
        ("exit_code", "INTEGER"),
        ("reason", "VARCHAR"),
        ("try_no", "INTEGER"),
    ],
    keys: 2,
    one_by_one: OnceLock::new(),
    joined: OnceLock::new(),
};

/// Applies every run's merged changes (see [`Update`]).
pub fn update_runs(conn: &Connection, rows: &Merged<String, RunRow>) -> Result<(), duckdb::Error> {
    let attempt = |a: Option<u32>| a.map_or(Value::Null, |a| Value::BigInt(a.into()));
    let rows = rows.rows().map(|(id, r)| {
        vec![
            Value::Text(id.clone()),
            text(r.status),
            attempt(r.attempt),
            Value::Boolean(r.cleared),
            r.started.as_ref().map_or(Value::Null, ts),
            r.finished.as_ref().map_or(Value::Null, ts),
            text(r.agent.as_deref()),
            text(r.token.as_deref()),
            attempt(r.first_attempt),
            Value::Boolean(r.restarted),
            seq(r.seq_all),
            seq(r.seq_after),
        ]
    });
    RUNS.apply(conn, rows.collect())
}

/// Applies every task's merged changes (see [`Update`]).
pub fn update_tasks(
    conn: &Connection,
    rows: &Merged<(String, String), TaskRow>,
) -> Result<(), duckdb::Error> {
    let rows = rows.rows().map(|((run, task), r)| {
        vec![
            Value::Text(run.clone()),
            Value::Text(task.clone()),
            text(r.status),
            Value::BigInt(r.attempt.into()),
            r.started.as_ref().map_or(Value::Null, ts),
            r.finished.as_ref().map_or(Value::Null, ts),
            r.exit_code.map_or(Value::Null, Value::Int),
            text(r.reason.as_deref()),
            Value::BigInt(r.try_no.max(1).into()),
        ]
    });
    TASKS.apply(conn, rows.collect())
}

pub(super) fn text(s: Option<&str>) -> Value {
    s.map_or(Value::Null, |s| Value::Text(s.to_owned()))
}

/// Counters are validated at the protocol edge; this only keeps a value that slipped through
/// from wrapping negative.
pub(super) fn seq(v: Option<u64>) -> Value {
    v.map_or(Value::Null, |v| {
        Value::BigInt(i64::try_from(v).unwrap_or(i64::MAX))
    })
}
