//! Retention: removing old history (`[retention]`, `cdktr gc`).
//!
//! Runs only ended runs are removed, with everything recorded for them (tasks, tries,
//! transitions, output, late records): those older than `max_age`, and those beyond the newest
//! `max_runs_per_workflow` of their workflow. Output alone is trimmed, oldest line first, to
//! `max_log_bytes`. Schedule slot records, late records and audit entries older than
//! `max_age` go too. Each step removes at most [`CHUNK`] runs (and lines) in one transaction,
//! on the store's owner thread, so the writes behind it wait one short transaction at most.

use chrono::{DateTime, Utc};
use duckdb::{params, Connection};
use serde::{Deserialize, Serialize};

use super::StoreError;
pub use crate::protocol::query::Removed;

/// One step's work: the policy, the time it is applied at, and whether only to count.
pub type Step = (Policy, DateTime<Utc>, bool);

/// Runs (and log lines) removed in one transaction at most.
pub const CHUNK: i64 = 2_000;

/// What to keep; `None` keeps everything by that measure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub max_age: Option<std::time::Duration>,
    pub max_runs_per_workflow: Option<u64>,
    pub max_log_bytes: Option<u64>,
}

impl Policy {
    pub fn is_empty(&self) -> bool {
        self.max_age.is_none()
            && self.max_runs_per_workflow.is_none()
            && self.max_log_bytes.is_none()
    }
}

const ENDED: &str = "('COMPLETED', 'FAILED', 'CRASHED', 'CANCELLED')";

/// The cutoff for `max_age` at `now` (the far past without one).
fn cutoff(policy: &Policy, now: DateTime<Utc>) -> duckdb::types::Value {
    let t = policy
        .max_age
        .and_then(|age| chrono::Duration::from_std(age).ok())
        .and_then(|age| now.checked_sub_signed(age))
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    super::apply::ts(&t)
}

