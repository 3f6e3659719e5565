//! Applying writes: each batch in one transaction, the SQL for every kind of [`Write`], and
//! replaying what the journal holds beyond what DuckDB applied (after a crash).

use chrono::{DateTime, Utc};
use duckdb::types::{TimeUnit, Value};
use duckdb::{params, Connection};

use super::journal;
use super::legacy_journal::Journal;
use super::rows::{insert_queued_runs, Merged, RunRow, TaskRow};
use super::update::{update_runs, update_tasks};
use super::{StoreError, Write};

/// Writes applied in one transaction at most when replaying the journal.
const REPLAY_WRITES: usize = 50_000;

/// Applies the journal's batches that DuckDB has not (a crash came between the acknowledgement
/// and the commit), then removes the journal. Returns how many writes were applied and the
/// sequence number the next batch takes.
pub fn replay_journal(conn: &Connection, db: &std::path::Path) -> Result<(usize, u64), StoreError> {
    let applied: i64 = conn.query_row(
        "SELECT coalesce(max(seq), 0) FROM journal_applied",
        [],
        |r| r.get(0),
    )?;
    let mut last = u64::try_from(applied).unwrap_or(0);
    let mut chunk: Vec<Write> = Vec::new();
    let mut count = 0;
    let mut flush = |chunk: &mut Vec<Write>, seq: u64| -> Result<(), StoreError> {
        apply(conn, &[chunk], Mark::Seq { seq, prune: false })?;
        count += chunk.len();
        chunk.clear();
        Ok(())
    };
    journal::read(db, last, None, |seq, writes| {
        last = seq;
        chunk.extend(writes);
        match chunk.len() >= REPLAY_WRITES {
            true => flush(&mut chunk, seq),
            false => Ok(()),
        }
    })?;
    if !chunk.is_empty() {
        flush(&mut chunk, last)?;
    }
    journal::remove_segments(db).map_err(|e| StoreError::Write(e.to_string()))?;
    exec(
        conn,
        "DELETE FROM journal_applied WHERE seq < ?",
        [i64::try_from(last).unwrap_or(i64::MAX)],
    )?;
    Ok((count, last + 1))
}

/// Replays a journal of an earlier version left by a crash while the database refused writes,
/// unless its marker shows it was applied already.
pub fn replay(conn: &Connection, journal: &Journal) -> Result<usize, StoreError> {
    let read = journal
        .read()
        .map_err(|e| StoreError::Write(format!("reading {}: {e}", journal.path().display())))?;
    let Some((id, batches)) = read else {
        return Ok(0);
    };
    let applied: i64 = conn.query_row(
        "SELECT count(*) FROM meta WHERE key = 'journal_applied' AND value = ?",
        [&id],
        |r| r.get(0),
    )?;
    let count = if applied == 0 {
        let refs: Vec<&[Write]> = batches.iter().map(Vec::as_slice).collect();
        apply(conn, &refs, Mark::Legacy(&id))?;
        batches.iter().map(Vec::len).sum()
    } else {
        0
    };
    journal
        .clear()
        .map_err(|e| StoreError::Write(e.to_string()))?;
    Ok(count)
}

/// Runs one statement, prepared once per connection: the store's statements are few and
/// fixed, and DuckDB's parsing and planning cost more than executing them.
fn exec(conn: &Connection, sql: &str, params: impl duckdb::Params) -> Result<usize, duckdb::Error> {
    conn.prepare_cached(sql)?.execute(params)
}

pub fn ts(t: &DateTime<Utc>) -> Value {
    Value::Timestamp(TimeUnit::Microsecond, t.timestamp_micros())
}

/// What a transaction records besides its writes, so that it is never applied twice.
#[derive(Clone, Copy)]
pub enum Mark<'a> {
    /// The last journal batch it applies; `prune` also drops the older marks.
    Seq { seq: u64, prune: bool },
    /// The id of an earlier version's journal.
    Legacy(&'a str),
}

