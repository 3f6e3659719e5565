//! The store against a real DuckDB file in a temp dir.

use chrono::Utc;

use super::*;
use crate::model::{AgentId, RunId, RunStatus, TaskId, TaskStatus, WorkflowId};
use crate::protocol::agent::Stream;
use crate::protocol::control::SlotRecord;

pub(super) fn new_run(id: &str, wf: &str) -> NewRun {
    NewRun {
        rerun_of: None,
        reuse: Vec::new(),
        triggered_by: Some("ops".into()),
        run_id: RunId::new(id),
        workflow_id: WorkflowId::new(wf),
        trigger: crate::model::TriggerSource::Cli,
        queued_at: Utc::now(),
        params_json: r#"{"day":"mon"}"#.into(),
        definition_json: "{}".into(),
        tasks: vec![TaskId::new("a"), TaskId::new("b")],
    }
}

pub(super) fn line(id: u64, run: &str, seq: u64) -> Write {
    Write::Log(LogLine {
        try_no: 1,
        id,
        run_id: RunId::new(run),
        workflow_id: WorkflowId::new("wf"),
        task_id: TaskId::new("a"),
        attempt: 1,
        stream: Stream::Stdout,
        seq,
        ts: Utc::now(),
        line: format!("line {seq} with 'quotes' and ; semicolons"),
    })
}

#[tokio::test]
async fn runs_tasks_and_logs_round_trip_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/cdktr.duckdb");
    let (store, guard) = Store::open(&path).unwrap();
    store
        .write(vec![Write::RunQueued(new_run("r1", "wf"))])
        .await
        .unwrap();
    let now = Utc::now();
    store
        .write(vec![
            Write::Run {
                run_id: RunId::new("r1"),
                status: RunStatus::Running,
                ts: now,
                agent: Some(AgentId::new("a@h")),
                attempt: 1,
                token: Some("tok".into()),
                reason: None,
            },
            Write::Task {
                try_no: 1,
                run_id: RunId::new("r1"),
                task_id: TaskId::new("a"),
                attempt: 1,
                status: TaskStatus::Running,
                ts: now,
                exit_code: None,
                reason: None,
            },
            line(1, "r1", 1),
            line(2, "r1", 2),
            Write::RunSeq {
                run_id: RunId::new("r1"),
                last_seq: 4,
            },
        ])
        .await
        .unwrap();
    let unfinished = store.unfinished_runs().await.unwrap();
    assert_eq!(unfinished.len(), 1);
    assert_eq!(unfinished[0].status, RunStatus::Running);
    assert_eq!(unfinished[0].last_seq, 4);
    assert_eq!(unfinished[0].token.as_deref(), Some("tok"));
    assert_eq!(
        unfinished[0].tasks[0],
        (TaskId::new("a"), TaskStatus::Running)
    );

    store
        .write(vec![
            Write::Task {
                try_no: 1,
                run_id: RunId::new("r1"),
                task_id: TaskId::new("a"),
                attempt: 1,
                status: TaskStatus::Completed,
                ts: Utc::now(),
                exit_code: Some(0),
                reason: None,
            },
            Write::Run {
                run_id: RunId::new("r1"),
                status: RunStatus::Completed,
                ts: Utc::now(),
                agent: None,
                attempt: 1,
                token: None,
                reason: None,
            },
        ])
        .await
        .unwrap();
    drop(store);
    guard.close();

    let (store, _guard) = Store::open(&path).unwrap();
    let run = store.get_run("r1").await.unwrap().expect("run stored");
    assert_eq!(run.summary.status, RunStatus::Completed);
    assert_eq!(run.summary.agent, Some(AgentId::new("a@h")));
    assert!(run.summary.started_at.is_some() && run.summary.finished_at.is_some());
    assert_eq!(run.params.get("day").map(String::as_str), Some("mon"));
    assert_eq!(run.tasks.len(), 2);
    assert_eq!(run.tasks[0].status, TaskStatus::Completed);
    assert_eq!(run.tasks[0].exit_code, Some(0));
    assert_eq!(run.tasks[1].status, TaskStatus::Pending);
    let logs = store
        .logs(LogFilter {
            run_id: Some("r1".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(logs.len(), 2);
    assert_eq!(logs[1].line, "line 2 with 'quotes' and ; semicolons");
    assert_eq!(store.max_log_id().await.unwrap(), 2);
    assert_eq!(store.count("transitions").await.unwrap(), 5);
    assert!(store.unfinished_runs().await.unwrap().is_empty());
    assert!(store.get_run("nope").await.unwrap().is_none());
}

#[tokio::test]
async fn list_filters_and_orders_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _guard) = Store::open(&dir.path().join("db")).unwrap();
    let runs = vec![
        Write::RunQueued(new_run("01A", "etl")),
        Write::RunQueued(new_run("01B", "etl2")),
        Write::RunQueued(new_run("01C", "etl")),
    ];
    store.write(runs).await.unwrap();
    let all = store
        .list_runs(RunFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let ids: Vec<&str> = all.iter().map(|r| r.run_id.as_str()).collect();
    assert_eq!(ids, ["01C", "01B", "01A"]);
    let etl = store
        .list_runs(RunFilter {
            workflow: Some("etl".into()),
            status: Some(RunStatus::Queued),
            limit: 1,
            ..RunFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(etl.len(), 1);
    assert_eq!(etl[0].run_id.as_str(), "01C");
}

#[test]
fn refuses_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let (_store, guard) = Store::open(&path).unwrap();
        drop(_store);
        guard.close();
    }
    {
        let conn = duckdb::Connection::open(&path).unwrap();
        conn.execute(
            "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
            [],
        )
        .unwrap();
    }
    let err = Store::open(&path).err().expect("must refuse").to_string();
    assert!(err.contains("schema version 99"), "{err}");
}

#[tokio::test]
async fn schedule_state_and_slots_persist() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let slot = |s: u32, fate: &str| {
        Write::Slot(SlotRecord {
            workflow_id: WorkflowId::new("etl"),
            slot: chrono::TimeZone::with_ymd_and_hms(&Utc, 2025, 1, 1, 0, 0, s)
                .single()
                .unwrap(),
            fate: fate.parse().unwrap(),
            run_id: (fate == "fired").then(|| RunId::new(format!("r{s}"))),
            note: None,
            recorded_at: Utc::now(),
        })
    };
    {
        let (store, guard) = Store::open(&path).unwrap();
        store
            .write(vec![
                slot(1, "fired"),
                slot(2, "skipped-overlap"),
                Write::Paused {
                    workflow_id: WorkflowId::new("etl"),
                    paused: true,
                },
                slot(3, "paused"),
            ])
            .await
            .unwrap();
        drop(store);
        guard.close();
    }
    let (store, _guard) = Store::open(&path).unwrap();
    let states = store.schedule_states().await.unwrap();
    assert_eq!(states.len(), 1);
    assert!(states[0].paused);
    assert_eq!(states[0].last_slot.map(|t| t.timestamp() % 60), Some(3));
    let history = store.slot_history("etl", 10).await.unwrap();
    let fates: Vec<&str> = history.iter().map(|h| h.fate.as_str()).collect();
    assert_eq!(fates, ["paused", "skipped-overlap", "fired"]);
    assert_eq!(history[2].run_id.as_ref().map(|r| r.as_str()), Some("r1"));
}

