//! Creating runs: triggers (validated against the catalog and the workflow's params) and
//! schedule fires, where the workflow's overlap policy decides between skipping, queuing
//! behind the active run, or running alongside it.

use crate::runtime::metrics::METRICS;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use super::{ActiveRun, Coordinator, Reply, Rerun, TriggerRequest};
use crate::model::{
    Overlap, RunId, RunStatus, SlotFate, TaskId, TaskStatus, TriggerSource, Workflow, WorkflowId,
};
use crate::protocol::{ErrorCode, ErrorReply};
use crate::store::{NewRun, StoreError, Write};
use crate::workflow::diagnostic::suggest;
use crate::workflow::{Catalog, FileStatus};

/// Where a queued run comes from: its trigger, who queued it, and for a rerun the run it
/// repeats and the tasks it reuses.
struct Origin {
    trigger: TriggerSource,
    by: Option<String>,
    rerun: Option<(RunId, Vec<TaskId>)>,
}

impl Coordinator {
    pub(super) fn trigger(&mut self, request: TriggerRequest, reply: Reply<RunId>) {
        match self.queue_triggered(request) {
            Ok((run_id, committed)) => {
                // The trigger is acknowledged once the queued run is durable.
                self.pending.spawn(async move {
                    let result = committed.await.map(|_| run_id).map_err(|e| {
                        ErrorReply::new(ErrorCode::Unavailable, format!("store: {e}"))
                    });
                    let _ = reply.send(result);
                });
                self.dispatch();
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    /// Validates a trigger and queues its run; returns the run id and the commit to wait for.
    fn queue_triggered(
        &mut self,
        request: TriggerRequest,
    ) -> Result<
        (
            RunId,
            impl std::future::Future<Output = Result<(), StoreError>>,
        ),
        ErrorReply,
    > {
        let TriggerRequest {
            workflow,
            params,
            source,
            by,
            audit,
            rerun,
        } = request;
        let workflow = workflow.as_str();
        let source = match (source, &rerun) {
            (_, Some(_)) => TriggerSource::Rerun,
            (None, None) => TriggerSource::Api,
            (Some(t), None) => t
                .parse::<TriggerSource>()
                .map_err(|e| ErrorReply::invalid("trigger", e))?,
        };
        let catalog = self.catalog.borrow().clone();
        let (definition, params, rerun) = match rerun.map(|r| *r) {
            Some(Rerun {
                of,
                definition,
                params: mut base,
                reuse,
            }) => {
                base.extend(params);
                (Cow::Owned(definition), base, Some((of, reuse)))
            }
            None => match catalog.workflows.get(&WorkflowId::new(workflow)) {
                Some(definition) => (Cow::Borrowed(definition), params, None),
                None => return Err(unknown_workflow(&catalog, workflow)),
            },
        };
        if let Some(full) = self.queue_full() {
            return Err(ErrorReply::new(ErrorCode::QueueFull, full));
        }
        let params = definition
            .resolve_params(&params)
            .map_err(|e| ErrorReply::invalid("params", e))?;
        let run_id = RunId::generate();
        let audited = audit
            .map(|entry| Write::Audit(entry.queued(&run_id)))
            .into_iter()
            .collect();
        let origin = Origin {
            trigger: source,
            by,
            rerun,
        };
        let committed = self.enqueue(run_id.clone(), &definition, params, origin, false, audited);
        Ok((run_id, committed))
    }

    /// Why no run can be queued now, if the queue is full.
    fn queue_full(&self) -> Option<String> {
        let max = self.settings.max_queued_runs;
        (self.queue.len() >= max).then(|| {
            format!(
                "the queue is full: {max} runs wait (principal.max_queued_runs); try again later"
            )
        })
    }

    /// Queues a run of `definition` (a snapshot: later edits of the file do not change it) and
    /// returns a future that resolves when the queued run is committed. `with` is stored in
    /// the same transaction as the queued run.
    fn enqueue(
        &mut self,
        run_id: RunId,
        definition: &Workflow,
        params: BTreeMap<String, String>,
        Origin { trigger, by, rerun }: Origin,
        serial: bool,
        with: Vec<Write>,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> {
        let (rerun_of, reuse) = match rerun {
            Some((of, reuse)) => (Some(of), reuse),
            None => (None, Vec::new()),
        };
        let new_run = NewRun {
            rerun_of,
            reuse: reuse.clone(),
            run_id: run_id.clone(),
            workflow_id: definition.id.clone(),
            trigger,
            queued_at: self.clock.utc(),
            params_json: serde_json::to_string(&params).unwrap_or_else(|_| "{}".into()),
            definition_json: serde_json::to_string(definition).unwrap_or_default(),
            tasks: definition.tasks.iter().map(|t| t.id.clone()).collect(),
            triggered_by: by,
        };
        self.runs.insert(
            run_id.clone(),
            ActiveRun {
                run_id: run_id.clone(),
                tasks: definition
                    .tasks
                    .iter()
                    .map(|t| (t.id.clone(), TaskStatus::Pending))
                    .collect::<HashMap<_, _>>(),
                tries: HashMap::new(),
                reuse: reuse.into_iter().collect(),
                cancel: None,
                workflow: definition.clone(),
                params,
                status: RunStatus::Queued,
                attempt: 0,
                token: String::new(),
                agent: None,
                last_seq: 0,
                orphan_deadline: None,
                serial,
                assigned_at: None,
                queued_at: Some(self.clock.now()),
            },
        );
        self.queue.push_back(run_id);
        let mut writes = vec![Write::RunQueued(new_run)];
        writes.extend(with);
        self.store.submit(writes)
    }

    /// A schedule slot: skipped while an earlier run is active (`overlap: skip`), queued behind
    /// it (`queue`) or run alongside (`allow`). The slot's fate is recorded either way.
    pub(super) fn fire(&mut self, workflow: WorkflowId, slot: DateTime<Utc>, catch_up: bool) {
        let now = self.clock.utc();
        if !catch_up {
            let lag = (now - slot).to_std().unwrap_or_default();
            METRICS.fire_lag.observe(lag.as_secs_f64());
        }
        let record = |fate, note| Write::slot(&workflow, slot, fate, None, note, now);
        let catalog = self.catalog.borrow().clone();
        let Some(definition) = catalog.workflows.get(&workflow) else {
            let note = Some("the workflow is no longer loaded".into());
            self.store.write_later(vec![record(SlotFate::Missed, note)]);
            return;
        };
        let active = self
            .runs
            .values()
            .find(|r| r.workflow.id == workflow)
            .map(|r| r.run_id.clone());
        // Caught-up slots run one after another whatever the overlap policy says: `catchup`
        // asked for each of them to run.
        if let (false, Overlap::Skip, Some(active)) = (catch_up, definition.overlap, &active) {
            let note = Some(format!("run {active} was still active"));
            self.store
                .write_later(vec![record(SlotFate::SkippedOverlap, note)]);
            tracing::info!(workflow = %workflow, %slot, %active, "slot skipped: an earlier run is active");
            return;
        }
        let params = match definition.resolve_params(&BTreeMap::new()) {
            Ok(p) => p,
            Err(e) => {
                self.store
                    .write_later(vec![record(SlotFate::Missed, Some(e))]);
                return;
            }
        };
        if let Some(full) = self.queue_full() {
            tracing::warn!(workflow = %workflow, %slot, "slot missed: the queue is full");
            self.store
                .write_later(vec![record(SlotFate::Missed, Some(full))]);
            return;
        }
        let run_id = RunId::generate();
        let fate = if catch_up {
            SlotFate::CaughtUp
        } else {
            SlotFate::Fired
        };
        let slot_record = Write::slot(&workflow, slot, fate, Some(run_id.clone()), None, now);
        // The slot's fate and its run are stored together: a crash cannot keep one and lose
        // the other (which would catch the slot up a second time).
        let _committed = self.enqueue(
            run_id.clone(),
            definition,
            params,
            Origin {
                trigger: TriggerSource::Schedule,
                by: Some("schedule".into()),
                rerun: None,
            },
            definition.overlap.serialises(catch_up),
            vec![slot_record],
        );
        tracing::info!(workflow = %workflow, %slot, run = %run_id, %fate, "schedule slot");
        self.dispatch();
    }
}

/// The error for a trigger of a workflow that is not loaded: not found (with a "did you
/// mean"), or invalid when its file exists but does not validate.
pub fn unknown_workflow(catalog: &Catalog, id: &str) -> ErrorReply {
    let hint = suggest(id, catalog.workflows.keys().map(|k| k.as_str()))
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default();
    let invalid = catalog.files.iter().any(|f| {
        f.status == FileStatus::Invalid && f.id.as_ref().is_some_and(|i| i.as_str() == id)
    });
    if invalid {
        ErrorReply::new(
            ErrorCode::Invalid,
            format!("workflow `{id}` is invalid: run `cdktr workflow validate` for details"),
        )
    } else {
        ErrorReply::new(ErrorCode::NotFound, format!("no workflow `{id}`{hint}"))
    }
}
