//! The owner thread: the only code that touches the DuckDB connection.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use duckdb::Connection;

use super::apply::{apply, Mark};
use super::{journal, log_queries, queries, Command, StoreError, Write};

/// How many queued queries are answered after one transaction at most.
const MAX_BATCH: usize = 512;
/// Writes applied in one transaction at most (more wait for the next): all the batches
/// waiting are folded into one list, so each run's and task's changes are merged across them.
const CATCH_UP_WRITES: usize = 50_000;
/// Every this many transactions, older rows of `journal_applied` are dropped.
const PRUNE_EVERY: u64 = 10_000;

/// What the sequencer hands the owner, in order.
pub enum Work {
    /// A batch already durable in the journal under `seq`.
    Entry {
        seq: u64,
        writes: Vec<Write>,
    },
    Query(Command),
}

/// The store's health, shared by the facade, the sequencer and the owner.
#[derive(Default)]
pub struct Health {
    /// Why writes are failing, while they are.
    pub degraded: Mutex<Option<String>>,
    /// Writes handed to the owner, and how many of them DuckDB has applied.
    pub forwarded: AtomicU64,
    pub applied: AtomicU64,
    /// The journal sequence number DuckDB has applied up to.
    pub applied_seq: AtomicU64,
    /// Failpoint: writes fail until this time (ms since the epoch); 0 when off.
    pub fail_until_ms: AtomicU64,
    /// Failpoint: the next write waits this long (ms) before it is acknowledged; 0 when off.
    pub stall_ms: AtomicU64,
    /// Batches that changed what a list shows (see [`Write::changes_views`]).
    pub changes: AtomicU64,
}

impl Health {
    /// Writes acknowledged (journaled) that DuckDB has not applied yet.
    pub fn unapplied(&self) -> u64 {
        let forwarded = self.forwarded.load(Ordering::Acquire);
        forwarded.saturating_sub(self.applied.load(Ordering::Acquire))
    }

    pub fn is_degraded(&self) -> bool {
        self.degraded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }
}

pub struct Owner {
    pub conn: Connection,
    pub db: PathBuf,
    pub health: Arc<Health>,
    /// While DuckDB refuses writes: the last journaled batch it has not applied. The batches
    /// themselves are not kept in memory; they are read back from the journal.
    behind_through: Option<u64>,
    backoff: Duration,
    next_retry: Instant,
    transactions: u64,
}

impl Owner {
    pub fn new(conn: Connection, db: PathBuf, health: Arc<Health>) -> Owner {
        Owner {
            conn,
            db,
            health,
            behind_through: None,
            backoff: Duration::from_millis(100),
            next_retry: Instant::now(),
            transactions: 0,
        }
    }

