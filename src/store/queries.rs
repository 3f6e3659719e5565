//! Reads. Timestamps come back as `epoch_us(...)` microseconds and are turned into UTC times.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use duckdb::{params_from_iter, Connection, Row};

use super::apply::ts;
use super::{AuditFilter, RunFilter, ScheduleState, StoreError, UnfinishedRun};
use crate::model::{AgentId, RunId, RunStatus, TaskId, TaskStatus, TriggerSource, WorkflowId};
use crate::protocol::control::{AuditEntry, RunDetail, RunSummary, SlotRecord};

pub(super) fn time(us: Option<i64>) -> Option<DateTime<Utc>> {
    us.and_then(DateTime::from_timestamp_micros)
}

pub(super) fn required_time(us: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(us)
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp {us} out of range")))
}

fn run_status(s: &str) -> Result<RunStatus, StoreError> {
    s.parse().map_err(|e| StoreError::Corrupt(format!("{e}")))
}

pub(super) fn task_status(s: &str) -> Result<TaskStatus, StoreError> {
    s.parse().map_err(|e| StoreError::Corrupt(format!("{e}")))
}

/// A stored word of one of the model's closed sets.
fn word<T: std::str::FromStr<Err = crate::model::UnknownWord>>(s: &str) -> Result<T, StoreError> {
    s.parse().map_err(|e| StoreError::Corrupt(format!("{e}")))
}

const RUN_COLUMNS: &str = "run_id, workflow_id, status, trigger, epoch_us(queued_at), \
     epoch_us(started_at), epoch_us(finished_at), agent_id, attempt, triggered_by, rerun_of";

/// Raw columns of a run row, converted after the row borrow ends.
type RunRow = (
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    Option<String>,
    u32,
    Option<String>,
    Option<String>,
);

fn run_row(row: &Row<'_>) -> duckdb::Result<RunRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
        row.get(9)?,
        row.get(10)?,
    ))
}

fn summary(r: RunRow) -> Result<RunSummary, StoreError> {
    Ok(RunSummary {
        run_id: RunId::new(r.0),
        workflow_id: WorkflowId::new(r.1),
        status: run_status(&r.2)?,
        trigger: word(&r.3)?,
        queued_at: required_time(r.4)?,
        started_at: time(r.5),
        finished_at: time(r.6),
        agent: r.7.map(AgentId::new),
        attempt: r.8,
        triggered_by: r.9,
        rerun_of: r.10.map(RunId::new),
    })
}

/// Every stored agent's labels (a JSON list each; an unreadable list counts as none).
pub fn agent_labels(conn: &Connection) -> Result<Vec<Vec<String>>, StoreError> {
    let mut stmt = conn.prepare("SELECT labels FROM agents WHERE labels IS NOT NULL")?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(serde_json::from_str(&row?).unwrap_or_default());
    }
    Ok(out)
}

/// The definition a run was queued with, as JSON.
pub fn definition(conn: &Connection, id: &str) -> Result<Option<String>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT definition FROM runs WHERE run_id = ?")?;
    let mut rows = stmt.query([id])?;
    Ok(match rows.next()? {
        Some(row) => Some(row.get(0)?),
        None => None,
    })
}

