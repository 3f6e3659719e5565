//! The scheduler: for every workflow with a `cron`, sleep until its next slot and hand the
//! slot to the coordinator, which applies the overlap policy. No polling tick: the loop sleeps
//! until the earliest slot, and wakes early when the workflows change or a command arrives.
//!
//! Every slot's fate is recorded (`fired`, `skipped-overlap`, `missed`, `caught-up`,
//! `paused`). At start, slots missed while the principal was down are handled by each
//! workflow's `catchup` policy. Pauses are persisted and survive restarts.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

mod catchup;

pub use catchup::catchup_plan;

use super::coordinator::{CoordinatorHandle, Msg};
use crate::model::{SlotFate, Workflow, WorkflowId};
use crate::protocol::control::ScheduleView;
use crate::runtime::{contained, Clock};
use crate::store::{Store, StoreError, Write};
use crate::workflow::Catalog;

pub enum SchedulerMsg {
    List(oneshot::Sender<Vec<ScheduleView>>),
    /// Answered at once: the scheduler's loop is turning (the watchdog asks).
    Ping(oneshot::Sender<()>),
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

    /// Some(()) once the scheduler's loop answered.
    pub async fn ping(&self) -> Option<()> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(SchedulerMsg::Ping(reply)).ok()?;
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

struct Entry {
    workflow: Workflow,
    next: Option<DateTime<Utc>>,
    paused: bool,
}

/// What the scheduler talks to.
pub struct Links {
    pub core: CoordinatorHandle,
    pub store: Store,
    pub catalog: watch::Receiver<Arc<Catalog>>,
    pub clock: Clock,
}

pub struct Scheduler {
    core: CoordinatorHandle,
    store: Store,
    catalog: watch::Receiver<Arc<Catalog>>,
    clock: Clock,
    entries: BTreeMap<WorkflowId, Entry>,
    paused: BTreeMap<WorkflowId, bool>,
    catchup_limit: usize,
}

pub async fn spawn(
    tracker: &tokio_util::task::TaskTracker,
    links: Links,
    catchup_limit: usize,
    stop: CancellationToken,
) -> Result<SchedulerHandle, StoreError> {
    let Links {
        core,
        store,
        catalog,
        clock,
    } = links;
    let states = store.schedule_states().await?;
    let paused = states
        .iter()
        .map(|s| (s.workflow_id.clone(), s.paused))
        .collect();
    let mut scheduler = Scheduler {
        core,
        store,
        catalog,
        clock,
        entries: BTreeMap::new(),
        paused,
        catchup_limit,
    };
    let now = scheduler.clock.utc();
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
    /// A slot's fate, recorded now, with no run.
    fn slot(
        &self,
        id: &WorkflowId,
        slot: DateTime<Utc>,
        fate: SlotFate,
        note: Option<String>,
    ) -> Write {
        Write::slot(id, slot, fate, None, note, self.clock.utc())
    }

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
                writes.push(self.slot(id, *slot, SlotFate::Missed, Some(note)));
            }
            self.store.write_later(writes);
            for slot in plan.run {
                if entry.paused {
                    self.store
                        .write_later(vec![self.slot(id, slot, SlotFate::Paused, None)]);
                } else {
                    self.core.send(Msg::Fire {
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
                .map(|t| (t - self.clock.utc()).to_std().unwrap_or_default())
                .unwrap_or(std::time::Duration::from_secs(3600));
            tokio::select! {
                _ = stop.cancelled() => return,
                changed = self.catalog.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let now = self.clock.utc();
                    contained("scheduler", "a workflow change", || self.rebuild(now));
                }
                msg = rx.recv() => match msg {
                    Some(msg) => {
                        contained("scheduler", "a command", || self.command(msg));
                    }
                    None => return,
                },
                _ = tokio::time::sleep(wait) => {
                    let now = self.clock.utc();
                    contained("scheduler", "due slots", || self.fire_due(now));
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
                    let note = Some("the scheduler fell behind".into());
                    Write::slot(id, slot, SlotFate::Missed, None, note, now)
                })
                .collect();
            self.store.write_later(missed);
            if entry.paused {
                self.store.write_later(vec![Write::slot(
                    id,
                    latest,
                    SlotFate::Paused,
                    None,
                    None,
                    now,
                )]);
            } else {
                self.core.send(Msg::Fire {
                    workflow: id.clone(),
                    slot: latest,
                    catch_up: false,
                });
            }
        }
    }

    fn command(&mut self, msg: SchedulerMsg) {
        match msg {
            SchedulerMsg::Ping(reply) => {
                let _ = reply.send(());
            }
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

#[cfg(test)]
mod tests;
