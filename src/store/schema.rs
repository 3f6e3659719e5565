//! Tables and migrations. The schema version lives in the `meta` table; each migration moves
//! the file one version forward inside a transaction.
//!
//! History is insert-only: `transitions` and `logs` only ever grow. `runs` and `task_runs`
//! hold the current state of each run and task (updated in place) for cheap listing.
//! Timestamps are `TIMESTAMP` in UTC.

use duckdb::Connection;

use super::StoreError;

pub const SCHEMA_VERSION: i64 = 7;

const V1: &str = "
CREATE TABLE runs (
    run_id VARCHAR NOT NULL,
    workflow_id VARCHAR NOT NULL,
    trigger VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    queued_at TIMESTAMP NOT NULL,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    agent_id VARCHAR,
    attempt INTEGER NOT NULL,
    token VARCHAR,
    last_seq BIGINT NOT NULL,
    params VARCHAR NOT NULL,
    definition VARCHAR NOT NULL
);
CREATE TABLE task_runs (
    run_id VARCHAR NOT NULL,
    task_id VARCHAR NOT NULL,
    attempt INTEGER NOT NULL,
    status VARCHAR NOT NULL,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    exit_code INTEGER,
    reason VARCHAR
);
CREATE TABLE transitions (
    run_id VARCHAR NOT NULL,
    task_id VARCHAR,
    attempt INTEGER NOT NULL,
    status VARCHAR NOT NULL,
    ts TIMESTAMP NOT NULL,
    reason VARCHAR
);
CREATE TABLE logs (
    id BIGINT NOT NULL,
    run_id VARCHAR NOT NULL,
    workflow_id VARCHAR NOT NULL,
    task_id VARCHAR NOT NULL,
    attempt INTEGER NOT NULL,
    stream VARCHAR NOT NULL,
    seq BIGINT NOT NULL,
    ts TIMESTAMP NOT NULL,
    line VARCHAR NOT NULL
);
CREATE TABLE agents (
    agent_id VARCHAR NOT NULL,
    host VARCHAR NOT NULL,
    slots INTEGER NOT NULL,
    version VARCHAR NOT NULL,
    state VARCHAR NOT NULL,
    first_seen TIMESTAMP NOT NULL,
    last_seen TIMESTAMP NOT NULL
);
";

/// Version 2: schedules. `schedules` holds each scheduled workflow's last handled slot and its
/// pause flag (both survive restarts); `schedule_slots` records every slot's fate.
const V2: &str = "
CREATE TABLE schedules (
    workflow_id VARCHAR NOT NULL,
    last_slot TIMESTAMP,
    paused BOOLEAN NOT NULL
);
CREATE TABLE schedule_slots (
    workflow_id VARCHAR NOT NULL,
    slot TIMESTAMP NOT NULL,
    fate VARCHAR NOT NULL,
    run_id VARCHAR,
    note VARCHAR,
    recorded_at TIMESTAMP NOT NULL
);
";

/// Version 3: records that arrived for an attempt the principal had already closed (its run
/// CRASHED, CANCELLED or reassigned). Kept for the record; they never change a run.
const V3: &str = "
CREATE TABLE late_records (
    run_id VARCHAR NOT NULL,
    attempt INTEGER NOT NULL,
    seq BIGINT NOT NULL,
    agent_id VARCHAR NOT NULL,
    ts TIMESTAMP NOT NULL,
    event VARCHAR NOT NULL,
    reason VARCHAR NOT NULL,
    received_at TIMESTAMP NOT NULL
);
";

/// Version 4: the audit log of control actions, and who triggered each run.
const V4: &str = "
CREATE TABLE audit (
    ts TIMESTAMP NOT NULL,
    actor VARCHAR NOT NULL,
    role VARCHAR NOT NULL,
    peer VARCHAR,
    action VARCHAR NOT NULL,
    target VARCHAR,
    detail VARCHAR,
    outcome VARCHAR NOT NULL
);
ALTER TABLE runs ADD COLUMN triggered_by VARCHAR;
";

/// Version 5: indexes for the point updates every run makes (by run id), which otherwise scan
/// the whole history.
const V5: &str = "
CREATE INDEX runs_run_id ON runs (run_id);
CREATE INDEX task_runs_run_id ON task_runs (run_id);
";

/// Version 6: the journal's sequence number each transaction applied up to (the writes are
/// acknowledged once journaled, and applied behind): a restart replays the batches after the
/// largest.
const V6: &str = "
CREATE TABLE journal_applied (seq BIGINT NOT NULL);
";

/// Version 7: tries of a task (retries): the current try of each task, the try of each log
/// line and transition, one row per ended try of a retried task (a task run once has its one
/// try in `task_runs`); the run a rerun repeats and the tasks it
/// reuses; each agent's labels.
const V7: &str = "
ALTER TABLE task_runs ADD COLUMN try_no INTEGER DEFAULT 1;
ALTER TABLE transitions ADD COLUMN try_no INTEGER DEFAULT 1;
ALTER TABLE logs ADD COLUMN try_no INTEGER DEFAULT 1;
ALTER TABLE runs ADD COLUMN rerun_of VARCHAR;
ALTER TABLE runs ADD COLUMN reuse VARCHAR;
ALTER TABLE agents ADD COLUMN labels VARCHAR;
CREATE TABLE task_tries (
    run_id VARCHAR NOT NULL,
    task_id VARCHAR NOT NULL,
    attempt INTEGER NOT NULL,
    try_no INTEGER NOT NULL,
    status VARCHAR NOT NULL,
    started_at TIMESTAMP,
    finished_at TIMESTAMP NOT NULL,
    exit_code INTEGER,
    reason VARCHAR
);
";

pub fn migrate(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS meta (key VARCHAR NOT NULL, value VARCHAR NOT NULL)",
    )?;
    let current: i64 = conn.query_row(
        "SELECT coalesce(max(CAST(value AS BIGINT)), 0) FROM meta WHERE key = 'schema_version'",
        [],
        |row| row.get(0),
    )?;
    if current > SCHEMA_VERSION {
        return Err(StoreError::Corrupt(format!(
            "the database has schema version {current}, newer than this cdktr's {SCHEMA_VERSION}: \
             upgrade cdktr or point it at another file"
        )));
    }
    let migrations: [&str; 7] = [V1, V2, V3, V4, V5, V6, V7];
    for (index, sql) in migrations.iter().enumerate() {
        let version = index as i64 + 1;
        if version <= current {
            continue;
        }
        conn.execute_batch("BEGIN TRANSACTION")?;
        let applied = conn.execute_batch(sql).and_then(|_| {
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                [version.to_string()],
            )
            .map(|_| ())
        });
        match applied {
            Ok(()) => conn.execute_batch("COMMIT")?,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e.into());
            }
        }
    }
    Ok(())
}