/// Chooses the runs one step removes into the temporary table `gc_runs`; returns how many.
fn choose(
    conn: &Connection,
    policy: &Policy,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<i64, StoreError> {
    let keep = policy
        .max_runs_per_workflow
        .map_or(i64::MAX, |n| i64::try_from(n).unwrap_or(i64::MAX));
    conn.execute(
        &format!(
            "CREATE OR REPLACE TEMP TABLE gc_runs AS
             SELECT run_id FROM (
                 SELECT run_id, status, queued_at,
                        row_number() OVER (PARTITION BY workflow_id ORDER BY queued_at DESC) AS newest
                 FROM runs)
             WHERE status IN {ENDED} AND (queued_at < ? OR newest > ?)
             LIMIT ?"
        ),
        params![cutoff(policy, now), keep, limit],
    )?;
    Ok(conn.query_row("SELECT count(*) FROM gc_runs", [], |r| r.get(0))?)
}

fn count(conn: &Connection, sql: &str, p: impl duckdb::Params) -> Result<u64, StoreError> {
    let n: i64 = conn.query_row(sql, p, |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The rows of `table` matching `condition`: counted when `dry`, else deleted (and counted by
/// the delete itself, so no table is read twice).
fn rows(
    conn: &Connection,
    table: &str,
    condition: &str,
    p: impl duckdb::Params,
    dry: bool,
) -> Result<u64, StoreError> {
    let n = if dry {
        conn.query_row(
            &format!("SELECT count(*) FROM {table} WHERE {condition}"),
            p,
            |r| r.get::<_, i64>(0),
        )?
    } else {
        i64::try_from(conn.execute(&format!("DELETE FROM {table} WHERE {condition}"), p)?)
            .unwrap_or(i64::MAX)
    };
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The first log id kept under `max_log_bytes` (lines before it are over the budget), or None
/// when the output is within it.
fn log_budget_start(conn: &Connection, max: u64, exclude: &str) -> Result<Option<i64>, StoreError> {
    let total = count(
        conn,
        &format!("SELECT coalesce(sum(strlen(line)), 0) FROM logs WHERE NOT {exclude}"),
        [],
    )?;
    if total <= max {
        return Ok(None);
    }
    let max = i64::try_from(max).unwrap_or(i64::MAX);
    let first: Option<i64> = conn.query_row(
        &format!(
            "SELECT min(id) FROM (
                 SELECT id, sum(strlen(line)) OVER (ORDER BY id DESC ROWS UNBOUNDED PRECEDING) AS newer
                 FROM logs WHERE NOT {exclude})
             WHERE newer <= ?"
        ),
        params![max],
        |r| r.get(0),
    )?;
    // Not even the newest line fits: every line goes.
    Ok(Some(first.unwrap_or(i64::MAX)))
}

/// One step: removes (or with `dry`, counts for the whole pass) what `policy` no longer keeps.
/// Returns what it removed and whether more remains (never, when dry).
pub fn step(
    conn: &Connection,
    policy: &Policy,
    now: DateTime<Utc>,
    dry: bool,
) -> Result<(Removed, bool), StoreError> {
    if policy.is_empty() {
        return Ok((Removed::default(), false));
    }
    conn.execute_batch("BEGIN TRANSACTION")?;
    let outcome = pass(conn, policy, now, dry);
    match outcome {
        Ok(done) if !dry => {
            conn.execute_batch("COMMIT")?;
            Ok(done)
        }
        other => {
            let _ = conn.execute_batch("ROLLBACK");
            other
        }
    }
}

fn pass(
    conn: &Connection,
    policy: &Policy,
    now: DateTime<Utc>,
    dry: bool,
) -> Result<(Removed, bool), StoreError> {
    let mut removed = Removed::default();
    let limit = if dry { i64::MAX } else { CHUNK };
    let chosen = choose(conn, policy, now, limit)?;
    let mut more = chosen == limit;
    let of_chosen = "run_id IN (SELECT run_id FROM gc_runs)";
    removed.runs = u64::try_from(chosen).unwrap_or(0);
    let (lines, bytes) = conn.query_row(
        &format!("SELECT count(*), coalesce(sum(strlen(line)), 0) FROM logs WHERE {of_chosen}"),
        [],
        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
    )?;
    removed.log_lines = u64::try_from(lines).unwrap_or(0);
    removed.log_bytes = u64::try_from(bytes).unwrap_or(0);
    removed.task_runs = rows(conn, "task_runs", of_chosen, [], dry)?;
    removed.transitions = rows(conn, "transitions", of_chosen, [], dry)?;
    if !dry {
        for table in ["logs", "task_tries", "late_records", "runs"] {
            conn.execute(&format!("DELETE FROM {table} WHERE {of_chosen}"), [])?;
        }
    }
    if let Some(max) = policy.max_log_bytes {
        // Lines of runs this pass removes are already counted (and, dry, still there).
        if let Some(start) = log_budget_start(conn, max, of_chosen)? {
            let over = format!("id < ? AND NOT {of_chosen}");
            let (lines, bytes) = conn.query_row(
                &format!(
                    "SELECT count(*), coalesce(sum(strlen(line)), 0) FROM (
                         SELECT line FROM logs WHERE {over} ORDER BY id LIMIT ?)"
                ),
                params![start, limit],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
            )?;
            removed.log_lines += u64::try_from(lines).unwrap_or(0);
            removed.log_bytes += u64::try_from(bytes).unwrap_or(0);
            more |= lines == limit;
            if !dry {
                conn.execute(
                    "DELETE FROM logs WHERE id IN (SELECT id FROM logs WHERE id < ? ORDER BY id LIMIT ?)",
                    params![start, limit],
                )?;
            }
        }
    }
    if policy.max_age.is_some() {
        let before = cutoff(policy, now);
        removed.schedule_slots = rows(
            conn,
            "schedule_slots",
            "recorded_at < ?",
            params![before],
            dry,
        )?;
        removed.audit_entries = rows(conn, "audit", "ts < ?", params![before], dry)?;
        if !dry {
            conn.execute(
                "DELETE FROM late_records WHERE received_at < ?",
                params![before],
            )?;
        }
    }
    Ok((removed, more && !dry))
}

/// The bytes of the database file and its write-ahead log.
pub fn file_bytes(db: &std::path::Path) -> u64 {
    let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let mut wal = db.as_os_str().to_owned();
    wal.push(".wal");
    size(db) + size(std::path::Path::new(&wal))
}

/// Copies the database at `db` into a new file and puts it in its place: DuckDB returns the
/// space of removed rows to the file system only this way. No principal may have it open.
pub fn compact(db: &std::path::Path) -> Result<(), StoreError> {
    let io = |e: std::io::Error| StoreError::Write(format!("compacting {}: {e}", db.display()));
    let mut name = db.as_os_str().to_owned();
    name.push(".compact");
    let tmp = std::path::PathBuf::from(name);
    if tmp.exists() {
        std::fs::remove_file(&tmp).map_err(io)?;
    }
    let quote = |p: &std::path::Path| p.display().to_string().replace('\'', "''");
    let conn = Connection::open_in_memory()?;
    conn.execute_batch(&format!(
        "ATTACH '{}' AS old_db (READ_ONLY);
         ATTACH '{}' AS new_db;
         COPY FROM DATABASE old_db TO new_db;
         DETACH old_db;
         DETACH new_db;",
        quote(db),
        quote(&tmp)
    ))?;
    drop(conn);
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io)?;
    crate::runtime::files::without_bits(&tmp, 0o077).map_err(io)?;
    std::fs::rename(&tmp, db).map_err(io)?;
    if let Some(dir) = db.parent() {
        std::fs::File::open(dir)
            .and_then(|f| f.sync_all())
            .map_err(io)?;
    }
    Ok(())
}

impl super::Store {
    /// Removes (or with `dry`, counts) what `policy` no longer keeps, a short transaction at a
    /// time, then checkpoints so DuckDB can reuse or return the space.
    pub async fn gc(
        &self,
        policy: Policy,
        dry: bool,
    ) -> Result<crate::protocol::query::GcReport, StoreError> {
        let started = std::time::Instant::now();
        let before = file_bytes(&self.db);
        let now = chrono::Utc::now();
        let mut removed = Removed::default();
        loop {
            let (step, more) = self
                .ask(|r| super::Command::Gc((policy, now, dry), r))
                .await?;
            removed.add(&step);
            if !more {
                break;
            }
        }
        if !dry && !removed.is_empty() {
            self.ask(super::Command::Checkpoint).await?;
        }
        Ok(crate::protocol::query::GcReport {
            dry_run: dry,
            configured: !policy.is_empty(),
            removed,
            file_bytes_before: before,
            file_bytes_after: file_bytes(&self.db),
            elapsed_ms: started.elapsed().as_millis() as u64,
        })
    }
}