#[tokio::test]
async fn refused_writes_are_journaled_acknowledged_and_applied_once_the_database_accepts_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let (store, _guard) = Store::open(&path).unwrap();
    store.fail_writes_for(std::time::Duration::from_millis(600));
    // Acknowledged as durable (journaled) although the database refuses them.
    store
        .write(vec![Write::RunQueued(new_run("r1", "wf"))])
        .await
        .unwrap();
    store
        .write(vec![line(1, "r1", 1), line(2, "r1", 2)])
        .await
        .unwrap();
    // Applied behind the acknowledgement: the owner meets the failure a moment later.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while store.health() == crate::store::StoreHealth::Ok {
        assert!(std::time::Instant::now() < deadline, "never degraded");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(
        store.health().to_string().starts_with("degraded:")
            && store.health().to_string().contains("injected failure"),
        "{}",
        store.health()
    );
    assert_eq!(
        journal_files(dir.path()).len(),
        1,
        "the batches wait in the journal"
    );
    // Later writes keep their order behind the held ones, and land once writes work again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while store.health() != crate::store::StoreHealth::Ok {
        assert!(
            std::time::Instant::now() < deadline,
            "the store never recovered"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let _ = store.count("runs").await;
    }
    store.write(vec![line(3, "r1", 3)]).await.unwrap();
    assert_eq!(store.count("runs").await.unwrap(), 1);
    assert_eq!(store.count("logs").await.unwrap(), 3);
    drop(store);
    _guard.close();
    assert!(
        journal_files(dir.path()).is_empty(),
        "a clean close removes the journal"
    );
    let (store, _guard) = Store::open(&path).unwrap();
    assert_eq!(
        store.count("logs").await.unwrap(),
        3,
        "nothing applied twice"
    );
}

