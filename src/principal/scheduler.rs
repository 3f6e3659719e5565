//! The scheduler: for every workflow with a `cron`, sleep until its next slot and hand the
//! slot to the coordinator, which applies the overlap policy. No polling tick: the loop sleeps
//! until the earliest slot, and wakes early when the workflows change or a command arrives.
//!
//! Every slot's fate is recorded (`fired`, `skipped-overlap`, `missed`, `caught-up`,
//! `paused`). At start, slots missed while the principal was down are handled by each
//! workflow's `catchup` policy. Pauses are persisted and survive restarts.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::core::{CoreHandle, CoreMsg};
use crate::model::{Catchup, Workflow, WorkflowId};
use crate::protocol::control::{ScheduleView, SlotRecord};
use crate::runtime::contained;
use crate::store::{Store, StoreError, Write};
use crate::workflow::Catalog;

/// Most slots listed one by one when working out what was missed during a downtime.
const MAX_SLOTS_SCANNED: usize = 200_000;

/// Missed slots older than this before now are not enumerated (a per-second cron over a long
/// downtime would mean millions): they are summarised in one note.
const CATCHUP_WINDOW: chrono::Duration = chrono::Duration::hours(48);

pub enum SchedulerMsg {
    List(oneshot::Sender<Vec<ScheduleView>>),
    /// Pause (true) or resume (false); answers false for a workflow without a schedule.
    SetPaused {
        workflow: String,
        paused: bool,
        reply: oneshot::Sender<bool>,
    },
}

#[derive(Clone)]
pub struct SchedulerHandle {
    tx: mpsc::UnboundedSender<SchedulerMsg>,
}

impl SchedulerHandle {
    pub async fn list(&self) -> Option<Vec<ScheduleView>> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(SchedulerMsg::List(reply)).ok()?;
        rx.await.ok()
    }

    pub async fn set_paused(&self, workflow: String, paused: bool) -> Option<bool> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(SchedulerMsg::SetPaused {
                workflow,
                paused,
                reply,
            })
            .ok()?;
        rx.await.ok()
    }
}

/// What to do with the slots between the last handled one and now.
#[derive(Debug, Default, PartialEq)]
pub struct CatchupPlan {
    /// Slots to run now, oldest first.
    pub run: Vec<DateTime<Utc>>,
    /// Slots that will not run.
    pub missed: Vec<DateTime<Utc>>,
    /// Missed slots beyond the scan limit, not listed one by one.
    pub unlisted: bool,
}

/// The slots of `w` after `last` up to `now` (none before `start_time`), split by its catchup
/// policy; `all` runs at most `limit` (the latest ones).
pub fn catchup_plan(
    w: &Workflow,
    last: DateTime<Utc>,
    now: DateTime<Utc>,
    limit: usize,
) -> CatchupPlan {
    let Some(schedule) = &w.schedule else {
        return CatchupPlan::default();
    };
    let start = w.start_time.map(|t| t.with_timezone(&Utc));
    let mut slots = VecDeque::new();
    let mut unlisted = last < now - CATCHUP_WINDOW;
    let mut cursor = last.max(now - CATCHUP_WINDOW);
    while let Some(next) = schedule.next_after(cursor).map(|t| t.with_timezone(&Utc)) {
        if next > now {
            break;
        }
        cursor = next;
        if start.is_some_and(|s| next < s) {
            continue;
        }
        slots.push_back(next);
        if slots.len() > MAX_SLOTS_SCANNED {
            slots.pop_front();
            unlisted = true;
        }
    }
    let mut slots: Vec<DateTime<Utc>> = slots.into();
    let keep = match w.catchup {
        Catchup::None => 0,
        Catchup::Latest => 1,
        Catchup::All => limit,
    }
    .min(slots.len());
    let run = slots.split_off(slots.len() - keep);
    CatchupPlan {
        run,
        missed: slots,
        unlisted,
    }
}

struct Entry {
    workflow: Workflow,
    next: Option<DateTime<Utc>>,
    paused: bool,
}

pub struct Scheduler {
    core: CoreHandle,
    store: Store,
    catalog: watch::Receiver<Arc<Catalog>>,
    entries: BTreeMap<WorkflowId, Entry>,
    paused: BTreeMap<WorkflowId, bool>,
    catchup_limit: usize,
}

