//! Read-only SQL over the views, online (through the store) and offline (the file itself).

use super::tests::{line, new_run};
use super::*;
use crate::store::sql::{self, Limits, SqlError};

const LIMITS: Limits = Limits {
    max_rows: 100,
    timeout: std::time::Duration::from_secs(5),
    max_bytes: 1 << 20,
};

async fn seeded() -> (tempfile::TempDir, std::path::PathBuf, Store, StoreGuard) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cdktr.duckdb");
    let (store, guard) = Store::open(&path).unwrap();
    store
        .write(vec![
            Write::RunQueued(new_run("r1", "wf")),
            line(1, "r1", 1),
            line(2, "r1", 2),
        ])
        .await
        .unwrap();
    (dir, path, store, guard)
}

#[tokio::test]
async fn the_views_answer_and_writes_are_refused_by_duckdb() {
    let (_dir, _path, store, guard) = seeded().await;
    let result = store
        .sql(
            "SELECT run_id, workflow_id, duration_s FROM runs".into(),
            LIMITS,
        )
        .await
        .unwrap();
    assert_eq!(
        result.rows,
        vec![vec![
            serde_json::json!("r1"),
            serde_json::json!("wf"),
            serde_json::Value::Null
        ]]
    );
    let names: Vec<_> = result.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["run_id", "workflow_id", "duration_s"]);
    for refused in [
        "DELETE FROM runs",
        "DELETE FROM main.logs",
        "SELECT 1; DELETE FROM logs",
    ] {
        let e = store.sql(refused.into(), LIMITS).await.unwrap_err();
        assert!(matches!(e, SqlError::Refused(_)), "{refused}: {e:?}");
    }
    assert_eq!(store.count("logs").await.unwrap(), 2);
    drop(store);
    guard.close();
}

#[tokio::test]
async fn a_stopped_principals_file_is_read_offline() {
    let (_dir, path, store, guard) = seeded().await;
    drop(store);
    guard.close();
    let engine = sql::offline(&path).unwrap();
    let result = engine
        .run(
            "SELECT count(*) AS n, max(date_diff('second', queued_at, queued_at)) FROM logs, runs",
            LIMITS,
        )
        .unwrap();
    assert_eq!(result.rows[0][0], serde_json::json!(2));
    let e = engine.run("DELETE FROM logs", LIMITS).unwrap_err();
    assert!(matches!(e, SqlError::Refused(_)), "{e:?}");
}

#[test]
fn a_client_may_lower_the_limits_and_never_raise_them() {
    let secs = std::time::Duration::from_secs;
    let lowered = LIMITS.lowered(Some(10), Some(secs(1)));
    assert_eq!(
        (lowered.max_rows, lowered.timeout, lowered.max_bytes),
        (10, secs(1), LIMITS.max_bytes)
    );
    let raised = LIMITS.lowered(Some(1_000_000), Some(secs(3600)));
    assert_eq!(raised, LIMITS);
    assert_eq!(LIMITS.lowered(None, None), LIMITS);
}
