//! The owner thread: the only code that touches the DuckDB connection.

use std::sync::mpsc::Receiver;

use chrono::{DateTime, Utc};
use duckdb::types::{TimeUnit, Value};
use duckdb::{params, Connection};

use super::{queries, Command, StoreError, Write};

/// How many queued commands are folded into one transaction at most.
const MAX_BATCH: usize = 512;

pub fn run(conn: Connection, rx: Receiver<Command>) {
    while let Ok(first) = rx.recv() {
        // Fold the writes waiting behind the first one into one transaction; answer queries
        // after the writes that were queued before them.
        let mut writes: Vec<Write> = Vec::new();
        let mut acks = Vec::new();
        let mut queries = Vec::new();
        let mut next = Some(first);
        while let Some(cmd) = next.take() {
            match cmd {
                Command::Write(w, ack) => {
                    writes.extend(w);
                    acks.extend(ack);
                }
                other => queries.push(other),
            }
            if acks.len() + queries.len() < MAX_BATCH && writes.len() < 50_000 {
                next = rx.try_recv().ok();
            }
        }
        if !writes.is_empty() {
            let result = apply(&conn, &writes);
            if let Err(e) = &result {
                tracing::error!(error = %e, writes = writes.len(), "store write failed");
            }
            for ack in acks {
                let _ = ack.send(
                    result
                        .as_ref()
                        .map(|_| ())
                        .map_err(|e| StoreError::Corrupt(e.to_string())),
                );
            }
        } else {
            for ack in acks {
                let _ = ack.send(Ok(()));
            }
        }
        for q in queries {
            answer(&conn, q);
        }
    }
    if let Err(e) = conn.execute_batch("CHECKPOINT") {
        tracing::warn!(error = %e, "checkpoint at close failed");
    }
}

pub fn ts(t: &DateTime<Utc>) -> Value {
    Value::Timestamp(TimeUnit::Microsecond, t.timestamp_micros())
}

fn opt_ts(t: Option<&DateTime<Utc>>) -> Value {
    t.map(ts).unwrap_or(Value::Null)
}

