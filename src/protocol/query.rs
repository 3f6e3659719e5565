//! The answer to a read-only SQL query (`cdktr query`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::RunId;

/// A query's answer: its columns, then its rows (one JSON value per column: numbers, text,
/// `null`, times as RFC 3339 UTC text, lists as arrays).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueryResult {
    pub columns: Vec<QueryColumn>,
    pub rows: Vec<Vec<serde_json::Value>>,
    /// How long the principal took to answer.
    pub elapsed_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueryColumn {
    pub name: String,
    /// DuckDB's type (`VARCHAR`, `BIGINT`, `TIMESTAMP` ...).
    #[serde(rename = "type")]
    pub kind: String,
}

/// What one pass removed (or, dry, would remove).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    pub runs: u64,
    pub task_runs: u64,
    pub transitions: u64,
    pub log_lines: u64,
    pub log_bytes: u64,
    pub schedule_slots: u64,
    pub audit_entries: u64,
}

impl Removed {
    pub fn add(&mut self, other: &Removed) {
        self.runs += other.runs;
        self.task_runs += other.task_runs;
        self.transitions += other.transitions;
        self.log_lines += other.log_lines;
        self.log_bytes += other.log_bytes;
        self.schedule_slots += other.schedule_slots;
        self.audit_entries += other.audit_entries;
    }

    pub fn is_empty(&self) -> bool {
        *self == Removed::default()
    }
}

/// What a retention pass (`cdktr gc`) did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcReport {
    /// Counted only: nothing was removed.
    pub dry_run: bool,
    /// Whether any retention is configured (`[retention]`); without it nothing is removed.
    pub configured: bool,
    pub removed: Removed,
    /// The database file (and its write-ahead log) before and after, in bytes.
    pub file_bytes_before: u64,
    pub file_bytes_after: u64,
    pub elapsed_ms: u64,
}

/// One control action as the audit log keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    #[serde(with = "crate::model::time")]
    pub ts: DateTime<Utc>,
    /// Who: a credential's name, `local:USER` on the control socket, `anonymous` on a
    /// principal without authentication, `keys-file` for a change of the keys file.
    pub actor: String,
    /// The actor's role (empty for the keys file).
    pub role: String,
    /// Where from: the peer's IP, `local` for the control socket.
    #[serde(default)]
    pub peer: Option<String>,
    /// `trigger`, `pause`, `resume`, `reload`, `failpoint`, `key_added`, `key_removed`,
    /// `key_changed`.
    pub action: String,
    /// What it acted on: a workflow, a credential's name.
    #[serde(default)]
    pub target: Option<String>,
    /// Details: a trigger's run id and parameters, a key's role.
    #[serde(default)]
    pub detail: Option<String>,
    /// `ok`, or `error: MESSAGE (CODE)`.
    pub outcome: String,
}

impl AuditEntry {
    /// A trigger's entry once it queued `run_id`: stored in the same transaction as the run.
    pub fn queued(mut self, run_id: &RunId) -> AuditEntry {
        let params = self.detail.take().unwrap_or_default();
        self.detail = Some(format!("run {run_id}, params {params}"));
        self.outcome = "ok".into();
        self
    }
}
