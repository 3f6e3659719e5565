//! The history store: one embedded DuckDB file behind one owner thread.
//!
//! Callers use the async [`Store`] facade and get answers through oneshots. Its commands go
//! to the sequencer thread, which acknowledges writes once they are journaled (appended and
//! fsynced, `sequencer.rs`, `journal.rs`) and hands them, with the queries in their order, to
//! the owner thread of the synchronous `duckdb::Connection` (`owner.rs`). The owner applies
//! the batches that arrive together in one transaction (log lines through the appender) and
//! records the last batch applied in it; every SQL statement is parameterised.

mod apply;
mod failpoints;
mod instance;
mod journal;
mod legacy_journal;
mod log_queries;
mod owner;
mod queries;
mod records;
pub mod retention;
mod rows;
mod schema;
mod sequencer;
pub mod sql;
mod task_queries;
mod update;
mod warm_up;

use std::path::{Path, PathBuf};

use tokio::sync::oneshot;

use crate::protocol::control::{RunDetail, RunSummary, SlotRecord};
use crate::protocol::logs::LogLine;

pub use records::{
    AuditFilter, LogFilter, NewRun, RunFilter, ScheduleState, TaskTry, UnfinishedRun, Write,
};
pub use retention::compact;
pub use schema::SCHEMA_VERSION;

/// DuckDB's memory limit unless configured (`principal.store_memory_mb`): its default is 80%
/// of the machine's memory, which it fills with cached blocks of the file as history grows.
pub const DEFAULT_MEMORY_MB: usize = 128;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("store {}: {source}", path.display())]
    Open {
        path: PathBuf,
        source: std::sync::Arc<dyn std::error::Error + Send + Sync>,
    },
    #[error("database error: {0}")]
    Db(std::sync::Arc<duckdb::Error>),
    #[error("the store has shut down")]
    Closed,
    #[error("writing to the database failed: {0}")]
    Write(String),
    #[error("stored data is not readable: {0}")]
    Corrupt(String),
}

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

enum Command {
    /// Writes, and whoever waits for their commit.
    Write(Vec<Write>, Vec<Reply<()>>),
    ListRuns(RunFilter, Reply<Vec<RunSummary>>),
    GetRun(String, Reply<Option<RunDetail>>),
    Definition(String, Reply<Option<String>>),
    AgentLabels(Reply<Vec<Vec<String>>>),
    Logs(LogFilter, Reply<Vec<LogLine>>),
    Unfinished(Reply<Vec<UnfinishedRun>>),
    MaxLogId(Reply<u64>),
    ScheduleStates(Reply<Vec<ScheduleState>>),
    SlotHistory(String, u32, Reply<Vec<SlotRecord>>),
    Count(String, Reply<i64>),
    /// One retention step (see `retention::step`) at the time given.
    Gc(retention::Step, Reply<(retention::Removed, bool)>),
    Checkpoint(Reply<()>),
    /// Answered by the owner thread without touching the database: it is taking work.
    Ping(Reply<()>),
    /// Failpoint: the owner thread stops for this long (answers and applies nothing).
    Wedge(std::time::Duration),
    Audit(
        AuditFilter,
        Reply<Vec<crate::protocol::control::AuditEntry>>,
    ),
}

impl From<duckdb::Error> for StoreError {
    fn from(e: duckdb::Error) -> Self {
        StoreError::Db(std::sync::Arc::new(e))
    }
}

/// Whether the database takes writes. Shown as `ok`, or `degraded: <why> (<n> writes
/// journaled, retrying)` while it refuses them and they wait in the journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreHealth {
    Ok,
    Degraded { reason: String, journaled: u64 },
}

impl std::fmt::Display for StoreHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreHealth::Ok => f.write_str("ok"),
            StoreHealth::Degraded { reason, journaled } => write!(
                f,
                "degraded: {reason} ({journaled} writes journaled, retrying)"
            ),
        }
    }
}

/// How far the store has written (the journal sequence DuckDB applied); holds no channel,
/// so keeping one does not keep the store open.
#[derive(Clone)]
pub struct Progress(std::sync::Arc<owner::Health>);

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Progress({})", self.position())
    }
}

impl Progress {
    pub fn position(&self) -> u64 {
        self.0
            .applied_seq
            .load(std::sync::atomic::Ordering::Acquire)
    }
}

/// Cheap, cloneable handle to the owner thread.
#[derive(Clone)]
pub struct Store {
    tx: std::sync::mpsc::Sender<Command>,
    health: std::sync::Arc<owner::Health>,
    sql: sql::Service,
    db: std::sync::Arc<Path>,
}

