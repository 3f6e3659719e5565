//! Control requests: triggers and status go to the coordinator; history comes from the store;
//! workflow definitions from the current catalog.

use std::sync::Arc;

use tokio::sync::watch;

use super::actions::{self, store_error};
use super::coordinator::{unknown_workflow, CoordinatorHandle, Msg, TriggerRequest};
use super::reload::ReloadHandle;
use super::scheduler::SchedulerHandle;
use crate::model::{Failpoint, RunId, WorkflowId};
use crate::protocol::checked_pattern;
use crate::protocol::control::{ControlReply, ControlRequest};
use crate::protocol::{storable, ErrorCode, ErrorReply, Response};
use crate::store::{AuditFilter, LogFilter, RunFilter, Store};
use crate::workflow::Catalog;

/// Longest a failpoint may last: one day.
const MAX_FAILPOINT_MS: u64 = 24 * 3600 * 1000;

/// The longest query text taken.
const MAX_SQL_BYTES: usize = 100_000;

/// Most log lines one page carries.
const MAX_PAGE: u32 = 5_000;

/// What control requests are answered from.
pub struct Services {
    pub core: CoordinatorHandle,
    pub store: Store,
    pub catalog: watch::Receiver<Arc<Catalog>>,
    pub scheduler: SchedulerHandle,
    pub reloader: ReloadHandle,
    pub query_limits: crate::store::sql::Limits,
    pub retention: crate::store::retention::Policy,
}

/// Who sent a request: the actor a trigger records as its author, and the audit entry a
/// trigger stores with its run.
pub struct Sent {
    pub actor: String,
    pub audit: Option<crate::protocol::control::AuditEntry>,
}

/// Answers `request`.
pub async fn handle(request: ControlRequest, services: &Services, sent: Sent) -> Response {
    match answer(request, services, sent).await {
        Ok(reply) => Response::Control(reply),
        Err(e) => Response::Error(e),
    }
}

fn gone() -> ErrorReply {
    ErrorReply::new(ErrorCode::Unavailable, "the principal is shutting down")
}