    pub fn run(mut self, rx: Receiver<Work>) {
        loop {
            let first = if self.behind_through.is_none() {
                match rx.recv() {
                    Ok(work) => Some(work),
                    Err(_) => break,
                }
            } else {
                let wait = self.next_retry.saturating_duration_since(Instant::now());
                match rx.recv_timeout(wait) {
                    Ok(work) => Some(work),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            };
            if self.behind_through.is_some() && Instant::now() >= self.next_retry {
                self.catch_up();
            }
            let Some(first) = first else { continue };
            // Fold the batches waiting behind the first one into one transaction; answer
            // queries after the batches that were queued before them.
            let mut writes: Vec<Write> = Vec::new();
            let mut last_seq = 0;
            let mut queries = Vec::new();
            let mut next = Some(first);
            while let Some(work) = next.take() {
                match work {
                    Work::Entry { seq, writes: w } => {
                        last_seq = seq;
                        writes.extend(w);
                    }
                    Work::Query(q) => queries.push(q),
                }
                if writes.len() < CATCH_UP_WRITES && queries.len() < MAX_BATCH {
                    next = rx.try_recv().ok();
                }
            }
            if last_seq > 0 {
                self.write(&writes, last_seq);
            }
            for q in queries {
                crate::runtime::contained("store", "a query", || answer(&self.conn, q));
            }
        }
        if self.behind_through.is_some() {
            self.catch_up();
        }
        match self.behind_through {
            // The sequencer has stopped: nothing more comes, the journal can go.
            None => {
                if let Err(e) = journal::remove_segments(&self.db) {
                    tracing::warn!(error = %e, "cannot remove the applied journal");
                }
            }
            Some(_) => tracing::error!(
                db = %self.db.display(),
                "the store is still refusing writes at shutdown: they stay in the journal and are applied at the next start"
            ),
        }
        if let Err(e) = self.conn.execute_batch("CHECKPOINT") {
            tracing::warn!(error = %e, "checkpoint at close failed");
        }
    }

    /// Applies journaled batches up to `last_seq`, or (while DuckDB refuses writes) notes them
    /// as waiting in the journal.
    fn write(&mut self, writes: &[Write], last_seq: u64) {
        if self.behind_through.is_some() {
            self.behind_through = Some(last_seq);
            return;
        }
        match self.apply(writes, last_seq) {
            Ok(()) => self.applied(last_seq, writes.len()),
            Err(e) => {
                self.behind_through = Some(last_seq);
                self.degrade(&e);
            }
        }
    }

    fn applied(&self, seq: u64, writes: usize) {
        self.health
            .applied
            .fetch_add(writes as u64, Ordering::AcqRel);
        self.health.applied_seq.store(seq, Ordering::Release);
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
        self.backoff = (self.backoff * 2).min(Duration::from_secs(5));
    }

    /// Applies what waits in the journal, in transactions of up to [`CATCH_UP_WRITES`].
    fn catch_up(&mut self) {
        let Some(through) = self.behind_through else {
            return;
        };
        let db = self.db.clone();
        let mut chunk: Vec<Write> = Vec::new();
        let mut last = self.health.applied_seq.load(Ordering::Acquire);
        let result = journal::read(&db, last, Some(through), |seq, writes| {
            if seq != last + 1 {
                tracing::error!(
                    expected = last + 1,
                    found = seq,
                    "the journal misses batches"
                );
            }
            last = seq;
            chunk.extend(writes);
            match chunk.len() >= CATCH_UP_WRITES {
                true => self.apply_chunk(&mut chunk, last),
                false => Ok(()),
            }
        })
        .and_then(|()| match chunk.is_empty() {
            true => Ok(()),
            false => self.apply_chunk(&mut chunk, last),
        });
        match result {
            Ok(()) => {
                tracing::info!(through, "store recovered: journaled writes applied");
                self.health.applied_seq.store(through, Ordering::Release);
                self.behind_through = None;
                self.backoff = Duration::from_millis(100);
                *self
                    .health
                    .degraded
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = None;
            }
            Err(e) => self.degrade(&e),
        }
    }

    fn apply_chunk(&mut self, chunk: &mut Vec<Write>, last: u64) -> Result<(), StoreError> {
        self.apply(chunk, last)?;
        self.applied(last, chunk.len());
        chunk.clear();
        Ok(())
    }

    /// Applies `writes` in one transaction (their rows' changes merged: see `apply`).
    fn apply(&mut self, writes: &[Write], seq: u64) -> Result<(), StoreError> {
        let fail_until = self.health.fail_until_ms.load(Ordering::Relaxed);
        if fail_until > 0 && (Utc::now().timestamp_millis() as u64) < fail_until {
            return Err(StoreError::Write(
                "injected failure (failpoint store_writes)".into(),
            ));
        }
        self.transactions += 1;
        let mark = Mark::Seq {
            seq,
            prune: self.transactions.is_multiple_of(PRUNE_EVERY),
        };
        let started = Instant::now();
        let applied =
            crate::runtime::contained("store", "a write", || apply(&self.conn, &[writes], mark));
        crate::runtime::metrics::METRICS
            .store_write
            .observe(started.elapsed().as_secs_f64());
        match applied {
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
        Command::Definition(id, reply) => {
            let _ = reply.send(queries::definition(conn, &id));
        }
        Command::AgentLabels(reply) => {
            let _ = reply.send(queries::agent_labels(conn));
        }
        Command::Logs(f, reply) => {
            let _ = reply.send(log_queries::logs(conn, &f));
        }
        Command::Unfinished(reply) => {
            let _ = reply.send(queries::unfinished(conn));
        }
        Command::Ping(reply) => {
            let _ = reply.send(Ok(()));
        }
        Command::Wedge(duration) => {
            tracing::warn!(
                ms = duration.as_millis() as u64,
                "failpoint store_wedge: the store's writer stops"
            );
            std::thread::sleep(duration);
        }
        Command::MaxLogId(reply) => {
            let _ = reply.send(log_queries::max_log_id(conn));
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
        Command::Gc((policy, now, dry), reply) => {
            let _ = reply.send(super::retention::step(conn, &policy, now, dry));
        }
        Command::Checkpoint(reply) => {
            let _ = reply.send(conn.execute_batch("CHECKPOINT").map_err(Into::into));
        }
        Command::Audit(f, reply) => {
            let _ = reply.send(queries::audit(conn, &f));
        }
    }
}