pub async fn spawn(
    tracker: &tokio_util::task::TaskTracker,
    core: CoreHandle,
    store: Store,
    catalog: watch::Receiver<Arc<Catalog>>,
    catchup_limit: usize,
    stop: CancellationToken,
) -> Result<SchedulerHandle, StoreError> {
    let states = store.schedule_states().await?;
    let paused = states
        .iter()
        .map(|s| (s.workflow_id.clone(), s.paused))
        .collect();
    let mut scheduler = Scheduler {
        core,
        store,
        catalog,
        entries: BTreeMap::new(),
        paused,
        catchup_limit,
    };
    let now = Utc::now();
    let last: BTreeMap<WorkflowId, DateTime<Utc>> = states
        .into_iter()
        .filter_map(|s| Some((s.workflow_id, s.last_slot?)))
        .collect();
    scheduler.rebuild(now);
    scheduler.catch_up(&last, now);
    let (tx, rx) = mpsc::unbounded_channel();
    tracker.spawn(scheduler.run(rx, stop));
    Ok(SchedulerHandle { tx })
}

impl Scheduler {
    /// Re-reads the catalog: new and changed schedules start from `now`, unchanged ones keep
    /// their next slot, removed ones stop.
    fn rebuild(&mut self, now: DateTime<Utc>) {
        let catalog = self.catalog.borrow().clone();
        let mut entries = BTreeMap::new();
        for w in catalog.workflows.values().filter(|w| w.schedule.is_some()) {
            let unchanged = self.entries.remove(&w.id).filter(|e| {
                e.workflow.schedule == w.schedule && e.workflow.start_time == w.start_time
            });
            let next = match unchanged {
                Some(e) => e.next,
                None => first_slot(w, now),
            };
            entries.insert(
                w.id.clone(),
                Entry {
                    workflow: w.clone(),
                    next,
                    paused: self.paused.get(&w.id).copied().unwrap_or(false),
                },
            );
        }
        self.entries = entries;
    }

    fn catch_up(&mut self, last: &BTreeMap<WorkflowId, DateTime<Utc>>, now: DateTime<Utc>) {
        for (id, entry) in &self.entries {
            let Some(&since) = last.get(id) else {
                continue; // Never scheduled before: nothing was missed.
            };
            let plan = catchup_plan(&entry.workflow, since, now, self.catchup_limit);
            let mut writes = Vec::new();
            for (i, slot) in plan.missed.iter().enumerate() {
                let note = if i == 0 && plan.unlisted {
                    format!(
                        "the principal was not running (earlier slots since {} were missed too, not listed one by one)",
                        crate::model::time::format(&since)
                    )
                } else {
                    "the principal was not running".to_owned()
                };
                writes.push(slot_write(id, *slot, "missed", Some(note)));
            }
            self.store.write_later(writes);
            for slot in plan.run {
                if entry.paused {
                    self.store
                        .write_later(vec![slot_write(id, slot, "paused", None)]);
                } else {
                    self.core.send(CoreMsg::Fire {
                        workflow: id.clone(),
                        slot,
                        catch_up: true,
                    });
                }
            }
            if !plan.missed.is_empty() || plan.unlisted {
                tracing::info!(workflow = %id, missed = plan.missed.len(), policy = ?entry.workflow.catchup, "handled slots missed while down");
            }
        }
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<SchedulerMsg>, stop: CancellationToken) {
        loop {
            let next = self.entries.values().filter_map(|e| e.next).min();
            let wait = next
                .map(|t| (t - Utc::now()).to_std().unwrap_or_default())
                .unwrap_or(std::time::Duration::from_secs(3600));
            tokio::select! {
                _ = stop.cancelled() => return,
                changed = self.catalog.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    contained("scheduler", "a workflow change", || self.rebuild(Utc::now()));
                }
                msg = rx.recv() => match msg {
                    Some(msg) => {
                        contained("scheduler", "a command", || self.command(msg));
                    }
                    None => return,
                },
                _ = tokio::time::sleep(wait) => {
                    contained("scheduler", "due slots", || self.fire_due(Utc::now()));
                }
            }
        }
    }

    /// Hands every due slot to the coordinator. If the scheduler fell behind (the machine
    /// slept), only the latest due slot of a workflow runs and the earlier ones are missed.
    fn fire_due(&mut self, now: DateTime<Utc>) {
        for (id, entry) in self.entries.iter_mut() {
            let mut due = Vec::new();
            while let Some(slot) = entry.next.filter(|t| *t <= now) {
                due.push(slot);
                entry.next = entry
                    .workflow
                    .schedule
                    .as_ref()
                    .and_then(|s| s.next_after(slot))
                    .map(|t| t.with_timezone(&Utc));
            }
            let Some(latest) = due.pop() else { continue };
            let missed: Vec<Write> = due
                .into_iter()
                .map(|slot| {
                    slot_write(id, slot, "missed", Some("the scheduler fell behind".into()))
                })
                .collect();
            self.store.write_later(missed);
            if entry.paused {
                self.store
                    .write_later(vec![slot_write(id, latest, "paused", None)]);
            } else {
                self.core.send(CoreMsg::Fire {
                    workflow: id.clone(),
                    slot: latest,
                    catch_up: false,
                });
            }
        }
    }

    fn command(&mut self, msg: SchedulerMsg) {
        match msg {
            SchedulerMsg::List(reply) => {
                let views = self
                    .entries
                    .values()
                    .filter_map(|e| {
                        let s = e.workflow.schedule.as_ref()?;
                        Some(ScheduleView {
                            workflow_id: e.workflow.id.clone(),
                            cron: s.expr().to_owned(),
                            timezone: s.timezone().name().to_owned(),
                            next_fire: e.next,
                            paused: e.paused,
                            overlap: e.workflow.overlap,
                            catchup: e.workflow.catchup,
                        })
                    })
                    .collect();
                let _ = reply.send(views);
            }
            SchedulerMsg::SetPaused {
                workflow,
                paused,
                reply,
            } => {
                let id = WorkflowId::new(workflow.as_str());
                let Some(entry) = self.entries.get_mut(&id) else {
                    let _ = reply.send(false);
                    return;
                };
                entry.paused = paused;
                self.paused.insert(id.clone(), paused);
                self.store.write_later(vec![Write::Paused {
                    workflow_id: id.clone(),
                    paused,
                }]);
                tracing::info!(workflow = %id, paused, "schedule {}", if paused { "paused" } else { "resumed" });
                let _ = reply.send(true);
            }
        }
    }
}

