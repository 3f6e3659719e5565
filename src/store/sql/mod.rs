//! Read-only SQL over documented views: `cdktr query`.
//!
//! What keeps a query from changing anything is DuckDB, not an inspection of its text:
//! - the database instance has external access (files, `COPY`, `read_csv`, `ATTACH` of a
//!   file, extension installs and loads) disabled and its configuration locked ([`lock_down`]);
//! - each query is first prepared on a raw connection and refused unless DuckDB says it is a
//!   `SELECT` (a string holding several statements cannot be prepared at all);
//! - it then runs in a `READ ONLY` transaction, which DuckDB refuses to write in, and that
//!   transaction is rolled back.
//!
//! The views are created per connection (temporary), over the store's tables; their columns
//! are the documented interface (README, "Querying history"), the tables behind them are not.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use duckdb::Connection;

pub mod report;
mod rows;

use rows::{describe, json, json_size, unreadable};

use super::instance::{Instance, RawConnection, StatementKind};
use crate::protocol::control::{QueryColumn, QueryResult};
use duckdb::types::Value;

/// The views a query sees, over the store's tables (`{db}` is the database's catalog: a view
/// in the temporary catalog that named `main.runs` would name itself).
const VIEWS: &str = "
CREATE OR REPLACE TEMP VIEW runs AS
SELECT run_id, workflow_id, status, trigger, triggered_by, queued_at, started_at, finished_at,
       date_diff('millisecond', started_at, finished_at) / 1000.0 AS duration_s,
       agent_id, attempt, rerun_of, params
FROM {db}.runs;
CREATE OR REPLACE TEMP VIEW task_runs AS
SELECT t.run_id, r.workflow_id, t.task_id, t.attempt, coalesce(t.try_no, 1) AS tries, t.status,
       t.started_at, t.finished_at,
       date_diff('millisecond', t.started_at, t.finished_at) / 1000.0 AS duration_s,
       t.exit_code, t.reason
FROM {db}.task_runs t JOIN {db}.runs r USING (run_id);
CREATE OR REPLACE TEMP VIEW task_tries AS
SELECT run_id, task_id, attempt, try_no, status, started_at, finished_at,
       date_diff('millisecond', started_at, finished_at) / 1000.0 AS duration_s, exit_code, reason
FROM {db}.task_tries;
CREATE OR REPLACE TEMP VIEW transitions AS
SELECT run_id, task_id, attempt, coalesce(try_no, 1) AS try_no, status, ts, reason
FROM {db}.transitions;
CREATE OR REPLACE TEMP VIEW logs AS
SELECT id, run_id, workflow_id, task_id, attempt, coalesce(try_no, 1) AS try_no, stream, seq, ts,
       line
FROM {db}.logs;
CREATE OR REPLACE TEMP VIEW schedule_slots AS
SELECT workflow_id, slot, fate, run_id, note, recorded_at FROM {db}.schedule_slots;
CREATE OR REPLACE TEMP VIEW agents AS
SELECT agent_id, host, slots, version, state, labels, first_seen, last_seen FROM {db}.agents;
CREATE OR REPLACE TEMP VIEW audit AS
SELECT ts, actor, role, peer, action, target, detail, outcome FROM {db}.audit;
";

/// The view names, for messages and documentation.
pub const VIEW_NAMES: &[&str] = &[
    "runs",
    "task_runs",
    "task_tries",
    "transitions",
    "logs",
    "schedule_slots",
    "agents",
    "audit",
];

/// The bounds of one query: beyond any of them it is stopped with an error that names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_rows: usize,
    pub timeout: Duration,
    /// Most bytes of result (as JSON) held at once: a few rows of huge values must not
    /// exhaust the principal's memory (`principal.max_message_bytes`).
    pub max_bytes: usize,
}

impl Limits {
    /// These limits, each lowered to the one a client asked for (never raised).
    pub fn lowered(self, max_rows: Option<u32>, timeout: Option<Duration>) -> Limits {
        Limits {
            max_rows: max_rows.map_or(self.max_rows, |n| (n as usize).min(self.max_rows)),
            timeout: timeout.map_or(self.timeout, |t| t.min(self.timeout)),
            max_bytes: self.max_bytes,
        }
    }
}

/// Why a query has no result.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SqlError {
    /// Not a read-only query: DuckDB said what it is, or refused to touch a file.
    #[error("refused: {0}")]
    Refused(String),
    /// Not valid SQL over the views (DuckDB's message).
    #[error("{0}")]
    Invalid(String),
    /// It hit the row or time limit.
    #[error("{0}")]
    Limit(String),
    /// The query engine is not available (shutting down, or busy).
    #[error("{0}")]
    Unavailable(String),
}