/// Writes collected by one owner (the coordinator, during one step) and sent to the store
/// together, in order, when it flushes: what one step decided (a run queued and assigned at
/// once) is committed in one transaction instead of one each.
pub struct Batch {
    store: Store,
    writes: Vec<Write>,
    replies: Vec<Reply<()>>,
}

impl Batch {
    /// Adds `writes`; the future resolves once they are committed (after the next flush).
    pub fn submit(
        &mut self,
        writes: Vec<Write>,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> {
        let (reply, rx) = oneshot::channel();
        self.writes.extend(writes);
        self.replies.push(reply);
        async move { rx.await.map_err(|_| StoreError::Closed)? }
    }

    /// Adds `writes` without waiting for their commit.
    pub fn write_later(&mut self, writes: Vec<Write>) {
        self.writes.extend(writes);
    }

    /// Sends what was collected to the store as one command.
    pub fn flush(&mut self) {
        if self.writes.is_empty() && self.replies.is_empty() {
            return;
        }
        let command = Command::Write(
            std::mem::take(&mut self.writes),
            std::mem::take(&mut self.replies),
        );
        // A store that has shut down drops the replies: their futures say Closed.
        let _ = self.store.tx.send(command);
    }

    pub fn health(&self) -> StoreHealth {
        self.store.health()
    }
}

/// The store's threads, joined by [`StoreGuard::close`]: the file is closed cleanly.
pub struct StoreGuard {
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl StoreGuard {
    /// Waits for the sequencer and then the owner thread to apply everything queued and close
    /// the database. Every [`Store`] handle must have been dropped first.
    pub fn close(self) {
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path` and migrates it to the current
    /// schema, with DuckDB's memory limited to [`DEFAULT_MEMORY_MB`].
    pub fn open(path: &Path) -> Result<(Store, StoreGuard), StoreError> {
        Store::open_limited(path, DEFAULT_MEMORY_MB)
    }

    /// As [`Store::open`], with DuckDB's caches and queries limited to `memory_mb` MB.
    pub fn open_limited(path: &Path, memory_mb: usize) -> Result<(Store, StoreGuard), StoreError> {
        let open_err = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
            path: path.to_path_buf(),
            source: source.into(),
        };
        if let Some(parent) = path.parent() {
            crate::runtime::files::private_dir(parent).map_err(|e| open_err(Box::new(e)))?;
        }
        let existed = path.exists();
        let instance = instance::Instance::open(path, instance::Access::ReadWrite)
            .map_err(|e| open_err(e.into()))?;
        let conn = instance.connect().map_err(|e| open_err(Box::new(e)))?;
        // Every statement the store runs is prepared once (see `apply::exec`).
        conn.set_prepared_statement_cache_capacity(64);
        conn.execute_batch(&format!("SET memory_limit = '{memory_mb}MB'"))
            .map_err(|e| open_err(Box::new(e)))?;
        instance::restrict(path, existed);
        schema::migrate(&conn).map_err(|e| open_err(Box::new(e)))?;
        let legacy = legacy_journal::Journal::beside(path);
        let replayed = apply::replay(&conn, &legacy).map_err(|e| open_err(Box::new(e)))?;
        let (journaled, next_seq) =
            apply::replay_journal(&conn, path).map_err(|e| open_err(Box::new(e)))?;
        if replayed + journaled > 0 {
            tracing::info!(
                writes = replayed + journaled,
                "applied writes the journal held beyond the database"
            );
        }
        if let Err(e) = warm_up::warm_up(&conn) {
            tracing::warn!(error = %e, "warming up the store failed; the first writes prepare their statements");
        }
        sql::lock_down(&conn).map_err(|e| open_err(Box::new(e)))?;
        let engine = sql::Engine::new(&instance).map_err(|e| open_err(e.into()))?;
        drop(instance);
        let health = std::sync::Arc::new(owner::Health::default());
        health
            .applied_seq
            .store(next_seq - 1, std::sync::atomic::Ordering::Release);
        let owner = owner::Owner::new(conn, path.to_path_buf(), health.clone());
        let (owner_tx, owner_rx) = std::sync::mpsc::channel();
        let sequencer = sequencer::Sequencer {
            journal: journal::Journal::new(path, journal::SEGMENT_BYTES),
            next_seq,
            health: health.clone(),
            owner: owner_tx,
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let spawn = |name: &str, body: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(body)
                .map_err(|e| open_err(Box::new(e)))
        };
        let owner = spawn("cdktr-store", Box::new(move || owner.run(owner_rx)))?;
        let sequencer = spawn("cdktr-journal", Box::new(move || sequencer.run(rx)))?;
        let (sql, query_thread) = sql::Service::spawn(engine).map_err(|e| open_err(Box::new(e)))?;
        Ok((
            Store {
                tx,
                health,
                sql,
                db: path.into(),
            },
            StoreGuard {
                threads: vec![sequencer, owner, query_thread],
            },
        ))
    }

    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Applies `writes` and waits until they are committed.
    pub async fn write(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.submit(writes).await
    }

    /// Queues `writes` now (so they keep their order relative to later writes) and returns a
    /// future that resolves once they are committed.
    pub fn submit(
        &self,
        writes: Vec<Write>,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> {
        let (reply, rx) = oneshot::channel();
        let sent = self.tx.send(Command::Write(writes, vec![reply]));
        async move {
            sent.map_err(|_| StoreError::Closed)?;
            rx.await.map_err(|_| StoreError::Closed)?
        }
    }

    /// Queues `writes` without waiting for the commit.
    pub fn write_later(&self, writes: Vec<Write>) {
        let _ = self.tx.send(Command::Write(writes, Vec::new()));
    }

    /// A batch that collects writes until [`Batch::flush`] sends them as one.
    pub fn batch(&self) -> Batch {
        Batch {
            store: self.clone(),
            writes: Vec::new(),
            replies: Vec::new(),
        }
    }

    /// Audit entries, newest first.
    pub async fn audit(
        &self,
        filter: AuditFilter,
    ) -> Result<Vec<crate::protocol::control::AuditEntry>, StoreError> {
        self.ask(|r| Command::Audit(filter, r)).await
    }

    pub async fn list_runs(&self, filter: RunFilter) -> Result<Vec<RunSummary>, StoreError> {
        self.ask(|r| Command::ListRuns(filter, r)).await
    }

    pub async fn get_run(&self, run_id: &str) -> Result<Option<RunDetail>, StoreError> {
        let id = run_id.to_owned();
        self.ask(|r| Command::GetRun(id, r)).await
    }

    /// The labels of every agent ever registered (each agent's list, `key` or `key=value`).
    pub async fn agent_labels(&self) -> Result<Vec<Vec<String>>, StoreError> {
        self.ask(Command::AgentLabels).await
    }

    /// The workflow definition a run was queued with (JSON), as stored with it.
    pub async fn definition(&self, run_id: &str) -> Result<Option<String>, StoreError> {
        let id = run_id.to_owned();
        self.ask(|r| Command::Definition(id, r)).await
    }

    pub async fn logs(&self, filter: LogFilter) -> Result<Vec<LogLine>, StoreError> {
        self.ask(|r| Command::Logs(filter, r)).await
    }

    pub async fn unfinished_runs(&self) -> Result<Vec<UnfinishedRun>, StoreError> {
        self.ask(Command::Unfinished).await
    }

    pub async fn max_log_id(&self) -> Result<u64, StoreError> {
        self.ask(Command::MaxLogId).await
    }

    pub async fn schedule_states(&self) -> Result<Vec<ScheduleState>, StoreError> {
        self.ask(Command::ScheduleStates).await
    }

    /// The newest `limit` slot records of a workflow, newest first.
    pub async fn slot_history(
        &self,
        workflow: &str,
        limit: u32,
    ) -> Result<Vec<SlotRecord>, StoreError> {
        let workflow = workflow.to_owned();
        self.ask(|r| Command::SlotHistory(workflow, limit, r)).await
    }

    pub fn progress(&self) -> Progress {
        Progress(self.health.clone())
    }

    pub fn health(&self) -> StoreHealth {
        let degraded = self
            .health
            .degraded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match degraded {
            None => StoreHealth::Ok,
            Some(reason) => StoreHealth::Degraded {
                reason,
                journaled: self.health.unapplied(),
            },
        }
    }

    /// Writes acknowledged (journaled) that DuckDB has not applied yet.
    pub fn unapplied(&self) -> u64 {
        self.health.unapplied()
    }

    /// Answers once the owner thread (the writer) has taken everything sent before: the
    /// watchdog's proof that the store makes progress.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.ask(Command::Ping).await
    }

    /// Rows in one of the store's tables (for tests and status).
    pub async fn count(&self, table: &str) -> Result<i64, StoreError> {
        let table = table.to_owned();
        self.ask(|r| Command::Count(table, r)).await
    }
}

#[cfg(test)]
mod journal_tests;
#[cfg(test)]
mod merge_tests;
#[cfg(test)]
mod sql_tests;
#[cfg(test)]
mod tests;
