//! Start-up recovery: runs the store says were queued or running when the principal stopped.
//! Queued runs go back on the queue in their original order; running runs wait one heartbeat
//! timeout for their agent to reconnect and re-adopt them, and are CRASHED otherwise.

use std::collections::BTreeMap;
use std::time::Instant;

use super::core::{ActiveRun, Core};
use crate::model::{RunStatus, Workflow};
use crate::store::StoreError;

pub(super) async fn recover(core: &mut Core) -> Result<(), StoreError> {
    let unfinished = core.store.unfinished_runs().await?;
    let deadline = Instant::now() + core.settings.heartbeat_timeout;
    let (mut queued, mut running, mut broken) = (0, 0, Vec::new());
    for r in unfinished {
        let workflow: Workflow = match serde_json::from_str(&r.definition_json) {
            Ok(w) => w,
            Err(e) => {
                broken.push((r.run_id, format!("stored definition unreadable: {e}")));
                continue;
            }
        };
        let params: BTreeMap<String, String> = match serde_json::from_str(&r.params_json) {
            Ok(p) => p,
            Err(e) => {
                broken.push((r.run_id, format!("stored parameters unreadable: {e}")));
                continue;
            }
        };
        let serial = r.trigger == "schedule" && workflow.overlap.serialises(r.caught_up);
        let run = ActiveRun {
            run_id: r.run_id.clone(),
            workflow,
            params,
            status: r.status,
            attempt: r.attempt,
            token: r.token.unwrap_or_default(),
            agent: r.agent,
            last_seq: r.last_seq,
            tasks: r.tasks.into_iter().collect(),
            orphan_deadline: (r.status == RunStatus::Running).then_some(deadline),
            serial,
            assigned_at: None,
        };
        if r.status == RunStatus::Queued {
            core.queue.push_back(r.run_id.clone());
            queued += 1;
        } else {
            running += 1;
        }
        core.runs.insert(r.run_id, run);
    }
    for (run_id, reason) in broken {
        tracing::error!(run = %run_id, %reason, "cannot recover run");
        // Not in `runs`, so record the crash directly.
        core.store.write_later(vec![crate::store::Write::Run {
            run_id,
            status: RunStatus::Crashed,
            ts: chrono::Utc::now(),
            agent: None,
            attempt: 0,
            token: None,
            reason: Some(reason),
        }]);
    }
    if queued + running > 0 {
        tracing::info!(queued, running, "recovered unfinished runs");
    }
    Ok(())
}
