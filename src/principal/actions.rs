//! The actions on one run that answer from both the coordinator and the store: cancel (the
//! coordinator while the run is active, the store once it ended) and the rerun's source (the
//! stored run, its definition and parameters).

use std::sync::Arc;

use tokio::sync::watch;

use super::coordinator::{unknown_workflow, CoordinatorHandle, Rerun};
use crate::model::{RunId, TaskId, Workflow};
use crate::protocol::control::ControlReply;
use crate::protocol::{ErrorCode, ErrorReply};
use crate::store::Store;
use crate::workflow::Catalog;

/// A store failure as the client sees it.
pub(super) fn store_error(e: crate::store::StoreError) -> ErrorReply {
    ErrorReply::new(ErrorCode::Unavailable, format!("store: {e}"))
}

/// The longest reason a cancel may give.
const MAX_REASON: usize = 500;

/// Cancels a run: answered by the coordinator while the run is active, else from the store
/// (an ended run is left as it is; an unknown one is not found).
pub(super) async fn cancel(
    core: &CoordinatorHandle,
    store: &Store,
    run_id: RunId,
    reason: Option<String>,
    actor: &str,
) -> Result<ControlReply, ErrorReply> {
    let reason = reason
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty());
    if let Some(r) = &reason {
        if r.chars().count() > MAX_REASON || r.chars().any(char::is_control) {
            return Err(ErrorReply::invalid(
                "reason",
                format!("at most {MAX_REASON} characters, on one line"),
            ));
        }
    }
    let why = match &reason {
        Some(r) => format!("cancelled by {actor}: {r}"),
        None => format!("cancelled by {actor}"),
    };
    if let Some(outcome) = core.cancel(run_id.clone(), why).await? {
        return Ok(ControlReply::Cancel {
            run_id,
            status: outcome.status,
            changed: outcome.changed,
            note: outcome.note,
        });
    }
    match store.get_run(run_id.as_str()).await.map_err(store_error)? {
        Some(run) => Ok(ControlReply::Cancel {
            run_id,
            status: run.summary.status,
            changed: false,
            note: format!(
                "the run had already ended {}: nothing changed",
                run.summary.status
            ),
        }),
        None => Err(ErrorReply::new(
            ErrorCode::NotFound,
            format!("no run `{run_id}`"),
        )),
    }
}

/// What a rerun of `run_id` repeats: the definition it ran (or the catalog's current one
/// with `latest`), its parameters, and with `failed_only` the tasks it completed.
pub(super) async fn rerun_of(
    store: &Store,
    catalog: &watch::Receiver<Arc<Catalog>>,
    run_id: &str,
    failed_only: bool,
    latest: bool,
) -> Result<Rerun, ErrorReply> {
    let not_found = || ErrorReply::new(ErrorCode::NotFound, format!("no run `{run_id}`"));
    let run = store
        .get_run(run_id)
        .await
        .map_err(store_error)?
        .ok_or_else(not_found)?;
    let status = run.summary.status;
    if !status.is_terminal() {
        return Err(ErrorReply::invalid(
            "run_id",
            format!("run `{run_id}` is still {status}: cancel it or wait for it to end"),
        ));
    }
    let definition: Workflow = if latest {
        let catalog = catalog.borrow().clone();
        match catalog.workflows.get(&run.summary.workflow_id) {
            Some(w) => w.clone(),
            None => return Err(unknown_workflow(&catalog, run.summary.workflow_id.as_str())),
        }
    } else {
        let json = store
            .definition(run_id)
            .await
            .map_err(store_error)?
            .ok_or_else(not_found)?;
        serde_json::from_str(&json).map_err(|e| {
            ErrorReply::new(
                ErrorCode::Internal,
                format!("the definition stored with run `{run_id}` is unreadable: {e}"),
            )
        })?
    };
    let reuse: Vec<TaskId> = if failed_only {
        run.tasks
            .iter()
            .filter(|t| t.status.counts_as_success())
            .filter(|t| definition.task(&t.task_id).is_some())
            .map(|t| t.task_id.clone())
            .collect()
    } else {
        Vec::new()
    };
    if failed_only && reuse.len() == definition.tasks.len() {
        return Err(ErrorReply::invalid(
            "failed_only",
            format!("every task of run `{run_id}` completed: nothing to run again"),
        ));
    }
    Ok(Rerun {
        of: RunId::new(run_id),
        definition,
        params: run.params,
        reuse,
    })
}

/// Why a run is where it is: from the coordinator while it is active, else its end as stored.
pub(super) async fn explain(
    core: &CoordinatorHandle,
    store: &Store,
    run_id: RunId,
) -> Result<ControlReply, ErrorReply> {
    if let Some((status, reasons)) = core.explain(run_id.clone()).await? {
        return Ok(ControlReply::Explanation {
            run_id,
            status,
            reasons,
        });
    }
    let run = store
        .get_run(run_id.as_str())
        .await
        .map_err(store_error)?
        .ok_or_else(|| ErrorReply::new(ErrorCode::NotFound, format!("no run `{run_id}`")))?;
    let s = &run.summary;
    let mut reasons = vec![format!(
        "ended {}{}",
        s.status,
        s.finished_at
            .map(|t| format!(" at {}", crate::model::time::format(&t)))
            .unwrap_or_default()
    )];
    reasons.extend(
        run.tasks
            .iter()
            .filter(|t| !t.status.counts_as_success())
            .filter_map(|t| {
                Some(format!(
                    "task {}: {} ({})",
                    t.task_id,
                    t.status,
                    t.reason.as_deref()?
                ))
            }),
    );
    Ok(ControlReply::Explanation {
        run_id,
        status: s.status,
        reasons,
    })
}
