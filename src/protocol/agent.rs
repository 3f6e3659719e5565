//! Agent <-> principal: registration, heartbeats, pulling work, reporting what happened.
//!
//! Everything an agent reports is a [`Record`] with a sequence number per run attempt; the
//! principal acknowledges the highest sequence it has stored ([`RunAck`]) and the agent keeps
//! records until then, so nothing is lost across a reconnect and nothing is stored twice.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{AgentId, RunId, RunStatus, TaskId, TaskStatus, Workflow};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentRequest {
    /// First message after (re)connecting. `running` lists attempts still executing, so a
    /// restarted principal can reconcile them.
    Register {
        agent: AgentInfo,
        #[serde(default)]
        running: Vec<AttemptRef>,
    },
    Heartbeat {
        agent_id: AgentId,
        #[serde(default)]
        running: Vec<AttemptRef>,
        free_slots: u32,
        /// Records in the agent's spool not yet acknowledged by the principal.
        #[serde(default)]
        spool: u64,
    },
    /// Long poll: answered as soon as a run can be assigned, at most `free_slots` of them, or
    /// with an empty list after a while so the agent knows the principal is still there.
    PullWork { agent_id: AgentId, free_slots: u32 },
    Report {
        agent_id: AgentId,
        records: Vec<Record>,
    },
    /// Graceful shutdown: the agent takes no more work.
    Deregister { agent_id: AgentId },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentReply {
    Registered {
        heartbeat_interval_ms: u64,
    },
    /// `known: false` tells the agent to register again (the principal restarted).
    HeartbeatAck {
        known: bool,
        /// Attempts the agent runs that must stop now (cancelled runs).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        stop: Vec<StopOrder>,
    },
    Work {
        assignments: Vec<Assignment>,
        /// Attempts the agent runs that must stop now (cancelled runs).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        stop: Vec<StopOrder>,
    },
    ReportAck {
        acks: Vec<RunAck>,
    },
    Deregistered,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    pub id: AgentId,
    pub name: String,
    pub host: String,
    pub slots: u32,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub version: String,
    /// Unique per agent process: a registration with a new instance is a restarted agent,
    /// whose earlier runs are gone; the same instance registering again is a reconnect.
    #[serde(default)]
    pub instance: String,
}

/// One attempt of one run, as both sides name it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AttemptRef {
    pub run_id: RunId,
    pub attempt: u32,
    /// Fencing token of the assignment: reports carrying a stale token never change a run.
    pub token: String,
}

/// An attempt an agent must stop: its tasks are terminated (SIGTERM, SIGKILL after their
/// `kill_grace`), the tasks not started are cancelled, and the run ends CANCELLED with
/// `reason` (who cancelled it, and why).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopOrder {
    pub run_id: RunId,
    pub attempt: u32,
    pub token: String,
    pub reason: String,
}

/// A run handed to an agent, with the definition it must execute (a snapshot taken at
/// trigger time, so later edits of the file do not change a queued run).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    pub run_id: RunId,
    pub attempt: u32,
    pub token: String,
    pub workflow: Workflow,
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Tasks that completed in the run this one reruns (`rerun --failed-only`): marked
    /// REUSED, not executed.
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub reuse: std::collections::BTreeSet<TaskId>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

impl std::str::FromStr for Stream {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [Stream::Stdout, Stream::Stderr]
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a stream (stdout, stderr)"))
    }
}

/// Something that happened in a run attempt, numbered by `seq` (1, 2, 3, ... per attempt).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub run_id: RunId,
    pub attempt: u32,
    pub token: String,
    pub seq: u64,
    #[serde(with = "crate::model::time")]
    pub ts: DateTime<Utc>,
    pub event: RecordEvent,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RecordEvent {
    /// A task's status in its try `try` (1 for the first run of it, 2 for the first retry...).
    Task {
        task_id: TaskId,
        status: TaskStatus,
        #[serde(default)]
        exit_code: Option<i32>,
        #[serde(default)]
        reason: Option<String>,
        #[serde(rename = "try", default = "first_try")]
        try_no: u32,
    },
    /// One line of output of try `try`. `line_no` counts lines per task, try and stream from
    /// 1, unbroken.
    Log {
        task_id: TaskId,
        stream: Stream,
        line_no: u64,
        line: String,
        #[serde(rename = "try", default = "first_try")]
        try_no: u32,
    },
    RunFinished {
        status: RunStatus,
    },
}

/// Records of agents that predate retries carry no try: it is the first.
fn first_try() -> u32 {
    1
}

/// Every record of this attempt with `seq <= up_to` is stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunAck {
    pub run_id: RunId,
    pub attempt: u32,
    pub up_to: u64,
}
