//! The owner thread: the only code that touches the DuckDB connection.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use duckdb::types::{TimeUnit, Value};
use duckdb::{params, Connection};

use super::journal::Journal;
use super::{queries, Command, StoreError, Write};

/// How many queued commands are folded into one transaction at most.
const MAX_BATCH: usize = 512;

/// Writes held (journaled) while DuckDB refuses them; beyond this, writes are refused.
const MAX_BACKLOG_WRITES: usize = 2_000_000;

/// The store's health, shared with the facade.
#[derive(Default)]
pub struct Health {
    /// Why writes are failing, while they are.
    pub degraded: Mutex<Option<String>>,
    pub backlog: AtomicU64,
    /// Failpoint: writes fail until this time (ms since the epoch); 0 when off.
    pub fail_until_ms: AtomicU64,
    /// Failpoint: the next write waits this long (ms) before it is applied; 0 when off.
    pub stall_ms: AtomicU64,
}

pub struct Owner {
    pub conn: Connection,
    pub journal: Journal,
    pub health: Arc<Health>,
    backlog: VecDeque<Vec<Write>>,
    backlog_writes: usize,
    backoff: Duration,
    next_retry: Instant,
}

impl Owner {
    pub fn new(conn: Connection, journal: Journal, health: Arc<Health>) -> Owner {
        Owner {
            conn,
            journal,
            health,
            backlog: VecDeque::new(),
            backlog_writes: 0,
            backoff: Duration::from_millis(100),
            next_retry: Instant::now(),
        }
    }

    pub fn run(mut self, rx: Receiver<Command>) {
        loop {
            let first = if self.backlog.is_empty() {
                match rx.recv() {
                    Ok(cmd) => Some(cmd),
                    Err(_) => break,
                }
            } else {
                let wait = self.next_retry.saturating_duration_since(Instant::now());
                match rx.recv_timeout(wait) {
                    Ok(cmd) => Some(cmd),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            };
            if !self.backlog.is_empty() && Instant::now() >= self.next_retry {
                self.retry_backlog();
            }
            let Some(first) = first else { continue };
            // Fold the writes waiting behind the first one into one transaction; answer
            // queries after the writes that were queued before them.
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
            let result = if writes.is_empty() {
                Ok(())
            } else {
                let stall = self.health.stall_ms.swap(0, Ordering::Relaxed);
                if stall > 0 {
                    std::thread::sleep(Duration::from_millis(stall));
                }
                self.write(writes)
            };
            for ack in acks {
                let _ = ack.send(result.clone());
            }
            for q in queries {
                crate::runtime::contained("store", "a query", || answer(&self.conn, q));
            }
        }
        if !self.backlog.is_empty() {
            self.retry_backlog();
            if !self.backlog.is_empty() {
                tracing::error!(
                    journal = %self.journal.path().display(),
                    "the store is still refusing writes at shutdown: they stay in the journal and are applied at the next start"
                );
            }
        }
        if let Err(e) = self.conn.execute_batch("CHECKPOINT") {
            tracing::warn!(error = %e, "checkpoint at close failed");
        }
    }

    /// Applies a batch, or (while DuckDB refuses writes, and behind earlier refused batches)
    /// journals it and keeps it for retrying. Ok means durable either way.
    fn write(&mut self, batch: Vec<Write>) -> Result<(), StoreError> {
        if self.backlog.is_empty() {
            match self.apply(&[&batch], None) {
                Ok(()) => return Ok(()),
                Err(e) => self.degrade(&e),
            }
        }
        if self.backlog_writes + batch.len() > MAX_BACKLOG_WRITES {
            return Err(StoreError::Write(format!(
                "the database refuses writes and {} writes already wait for it",
                self.backlog_writes
            )));
        }
        let journaled = self.journal.append(&batch);
        self.backlog_writes += batch.len();
        self.backlog.push_back(batch);
        self.health
            .backlog
            .store(self.backlog_writes as u64, Ordering::Relaxed);
        journaled.map_err(|e| {
            StoreError::Write(format!(
                "the database refuses writes and the journal {} cannot be written: {e}",
                self.journal.path().display()
            ))
        })
    }

    fn degrade(&mut self, e: &StoreError) {
        let mut degraded = self
            .health
            .degraded
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if degraded.is_none() {
            tracing::error!(error = %e, "store degraded: writes are journaled and retried");
        }
        *degraded = Some(e.to_string());
        self.next_retry = Instant::now() + self.backoff;
    }

    /// Applies every held batch in one transaction (marking the journal applied in the same
    /// transaction, so a crash before the journal is removed cannot apply it twice).
    fn retry_backlog(&mut self) {
        let batches: Vec<&[Write]> = self.backlog.iter().map(Vec::as_slice).collect();
        // The journal's unique id marks it applied in the same transaction.
        let marker = match self.journal.read() {
            Ok(Some((id, _))) => id,
            Ok(None) => ulid::Ulid::new().to_string(),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the journal; retrying later");
                self.backoff = (self.backoff * 2).min(Duration::from_secs(5));
                self.next_retry = Instant::now() + self.backoff;
                return;
            }
        };
        match self.apply(&batches, Some(&marker)) {
            Ok(()) => {
                if let Err(e) = self.journal.clear() {
                    tracing::error!(error = %e, "cannot remove the applied journal");
                }
                tracing::info!(
                    writes = self.backlog_writes,
                    "store recovered: held writes applied"
                );
                self.backlog.clear();
                self.backlog_writes = 0;
                self.backoff = Duration::from_millis(100);
                self.health.backlog.store(0, Ordering::Relaxed);
                *self
                    .health
                    .degraded
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = None;
            }
            Err(e) => {
                self.backoff = (self.backoff * 2).min(Duration::from_secs(5));
                self.degrade(&e);
            }
        }
    }

