//! Handing queued runs to waiting agents, never beyond their free slots, and reconciling what
//! an agent says it runs with what it was given.

use std::time::Duration;

use super::{Coordinator, Msg};
use crate::model::{AgentId, RunId, RunStatus};
use crate::protocol::agent::{AgentReply, Assignment, AttemptRef};
use crate::store::Write;

impl Coordinator {
    /// Hands queued runs to agents that are waiting for work, never beyond their free slots.
    pub(super) fn dispatch(&mut self) {
        while self.eligible_position().is_some() {
            let Some((agent_id, free)) = self.agents.best_waiting() else {
                return;
            };
            let Some(pull) = self.agents.take_pull(&agent_id) else {
                return;
            };
            let mut assignments = Vec::new();
            let mut writes = Vec::new();
            while assignments.len() < free as usize {
                let Some(run_id) = self
                    .eligible_position()
                    .and_then(|at| self.queue.remove(at))
                else {
                    break;
                };
                if let Some((a, w)) = self.assign(&run_id, &agent_id) {
                    assignments.push(a);
                    writes.push(w);
                }
            }
            // The agent hears of an attempt only once it is durable: a principal that crashes
            // in between never hands the same attempt number out twice.
            let committed = self.store.submit(writes);
            let handle = self.handle.clone();
            self.pending.spawn(async move {
                if let Err(e) = committed.await {
                    tracing::error!(error = %e, "assignment not stored; sending it anyway");
                }
                let runs: Vec<RunId> = assignments.iter().map(|a| a.run_id.clone()).collect();
                if pull.send(Ok(AgentReply::Work { assignments })).is_err() {
                    handle.send(Msg::Undelivered(runs));
                }
            });
        }
    }

    /// Compares what an agent says it runs with what the principal assigned it: a run
    /// assigned more than `grace` ago that the agent does not know never reached it (queued
    /// again) or was lost by it after it started (CRASHED).
    pub(super) fn reconcile(
        &mut self,
        agent_id: &AgentId,
        running: &[AttemptRef],
        grace: Duration,
    ) {
        let now = self.clock.now();
        for run_id in self.agents.runs_of(agent_id) {
            let Some(run) = self.runs.get(&run_id) else {
                continue;
            };
            let known = running
                .iter()
                .any(|a| a.run_id == run_id && a.attempt == run.attempt && a.token == run.token);
            let settled = run.assigned_at.is_none_or(|at| at + grace <= now);
            if !known && settled {
                self.requeue_or_crash(&run_id, &format!("agent {agent_id} does not run it"));
            }
        }
    }

    /// A run its agent never started goes back to the front of the queue (a new attempt
    /// follows); one that had started is CRASHED.
    pub(super) fn requeue_or_crash(&mut self, run_id: &RunId, reason: &str) {
        let Some(run) = self.runs.get_mut(run_id) else {
            return;
        };
        if run.status != RunStatus::Running {
            return;
        }
        if run.last_seq > 0 {
            self.crash_run(run_id, reason);
            return;
        }
        if let Some(agent) = run.agent.take() {
            self.agents.remove_run(&agent, run_id);
        }
        run.status = RunStatus::Queued;
        run.assigned_at = None;
        // The closed attempt's token: its late records must not match the run any more.
        run.token.clear();
        self.queue.push_front(run_id.clone());
        tracing::warn!(run = %run_id, reason, "run queued again");
        self.store.write_later(vec![Write::Run {
            run_id: run_id.clone(),
            status: RunStatus::Queued,
            ts: self.clock.utc(),
            agent: None,
            attempt: run.attempt,
            token: None,
            reason: Some(format!("queued again: {reason}")),
        }]);
    }

    /// Where in the queue the first run is that may start now: a serial run waits while
    /// another run of its workflow is running.
    fn eligible_position(&self) -> Option<usize> {
        self.queue.iter().position(|id| {
            self.runs.get(id).is_none_or(|r| {
                !r.serial
                    || !self
                        .runs
                        .values()
                        .any(|o| o.workflow.id == r.workflow.id && o.status == RunStatus::Running)
            })
        })
    }

    /// Marks a queued run RUNNING on `agent_id` with a new attempt and token; returns what to
    /// send the agent and the write that records it.
    fn assign(&mut self, run_id: &RunId, agent_id: &AgentId) -> Option<(Assignment, Write)> {
        let run = self.runs.get_mut(run_id)?;
        if run.status != RunStatus::Queued {
            return None;
        }
        run.status = RunStatus::Running;
        run.assigned_at = Some(self.clock.now());
        run.attempt += 1;
        run.token = ulid::Ulid::new().to_string();
        run.agent = Some(agent_id.clone());
        run.last_seq = 0;
        self.agents.add_run(agent_id, run_id);
        let write = Write::Run {
            run_id: run_id.clone(),
            status: RunStatus::Running,
            ts: self.clock.utc(),
            agent: Some(agent_id.clone()),
            attempt: run.attempt,
            token: Some(run.token.clone()),
            reason: None,
        };
        tracing::info!(run = %run_id, workflow = %run.workflow.id, agent = %agent_id, attempt = run.attempt, "assigned");
        let assignment = Assignment {
            run_id: run_id.clone(),
            attempt: run.attempt,
            token: run.token.clone(),
            workflow: run.workflow.clone(),
            params: run.params.clone(),
        };
        Some((assignment, write))
    }
}
