//! Handing queued runs to waiting agents, never beyond their free slots, and reconciling what
//! an agent says it runs with what it was given.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::{ActiveRun, Coordinator, Msg};
use crate::model::{AgentId, RunId, RunStatus, WorkflowId};
use crate::protocol::agent::{AgentReply, Assignment, AttemptRef};
use crate::store::Write;

impl Coordinator {
    /// Hands queued runs to agents that are waiting for work, never beyond their free slots:
    /// in queue order, each run that may start now (its workflow's `overlap` and
    /// `max_active_runs` allow it) goes to its preferred agent when that one waits and
    /// qualifies, else to the qualifying agent (carrying the workflow's labels) with the most
    /// free slots. A run no waiting agent qualifies for stays queued; the runs behind it pass.
    pub(super) fn dispatch(&mut self) {
        let mut free = self.agents.waiting();
        if free.is_empty() || self.queue.is_empty() {
            return;
        }
        // Runs of each workflow that are running now (grows as runs are assigned below).
        let mut active: HashMap<WorkflowId, u32> = HashMap::new();
        for run in self.runs.values() {
            if run.status == RunStatus::Running {
                *active.entry(run.workflow.id.clone()).or_default() += 1;
            }
        }
        let mut given: BTreeMap<AgentId, (Vec<Assignment>, Vec<Write>)> = BTreeMap::new();
        let mut at = 0;
        while at < self.queue.len() && free.iter().any(|(_, f)| *f > 0) {
            let run_id = self.queue[at].clone();
            let Some(run) = self.runs.get(&run_id) else {
                self.queue.remove(at);
                continue;
            };
            let running = active.get(&run.workflow.id).copied().unwrap_or(0);
            let may_start = (!run.serial || running == 0)
                && run.workflow.max_active_runs.is_none_or(|max| running < max);
            let agent = may_start.then(|| self.pick_agent(run, &free)).flatten();
            let Some(slot) = agent else {
                at += 1;
                continue;
            };
            self.queue.remove(at);
            let agent_id = free[slot].0.clone();
            if let Some((a, w)) = self.assign(&run_id, &agent_id) {
                *active.entry(a.workflow.id.clone()).or_default() += 1;
                free[slot].1 -= 1;
                let entry = given.entry(agent_id).or_default();
                entry.0.push(a);
                entry.1.push(w);
            }
        }
        for (agent_id, (assignments, writes)) in given {
            let Some(pull) = self.agents.take_pull(&agent_id) else {
                continue;
            };
            // The agent hears of an attempt only once it is durable: a principal that crashes
            // in between never hands the same attempt number out twice.
            let committed = self.store.submit(writes);
            let handle = self.handle.clone();
            self.pending.spawn(async move {
                if let Err(e) = committed.await {
                    tracing::error!(error = %e, "assignment not stored; sending it anyway");
                }
                let runs: Vec<RunId> = assignments.iter().map(|a| a.run_id.clone()).collect();
                if pull
                    .send(Ok(AgentReply::Work {
                        assignments,
                        stop: vec![],
                    }))
                    .is_err()
                {
                    handle.send(Msg::Undelivered(runs));
                }
            });
        }
    }

    /// Which of the waiting agents (`free`: id and free slots) takes `run`: its preferred
    /// agent when that one has a free slot and the labels, else the agent with the labels and
    /// the most free slots.
    fn pick_agent(&self, run: &ActiveRun, free: &[(AgentId, u32)]) -> Option<usize> {
        let placement = &run.workflow.agent;
        let fits = |(id, slots): &(AgentId, u32)| {
            *slots > 0
                && self
                    .agents
                    .info(id)
                    .is_some_and(|info| placement.admits(&info.labels))
        };
        if let Some(prefer) = &placement.prefer {
            let preferred = free.iter().position(|entry| {
                fits(entry)
                    && self.agents.info(&entry.0).is_some_and(|info| {
                        &info.name == prefer || entry.0.as_str() == prefer.as_str()
                    })
            });
            if preferred.is_some() {
                return preferred;
            }
        }
        free.iter()
            .enumerate()
            .filter(|(_, entry)| fits(entry))
            .max_by_key(|(_, (_, slots))| *slots)
            .map(|(i, _)| i)
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
            reuse: run.reuse.clone(),
        };
        Some((assignment, write))
    }
}
