//! Cancelling a run. A queued run leaves the queue and ends CANCELLED at once. A running run
//! is marked, and its agent is told to stop the attempt: at once when it has a long poll
//! waiting (an agent always keeps one), else with its next heartbeat or registration; the run
//! ends CANCELLED when the agent reports its end, whatever that end was. An agent that comes
//! back from a partition after the principal gave up on it (the run then ended CANCELLED, not
//! CRASHED) is told again, so it never finishes what was cancelled.

use super::{ActiveRun, Coordinator, Reply};
use crate::model::{AgentId, RunId, RunStatus, TaskStatus};
use crate::protocol::agent::{AgentReply, AttemptRef, StopOrder};
use crate::protocol::logs::LogEvent;
use crate::runtime::metrics::METRICS;
use crate::store::Write;

impl ActiveRun {
    /// The order that stops its current attempt, once it was cancelled.
    pub(super) fn stop_order(&self) -> Option<StopOrder> {
        self.cancel.as_ref().map(|why| StopOrder {
            run_id: self.run_id.clone(),
            attempt: self.attempt,
            token: self.token.clone(),
            reason: why.clone(),
        })
    }
}

/// What a cancel request found: the run's status afterwards, whether it changed anything, and
/// a note for the operator.
pub struct CancelOutcome {
    pub status: RunStatus,
    pub changed: bool,
    pub note: String,
}

impl Coordinator {
    /// Cancels `run_id` for `why` ("cancelled by NAME: REASON"); `None` when the run is not
    /// active here (finished, or unknown: the caller asks the store).
    pub(super) fn cancel(
        &mut self,
        run_id: &RunId,
        why: String,
        reply: Reply<Option<CancelOutcome>>,
    ) {
        let Some(run) = self.runs.get_mut(run_id) else {
            let _ = reply.send(Ok(None));
            return;
        };
        match run.status {
            RunStatus::Queued => {
                self.queue.retain(|id| id != run_id);
                let committed = self.end_run(run_id, RunStatus::Cancelled, &why);
                self.pending.spawn(async move {
                    let result = committed.await.map_err(|e| {
                        crate::protocol::ErrorReply::new(
                            crate::protocol::ErrorCode::Unavailable,
                            format!("store: {e}"),
                        )
                    });
                    let _ = reply.send(result.map(|()| {
                        Some(CancelOutcome {
                            status: RunStatus::Cancelled,
                            changed: true,
                            note: "it was queued: removed from the queue, it will not run".into(),
                        })
                    }));
                });
                // Runs behind it (a serial or max_active_runs wait) may start now.
                self.dispatch();
            }
            _ => {
                let agent = run.agent.clone();
                let already = run.cancel.replace(why).is_some();
                let note = match (&agent, already) {
                    (_, true) => "a cancel is already on its way; nothing more to do".into(),
                    (Some(agent), false) => format!(
                        "its agent {agent} stops its tasks (SIGTERM, then SIGKILL after their \
                         kill_grace); the run ends CANCELLED when the agent confirms"
                    ),
                    (None, false) => "the run ends CANCELLED when its agent confirms".into(),
                };
                if let Some(agent) = agent {
                    self.send_stops(&agent);
                }
                let _ = reply.send(Ok(Some(CancelOutcome {
                    status: RunStatus::Running,
                    changed: !already,
                    note,
                })));
            }
        }
    }

    /// Answers the agent's waiting long poll, if any, with the attempts it must stop.
    pub(super) fn send_stops(&mut self, agent: &AgentId) {
        let running: Vec<AttemptRef> = self
            .agents
            .runs_of(agent)
            .into_iter()
            .filter_map(|id| self.runs.get(&id))
            .map(|r| AttemptRef {
                run_id: r.run_id.clone(),
                attempt: r.attempt,
                token: r.token.clone(),
            })
            .collect();
        let stop = self.stop_orders(&running);
        if stop.is_empty() {
            return;
        }
        if let Some(pull) = self.agents.take_pull(agent) {
            let _ = pull.send(Ok(AgentReply::Work {
                assignments: vec![],
                stop,
            }));
        }
    }

    /// The attempts among those an agent lists (`running`) that must stop: of runs cancelled
    /// here, still active or ended while the agent was away.
    pub(super) fn stop_orders(&self, running: &[AttemptRef]) -> Vec<StopOrder> {
        running
            .iter()
            .filter_map(|a| match self.runs.get(&a.run_id) {
                Some(run) if run.attempt == a.attempt && run.token == a.token => run.stop_order(),
                Some(_) => None,
                None => self.ended.cancelled(a),
            })
            .collect()
    }

    /// Ends a run the principal closes itself (cancelled while queued, or its agent lost):
    /// its tasks that ran become `status` (CRASHED or CANCELLED), those that never started
    /// SKIPPED (a crash) or CANCELLED. Returns the commit of the writes.
    pub(super) fn end_run(
        &mut self,
        run_id: &RunId,
        status: RunStatus,
        reason: &str,
    ) -> impl std::future::Future<Output = Result<(), crate::store::StoreError>> {
        let (running_to, pending_to) = match status {
            RunStatus::Cancelled => (TaskStatus::Cancelled, TaskStatus::Cancelled),
            _ => (TaskStatus::Crashed, TaskStatus::Skipped),
        };
        let mut writes = Vec::new();
        let now = self.clock.utc();
        if let Some(mut run) = self.runs.remove(run_id) {
            self.ended.remember(run_id.clone(), run.stop_order());
            if let Some(agent) = &run.agent {
                self.agents.remove_run(agent, run_id);
            }
            for (task_id, task) in run.tasks.iter_mut() {
                let (next, why) = match task {
                    TaskStatus::Running | TaskStatus::Retrying => (running_to, reason.to_owned()),
                    TaskStatus::Pending => (pending_to, format!("not run: {reason}")),
                    _ => continue,
                };
                *task = next;
                writes.push(Write::Task {
                    run_id: run_id.clone(),
                    task_id: task_id.clone(),
                    attempt: run.attempt,
                    status: next,
                    ts: now,
                    exit_code: None,
                    reason: Some(why),
                    try_no: run.tries.get(task_id).map_or(1, |(k, _)| *k),
                });
            }
            writes.push(Write::Run {
                run_id: run_id.clone(),
                status,
                ts: now,
                agent: None,
                attempt: run.attempt,
                token: None,
                reason: Some(reason.to_owned()),
            });
            METRICS.run_ended(status.as_str());
            self.publisher.publish(LogEvent::RunEnded {
                run_id: run_id.clone(),
                workflow_id: run.workflow.id.clone(),
                status,
            });
            tracing::warn!(run = %run_id, %status, reason, "run ended by the principal");
        }
        self.store.submit(writes)
    }
}
