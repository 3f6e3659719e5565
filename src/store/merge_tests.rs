//! A batch's changes to a row, merged and applied in one statement per table, end where
//! applying each change by itself would: checked against a model of one change at a time, on
//! a real DuckDB database, for random sequences of changes cut into random batches.

use chrono::{DateTime, Duration, TimeZone, Utc};
use duckdb::Connection;
use proptest::prelude::*;

use super::apply::{apply, Mark};
use super::{NewRun, Write};
use crate::model::{AgentId, RunId, RunStatus, TaskId, TaskStatus, WorkflowId};

/// The journal mark the batches are applied with (not what is tested here).
const MARK: Mark = Mark::Seq {
    seq: 1,
    prune: false,
};

/// Enough runs that a batch often changes more rows than are updated one by one, so both
/// ways of updating are exercised.
const RUNS: [&str; 6] = [
    "01J00000000000000000000001",
    "01J00000000000000000000002",
    "01J00000000000000000000003",
    "01J00000000000000000000004",
    "01J00000000000000000000005",
    "01J00000000000000000000006",
];

#[derive(Clone, Debug, PartialEq)]
struct RunState {
    status: String,
    attempt: i64,
    started: Option<i64>,
    finished: Option<i64>,
    agent: Option<String>,
    token: Option<String>,
    last_seq: i64,
}

#[derive(Clone, Debug, PartialEq)]
struct TaskState {
    status: String,
    attempt: i64,
    started: Option<i64>,
    finished: Option<i64>,
    exit_code: Option<i32>,
    reason: Option<String>,
}

#[derive(Clone, Debug)]
enum Op {
    Run {
        run: usize,
        status: RunStatus,
        attempt: u32,
        agent: Option<String>,
        token: Option<String>,
    },
    Seq {
        run: usize,
        seq: u64,
    },
    Task {
        run: usize,
        status: TaskStatus,
        attempt: u32,
        exit_code: Option<i32>,
        reason: Option<String>,
    },
}

fn at(i: usize) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000, 0)
        .single()
        .unwrap_or_default()
        + Duration::seconds(i as i64)
}

/// One change applied by itself, as the store's statements did before they were merged.
fn model(runs: &mut [RunState], tasks: &mut [TaskState], i: usize, op: &Op) {
    let t = at(i).timestamp_micros();
    match op {
        Op::Run {
            run,
            status,
            attempt,
            agent,
            token,
        } => {
            let r = &mut runs[*run];
            if *status == RunStatus::Queued {
                r.started = None;
                r.agent = None;
                r.token = None;
                r.last_seq = 0;
            } else {
                if *status == RunStatus::Running {
                    r.started = Some(t);
                }
                if status.is_terminal() {
                    r.finished = Some(t);
                }
                r.agent = agent.clone().or(r.agent.take());
                r.token = token.clone().or(r.token.take());
                if r.attempt != i64::from(*attempt) {
                    r.last_seq = 0;
                }
            }
            r.status = status.as_str().into();
            r.attempt = (*attempt).into();
        }
        Op::Seq { run, seq } => runs[*run].last_seq = runs[*run].last_seq.max(*seq as i64),
        Op::Task {
            run,
            status,
            attempt,
            exit_code,
            reason,
        } => {
            let k = &mut tasks[*run];
            k.status = status.as_str().into();
            k.attempt = (*attempt).into();
            if *status == TaskStatus::Running {
                k.started = Some(t);
            }
            if status.is_terminal() {
                k.finished = Some(t);
            }
            k.exit_code = exit_code.or(k.exit_code);
            k.reason = reason.clone().or(k.reason.take());
        }
    }
}

fn write(i: usize, op: &Op) -> Write {
    match op.clone() {
        Op::Run {
            run,
            status,
            attempt,
            agent,
            token,
        } => Write::Run {
            run_id: RunId::new(RUNS[run]),
            status,
            ts: at(i),
            agent: agent.map(AgentId::new),
            attempt,
            token,
            reason: None,
        },
        Op::Seq { run, seq } => Write::RunSeq {
            run_id: RunId::new(RUNS[run]),
            last_seq: seq,
        },
        Op::Task {
            run,
            status,
            attempt,
            exit_code,
            reason,
        } => Write::Task {
            try_no: 1,
            run_id: RunId::new(RUNS[run]),
            task_id: TaskId::new("a"),
            attempt,
            status,
            ts: at(i),
            exit_code,
            reason,
        },
    }
}

