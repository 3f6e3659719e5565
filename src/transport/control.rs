//! The typed control API: one method per control request, each returning the value its reply
//! carries. This is the one place that pairs a request with the reply it expects; the CLI, the
//! TUI and the listeners call these methods and never match on replies.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{Client, ClientError};
use crate::model::{RunId, RunStatus, Workflow, WorkflowId};
use crate::protocol::control::{
    AgentView, ControlReply, ControlRequest, RunDetail, RunSummary, ScheduleView, SlotRecord,
    StatusView,
};
use crate::protocol::logs::LogLine;
use crate::workflow::InvalidFile;

/// The reply's payload if it is the expected variant, else an `Unexpected` error.
macro_rules! expect {
    ($reply:expr, $variant:pat => $value:expr) => {
        match $reply {
            $variant => Ok($value),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    };
}

/// Which stored lines to read.
#[derive(Clone, Debug)]
pub enum LogQuery {
    /// One run's lines (one task's, with `task`).
    Run {
        run_id: String,
        task: Option<String>,
    },
    /// One try of one task of a run.
    Try {
        run_id: String,
        task: String,
        try_no: u32,
    },
    /// Lines across runs, of one workflow or all.
    Across { workflow: Option<String> },
}

/// Which lines of a query: one stream's, those matching a pattern, those printed within a
/// time window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LineFilter {
    pub stream: Option<crate::protocol::agent::Stream>,
    pub grep: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// One page of stored lines; `next` is the cursor of the following page (None on the last).
#[derive(Clone, Debug, PartialEq)]
pub struct LogPage {
    pub lines: Vec<LogLine>,
    pub next: Option<u64>,
}

/// The principal's workflows and the files that failed validation.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkflowListing {
    pub workflows: Vec<Workflow>,
    pub invalid: Vec<InvalidFile>,
}

/// The catalog after a reload: valid workflows active, invalid files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reloaded {
    pub valid: usize,
    pub invalid: usize,
}

impl Client {
    /// Queues a run of `workflow` with `params`, recorded with `source` (`cli`, `api`,
    /// `event:<name>` ...). Returns the run id once the queued run is durable.
    pub async fn trigger(
        &self,
        workflow: &str,
        params: BTreeMap<String, String>,
        source: &str,
    ) -> Result<RunId, ClientError> {
        let request = ControlRequest::Trigger {
            workflow: workflow.to_owned(),
            params,
            trigger: Some(source.to_owned()),
        };
        expect!(self.control(request).await?, ControlReply::Triggered { run_id } => run_id)
    }

    pub async fn status(&self) -> Result<StatusView, ClientError> {
        expect!(self.control(ControlRequest::Status).await?, ControlReply::Status(s) => *s)
    }

    pub async fn agents(&self) -> Result<Vec<AgentView>, ClientError> {
        let reply = self.control(ControlRequest::ListAgents).await?;
        expect!(reply, ControlReply::Agents { agents } => agents)
    }

    /// Runs of `workflow` (all when None), newest first.
    pub async fn runs(
        &self,
        workflow: Option<String>,
        status: Option<RunStatus>,
        limit: u32,
    ) -> Result<Vec<RunSummary>, ClientError> {
        let request = ControlRequest::ListRuns {
            workflow,
            status,
            limit: Some(limit),
            trigger: None,
            agent: None,
            since: None,
            until: None,
        };
        self.runs_where(request).await
    }

    /// Runs matching a `ListRuns` request, newest first.
    pub async fn runs_where(
        &self,
        request: ControlRequest,
    ) -> Result<Vec<RunSummary>, ClientError> {
        expect!(self.control(request).await?, ControlReply::Runs { runs } => runs)
    }

    pub async fn run(&self, run_id: &str) -> Result<RunDetail, ClientError> {
        let request = ControlRequest::ShowRun {
            run_id: run_id.to_owned(),
        };
        expect!(self.control(request).await?, ControlReply::Run { run } => *run)
    }

    /// Why a run is where it is: its status and one sentence per reason.
    pub async fn explain(&self, run_id: &str) -> Result<(RunStatus, Vec<String>), ClientError> {
        let request = ControlRequest::Explain {
            run_id: run_id.to_owned(),
        };
        expect!(
            self.control(request).await?,
            ControlReply::Explanation { status, reasons, .. } => (status, reasons)
        )
    }

