//! Warming up the store before the principal says it is ready: one transaction that takes
//! every path of `apply` (queued runs inserted with their changes, updates one by one and
//! joined, every appender, every other statement) and is rolled back, so nothing is kept.
//!
//! Every statement the store writes with is then prepared and cached, so the first trigger
//! does not pay DuckDB's parsing and planning; and the planner's code, which start-up touches
//! anyway, is touched before the principal hands its start-up code pages back
//! (`runtime::memory`), instead of coming back with the first write and staying resident
//! (about 18 MB of the binary on this machine).

use chrono::Utc;
use duckdb::Connection;

use super::apply::apply_in_transaction;
use super::{NewRun, Write};
use crate::model::{
    AgentId, AgentState, RunId, RunStatus, SlotFate, TaskId, TaskStatus, TriggerSource, WorkflowId,
};
use crate::protocol::agent::{Record, RecordEvent, Stream};
use crate::protocol::control::AuditEntry;
use crate::protocol::logs::LogLine;

pub fn warm_up(conn: &Connection) -> Result<(), duckdb::Error> {
    conn.execute_batch("BEGIN TRANSACTION")?;
    let applied = batches()
        .iter()
        .try_for_each(|writes| apply_in_transaction(conn, writes));
    let rolled_back = conn.execute_batch("ROLLBACK");
    applied.and(rolled_back)
}

/// Writes of runs no real run can be confused with (and rolled back anyway).
fn batches() -> [Vec<Write>; 3] {
    let now = Utc::now();
    let run = |i: usize| RunId::new(format!("warm-up-{i}"));
    let task = TaskId::new("t");
    let agent = AgentId::new("warm-up@localhost");
    let status = |i: usize, status: RunStatus| Write::Run {
        run_id: run(i),
        status,
        ts: now,
        agent: Some(agent.clone()),
        attempt: 1,
        token: Some("token".into()),
        reason: None,
    };
    let task_status = |i: usize, status: TaskStatus| Write::Task {
        try_no: 1,
        run_id: run(i),
        task_id: task.clone(),
        attempt: 1,
        status,
        ts: now,
        exit_code: Some(0),
        reason: Some("warm-up".into()),
    };
    let queued: Vec<Write> = (0..5)
        .map(|i| {
            Write::RunQueued(NewRun {
                rerun_of: None,
                reuse: Vec::new(),
                run_id: run(i),
                workflow_id: WorkflowId::new("warm-up"),
                trigger: TriggerSource::Api,
                queued_at: now,
                params_json: "{}".into(),
                definition_json: "{}".into(),
                tasks: vec![task.clone()],
                triggered_by: None,
            })
        })
        .chain([status(0, RunStatus::Queued)])
        .collect();
    let mut many: Vec<Write> = (0..5)
        .flat_map(|i| {
            [
                status(i, RunStatus::Running),
                task_status(i, TaskStatus::Running),
                Write::RunSeq {
                    run_id: run(i),
                    last_seq: 2,
                },
            ]
        })
        .collect();
    many.extend([
        Write::Log(LogLine {
            try_no: 1,
            id: 1,
            run_id: run(0),
            workflow_id: WorkflowId::new("warm-up"),
            task_id: task.clone(),
            attempt: 1,
            stream: Stream::Stdout,
            seq: 1,
            ts: now,
            line: "warm-up".into(),
        }),
        Write::slot(
            &WorkflowId::new("warm-up"),
            now,
            SlotFate::Fired,
            Some(run(0)),
            None,
            now,
        ),
        Write::Paused {
            workflow_id: WorkflowId::new("warm-up"),
            paused: true,
        },
        Write::Late {
            record: Record {
                run_id: run(0),
                attempt: 1,
                token: "token".into(),
                seq: 3,
                ts: now,
                event: RecordEvent::RunFinished {
                    status: RunStatus::Completed,
                },
            },
            agent: agent.clone(),
            reason: "warm-up".into(),
        },
        Write::Audit(AuditEntry {
            ts: now,
            actor: "warm-up".into(),
            role: "operator".into(),
            peer: None,
            action: "trigger".into(),
            target: None,
            detail: None,
            outcome: "ok".into(),
        }),
        Write::Agent {
            labels: Vec::new(),
            agent_id: agent.clone(),
            host: "localhost".into(),
            slots: 1,
            version: "warm-up".into(),
            state: AgentState::Alive,
            ts: now,
        },
    ]);
    let one = vec![
        status(0, RunStatus::Completed),
        task_status(0, TaskStatus::Completed),
        Write::Agent {
            labels: Vec::new(),
            agent_id: agent,
            host: "localhost".into(),
            slots: 1,
            version: "warm-up".into(),
            state: AgentState::Gone,
            ts: now,
        },
    ];
    [queued, many, one]
}