fn apply(conn: &Connection, writes: &[Write]) -> Result<(), duckdb::Error> {
    conn.execute_batch("BEGIN TRANSACTION")?;
    match apply_in_transaction(conn, writes) {
        Ok(()) => conn.execute_batch("COMMIT"),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

fn apply_in_transaction(conn: &Connection, writes: &[Write]) -> Result<(), duckdb::Error> {
    let mut logs = conn.appender("logs")?;
    for w in writes {
        match w {
            Write::RunQueued(r) => {
                conn.execute(
                    "INSERT INTO runs (run_id, workflow_id, trigger, status, queued_at, attempt, \
                     last_seq, params, definition) VALUES (?, ?, ?, 'QUEUED', ?, 0, 0, ?, ?)",
                    params![
                        r.run_id.as_str(),
                        r.workflow_id.as_str(),
                        r.trigger,
                        ts(&r.queued_at),
                        r.params_json,
                        r.definition_json
                    ],
                )?;
                conn.execute(
                    "INSERT INTO transitions (run_id, task_id, attempt, status, ts) \
                     VALUES (?, NULL, 0, 'QUEUED', ?)",
                    params![r.run_id.as_str(), ts(&r.queued_at)],
                )?;
                for task in &r.tasks {
                    conn.execute(
                        "INSERT INTO task_runs (run_id, task_id, attempt, status) \
                         VALUES (?, ?, 0, 'PENDING')",
                        params![r.run_id.as_str(), task.as_str()],
                    )?;
                }
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
                if *status == crate::model::RunStatus::Queued {
                    // Queued again: the attempt that was assigned never started.
                    conn.execute(
                        "UPDATE runs SET status = 'QUEUED', started_at = NULL, agent_id = NULL, \
                         token = NULL, attempt = ?, last_seq = 0 WHERE run_id = ?",
                        params![attempt, run_id.as_str()],
                    )?;
                } else {
                    let started = (*status == crate::model::RunStatus::Running).then_some(at);
                    let finished = status.is_terminal().then_some(at);
                    conn.execute(
                        "UPDATE runs SET status = ?, started_at = coalesce(?, started_at), \
                         finished_at = coalesce(?, finished_at), agent_id = coalesce(?, agent_id), \
                         token = coalesce(?, token), attempt = ?, last_seq = CASE WHEN attempt = ? THEN last_seq ELSE 0 END \
                         WHERE run_id = ?",
                        params![
                            status.as_str(),
                            opt_ts(started),
                            opt_ts(finished),
                            agent.as_ref().map(|a| a.as_str()),
                            token,
                            attempt,
                            attempt,
                            run_id.as_str()
                        ],
                    )?;
                }
                conn.execute(
                    "INSERT INTO transitions (run_id, task_id, attempt, status, ts, reason) \
                     VALUES (?, NULL, ?, ?, ?, ?)",
                    params![run_id.as_str(), attempt, status.as_str(), ts(at), reason],
                )?;
            }
            Write::RunSeq { run_id, last_seq } => {
                conn.execute(
                    "UPDATE runs SET last_seq = greatest(last_seq, ?) WHERE run_id = ?",
                    params![*last_seq as i64, run_id.as_str()],
                )?;
            }
            Write::Task {
                run_id,
                task_id,
                attempt,
                status,
                ts: at,
                exit_code,
                reason,
            } => {
                let started = (*status == crate::model::TaskStatus::Running).then_some(at);
                let finished = status.is_terminal().then_some(at);
                conn.execute(
                    "UPDATE task_runs SET status = ?, attempt = ?, \
                     started_at = coalesce(?, started_at), finished_at = coalesce(?, finished_at), \
                     exit_code = coalesce(?, exit_code), reason = coalesce(?, reason) \
                     WHERE run_id = ? AND task_id = ?",
                    params![
                        status.as_str(),
                        attempt,
                        opt_ts(started),
                        opt_ts(finished),
                        exit_code,
                        reason,
                        run_id.as_str(),
                        task_id.as_str()
                    ],
                )?;
                conn.execute(
                    "INSERT INTO transitions (run_id, task_id, attempt, status, ts, reason) \
                     VALUES (?, ?, ?, ?, ?, ?)",
                    params![
                        run_id.as_str(),
                        task_id.as_str(),
                        attempt,
                        status.as_str(),
                        ts(at),
                        reason
                    ],
                )?;
            }
            Write::Log(l) => {
                logs.append_row(params![
                    l.id as i64,
                    l.run_id.as_str(),
                    l.workflow_id.as_str(),
                    l.task_id.as_str(),
                    l.attempt,
                    l.stream.as_str(),
                    l.seq as i64,
                    ts(&l.ts),
                    l.line
                ])?;
            }
            Write::Slot(r) => {
                conn.execute(
                    "INSERT INTO schedule_slots (workflow_id, slot, fate, run_id, note, recorded_at) \
                     VALUES (?, ?, ?, ?, ?, ?)",
                    params![
                        r.workflow_id.as_str(),
                        ts(&r.slot),
                        r.fate,
                        r.run_id.as_ref().map(|id| id.as_str()),
                        r.note,
                        ts(&r.recorded_at)
                    ],
                )?;
                let updated = conn.execute(
                    "UPDATE schedules SET last_slot = greatest(coalesce(last_slot, ?), ?) WHERE workflow_id = ?",
                    params![ts(&r.slot), ts(&r.slot), r.workflow_id.as_str()],
                )?;
                if updated == 0 {
                    conn.execute(
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
                conn.execute(
                    "INSERT INTO late_records (run_id, attempt, seq, agent_id, ts, event, reason, \
                     received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    params![
                        record.run_id.as_str(),
                        record.attempt,
                        record.seq as i64,
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
                let updated = conn.execute(
                    "UPDATE schedules SET paused = ? WHERE workflow_id = ?",
                    params![paused, workflow_id.as_str()],
                )?;
                if updated == 0 {
                    conn.execute(
                        "INSERT INTO schedules (workflow_id, last_slot, paused) VALUES (?, NULL, ?)",
                        params![workflow_id.as_str(), paused],
                    )?;
                }
            }
            Write::Agent {
                agent_id,
                host,
                slots,
                version,
                state,
                ts: at,
            } => {
                let updated = conn.execute(
                    "UPDATE agents SET host = ?, slots = ?, version = ?, state = ?, last_seen = ? \
                     WHERE agent_id = ?",
                    params![host, slots, version, state, ts(at), agent_id.as_str()],
                )?;
                if updated == 0 {
                    conn.execute(
                        "INSERT INTO agents (agent_id, host, slots, version, state, first_seen, \
                         last_seen) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        params![
                            agent_id.as_str(),
                            host,
                            slots,
                            version,
                            state,
                            ts(at),
                            ts(at)
                        ],
                    )?;
                }
            }
        }
    }
    logs.flush()?;
    Ok(())
}

fn answer(conn: &Connection, cmd: Command) {
    match cmd {
        Command::Write(..) => {}
        Command::ListRuns(f, reply) => {
            let _ = reply.send(queries::list_runs(conn, &f));
        }
        Command::GetRun(id, reply) => {
            let _ = reply.send(queries::get_run(conn, &id));
        }
        Command::Logs(f, reply) => {
            let _ = reply.send(queries::logs(conn, &f));
        }
        Command::Unfinished(reply) => {
            let _ = reply.send(queries::unfinished(conn));
        }
        Command::MaxLogId(reply) => {
            let _ = reply.send(queries::max_log_id(conn));
        }
        Command::ScheduleStates(reply) => {
            let _ = reply.send(queries::schedule_states(conn));
        }
        Command::SlotHistory(workflow, limit, reply) => {
            let _ = reply.send(queries::slot_history(conn, &workflow, limit));
        }
        Command::Count(table, reply) => {
            let _ = reply.send(queries::count(conn, &table));
        }
    }
}
