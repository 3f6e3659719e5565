//! Control clients (CLI, TUI, event listeners) <-> principal.
//!
//! A trigger is the request an event listener in any language sends; `docs/protocol.md`
//! shows it byte for byte.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::logs::LogLine;
pub use super::query::{AuditEntry, QueryColumn, QueryResult};
pub use super::views::{AgentView, Notice, ScheduleView, SlotRecord, StatusView};
use crate::model::{
    AgentId, RunId, RunStatus, TaskId, TaskStatus, TriggerSource, Workflow, WorkflowId,
};
use crate::workflow::InvalidFile;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ControlRequest {
    /// Queue a run of `workflow`. `trigger` is the source recorded with the run (`cli`, `tui`,
    /// `api`, `event:<name>`); default `api`.
    Trigger {
        workflow: String,
        #[serde(default)]
        params: BTreeMap<String, String>,
        #[serde(default)]
        trigger: Option<String>,
    },
    /// Runs, newest first, filtered by every field given.
    ListRuns {
        #[serde(default)]
        workflow: Option<String>,
        #[serde(default)]
        status: Option<RunStatus>,
        #[serde(default)]
        limit: Option<u32>,
        /// `cli`, `schedule`, `rerun`, `event:NAME`... (`event` matches every event).
        #[serde(default)]
        trigger: Option<String>,
        /// An agent id (`web1@host`) or name (`web1`).
        #[serde(default)]
        agent: Option<String>,
        /// Queued at or after.
        #[serde(default, with = "crate::model::time::option")]
        since: Option<DateTime<Utc>>,
        /// Queued at or before.
        #[serde(default, with = "crate::model::time::option")]
        until: Option<DateTime<Utc>>,
    },
    ShowRun {
        run_id: String,
    },
    /// Queues a new run of the definition an ended run used (the current file's with
    /// `latest`), with its parameters (`params` override them); with `failed_only`, the
    /// tasks that completed in it are reused, not run again.
    Rerun {
        run_id: String,
        #[serde(default)]
        failed_only: bool,
        #[serde(default)]
        latest: bool,
        #[serde(default)]
        params: BTreeMap<String, String>,
    },
    /// Why a run is where it is (what a queued run waits for).
    Explain {
        run_id: String,
    },
    /// Stops a run: a queued one leaves the queue, a running one's tasks are terminated.
    Cancel {
        run_id: String,
        #[serde(default)]
        reason: Option<String>,
    },
    /// A page of a run's stored output, in arrival order, after the cursor `after`.
    Logs {
        run_id: String,
        #[serde(default)]
        task: Option<String>,
        #[serde(default)]
        after: Option<u64>,
        /// The newest lines before this cursor instead (in id order): paging back from the end.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<u64>,
        #[serde(default)]
        limit: Option<u32>,
        /// Only this try's lines (with `task`).
        #[serde(default, rename = "try", skip_serializing_if = "Option::is_none")]
        try_no: Option<u32>,
        /// Only lines of this stream.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stream: Option<crate::protocol::agent::Stream>,
        /// Only lines matching this regular expression (RE2 syntax, at most 1,000 bytes).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        grep: Option<String>,
        /// Only lines printed at or after / at or before these times.
        #[serde(
            default,
            with = "crate::model::time::option",
            skip_serializing_if = "Option::is_none"
        )]
        since: Option<DateTime<Utc>>,
        #[serde(
            default,
            with = "crate::model::time::option",
            skip_serializing_if = "Option::is_none"
        )]
        until: Option<DateTime<Utc>>,
    },
    /// Stored output across runs, filtered by workflow and time.
    QueryLogs {
        #[serde(default)]
        workflow: Option<String>,
        #[serde(default, with = "crate::model::time::option")]
        since: Option<DateTime<Utc>>,
        #[serde(default, with = "crate::model::time::option")]
        until: Option<DateTime<Utc>>,
        #[serde(default)]
        after: Option<u64>,
        #[serde(default)]
        limit: Option<u32>,
        /// Only lines of this stream.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stream: Option<crate::protocol::agent::Stream>,
        /// Only lines matching this regular expression (RE2 syntax, at most 1,000 bytes).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        grep: Option<String>,
    },
    ListAgents,
    Status,
    ListWorkflows,
    ShowWorkflow {
        id: String,
    },
    /// Re-read the workflow directory now; answered when the new catalog is active.
    ReloadWorkflows,
    /// Who the principal takes this client for (any role may ask).
    Whoami,
    ListSchedules,
    /// Pause (`paused: true`) or resume a workflow's schedule; persisted.
    SetSchedulePaused {
        workflow: String,
        paused: bool,
    },
    /// The newest slot records of a workflow, newest first.
    ScheduleHistory {
        workflow: String,
        #[serde(default)]
        limit: Option<u32>,
    },
    /// Fault injection for tests; refused unless the principal runs with `CDKTR_FAILPOINTS=1`.
    /// `store_writes`: every store write fails for `duration_ms` (and is journaled);
    /// `store_stall`: the next store write waits `duration_ms`; `core_panic`: the coordinator
    /// panics handling its next control request.
    Failpoint {
        name: String,
        duration_ms: u64,
    },
    /// Read-only SQL over the history views (`runs`, `task_runs`, `logs` ...). The principal
    /// refuses anything DuckDB does not read as a `SELECT`, and stops a query at its row and
    /// time limits (`principal.query_max_rows`, `principal.query_timeout`; lower ones given
    /// here apply instead).
    Query {
        sql: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_rows: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
    /// Per workflow, the runs queued since `since` (default seven days ago): count, success
    /// rate, p50/p95 duration, last failure and its reason, and the period before for the
    /// trend; answered as a query result (`cdktr report` shapes it).
    Report {
        #[serde(default, with = "crate::model::time::option")]
        since: Option<DateTime<Utc>>,
        #[serde(default)]
        workflow: Option<String>,
    },
    /// Applies `[retention]` now (with `dry_run`, only counts what it would remove).
    Gc {
        #[serde(default)]
        dry_run: bool,
    },
    /// The newest warnings and errors the principal logged (its last 200), after the cursor
    /// `after` (a `seq`), oldest first.
    Warnings {
        #[serde(default)]
        after: Option<u64>,
    },
    /// The audit log, newest first: who took which control action, when, and its outcome.
    Audit {
        #[serde(default, with = "crate::model::time::option")]
        since: Option<DateTime<Utc>>,
        #[serde(default)]
        actor: Option<String>,
        #[serde(default)]
        action: Option<String>,
        #[serde(default)]
        limit: Option<u32>,
    },
}

