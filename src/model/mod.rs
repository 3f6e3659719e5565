//! The domain model: identifiers, validated workflow definitions and their parameters, run and
//! task statuses, and the closed sets of words the product uses.
//!
//! Pure data, no I/O. Everything here serialises with serde so that the same types travel over
//! the wire protocol and into the store unchanged.

mod controls;
mod id;
mod params;
mod schedule;
mod status;
pub mod time;
mod words;
mod workflow;

pub use controls::{Backoff, Decision, Label, Placement, Retry, Span, TriggerRule};
pub use id::{AgentId, RunId, TaskId, WorkflowId};
pub use params::{placeholders, shell_quote, substitute, whole_match, Param};
pub use schedule::{Schedule, ScheduleError};
pub use status::{RunStatus, TaskStatus, UnknownStatus};
pub use words::{AgentState, Failpoint, Role, SlotFate, TriggerSource, UnknownWord};
pub use workflow::{Catchup, Overlap, Task, TaskConfig, Workflow};