/// The first slot of a workflow from `now` on (respecting `start_time`).
fn first_slot(w: &Workflow, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    w.next_fires(now, 1).first().map(|t| t.with_timezone(&Utc))
}

pub fn slot_write(id: &WorkflowId, slot: DateTime<Utc>, fate: &str, note: Option<String>) -> Write {
    Write::Slot(SlotRecord {
        workflow_id: id.clone(),
        slot,
        fate: fate.into(),
        run_id: None,
        note,
        recorded_at: Utc::now(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::parse::parse_workflow;
    use chrono::TimeZone;

    fn workflow(catchup: &str, start: Option<&str>) -> Workflow {
        let start = start
            .map(|s| format!("start_time: {s}\n"))
            .unwrap_or_default();
        let text = format!(
            "name: W\ncron: \"*/10 * * * * *\"\ncatchup: {catchup}\n{start}tasks:\n  a: {{name: A, config: !Shell {{script: x}}}}\n"
        );
        parse_workflow(WorkflowId::new("w"), std::path::Path::new("w.yml"), &text)
            .workflow
            .expect("valid")
    }

    fn t(s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).single().unwrap()
            + chrono::Duration::seconds(s.into())
    }

    #[test]
    fn catchup_none_latest_all() {
        // Last handled slot 00:00:00, now 00:00:55: slots 10, 20, 30, 40, 50 were missed.
        let none = catchup_plan(&workflow("none", None), t(0), t(55), 100);
        assert_eq!((none.run.len(), none.missed.len()), (0, 5));
        let latest = catchup_plan(&workflow("latest", None), t(0), t(55), 100);
        assert_eq!(latest.run, vec![t(50)]);
        assert_eq!(latest.missed, vec![t(10), t(20), t(30), t(40)]);
        let all = catchup_plan(&workflow("all", None), t(0), t(55), 100);
        assert_eq!(all.run, vec![t(10), t(20), t(30), t(40), t(50)]);
        assert!(all.missed.is_empty());
        let bounded = catchup_plan(&workflow("all", None), t(0), t(55), 2);
        assert_eq!(bounded.run, vec![t(40), t(50)]);
        assert_eq!(bounded.missed, vec![t(10), t(20), t(30)]);
    }

    #[test]
    fn a_long_downtime_is_summarised_not_enumerated() {
        // A per-second cron, last handled three days ago: only the last 48 h are listed.
        let w = workflow("none", None);
        let now = t(0) + chrono::Duration::hours(72);
        let plan = catchup_plan(&w, t(0), now, 100);
        assert!(plan.unlisted);
        assert!(plan
            .missed
            .first()
            .is_some_and(|s| *s >= now - CATCHUP_WINDOW));
        assert_eq!(plan.missed.len(), MAX_SLOTS_SCANNED.min(48 * 360));
    }

    #[test]
    fn catchup_respects_start_time_and_an_exact_boundary() {
        let w = workflow("all", Some("2025-01-01T00:00:35+00:00"));
        assert_eq!(catchup_plan(&w, t(0), t(55), 100).run, vec![t(40), t(50)]);
        // A slot exactly at `now` is due; the last handled slot itself is not repeated.
        assert_eq!(
            catchup_plan(&workflow("all", None), t(10), t(30), 100).run,
            vec![t(20), t(30)]
        );
    }
}