pub fn apply(conn: &Connection, batches: &[&[Write]], mark: Mark) -> Result<(), duckdb::Error> {
    conn.execute_batch("BEGIN TRANSACTION")?;
    let result = batches
        .iter()
        .try_for_each(|writes| apply_in_transaction(conn, writes))
        .and_then(|()| match mark {
            Mark::Seq { seq, prune } => {
                let seq = i64::try_from(seq).unwrap_or(i64::MAX);
                let mut marks = conn.appender("journal_applied")?;
                marks.append_row([seq])?;
                marks.flush()?;
                if prune {
                    exec(conn, "DELETE FROM journal_applied WHERE seq < ?", [seq])?;
                }
                Ok(())
            }
            Mark::Legacy(marker) => {
                exec(conn, "DELETE FROM meta WHERE key = 'journal_applied'", [])?;
                exec(
                    conn,
                    "INSERT INTO meta (key, value) VALUES ('journal_applied', ?)",
                    [marker],
                )?;
                Ok(())
            }
        });
    match result {
        Ok(()) => conn.execute_batch("COMMIT"),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

pub(super) fn apply_in_transaction(
    conn: &Connection,
    writes: &[Write],
) -> Result<(), duckdb::Error> {
    // Insert-only tables take rows through appenders (nothing in the batch reads them back).
    let mut logs = conn.appender("logs")?;
    let mut transitions = conn.appender("transitions")?;
    // Ended tries come with some batches only.
    let mut tries = None;
    // Audit entries come with some batches only (a trigger's, say).
    let mut audit = None;
    // Each run's and each task's row changes, merged per row (a fast task's RUNNING and
    // COMPLETED, and its run's assignment, start and end, usually arrive together); a row
    // queued in this batch is inserted with them applied, the others are updated in one
    // statement per table.
    let mut runs: Merged<String, RunRow> = Merged::default();
    let mut tasks: Merged<(String, String), TaskRow> = Merged::default();
    for w in writes {
        match w {
            Write::RunQueued(r) => {
                transitions.append_row(params![
                    r.run_id.as_str(),
                    None::<&str>,
                    0,
                    "QUEUED",
                    ts(&r.queued_at),
                    None::<&str>,
                    None::<u32>
                ])?;
            }
            Write::Run {
                run_id,
                status,
                ts: at,
                agent,
                attempt,
                token,
                reason,
            } => {
                runs.row(run_id.as_str().to_owned()).status(
                    *status,
                    *attempt,
                    *at,
                    agent.as_ref().map(|a| a.as_str()),
                    token.as_deref(),
                );
                transitions.append_row(params![
                    run_id.as_str(),
                    None::<&str>,
                    attempt,
                    status.as_str(),
                    ts(at),
                    reason,
                    None::<u32>
                ])?;
            }
            Write::RunSeq { run_id, last_seq } => {
                runs.row(run_id.as_str().to_owned()).seq(*last_seq)
            }
            Write::Task {
                run_id,
                task_id,
                attempt,
                status,
                ts: at,
                exit_code,
                reason,
                try_no,
            } => {
                // A task's start is its first try's; `task_tries` keeps each try's.
                let started =
                    (*status == crate::model::TaskStatus::Running && *try_no <= 1).then_some(*at);
                let finished = status.is_terminal().then_some(*at);
                let key = (run_id.as_str().to_owned(), task_id.as_str().to_owned());
                tasks.row(key).merge(TaskRow {
                    status: Some(status.as_str()),
                    attempt: *attempt,
                    started,
                    finished,
                    exit_code: *exit_code,
                    reason: reason.clone(),
                    try_no: *try_no,
                });
                transitions.append_row(params![
                    run_id.as_str(),
                    task_id.as_str(),
                    attempt,
                    status.as_str(),
                    ts(at),
                    reason,
                    try_no
                ])?;
            }
            Write::Log(l) => {
                logs.append_row(params![
                    saturating_i64(l.id),
                    l.run_id.as_str(),
                    l.workflow_id.as_str(),
                    l.task_id.as_str(),
                    l.attempt,
                    l.stream.as_str(),
                    saturating_i64(l.seq),
                    ts(&l.ts),
                    l.line,
                    l.try_no
                ])?;
            }
            Write::TaskTry(t) => {
                let appender = match &mut tries {
                    Some(a) => a,
                    None => tries.insert(conn.appender("task_tries")?),
                };
                appender.append_row(params![
                    t.run_id.as_str(),
                    t.task_id.as_str(),
                    t.attempt,
                    t.try_no,
                    t.status.as_str(),
                    t.started_at.as_ref().map_or(duckdb::types::Value::Null, ts),
                    ts(&t.finished_at),
                    t.exit_code,
                    t.reason
                ])?;
            }
            Write::Slot(r) => {
                exec(
                        conn,
                    "INSERT INTO schedule_slots (workflow_id, slot, fate, run_id, note, recorded_at) \
                     VALUES (?, ?, ?, ?, ?, ?)",
                    params![
                        r.workflow_id.as_str(),
                        ts(&r.slot),
                        r.fate.as_str(),
                        r.run_id.as_ref().map(|id| id.as_str()),
                        r.note,
                        ts(&r.recorded_at)
                    ],
                )?;
                let updated = exec(
                        conn,
                    "UPDATE schedules SET last_slot = greatest(coalesce(last_slot, ?), ?) WHERE workflow_id = ?",
                    params![ts(&r.slot), ts(&r.slot), r.workflow_id.as_str()],
                )?;
                if updated == 0 {
                    exec(
                        conn,
                        "INSERT INTO schedules (workflow_id, last_slot, paused) VALUES (?, ?, false)",
                        params![r.workflow_id.as_str(), ts(&r.slot)],
                    )?;
                }
            }
            Write::Late {
                record,
                agent,
                reason,
            } => {
                exec(
                    conn,
                    "INSERT INTO late_records (run_id, attempt, seq, agent_id, ts, event, reason, \
                     received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    params![
                        record.run_id.as_str(),
                        // Late records come from outside: keep them storable whatever they say.
                        i32::try_from(record.attempt).unwrap_or(i32::MAX),
                        i64::try_from(record.seq).unwrap_or(i64::MAX),
                        agent.as_str(),
                        ts(&record.ts),
                        serde_json::to_string(&record.event).unwrap_or_default(),
                        reason,
                        ts(&chrono::Utc::now())
                    ],
                )?;
            }
            Write::Paused {
                workflow_id,
                paused,
            } => {
                let updated = exec(
                    conn,
                    "UPDATE schedules SET paused = ? WHERE workflow_id = ?",
                    params![paused, workflow_id.as_str()],
                )?;
                if updated == 0 {
                    exec(
                        conn,
                        "INSERT INTO schedules (workflow_id, last_slot, paused) VALUES (?, NULL, ?)",
                        params![workflow_id.as_str(), paused],
                    )?;
                }
            }
            Write::Audit(a) => {
                if audit.is_none() {
                    audit = Some(conn.appender("audit")?);
                }
                if let Some(audit) = audit.as_mut() {
                    audit.append_row(params![
                        ts(&a.ts),
                        a.actor,
                        a.role,
                        a.peer,
                        a.action,
                        a.target,
                        a.detail,
                        a.outcome
                    ])?;
                }
            }
            Write::Agent {
                agent_id,
                host,
                slots,
                version,
                state,
                ts: at,
                labels,
            } => {
                let labels = serde_json::to_string(labels).unwrap_or_else(|_| "[]".into());
                let updated = exec(
                    conn,
                    "UPDATE agents SET host = ?, slots = ?, version = ?, state = ?, last_seen = ?, \
                     labels = ? WHERE agent_id = ?",
                    params![
                        host,
                        slots,
                        version,
                        state.as_str(),
                        ts(at),
                        labels,
                        agent_id.as_str()
                    ],
                )?;
                if updated == 0 {
                    exec(
                        conn,
                        "INSERT INTO agents (agent_id, host, slots, version, state, first_seen, \
                         last_seen, labels) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        params![
                            agent_id.as_str(),
                            host,
                            slots,
                            version,
                            state.as_str(),
                            ts(at),
                            ts(at),
                            labels
                        ],
                    )?;
                }
            }
        }
    }
    insert_queued_runs(conn, writes, &mut runs, &mut tasks)?;
    update_runs(conn, &runs)?;
    update_tasks(conn, &tasks)?;
    logs.flush()?;
    transitions.flush()?;
    if let Some(mut audit) = audit {
        audit.flush()?;
    }
    if let Some(mut tries) = tries {
        tries.flush()?;
    }
    Ok(())
}

/// Counters are validated at the protocol edge (`protocol::storable`); this only keeps a
/// value that slipped through from wrapping negative.
fn saturating_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
