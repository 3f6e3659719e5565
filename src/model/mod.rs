//! The domain model: identifiers, validated workflow definitions, run and task statuses.
//!
//! Pure data, no I/O. Everything here serialises with serde so that the same types travel over
//! the wire protocol and into the store unchanged.

mod id;
mod schedule;
mod status;
pub mod time;
mod words;
mod workflow;

pub use id::{AgentId, RunId, TaskId, WorkflowId};
pub use schedule::{Schedule, ScheduleError};
pub use status::{RunStatus, TaskStatus, UnknownStatus};
pub use words::{AgentState, Failpoint, SlotFate, TriggerSource, UnknownWord};
pub use workflow::{placeholders, substitute, Catchup, Overlap, Param, Task, TaskConfig, Workflow};
