//! Run and task statuses. Terminal states are final: nothing moves a run or task out of one.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RunStatus {
    Queued,
    Running,
    Completed,
    Failed,
    Crashed,
    Cancelled,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TaskStatus {
    Pending,
    Running,
    /// A try failed and the task will run again after its retry delay.
    Retrying,
    Completed,
    Failed,
    Skipped,
    Crashed,
    Cancelled,
    /// Completed in the run this one reruns (`rerun --failed-only`): not executed again.
    Reused,
}

impl RunStatus {
    pub const ALL: [RunStatus; 6] = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::Completed,
        RunStatus::Failed,
        RunStatus::Crashed,
        RunStatus::Cancelled,
    ];

    pub fn is_terminal(self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::Running)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "QUEUED",
            RunStatus::Running => "RUNNING",
            RunStatus::Completed => "COMPLETED",
            RunStatus::Failed => "FAILED",
            RunStatus::Crashed => "CRASHED",
            RunStatus::Cancelled => "CANCELLED",
        }
    }

    /// Whether moving from `self` to `next` is allowed.
    pub fn can_become(self, next: RunStatus) -> bool {
        match self {
            RunStatus::Queued => next != RunStatus::Queued,
            RunStatus::Running => !matches!(next, RunStatus::Queued | RunStatus::Running),
            _ => false,
        }
    }
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 9] = [
        TaskStatus::Pending,
        TaskStatus::Running,
        TaskStatus::Retrying,
        TaskStatus::Completed,
        TaskStatus::Failed,
        TaskStatus::Skipped,
        TaskStatus::Crashed,
        TaskStatus::Cancelled,
        TaskStatus::Reused,
    ];

    pub fn is_terminal(self) -> bool {
        !matches!(
            self,
            TaskStatus::Pending | TaskStatus::Running | TaskStatus::Retrying
        )
    }

    /// Whether the task's work is done and good: completed, or reused from the run a rerun
    /// repeats.
    pub fn counts_as_success(self) -> bool {
        matches!(self, TaskStatus::Completed | TaskStatus::Reused)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "PENDING",
            TaskStatus::Running => "RUNNING",
            TaskStatus::Retrying => "RETRYING",
            TaskStatus::Completed => "COMPLETED",
            TaskStatus::Failed => "FAILED",
            TaskStatus::Skipped => "SKIPPED",
            TaskStatus::Crashed => "CRASHED",
            TaskStatus::Cancelled => "CANCELLED",
            TaskStatus::Reused => "REUSED",
        }
    }

    /// Whether moving from `self` to `next` is allowed. A try that failed with retries left
    /// goes RUNNING -> RETRYING -> RUNNING (the next try).
    pub fn can_become(self, next: TaskStatus) -> bool {
        match self {
            TaskStatus::Pending => next != TaskStatus::Pending,
            TaskStatus::Running => !matches!(next, TaskStatus::Pending | TaskStatus::Running),
            TaskStatus::Retrying => !matches!(next, TaskStatus::Pending | TaskStatus::Retrying),
            _ => false,
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown status `{0}` (expected one of {1})")]
pub struct UnknownStatus(String, String);

/// The status in `all` whose name is `text` (any case), or an error listing the names.
fn parse_status<T: Copy>(
    text: &str,
    all: &[T],
    name: fn(T) -> &'static str,
) -> Result<T, UnknownStatus> {
    all.iter()
        .copied()
        .find(|v| name(*v).eq_ignore_ascii_case(text.trim()))
        .ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|v| name(*v)).collect();
            UnknownStatus(text.to_owned(), names.join(", "))
        })
}

impl FromStr for RunStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_status(s, &RunStatus::ALL, RunStatus::as_str)
    }
}

impl FromStr for TaskStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_status(s, &TaskStatus::ALL, TaskStatus::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_states_are_final() {
        for from in RunStatus::ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in RunStatus::ALL {
                assert!(!from.can_become(to), "{from} -> {to}");
            }
        }
        for from in TaskStatus::ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in TaskStatus::ALL {
                assert!(!from.can_become(to), "{from} -> {to}");
            }
        }
        assert!(RunStatus::Queued.can_become(RunStatus::Running));
        assert!(RunStatus::Running.can_become(RunStatus::Crashed));
        assert!(!RunStatus::Running.can_become(RunStatus::Queued));
        assert!(TaskStatus::Pending.can_become(TaskStatus::Skipped));
        // A retried task: each try runs, fails into RETRYING, and runs again.
        assert!(TaskStatus::Running.can_become(TaskStatus::Retrying));
        assert!(TaskStatus::Retrying.can_become(TaskStatus::Running));
        assert!(TaskStatus::Retrying.can_become(TaskStatus::Cancelled));
        assert!(!TaskStatus::Retrying.can_become(TaskStatus::Pending));
        assert!(!TaskStatus::Retrying.is_terminal() && TaskStatus::Reused.is_terminal());
        assert!(TaskStatus::Reused.counts_as_success() && !TaskStatus::Skipped.counts_as_success());
    }

    #[test]
    fn parse_and_print() {
        assert_eq!("failed".parse::<RunStatus>().unwrap(), RunStatus::Failed);
        assert_eq!(
            "SKIPPED".parse::<TaskStatus>().unwrap(),
            TaskStatus::Skipped
        );
        assert!("nope"
            .parse::<RunStatus>()
            .unwrap_err()
            .to_string()
            .contains("QUEUED"));
        assert_eq!(
            serde_json::to_string(&RunStatus::Completed).unwrap(),
            "\"COMPLETED\""
        );
    }
}