    fn apply(&self, batches: &[&[Write]], journal_marker: Option<&str>) -> Result<(), StoreError> {
        let fail_until = self.health.fail_until_ms.load(Ordering::Relaxed);
        if fail_until > 0 && (Utc::now().timestamp_millis() as u64) < fail_until {
            return Err(StoreError::Write(
                "injected failure (failpoint store_writes)".into(),
            ));
        }
        match crate::runtime::contained("store", "a write", || {
            apply(&self.conn, batches, journal_marker)
        }) {
            Some(result) => result.map_err(|e| StoreError::Write(e.to_string())),
            None => Err(StoreError::Write(
                "the write panicked (see the log); it is retried".into(),
            )),
        }
    }
}

/// Replays a journal left by a crash while the database refused writes, unless its marker
/// shows it was applied already.
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
        apply(conn, &refs, Some(&id))?;
        batches.iter().map(Vec::len).sum()
    } else {
        0
    };
    journal
        .clear()
        .map_err(|e| StoreError::Write(e.to_string()))?;
    Ok(count)
}

pub fn ts(t: &DateTime<Utc>) -> Value {
    Value::Timestamp(TimeUnit::Microsecond, t.timestamp_micros())
}

fn opt_ts(t: Option<&DateTime<Utc>>) -> Value {
    t.map(ts).unwrap_or(Value::Null)
}

fn apply(
    conn: &Connection,
    batches: &[&[Write]],
    journal_marker: Option<&str>,
) -> Result<(), duckdb::Error> {
    conn.execute_batch("BEGIN TRANSACTION")?;
    let result = batches
        .iter()
        .try_for_each(|writes| apply_in_transaction(conn, writes))
        .and_then(|()| match journal_marker {
            Some(marker) => {
                conn.execute("DELETE FROM meta WHERE key = 'journal_applied'", [])?;
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('journal_applied', ?)",
                    [marker],
                )?;
                Ok(())
            }
            None => Ok(()),
        });
    match result {
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
                    params![saturating_i64(*last_seq), run_id.as_str()],
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
                    saturating_i64(l.id),
                    l.run_id.as_str(),
                    l.workflow_id.as_str(),
                    l.task_id.as_str(),
                    l.attempt,
                    l.stream.as_str(),
                    saturating_i64(l.seq),
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

/// Counters are validated at the protocol edge (`protocol::storable`); this only keeps a
/// value that slipped through from wrapping negative.
fn saturating_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