/// Disables everything that reaches outside the database file and locks the configuration.
/// The settings are the instance's: every connection to it, the store's own included, is held
/// to them from now on.
pub fn lock_down(conn: &Connection) -> Result<(), duckdb::Error> {
    conn.execute_batch(
        "SET enable_external_access = false;
         SET autoinstall_known_extensions = false;
         SET autoload_known_extensions = false;
         SET allow_community_extensions = false;
         SET lock_configuration = true;",
    )
}

/// An engine over a database file no principal has open (a copy, or a stopped principal's):
/// opened in DuckDB's read-only mode, locked down as the principal's is.
pub fn offline(path: &std::path::Path) -> Result<Engine, String> {
    if !path.is_file() {
        return Err(format!("no database file at {}", path.display()));
    }
    let instance = Instance::open(path, super::instance::Access::ReadOnly).map_err(|e| {
        if e.contains("lock") {
            format!(
                "{}: {e}\n(a running principal holds the file: ask it, without --offline, or query a copy)",
                path.display()
            )
        } else {
            format!("{}: {e}", path.display())
        }
    })?;
    let conn = instance.connect().map_err(|e| e.to_string())?;
    lock_down(&conn).map_err(|e| e.to_string())?;
    Engine::new(&instance)
}

/// One connection that answers queries, one at a time.
pub struct Engine {
    conn: Connection,
    /// Statements are typed here: it has the views, as `conn` has.
    raw: RawConnection,
    /// And here, when they do not bind over the views: this one has only the tables, so a
    /// write to a view's name (`DELETE FROM runs`) binds and is refused as what it is.
    tables: RawConnection,
}

impl Engine {
    /// A query connection to `instance`, whose configuration [`lock_down`] has locked.
    pub fn new(instance: &Instance) -> Result<Engine, String> {
        let conn = instance.connect().map_err(|e| e.to_string())?;
        let catalog: String = conn
            .query_row(
                "SELECT database_name FROM duckdb_databases() \
                 WHERE NOT internal ORDER BY database_oid LIMIT 1",
                [],
                |row| row.get(0),
            )
            .map_err(|e| e.to_string())?;
        let quoted = format!("\"{}\".main", catalog.replace('"', "\"\""));
        let views = VIEWS.replace("{db}", &quoted);
        let missing = |e: String| {
            format!(
                "the database does not have the tables the query views read ({e}); \
                 a principal of this version migrates it when it opens the file"
            )
        };
        conn.execute_batch(&views)
            .map_err(|e| missing(e.to_string()))?;
        // Statements are typed on the raw connection: it sees the same views.
        let raw = instance.raw_connection()?;
        raw.execute(&views).map_err(missing)?;
        let tables = instance.raw_connection()?;
        Ok(Engine { conn, raw, tables })
    }

    /// Runs `sql`, read-only, within `limits`.
    pub fn run(&self, sql: &str, limits: Limits) -> Result<QueryResult, SqlError> {
        let started = Instant::now();
        if sql.trim().is_empty() {
            return Err(SqlError::Invalid("the query is empty".into()));
        }
        let kind = self
            .raw
            .statement_kind(sql)
            .or_else(|over_views| self.tables.statement_kind(sql).map_err(|_| over_views));
        match kind {
            Ok(StatementKind::Select) => {}
            Ok(StatementKind::Other(kind)) => {
                return Err(SqlError::Refused(format!(
                "cdktr query runs read-only SELECT statements, and DuckDB reads this one as {kind}"
            )))
            }
            Err(message) => return Err(classify(message)),
        }
        let timer = Timer::start(&self.conn, limits.timeout);
        let outcome = self.read(sql, limits);
        let timed_out = timer.stop();
        // Whatever happened, nothing of this transaction is kept.
        let _ = self.conn.execute_batch("ROLLBACK");
        match outcome {
            Ok((columns, rows)) => Ok(QueryResult {
                columns,
                rows,
                elapsed_ms: started.elapsed().as_millis() as u64,
            }),
            Err(_) if timed_out => Err(SqlError::Limit(format!(
                "the query ran longer than the time limit ({}, principal.query_timeout) and was stopped",
                humantime::format_duration(limits.timeout)
            ))),
            Err(e) => Err(e),
        }
    }

