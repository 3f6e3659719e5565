//! The live log stream: what the principal publishes on `principal.logs_publish`.
//!
//! Each message is two frames: a topic and a JSON [`LogEvent`]. Topics are
//! `<workflow>\0<run>\0<task>\0` for lines and `<workflow>\0<run>\0` + `\x01` for task status changes and the
//! end of a run, so a ZeroMQ prefix subscription is an exact filter: `etl\0` matches workflow `etl` but
//! not `etl2` or `etl.daily`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::agent::Stream;
use crate::model::{RunId, RunStatus, TaskId, WorkflowId};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LogEvent {
    Line(LogLine),
    /// A task changed status (for live views such as `cdktr run --wait`).
    Task {
        run_id: RunId,
        workflow_id: WorkflowId,
        task_id: TaskId,
        status: crate::model::TaskStatus,
        #[serde(default)]
        exit_code: Option<i32>,
    },
    RunEnded {
        run_id: RunId,
        workflow_id: WorkflowId,
        status: RunStatus,
    },
}

/// One stored line of task output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    /// Position in the principal's ingest order; a cursor for paging and de-duplication.
    pub id: u64,
    pub run_id: RunId,
    pub workflow_id: WorkflowId,
    pub task_id: TaskId,
    pub attempt: u32,
    pub stream: Stream,
    /// Line number per task, try and stream, from 1.
    pub seq: u64,
    #[serde(with = "crate::model::time")]
    pub ts: DateTime<Utc>,
    pub line: String,
    /// The task's try the line belongs to (1 unless the task was retried).
    #[serde(rename = "try", default = "first_try")]
    pub try_no: u32,
}

fn first_try() -> u32 {
    1
}

/// The subscription prefix for a filter; `None` parts widen it.
pub fn topic_prefix(workflow: Option<&str>, run: Option<&str>, task: Option<&str>) -> Vec<u8> {
    let mut topic = Vec::new();
    if let Some(w) = workflow {
        topic.extend_from_slice(w.as_bytes());
        topic.push(0);
        if let Some(r) = run {
            topic.extend_from_slice(r.as_bytes());
            topic.push(0);
            if let Some(t) = task {
                topic.extend_from_slice(t.as_bytes());
                topic.push(0);
            }
        }
    }
    topic
}

pub fn topic_of(event: &LogEvent) -> Vec<u8> {
    match event {
        LogEvent::Line(l) => topic_prefix(
            Some(l.workflow_id.as_str()),
            Some(l.run_id.as_str()),
            Some(l.task_id.as_str()),
        ),
        LogEvent::Task {
            run_id,
            workflow_id,
            ..
        }
        | LogEvent::RunEnded {
            run_id,
            workflow_id,
            ..
        } => {
            let mut t = topic_prefix(Some(workflow_id.as_str()), Some(run_id.as_str()), None);
            t.push(1);
            t
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(wf: &str) -> LogEvent {
        LogEvent::Line(LogLine {
            id: 1,
            run_id: RunId::new("r1"),
            workflow_id: WorkflowId::new(wf),
            task_id: TaskId::new("t"),
            attempt: 1,
            stream: Stream::Stdout,
            seq: 1,
            try_no: 1,
            ts: Utc::now(),
            line: "x".into(),
        })
    }

    #[test]
    fn workflow_prefix_is_exact() {
        let sub = topic_prefix(Some("etl"), None, None);
        assert!(topic_of(&line("etl")).starts_with(&sub));
        assert!(!topic_of(&line("etl2")).starts_with(&sub));
        assert!(!topic_of(&line("etl.daily")).starts_with(&sub));
    }

    #[test]
    fn run_prefix_receives_its_end() {
        let sub = topic_prefix(Some("etl"), Some("r1"), None);
        let end = LogEvent::RunEnded {
            run_id: RunId::new("r1"),
            workflow_id: WorkflowId::new("etl"),
            status: RunStatus::Completed,
        };
        assert!(topic_of(&end).starts_with(&sub));
        assert!(topic_of(&line("etl")).starts_with(&sub));
        let other = topic_prefix(Some("etl"), Some("r10"), None);
        assert!(!topic_of(&line("etl")).starts_with(&other));
    }
}
