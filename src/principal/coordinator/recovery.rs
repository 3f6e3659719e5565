//! Start-up recovery, as a pure function from the runs the store says were queued or running
//! when the principal stopped to the coordinator's first state. Queued runs go back on the
//! queue in their original order; running runs wait until `orphan_deadline` for their agent
//! to reconnect and re-adopt them, and are CRASHED otherwise. A run whose stored definition or
//! parameters cannot be read is CRASHED at once.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Instant;

use chrono::{DateTime, Utc};

use super::ActiveRun;
use crate::model::{RunId, RunStatus, TriggerSource, Workflow};
use crate::store::{UnfinishedRun, Write};

/// The coordinator's state after recovery.
#[derive(Default)]
pub struct Recovered {
    pub queue: VecDeque<RunId>,
    pub runs: HashMap<RunId, ActiveRun>,
    /// Writes that end the runs which could not be recovered.
    pub crashed: Vec<Write>,
}

/// `unfinished` must be in queue order (as the store lists them: oldest first).
pub fn recover(
    unfinished: Vec<UnfinishedRun>,
    orphan_deadline: Instant,
    now: DateTime<Utc>,
) -> Recovered {
    let mut out = Recovered::default();
    let (mut queued, mut running) = (0, 0);
    for r in unfinished {
        let run = match active_run(&r, orphan_deadline) {
            Ok(run) => run,
            Err(reason) => {
                tracing::error!(run = %r.run_id, %reason, "cannot recover run");
                out.crashed.push(Write::Run {
                    run_id: r.run_id,
                    status: RunStatus::Crashed,
                    ts: now,
                    agent: None,
                    attempt: 0,
                    token: None,
                    reason: Some(reason),
                });
                continue;
            }
        };
        if r.status == RunStatus::Queued {
            out.queue.push_back(r.run_id.clone());
            queued += 1;
        } else {
            running += 1;
        }
        out.runs.insert(r.run_id, run);
    }
    if queued + running > 0 {
        tracing::info!(queued, running, "recovered unfinished runs");
    }
    out
}

fn active_run(r: &UnfinishedRun, orphan_deadline: Instant) -> Result<ActiveRun, String> {
    let workflow: Workflow = serde_json::from_str(&r.definition_json)
        .map_err(|e| format!("stored definition unreadable: {e}"))?;
    let params: BTreeMap<String, String> = serde_json::from_str(&r.params_json)
        .map_err(|e| format!("stored parameters unreadable: {e}"))?;
    // The same rule the schedule applied when it queued the run.
    let serial = r.trigger == TriggerSource::Schedule && workflow.overlap.serialises(r.caught_up);
    Ok(ActiveRun {
        run_id: r.run_id.clone(),
        workflow,
        params,
        status: r.status,
        attempt: r.attempt,
        token: r.token.clone().unwrap_or_default(),
        agent: r.agent.clone(),
        last_seq: r.last_seq,
        tasks: r.tasks.iter().cloned().collect(),
        tries: Default::default(),
        cancel: None,
        reuse: r.reuse.iter().cloned().collect(),
        orphan_deadline: (r.status == RunStatus::Running).then_some(orphan_deadline),
        serial,
        assigned_at: None,
        queued_at: None,
    })
}
