//! Liveness: heartbeat deadlines, long polls that expire, agents that go silent or leave, and
//! the runs that end CRASHED because of it.

use std::time::{Duration, Instant};

use super::Coordinator;
use crate::model::{AgentId, AgentState, RunId, RunStatus};
use crate::protocol::agent::AgentReply;

impl Coordinator {
    /// The earliest moment something may expire: a heartbeat, a long poll or an orphan.
    pub(super) fn next_deadline(&self) -> Instant {
        let far = self.clock.now() + Duration::from_secs(3600);
        let orphans = self.runs.values().filter_map(|r| r.orphan_deadline);
        self.agents
            .deadlines(self.settings.heartbeat_timeout)
            .chain(orphans)
            .min()
            .unwrap_or(far)
    }

    /// Applies every deadline that has passed at `now`.
    pub(super) fn expire(&mut self, now: Instant) {
        let timeout = self.settings.heartbeat_timeout;
        self.agents.prune(now);
        for agent_id in self.agents.silent_since(now, timeout) {
            let reason = format!(
                "agent {agent_id} lost: no heartbeat for {}",
                humantime::format_duration(timeout)
            );
            self.lose_agent(&agent_id, AgentState::Lost, &reason);
        }
        for pull in self.agents.expired_pulls(now) {
            let _ = pull.send(Ok(AgentReply::Work {
                assignments: vec![],
                stop: vec![],
            }));
        }
        let orphans: Vec<RunId> = self
            .runs
            .values()
            .filter(|r| r.orphan_deadline.is_some_and(|d| d <= now))
            .map(|r| r.run_id.clone())
            .collect();
        for run_id in orphans {
            self.crash_run(
                &run_id,
                "its agent did not reconnect after the principal restarted",
            );
        }
    }

    /// Marks an agent lost or gone and ends the runs it held: a lost agent's runs are CRASHED;
    /// a gone agent flushed its records before leaving, so a run with none never started and
    /// is queued again.
    pub(super) fn lose_agent(&mut self, agent_id: &AgentId, state: AgentState, reason: &str) {
        let Some(runs) = self.agents.mark(agent_id, state) else {
            return;
        };
        tracing::warn!(agent = %agent_id, %state, runs = runs.len(), "agent no longer serving");
        if let Some(w) = self.agents.store_write(agent_id) {
            self.store.write_later(vec![w]);
        }
        for run_id in runs {
            match state {
                AgentState::Gone => self.requeue_or_crash(&run_id, reason),
                AgentState::Lost | AgentState::Alive => self.crash_run(&run_id, reason),
            }
        }
        self.dispatch();
    }

    /// Ends a run that is not finished by its agent (agent lost, never reconnected): running
    /// tasks become CRASHED, tasks that never started SKIPPED. A run that was being cancelled
    /// ends CANCELLED instead (its agent is told again if it comes back).
    pub(super) fn crash_run(&mut self, run_id: &RunId, reason: &str) {
        let Some(run) = self.runs.get(run_id) else {
            return;
        };
        let (status, reason) = match &run.cancel {
            Some(why) => (
                RunStatus::Cancelled,
                format!("{why} (its agent did not confirm: {reason})"),
            ),
            None => (RunStatus::Crashed, reason.to_owned()),
        };
        // Written with the coordinator's next batch; nothing waits for it.
        drop(self.end_run(run_id, status, &reason));
    }
}
