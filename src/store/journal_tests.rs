//! The write-ahead journal: segments, their removal once applied, and a restart that applies
//! exactly what DuckDB had not, on real files and a real DuckDB file.

use chrono::Utc;

use super::journal::{self, Journal};
use super::tests::journal_files;
use super::*;
use crate::model::{RunId, TaskId, WorkflowId};
use crate::protocol::agent::Stream;

fn line(id: u64, seq: u64) -> Write {
    Write::Log(LogLine {
        try_no: 1,
        id,
        run_id: RunId::new("r1"),
        workflow_id: WorkflowId::new("wf"),
        task_id: TaskId::new("a"),
        attempt: 1,
        stream: Stream::Stdout,
        seq,
        ts: Utc::now(),
        line: format!("line {seq}"),
    })
}

fn read_all(db: &std::path::Path, after: u64, through: Option<u64>) -> Vec<u64> {
    let mut seqs = Vec::new();
    journal::read(db, after, through, |seq, writes| {
        assert_eq!(writes.len(), 1);
        seqs.push(seq);
        Ok(())
    })
    .unwrap();
    seqs
}

#[test]
fn segments_roll_over_and_go_once_applied() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    // Every batch closes its segment.
    let mut journal = Journal::new(&db, 1);
    for seq in 1..=5 {
        journal.append(seq, &[line(seq, seq)]).unwrap();
    }
    assert_eq!(journal_files(dir.path()).len(), 5);
    assert_eq!(read_all(&db, 0, None), [1, 2, 3, 4, 5]);
    assert_eq!(read_all(&db, 2, Some(4)), [3, 4]);
    journal.release(3);
    assert_eq!(
        journal_files(dir.path()),
        [
            "db.journal-00000000000000000004",
            "db.journal-00000000000000000005"
        ]
    );
    assert_eq!(read_all(&db, 3, None), [4, 5]);
    // Large segments take many batches.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let mut journal = Journal::new(&db, journal::SEGMENT_BYTES);
    for seq in 1..=100 {
        journal.append(seq, &[line(seq, seq)]).unwrap();
    }
    journal.release(100);
    assert_eq!(journal_files(dir.path()).len(), 1, "the open segment stays");
}

#[tokio::test]
async fn a_restart_applies_exactly_the_batches_duckdb_had_not() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    {
        let (store, guard) = Store::open(&db).unwrap();
        store.write(vec![line(1, 1)]).await.unwrap();
        store.write(vec![line(2, 2)]).await.unwrap();
        drop(store);
        guard.close();
    }
    assert!(journal_files(dir.path()).is_empty());
    // As if the principal died after acknowledging batches 2 (applied: already in DuckDB, the
    // journal not yet removed), 3 and 4 (journaled, not applied), and while appending a fifth.
    let mut journal = Journal::new(&db, journal::SEGMENT_BYTES);
    journal.append(2, &[line(2, 2)]).unwrap();
    journal.append(3, &[line(3, 3)]).unwrap();
    journal.append(4, &[line(4, 4), line(5, 5)]).unwrap();
    let segment = dir.path().join(&journal_files(dir.path())[0]);
    let mut torn = std::fs::OpenOptions::new()
        .append(true)
        .open(&segment)
        .unwrap();
    std::io::Write::write_all(&mut torn, br#"{"seq":5,"writes":[{"#).unwrap();
    drop(torn);
    {
        let (store, guard) = Store::open(&db).unwrap();
        let lines = store
            .logs(LogFilter {
                run_id: Some("r1".into()),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        let seqs: Vec<u64> = lines.iter().map(|l| l.seq).collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5], "each line once, in order");
        assert!(journal_files(dir.path()).is_empty(), "replayed and removed");
        // New batches continue the sequence: a later restart keeps them.
        store.write(vec![line(6, 6)]).await.unwrap();
        drop(store);
        guard.close();
    }
    let (store, _guard) = Store::open(&db).unwrap();
    assert_eq!(store.count("logs").await.unwrap(), 6);
}