pub fn list_runs(conn: &Connection, f: &RunFilter) -> Result<Vec<RunSummary>, StoreError> {
    let mut sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE 1 = 1");
    let mut args: Vec<duckdb::types::Value> = Vec::new();
    if let Some(w) = &f.workflow {
        sql.push_str(" AND workflow_id = ?");
        args.push(w.clone().into());
    }
    if let Some(s) = f.status {
        sql.push_str(" AND status = ?");
        args.push(s.as_str().to_owned().into());
    }
    if let Some(t) = &f.trigger {
        // `event` stands for every event listener's trigger (`event:NAME`).
        sql.push_str(" AND (trigger = ? OR (? = 'event' AND starts_with(trigger, 'event:')))");
        args.push(t.clone().into());
        args.push(t.clone().into());
    }
    if let Some(a) = &f.agent {
        // An id, or a name standing for that name on any host.
        sql.push_str(" AND (agent_id = ? OR starts_with(agent_id, ? || '@'))");
        args.push(a.clone().into());
        args.push(a.clone().into());
    }
    if let Some(since) = &f.since {
        sql.push_str(" AND queued_at >= ?");
        args.push(ts(since));
    }
    if let Some(until) = &f.until {
        sql.push_str(" AND queued_at <= ?");
        args.push(ts(until));
    }
    sql.push_str(&format!(" ORDER BY run_id DESC LIMIT {}", f.limit.max(1)));
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(params_from_iter(args.iter()), run_row)?;
    rows.map(|r| summary(r?)).collect()
}

pub fn get_run(conn: &Connection, id: &str) -> Result<Option<RunDetail>, StoreError> {
    let sql = format!("SELECT {RUN_COLUMNS}, params FROM runs WHERE run_id = ?");
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query([id])?;
    let Some(row) = rows.next()? else {
        return Ok(None);
    };
    let raw = run_row(row)?;
    let params_json: String = row.get(11)?;
    let params: BTreeMap<String, String> = serde_json::from_str(&params_json)
        .map_err(|e| StoreError::Corrupt(format!("params of run {id}: {e}")))?;
    let summary = summary(raw)?;
    let tasks = super::task_queries::task_runs(conn, id)?;
    let late: i64 = conn.query_row(
        "SELECT count(*) FROM late_records WHERE run_id = ?",
        [id],
        |r| r.get(0),
    )?;
    Ok(Some(RunDetail {
        summary,
        params,
        tasks,
        late_records: late.max(0) as u64,
    }))
}

pub fn unfinished(conn: &Connection) -> Result<Vec<UnfinishedRun>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT run_id, status, trigger, epoch_us(queued_at), epoch_us(started_at), agent_id, \
         attempt, last_seq, params, definition, token, \
         EXISTS (SELECT 1 FROM schedule_slots s WHERE s.run_id = runs.run_id \
                 AND s.fate = 'caught-up'), reuse FROM runs \
         WHERE status IN ('QUEUED', 'RUNNING') ORDER BY queued_at, run_id",
    )?;
    let rows = stmt.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, i64>(3)?,
            row.get::<_, Option<i64>>(4)?,
            row.get::<_, Option<String>>(5)?,
            row.get::<_, u32>(6)?,
            row.get::<_, i64>(7)?,
            row.get::<_, String>(8)?,
            row.get::<_, String>(9)?,
            row.get::<_, Option<String>>(10)?,
            row.get::<_, bool>(11)?,
            row.get::<_, Option<String>>(12)?,
        ))
    })?;
    let mut out = Vec::new();
    for r in rows {
        let (
            run_id,
            status,
            trigger,
            queued,
            started,
            agent,
            attempt,
            last_seq,
            params,
            definition,
            token,
            caught_up,
            reuse,
        ) = r?;
        let reuse: Vec<TaskId> = match reuse.as_deref().map(serde_json::from_str) {
            None => Vec::new(),
            Some(Ok(reuse)) => reuse,
            Some(Err(e)) => {
                tracing::warn!(run = %run_id, error = %e, "stored reused tasks unreadable: all run");
                Vec::new()
            }
        };
        let tasks = super::task_queries::task_runs(conn, &run_id)?
            .into_iter()
            .map(|t| (t.task_id, t.status))
            .collect();
        // Only this principal writes it, but one unreadable row must not stop the start: such
        // a run is recovered as not scheduled (so not serial).
        let trigger = trigger
            .parse()
            .unwrap_or_else(|e: crate::model::UnknownWord| {
                tracing::warn!(run = %run_id, error = %e, "stored trigger unreadable");
                TriggerSource::Api
            });
        out.push(UnfinishedRun {
            run_id: RunId::new(run_id),
            status: run_status(&status)?,
            trigger,
            queued_at: required_time(queued)?,
            started_at: time(started),
            agent: agent.map(AgentId::new),
            attempt,
            token,
            last_seq: last_seq.max(0) as u64,
            params_json: params,
            definition_json: definition,
            tasks,
            caught_up,
            reuse,
        });
    }
    Ok(out)
}

