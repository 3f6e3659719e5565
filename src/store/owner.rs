//! The owner thread: the only code that touches the DuckDB connection.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use duckdb::Connection;

use super::apply::apply;
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
        Command::Audit(f, reply) => {
            let _ = reply.send(queries::audit(conn, &f));
        }
    }
}