    /// Queues a rerun of `run_id`; returns the new run's id.
    pub async fn rerun(
        &self,
        run_id: &str,
        failed_only: bool,
        latest: bool,
        params: BTreeMap<String, String>,
    ) -> Result<RunId, ClientError> {
        let request = ControlRequest::Rerun {
            run_id: run_id.to_owned(),
            failed_only,
            latest,
            params,
        };
        expect!(
            self.control(request).await?,
            ControlReply::Triggered { run_id } => run_id
        )
    }

    /// Cancels a run: its status afterwards, whether anything changed, and a note.
    pub async fn cancel(
        &self,
        run_id: &str,
        reason: Option<String>,
    ) -> Result<(RunStatus, bool, String), ClientError> {
        let request = ControlRequest::Cancel {
            run_id: run_id.to_owned(),
            reason,
        };
        expect!(
            self.control(request).await?,
            ControlReply::Cancel { status, changed, note, .. } => (status, changed, note)
        )
    }

    /// One page of stored lines after the cursor `after`.
    pub async fn logs(&self, query: &LogQuery, after: Option<u64>) -> Result<LogPage, ClientError> {
        self.logs_matching(query, &LineFilter::default(), after)
            .await
    }

    /// A run's newest `limit` stored lines before the cursor `before` (before its end
    /// without one), in id order: paging back from the end of a long output.
    pub async fn logs_before(
        &self,
        run_id: &str,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<LogLine>, ClientError> {
        let request = ControlRequest::Logs {
            run_id: run_id.to_owned(),
            task: None,
            after: None,
            before: Some(before.unwrap_or(crate::protocol::MAX_STORED_INT)),
            limit: Some(limit),
            try_no: None,
            stream: None,
            grep: None,
            since: None,
            until: None,
        };
        expect!(self.control(request).await?, ControlReply::LogLines { lines, .. } => lines)
    }

    /// One page of the stored lines that pass `filter`, after the cursor `after`.
    pub async fn logs_matching(
        &self,
        query: &LogQuery,
        filter: &LineFilter,
        after: Option<u64>,
    ) -> Result<LogPage, ClientError> {
        let (stream, grep) = (filter.stream, filter.grep.clone());
        let (since, until) = (filter.since, filter.until);
        let request = match query.clone() {
            LogQuery::Run { run_id, task } => ControlRequest::Logs {
                run_id,
                task,
                after,
                before: None,
                limit: None,
                try_no: None,
                stream,
                grep,
                since,
                until,
            },
            LogQuery::Try {
                run_id,
                task,
                try_no,
            } => ControlRequest::Logs {
                run_id,
                task: Some(task),
                after,
                before: None,
                limit: None,
                try_no: Some(try_no),
                stream,
                grep,
                since,
                until,
            },
            LogQuery::Across { workflow } => ControlRequest::QueryLogs {
                workflow,
                since,
                until,
                after,
                limit: None,
                stream,
                grep,
            },
        };
        expect!(
            self.control(request).await?,
            ControlReply::LogLines { lines, next } => LogPage { lines, next }
        )
    }

    pub async fn workflows(&self) -> Result<WorkflowListing, ClientError> {
        expect!(
            self.control(ControlRequest::ListWorkflows).await?,
            ControlReply::Workflows { workflows, invalid } => WorkflowListing { workflows, invalid }
        )
    }

    pub async fn workflow(&self, id: &str) -> Result<Workflow, ClientError> {
        let request = ControlRequest::ShowWorkflow { id: id.to_owned() };
        expect!(self.control(request).await?, ControlReply::Workflow { workflow } => *workflow)
    }

    /// Re-reads the workflow directory; answered once the new catalog is active.
    pub async fn reload(&self) -> Result<Reloaded, ClientError> {
        expect!(
            self.control(ControlRequest::ReloadWorkflows).await?,
            ControlReply::Reloaded { valid, invalid } => Reloaded { valid, invalid }
        )
    }

    pub async fn schedules(&self) -> Result<Vec<ScheduleView>, ClientError> {
        let reply = self.control(ControlRequest::ListSchedules).await?;
        expect!(reply, ControlReply::Schedules { schedules } => schedules)
    }

    /// Pauses (or resumes) a workflow's schedule; returns the workflow's id.
    pub async fn set_paused(
        &self,
        workflow: &str,
        paused: bool,
    ) -> Result<WorkflowId, ClientError> {
        let request = ControlRequest::SetSchedulePaused {
            workflow: workflow.to_owned(),
            paused,
        };
        expect!(self.control(request).await?, ControlReply::SchedulePaused { workflow, .. } => workflow)
    }

    /// The newest `limit` slot records of a workflow, newest first.
    pub async fn slot_history(
        &self,
        workflow: &str,
        limit: u32,
    ) -> Result<Vec<SlotRecord>, ClientError> {
        let request = ControlRequest::ScheduleHistory {
            workflow: workflow.to_owned(),
            limit: Some(limit),
        };
        expect!(self.control(request).await?, ControlReply::Slots { slots } => slots)
    }

    /// Who the principal takes this client for: (name, role, authenticated).
    pub async fn whoami(&self) -> Result<(Option<String>, crate::model::Role, bool), ClientError> {
        expect!(
            self.control(ControlRequest::Whoami).await?,
            ControlReply::Identity { name, role, authenticated } => (name, role, authenticated)
        )
    }

    /// The principal's newest warnings and errors after the cursor `after`, oldest first.
    pub async fn warnings(
        &self,
        after: Option<u64>,
    ) -> Result<Vec<crate::protocol::control::Notice>, ClientError> {
        let request = ControlRequest::Warnings { after };
        expect!(self.control(request).await?, ControlReply::Warnings { warnings } => warnings)
    }

    /// The audit log, newest first.
    pub async fn audit(
        &self,
        since: Option<chrono::DateTime<chrono::Utc>>,
        actor: Option<String>,
        action: Option<String>,
        limit: u32,
    ) -> Result<Vec<crate::protocol::control::AuditEntry>, ClientError> {
        let request = ControlRequest::Audit {
            since,
            actor,
            action,
            limit: Some(limit),
        };
        expect!(self.control(request).await?, ControlReply::Audit { entries } => entries)
    }

    /// Runs read-only SQL over the history views. `timeout` lowers the principal's time limit;
    /// the reply is awaited that long (ten minutes without one) plus the client's timeout.
    pub async fn query(
        &self,
        sql: &str,
        max_rows: Option<u32>,
        timeout: Option<std::time::Duration>,
    ) -> Result<crate::protocol::control::QueryResult, ClientError> {
        let request = ControlRequest::Query {
            sql: sql.to_owned(),
            max_rows,
            timeout_ms: timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        };
        let wait = timeout.unwrap_or(std::time::Duration::from_secs(600)) + self.timeout();
        let reply = self.control_within(request, wait).await?;
        expect!(reply, ControlReply::Query { result } => *result)
    }

    /// Applies the principal's retention now (`dry_run`: counts only). Waits as long as it
    /// takes (a first pass over a large history can take minutes).
    pub async fn gc(&self, dry_run: bool) -> Result<crate::protocol::query::GcReport, ClientError> {
        let wait = std::time::Duration::from_secs(3600);
        let reply = self
            .control_within(ControlRequest::Gc { dry_run }, wait)
            .await?;
        expect!(reply, ControlReply::Gc { report } => *report)
    }

    /// The per-workflow report since `since` (default seven days), as the principal's query
    /// result (one row per workflow).
    pub async fn report(
        &self,
        since: Option<DateTime<Utc>>,
        workflow: Option<String>,
    ) -> Result<crate::protocol::control::QueryResult, ClientError> {
        let request = ControlRequest::Report { since, workflow };
        let wait = std::time::Duration::from_secs(120) + self.timeout();
        let reply = self.control_within(request, wait).await?;
        expect!(reply, ControlReply::Query { result } => *result)
    }

    /// Arms a failpoint (only on a principal started with `CDKTR_FAILPOINTS=1`).
    pub async fn failpoint(&self, name: &str, duration_ms: u64) -> Result<(), ClientError> {
        let request = ControlRequest::Failpoint {
            name: name.to_owned(),
            duration_ms,
        };
        expect!(self.control(request).await?, ControlReply::FailpointSet => ())
    }
}