pub fn count(conn: &Connection, table: &str) -> Result<i64, StoreError> {
    let table = match table {
        "runs" | "task_runs" | "transitions" | "logs" | "agents" | "schedules"
        | "schedule_slots" | "late_records" | "audit" | "journal_applied" => table,
        other => return Err(StoreError::Corrupt(format!("no table `{other}`"))),
    };
    Ok(conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?)
}

pub fn schedule_states(conn: &Connection) -> Result<Vec<ScheduleState>, StoreError> {
    let mut stmt =
        conn.prepare("SELECT workflow_id, epoch_us(last_slot), paused FROM schedules")?;
    let rows = stmt.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, Option<i64>>(1)?,
            row.get::<_, bool>(2)?,
        ))
    })?;
    rows.map(|r| {
        let (workflow, last, paused) = r?;
        Ok(ScheduleState {
            workflow_id: WorkflowId::new(workflow),
            last_slot: time(last),
            paused,
        })
    })
    .collect()
}

pub fn slot_history(
    conn: &Connection,
    workflow: &str,
    limit: u32,
) -> Result<Vec<SlotRecord>, StoreError> {
    let sql = format!(
        "SELECT workflow_id, epoch_us(slot), fate, run_id, note, epoch_us(recorded_at) \
         FROM schedule_slots WHERE workflow_id = ? ORDER BY slot DESC, recorded_at DESC LIMIT {}",
        limit.max(1)
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([workflow], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, Option<String>>(3)?,
            row.get::<_, Option<String>>(4)?,
            row.get::<_, i64>(5)?,
        ))
    })?;
    rows.map(|r| {
        let (workflow, slot, fate, run_id, note, recorded) = r?;
        Ok(SlotRecord {
            workflow_id: WorkflowId::new(workflow),
            slot: required_time(slot)?,
            fate: word(&fate)?,
            run_id: run_id.map(RunId::new),
            note,
            recorded_at: required_time(recorded)?,
        })
    })
    .collect()
}

/// Audit entries matching `f`, newest first.
pub fn audit(conn: &Connection, f: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
    let mut sql = String::from(
        "SELECT epoch_us(ts), actor, role, peer, action, target, detail, outcome FROM audit \
         WHERE 1 = 1",
    );
    let mut args: Vec<duckdb::types::Value> = Vec::new();
    if let Some(since) = &f.since {
        sql.push_str(" AND ts >= ?");
        args.push(ts(since));
    }
    if let Some(actor) = &f.actor {
        sql.push_str(" AND actor = ?");
        args.push(actor.clone().into());
    }
    if let Some(action) = &f.action {
        sql.push_str(" AND action = ?");
        args.push(action.clone().into());
    }
    sql.push_str(&format!(" ORDER BY ts DESC LIMIT {}", f.limit.max(1)));
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(params_from_iter(args.iter()), |row| {
        Ok((
            row.get::<_, i64>(0)?,
            AuditEntry {
                ts: DateTime::<Utc>::MIN_UTC,
                actor: row.get(1)?,
                role: row.get(2)?,
                peer: row.get(3)?,
                action: row.get(4)?,
                target: row.get(5)?,
                detail: row.get(6)?,
                outcome: row.get(7)?,
            },
        ))
    })?;
    rows.map(|r| {
        let (us, mut entry) = r?;
        entry.ts = required_time(us)?;
        Ok(entry)
    })
    .collect()
}
