//! Why a run stops early: the agent shutting down, an operator's cancel, or the workflow's
//! timeout. The first cause wins; every task of the run sees the same one.

use std::sync::{Arc, OnceLock};

use tokio_util::sync::CancellationToken;

use crate::model::{Span, TaskStatus};

#[derive(Clone, Debug, PartialEq)]
pub enum StopCause {
    /// The agent is shutting down.
    Shutdown,
    /// An operator cancelled the run; the text says who and why.
    Cancelled(String),
    /// The run went on longer than the workflow's `timeout`.
    Timeout(Span),
}

impl StopCause {
    /// The status and reason of a task this cause stopped while it ran.
    pub fn ends_running(&self) -> (TaskStatus, String) {
        match self {
            StopCause::Shutdown => (
                TaskStatus::Cancelled,
                "cancelled: the agent is shutting down".into(),
            ),
            StopCause::Cancelled(why) => (TaskStatus::Cancelled, why.clone()),
            StopCause::Timeout(after) => (
                TaskStatus::Failed,
                format!("timeout: the workflow ran longer than its timeout of {after}"),
            ),
        }
    }

    /// The status and reason of a task this cause stopped before it started.
    pub fn ends_pending(&self) -> (TaskStatus, String) {
        match self {
            StopCause::Shutdown => (
                TaskStatus::Cancelled,
                "not run: the agent shut down first".into(),
            ),
            StopCause::Cancelled(why) => (TaskStatus::Cancelled, format!("not run: {why}")),
            StopCause::Timeout(after) => (
                TaskStatus::Skipped,
                format!("not run: the workflow reached its timeout of {after}"),
            ),
        }
    }
}

/// A run's stop signal: cloned into each of its tasks.
#[derive(Clone, Debug, Default)]
pub struct RunStop {
    token: CancellationToken,
    cause: Arc<OnceLock<StopCause>>,
}

impl RunStop {
    /// A stop that also fires when `parent` is cancelled (as `Shutdown`, unless another cause
    /// came first).
    pub fn child_of(parent: &CancellationToken) -> RunStop {
        RunStop {
            token: parent.child_token(),
            cause: Arc::default(),
        }
    }

    /// Stops the run for `cause`, unless it is already stopping; true when this call stopped
    /// it.
    pub fn stop(&self, cause: StopCause) -> bool {
        let stopping = self.token.is_cancelled();
        let first_cause = self.cause.set(cause).is_ok();
        self.token.cancel();
        first_cause && !stopping
    }

    pub fn is_stopped(&self) -> bool {
        self.token.is_cancelled()
    }

    pub async fn stopped(&self) {
        self.token.cancelled().await
    }

    /// Why the run stopped (a parent's cancellation counts as shutdown); None while it runs.
    pub fn cause(&self) -> Option<StopCause> {
        if !self.token.is_cancelled() {
            return None;
        }
        Some(self.cause.get().cloned().unwrap_or(StopCause::Shutdown))
    }
}
