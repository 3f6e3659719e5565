//! The scheduler on a manual clock: which slots fire, which are recorded, without waiting.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use tokio::sync::{mpsc, watch};

use super::Scheduler;
use crate::model::{SlotFate, Workflow, WorkflowId};
use crate::principal::coordinator::{CoordinatorHandle, Msg};
use crate::runtime::Clock;
use crate::store::{Store, StoreGuard};
use crate::workflow::parse::parse_workflow;
use crate::workflow::Catalog;

fn every_ten_seconds() -> Workflow {
    let text =
        "name: W\ncron: \"*/10 * * * * *\"\ntasks:\n  a: {name: A, config: !Shell {script: x}}\n";
    parse_workflow(WorkflowId::new("w"), std::path::Path::new("w.yml"), text)
        .workflow
        .expect("valid")
}

fn t(s: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap() + chrono::Duration::seconds(s)
}

struct Fixture {
    s: Scheduler,
    clock: Clock,
    fires: mpsc::UnboundedReceiver<Msg>,
    store: Store,
    _guard: StoreGuard,
    _catalog: watch::Sender<Arc<Catalog>>,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (store, guard) = Store::open(&dir.path().join("s.duckdb")).unwrap();
    let w = every_ten_seconds();
    let catalog = Catalog {
        generation: 0,
        workflows: [(w.id.clone(), w)].into_iter().collect(),
        files: Vec::new(),
    };
    let (catalog_tx, catalog) = watch::channel(Arc::new(catalog));
    let (core, fires) = CoordinatorHandle::detached();
    let clock = Clock::manual(t(1));
    let mut s = Scheduler {
        core,
        store: store.clone(),
        catalog,
        clock: clock.clone(),
        entries: Default::default(),
        paused: Default::default(),
        catchup_limit: 100,
    };
    s.rebuild(clock.utc());
    Fixture {
        s,
        clock,
        fires,
        store,
        _guard: guard,
        _catalog: catalog_tx,
        _dir: dir,
    }
}

fn fired(rx: &mut mpsc::UnboundedReceiver<Msg>) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    while let Ok(msg) = rx.try_recv() {
        if let Msg::Fire { slot, catch_up, .. } = msg {
            assert!(!catch_up);
            out.push(slot);
        }
    }
    out
}

#[tokio::test]
async fn due_slots_fire_once_and_a_scheduler_that_fell_behind_records_the_rest_missed() {
    let mut f = fixture();
    // Nothing is due before the first slot.
    f.s.fire_due(f.clock.utc());
    assert!(fired(&mut f.fires).is_empty());
    f.clock.advance(std::time::Duration::from_secs(9));
    f.s.fire_due(f.clock.utc());
    assert_eq!(fired(&mut f.fires), vec![t(10)]);
    // Asleep for 35 s (slots 20, 30, 40): only the latest fires, the others are missed.
    f.clock.advance(std::time::Duration::from_secs(35));
    f.s.fire_due(f.clock.utc());
    assert_eq!(fired(&mut f.fires), vec![t(40)]);
    let history = f.store.slot_history("w", 10).await.unwrap();
    let missed: Vec<DateTime<Utc>> = history
        .iter()
        .filter(|h| h.fate == SlotFate::Missed)
        .map(|h| h.slot)
        .collect();
    assert_eq!(missed, vec![t(30), t(20)]);
    assert!(history.iter().all(|h| h.recorded_at == f.clock.utc()));
}

#[tokio::test]
async fn a_paused_schedule_records_its_slots_paused_and_fires_none() {
    let mut f = fixture();
    if let Some(entry) = f.s.entries.get_mut(&WorkflowId::new("w")) {
        entry.paused = true;
    }
    f.clock.advance(std::time::Duration::from_secs(10));
    f.s.fire_due(f.clock.utc());
    assert!(fired(&mut f.fires).is_empty());
    let history = f.store.slot_history("w", 10).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].fate, SlotFate::Paused);
}
