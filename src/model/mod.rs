//! The domain model: identifiers and validated workflow definitions.
//!
//! Pure data, no I/O. Everything here serialises with serde so that the same types travel over
//! the wire protocol and into the store unchanged.

mod id;
mod schedule;
mod workflow;

pub use id::{TaskId, WorkflowId};
pub use schedule::{Schedule, ScheduleError};
pub use workflow::{Task, TaskConfig, Workflow};
