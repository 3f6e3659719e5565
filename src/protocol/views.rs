//! What the principal reports about itself, its agents and its schedules (replies of the
//! control protocol, see [`super::control`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{AgentId, AgentState, Catchup, Overlap, RunId, SlotFate, WorkflowId};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentView {
    pub agent_id: AgentId,
    pub host: String,
    pub slots: u32,
    pub running: u32,
    /// Slots it can take work in now: what its waiting pull offers (0 while no pull waits,
    /// as between two runs while the agent frees the slot).
    #[serde(default)]
    pub ready_slots: u32,
    pub state: AgentState,
    #[serde(with = "crate::model::time")]
    pub registered_at: DateTime<Utc>,
    #[serde(with = "crate::model::time")]
    pub last_heartbeat: DateTime<Utc>,
    pub version: String,
    /// Its labels: `key` to value (empty for a flag such as `gpu`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Records waiting in its spool for the principal, as its last heartbeat said.
    #[serde(default)]
    pub spool_depth: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusView {
    pub version: String,
    pub protocol: u16,
    pub uptime_secs: u64,
    pub workflows_loaded: usize,
    pub workflows_invalid: usize,
    pub queue_length: usize,
    pub runs_active: usize,
    pub agents_alive: usize,
    pub agents_total: usize,
    /// The live log stream endpoint the principal bound.
    pub logs_publish: String,
    /// The live log stream beside the local control socket, for clients connected to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs_publish_local: Option<String>,
    /// `ok`, or `degraded: <reason>`.
    pub store: String,
    /// Moves whenever a run, task, schedule slot, pause or agent changes: a client re-reads
    /// its lists only when it moved.
    #[serde(default)]
    pub changes: u64,
    /// Moves whenever the workflow catalog is replaced (a reload).
    #[serde(default)]
    pub catalog: u64,
    /// Warnings and errors the principal has logged since it started (the newest are kept:
    /// `recent_warnings`).
    #[serde(default)]
    pub warnings: u64,
}

/// A warning or error the principal logged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    /// Its position since the principal started, from 1: a cursor.
    pub seq: u64,
    #[serde(with = "crate::model::time")]
    pub at: DateTime<Utc>,
    /// `warn` or `error`.
    pub level: String,
    /// The component that logged it (`cdktr::principal::reload` ...).
    pub target: String,
    /// The message and its fields, as the log line shows them.
    pub message: String,
}

/// One scheduled workflow as `cdktr schedule list` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduleView {
    pub workflow_id: WorkflowId,
    pub cron: String,
    pub timezone: String,
    #[serde(with = "crate::model::time::option")]
    pub next_fire: Option<DateTime<Utc>>,
    pub paused: bool,
    pub overlap: Overlap,
    pub catchup: Catchup,
}

/// What happened to one schedule slot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlotRecord {
    pub workflow_id: WorkflowId,
    #[serde(with = "crate::model::time")]
    pub slot: DateTime<Utc>,
    pub fate: SlotFate,
    pub run_id: Option<RunId>,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(with = "crate::model::time")]
    pub recorded_at: DateTime<Utc>,
}
