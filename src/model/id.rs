//! Newtype identifiers, so a task id can never be passed where a workflow id is expected.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }
    };
}

string_id!(
    /// A workflow's id: its file path relative to the workflow directory, extension dropped,
    /// `/` replaced by `.` (`etl/daily.yml` is `etl.daily`).
    WorkflowId
);

string_id!(
    /// A task's id: its key in the workflow's `tasks` mapping.
    TaskId
);

string_id!(
    /// A run's id: a ULID assigned by the principal at trigger time, so ids are globally
    /// unique and sort by creation time.
    RunId
);

string_id!(
    /// An agent's id: `name@host`, so two agents on one host are distinct by name.
    AgentId
);

impl RunId {
    pub fn generate() -> Self {
        Self(ulid::Ulid::new().to_string())
    }
}

impl AgentId {
    pub fn from_parts(name: &str, host: &str) -> Self {
        Self(format!("{name}@{host}"))
    }
}
