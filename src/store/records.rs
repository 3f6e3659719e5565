//! What the store takes and hands back: writes (also what the journal keeps), new runs,
//! unfinished runs for recovery, schedule state and the filters of its reads.

use chrono::{DateTime, Utc};

use crate::model::{
    AgentId, AgentState, RunId, RunStatus, SlotFate, TaskId, TaskStatus, TriggerSource, WorkflowId,
};
use crate::protocol::control::SlotRecord;
use crate::protocol::logs::LogLine;

/// A write. Writes sent together are applied in order, in one transaction. Serialisable so
/// they can wait in the journal while the database refuses writes.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub enum Write {
    RunQueued(NewRun),
    Run {
        run_id: RunId,
        status: RunStatus,
        ts: DateTime<Utc>,
        agent: Option<AgentId>,
        attempt: u32,
        /// The attempt's fencing token, recorded when the attempt is assigned.
        token: Option<String>,
        reason: Option<String>,
    },
    /// The highest record sequence of the current attempt that is stored.
    RunSeq {
        run_id: RunId,
        last_seq: u64,
    },
    Task {
        run_id: RunId,
        task_id: TaskId,
        attempt: u32,
        status: TaskStatus,
        ts: DateTime<Utc>,
        exit_code: Option<i32>,
        reason: Option<String>,
        /// The task's try this status belongs to (journals written before tries read as 1).
        #[serde(rename = "try", default = "first_try")]
        try_no: u32,
    },
    /// One try of a task that ended (failed and retried, or the last): kept per try.
    TaskTry(TaskTry),
    Log(LogLine),
    /// A schedule slot's fate; also advances the workflow's last handled slot.
    Slot(SlotRecord),
    /// A record of an attempt that is already closed: kept, never applied.
    Late {
        record: crate::protocol::agent::Record,
        agent: AgentId,
        reason: String,
    },
    /// A workflow's schedule paused or resumed.
    Paused {
        workflow_id: WorkflowId,
        paused: bool,
    },
    /// A control action, for the audit log.
    Audit(crate::protocol::control::AuditEntry),
    Agent {
        agent_id: AgentId,
        host: String,
        slots: u32,
        version: String,
        state: AgentState,
        ts: DateTime<Utc>,
        /// Its labels (`key=value`, or `key` alone), as it registered with them.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        labels: Vec<String>,
    },
}

impl Write {
    /// Whether it changes what a list shows (runs, tasks, slots, pauses, agents): output
    /// lines, cursors and audit entries do not.
    pub fn changes_views(&self) -> bool {
        !matches!(
            self,
            Write::Log(_) | Write::RunSeq { .. } | Write::Late { .. } | Write::Audit(_)
        )
    }
}

impl Write {
    /// A slot's fate, recorded at `recorded_at`, with the run it queued (if any).
    pub fn slot(
        workflow_id: &WorkflowId,
        slot: DateTime<Utc>,
        fate: SlotFate,
        run_id: Option<RunId>,
        note: Option<String>,
        recorded_at: DateTime<Utc>,
    ) -> Write {
        Write::Slot(SlotRecord {
            workflow_id: workflow_id.clone(),
            slot,
            fate,
            run_id,
            note,
            recorded_at,
        })
    }
}

/// A scheduled workflow's persisted state.
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduleState {
    pub workflow_id: WorkflowId,
    pub last_slot: Option<DateTime<Utc>>,
    pub paused: bool,
}

fn first_try() -> u32 {
    1
}

/// One ended try of a task.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TaskTry {
    pub run_id: RunId,
    pub task_id: TaskId,
    pub attempt: u32,
    #[serde(rename = "try")]
    pub try_no: u32,
    pub status: TaskStatus,
    /// When it started (unknown when the principal restarted while it ran).
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: DateTime<Utc>,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct NewRun {
    pub run_id: RunId,
    pub workflow_id: WorkflowId,
    pub trigger: TriggerSource,
    pub queued_at: DateTime<Utc>,
    pub params_json: String,
    /// The workflow definition the run was triggered with, as JSON.
    pub definition_json: String,
    pub tasks: Vec<TaskId>,
    /// Who queued it (journals written before this field read as unknown).
    #[serde(default)]
    pub triggered_by: Option<String>,
    /// The run this one reruns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_of: Option<RunId>,
    /// Tasks completed in that run and not executed again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reuse: Vec<TaskId>,
}

/// A run that was not finished when the principal last stopped.
#[derive(Clone, Debug)]
pub struct UnfinishedRun {
    pub run_id: RunId,
    pub status: RunStatus,
    pub trigger: TriggerSource,
    pub queued_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub agent: Option<AgentId>,
    pub attempt: u32,
    pub token: Option<String>,
    pub last_seq: u64,
    pub params_json: String,
    pub definition_json: String,
    pub tasks: Vec<(TaskId, TaskStatus)>,
    /// Queued for a slot missed while the principal was down (its slot's fate is `caught-up`).
    pub caught_up: bool,
    /// Tasks a rerun reuses from the run it repeats.
    pub reuse: Vec<TaskId>,
}

#[derive(Clone, Debug, Default)]
pub struct RunFilter {
    pub workflow: Option<String>,
    pub status: Option<RunStatus>,
    pub limit: u32,
    pub trigger: Option<String>,
    pub agent: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub since: Option<DateTime<Utc>>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub limit: u32,
}

#[derive(Clone, Debug, Default)]
pub struct LogFilter {
    pub run_id: Option<String>,
    pub workflow: Option<String>,
    pub task: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub after: Option<u64>,
    /// The newest `limit` lines before this id (still returned in id order).
    pub before: Option<u64>,
    pub limit: u32,
    /// Only lines of this try.
    pub try_no: Option<u32>,
    pub stream: Option<crate::protocol::agent::Stream>,
    /// A regular expression the line must match (checked by the principal first).
    pub grep: Option<String>,
}
