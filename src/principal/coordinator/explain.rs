//! Why a run is where it is: for a queued run, what it waits for (its place in the queue,
//! its workflow's concurrency, the agents that could take it); for a running one, where it
//! runs and whether a cancel is on its way.

use super::Coordinator;
use crate::model::{Label, RunId, RunStatus};

impl Coordinator {
    /// The run's status and the reasons, or None when it is not active here.
    pub(super) fn explain(&self, run_id: &RunId) -> Option<(RunStatus, Vec<String>)> {
        let run = self.runs.get(run_id)?;
        let mut why = Vec::new();
        if run.status == RunStatus::Running {
            let agent = run.agent.as_ref().map_or("-".into(), |a| a.to_string());
            why.push(format!(
                "running on agent {agent} (attempt {})",
                run.attempt
            ));
            if let Some(cancel) = &run.cancel {
                why.push(format!("{cancel}: waiting for the agent to stop it"));
            }
            if run.orphan_deadline.is_some() {
                why.push("its agent has not reconnected since the principal restarted".into());
            }
            return Some((run.status, why));
        }
        let position = self.queue.iter().position(|id| id == run_id);
        if let Some(at) = position {
            why.push(format!(
                "queued: {} of {} in the queue",
                at + 1,
                self.queue.len()
            ));
        }
        let workflow = &run.workflow;
        let running = self
            .runs
            .values()
            .filter(|r| r.workflow.id == workflow.id && r.status == RunStatus::Running)
            .count();
        if let Some(max) = workflow.max_active_runs {
            if running >= max as usize {
                why.push(format!(
                    "waits for a run of {} to end: max_active_runs {max} reached",
                    workflow.id
                ));
            }
        }
        if run.serial && running > 0 {
            why.push(format!(
                "waits for the running run of {} to end (overlap: queue)",
                workflow.id
            ));
        }
        let alive = self.agents.alive();
        let placement = &workflow.agent;
        if alive.is_empty() {
            why.push("no agent is connected".into());
            return Some((run.status, why));
        }
        let fit: Vec<_> = alive
            .iter()
            .filter(|(info, _)| placement.admits(&info.labels))
            .collect();
        if fit.is_empty() {
            let needs: Vec<String> = placement.labels.iter().map(Label::to_string).collect();
            let lacking: Vec<String> = alive
                .iter()
                .take(5)
                .map(|(info, _)| {
                    let missing: Vec<String> = placement
                        .missing(&info.labels)
                        .iter()
                        .map(|l| l.to_string())
                        .collect();
                    format!("{} lacks {}", info.id, missing.join(", "))
                })
                .collect();
            why.push(format!(
                "needs label{} {}; {} agent{} connected, none has {} ({})",
                if needs.len() == 1 { "" } else { "s" },
                needs.join(", "),
                alive.len(),
                if alive.len() == 1 { "" } else { "s" },
                if needs.len() == 1 { "it" } else { "them all" },
                lacking.join("; ")
            ));
            return Some((run.status, why));
        }
        if let Some(prefer) = &placement.prefer {
            let here = alive
                .iter()
                .any(|(info, _)| &info.name == prefer || info.id.as_str() == prefer);
            if !here {
                why.push(format!(
                    "prefers agent {prefer}, which is not connected: any agent with the labels \
                     takes it"
                ));
            }
        }
        let busy = fit.iter().all(|(info, held)| *held >= info.slots as usize);
        if busy {
            let used: usize = fit.iter().map(|(_, held)| *held).sum();
            let total: u32 = fit.iter().map(|(info, _)| info.slots).sum();
            why.push(format!(
                "every agent that can take it is busy ({used} of {total} slots in use)"
            ));
        }
        Some((run.status, why))
    }
}