async fn answer(
    request: ControlRequest,
    services: &Services,
    sent: Sent,
) -> Result<ControlReply, ErrorReply> {
    let Services {
        core,
        store,
        catalog,
        scheduler,
        reloader,
        query_limits,
        retention,
    } = services;
    match request {
        ControlRequest::Trigger {
            workflow,
            params,
            trigger,
        } => {
            let run_id = core
                .trigger(TriggerRequest {
                    workflow,
                    params,
                    source: trigger,
                    by: Some(sent.actor),
                    audit: sent.audit,
                    rerun: None,
                })
                .await?;
            Ok(ControlReply::Triggered { run_id })
        }
        ControlRequest::Rerun {
            run_id,
            failed_only,
            latest,
            params,
        } => {
            let rerun = actions::rerun_of(store, catalog, &run_id, failed_only, latest).await?;
            let run_id = core
                .trigger(TriggerRequest {
                    workflow: rerun.definition.id.to_string(),
                    params,
                    source: None,
                    by: Some(sent.actor),
                    audit: sent.audit,
                    rerun: Some(Box::new(rerun)),
                })
                .await?;
            Ok(ControlReply::Triggered { run_id })
        }
        ControlRequest::Status => Ok(ControlReply::Status(Box::new(core.status().await?))),
        ControlRequest::ListAgents => Ok(ControlReply::Agents {
            agents: core.agents().await?,
        }),
        ControlRequest::ListRuns {
            workflow,
            status,
            limit,
            trigger,
            agent,
            since,
            until,
        } => {
            let runs = store
                .list_runs(RunFilter {
                    workflow,
                    status,
                    limit: limit.unwrap_or(50).min(10_000),
                    trigger,
                    agent,
                    since,
                    until,
                })
                .await
                .map_err(store_error)?;
            Ok(ControlReply::Runs { runs })
        }
        ControlRequest::Explain { run_id } => {
            actions::explain(core, store, RunId::new(run_id)).await
        }
        ControlRequest::Cancel { run_id, reason } => {
            actions::cancel(core, store, RunId::new(run_id), reason, &sent.actor).await
        }
        ControlRequest::ShowRun { run_id } => {
            match store.get_run(&run_id).await.map_err(store_error)? {
                Some(run) => Ok(ControlReply::Run { run: Box::new(run) }),
                None => Err(ErrorReply::new(
                    ErrorCode::NotFound,
                    format!("no run `{run_id}`"),
                )),
            }
        }
        ControlRequest::Logs {
            run_id,
            task,
            after,
            before,
            limit,
            try_no,
            stream,
            grep,
            since,
            until,
        } => {
            let after = after.map(|a| storable("after", a)).transpose()?;
            let before = before.map(|b| storable("before", b)).transpose()?;
            let grep = grep.map(checked_pattern).transpose()?;
            if try_no.is_some() && task.is_none() {
                return Err(ErrorReply::invalid(
                    "try",
                    "a try is one task's: give `task` too",
                ));
            }
            if try_no == Some(0) {
                return Err(ErrorReply::invalid("try", "tries are counted from 1"));
            }
            if store.get_run(&run_id).await.map_err(store_error)?.is_none() {
                return Err(ErrorReply::new(
                    ErrorCode::NotFound,
                    format!("no run `{run_id}`"),
                ));
            }
            page(
                store,
                LogFilter {
                    run_id: Some(run_id),
                    task,
                    after,
                    before,
                    limit: limit.unwrap_or(MAX_PAGE).min(MAX_PAGE),
                    try_no,
                    stream,
                    grep,
                    since,
                    until,
                    ..Default::default()
                },
            )
            .await
        }
        ControlRequest::QueryLogs {
            workflow,
            since,
            until,
            after,
            limit,
            stream,
            grep,
        } => {
            let after = after.map(|a| storable("after", a)).transpose()?;
            let grep = grep.map(checked_pattern).transpose()?;
            page(
                store,
                LogFilter {
                    workflow,
                    since,
                    until,
                    after,
                    limit: limit.unwrap_or(MAX_PAGE).min(MAX_PAGE),
                    stream,
                    grep,
                    ..Default::default()
                },
            )
            .await
        }
        ControlRequest::ListWorkflows => {
            let catalog = catalog.borrow().clone();
            Ok(ControlReply::Workflows {
                workflows: catalog.workflows.values().cloned().collect(),
                invalid: catalog.invalid_files(),
            })
        }
        ControlRequest::Failpoint { name, duration_ms } => {
            if std::env::var_os("CDKTR_FAILPOINTS").is_none_or(|v| v != "1") {
                return Err(ErrorReply::new(
                    ErrorCode::Invalid,
                    "failpoints are disabled (start the principal with CDKTR_FAILPOINTS=1 to test with them)",
                ));
            }
            let failpoint: Failpoint = name.parse().map_err(|_| {
                let known: Vec<&str> = Failpoint::ALL.iter().map(|f| f.as_str()).collect();
                ErrorReply::invalid(
                    "name",
                    format!("unknown failpoint `{name}` (known: {})", known.join(", ")),
                )
            })?;
            if duration_ms > MAX_FAILPOINT_MS {
                return Err(ErrorReply::invalid(
                    "duration_ms",
                    format!("{duration_ms} is more than {MAX_FAILPOINT_MS} (one day)"),
                ));
            }
            let duration = std::time::Duration::from_millis(duration_ms);
            tracing::warn!(%failpoint, duration_ms, "failpoint armed");
            match failpoint {
                Failpoint::StoreWrites => store.fail_writes_for(duration),
                Failpoint::StoreStall => store.stall_next_write(duration),
                Failpoint::StoreWedge => store.wedge_writer_for(duration),
                Failpoint::CorePanic => core.send(Msg::PanicNext),
            }
            Ok(ControlReply::FailpointSet)
        }
        ControlRequest::ReloadWorkflows => {
            let (valid, invalid) = reloader.reload().await.ok_or_else(gone)?;
            Ok(ControlReply::Reloaded { valid, invalid })
        }
        // Answered by the server, which knows who is asking.
        ControlRequest::Whoami => Err(ErrorReply::new(
            ErrorCode::Internal,
            "whoami is answered by the server",
        )),
        ControlRequest::ListSchedules => Ok(ControlReply::Schedules {
            schedules: scheduler.list().await.ok_or_else(gone)?,
        }),
        ControlRequest::SetSchedulePaused { workflow, paused } => {
            if scheduler
                .set_paused(workflow.clone(), paused)
                .await
                .ok_or_else(gone)?
            {
                Ok(ControlReply::SchedulePaused {
                    workflow: WorkflowId::new(workflow),
                    paused,
                })
            } else {
                let catalog = catalog.borrow().clone();
                match catalog.workflows.get(&WorkflowId::new(workflow.as_str())) {
                    Some(_) => Err(ErrorReply::new(
                        ErrorCode::Invalid,
                        format!("workflow `{workflow}` has no schedule (no `cron`)"),
                    )),
                    None => Err(unknown_workflow(&catalog, &workflow)),
                }
            }
        }
        ControlRequest::Query {
            sql,
            max_rows,
            timeout_ms,
        } => {
            if sql.len() > MAX_SQL_BYTES {
                return Err(ErrorReply::invalid(
                    "sql",
                    format!("longer than {MAX_SQL_BYTES} bytes"),
                ));
            }
            if max_rows == Some(0) || timeout_ms == Some(0) {
                return Err(ErrorReply::invalid(
                    if max_rows == Some(0) {
                        "max_rows"
                    } else {
                        "timeout_ms"
                    },
                    "must be more than zero",
                ));
            }
            let limits =
                query_limits.lowered(max_rows, timeout_ms.map(std::time::Duration::from_millis));
            let result = store.sql(sql, limits).await.map_err(query_error)?;
            Ok(ControlReply::Query {
                result: Box::new(result),
            })
        }
        ControlRequest::Report { since, workflow } => {
            let now = chrono::Utc::now();
            let since = since.unwrap_or(now - chrono::Duration::days(7));
            if since >= now {
                return Err(ErrorReply::invalid("since", "must be in the past"));
            }
            let sql = crate::store::sql::report::sql(since, now, workflow.as_deref());
            let limits = crate::store::sql::Limits {
                max_rows: 100_000,
                timeout: query_limits.timeout.max(std::time::Duration::from_secs(60)),
                max_bytes: query_limits.max_bytes,
            };
            let result = store.sql(sql, limits).await.map_err(query_error)?;
            Ok(ControlReply::Query {
                result: Box::new(result),
            })
        }
        ControlRequest::Gc { dry_run } => {
            let report = store.gc(*retention, dry_run).await.map_err(store_error)?;
            Ok(ControlReply::Gc {
                report: Box::new(report),
            })
        }
        ControlRequest::Warnings { after } => Ok(ControlReply::Warnings {
            warnings: crate::runtime::logging::recent_warnings(after),
        }),
        ControlRequest::Audit {
            since,
            actor,
            action,
            limit,
        } => {
            let entries = store
                .audit(AuditFilter {
                    since,
                    actor,
                    action,
                    limit: limit.unwrap_or(100).min(10_000),
                })
                .await
                .map_err(store_error)?;
            Ok(ControlReply::Audit { entries })
        }
        ControlRequest::ScheduleHistory { workflow, limit } => {
            let slots = store
                .slot_history(&workflow, limit.unwrap_or(50).min(10_000))
                .await
                .map_err(store_error)?;
            Ok(ControlReply::Slots { slots })
        }
        ControlRequest::ShowWorkflow { id } => {
            let catalog = catalog.borrow().clone();
            match catalog.workflows.get(&WorkflowId::new(id.as_str())) {
                Some(w) => Ok(ControlReply::Workflow {
                    workflow: Box::new(w.clone()),
                }),
                None => Err(unknown_workflow(&catalog, &id)),
            }
        }
    }
}

fn query_error(e: crate::store::sql::SqlError) -> ErrorReply {
    use crate::store::sql::SqlError;
    match e {
        SqlError::Refused(m) => ErrorReply::new(ErrorCode::Forbidden, m),
        SqlError::Invalid(m) | SqlError::Limit(m) => ErrorReply::invalid("sql", m),
        SqlError::Unavailable(m) => ErrorReply::new(ErrorCode::Unavailable, m),
    }
}

async fn page(store: &Store, filter: LogFilter) -> Result<ControlReply, ErrorReply> {
    let limit = filter.limit as usize;
    let lines = store.logs(filter).await.map_err(store_error)?;
    let next = (lines.len() == limit)
        .then(|| lines.last().map(|l| l.id))
        .flatten();
    Ok(ControlReply::LogLines { lines, next })
}