/// The journal's segment files in `dir`.
pub(super) fn journal_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".journal"))
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn an_earlier_versions_journal_left_by_a_crash_is_replayed_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let (store, guard) = Store::open(&path).unwrap();
        drop(store);
        guard.close();
    }
    // As if the principal died while the database refused writes.
    let journal = legacy_journal::Journal::beside(&path);
    journal
        .append(&[Write::RunQueued(new_run("r9", "wf"))])
        .unwrap();
    journal.append(&[line(1, "r9", 1)]).unwrap();
    {
        let (store, guard) = Store::open(&path).unwrap();
        assert_eq!(store.count("runs").await.unwrap(), 1);
        assert_eq!(store.count("logs").await.unwrap(), 1);
        drop(store);
        guard.close();
    }
    assert!(!journal.path().exists());
    let (store, guard) = Store::open(&path).unwrap();
    assert_eq!(store.count("logs").await.unwrap(), 1, "not applied twice");
    drop(store);
    guard.close();
    // A second outage's journal (same path, new id) is applied too, not mistaken for the first.
    journal.append(&[line(2, "r9", 2)]).unwrap();
    let (store, _guard) = Store::open(&path).unwrap();
    assert_eq!(store.count("logs").await.unwrap(), 2);
}

/// A task's changes in one batch land as if applied one by one, and the row is inserted
/// first even when its run is queued in the same batch.
#[tokio::test]
async fn a_tasks_changes_in_one_batch_merge_into_the_same_row_as_one_by_one() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, guard) = Store::open(&tmp.path().join("db.duckdb")).unwrap();
    let t0 = Utc::now();
    let t1 = t0 + chrono::Duration::milliseconds(5);
    let task = |name: &str, status, at, exit_code, reason: Option<&str>| Write::Task {
        try_no: 1,
        run_id: RunId::new("r1"),
        task_id: TaskId::new(name),
        attempt: 1,
        status,
        ts: at,
        exit_code,
        reason: reason.map(str::to_owned),
    };
    store
        .write(vec![
            Write::RunQueued(new_run("r1", "wf")),
            task("a", TaskStatus::Running, t0, None, None),
            task("b", TaskStatus::Running, t0, None, None),
            task("a", TaskStatus::Failed, t1, Some(3), Some("exit 3")),
        ])
        .await
        .unwrap();
    // b finishes in a later batch: the stored start stays.
    store
        .write(vec![task("b", TaskStatus::Completed, t1, Some(0), None)])
        .await
        .unwrap();
    let run = store.get_run("r1").await.unwrap().unwrap();
    let ms = |t: chrono::DateTime<Utc>| t.timestamp_micros();
    let a = &run.tasks[0];
    assert_eq!((a.status, a.exit_code), (TaskStatus::Failed, Some(3)));
    assert_eq!(a.reason.as_deref(), Some("exit 3"));
    assert_eq!(a.started_at.map(ms), Some(ms(t0)));
    assert_eq!(a.finished_at.map(ms), Some(ms(t1)));
    let b = &run.tasks[1];
    assert_eq!((b.status, b.exit_code), (TaskStatus::Completed, Some(0)));
    assert_eq!(b.started_at.map(ms), Some(ms(t0)));
    assert_eq!(store.count("transitions").await.unwrap(), 5);
    drop(store);
    guard.close();
}

#[tokio::test]
async fn opening_warms_up_without_leaving_a_row() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _guard) = Store::open(&dir.path().join("db")).unwrap();
    for table in [
        "runs",
        "task_runs",
        "transitions",
        "logs",
        "agents",
        "schedules",
        "schedule_slots",
        "late_records",
        "audit",
        "journal_applied",
    ] {
        assert_eq!(store.count(table).await.unwrap(), 0, "{table}");
    }
    // The statements were prepared by the warm-up: real writes still land.
    store
        .write(vec![
            Write::RunQueued(new_run("r1", "wf")),
            line(1, "r1", 1),
        ])
        .await
        .unwrap();
    assert_eq!(store.count("runs").await.unwrap(), 1);
    assert_eq!(store.count("logs").await.unwrap(), 1);
}