    fn read(
        &self,
        sql: &str,
        limits: Limits,
    ) -> Result<(Vec<QueryColumn>, Vec<Vec<serde_json::Value>>), SqlError> {
        let Limits {
            max_rows,
            max_bytes,
            ..
        } = limits;
        let db = |e: duckdb::Error| classify(e.to_string());
        if !self.conn.is_autocommit() {
            // A query that failed midway (contained panic) left its transaction open.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        self.conn
            .execute_batch("BEGIN TRANSACTION READ ONLY")
            .map_err(db)?;
        let mut stmt = self.conn.prepare(sql).map_err(db)?;
        let mut rows = stmt.query([]).map_err(db)?;
        let (columns, nulls) = match rows.as_ref() {
            Some(stmt) => describe(stmt)?,
            None => (Vec::new(), Vec::new()),
        };
        let mut out = Vec::new();
        let mut bytes = 0;
        while let Some(row) = rows.next().map_err(db)? {
            if out.len() == max_rows {
                return Err(SqlError::Limit(format!(
                    "the result has more than {max_rows} rows (the row limit, \
                     principal.query_max_rows): aggregate, filter or add LIMIT"
                )));
            }
            let mut values = Vec::with_capacity(columns.len());
            for (index, null) in nulls.iter().enumerate() {
                if *null {
                    values.push(serde_json::Value::Null);
                    continue;
                }
                // duckdb-rs panics on a value it has no mapping for (deep inside a nested
                // type): that is this query's error, not the process's end.
                let value = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    row.get::<_, Value>(index)
                }))
                .map_err(|_| unreadable(&columns[index]))?
                .map_err(db)?;
                let value = json(value);
                bytes += json_size(&value);
                if bytes > max_bytes {
                    return Err(SqlError::Limit(format!(
                        "the result is larger than {max_bytes} bytes (the size limit, \
                         principal.max_message_bytes): select fewer or shorter values, or add LIMIT"
                    )));
                }
                values.push(value);
            }
            out.push(values);
        }
        Ok((columns, out))
    }
}

/// A DuckDB error as a refusal (it tried to reach a file or write) or invalid SQL.
fn classify(message: String) -> SqlError {
    let lower = message.to_ascii_lowercase();
    if lower.contains("multiple statements") {
        SqlError::Refused(format!("one statement at a time: {message}"))
    } else if lower.starts_with("catalog error: table with name") && message.contains('/') {
        SqlError::Refused(format!(
            "{message}\n(cdktr query reads the history views only: reading files is disabled)"
        ))
    } else if lower.starts_with("permission error")
        || lower.contains("disabled by configuration")
        || lower.contains("read-only mode")
        || lower.contains("cannot write to database")
    {
        SqlError::Refused(message)
    } else {
        SqlError::Invalid(message)
    }
}

/// Interrupts the connection's query when the time limit passes.
struct Timer {
    stop: std::sync::mpsc::Sender<()>,
    fired: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Timer {
    fn start(conn: &Connection, limit: Duration) -> Timer {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let fired = Arc::new(AtomicBool::new(false));
        let handle = conn.interrupt_handle();
        let flag = fired.clone();
        let thread = std::thread::Builder::new()
            .name("cdktr-query-timer".into())
            .spawn(move || {
                if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(limit)
                {
                    flag.store(true, Ordering::Release);
                    handle.interrupt();
                }
            })
            .ok();
        Timer {
            stop,
            fired,
            thread,
        }
    }

    /// Stops the timer; true when it had fired.
    fn stop(mut self) -> bool {
        let _ = self.stop.send(());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.fired.load(Ordering::Acquire)
    }
}

/// The principal's query thread: one query at a time, a few waiting at most.
#[derive(Clone)]
pub struct Service {
    tx: std::sync::mpsc::SyncSender<Job>,
}

type Job = (
    String,
    Limits,
    tokio::sync::oneshot::Sender<Result<QueryResult, SqlError>>,
);

/// Queries waiting for the query thread beyond the one it runs; more are refused (busy).
const WAITING: usize = 8;

impl Service {
    pub fn spawn(engine: Engine) -> std::io::Result<(Service, std::thread::JoinHandle<()>)> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(WAITING);
        let thread = std::thread::Builder::new()
            .name("cdktr-query".into())
            .spawn(move || {
                while let Ok((sql, limits, reply)) = rx.recv() {
                    let answer =
                        crate::runtime::contained("store", "a query", || engine.run(&sql, limits))
                            .unwrap_or_else(|| Err(SqlError::Invalid("the query failed".into())));
                    let _ = reply.send(answer);
                }
            })?;
        Ok((Service { tx }, thread))
    }

    pub async fn run(&self, sql: String, limits: Limits) -> Result<QueryResult, SqlError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        match self.tx.try_send((sql, limits, reply)) {
            Ok(()) => {}
            Err(std::sync::mpsc::TrySendError::Full(_)) => {
                return Err(SqlError::Unavailable(format!(
                    "{} queries are already waiting: try again later",
                    WAITING + 1
                )))
            }
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => {
                return Err(SqlError::Unavailable("the store has shut down".into()))
            }
        }
        rx.await
            .map_err(|_| SqlError::Unavailable("the store has shut down".into()))?
    }
}

impl super::Store {
    /// Runs `sql` read-only over the query views, within `limits` (`cdktr query`).
    pub async fn sql(
        &self,
        sql: String,
        limits: Limits,
    ) -> Result<crate::protocol::control::QueryResult, SqlError> {
        // First let the owner apply everything acknowledged before this query.
        self.ping()
            .await
            .map_err(|e| SqlError::Unavailable(e.to_string()))?;
        self.sql.run(sql, limits).await
    }
}