fn read(conn: &Connection, run: &str) -> duckdb::Result<(RunState, TaskState)> {
    let r = conn.query_row(
        "SELECT status, attempt, epoch_us(started_at), epoch_us(finished_at), agent_id, token, \
         last_seq FROM runs WHERE run_id = ?",
        [run],
        |r| {
            Ok(RunState {
                status: r.get(0)?,
                attempt: r.get(1)?,
                started: r.get(2)?,
                finished: r.get(3)?,
                agent: r.get(4)?,
                token: r.get(5)?,
                last_seq: r.get(6)?,
            })
        },
    )?;
    let t = conn.query_row(
        "SELECT status, attempt, epoch_us(started_at), epoch_us(finished_at), exit_code, reason \
         FROM task_runs WHERE run_id = ? AND task_id = 'a'",
        [run],
        |r| {
            Ok(TaskState {
                status: r.get(0)?,
                attempt: r.get(1)?,
                started: r.get(2)?,
                finished: r.get(3)?,
                exit_code: r.get(4)?,
                reason: r.get(5)?,
            })
        },
    )?;
    Ok((r, t))
}

fn name(n: u8) -> Option<String> {
    (n > 0).then(|| format!("v{n}"))
}

fn op() -> impl Strategy<Value = Op> {
    let run_status = prop::sample::select(RunStatus::ALL.to_vec());
    let task_status = prop::sample::select(TaskStatus::ALL.to_vec());
    prop_oneof![
        (0..RUNS.len(), run_status, 0..3u32, 0..3u8, 0..3u8).prop_map(
            |(run, status, attempt, a, t)| {
                Op::Run {
                    run,
                    status,
                    attempt,
                    agent: name(a),
                    token: name(t),
                }
            }
        ),
        (0..RUNS.len(), 0..50u64).prop_map(|(run, seq)| Op::Seq { run, seq }),
        (
            0..RUNS.len(),
            task_status,
            0..3u32,
            prop::option::of(0..3i32),
            0..3u8
        )
            .prop_map(|(run, status, attempt, exit_code, r)| Op::Task {
                run,
                status,
                attempt,
                exit_code,
                reason: name(r)
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn merged_changes_equal_changes_one_at_a_time(
        stored_attempt in 0..3i64,
        stored_seq in 0..50i64,
        queue_in_batch in any::<bool>(),
        ops in prop::collection::vec(op(), 1..30),
        cuts in prop::collection::vec(prop::bool::weighted(0.15), 30),
    ) {
        let conn = Connection::open_in_memory().map_err(|e| TestCaseError::fail(e.to_string()))?;
        super::schema::migrate(&conn).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let queued: Vec<Write> = RUNS.iter().map(|id| Write::RunQueued(NewRun {
            rerun_of: None,
            reuse: Vec::new(),
            triggered_by: None,
            run_id: RunId::new(*id),
            workflow_id: WorkflowId::new("wf"),
            trigger: crate::model::TriggerSource::Cli,
            queued_at: at(0),
            params_json: "{}".into(),
            definition_json: "{}".into(),
            tasks: vec![TaskId::new("a")],
        })).collect();
        let stored = |conn: &Connection| -> Vec<(RunState, TaskState)> {
            RUNS.iter().filter_map(|id| read(conn, id).ok()).collect()
        };
        // Either the runs are queued with the first batch of changes (as a trigger and its
        // assignment are), or they were stored before, with an attempt of their own whose
        // start, agent, token and sequence the changes keep or clear.
        let (mut runs, mut tasks, mut writes) = if queue_in_batch {
            let fresh = RunState {
                status: "QUEUED".into(),
                attempt: 0,
                started: None,
                finished: None,
                agent: None,
                token: None,
                last_seq: 0,
            };
            let pending = TaskState {
                status: "PENDING".into(),
                attempt: 0,
                started: None,
                finished: None,
                exit_code: None,
                reason: None,
            };
            (vec![fresh; RUNS.len()], vec![pending; RUNS.len()], queued)
        } else {
            apply(&conn, &[&queued], MARK).map_err(|e| TestCaseError::fail(e.to_string()))?;
            conn.execute(
                "UPDATE runs SET status = 'RUNNING', attempt = ?, started_at = make_timestamp(1), \
                 agent_id = 'old', token = 'old', last_seq = ?",
                duckdb::params![stored_attempt, stored_seq],
            ).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let (runs, tasks): (Vec<_>, Vec<_>) = stored(&conn).into_iter().unzip();
            (runs, tasks, Vec::new())
        };
        let first = writes.len();
        writes.extend(ops.iter().enumerate().map(|(i, op)| write(i + 1, op)));
        let mut batch_start = 0;
        for (i, op) in ops.iter().enumerate() {
            model(&mut runs, &mut tasks, i + 1, op);
            if cuts[i] || i + 1 == ops.len() {
                apply(&conn, &[&writes[batch_start..=first + i]], MARK)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                batch_start = first + i + 1;
            }
        }
        let expected: Vec<(RunState, TaskState)> = runs.into_iter().zip(tasks).collect();
        prop_assert_eq!(stored(&conn), expected);
    }
}