impl ControlRequest {
    /// Its wire name (`"type"`), without serialising it.
    pub fn name(&self) -> &'static str {
        use ControlRequest as C;
        match self {
            C::Trigger { .. } => "trigger",
            C::ListRuns { .. } => "list_runs",
            C::ShowRun { .. } => "show_run",
            C::Rerun { .. } => "rerun",
            C::Explain { .. } => "explain",
            C::Cancel { .. } => "cancel",
            C::Logs { .. } => "logs",
            C::QueryLogs { .. } => "query_logs",
            C::ListAgents => "list_agents",
            C::Status => "status",
            C::ListWorkflows => "list_workflows",
            C::ShowWorkflow { .. } => "show_workflow",
            C::ReloadWorkflows => "reload_workflows",
            C::Whoami => "whoami",
            C::ListSchedules => "list_schedules",
            C::SetSchedulePaused { .. } => "set_schedule_paused",
            C::ScheduleHistory { .. } => "schedule_history",
            C::Failpoint { .. } => "failpoint",
            C::Query { .. } => "query",
            C::Report { .. } => "report",
            C::Gc { .. } => "gc",
            C::Warnings { .. } => "warnings",
            C::Audit { .. } => "audit",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ControlReply {
    Triggered {
        run_id: RunId,
    },
    Warnings {
        warnings: Vec<Notice>,
    },
    Runs {
        runs: Vec<RunSummary>,
    },
    Run {
        run: Box<RunDetail>,
    },
    /// `next` is the cursor for the following page, absent on the last page.
    LogLines {
        lines: Vec<LogLine>,
        #[serde(default)]
        next: Option<u64>,
    },
    Agents {
        agents: Vec<AgentView>,
    },
    Status(Box<StatusView>),
    /// Every valid workflow's definition, and the files that failed validation.
    Workflows {
        workflows: Vec<Workflow>,
        invalid: Vec<InvalidFile>,
    },
    Workflow {
        workflow: Box<Workflow>,
    },
    Reloaded {
        valid: usize,
        invalid: usize,
    },
    Schedules {
        schedules: Vec<ScheduleView>,
    },
    SchedulePaused {
        workflow: WorkflowId,
        paused: bool,
    },
    Slots {
        slots: Vec<SlotRecord>,
    },
    FailpointSet,
    Query {
        result: Box<QueryResult>,
    },
    Gc {
        report: Box<super::query::GcReport>,
    },
    Audit {
        entries: Vec<AuditEntry>,
    },
    /// Why a run is where it is: one sentence per reason.
    Explanation {
        run_id: RunId,
        status: RunStatus,
        reasons: Vec<String>,
    },
    /// What a cancel did: `changed` false when the run had already ended (its `status`
    /// then is its final one); a running run is `RUNNING` until its agent has stopped it.
    Cancel {
        run_id: RunId,
        status: RunStatus,
        changed: bool,
        note: String,
    },
    /// The sender's identity: its credential's name and role, or none (`authenticated:
    /// false`) on a principal without authentication, where every client is an operator.
    Identity {
        name: Option<String>,
        role: crate::model::Role,
        authenticated: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub run_id: RunId,
    pub workflow_id: WorkflowId,
    pub status: RunStatus,
    pub trigger: TriggerSource,
    #[serde(with = "crate::model::time")]
    pub queued_at: DateTime<Utc>,
    #[serde(with = "crate::model::time::option")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(with = "crate::model::time::option")]
    pub finished_at: Option<DateTime<Utc>>,
    pub agent: Option<AgentId>,
    pub attempt: u32,
    /// Who queued it: the actor of a trigger (see [`AuditEntry::actor`]), `schedule` for a
    /// cron slot; absent for runs recorded before cdktr kept it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggered_by: Option<String>,
    /// The run this one reruns (`cdktr rerun`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_of: Option<RunId>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunDetail {
    #[serde(flatten)]
    pub summary: RunSummary,
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    pub tasks: Vec<TaskRunView>,
    /// Records that arrived for a closed attempt of this run (kept, never applied).
    #[serde(default)]
    pub late_records: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskRunView {
    pub task_id: TaskId,
    pub status: TaskStatus,
    #[serde(with = "crate::model::time::option")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(with = "crate::model::time::option")]
    pub finished_at: Option<DateTime<Utc>>,
    pub exit_code: Option<i32>,
    pub attempt: u32,
    #[serde(default)]
    pub reason: Option<String>,
    /// The task's current (or last) try: 1 unless it was retried.
    #[serde(rename = "try", default = "first_try")]
    pub try_no: u32,
    /// The tries of a retried task that ended, in order (empty for a task run once: its one
    /// try is the task itself).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tries: Vec<TryView>,
}

/// One ended try of a task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TryView {
    #[serde(rename = "try")]
    pub try_no: u32,
    pub status: TaskStatus,
    #[serde(with = "crate::model::time::option")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(with = "crate::model::time")]
    pub finished_at: DateTime<Utc>,
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub reason: Option<String>,
}

fn first_try() -> u32 {
    1
}
